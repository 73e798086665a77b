"""The training recipe as typed, frozen dataclasses, with TOML load/save and CLI overrides.

torch-free: the CLI prints and saves configs without importing torch.

A config file may be partial: every key it sets replaces the recipe default, everything else
keeps the recipe's value. ``dump_toml(load_toml(text))`` round-trips exactly.
"""

from __future__ import annotations

import json
import math
import tomllib
from dataclasses import dataclass, field, fields, is_dataclass, replace
from pathlib import Path
from typing import Any, Mapping, Sequence, get_args, get_origin, get_type_hints

from ..errors import UsageError


@dataclass(frozen=True)
class DataConfig:
    """Training patches.

    ``train``: dataset names or folders of HR images (several are concatenated).
    ``train_lr``: folders of the user's own LR images, paired with ``train``'s HR images by name
    (``--data-lr``); empty: the LR is made with MATLAB bicubic (the protocol's degradation). Paired
    data trains ``scale`` alone, without ``scales`` or ``resize_factors`` (which would unpair it).
    ``patch_size``: HR patch side in pixels (the LR patch is ``patch_size // scale``; for
    pre-upsampled models any size works). ``batch_size`` is the *global* batch (split over DDP ranks).
    ``colorspace``: ``auto`` (the model's), ``y`` or ``rgb``. ``scales``: several scales for
    multi-scale training (one scale per iteration, VDSR); empty means the run's scale.
    ``resize_factors``: scale augmentation (FSRCNN, VDSR): every HR image is also used resized by
    each factor with MATLAB bicubic before its LR is made, e.g. ``[1.0, 0.9, 0.8, 0.7, 0.6]``;
    empty means the originals only (``[1.0]``).
    """

    train: tuple[str, ...] = ()
    train_lr: tuple[str, ...] = ()
    patch_size: int = 48
    batch_size: int = 16
    augment: bool = True  # random h/v flips and 90-degree rotations
    colorspace: str = "auto"
    scales: tuple[int, ...] = ()
    resize_factors: tuple[float, ...] = ()
    workers: int = 0  # unused: batches are made on the training device (kept so older configs load)
    pin_memory: bool = True  # unused, as workers


@dataclass(frozen=True)
class OptimConfig:
    """``name``: adam or sgd. ``grad_clip``: 0 = off; ``grad_clip_mode``: ``norm`` (global norm),
    ``value`` (element-wise), or ``adjustable`` (VDSR: clip each gradient to +-grad_clip/lr).
    ``lr_scale``: learning-rate multipliers per parameter, keyed by fnmatch patterns of parameter
    names or ``@last`` (the last layer), e.g. ``{"last_part.*" = 0.1}`` (FSRCNN's deconvolution
    learns at a tenth of the rate); the first matching key wins, other parameters use ``lr``."""

    name: str = "adam"
    lr: float = 1e-4
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    momentum: float = 0.9
    weight_decay: float = 0.0
    grad_clip: float = 0.0
    grad_clip_mode: str = "norm"
    lr_scale: Mapping[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class ScheduleConfig:
    """``name``: constant, step (every ``step_size`` iterations times ``gamma``), multistep
    (at ``milestones``), cosine (to ``eta_min`` at the last iteration)."""

    name: str = "constant"
    step_size: int = 0
    milestones: tuple[int, ...] = ()
    gamma: float = 0.5
    eta_min: float = 0.0


@dataclass(frozen=True)
class LossConfig:
    """Generator loss = pixel_weight * pixel + perceptual_weight * VGG + gan.weight * adversarial.

    ``pixel``: l1, mse or charbonnier. ``pixel_reduction``: ``mean`` (over every pixel of the
    batch) or ``sum`` (over each sample's pixels and channels, then the mean over the batch: the
    Euclidean loss of the Caffe/MatConvNet-era papers, SRCNN and VDSR, whose learning rates and
    gradient clipping assume it; with ``pixel_weight = 0.5`` it is Caffe's EuclideanLoss).
    ``perceptual_layer``: a VGG19 layer such as ``conv5_4``
    (features taken before the ReLU when ``perceptual_before_activation``); ``vgg_weights``: a
    local file with torchvision VGG19 weights (otherwise torchvision's download/cache is used)."""

    pixel: str = "l1"
    pixel_weight: float = 1.0
    pixel_reduction: str = "mean"
    charbonnier_eps: float = 1e-3
    perceptual_weight: float = 0.0
    perceptual_layer: str = "conv5_4"
    perceptual_before_activation: bool = True
    perceptual_criterion: str = "mse"
    vgg_weights: str = ""


@dataclass(frozen=True)
class GanConfig:
    """Adversarial training (off when ``weight`` is 0).

    ``kind``: vanilla (SRGAN) or ragan (relativistic average, ESRGAN). ``discriminator``:
    ``module:attr`` of a factory called with ``discriminator_kwargs``."""

    weight: float = 0.0
    kind: str = "vanilla"
    discriminator: str = "sresr.models.discriminators:VGGStyleDiscriminator"
    discriminator_kwargs: Mapping[str, Any] = field(default_factory=dict)
    lr: float = 1e-4
    betas: tuple[float, float] = (0.9, 0.999)


@dataclass(frozen=True)
class ValConfig:
    """Validation with the standard protocol (Y PSNR, border = scale) on a named dataset or folder."""

    data: str = "set5"
    every: int = 1000
    max_images: int = 0  # 0 = all


@dataclass(frozen=True)
class TrainConfig:
    model: str = ""
    scale: int = 4
    recipe: str = ""
    model_kwargs: Mapping[str, Any] = field(default_factory=dict)
    iters: int = 1000
    seed: int = 0
    init_weights: str = ""  # MODEL.TAG or a .safetensors file; loaded where shapes match
    # "module:attr": f(state, kwargs, scale) -> (state, kwargs), applied to init_weights before they load
    # (e.g. "sresr.models.fsrcnn.arch:center_init": FSRCNN's transposed conv moved to the centred padding)
    init_transform: str = ""
    trainable: tuple[str, ...] = ()  # fnmatch patterns of parameter names; "@new": not in init_weights
    ema: float = 0.0  # EMA decay, 0 = off (final weights are the EMA's when on)
    device: str = "auto"
    precision: str = "auto"  # auto (fp32 on CPU, bf16 on GPU when the model allows), fp32, tf32, bf16, fp16
    compile: bool = False
    checkpoint_every: int = 500
    log_every: int = 10
    threads: int = 0  # torch intra-op threads, 0 = torch's default
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    gan: GanConfig = field(default_factory=GanConfig)
    val: ValConfig = field(default_factory=ValConfig)

    def validate(self) -> None:
        """Raise UsageError for values that cannot work."""
        errs: list[str] = []
        if not self.model:
            errs.append("model is empty")
        if self.scale < 1:
            errs.append("scale must be >= 1")
        if self.iters < 1:
            errs.append("iters must be >= 1")
        if self.data.batch_size < 1:
            errs.append("data.batch_size must be >= 1")
        if self.data.patch_size < 1:
            errs.append("data.patch_size must be >= 1")
        if any(not 0.0 < f <= 1.0 for f in self.data.resize_factors):
            errs.append(f"data.resize_factors must lie in (0, 1] (HR images are only shrunk), not {list(self.data.resize_factors)}")
        if self.data.colorspace not in ("auto", "y", "rgb"):
            errs.append(f"data.colorspace must be auto, y or rgb, not {self.data.colorspace!r}")
        if self.optim.name not in ("adam", "sgd"):
            errs.append(f"optim.name must be adam or sgd, not {self.optim.name!r}")
        if not (self.optim.lr > 0 and math.isfinite(self.optim.lr)):
            errs.append("optim.lr must be > 0")
        bad_scale = [k for k, v in self.optim.lr_scale.items()
                     if isinstance(v, bool) or not isinstance(v, (int, float)) or not (v >= 0 and math.isfinite(v))]
        if bad_scale:
            errs.append(f"optim.lr_scale['{bad_scale[0]}'] must be a number >= 0")
        if self.loss.pixel_reduction not in ("mean", "sum"):
            errs.append("loss.pixel_reduction must be mean or sum")
        if self.optim.grad_clip_mode not in ("norm", "value", "adjustable"):
            errs.append("optim.grad_clip_mode must be norm, value or adjustable")
        if self.schedule.name not in ("constant", "step", "multistep", "cosine"):
            errs.append(f"schedule.name must be constant, step, multistep or cosine, not {self.schedule.name!r}")
        if self.schedule.name == "step" and self.schedule.step_size < 1:
            errs.append("schedule.step_size must be >= 1 for the step schedule")
        if self.loss.pixel not in ("l1", "mse", "charbonnier"):
            errs.append(f"loss.pixel must be l1, mse or charbonnier, not {self.loss.pixel!r}")
        if self.gan.kind not in ("vanilla", "ragan"):
            errs.append(f"gan.kind must be vanilla or ragan, not {self.gan.kind!r}")
        if self.precision not in ("auto", "fp32", "tf32", "bf16", "fp16"):
            errs.append(f"precision must be auto, fp32, tf32, bf16 or fp16, not {self.precision!r}")
        if not 0.0 <= self.ema < 1.0:
            errs.append("ema must be in [0, 1)")
        if self.checkpoint_every < 0 or self.val.every < 0:
            errs.append("checkpoint_every and val.every must be >= 0")
        if self.loss.pixel_weight == 0 and self.loss.perceptual_weight == 0 and self.gan.weight == 0:
            errs.append("every loss weight is 0")
        if errs:
            raise UsageError("invalid training config: " + "; ".join(errs), hint="see 'sresr train MODEL --print-config'")


# -- conversion ------------------------------------------------------------------------------


def to_dict(cfg: Any) -> dict[str, Any]:
    """Plain nested dict (tuples become lists) for TOML/JSON."""
    out: dict[str, Any] = {}
    for f in fields(cfg):
        v = getattr(cfg, f.name)
        if is_dataclass(v):
            out[f.name] = to_dict(v)
        elif isinstance(v, tuple):
            out[f.name] = list(v)
        elif isinstance(v, Mapping):
            out[f.name] = json.loads(json.dumps(dict(v)))
        else:
            out[f.name] = v
    return out


def _coerce(tp: Any, value: Any, where: str) -> Any:
    origin = get_origin(tp)
    if is_dataclass(tp):
        if not isinstance(value, Mapping):
            raise UsageError(f"config key '{where}' must be a table")
        return from_dict(tp, value, prefix=where + ".", base=None)
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            value = [value]
        args = get_args(tp)
        elem = args[0] if args else Any
        return tuple(_coerce(elem, v, where) for v in value)
    if origin is Mapping or tp is dict or origin is dict:
        if not isinstance(value, Mapping):
            raise UsageError(f"config key '{where}' must be a table")
        return dict(value)
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false", "1", "0", "yes", "no", "on", "off"):
            return value.lower() in ("true", "1", "yes", "on")
        raise UsageError(f"config key '{where}' must be true or false, not {value!r}")
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, (int, str, float)):
            raise UsageError(f"config key '{where}' must be an integer, not {value!r}")
        try:
            f = float(value)
            if f != int(f):
                raise ValueError
            return int(f)
        except (ValueError, OverflowError):
            raise UsageError(f"config key '{where}' must be an integer, not {value!r}") from None
    if tp is float:
        if isinstance(value, bool):
            raise UsageError(f"config key '{where}' must be a number, not {value!r}")
        try:
            return float(value)
        except (TypeError, ValueError):
            raise UsageError(f"config key '{where}' must be a number, not {value!r}") from None
    if tp is str:
        if not isinstance(value, (str, int, float)) or isinstance(value, bool):
            raise UsageError(f"config key '{where}' must be a string, not {value!r}")
        return str(value)
    return value


def from_dict(cls: Any, data: Mapping[str, Any], prefix: str = "", base: Any = None) -> Any:
    """Build ``cls`` from a (possibly partial) nested dict, on top of ``base`` (or the defaults).

    Unknown keys are an error naming the key and the valid ones.
    """
    hints = get_type_hints(cls)
    names = {f.name for f in fields(cls)}
    unknown = [k for k in data if k not in names]
    if unknown:
        raise UsageError(
            f"unknown config key '{prefix}{unknown[0]}'",
            hint=f"valid keys{' in [' + prefix.rstrip('.') + ']' if prefix else ''}: {', '.join(sorted(names))}",
        )
    current = base if base is not None else cls()
    changes: dict[str, Any] = {}
    for key, value in data.items():
        tp = hints[key]
        if is_dataclass(tp):
            if not isinstance(value, Mapping):
                raise UsageError(f"config key '{prefix}{key}' must be a table")
            changes[key] = from_dict(tp, value, prefix=f"{prefix}{key}.", base=getattr(current, key))
        else:
            changes[key] = _coerce(tp, value, prefix + key)
    return replace(current, **changes)


def override(cfg: TrainConfig, assignments: Mapping[str, Any]) -> TrainConfig:
    """Apply dotted-key overrides (``{"optim.lr": 1e-3, "data.batch_size": 8}``)."""
    nested: dict[str, Any] = {}
    for dotted, value in assignments.items():
        parts = dotted.split(".")
        node = nested
        for p in parts[:-1]:
            node = node.setdefault(p, {})
        node[parts[-1]] = value
    return from_dict(TrainConfig, nested, base=cfg)


def parse_setting(text: str) -> tuple[str, Any]:
    """``KEY=VALUE`` (``--set``) -> (dotted key, value). The value is read as TOML (``1e-3``,
    ``false``, ``[2, 3]``, ``{blocks = 8}``, ``"text"``); anything that is not valid TOML is taken
    as a bare string (``loss.pixel=l1``)."""
    key, sep, raw = text.partition("=")
    key = key.strip()
    if not sep or not key or any(not part.strip() or part != part.strip() for part in key.split(".")):
        raise UsageError(f"--set {text!r} is not KEY=VALUE", hint="for example --set optim.lr=1e-3 "
                         "--set data.augment=false --set model_kwargs.blocks=8")
    raw = raw.strip()
    try:
        value = tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw
    return key, value


def apply_settings(cfg: TrainConfig, settings: Sequence[str]) -> TrainConfig:
    """Apply ``--set KEY=VALUE`` lines in order, typed by the config's fields (any key of
    ``--print-config``). A key inside a table of free keys (``model_kwargs.blocks``,
    ``optim.lr_scale.@last``) changes that entry and keeps the others."""
    for text in settings:
        key, value = parse_setting(text)
        parts = key.split(".")
        node: Any = cfg
        for i, part in enumerate(parts[:-1]):
            if is_dataclass(node) and part in {f.name for f in fields(node)}:
                node = getattr(node, part)
                if not is_dataclass(node) and isinstance(node, Mapping):  # a free-key table: merge
                    merged = {**dict(node), ".".join(parts[i + 1:]): value}
                    key, value = ".".join(parts[: i + 1]), merged
                    break
            else:
                break
        cfg = override(cfg, {key: value})
    return cfg


# -- TOML ------------------------------------------------------------------------------------


def read_toml(path: str | Path, what: str = "config file") -> dict[str, Any]:
    """A TOML file's tables, or a one-line :class:`UsageError` naming ``what`` and the path."""
    path = Path(path)
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UsageError(f"{what} not found: {path}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read {what} {path}: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"{what} {path} is not valid TOML: {exc}") from None


def load_toml(path: str | Path, base: TrainConfig | None = None) -> TrainConfig:
    return from_dict(TrainConfig, read_toml(path), base=base)


def loads_toml(text: str, base: TrainConfig | None = None) -> TrainConfig:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"config is not valid TOML: {exc}") from None
    return from_dict(TrainConfig, data, base=base)


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if math.isnan(v):
            return "nan"
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v, ensure_ascii=False)  # a JSON string is a valid TOML basic string
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    if isinstance(v, Mapping):
        return "{" + ", ".join(f"{_toml_key(k)} = {_toml_value(x)}" for k, x in v.items()) + "}"
    if v is None:
        raise ValueError("TOML has no null")
    raise TypeError(f"cannot write {type(v).__name__} to TOML")


def _toml_key(k: str) -> str:
    return k if k.replace("_", "").replace("-", "").isalnum() else json.dumps(k)


def dump_toml(cfg: TrainConfig, header: str = "") -> str:
    """TOML text of the whole config: top-level keys first, then one table per section."""
    d = to_dict(cfg)
    lines = [f"# {line}" for line in header.splitlines()] if header else []
    tables: list[tuple[str, dict[str, Any]]] = []
    hints = get_type_hints(TrainConfig)
    for k, v in d.items():
        if is_dataclass(hints[k]):
            tables.append((k, v))
        else:
            lines.append(f"{_toml_key(k)} = {_toml_value(v)}")
    for name, table in tables:
        lines.append("")
        lines.append(f"[{name}]")
        for k, v in table.items():
            lines.append(f"{_toml_key(k)} = {_toml_value(v)}")
    return "\n".join(lines) + "\n"


def save_toml(cfg: TrainConfig, path: str | Path, header: str = "") -> Path:
    """Write atomically (temp file in the same folder, then rename)."""
    from ..atomic import atomic_write_bytes

    return atomic_write_bytes(Path(path), dump_toml(cfg, header).encode("utf-8"))
