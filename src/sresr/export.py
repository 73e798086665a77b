"""ONNX export of a loaded network: :func:`export_onnx` (the library behind ``sresr export``).

The invariant: **a file is written only when onnxruntime, running it, gives PyTorch's output.**
Before anything is written, the exported graph runs on onnxruntime's CPU provider on a random
input of another size than the one traced, which holds at least two size multiples (attention
windows) per axis (so a height, width or window count baked into the graph is caught), and its output is compared with the PyTorch network's (the loaded one, before any rewrite): the
largest difference must be at most :data:`FP32_TOLERANCE` (``1e-4``, relative to the output's
magnitude when that exceeds 1) for float32 files, :data:`FP16_TOLERANCE` for float16 ones.
Otherwise :class:`~sresr.errors.ExportError` is raised and nothing is written; the file itself is
written atomically (:mod:`sresr.atomic`).

What is exported is the network after the load-time rewrites of :mod:`sresr.optimize` that are
plain ONNX operators (BatchNorm folding, transposed convolution as convolution + pixel shuffle,
SRResNet's last convolution before its pixel shuffle, PReLU with one slope as LeakyReLU), each
kept only where it matches the original, as the engine does; channels_last is a torch memory
layout and is left out. While tracing (``torch.jit.is_tracing()``), the shifted-window attention
masks (SwinIR, HAT, DAT) are computed from the traced size rather than read from their per-size
caches, which would bake one size into the graph.
The graph takes ``input`` (``N x C x H x W``, float32 or float16 with
``fp16``) and returns ``output`` (``N x C x sH x sW``; the same size for pre-upsampling models);
height and width are dynamic (``dynamic=True``) or fixed to ``tile`` pixels (runtimes that need
static shapes), the batch is dynamic either way.

The file carries the facts sresr needs to run it (ONNX ``metadata_props``, keys in
:data:`METADATA_KEYS`): scale, colour space, input kind, channels, receptive field, size
multiple, whether tiling is exact, the weights' id and sha256, the factory's options, precision,
opset and shape. :func:`sresr.backends.onnxruntime.load_onnx` reads them back; files made
elsewhere work too (their scale found by a probe run).

Needs the ``onnx`` and ``onnxruntime`` packages (``pip install 'sresr[onnx]'``); the PyTorch
exporter used is the TorchScript-based one (``dynamo=False``), which needs neither onnxscript nor
a network that ``torch.export`` can capture, and exports every built-in family.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Mapping

from .errors import ExportError, UsageError, shown

__all__ = [
    "DEFAULT_OPSET",
    "MIN_OPSET",
    "FP32_TOLERANCE",
    "FP16_TOLERANCE",
    "META_PREFIX",
    "METADATA_KEYS",
    "ExportReport",
    "export_onnx",
    "onnx_metadata",
    "read_onnx_metadata",
    "export_key",
]

#: the opset written by default: every runtime sresr names (onnxruntime >= 1.14, OpenVINO,
#: CoreML through onnxruntime, DirectML) reads it
DEFAULT_OPSET = 17
#: the lowest opset offered (the TorchScript exporter's LeakyRelu/PixelShuffle-as-reshape need no more)
MIN_OPSET = 13
#: the largest difference to PyTorch an fp32 export may show on the check's random input (times the
#: output's magnitude above 1); every built-in family in its published configuration, randomly
#: initialised, stays under 3e-5 (benchmarks/bench_onnx.py prints the differences)
FP32_TOLERANCE = 1e-4
#: the same for fp16 files: half precision keeps about 3 significant digits through the network
FP16_TOLERANCE = 2e-2
META_PREFIX = "sresr."
#: the metadata_props sresr writes (each a string)
METADATA_KEYS = (
    "sresr.format", "sresr.version", "sresr.model", "sresr.weights", "sresr.weights_sha256", "sresr.kwargs",
    "sresr.scale", "sresr.colorspace", "sresr.input", "sresr.channels", "sresr.receptive_field",
    "sresr.size_multiple", "sresr.exact", "sresr.precision", "sresr.opset", "sresr.shape", "sresr.rewrites",
    "sresr.max_diff",
)
FORMAT_VERSION = "1"
INPUT_NAME = "input"
OUTPUT_NAME = "output"


@dataclass(frozen=True)
class ExportReport:
    """What :func:`export_onnx` wrote and how it was checked."""

    path: Path
    opset: int
    fp16: bool
    shape: str  # "dynamic" or "TxT"
    max_diff: float  # onnxruntime CPU vs PyTorch on the check input
    tolerance: float
    check_shape: tuple[int, ...]
    rewrites: tuple[str, ...]
    seconds: float
    size: int  # bytes
    metadata: Mapping[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"path": str(self.path), "opset": self.opset, "fp16": self.fp16, "shape": self.shape,
                "max_diff": self.max_diff, "tolerance": self.tolerance, "check_shape": list(self.check_shape),
                "rewrites": list(self.rewrites), "seconds": round(self.seconds, 3), "size": self.size,
                "metadata": dict(self.metadata)}


def _require() -> tuple[Any, Any]:
    from .backends import require

    return require("onnx", "ONNX export"), require("onnxruntime", "ONNX export (to check the file)")


def _state_digest(module: Any) -> str:
    """sha256 over the network's tensors (names, shapes, bytes): an id for weights without a file."""
    import torch

    h = hashlib.sha256()
    for name, t in sorted(module.state_dict().items()):
        t = t.detach().cpu().contiguous()
        h.update(f"{name}:{t.dtype}:{tuple(t.shape)};".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def export_key(loaded: Any, opset: int = DEFAULT_OPSET, fp16: bool = False, shape: str = "dynamic") -> str:
    """The cache key of an export: a digest of the network's tensors as they are now (not the
    sha256 of the file they were loaded from: a network changed in place after loading, by
    fine-tuning say, must not reuse the old export), the model, its options, scale and colour
    space, opset, precision and shape. Two loads of the same weights give the same key."""
    weights = _state_digest(loaded.module)
    text = json.dumps({"format": FORMAT_VERSION, "weights": weights, "model": loaded.name, "scale": int(loaded.scale),
                       "kwargs": _jsonable(loaded.kwargs), "colorspace": loaded.colorspace, "opset": int(opset),
                       "fp16": bool(fp16), "shape": shape}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


def _jsonable(kwargs: Mapping[str, Any]) -> dict[str, Any]:
    return json.loads(json.dumps(dict(kwargs), default=str))


def onnx_metadata(loaded: Any, *, opset: int, fp16: bool, shape: str, rewrites: tuple[str, ...] = (),
                  max_diff: float | None = None) -> dict[str, str]:
    """The ``metadata_props`` of an export of ``loaded`` (see :data:`METADATA_KEYS`)."""
    from . import __version__

    geo = loaded.geometry
    meta = {
        "sresr.format": FORMAT_VERSION,
        "sresr.version": __version__,
        "sresr.model": loaded.name,
        "sresr.weights": loaded.weights_id,
        "sresr.weights_sha256": loaded.weights_sha256 or "",
        "sresr.kwargs": json.dumps(_jsonable(loaded.kwargs), sort_keys=True),
        "sresr.scale": str(int(loaded.scale)),
        "sresr.colorspace": loaded.colorspace,
        "sresr.input": loaded.spec.input,
        "sresr.channels": str(1 if loaded.colorspace == "y" else 3),
        "sresr.receptive_field": str(int(geo.receptive_field)),
        "sresr.size_multiple": str(int(geo.size_multiple)),
        "sresr.exact": "true" if getattr(geo, "exact", True) else "false",
        "sresr.precision": "fp16" if fp16 else "fp32",
        "sresr.opset": str(int(opset)),
        "sresr.shape": shape,
        "sresr.rewrites": ",".join(rewrites),
    }
    if max_diff is not None:
        meta["sresr.max_diff"] = f"{max_diff:.3g}"
    return meta


def read_onnx_metadata(path: str | Path) -> dict[str, str]:
    """The ``metadata_props`` of an ONNX file (all of them, sresr's and others'), read with ``onnx``
    without loading external tensor data."""
    onnx, _ = _require()
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:
        raise UsageError(f"cannot read {shown(path)} as an ONNX file: {exc}") from None
    return {p.key: p.value for p in model.metadata_props}


def _example(loaded: Any, side: int, extra: tuple[int, int] = (0, 0)) -> Any:
    import torch

    geo = loaded.geometry
    m = max(1, int(geo.size_multiple))
    side = -(-side // m) * m
    channels = 1 if loaded.colorspace == "y" else 3
    gen = torch.Generator().manual_seed(0)
    return torch.rand((1, channels, side + extra[0] * m, side + extra[1] * m), generator=gen)


def _rewritten(loaded: Any) -> tuple[Any, tuple[str, ...]]:
    """The network after the ONNX-safe load-time rewrites (each checked, see sresr.optimize)."""
    import copy

    import torch

    from .optimize import optimize_for_inference

    module = copy.deepcopy(loaded.module).to("cpu", torch.float32).eval()
    if not any(True for _ in module.parameters()):
        return module, ()
    module, report, _ = optimize_for_inference(module, _example(loaded, 16), channels_last=False)
    return module, tuple(report.applied)


def _max_opset() -> int | None:
    """The newest opset torch's TorchScript exporter writes (None when this torch does not say)."""
    try:
        from torch.onnx import _constants

        return int(_constants.ONNX_TORCHSCRIPT_EXPORTER_MAX_OPSET)
    except Exception:
        return None


@contextlib.contextmanager
def _stdout_silenced() -> Iterator[None]:
    """File descriptor 1 pointed at /dev/null: a failing TorchScript export prints its whole graph
    there from C++, which would bury the one-line error and corrupt ``--json`` output."""
    try:
        sys.stdout.flush()
        saved = os.dup(1)
    except (OSError, ValueError):  # no usable fd 1 (an embedding host): nothing to protect
        yield
        return
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 1)
        yield
    finally:
        os.dup2(saved, 1)
        os.close(saved)


def _export_bytes(module: Any, example: Any, opset: int, dynamic: bool) -> bytes:
    import torch

    axes = {INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}}
    if dynamic:
        axes = {INPUT_NAME: {0: "batch", 2: "height", 3: "width"},
                OUTPUT_NAME: {0: "batch", 2: "out_height", 3: "out_width"}}
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation and tracer warnings
        kwargs: dict[str, Any] = {}
        try:
            import inspect

            if "dynamo" in inspect.signature(torch.onnx.export).parameters:
                kwargs["dynamo"] = False
        except (TypeError, ValueError):
            pass
        with torch.no_grad(), _stdout_silenced():
            torch.onnx.export(module, (example,), buf, input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                              dynamic_axes=axes, opset_version=int(opset), do_constant_folding=True, **kwargs)
    return buf.getvalue()


def export_onnx(
    loaded: Any,
    path: str | Path,
    *,
    opset: int = DEFAULT_OPSET,
    fp16: bool = False,
    dynamic: bool = True,
    tile: int | None = None,
) -> ExportReport:
    """Export ``loaded`` (a :class:`~sresr.resolve.LoadedModel`) to ``path`` as ONNX, checked
    against PyTorch on onnxruntime's CPU provider first (see the module docstring).

    opset: the ONNX opset (:data:`MIN_OPSET` or above). fp16: float16 weights, input and output.
    dynamic: any height and width (the default); ``tile=T`` instead fixes the input to ``T x T``
    pixels (a multiple of the model's size multiple; sresr's engine then runs it on windows of
    that size). Returns an :class:`ExportReport`; raises :class:`ExportError` when the export fails
    or does not match, :class:`~sresr.errors.MissingDependencyError` without onnx/onnxruntime."""
    import numpy as np
    import torch

    from .atomic import atomic_write_bytes

    onnx, ort = _require()
    t0 = time.perf_counter()
    opset = int(opset)
    if opset < MIN_OPSET:
        raise UsageError(f"--opset {opset} is too old", hint=f"use {MIN_OPSET} or above (default {DEFAULT_OPSET})")
    newest = _max_opset()
    if newest is not None and opset > newest:
        raise UsageError(f"--opset {opset} is newer than this torch can export (at most {newest})",
                         hint=f"use {MIN_OPSET} to {newest} (default {DEFAULT_OPSET})")
    geo = loaded.geometry
    m = max(1, int(geo.size_multiple))
    if tile is not None:
        tile = int(tile)
        if tile < 1 or tile % m:
            raise UsageError(f"--tile {tile} is not a positive multiple of {m} (the size multiple of {loaded.name})",
                             hint=f"use a multiple of {m}, such as {max(m, (tile // m) * m or m)}")
        from .engine import UNKNOWN_RF_PAD

        pad = -(-(geo.receptive_field or UNKNOWN_RF_PAD) // m) * m
        if tile < 2 * pad + m:  # the engine could not run it: no core left inside the overlap
            raise UsageError(f"--tile {tile} is too small for {loaded.name}: its windows overlap by {pad} px on each "
                             f"side", hint=f"use --tile {2 * pad + m} or more (larger tiles waste less)")
        dynamic = False
    elif not dynamic:
        raise UsageError("a fixed-size export needs --tile T", hint="or export with dynamic height and width")
    shape = "dynamic" if dynamic else f"{tile}x{tile}"
    module, rewrites = _rewritten(loaded)
    reference_module = loaded.module.eval()
    # traced with at least two size multiples (attention windows) per axis, checked on another size,
    # not square: a size or a window count baked into the graph shows
    side = max(16, 2 * m)
    trace_in = _example(loaded, side) if dynamic else _example(loaded, tile)
    check_in = _example(loaded, side, (1, 2)) if dynamic else _example(loaded, tile)
    dtype = torch.float16 if fp16 else torch.float32
    try:
        data = _export_bytes(module.to(dtype), trace_in.to(dtype), opset, dynamic)
    except Exception as exc:
        text = " ".join(str(exc).split())[:300]
        raise ExportError(f"{loaded.weights_id} x{loaded.scale} cannot be exported to ONNX opset {opset}: "
                          f"{type(exc).__name__}: {text}", hint="try another --opset, or report it") from None
    proto = onnx.load_from_string(data)
    proto.producer_name = "sresr"
    from . import __version__

    proto.producer_version = __version__
    proto.doc_string = f"{loaded.weights_id} x{loaded.scale} ({loaded.colorspace}), exported by sresr {__version__}"
    # the check: onnxruntime CPU against the network as loaded, in fp32
    try:
        options = ort.SessionOptions()
        options.log_severity_level = 4  # failures come back as one line
        session = ort.InferenceSession(proto.SerializeToString(), options, providers=["CPUExecutionProvider"])
        feed = check_in.numpy().astype(np.float16 if fp16 else np.float32)
        got = session.run(None, {session.get_inputs()[0].name: feed})[0].astype(np.float32)
    except Exception as exc:
        text = " ".join(str(exc).split())[:300]
        raise ExportError(f"onnxruntime cannot run the export of {loaded.weights_id} x{loaded.scale}: {text}",
                          hint="try another --opset, or report it") from None
    with torch.inference_mode():
        want = reference_module(check_in).float().numpy()
    if got.shape != want.shape:
        raise ExportError(f"the export of {loaded.weights_id} gives shape {got.shape} on a {tuple(check_in.shape)} "
                          f"input, PyTorch {want.shape}", hint="report it (a size is fixed inside the network)")
    tolerance = (FP16_TOLERANCE if fp16 else FP32_TOLERANCE) * max(1.0, float(np.abs(want).max()))
    diff = float(np.abs(got.astype(np.float64) - want).max()) if got.size else 0.0
    if not np.isfinite(got).all() or diff > tolerance:
        raise ExportError(f"the export of {loaded.weights_id} x{loaded.scale} differs from PyTorch by {diff:.3g} "
                          f"(at most {tolerance:.3g} allowed); nothing was written",
                          hint="fp16 overflows in this network: export in fp32" if fp16 else "report it")
    meta = onnx_metadata(loaded, opset=opset, fp16=fp16, shape=shape, rewrites=rewrites, max_diff=diff)
    del proto.metadata_props[:]
    for key, value in meta.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    blob = proto.SerializeToString()
    path = Path(path)
    if path.is_dir():
        raise UsageError(f"the output {shown(path)} is a folder", hint="give a file path such as model.onnx")
    try:
        atomic_write_bytes(path, blob)
    except OSError as exc:
        raise ExportError(f"cannot write {shown(path)}: {exc.strerror or exc}") from None
    return ExportReport(path, opset, bool(fp16), shape, diff, tolerance, tuple(check_in.shape), rewrites,
                        time.perf_counter() - t0, len(blob), meta)
