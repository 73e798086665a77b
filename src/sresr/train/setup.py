"""What a training trains with: the network (and its initial weights and trainable subset), the
discriminator, optimisers, schedules, gradient clipping and the EMA."""

from __future__ import annotations

import copy
import fnmatch
import inspect
import warnings
from pathlib import Path
from typing import Any, Callable, Mapping

import torch
from torch import nn

from ..errors import SresrError, UsageError, WeightsError
from ..registry import get_spec
from ..spec import ModelSpec, resolve
from .checkpoint import _first_line
from .config import TrainConfig


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
    from ..registry import entries, parse_ref
    from ..weights import _weights_file

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
    model_name, tag = parse_ref(init)
    if tag and model_name in entries():
        from ..resolve import load_model

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
    if cfg.init_transform:
        try:
            transform = resolve(cfg.init_transform)
        except (ImportError, AttributeError, ValueError) as exc:
            raise UsageError(f"cannot load init_transform '{cfg.init_transform}': {exc}",
                             hint="init_transform is 'module:attr' of f(state, kwargs, scale)") from None
        state, init_kwargs = transform(state, init_kwargs, cfg.scale)
        log(f"initial weights transformed by {cfg.init_transform}")
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
