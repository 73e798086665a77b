"""Backends: what runs the network inside sresr's one engine.

``torch`` (the default) runs the PyTorch module. ``onnxruntime`` runs an ONNX file (made by
``sresr export``, exported on the fly into the cache, or made elsewhere) through
:class:`sresr.backends.onnxruntime.OrtModule`, an adapter that takes and returns NCHW float
tensors like the torch module it replaces. It is wrapped into the same
:class:`~sresr.resolve.LoadedModel`, so the tiler, colour handling, TTA and file pipeline are the
torch backend's, unchanged; only torch-specific preparation (device, precision, load-time
rewrites, channels_last) is skipped for it (see :class:`sresr.engine.Upscaler`).

:func:`load` is the one way the commands (``upscale``, ``eval``, ``bench``) load the model they were
asked for on the backend they were asked for: an ONNX file given as the model or as its weights,
or a model name (or an already resolved request) loaded by :mod:`sresr.resolve` and put on the
backend by :func:`to_backend`. It returns the load's warnings rather than dropping them.

Torch-free at import. The optional packages are imported by :func:`require`, which turns their
absence into one line saying how to get them.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import MissingDependencyError, UsageError

__all__ = ["BACKENDS", "INSTALL_HINT", "require", "check_backend", "is_onnx_ref", "to_backend", "load", "LoadResult",
           "ONNX_PRECISIONS"]

BACKENDS = ("torch", "onnxruntime")
#: how to get the optional packages of the ONNX features
INSTALL_HINT = "pip install 'sresr[onnx]'"
#: the ``--precision`` values that make sense with an ONNX file (it runs at the precision it was exported in)
ONNX_PRECISIONS = ("auto", "fp32", "fp16")


def require(module: str, what: str) -> Any:
    """Import an optional package or raise :class:`MissingDependencyError` saying how to get it."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:  # not installed (one line with the command), or installed but broken (why)
        why = "" if isinstance(exc, ModuleNotFoundError) or module in str(exc) else f" ({exc})"
        raise MissingDependencyError(f"{what} needs the '{module}' package: {INSTALL_HINT}{why}") from None


def check_backend(name: str) -> str:
    """``name`` in its canonical spelling, or a usage error listing the backends."""
    key = (name or "").strip().lower().replace("-", "").replace("_", "")
    aliases = {"torch": "torch", "pytorch": "torch", "onnxruntime": "onnxruntime", "ort": "onnxruntime",
               "onnx": "onnxruntime"}
    if key not in aliases:
        raise UsageError(f"unknown backend {name!r}", hint=f"use one of: {', '.join(BACKENDS)}")
    return aliases[key]


def is_onnx_ref(ref: str | Path | None) -> bool:
    """Whether a ``-m``/``-w`` reference names an ONNX file (by its ``.onnx`` extension)."""
    return ref is not None and str(ref).lower().endswith(".onnx")


def to_backend(loaded: Any, backend: str, provider: str = "auto", device: str = "auto",
               precision: str = "auto", threads: int | None = None) -> Any:
    """``loaded`` as the backend runs it: itself for ``torch``; for ``onnxruntime`` a LoadedModel
    whose module runs the network's ONNX export (made once into the cache, see
    :func:`sresr.backends.onnxruntime.onnxruntime_model`)."""
    backend = check_backend(backend)
    if backend == "torch":
        return loaded
    from .onnxruntime import onnxruntime_model

    return onnxruntime_model(loaded, provider=provider, device=device, precision=precision, threads=threads)


@dataclass(frozen=True)
class LoadResult:
    """What :func:`load` gives.

    model: the :class:`~sresr.resolve.LoadedModel` the backend runs (its module an onnxruntime
    session on ``onnxruntime``). network: the torch network it was made from (parameters, FLOPs),
    ``model`` itself for an ONNX file. backend: what runs it, ``torch`` or ``onnxruntime`` (an ONNX
    file always runs there). notes: warnings for the user, to show once."""

    model: Any
    network: Any
    backend: str
    notes: tuple[str, ...] = ()


def _whole(scale: Any) -> int | None:
    """``scale`` as a whole number, or None (no scale, or one that is not a whole number)."""
    if isinstance(scale, (int, float)) and not isinstance(scale, bool) and float(scale).is_integer():
        return int(scale)
    return None


def load(model: Any, scale: int | float | None = None, *, weights: str | Path | None = None, backend: str = "torch",
         provider: str = "auto", device: str = "auto", precision: str = "auto", threads: int | None = None,
         tile_pad: int | None = None, denoise: float | None = None) -> LoadResult:
    """The model a command asked for, on the backend it asked for (``sresr upscale``, ``eval`` and
    ``bench`` all load through here).

    An ONNX file (:func:`is_onnx_ref`) as ``model`` or as ``weights`` is loaded by
    :func:`sresr.backends.onnxruntime.load_onnx` and runs on onnxruntime whatever ``backend`` says:
    at ``scale`` only if it is a whole number and the file is a pre-upsampling network (otherwise at
    the file's own scale, which the caller compares with the one it wants), with ``tile_pad`` as the
    receptive field of a file without sresr metadata. Refused for it: separate weights (the file
    is the model and its weights), and a ``precision`` other than those of :data:`ONNX_PRECISIONS`
    (its precision is the file's). The warnings of the load (a one-channel file run on luma, a
    fixed input size) come back as ``notes``.

    Anything else is loaded by :mod:`sresr.resolve` (``model``: a name, ``MODEL.TAG``, None with
    ``weights`` telling the architecture, or a :class:`~sresr.resolve.Request` already resolved, to
    which ``weights`` cannot be added), with ``denoise`` (see :func:`sresr.resolve.load`), then put
    on ``backend`` by :func:`to_backend` (``provider``, ``device``, ``precision`` and ``threads``
    are the onnxruntime export's).
    """
    backend = check_backend(backend)
    model_file = isinstance(model, (str, Path)) and is_onnx_ref(model)
    onnx_file = model if model_file else weights if is_onnx_ref(weights) else None
    if onnx_file is not None:
        if model is not None and weights is not None:
            raise UsageError("an ONNX file is the model and its weights: give it without --weights" if model_file
                             else "an ONNX file is the model and its weights: give it alone, as -m FILE.onnx")
        if precision not in ONNX_PRECISIONS:
            raise UsageError(f"--precision {precision} does not apply to an ONNX file (its precision is the file's)")
        from .onnxruntime import load_onnx

        loaded, notes = load_onnx(onnx_file, scale=_whole(scale), tile_pad=tile_pad, provider=provider, device=device,
                                  threads=threads)
        return LoadResult(loaded, loaded, "onnxruntime", tuple(notes))
    from ..resolve import Request, load_model
    from ..resolve import load as load_request

    if isinstance(model, Request):
        if weights is not None:
            raise TypeError("weights belong in the Request (sresr.resolve.resolve(model, weights, scale))")
        network = load_request(model, scale, denoise=denoise)
    else:
        network = load_model(model, scale, weights=weights, denoise=denoise)
    run = to_backend(network, backend, provider=provider, device=device, precision=precision, threads=threads)
    return LoadResult(run, network, backend)
