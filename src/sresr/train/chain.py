"""Training chains: the stages that make one set of weights, as one file of differences.

A chain file (TOML; ``recipes/chains/*.toml``) names a model, a scale and a recipe, the settings
every stage shares (``[defaults]``), and its stages in order (``[[stage]]``), each as the keys it
changes::

    model = "fsrcnn"
    scale = 2
    recipe = "fsrcnn"

    [defaults]
    threads = 1
    val.data = "set5"

    [[stage]]
    name = "fsrcnn-x2"              # its run folder: RUNS/fsrcnn-x2
    iters = 100000
    data.train = ["t91", "bsds200"]

    [[stage]]
    name = "fsrcnn-x2-aug"          # starts from the stage before (its weights.safetensors)
    iters = 40000
    data.resize_factors = [1.0, 0.9, 0.8, 0.7, 0.6]

A stage may also set ``recipe`` and ``scale`` (its own named recipe and scale) and ``init`` (the
run to start from instead of the stage before; ``""`` for no initial weights). Every other key is a
config key (:class:`sresr.train.config.TrainConfig`, ``--print-config`` shows them), such as
``init_transform``, which changes the weights a stage starts from (FSRCNN's transposed convolution
moved to the centred padding: ``"sresr.models.fsrcnn.arch:center_init"``).

A stage's config is: its recipe at its scale, then ``[defaults]``, then the stage's keys, then
``init_weights`` from the stage before. ``sresr train --chain FILE`` runs the stages in order, each
in ``RUNS/NAME``: a finished stage is skipped, an interrupted one resumed, so running the command
again continues the chain. ``--print-config --stage N`` prints one stage's expanded config.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

from ..errors import UsageError
from .config import TrainConfig, from_dict, read_toml
from .recipes import get_recipe

#: keys of a ``[[stage]]`` table that are not config keys
STAGE_KEYS = ("name", "recipe", "scale", "init")
WEIGHTS = "weights.safetensors"


@dataclass(frozen=True)
class Stage:
    """One stage: its run folder's name, its expanded config (``init_weights`` points at the run
    it starts from) and the run it starts from (None: none)."""

    name: str
    config: TrainConfig
    init_run: str | None


@dataclass(frozen=True)
class Chain:
    path: Path
    model: str
    description: str
    stages: tuple[Stage, ...]

    def stage(self, which: str | int) -> Stage:
        """A stage by its 1-based number or its name."""
        text = str(which)
        if text.isdigit():
            n = int(text)
            if not 1 <= n <= len(self.stages):
                raise UsageError(f"{self.path} has {len(self.stages)} stages, not {n}",
                                 hint=f"--stage 1..{len(self.stages)} or a stage name")
            return self.stages[n - 1]
        for st in self.stages:
            if st.name == text:
                return st
        raise UsageError(f"{self.path} has no stage '{text}'",
                         hint="stages: " + ", ".join(st.name for st in self.stages))


def load_chain(path: str | Path, runs: str | Path = "runs") -> Chain:
    """Read and expand a chain file; every stage's config is validated."""
    path = Path(path)
    data = read_toml(path, "chain file")
    unknown = sorted(set(data) - {"model", "scale", "recipe", "description", "defaults", "stage"})
    if unknown:
        raise UsageError(f"{path}: unknown key '{unknown[0]}'",
                         hint="a chain file has model, scale, recipe, description, [defaults] and [[stage]] tables")
    model = data.get("model")
    if not isinstance(model, str) or not model:
        raise UsageError(f"{path}: no model", hint='add model = "NAME" at the top')
    stages_in = data.get("stage")
    if not isinstance(stages_in, list) or not stages_in:
        raise UsageError(f"{path}: no [[stage]] tables")
    defaults = data.get("defaults", {})
    runs = Path(runs)
    stages: list[Stage] = []
    for i, raw in enumerate(stages_in, 1):
        stages.append(_expand(path, i, dict(raw), model, data, defaults, runs, stages))
    names = [st.name for st in stages]
    if len(set(names)) != len(names):
        raise UsageError(f"{path}: two stages share a name", hint="stage names are their run folders: make them unique")
    return Chain(path, model, str(data.get("description", "")), tuple(stages))


_STAGE_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._\-]{0,99}")


def _expand(path: Path, i: int, raw: dict[str, Any], model: str, top: Mapping[str, Any],
            defaults: Mapping[str, Any], runs: Path, before: list[Stage]) -> Stage:
    name = raw.pop("name", None)
    # a run folder under the chain's folder: "..", "/", "\\" or a leading dot would put it elsewhere
    if not isinstance(name, str) or not _STAGE_NAME.fullmatch(name):
        raise UsageError(f"{path}: stage {i} has no valid name ({name!r})",
                         hint='give each [[stage]] a name = "RUN-FOLDER" of letters, digits, ".", "-" and "_", '
                              'not starting with a dot')
    recipe = raw.pop("recipe", top.get("recipe"))
    scale = raw.pop("scale", top.get("scale"))
    init = raw.pop("init", before[-1].name if before else None)
    if "init_weights" in raw:
        raise UsageError(f"{path}: stage '{name}' sets init_weights",
                         hint='a stage starts from the stage before; name another run with init = "RUN" '
                         '(or init = "" for none)')
    where = f"{path}, stage '{name}'"
    try:
        cfg = get_recipe(recipe, scale, model=model) if recipe else TrainConfig(model=model, scale=scale or 4)
        cfg = from_dict(TrainConfig, dict(defaults), base=cfg)
        cfg = from_dict(TrainConfig, raw, base=cfg)
    except UsageError as exc:
        raise UsageError(f"{where}: {exc.message}", hint=exc.hint) from None
    init_run = init or None
    if init_run is not None:
        known = [st.name for st in before]
        if init_run not in known:
            raise UsageError(f"{where}: starts from '{init_run}', which no earlier stage makes",
                             hint="earlier stages: " + (", ".join(known) or "none"))
    weights = str(runs / init_run / WEIGHTS) if init_run else ""
    cfg = from_dict(TrainConfig, {"init_weights": weights}, base=cfg)
    try:
        cfg.validate()
    except UsageError as exc:
        raise UsageError(f"{where}: {exc.message}", hint=exc.hint) from None
    return Stage(name, cfg, init_run)


def stage_done(stage: Stage, runs: Path) -> bool:
    """Whether a stage's run has finished: its weights exist and record the stage's iterations."""
    from ..weights import read_metadata

    weights = Path(runs) / stage.name / WEIGHTS
    if not weights.is_file():
        return False
    try:
        return int(read_metadata(weights).get("sresr.iterations", "-1")) >= stage.config.iters
    except (ValueError, Exception):
        return False


def run_chain(chain: Chain, runs: str | Path = "runs", progress: bool = True,
              log: Callable[[str], None] | None = None, warn: Callable[[str], None] | None = None) -> list[Any]:
    """Train the stages in order, each in ``RUNS/NAME``: a finished stage is skipped, one with a
    checkpoint resumed, the others started (from the stage before's weights)."""
    from .checkpoint import CHECKPOINT, PREVIOUS
    from .loop import train

    log = log or (lambda m: print(m, flush=True))
    runs = Path(runs)
    results = []
    n = len(chain.stages)
    for i, st in enumerate(chain.stages, 1):
        rundir = runs / st.name
        if stage_done(st, runs):
            log(f"stage {i}/{n} {st.name}: done ({rundir / WEIGHTS})")
            continue
        resume = (rundir / CHECKPOINT).exists() or (rundir / PREVIOUS).exists()
        log(f"stage {i}/{n} {st.name}: {'resuming' if resume else 'training'} {st.config.iters} iterations"
            + (f" from {st.init_run}" if st.init_run else ""))
        results.append(train(st.config, rundir, resume=resume, progress=progress, log=log, warn=warn))
    return results
