"""Training checkpoints: written atomically, checksummed, and the previous one kept.

Files in a run folder:
  checkpoint.pt        the newest checkpoint
  checkpoint.prev.pt   the one written before it

Checksum. A checkpoint is the ``torch.save`` of the payload dict (model, optimiser(s), scheduler(s),
EMA, GradScaler, RNG states, iteration, config: see :mod:`sresr.train.loop`) with one more top-level
entry, ``"sha256"``: the SHA-256 of the payload's *content* (:func:`payload_digest`: the nested
dicts, lists and tuples walked in order; strings, numbers, booleans and None by type and ``repr``;
tensors by dtype, shape and raw bytes). Why this scheme:

* torch.load does not check the CRCs of the zip records it reads, so a flipped byte inside a
  tensor's storage loads silently into other weights. Hashing the loaded *values* catches every
  damage that matters: a flipped byte either makes torch.load fail, or changes a value (and so the
  digest), or lands where it changes nothing that is loaded.
* The digest travels inside the file it covers: no sidecar to keep in step with the checkpoint
  through renames and crashes, and the payload keeps its top-level keys (``checkpoint["model"]``
  reads as before).

Format ``sresr-train-checkpoint-2`` always carries the digest. Older checkpoints
(``sresr-train-checkpoint-1``, no ``"sha256"``) still load so that no run is lost; the resume says
that they carry no checksum.

Writing (:func:`save_checkpoint`). The new file is written to a temp file in the run folder and
fsynced; just before it is renamed over ``checkpoint.pt`` (:func:`sresr.atomic.atomic_write`), the
current ``checkpoint.pt`` is hard-linked to a temp name that is renamed over ``checkpoint.prev.pt``
(copied where the file system has no hard links). So ``checkpoint.pt`` exists at every moment, and a
crash leaves the previous pair or the new one, plus at most a temp file that the next run removes.

Reading on resume (:func:`load_resume_checkpoint`). ``checkpoint.pt`` is loaded and verified; when it
is missing, unreadable or fails its checksum, ``checkpoint.prev.pt`` is, with a one-line warning that
names both files and the iteration resumed from. When neither is good, :class:`CheckpointError`
names each file and why (exit code 1). After such a fallback the damaged ``checkpoint.pt`` is not
rotated into ``checkpoint.prev.pt`` (the loop passes ``keep_previous=False`` to its next save).
"""

from __future__ import annotations

import hashlib
import os
import random
import shutil
import warnings
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np
import torch

from ..atomic import TEMP_SUFFIX, atomic_write, make_temp
from ..errors import SresrError

CHECKPOINT = "checkpoint.pt"
PREVIOUS = "checkpoint.prev.pt"
FORMAT = "sresr-train-checkpoint-2"
LEGACY_FORMATS = ("sresr-train-checkpoint-1",)
DIGEST_KEY = "sha256"


class CheckpointError(SresrError):
    """A training checkpoint that cannot be read or fails its checksum (exit code 1)."""


# -- checksum ------------------------------------------------------------------------------------


def _feed(h: Any, obj: Any) -> None:
    if isinstance(obj, torch.Tensor):
        t = obj.detach()
        h.update(f"T{str(t.dtype)}{tuple(t.shape)};".encode())
        if t.numel():
            flat = t.to("cpu").resolve_conj().resolve_neg().contiguous().reshape(-1)
            h.update(memoryview(flat.view(torch.uint8).numpy()))
    elif isinstance(obj, Mapping):
        h.update(f"D{len(obj)};".encode())
        for k, v in obj.items():
            _feed(h, k)
            _feed(h, v)
    elif isinstance(obj, (list, tuple)):
        h.update(f"{'L' if isinstance(obj, list) else 'U'}{len(obj)};".encode())
        for v in obj:
            _feed(h, v)
    else:  # str, int, float, bool, None, bytes, torch.dtype...: repr is exact and deterministic for these
        text = repr(obj).encode()
        h.update(f"{type(obj).__name__}{len(text)};".encode() + text)


def payload_digest(payload: Mapping[str, Any]) -> str:
    """SHA-256 (hex) of the payload's content, leaving out its own ``"sha256"`` entry."""
    h = hashlib.sha256()
    _feed(h, {k: v for k, v in payload.items() if k != DIGEST_KEY})
    return h.hexdigest()


# -- writing ---------------------------------------------------------------------------------------


def previous_path(path: Path) -> Path:
    """``checkpoint.pt`` -> ``checkpoint.prev.pt`` (``NAME.EXT`` -> ``NAME.prev.EXT``)."""
    path = Path(path)
    return path.with_name(f"{path.stem}.prev{path.suffix}")


def _keep_previous(path: Path) -> None:
    """Make ``previous_path(path)`` the current ``path`` atomically (hard link, else a copy)."""
    prev = previous_path(path)
    tmp_path = make_temp(prev)
    try:
        tmp_path.unlink()
        try:
            os.link(path, tmp_path)
        except OSError:  # no hard links here (some network/FAT file systems): copy
            shutil.copyfile(path, tmp_path)
        os.replace(tmp_path, prev)
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise


def save_checkpoint(path: Path, payload: Mapping[str, Any], keep_previous: bool = True) -> Path:
    """Write ``payload`` and its digest to ``path`` atomically; the checkpoint it replaces becomes
    ``checkpoint.prev.pt`` unless ``keep_previous`` is False (a damaged one, say)."""
    path = Path(path)
    sealed = dict(payload)
    sealed.pop(DIGEST_KEY, None)
    sealed[DIGEST_KEY] = payload_digest(sealed)

    def write(tmp: Path) -> None:
        torch.save(sealed, tmp)
        if keep_previous and path.is_file():  # after the (slow) write: a crash in it changes nothing
            _keep_previous(path)

    return atomic_write(path, write)


# -- reading ---------------------------------------------------------------------------------------


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0]}" if text else type(exc).__name__


def read_checkpoint(path: Path) -> tuple[dict[str, Any], bool]:
    """The payload of ``path`` and whether it carried a checksum (it is verified when it does).

    Raises :class:`CheckpointError` whose message is the reason alone ("cannot be read (...)",
    "fails its checksum ..."), for the caller to name the file."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            state = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise CheckpointError("is missing") from None
    except Exception as exc:  # torch.load raises many kinds on a damaged zip or pickle
        raise CheckpointError(f"cannot be read ({_first_line(exc)})") from None
    if not isinstance(state, dict):
        raise CheckpointError(f"is not a training checkpoint (it holds a {type(state).__name__})")
    recorded = state.get(DIGEST_KEY)
    if recorded is None:
        if state.get("format") == FORMAT:
            raise CheckpointError(f"has lost its checksum (format {FORMAT} always records one)")
        return state, False
    if payload_digest(state) != recorded:
        raise CheckpointError("fails its sha256 checksum (the file is damaged)")
    return state, True


def load_checkpoint(path: Path) -> dict[str, Any]:
    """One checkpoint file, verified; :class:`CheckpointError` naming it when it is not good."""
    try:
        return read_checkpoint(path)[0]
    except CheckpointError as exc:
        raise CheckpointError(f"checkpoint {path} {exc.message}", hint="delete it to start over, or restore a copy"
                              ) from None


def load_resume_checkpoint(path: Path, warn: Callable[[str], None] | None = None
                           ) -> tuple[dict[str, Any], Path, bool] | None:
    """The newest good checkpoint of ``path`` (``RUN/checkpoint.pt``) or of its previous one:
    ``(payload, file, fell_back)``; None when neither file exists. ``warn`` gets one line when it
    falls back or when the checkpoint carries no checksum."""
    warn = warn or (lambda msg: None)
    path = Path(path)
    prev = previous_path(path)
    if not path.exists() and not prev.exists():
        return None
    reasons: list[tuple[Path, str]] = []
    for candidate in (path, prev):
        if not candidate.exists():
            reasons.append((candidate, "is missing"))
            continue
        try:
            state, checked = read_checkpoint(candidate)
        except CheckpointError as exc:
            reasons.append((candidate, exc.message))
            continue
        if candidate != path:
            warn(f"{path} {reasons[0][1]}; resuming from the previous checkpoint {candidate} at iteration "
                 f"{state.get('iteration', '?')}")
        if not checked:
            warn(f"{candidate} carries no checksum (written by an older sresr): resuming from it unverified")
        return state, candidate, candidate != path
    (p1, r1), (p2, r2) = reasons
    if r2 == "is missing":
        raise CheckpointError(f"cannot resume: {p1} {r1}, and there is no previous checkpoint ({p2.name})",
                              hint=f"restore a copy of {p1.name}, or remove it to start the run over")
    raise CheckpointError(f"cannot resume: {p1} {r1}; {p2} {r2}",
                          hint="restore a copy of either, or remove both to start the run over")


def clean_stale_temps(rundir: Path) -> None:
    """Remove the temp files that a killed writer left in ``rundir``."""
    for p in Path(rundir).glob(".*" + TEMP_SUFFIX):
        try:
            p.unlink()
        except OSError:
            pass


# -- random number generators -----------------------------------------------------------------------


def rng_state() -> dict[str, Any]:
    py = random.getstate()
    np_state = np.random.get_state()
    state: dict[str, Any] = {
        "python": [py[0], list(py[1]), py[2]],
        "numpy": [np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), int(np_state[2]), int(np_state[3]),
                  float(np_state[4])],
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    py = state["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    n = state["numpy"]
    np.random.set_state((n[0], n[1].numpy().astype(np.uint32), n[2], n[3], n[4]))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


# -- the state a checkpoint holds ----------------------------------------------------------------------


class TrainState:
    """Everything a run's checkpoint holds besides the iteration: the network, its optimiser,
    schedule and GradScaler, the EMA copy, and the discriminator's (for GAN runs). The one
    checkpoint schema: :meth:`payload` writes it, :meth:`restore` reads it."""

    def __init__(self, module: torch.nn.Module, opt: torch.optim.Optimizer, sched: Any, scaler: Any,
                 ema: Any = None, disc: torch.nn.Module | None = None, d_opt: Any = None, d_sched: Any = None):
        self.module, self.opt, self.sched, self.scaler = module, opt, sched, scaler
        self.ema, self.disc, self.d_opt, self.d_sched = ema, disc, d_opt, d_sched

    def payload(self, iteration: int, seconds: float, samples_seen: int, config: Mapping[str, Any]) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "iteration": iteration,
            "seconds": seconds,
            "samples_seen": samples_seen,
            "model": self.module.state_dict(),
            "optimizer": self.opt.state_dict(),
            "scheduler": self.sched.state_dict(),
            "scaler": self.scaler.state_dict(),
            "ema": self.ema.module.state_dict() if self.ema is not None else None,
            "disc": self.disc.state_dict() if self.disc is not None else None,
            "disc_optimizer": self.d_opt.state_dict() if self.d_opt is not None else None,
            "disc_scheduler": self.d_sched.state_dict() if self.d_sched is not None else None,
            "rng": rng_state(),
            "config": dict(config),
        }

    def restore(self, state: Mapping[str, Any]) -> tuple[int, float]:
        """Load a payload; return (iteration, seconds trained so far)."""
        self.module.load_state_dict(state["model"])
        self.opt.load_state_dict(state["optimizer"])
        self.sched.load_state_dict(state["scheduler"])
        self.scaler.load_state_dict(state["scaler"])
        if self.ema is not None and state.get("ema") is not None:
            self.ema.module.load_state_dict(state["ema"])
        if self.disc is not None and state.get("disc") is not None:
            self.disc.load_state_dict(state["disc"])
            self.d_opt.load_state_dict(state["disc_optimizer"])
            self.d_sched.load_state_dict(state["disc_scheduler"])
        set_rng_state(state["rng"])
        return int(state["iteration"]), float(state.get("seconds", 0.0))
