"""The training loop: resumable bit-exactly, DDP through torchrun's environment, AMP, EMA.

Layout of a run folder (RUNDIR):
  config.toml         the full typed config of the run
  checkpoint.pt       model, optimiser(s), scheduler(s), EMA, GradScaler, RNG states, iteration, config
                      (written atomically, with a sha256 of its content: see sresr.train.checkpoint)
  checkpoint.prev.pt  the checkpoint before it, resumed from when checkpoint.pt is damaged
  metrics.csv         one row per log interval and per validation
  loss.png, val_psnr.png   plots
  weights.safetensors the final weights (the EMA's when EMA is on), usable as --weights
"""

from __future__ import annotations

import copy
import csv
import fnmatch
import inspect
import json
import math
import random
import signal
import sys
import time
import warnings
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import torch
from torch import nn

from ..errors import SresrError, UsageError, WeightsError
from ..registry import get_spec
from ..spec import ModelSpec, resolve
from ..atomic import atomic_write
from ..ranks import env_int
from .checkpoint import (  # save/load_checkpoint and CheckpointError are re-exported from here
    CHECKPOINT,
    FORMAT as CHECKPOINT_FORMAT,
    PREVIOUS as PREVIOUS_CHECKPOINT,
    CheckpointError,  # noqa: F401
    _first_line,
    clean_stale_temps as _clean_stale_temps,
    load_checkpoint,  # noqa: F401
    load_resume_checkpoint,
    save_checkpoint,
)
from .config import TrainConfig, save_toml, to_dict
from .data import PatchDataset, load_pairs, make_loader, prepare_pair, read_rgb, resolve_sources
from .losses import (
    VGGPerceptualLoss,
    discriminator_loss,
    generator_adversarial_loss,
    pixel_loss,
)

WEIGHTS = "weights.safetensors"
METRICS = "metrics.csv"
CONFIG = "config.toml"
METRIC_FIELDS = ["iteration", "seconds", "lr", "loss", "loss_pixel", "loss_perceptual", "loss_adv", "loss_d",
                 "val_psnr", "val_ssim"]


class TrainingInterrupted(SresrError):
    """Stopped by SIGINT/SIGTERM after writing a checkpoint."""

    exit_code = 130


@dataclass
class TrainResult:
    rundir: Path
    weights: Path | None
    iterations: int
    seconds: float
    val: dict[str, float] = field(default_factory=dict)
    module: Any = None  # the trained nn.Module (the EMA's when EMA is on), on its device


# -- distributed ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Dist:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world > 1


def init_distributed(device_kind: str) -> tuple[Dist, bool]:
    """From torchrun's env vars (WORLD_SIZE, RANK, LOCAL_RANK); gloo on CPU, nccl on CUDA.
    Returns (dist, whether we created the process group). A variable that is set but not an
    integer is a usage error naming it, even when WORLD_SIZE says one process."""
    world = env_int("WORLD_SIZE", 1)
    rank = env_int("RANK", 0)
    local = env_int("LOCAL_RANK", 0)
    if world <= 1:
        return Dist(), False
    if not 0 <= rank < world or local < 0:
        raise UsageError(f"invalid RANK={rank} / WORLD_SIZE={world} / LOCAL_RANK={local}",
                         hint="run under torchrun, which sets them, or unset them to train in one process")
    import torch.distributed as tdist

    created = False
    if not tdist.is_initialized():
        backend = "nccl" if device_kind == "cuda" else "gloo"
        tdist.init_process_group(backend=backend)
        created = True
    return Dist(rank, world, local), created


def _all_true(flag: bool, dist: Dist) -> bool:
    """Whether any rank raised ``flag`` (a stop request must stop every rank at the same iteration)."""
    if not dist.enabled:
        return flag
    import torch.distributed as tdist

    t = torch.tensor([1.0 if flag else 0.0])
    tdist.all_reduce(t, op=tdist.ReduceOp.MAX)
    return bool(t.item() > 0)


def _barrier(dist: Dist) -> None:
    if dist.enabled:
        import torch.distributed as tdist

        tdist.barrier()


# -- device / precision --------------------------------------------------------------------------


def resolve_device(name: str, dist: Dist) -> torch.device:
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", dist.local_rank % torch.cuda.device_count())
        return torch.device("cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise UsageError(f"device '{name}' requested but CUDA is not available", hint="use --device cpu")
    if name == "cuda" and dist.enabled:
        return torch.device("cuda", dist.local_rank % torch.cuda.device_count())
    try:
        return torch.device(name)
    except RuntimeError:
        raise UsageError(f"unknown device '{name}'", hint="auto, cpu, cuda, cuda:N or mps") from None


def resolve_precision(precision: str, device: torch.device, spec: ModelSpec | None) -> torch.dtype | None:
    """The autocast dtype, or None for fp32."""
    if precision == "fp32":
        return None
    if precision == "auto":
        if device.type != "cuda":
            return None
        if spec is not None and not spec.supports_bf16:
            return None
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else None
    if precision == "fp16":
        if device.type != "cuda":
            raise UsageError("fp16 training needs a CUDA device", hint="use --precision fp32 (or bf16) on CPU")
        return torch.float16
    if precision == "bf16":
        return torch.bfloat16
    raise UsageError(f"unknown precision '{precision}'", hint="auto, fp32, bf16 or fp16")


# -- model ---------------------------------------------------------------------------------------


def build_model(cfg: TrainConfig, spec: ModelSpec | None = None) -> tuple[nn.Module, ModelSpec]:
    spec = spec if spec is not None else get_spec(cfg.model)
    scale = cfg.scale
    if spec.input == "upsampled" and cfg.data.scales:
        scale = max(s for s in spec.scales) if cfg.scale not in spec.scales else cfg.scale
    module = spec.build(scale, **dict(cfg.model_kwargs))
    if sum(p.numel() for p in module.parameters()) == 0:
        raise UsageError(f"model '{spec.name}' has no trainable parameters", hint="pick a network, not bicubic")
    return module, spec


def build_discriminator(cfg: TrainConfig) -> nn.Module:
    """The discriminator ``cfg.gan`` names. A factory that takes ``input_size`` gets the HR patch
    size unless the config sets it; a patch it cannot take (or a set size that differs from the
    patch) is a usage error here, before training, not a crash at the first iteration."""
    try:
        factory = resolve(cfg.gan.discriminator)
    except (ImportError, AttributeError, ValueError) as exc:
        raise UsageError(f"cannot load the discriminator '{cfg.gan.discriminator}': {exc}",
                         hint="gan.discriminator must be 'module:attr' of a discriminator factory") from None
    kwargs = dict(cfg.gan.discriminator_kwargs)
    try:
        takes_size = "input_size" in inspect.signature(factory).parameters
    except (TypeError, ValueError):
        takes_size = False
    if takes_size:
        size = kwargs.setdefault("input_size", cfg.data.patch_size)
        if size != cfg.data.patch_size:
            raise UsageError(f"the discriminator takes {size}x{size} patches, the training patches are "
                             f"{cfg.data.patch_size}x{cfg.data.patch_size}",
                             hint="drop gan.discriminator_kwargs.input_size (it follows the patch size) or change "
                             "--patch-size")
    try:
        return factory(**kwargs)
    except (TypeError, ValueError) as exc:
        raise UsageError(f"the discriminator {cfg.gan.discriminator} cannot be built with {kwargs}: {exc}",
                         hint="check --patch-size and gan.discriminator_kwargs") from None


def _read_init_state(init: str, cfg: TrainConfig) -> tuple[dict[str, torch.Tensor], dict[str, Any] | None]:
    """The tensors of ``init`` and the model kwargs they were built with (None when not recorded).

    A file is read as ``--weights`` reads one (:func:`sresr.models._layouts.read_checkpoint`: pickles
    only through ``torch.load(weights_only=True)``, so no code from the file runs; the same wrapper
    keys and prefixes unwrapped); any file it cannot read is a one-line error naming it. Otherwise
    ``MODEL.TAG`` names a registered variant."""
    from ..models._layouts import read_checkpoint
    from ..weights import _registered, _weights_file

    path = Path(init).expanduser()
    if path.is_file():
        kwargs = None
        if path.suffix.lower() == ".safetensors":
            made_by_sresr = _weights_file(path, init)  # None for a foreign file
            kwargs = dict(made_by_sresr.kwargs) if made_by_sresr else None
        try:
            with warnings.catch_warnings():  # torch.load's pickle-protocol warnings: the error says it
                warnings.simplefilter("ignore")
                return read_checkpoint(path), kwargs
        except SresrError:
            raise
        except Exception as exc:  # a file that is not a checkpoint at all (e.g. text: torch.load's KeyError)
            raise WeightsError(f"initial weights {init}: not a readable checkpoint ({_first_line(exc)})",
                               hint="give a .safetensors/.pth file or MODEL.TAG") from None
    if path.exists():
        raise WeightsError(f"initial weights {init} is not a file", hint="give a .safetensors/.pth file or MODEL.TAG")
    # MODEL.TAG: tested by registration, not by the look of the name (Path("fsrcnn.x2").suffix is ".x2")
    if "." in init and _registered(init):
        from ..weights import load_model

        loaded = load_model(init, None)
        return dict(loaded.module.state_dict()), dict(loaded.kwargs)
    raise WeightsError(f"initial weights not found: {init}",
                       hint="give a .safetensors/.pth file or MODEL.TAG (set init_weights = \"\" to start from scratch)")


def _factory_defaults(spec: ModelSpec) -> dict[str, Any]:
    try:
        params = inspect.signature(resolve(spec.factory)).parameters.values()
    except (TypeError, ValueError):
        return {}
    return {p.name: p.default for p in params if p.default is not inspect.Parameter.empty}


def apply_init(module: nn.Module, cfg: TrainConfig, log: Callable[[str], None],
               spec: ModelSpec | None = None) -> set[str]:
    """Copy tensors from ``cfg.init_weights`` where names and shapes match; return the names loaded.
    Logs a note when the weights record other model kwargs than this run builds with (FSRCNN's
    ``deconv_padding``, say): same-shaped tensors then load but mean something else."""
    if not cfg.init_weights:
        return set()
    state, init_kwargs = _read_init_state(cfg.init_weights, cfg)
    if init_kwargs is not None and spec is not None:
        defaults = _factory_defaults(spec)
        theirs = {**defaults, **init_kwargs}
        ours = {**defaults, **dict(cfg.model_kwargs)}
        for key in sorted(set(theirs) | set(ours)):
            if key != "scale" and theirs.get(key) != ours.get(key):
                log(f"note: {cfg.init_weights} was built with {key}={theirs.get(key)!r}, this run builds "
                    f"{key}={ours.get(key)!r} (tensors of the same shape load as they are)")
    own = module.state_dict()
    loaded: set[str] = set()
    with torch.no_grad():
        for name, tensor in own.items():
            src = state.get(name)
            if src is not None and tuple(src.shape) == tuple(tensor.shape):
                tensor.copy_(src.to(tensor.dtype))
                loaded.add(name)
    if not loaded:
        raise WeightsError(f"no tensor of {cfg.init_weights} matches model '{cfg.model}'",
                           hint="initial weights must come from the same architecture")
    log(f"initialised {len(loaded)}/{len(own)} tensors from {cfg.init_weights}")
    return loaded


def _last_prefix(module: nn.Module) -> str:
    last = ""
    for mname, m in module.named_modules():
        if any(True for _ in m.parameters(recurse=False)):
            last = mname
    return last


def _names_hint(module: nn.Module) -> str:
    names = [n for n, _ in module.named_parameters()]
    return "parameter names: " + ", ".join(names[:12]) + (" ..." if len(names) > 12 else "")


def match_parameters(module: nn.Module, pattern: str, loaded: set[str] | frozenset[str] = frozenset()) -> set[str]:
    """Parameter names selected by one pattern: an fnmatch pattern, ``@new`` (not loaded from
    init_weights) or ``@last`` (the parameters of the last module that has parameters)."""
    names = [n for n, _ in module.named_parameters()]
    if pattern == "@new":
        return {n for n in names if n not in loaded}
    if pattern == "@last":
        last = _last_prefix(module)
        return {n for n in names if n.rpartition(".")[0] == last}
    return {n for n in names if fnmatch.fnmatchcase(n, pattern)}


def apply_trainable(module: nn.Module, patterns: tuple[str, ...], loaded: set[str]) -> list[str]:
    """Freeze every parameter that no pattern selects (see :func:`match_parameters`)."""
    names = [n for n, _ in module.named_parameters()]
    if not patterns:
        return names
    selected: set[str] = set()
    for pat in patterns:
        selected |= match_parameters(module, pat, loaded)
    if not selected:
        raise UsageError(f"trainable patterns {list(patterns)} select no parameter", hint=_names_hint(module))
    for n, p in module.named_parameters():
        p.requires_grad_(n in selected)
    return [n for n in names if n in selected]


def parameter_groups(module: nn.Module, lr: float, lr_scale: Mapping[str, float]) -> list[dict[str, Any]]:
    """Trainable parameters split into optimizer groups by ``optim.lr_scale`` (first matching key
    wins); the group at the base rate comes first, so ``param_groups[0]["lr"]`` is the base lr."""
    trainable = [(n, p) for n, p in module.named_parameters() if p.requires_grad]
    scale_of: dict[str, float] = {}
    for pattern, mult in lr_scale.items():
        hits = match_parameters(module, pattern)
        if not hits:
            raise UsageError(f"optim.lr_scale key '{pattern}' matches no parameter", hint=_names_hint(module))
        for n in hits:
            scale_of.setdefault(n, float(mult))
    groups: dict[float, list[nn.Parameter]] = {1.0: []}
    for n, p in trainable:
        groups.setdefault(scale_of.get(n, 1.0), []).append(p)
    return [{"params": ps, "lr": lr * mult} for mult, ps in groups.items() if ps]


# -- optimisation ----------------------------------------------------------------------------------


def make_optimizer(params: list[nn.Parameter] | list[dict[str, Any]], name: str, lr: float, betas: tuple[float, float] = (0.9, 0.999),
                   eps: float = 1e-8, momentum: float = 0.9, weight_decay: float = 0.0) -> torch.optim.Optimizer:
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay)
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay)
    raise UsageError(f"unknown optimizer '{name}'", hint="adam or sgd")


def make_scheduler(opt: torch.optim.Optimizer, cfg: TrainConfig) -> torch.optim.lr_scheduler.LRScheduler:
    s = cfg.schedule
    sched = torch.optim.lr_scheduler
    if s.name == "constant":
        return sched.MultiStepLR(opt, milestones=[], gamma=1.0)
    if s.name == "step":
        return sched.StepLR(opt, step_size=s.step_size, gamma=s.gamma)
    if s.name == "multistep":
        return sched.MultiStepLR(opt, milestones=list(s.milestones), gamma=s.gamma)
    if s.name == "cosine":
        return sched.CosineAnnealingLR(opt, T_max=cfg.iters, eta_min=s.eta_min)
    raise UsageError(f"unknown schedule '{s.name}'")


def clip_gradients(params: list[nn.Parameter], cfg: TrainConfig, lr: float) -> None:
    o = cfg.optim
    if o.grad_clip <= 0:
        return
    if o.grad_clip_mode == "norm":
        torch.nn.utils.clip_grad_norm_(params, o.grad_clip)
    elif o.grad_clip_mode == "value":
        torch.nn.utils.clip_grad_value_(params, o.grad_clip)
    else:  # VDSR's adjustable clipping: [-theta/lr, theta/lr]
        torch.nn.utils.clip_grad_value_(params, o.grad_clip / max(lr, 1e-12))


class EMA:
    """Exponential moving average of a module's parameters and buffers."""

    def __init__(self, module: nn.Module, decay: float):
        self.decay = decay
        self.module = copy.deepcopy(module).eval()
        for p in self.module.parameters():
            p.requires_grad_(False)

    @torch.no_grad()
    def update(self, module: nn.Module) -> None:
        src = module.state_dict()
        for name, t in self.module.state_dict().items():
            s = src[name]
            if t.dtype.is_floating_point:
                t.lerp_(s.to(t.dtype), 1.0 - self.decay)
            else:
                t.copy_(s)


# -- validation ------------------------------------------------------------------------------------


@dataclass
class ValImage:
    name: str
    inp: torch.Tensor  # 1xCxhxw model input
    hr: np.ndarray  # HxWx3 (or HxW for grayscale) uint8, mod-cropped


def load_val_images(cfg: TrainConfig, scale: int, colorspace: str, upsampled: bool) -> list[ValImage]:
    """The validation set with the standard protocol: modcrop, MATLAB bicubic LR rounded to uint8."""
    from PIL import Image

    paths = resolve_sources([cfg.val.data])
    if cfg.val.max_images:
        paths = paths[: cfg.val.max_images]
    out = []
    for p in paths:
        rgb = read_rgb(p)
        with Image.open(p) as im:
            gray = im.mode in ("L", "I;16", "I;16B", "I;16L", "I")
        hr = rgb[: rgb.shape[0] - rgb.shape[0] % scale, : rgb.shape[1] - rgb.shape[1] % scale]
        if gray and colorspace == "y":  # a gray image is its own luma
            pair = prepare_pair(p.name, rgb, scale, "rgb", upsampled)
            inp = torch.from_numpy(np.ascontiguousarray(pair.inp[:1]))
        else:
            pair = prepare_pair(p.name, rgb, scale, colorspace, upsampled)
            inp = torch.from_numpy(np.ascontiguousarray(pair.inp))
        inp = inp.float() / 255.0 if inp.dtype == torch.uint8 else inp.float()
        out.append(ValImage(p.name, inp.unsqueeze(0), np.ascontiguousarray(hr[..., 0] if gray else hr)))
    return out


@torch.no_grad()
def validate(module: nn.Module, images: list[ValImage], scale: int, colorspace: str, device: torch.device
             ) -> dict[str, float]:
    """Mean PSNR/SSIM with the standard protocol (sresr.metrics: Y, border = scale, SR rounded to uint8)."""
    from ..metrics import Protocol, mean_scores, score

    was_training = module.training
    module.eval()
    scores = []
    try:
        for im in images:
            sr = module(im.inp.to(device)).float().cpu()
            h, w = im.hr.shape[:2]
            arr = (sr[0, :, :h, :w] * 255.0).permute(1, 2, 0).double().numpy()
            scores.append(score(arr, im.hr, scale, Protocol(), sr_is_y=(colorspace == "y" and im.hr.ndim == 3)))
    finally:
        module.train(was_training)
    m = mean_scores(scores)
    return {"psnr": m.psnr, "ssim": m.ssim}


# -- checkpoints -------------------------------------------------------------------------------------


def _rng_state() -> dict[str, Any]:
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


def _set_rng_state(state: dict[str, Any]) -> None:
    py = state["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    n = state["numpy"]
    np.random.set_state((n[0], n[1].numpy().astype(np.uint32), n[2], n[3], n[4]))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


# -- metrics, plots, progress -------------------------------------------------------------------------


class MetricsLog:
    def __init__(self, path: Path, resume_at: int | None):
        self.path = path
        if resume_at is not None and path.exists():
            rows = self.read(path)
            keep = [r for r in rows if int(float(r["iteration"])) <= resume_at]
            self._write_all(keep)
        elif not path.exists() or resume_at is None:
            self._write_all([])

    @staticmethod
    def read(path: Path) -> list[dict[str, str]]:
        if not path.exists():
            return []
        with open(path, newline="") as fh:
            return list(csv.DictReader(fh))

    def _write_all(self, rows: list[dict[str, Any]]) -> None:
        def write(tmp: Path) -> None:
            with open(tmp, "w", newline="") as fh:
                w = csv.DictWriter(fh, fieldnames=METRIC_FIELDS)
                w.writeheader()
                for r in rows:
                    w.writerow({k: r.get(k, "") for k in METRIC_FIELDS})

        atomic_write(self.path, write)

    def append(self, row: dict[str, Any]) -> None:
        with open(self.path, "a", newline="") as fh:
            csv.DictWriter(fh, fieldnames=METRIC_FIELDS).writerow({k: _fmt(row.get(k)) for k in METRIC_FIELDS})


def _fmt(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return f"{v:.8g}"
    return str(v)


def write_plots(rundir: Path) -> None:
    from .plot import line_plot

    rows = MetricsLog.read(rundir / METRICS)
    loss = [(float(r["iteration"]), float(r["loss"])) for r in rows if r.get("loss")]
    val = [(float(r["iteration"]), float(r["val_psnr"])) for r in rows if r.get("val_psnr")]
    if loss:
        line_plot(loss, rundir / "loss.png", title="training loss", ylabel="loss", log_y=True)
    if val:
        line_plot(val, rundir / "val_psnr.png", title="validation PSNR (Y, dB)", ylabel="dB")


class Progress:
    """A rich progress bar on a TTY; otherwise a plain line every ``every`` iterations."""

    def __init__(self, total: int, start: int, enabled: bool, log: Callable[[str], None]):
        self.total, self.start_it, self.log = total, start, log
        self.t0 = time.perf_counter()
        self.bar = None
        self.every = max(1, total // 20)
        self.fields = {"loss": float("nan"), "psnr": float("nan")}
        if enabled and sys.stderr.isatty():
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn, TimeRemainingColumn
            from rich.progress import Progress as RichProgress

            self.bar = RichProgress(
                TextColumn("[bold]train"), BarColumn(), MofNCompleteColumn(),
                TextColumn("{task.fields[status]}"),
                TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(),
                console=Console(stderr=True), transient=False,
            )
            self.bar.start()
            self.task = self.bar.add_task("train", total=total, completed=start, status="")
        self.quiet = not enabled

    def rate(self, it: int) -> float:
        dt = time.perf_counter() - self.t0
        return (it - self.start_it) / dt if dt > 0 else 0.0

    def status(self, rate: float) -> str:
        """``loss L  val P dB  R it/s``, leaving out what is not known yet (no loss before the first log)."""
        loss, psnr = self.fields["loss"], self.fields["psnr"]
        parts = [f"loss {loss:.4g}" if not math.isnan(loss) else "",
                 f"val {psnr:.2f} dB" if not math.isnan(psnr) else "", f"{rate:.1f} it/s"]
        return "  ".join(p for p in parts if p)

    def update(self, it: int, loss: float | None = None, psnr: float | None = None) -> None:
        if loss is not None:
            self.fields["loss"] = loss
        if psnr is not None:
            self.fields["psnr"] = psnr
        rate = self.rate(it)
        if self.bar is not None:
            self.bar.update(self.task, completed=it, status=self.status(rate))
        elif not self.quiet and (it % self.every == 0 or it == self.total or psnr is not None):
            eta = (self.total - it) / rate if rate > 0 else float("nan")
            self.log(f"it {it}/{self.total}  {self.status(rate)}  ETA {_hms(eta)}")

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()


def _hms(s: float) -> str:
    if not math.isfinite(s):
        return "?"
    s = int(s)
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


# -- final weights ----------------------------------------------------------------------------------


def save_weights(module: nn.Module, path: Path, cfg: TrainConfig, spec: ModelSpec, colorspace: str, iterations: int,
                 seconds: float, val: dict[str, float]) -> Path:
    from safetensors.torch import save_file

    state = {k: v.detach().to("cpu").contiguous().clone() for k, v in module.state_dict().items()}
    val_name = Path(cfg.val.data).name.lower() if cfg.val.data else ""
    metadata = {
        "format": "pt",
        "sresr.model": spec.name,
        "sresr.scale": str(cfg.scale),
        "sresr.kwargs": json.dumps(dict(cfg.model_kwargs), sort_keys=True),
        "sresr.colorspace": colorspace,
        "sresr.recipe": cfg.recipe,
        "sresr.iterations": str(iterations),
        "sresr.train_seconds": f"{seconds:.1f}",
        "sresr.seed": str(cfg.seed),
        "sresr.train_data": json.dumps(list(cfg.data.train)),
        "sresr.metrics": json.dumps({f"{val_name}/x{cfg.scale}/{k}": round(v, 4) for k, v in val.items()
                                     if math.isfinite(v)}),
        "sresr.config": json.dumps(to_dict(cfg), sort_keys=True),
    }
    return atomic_write(path, lambda tmp: save_file(state, str(tmp), metadata=metadata))


# -- the loop -------------------------------------------------------------------------------------------


class _StopFlag:
    def __init__(self) -> None:
        self.requested = False
        self._old: dict[int, Any] = {}

    def __enter__(self) -> _StopFlag:
        import threading

        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._old[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        if self.requested:  # second Ctrl-C: stop now
            raise KeyboardInterrupt
        self.requested = True

    def __exit__(self, *exc: Any) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old)


def _default_log(msg: str) -> None:
    print(msg, flush=True)


def train(cfg: TrainConfig, out: str | Path, resume: bool = False, spec: ModelSpec | None = None,
          progress: bool = True, log: Callable[[str], None] | None = None,
          warn: Callable[[str], None] | None = None) -> TrainResult:
    """Train ``cfg`` into the run folder ``out``; continue from its checkpoint when ``resume``.
    ``warn`` gets one-line warnings (a damaged checkpoint resumed from the previous one, say;
    default: ``log`` with a ``warning:`` prefix)."""
    cfg.validate()
    log = log or _default_log
    warn = warn or (lambda msg: log(f"warning: {msg}"))
    rundir = Path(out)
    device_kind = "cuda" if (cfg.device.startswith("cuda") or (cfg.device == "auto" and torch.cuda.is_available())) \
        else "cpu"
    dist, created_group = init_distributed(device_kind)
    # the run folder and the parents this run creates (runs/ for runs/vdsr-x2): removed again when
    # the start fails, so a mistyped command leaves nothing behind
    created = [d for d in (rundir, *rundir.parents) if not d.exists()] if dist.main else []
    try:
        quiet = lambda m: None  # noqa: E731
        return _train(cfg, rundir, resume, spec, progress, log if dist.main else quiet, dist,
                      warn if dist.main else quiet)
    except BaseException:
        if created:
            _remove_if_untrained(rundir, created[1:])
        raise
    finally:
        if created_group:
            import gc

            import torch.distributed as tdist

            # The DDP wrapper sits in reference cycles; collect it while the process group still
            # exists, otherwise its reducer is torn down later against a destroyed group and the
            # process aborts at exit ("terminate called without an active exception").
            gc.collect()
            tdist.destroy_process_group()


def _remove_if_untrained(rundir: Path, parents: Sequence[Path] = ()) -> None:
    """A run folder this run created and that holds nothing of a training (no checkpoint, weights
    or metrics: a start that failed on its data, model or options) is removed, not left empty,
    and so are the ``parents`` this run created, when nothing else is in them."""
    if any((rundir / name).exists() for name in (CHECKPOINT, PREVIOUS_CHECKPOINT, WEIGHTS, METRICS)):
        return
    import shutil

    shutil.rmtree(rundir, ignore_errors=True)
    for parent in parents:  # nearest first
        try:
            parent.rmdir()
        except OSError:
            break  # not empty (or not ours to remove)


def _long_run_warning(cfg: TrainConfig, it: int, start: int, seconds: float, device: torch.device) -> str | None:
    """One line when the iterations left would take more than a day at the speed measured so far."""
    rate = (it - start) / max(seconds, 1e-9)
    left = (cfg.iters - it) / max(rate, 1e-9)
    if left <= 24 * 3600:
        return None
    hour = max(1, int(rate * 3600))
    gpu = " or train on a GPU" if device.type == "cpu" else ""
    return (f"at {rate:.3g} iterations/s on {device.type} the {cfg.iters - it} iterations left take about "
            f"{left / 86400:.1f} days; for a shorter run pass --iters {hour} (about an hour here){gpu}")


def _train(cfg: TrainConfig, rundir: Path, resume: bool, spec: ModelSpec | None, progress: bool,
           log: Callable[[str], None], dist: Dist, warn: Callable[[str], None]) -> TrainResult:
    ckpt_path = rundir / CHECKPOINT
    if dist.main:
        rundir.mkdir(parents=True, exist_ok=True)
        _clean_stale_temps(rundir)
        held = [name for name in (CHECKPOINT, PREVIOUS_CHECKPOINT) if (rundir / name).exists()]
        if held and not resume:
            raise UsageError(f"{rundir} already holds a training run ({held[0]})",
                             hint="pass --resume to continue it, or choose another --out")
    _barrier(dist)
    if cfg.threads > 0:
        torch.set_num_threads(cfg.threads)

    device = resolve_device(cfg.device, dist)
    random.seed(cfg.seed)
    np.random.seed(cfg.seed % 2**32)
    torch.manual_seed(cfg.seed)

    module, spec = build_model(cfg, spec)
    colorspace = spec.colorspace if cfg.data.colorspace == "auto" else cfg.data.colorspace
    upsampled = spec.input == "upsampled"
    loaded = apply_init(module, cfg, log, spec)
    trainable = apply_trainable(module, cfg.trainable, loaded)
    if cfg.trainable:
        log(f"training {len(trainable)} parameter tensor(s): {', '.join(trainable[:6])}"
            + (" ..." if len(trainable) > 6 else ""))
    module.to(device)
    amp_dtype = resolve_precision(cfg.precision, device, spec)
    memory_format = torch.contiguous_format
    if device.type == "cpu" and not cfg.compile:
        # channels_last: oneDNN's faster layout (more samples/s for every built-in model measured here);
        # in fp32, layers in faster forms with the same function and gradients (sresr.train.fast)
        from .fast import training_forms

        forms = training_forms(module) if amp_dtype is None else []
        memory_format = torch.channels_last
        module.to(memory_format=memory_format)
        log("CPU training in channels_last" + (", with " + ", ".join(forms) if forms else ""))

    # data
    scales = tuple(cfg.data.scales) if cfg.data.scales else (cfg.scale,)
    if not upsampled and len(scales) > 1:
        raise UsageError(f"multi-scale training needs a pre-upsampled model; '{spec.name}' takes LR input",
                         hint="set data.scales = [] (train one scale)")
    if not upsampled and any(cfg.data.patch_size % s for s in scales):
        raise UsageError(f"patch size {cfg.data.patch_size} is not a multiple of the scale {cfg.scale}",
                         hint=f"use --patch-size {cfg.data.patch_size // cfg.scale * cfg.scale or cfg.scale}")
    t_load = time.perf_counter()
    paths = resolve_sources(cfg.data.train)
    pairs = load_pairs(paths, scales, colorspace, upsampled, min_hr=cfg.data.patch_size, log=log,
                       resize_factors=cfg.data.resize_factors)
    resized = f" (resized by {', '.join(f'{f:g}' for f in cfg.data.resize_factors)})" if cfg.data.resize_factors else ""
    log(f"training data: {len(pairs[scales[0]])} images{resized} x{'/x'.join(map(str, scales))} "
        f"({time.perf_counter() - t_load:.1f} s to prepare)")
    dataset = PatchDataset(pairs, cfg.data.patch_size, cfg.data.batch_size, cfg.seed, cfg.data.augment, upsampled)
    val_images: list[ValImage] = []
    if dist.main and cfg.val.data and cfg.val.every >= 0:
        val_images = load_val_images(cfg, cfg.scale, colorspace, upsampled)

    # optimisation
    params = [p for p in module.parameters() if p.requires_grad]
    groups = parameter_groups(module, cfg.optim.lr, cfg.optim.lr_scale)
    if len(groups) > 1 or cfg.optim.lr_scale:
        log("learning rates: " + ", ".join(f"{len(g['params'])} tensor(s) at {g['lr']:g}" for g in groups))
    opt = make_optimizer(groups, cfg.optim.name, cfg.optim.lr, cfg.optim.betas, cfg.optim.eps, cfg.optim.momentum,
                         cfg.optim.weight_decay)
    sched = make_scheduler(opt, cfg)
    scaler = torch.amp.GradScaler(device.type, enabled=amp_dtype == torch.float16)
    ema = EMA(module, cfg.ema) if cfg.ema > 0 else None

    crit_pixel = (pixel_loss(cfg.loss.pixel, cfg.loss.charbonnier_eps, cfg.loss.pixel_reduction).to(device)
                  if cfg.loss.pixel_weight else None)
    crit_vgg = None
    if cfg.loss.perceptual_weight:
        crit_vgg = VGGPerceptualLoss(cfg.loss.perceptual_layer, cfg.loss.perceptual_before_activation,
                                     cfg.loss.perceptual_criterion, cfg.loss.vgg_weights).to(device)
    disc = d_opt = d_sched = None
    if cfg.gan.weight:
        disc = build_discriminator(cfg).to(device)
        d_opt = make_optimizer(list(disc.parameters()), "adam", cfg.gan.lr, cfg.gan.betas)
        d_sched = make_scheduler(d_opt, cfg)

    # resume
    start = 0
    elapsed0 = 0.0
    # after a fall-back to checkpoint.prev.pt, the damaged checkpoint.pt must not replace it at the next save
    keep_previous = True
    found = load_resume_checkpoint(ckpt_path, warn) if resume else None
    if found is not None:
        state, resumed_path, fell_back = found
        keep_previous = not fell_back
        module.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        scaler.load_state_dict(state["scaler"])
        if ema is not None and state.get("ema") is not None:
            ema.module.load_state_dict(state["ema"])
        if disc is not None and state.get("disc") is not None:
            disc.load_state_dict(state["disc"])
            d_opt.load_state_dict(state["disc_optimizer"])  # type: ignore[union-attr]
            d_sched.load_state_dict(state["disc_scheduler"])  # type: ignore[union-attr]
        _set_rng_state(state["rng"])
        start = int(state["iteration"])
        elapsed0 = float(state.get("seconds", 0.0))
        log(f"resumed from {resumed_path} at iteration {start}")
    elif resume:
        log(f"nothing to resume in {rundir}: starting from iteration 0")

    if dist.main:
        save_toml(cfg, rundir / CONFIG, header=f"sresr train config (recipe {cfg.recipe or 'custom'})")
    metrics = MetricsLog(rundir / METRICS, start if (resume and start) else None) if dist.main else None

    train_module: nn.Module = module
    if dist.enabled:
        from torch.nn.parallel import DistributedDataParallel as DDP

        train_module = DDP(module, device_ids=[device.index] if device.type == "cuda" else None)
    fwd: Callable[[torch.Tensor], torch.Tensor] = train_module
    if cfg.compile:
        fwd = torch.compile(train_module)  # type: ignore[assignment]

    def checkpoint(it: int, seconds: float) -> None:
        nonlocal keep_previous
        if not dist.main:
            return
        payload = {
            "format": CHECKPOINT_FORMAT,
            "iteration": it,
            "seconds": seconds,
            "samples_seen": it * cfg.data.batch_size,
            "model": module.state_dict(),
            "optimizer": opt.state_dict(),
            "scheduler": sched.state_dict(),
            "scaler": scaler.state_dict(),
            "ema": ema.module.state_dict() if ema is not None else None,
            "disc": disc.state_dict() if disc is not None else None,
            "disc_optimizer": d_opt.state_dict() if d_opt is not None else None,
            "disc_scheduler": d_sched.state_dict() if d_sched is not None else None,
            "rng": _rng_state(),
            "config": to_dict(cfg),
        }
        save_checkpoint(ckpt_path, payload, keep_previous=keep_previous)
        keep_previous = True

    eval_module = ema.module if ema is not None else module
    autocast = (lambda: torch.autocast(device.type, dtype=amp_dtype)) if amp_dtype is not None else nullcontext
    loader = make_loader(dataset, start, cfg.iters, dist.rank, dist.world, cfg.data.workers,
                         cfg.data.pin_memory and device.type == "cuda")
    bar = Progress(cfg.iters, start, progress and dist.main, log)
    sums: dict[str, float] = {}
    count = 0
    last_val: dict[str, float] = {}
    t0 = time.perf_counter()
    it = start
    eta_said = False
    module.train()
    with _StopFlag() as stop:
        try:
            for inp, hr in loader:
                inp = inp.to(device, non_blocking=True, memory_format=memory_format)
                hr = hr.to(device, non_blocking=True, memory_format=memory_format)
                parts: dict[str, float] = {}
                with autocast():
                    sr = fwd(inp)
                    if sr.shape != hr.shape:
                        raise UsageError(f"model output {tuple(sr.shape)} does not match the HR patch "
                                         f"{tuple(hr.shape)}", hint="check the scale and the model's colorspace")
                    loss = sr.new_zeros(())
                    if crit_pixel is not None:
                        lp = crit_pixel(sr.float(), hr)
                        loss = loss + cfg.loss.pixel_weight * lp
                        parts["loss_pixel"] = float(lp.detach())
                    if crit_vgg is not None:
                        lv = crit_vgg(sr.float(), hr)
                        loss = loss + cfg.loss.perceptual_weight * lv
                        parts["loss_perceptual"] = float(lv.detach())
                    if disc is not None:
                        for p in disc.parameters():
                            p.requires_grad_(False)
                        fake_logits = disc(sr)
                        real_logits = disc(hr).detach() if cfg.gan.kind == "ragan" else None
                        la = generator_adversarial_loss(cfg.gan.kind, fake_logits, real_logits)
                        loss = loss + cfg.gan.weight * la
                        parts["loss_adv"] = float(la.detach())
                opt.zero_grad(set_to_none=True)
                scaler.scale(loss).backward()
                scaler.unscale_(opt)
                clip_gradients(params, cfg, opt.param_groups[0]["lr"])
                scaler.step(opt)
                scaler.update()
                if disc is not None:
                    for p in disc.parameters():
                        p.requires_grad_(True)
                    with autocast():
                        ld = discriminator_loss(cfg.gan.kind, disc(hr), disc(sr.detach()))
                    d_opt.zero_grad(set_to_none=True)  # type: ignore[union-attr]
                    ld.backward()
                    d_opt.step()  # type: ignore[union-attr]
                    d_sched.step()  # type: ignore[union-attr]
                    parts["loss_d"] = float(ld.detach())
                lr_now = opt.param_groups[0]["lr"]
                sched.step()
                if ema is not None:
                    ema.update(module)
                it += 1
                if not eta_said and (it - start >= 20 or time.perf_counter() - t0 > 30):
                    eta_said = True
                    long_run = _long_run_warning(cfg, it, start, time.perf_counter() - t0, device)
                    if long_run:
                        warn(long_run)
                loss_v = float(loss.detach())
                if not math.isfinite(loss_v):
                    raise SresrError(f"the loss became {loss_v} at iteration {it}",
                                     hint="lower --lr, enable gradient clipping, or use --precision fp32")
                sums["loss"] = sums.get("loss", 0.0) + loss_v
                for k, v in parts.items():
                    sums[k] = sums.get(k, 0.0) + v
                count += 1
                seconds = elapsed0 + time.perf_counter() - t0
                do_val = bool(val_images) and ((cfg.val.every and it % cfg.val.every == 0) or it == cfg.iters)
                row: dict[str, Any] | None = None
                if it % max(1, cfg.log_every) == 0 or it == cfg.iters or do_val:
                    row = {"iteration": it, "seconds": round(seconds, 3), "lr": lr_now,
                           **{k: v / count for k, v in sums.items()}}
                    sums, count = {}, 0
                if do_val:
                    last_val = validate(eval_module, val_images, cfg.scale, colorspace, device)
                    assert row is not None
                    row["val_psnr"] = last_val["psnr"]
                    row["val_ssim"] = last_val["ssim"]
                if row is not None and metrics is not None:
                    metrics.append(row)
                    if do_val:
                        write_plots(rundir)
                bar.update(it, loss=row["loss"] if row else None, psnr=last_val.get("psnr") if do_val else None)
                if cfg.checkpoint_every and it % cfg.checkpoint_every == 0 and it < cfg.iters:
                    checkpoint(it, seconds)
                    _barrier(dist)
                if _all_true(stop.requested, dist):
                    checkpoint(it, seconds)
                    _barrier(dist)
                    raise TrainingInterrupted(
                        f"training interrupted at iteration {it}/{cfg.iters}; checkpoint saved in {ckpt_path}",
                        hint=f"continue with: sresr train {cfg.model} --out {rundir} --resume",
                    )
        finally:
            bar.close()

    seconds = elapsed0 + time.perf_counter() - t0
    weights = rundir / WEIGHTS if dist.main else None
    if it == start and (rundir / WEIGHTS).exists():  # resumed a finished run: nothing to do
        log(f"{rundir} is already trained to iteration {it}; weights: {rundir / WEIGHTS}")
        return TrainResult(rundir, weights, it, seconds, {}, eval_module)
    checkpoint(it, seconds)
    if dist.main:
        weights = save_weights(eval_module, rundir / WEIGHTS, cfg, spec, colorspace, it, seconds, last_val)
        write_plots(rundir)
        log(f"done: {it} iterations in {_hms(seconds)}"
            + (f", {cfg.val.data} x{cfg.scale} PSNR {last_val['psnr']:.2f} dB" if "psnr" in last_val else "")
            + f"; weights: {weights}")
    _barrier(dist)
    return TrainResult(rundir, weights, it, seconds, last_val, eval_module)
