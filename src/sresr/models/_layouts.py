"""Published checkpoint layouts: safe reading, unwrapping, and strict loading by key layout.

Torch is imported inside the functions that need it, so :func:`unwrap_state_dict` and
:func:`strip_prefixes` also work on plain key lists without torch.

A :class:`Layout` describes one published key layout of an architecture: how to read the
hyperparameters from tensor shapes (``infer``) and how each key of our module is named in the
published file (``rename``). :func:`load_with_layouts` tries every layout of an architecture and
loads the first that matches exactly (same key set, same shapes) with ``strict=True``; when none
matches it raises :class:`~sresr.errors.LayoutError` naming the closest layout and its missing and
unexpected keys.
"""

from __future__ import annotations

import functools
import re
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Mapping

from ..errors import LayoutError, ScaleUnknownError, UnsafeCheckpointError, WeightsError

#: wrapper keys around a state dict, in order of preference (BasicSR/Real-ESRGAN keep both
#: ``params_ema`` and ``params``: the EMA weights are the released ones).
WRAPPER_KEYS = ("params_ema", "params", "state_dict", "model", "net_g", "generator")
#: key prefixes added by DataParallel / DistributedDataParallel and torch.compile.
PREFIXES = ("module.", "_orig_mod.")
#: the generator's keys inside a GAN training state (OpenMMLab), in order of preference
GENERATOR_PREFIXES = ("generator_ema.", "generator.")


def _is_tensor(value: Any) -> bool:
    return hasattr(value, "shape") and hasattr(value, "dtype")


def unwrap_state_dict(obj: Any) -> dict[str, Any]:
    """The flat ``{key: tensor}`` dict inside a checkpoint object.

    Unwraps ``{"params_ema": sd}``, ``{"params": sd}``, ``{"state_dict": sd}``, ``{"model": sd}``
    (nested, too), strips ``module.`` / ``_orig_mod.`` prefixes and drops non-tensor entries. A
    GAN training state that holds every network under one dict (OpenMMLab's ``generator.*``,
    ``discriminator.*``, loss networks) gives its generator: ``generator_ema.*`` when present (the
    released weights, as ``params_ema``), else ``generator.*``, with the prefix removed.
    """
    for _ in range(8):
        if not isinstance(obj, Mapping):
            break
        inner = next((obj[k] for k in WRAPPER_KEYS if isinstance(obj.get(k), Mapping)), None)
        if inner is None or any(_is_tensor(v) for v in obj.values()):
            break
        obj = inner
    if not isinstance(obj, Mapping):
        raise WeightsError(
            f"checkpoint holds a {type(obj).__name__}, not a state dict",
            hint="save the weights with torch.save(model.state_dict(), path)",
        )
    out = {strip_prefixes(str(k)): v for k, v in obj.items() if _is_tensor(v)}
    for prefix in GENERATOR_PREFIXES:
        if any(k.startswith(prefix) for k in out):
            out = {k[len(prefix):]: v for k, v in out.items() if k.startswith(prefix)}
            break
    if not out:
        raise WeightsError(
            "checkpoint contains no tensors",
            hint=f"top-level keys: {', '.join(map(str, list(obj)[:10])) or '(none)'}",
        )
    return out


def strip_prefixes(key: str) -> str:
    changed = True
    while changed:
        changed = False
        for prefix in PREFIXES:
            if key.startswith(prefix):
                key = key[len(prefix):]
                changed = True
    return key


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read a ``.pth``/``.pt``/``.ckpt`` or ``.safetensors`` file into a flat CPU state dict.

    Pickle-based files are read with ``torch.load(map_location="cpu", weights_only=True)``
    only: tensors, plain containers and numbers. A file that needs anything else (a pickled
    ``nn.Module``, a custom class, a function call) is refused with
    :class:`~sresr.errors.UnsafeCheckpointError` before any code from it runs.
    """
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"{path}: no such file", hint="check the path given to --weights")
    try:
        with open(path, "rb") as f:
            head = f.read(64)
    except OSError as exc:
        raise WeightsError(f"{path}: cannot read: {exc.strerror or exc}") from None
    if path.suffix.lower() == ".safetensors" or looks_like_safetensors(head):
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            return unwrap_state_dict(load_file(str(path), device="cpu"))
        except (SafetensorError, OSError, ValueError) as exc:
            raise WeightsError(f"{path}: not a valid safetensors file ({exc})") from None
    if not head.startswith((b"PK\x03\x04", b"\x80")):  # torch's zip format, or a legacy pickle
        raise WeightsError(f"{path}: not a weights file (it starts with {_describe_start(head)})",
                           hint="expected a .safetensors file or a PyTorch checkpoint (.pth/.pt/.ckpt/.bin)")
    import pickle

    import torch

    try:
        obj = torch.load(str(path), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        text = str(exc)
        found = re.search(r"GLOBAL ([\w.]+)", text) or re.search(r"global: ([\w.]+)", text, re.I)
        if found or "weights_only" in text and "Unsupported operand" not in text:
            what = f" (it references {found.group(1)})" if found else ""
            raise UnsafeCheckpointError(
                f"{path}: refusing to load it: the file stores pickled Python objects beyond tensors"
                f"{what}; unpickling it would run code from the file, so sresr never does",
                hint="in a trusted environment re-save only the weights: "
                "torch.save(torch.load(path, weights_only=False).state_dict(), 'clean.pth') "
                "(or save them as .safetensors), then pass that file",
            ) from None
        raise WeightsError(f"{path}: not a readable PyTorch checkpoint ({torch_reason(exc)})") from None
    except (RuntimeError, EOFError, OSError, ValueError) as exc:
        raise WeightsError(f"{path}: not a readable PyTorch checkpoint ({torch_reason(exc)})",
                           hint="the file may be truncated or damaged; fetch it again") from None
    try:
        return unwrap_state_dict(obj)
    except WeightsError as exc:
        raise WeightsError(f"{path}: {exc.message}", hint=exc.hint) from None


def looks_like_safetensors(head: bytes) -> bool:
    """Whether a file's first bytes are a safetensors header (length, then a JSON object)."""
    if len(head) < 9:
        return False
    n = int.from_bytes(head[:8], "little")
    return 2 <= n < 100_000_000 and head[8:9] == b"{"


def _describe_start(head: bytes) -> str:
    text = head[:16]
    if text.lstrip().lower().startswith((b"<!doctype", b"<html", b"<?xml", b"<")):
        return f"{text!r}: an HTML/XML page"
    return repr(text) if text else "nothing: it is empty"


#: sentences of torch.load's errors that advise what sresr never does (unpickle with code)
_ADVICE = ("weights_only", "re-run", "trusted source", "arbitrary code", "if you are seeing this error",
           "file an issue", "add_safe_globals", "safe_globals", "can still be loaded", "in pytorch 2.6")


def torch_reason(exc: BaseException) -> str:
    """torch.load's error in one short line, without its advice to load with
    ``weights_only=False`` (that would run code from the file)."""
    text = " ".join(str(exc).split())
    found = re.search(r"WeightsUnpickler error: (.*?)(?:\.(?:\s|$)|$)", text)
    if found:
        return f"unpickling stopped: {found.group(1)}"
    sentences = [t.strip() for t in re.split(r"(?<=\.)\s+", text) if t.strip()]
    kept = [t for t in sentences if not any(a in t.lower() for a in _ADVICE)]
    return (kept[0] if kept else type(exc).__name__).rstrip(".")


# -- layouts ---------------------------------------------------------------------------------

Infer = Callable[[Mapping[str, Any]], tuple[int | None, dict[str, Any]]]
Rename = Callable[[str, int, Mapping[str, Any]], str]


def _identity(key: str, scale: int, kwargs: Mapping[str, Any]) -> str:
    return key


@dataclass(frozen=True)
class Layout:
    """One published key layout.

    ``infer(sd) -> (scale or None, kwargs)`` reads hyperparameters from shapes (it may raise
    ``KeyError``/``ValueError``/``IndexError`` when the dict is not of this layout);
    ``rename(our_key, scale, kwargs) -> published_key``; ``ignore``: regexes of published keys that
    carry no weights for us (e.g. EDSR's fixed mean-shift convolutions).
    """

    name: str
    infer: Infer
    rename: Rename = _identity
    ignore: tuple[str, ...] = ()
    description: str = ""


@dataclass
class _Attempt:
    layout: Layout
    matched: int
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    mismatched: list[str] = field(default_factory=list)

    @property
    def score(self) -> float:
        total = self.matched + len(self.missing) + len(self.unexpected)
        return (self.matched - len(self.mismatched)) / max(1, total)


#: True while :mod:`sresr.weights` tries every family's loader on one file to find its architecture
#: (:func:`detecting`): a family none of whose layouts can even read the file's hyperparameters
#: then says so at once, without building its network for the detailed comparison that an
#: explicit ``--model`` gets.
_DETECTING: ContextVar[bool] = ContextVar("sresr_layouts_detecting", default=False)


@contextmanager
def detecting() -> Iterator[None]:
    token = _DETECTING.set(True)
    try:
        yield
    finally:
        _DETECTING.reset(token)


@functools.lru_cache(maxsize=64)
def _default_shapes(factory: Callable[..., Any], scale: int) -> dict[str, tuple[int, ...]]:
    """Tensor names and shapes of ``factory(scale=scale)``, built once per process on the meta
    device: detecting a file's architecture tries every loader, and a transformer's or RCAN's
    thousands of modules take a noticeable part of a second to construct even without memory."""
    import torch

    with torch.device("meta"):
        return {k: _shape(v) for k, v in factory(scale=scale).state_dict().items()}


def _few(keys: Iterable[str], n: int = 6) -> str:
    keys = sorted(keys)
    shown = ", ".join(keys[:n])
    return shown + (f" (+{len(keys) - n} more)" if len(keys) > n else "")


def _shape(t: Any) -> tuple[int, ...]:
    return tuple(int(d) for d in t.shape)


def load_with_layouts(
    state_dict: Mapping[str, Any],
    layouts: Iterable[Layout],
    factory: Callable[..., Any],
    arch: str,
    default_scale: int,
    scale: int | None = None,
    overrides: Mapping[str, Any] | None = None,
    scale_from_shapes_only: bool = False,
) -> tuple[Any, int, dict[str, Any]]:
    """Match ``state_dict`` against ``layouts`` and load the first exact match strictly.

    ``scale`` is used when the layout cannot tell it from shapes (SRCNN, FSRCNN, VDSR); when the
    checkpoint does tell it and ``scale`` differs, that is an error. When neither tells it,
    ``default_scale`` is taken, unless ``scale_from_shapes_only`` (a network whose weights serve
    one scale only, and whose scale is not in its tensors: FSRCNN), which raises
    :class:`~sresr.errors.ScaleUnknownError` for an exact match of unknown scale instead of
    guessing. ``overrides`` are extra factory kwargs for hyperparameters that shapes cannot show
    (activation, res_scale...).
    Returns ``(module in eval mode, scale, kwargs)`` with ``factory(scale=scale, **kwargs)``
    rebuilding the same network.
    """
    import torch

    sd = unwrap_state_dict(state_dict)
    attempts: list[_Attempt] = []
    unread: list[str] = []  # layouts that could not read the hyperparameters, while detecting
    for layout in layouts:
        ignore = [re.compile(p) for p in layout.ignore]
        given = {k for k in sd if not any(p.fullmatch(k) for p in ignore)}
        try:
            found_scale, kwargs = layout.infer(sd)
            ok = True
        except (KeyError, ValueError, IndexError, TypeError, ZeroDivisionError):
            found_scale, kwargs, ok = None, {}, False
        if ok and found_scale is not None and scale is not None and found_scale != scale:
            raise LayoutError(
                f"this {arch} checkpoint ({layout.name} layout) is for x{found_scale}, not x{scale}",
                hint=f"use --scale {found_scale}",
            )
        if not ok and _DETECTING.get():
            unread.append(layout.name)
            continue
        use_scale = found_scale if found_scale is not None else (scale or default_scale)
        kwargs = {**kwargs, **(overrides or {})}
        own: dict[str, tuple[int, ...]] | None = None
        if ok:
            with torch.device("meta"):  # keys and shapes only: no memory, no init cost
                try:
                    own = {k: _shape(v) for k, v in factory(scale=use_scale, **kwargs).state_dict().items()}
                except (ValueError, TypeError):
                    ok = False
        if own is None:  # not this layout: compared with the default network, for the error message
            own = _default_shapes(factory, default_scale)
        expected = {layout.rename(k, use_scale, kwargs): k for k in own}
        missing = [k for k in expected if k not in given]
        unexpected = [k for k in given if k not in expected]
        mismatched = [
            f"{k} {list(_shape(sd[k]))} (expected {list(own[expected[k]])})"
            for k in expected
            if k in given and _shape(sd[k]) != own[expected[k]]
        ]
        attempt = _Attempt(layout, len(expected) - len(missing), missing, unexpected, mismatched)
        if ok and not missing and not unexpected and not mismatched:
            if found_scale is None and scale is None and scale_from_shapes_only:
                raise ScaleUnknownError(
                    f"these {arch} weights ({layout.name} layout) do not tell their scale: their tensors are "
                    "the same at every scale",
                    hint="pass --scale S (or name the file like NAME_x3.pth)",
                )
            module = factory(scale=use_scale, **kwargs)
            dtypes = {k: v.dtype for k, v in module.state_dict().items()}
            mapped = {ours: sd[pub].to(dtypes[ours]) for pub, ours in expected.items()}
            module.load_state_dict(mapped, strict=True)
            module.eval()
            return module, use_scale, dict(kwargs)
        attempts.append(attempt)
    if not attempts:
        raise LayoutError(f"not a {arch} checkpoint: none of its layouts ({', '.join(unread)}) reads these keys",
                          hint=f"if the file is a {arch}, name it with --model {arch} to see which keys differ")
    best = max(attempts, key=lambda a: a.score)
    parts = [f"closest is the {best.layout.name} layout ({best.matched} of "
             f"{best.matched + len(best.missing)} keys present)"]
    if best.missing:
        parts.append(f"missing keys: {_few(best.missing)}")
    if best.unexpected:
        parts.append(f"unexpected keys: {_few(best.unexpected)}")
    if best.mismatched:
        parts.append(f"shape mismatch: {_few(best.mismatched, 3)}")
    names = ", ".join(a.layout.name for a in attempts)
    err = LayoutError(
        f"state dict matches no known {arch} layout; " + "; ".join(parts),
        hint=f"known {arch} layouts: {names}; if the file is for another architecture, name it "
        "with --model",
    )
    err.closest = best.layout.name  # type: ignore[attr-defined]
    err.missing = sorted(best.missing)  # type: ignore[attr-defined]
    err.unexpected = sorted(best.unexpected)  # type: ignore[attr-defined]
    err.mismatched = best.mismatched  # type: ignore[attr-defined]
    raise err


def count(sd: Mapping[str, Any], pattern: str) -> int:
    """How many distinct values the first group of ``pattern`` takes over the keys of ``sd``."""
    rx = re.compile(pattern)
    return len({m.group(1) for k in sd if (m := rx.fullmatch(k))})


def shape(sd: Mapping[str, Any], key: str) -> tuple[int, ...]:
    return _shape(sd[key])


def isqrt_exact(n: int) -> int:
    r = int(round(n ** 0.5))
    if r * r != n:
        raise ValueError(f"{n} is not a square")
    return r
