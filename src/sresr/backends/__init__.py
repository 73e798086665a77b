"""Backends: what runs the network inside sresr's one engine.

``torch`` (the default) runs the PyTorch module. ``onnxruntime`` runs an ONNX file (made by
``sresr export``, exported on the fly into the cache, or made elsewhere) through
:class:`sresr.backends.onnxruntime.OrtModule`, an adapter that takes and returns NCHW float
tensors like the torch module it replaces. It is wrapped into the same
:class:`~sresr.resolve.LoadedModel`, so the tiler, colour handling, TTA and file pipeline are the
torch backend's, unchanged; only torch-specific preparation (device, precision, load-time
rewrites, channels_last) is skipped for it (see :class:`sresr.engine.Upscaler`).

Torch-free at import. The optional packages are imported by :func:`require`, which turns their
absence into one line saying how to get them.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

from ..errors import MissingDependencyError, UsageError

__all__ = ["BACKENDS", "INSTALL_HINT", "require", "check_backend", "is_onnx_ref", "to_backend"]

BACKENDS = ("torch", "onnxruntime")
#: how to get the optional packages of the ONNX features
INSTALL_HINT = "pip install 'sresr[onnx]'"


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
