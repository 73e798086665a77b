"""``sresr train``: train a registered model with its paper recipe (torch is imported only to train)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Sequence

import typer

from ..errors import UsageError
from .common import DeviceOpt, console, err_console

_Data = Annotated[
    list[str] | None,
    typer.Option("--data", "-d", help="Training data: a folder of HR images or a dataset name (repeatable)."),
]
_DataLR = Annotated[
    list[str] | None,
    typer.Option("--data-lr", help="Your own LR images for --data's HR images, paired by name "
                 "(0001.png with 0001.png or 0001x4.png); sizes are checked (repeatable)."),
]


def build_config(model: str, scale: int | None, recipe: str | None, config: Path | None, out: Path | None,
                 resume: bool, overrides: dict[str, Any], settings: Sequence[str] = ()) -> tuple[Any, Path]:
    """The run's TrainConfig and folder: recipe (or the run's saved config on --resume), then the
    --config file, then the command-line options, then the ``--set KEY=VALUE`` lines in order."""
    from ..train.config import TrainConfig, apply_settings, load_toml, override
    from ..train.recipes import get_recipe, recipe_for_model, run_folder

    from ..registry import parse_ref

    base_model = parse_ref(model)[0]
    saved = out / "config.toml" if out is not None else None
    cfg: TrainConfig
    run_cfg: TrainConfig | None = None
    recovered = ""
    if resume and out is not None and saved is not None and config is None:
        if saved.is_file():
            run_cfg = load_toml(saved)
        else:
            run_cfg, recovered = _recorded_config(out)
    if run_cfg is not None:
        cfg = run_cfg
        if cfg.model != base_model:
            raise UsageError(f"{out} is a run of '{cfg.model}', not '{base_model}'",
                             hint=f"sresr train {cfg.model} --out {out} --resume")
        if scale is not None and scale != cfg.scale:
            raise UsageError(f"{out} trains x{cfg.scale}, not x{scale}", hint="drop -s or choose another --out")
        if recovered:
            from ..ranks import rank

            if rank() == 0:
                _warn(recovered)
    else:
        cfg = get_recipe(recipe or recipe_for_model(base_model), scale, model=base_model)
        if config is not None:
            cfg = load_toml(config, base=cfg)
            if cfg.model != base_model:
                raise UsageError(f"config file {config} is for model '{cfg.model}', not '{base_model}'",
                                 hint=f"run 'sresr train {cfg.model} --config {config}'")
            if scale is not None and scale != cfg.scale:
                cfg = override(cfg, {"scale": scale})
    cfg = override(cfg, {k: v for k, v in overrides.items() if v is not None})
    cfg = apply_settings(cfg, settings)
    cfg.validate()
    rundir = out if out is not None else Path(run_folder(cfg.recipe, cfg.model, cfg.scale))
    return cfg, rundir


def _recorded_config(out: Path) -> tuple[Any, str]:
    """The config of the run in ``out`` as its checkpoint records it, and the warning to print, for
    a --resume whose config.toml is gone; ``(None, "")`` when the folder holds no checkpoint (then
    the run starts from the recipe, as a --resume of an empty folder always did).

    Recovering the config, rather than refusing, is what a careful user wants: every checkpoint
    records the full config that trained it (``"config"``) and is verified by its checksum, so the
    run goes on exactly as it was configured, whereas the recipe's defaults would silently continue
    the checkpoint's weights under another schedule, data and length. The warning says so, and the
    training writes config.toml back. A checkpoint that records no config is refused."""
    from ..train.checkpoint import CHECKPOINT, PREVIOUS, load_resume_checkpoint
    from ..train.config import TrainConfig, from_dict

    found = load_resume_checkpoint(out / CHECKPOINT)  # fall-back warnings come when the training resumes
    if found is None:
        return None, ""
    state, path, _ = found
    saved = out / "config.toml"
    data = state.get("config")
    if not isinstance(data, dict) or not data.get("model"):
        raise UsageError(f"{saved} is missing and {path} does not record the run's config",
                         hint=f"restore {saved}, or pass --config FILE with the run's config "
                         f"(or remove {CHECKPOINT} and {PREVIOUS} to start over)")
    try:
        cfg = from_dict(TrainConfig, data)
    except UsageError as exc:
        raise UsageError(f"{saved} is missing and the config recorded in {path} is not valid: {exc.message}",
                         hint=f"restore {saved}, or pass --config FILE with the run's config") from None
    return cfg, (f"{saved} is missing: resuming with the config recorded in {path} "
                 f"(iteration {state.get('iteration', '?')}); it is written back to config.toml")


def train_cmd(
    model: Annotated[str | None, typer.Argument(help="Model to train (see 'sresr models'); with --chain, the chain's.",
                                                show_default=False)] = None,
    chain: Annotated[Path | None, typer.Option("--chain", help="Run (or continue) a chain file of stages "
                                               "(recipes/chains/*.toml): each in --out/STAGE (default runs/).")]
    = None,
    stage: Annotated[str | None, typer.Option("--stage", help="With --chain --print-config: the stage (number or "
                                              "name) to print.")] = None,
    data_dir: Annotated[Path | None, typer.Option("--data-dir", help="A folder with local copies of named datasets "
                                                  "(T91/, BSDS200/...), used instead of downloading them.")] = None,
    data: _Data = None,
    data_lr: _DataLR = None,
    scale: Annotated[int | None, typer.Option("--scale", "-s", min=1, help="Upscaling factor (default: the recipe's).")]
    = None,
    config: Annotated[Path | None, typer.Option("--config", "-c", help="TOML config (full or partial) over the recipe.")]
    = None,
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Run folder (default runs/MODEL-xS).")] = None,
    resume: Annotated[bool, typer.Option("--resume", help="Continue the run in --out from its checkpoint.")] = False,
    recipe: Annotated[str | None, typer.Option("--recipe", help="Recipe name (default: the model's; "
                                                "e.g. srgan-pretrain, fsrcnn-finetune).")] = None,
    init: Annotated[str | None, typer.Option("--init", "--weights", help="Initial weights (.safetensors/.pth, URL or MODEL.TAG).")]
    = None,
    iters: Annotated[int | None, typer.Option("--iters", min=1, help="Total iterations.")] = None,
    batch_size: Annotated[int | None, typer.Option("--batch-size", min=1, help="Global batch size.")] = None,
    patch_size: Annotated[int | None, typer.Option("--patch-size", min=1, help="HR patch size in pixels.")] = None,
    lr: Annotated[float | None, typer.Option("--lr", help="Learning rate.")] = None,
    loss: Annotated[str | None, typer.Option("--loss", help="Pixel loss: l1, mse or charbonnier.")] = None,
    val_data: Annotated[str | None, typer.Option("--val-data", help="Validation dataset or folder (set5).")] = None,
    val_every: Annotated[int | None, typer.Option("--val-every", min=0, help="Validate every N iterations.")] = None,
    seed: Annotated[int | None, typer.Option("--seed", min=0, help="Random seed.")] = None,
    device: Annotated[str | None, typer.Option("--device", help="auto, cpu, cuda, cuda:N or mps.")] = None,
    precision: Annotated[str | None, typer.Option("--precision", help="auto, fp32 (IEEE: TF32 off on CUDA), tf32, bf16 or fp16.")] = None,
    ema: Annotated[float | None, typer.Option("--ema", min=0.0, max=0.99999, help="EMA decay (0 = off).")] = None,
    compile_: Annotated[bool | None, typer.Option("--compile/--no-compile", help="Use torch.compile.")] = None,
    checkpoint_every: Annotated[int | None, typer.Option("--checkpoint-every", min=0, help="Checkpoint every N "
                                                          "iterations.")] = None,
    threads: Annotated[int | None, typer.Option("--threads", min=0, help="torch CPU threads (0 = default).")] = None,
    settings: Annotated[list[str] | None, typer.Option(
        "--set", help="KEY=VALUE for any config key of --print-config (repeatable; the value is read as TOML: "
        "--set optim.lr=1e-3 --set data.augment=false --set model_kwargs.blocks=8).")] = None,
    print_config: Annotated[bool, typer.Option("--print-config", help="Print the full config as TOML and exit.")]
    = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress output.")] = False,
) -> None:
    """Train MODEL with its paper recipe, into a run folder; or the stages of a chain file.

    The run folder gets config.toml, checkpoint.pt, metrics.csv, plots and weights.safetensors.
    Run under torchrun for multi-process DDP."""
    if data_dir is not None:
        import os

        from ..datasets import ENV_DATA_DIR

        if not data_dir.is_dir():
            raise UsageError(f"--data-dir {data_dir} is not a folder")
        os.environ[ENV_DATA_DIR] = str(data_dir.resolve())
    if chain is not None:
        given = [flag for flag, value in (("--scale", scale), ("--config", config), ("--resume", resume or None),
                 ("--recipe", recipe), ("--init", init), ("--iters", iters), ("--batch-size", batch_size),
                 ("--patch-size", patch_size), ("--lr", lr), ("--loss", loss), ("--val-data", val_data),
                 ("--val-every", val_every), ("--seed", seed), ("--ema", ema), ("--compile", compile_),
                 ("--checkpoint-every", checkpoint_every), ("--data", data), ("--data-lr", data_lr))
                 if value is not None]
        if given:
            raise UsageError(f"{given[0]} does not go with --chain: the chain file says how each stage trains",
                             hint="edit the chain file, or pass --set KEY=VALUE to change every stage")
        _run_chain(chain, model, out, stage, print_config, quiet,
                   {"device": device, "precision": precision, "threads": threads}, settings or ())
        return
    if stage is not None:
        raise UsageError("--stage goes with --chain")
    if model is None:
        raise UsageError("no model given", hint="sresr train MODEL (see 'sresr models'), or sresr train --chain FILE")
    overrides: dict[str, Any] = {
        "data.train": tuple(data) if data else None,
        "data.train_lr": tuple(data_lr) if data_lr else None,
        "init_weights": init,
        "iters": iters,
        "data.batch_size": batch_size,
        "data.patch_size": patch_size,
        "optim.lr": lr,
        "loss.pixel": loss,
        "val.data": val_data,
        "val.every": val_every,
        "seed": seed,
        "device": device,
        "precision": precision,
        "ema": ema,
        "compile": compile_,
        "checkpoint_every": checkpoint_every,
        "threads": threads,
    }
    cfg, rundir = build_config(model, scale, recipe, config, out, resume, overrides, settings or ())
    if print_config:
        from ..train.config import dump_toml

        typer.echo(dump_toml(cfg), nl=False)
        return
    from ..train.loop import train

    result = train(cfg, rundir, resume=resume, progress=not quiet, log=(lambda m: None) if quiet else _log,
                   warn=_warn)
    if result.weights is not None:
        console.print(f"weights: {result.weights}", highlight=False, soft_wrap=True)


def _run_chain(path: Path, model: str | None, out: Path | None, stage: str | None, print_config: bool, quiet: bool,
               overrides: dict[str, Any], settings: Sequence[str]) -> None:
    """``--chain``: print one stage's config, or run the stages (finished ones skipped)."""
    from dataclasses import replace

    from ..train.chain import load_chain, run_chain
    from ..train.config import apply_settings, dump_toml, override

    runs = out if out is not None else Path("runs")
    chain = load_chain(path, runs)
    from ..registry import parse_ref

    if model is not None and parse_ref(model)[0] != chain.model:
        raise UsageError(f"{path} trains '{chain.model}', not '{model}'", hint=f"sresr train --chain {path}")
    changed = []
    for st in chain.stages:
        cfg = apply_settings(override(st.config, {k: v for k, v in overrides.items() if v is not None}), settings)
        cfg.validate()
        changed.append(replace(st, config=cfg))
    chain = replace(chain, stages=tuple(changed))
    if print_config:
        picked = chain.stage(stage if stage is not None else len(chain.stages))
        typer.echo(f"# stage '{picked.name}' of {path} (run folder {runs / picked.name})")
        typer.echo(dump_toml(picked.config), nl=False)
        return
    if stage is not None:
        raise UsageError("--stage goes with --print-config", hint="a chain runs all its stages in order")
    results = run_chain(chain, runs, progress=not quiet, log=(lambda m: None) if quiet else _log, warn=_warn)
    last = runs / chain.stages[-1].name / "weights.safetensors"
    if results or last.is_file():
        console.print(f"weights: {last}", highlight=False, soft_wrap=True)


def _log(msg: str) -> None:
    console.print(msg, highlight=False, soft_wrap=True)


def _warn(msg: str) -> None:
    """One ``warning:`` line on stderr, also with --quiet."""
    from rich.markup import escape

    err_console.print(f"[yellow]warning:[/yellow] {escape(msg)}", highlight=False, soft_wrap=True)


_ = DeviceOpt  # the shared alias documents the same values
