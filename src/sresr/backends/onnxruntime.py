"""The onnxruntime backend: an ONNX file run by sresr's engine as if it were the torch module.

The invariant: **the engine cannot tell an** :class:`OrtModule` **from the network it replaces**.
It takes an ``N x C x H x W`` float tensor on the host and returns the ``N x C x sH x sW`` float32
output, so the tiler (exact, seamless stitching with the same receptive-field padding), the
colour handling (Y models: luma through the network, chroma by bicubic), TTA, outscale and the
file pipeline are the torch backend's code, unchanged. The engine skips only what is torch's own:
device placement, precision casts, the load-time rewrites and channels_last (the ONNX file
carries whatever rewrites it was exported with; its precision is the file's). ``tests/test_onnx.py``
proves it: the same outputs as the torch backend within 1/255, tiled equal to whole.

Three ways in:

- :func:`onnxruntime_model`: a loaded torch model, exported once into the cache
  (``$SRESR_HOME/onnx/``, keyed by the weights' sha256, model, options, scale, opset and
  precision; written atomically after the export check of :func:`sresr.export.export_onnx`).
- :func:`load_onnx`: a file made by ``sresr export`` (its ``sresr.*`` metadata gives scale, colour
  space, input kind, receptive field and size multiple), or one made elsewhere: its channels from
  the graph's input, its scale and size multiple found by probe runs on small inputs, its
  receptive field from ``tile_pad`` (``--tile-pad``; without it the engine's generous default
  overlap, with a warning that seams are possible).
- :func:`choose_providers`: the execution providers onnxruntime offers here (CUDA, DirectML,
  CoreML, OpenVINO, CPU), the first of those in that order by default.

A file with a fixed input size (``sresr export --tile T``) gets cores of at most ``T - 2 * pad``
(:func:`static_tile`) in windows of exactly ``T x T``, centred on their cores and shifted inside
the image (the engine passes the size to :func:`sresr.tiling.plan_tiles`), so its tiles are as
exact as a dynamic file's. Only an image smaller than ``T`` along an axis is padded there (edge
pixels repeated) up to ``T`` and its output cropped: near that bottom or right edge the repeated
pixels stand where the network would see its own zero padding, so those outputs can differ
slightly from a dynamic-size file's.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import SresrError, UsageError, shown
from . import require

__all__ = [
    "PROVIDERS",
    "AUTO_ORDER",
    "OrtModule",
    "choose_providers",
    "make_session",
    "load_onnx",
    "onnxruntime_model",
    "cached_export",
    "probe",
    "static_tile",
]

#: ``--provider`` names and onnxruntime's execution providers
PROVIDERS = {
    "cuda": "CUDAExecutionProvider",
    "directml": "DmlExecutionProvider",
    "coreml": "CoreMLExecutionProvider",
    "openvino": "OpenVINOExecutionProvider",
    "cpu": "CPUExecutionProvider",
}
#: ``--provider auto``: the first of these that onnxruntime offers here
AUTO_ORDER = ("cuda", "directml", "coreml", "openvino", "cpu")
_PACKAGES = {"cuda": "onnxruntime-gpu", "directml": "onnxruntime-directml", "openvino": "onnxruntime-openvino",
             "coreml": "onnxruntime (macOS build)", "cpu": "onnxruntime"}
#: probe inputs are about this many pixels high (the multiple added on top)
_PROBE_SIDE = 32
_PROBE_MULTIPLES = (1, 2, 4, 8, 16, 32, 64)


def _ort() -> Any:
    return require("onnxruntime", "the onnxruntime backend")


def choose_providers(provider: str = "auto", device: str = "auto") -> list[Any]:
    """onnxruntime's provider list for ``--provider`` (``auto``, ``cuda``, ``directml``, ``coreml``,
    ``openvino``, ``cpu`` or an onnxruntime name such as ``CUDAExecutionProvider``). ``auto``
    follows ``--device``: ``cpu`` -> CPU, ``cuda[:N]`` -> CUDA (on GPU N), ``mps`` -> CoreML, ``auto``
    -> the first of :data:`AUTO_ORDER` available. The CPU provider is always last, as fallback."""
    ort = _ort()
    available = list(ort.get_available_providers())
    name = (provider or "auto").strip()
    key = name.lower()
    dev = (device or "auto").strip().lower()
    options: dict[str, Any] = {}
    if key == "auto":
        if dev == "cpu":
            key = "cpu"
        elif dev.startswith("cuda"):
            key = "cuda"
        elif dev == "mps":
            key = "coreml"
        else:
            key = next(k for k in AUTO_ORDER if PROVIDERS[k] in available or k == "cpu")
    if dev.startswith("cuda:") and dev[5:].isdigit() and key == "cuda":
        options = {"device_id": int(dev[5:])}
    full = PROVIDERS.get(key) or next((p for p in available if p.lower() == key), None)
    if full is None or full not in available:
        want = full or name
        raise UsageError(f"onnxruntime here has no {want} (provider {name!r}{', from --device ' + dev if provider in ('', 'auto') else ''})",
                         hint=f"available: {', '.join(available)}; {key} needs the {_PACKAGES.get(key, 'matching onnxruntime')} "
                              "package instead of onnxruntime")
    chosen: list[Any] = [(full, options) if options else full]
    if full != "CPUExecutionProvider":
        chosen.append("CPUExecutionProvider")
    return chosen


def make_session(source: str | Path | bytes, providers: list[Any] | None = None, threads: int | None = None) -> Any:
    """An ``onnxruntime.InferenceSession`` (errors as one line; nothing logged)."""
    ort = _ort()
    so = ort.SessionOptions()
    so.log_severity_level = 4  # failures come back as exceptions, said in one line
    if threads:
        so.intra_op_num_threads = int(threads)
    try:
        return ort.InferenceSession(source if isinstance(source, bytes) else str(source), so,
                                    providers=providers or ["CPUExecutionProvider"])
    except Exception as exc:
        what = "the ONNX model" if isinstance(source, bytes) else shown(source)
        raise SresrError(f"onnxruntime cannot load {what}: {_short(exc)}",
                         hint="is it an ONNX file? (sresr export makes one)") from None


def _short(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text[:300] + ("..." if len(text) > 300 else "")


class OrtModule(torch.nn.Module):
    """An onnxruntime session that behaves like the torch module it replaces (module docstring).

    ``sresr_external`` (a description: runtime, provider, file precision) tells the engine to run
    it as given: host float32 windows, no device, precision or rewrite of its own. Not copied by
    ``copy.deepcopy`` (a session is immutable and its ``run`` thread-safe)."""

    def __init__(self, session: Any, source: str = ""):
        super().__init__()
        self.session = session
        self.source = source
        inp, out = session.get_inputs()[0], session.get_outputs()[0]
        self.input_name, self.output_name = inp.name, out.name
        self.half = inp.type == "tensor(float16)"
        if inp.type not in ("tensor(float)", "tensor(float16)"):
            raise UsageError(f"{shown(source) or 'the ONNX model'} takes {inp.type}, not float",
                             hint="sresr runs networks on float images in [0, 1]")
        if out.type not in ("tensor(float)", "tensor(float16)"):
            raise UsageError(f"{shown(source) or 'the ONNX model'} returns {out.type}, not float",
                             hint="sresr runs networks that return float images in [0, 1]")
        shape = list(inp.shape)
        if len(shape) != 4:
            raise UsageError(f"{shown(source) or 'the ONNX model'} takes a {len(shape)}-d input, not N x C x H x W")
        self.channels = shape[1] if isinstance(shape[1], int) else None
        self.fixed_batch = shape[0] if isinstance(shape[0], int) else None
        h, w = shape[2], shape[3]
        self.window = (h, w) if isinstance(h, int) and isinstance(w, int) else None
        self.provider = session.get_providers()[0]
        self.sresr_external = f"onnxruntime {self.provider} ({'fp16' if self.half else 'fp32'} file)"

    def __deepcopy__(self, memo: dict[int, Any]) -> "OrtModule":
        return self

    def extra_repr(self) -> str:
        return f"{self.source or 'bytes'}, {self.provider}, window={self.window or 'dynamic'}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.fixed_batch is not None and x.shape[0] != self.fixed_batch:
            if self.fixed_batch != 1:
                raise UsageError(f"{shown(self.source)} takes batches of {self.fixed_batch} only", hint="use --batch 1")
            return torch.cat([self.forward(x[i : i + 1]) for i in range(x.shape[0])], dim=0)
        h, w = int(x.shape[2]), int(x.shape[3])
        if self.window is not None and (h, w) != self.window:
            th, tw = self.window
            if h > th or w > tw:
                raise UsageError(f"{shown(self.source)} takes {th} x {tw} inputs, got a {h} x {w} window",
                                 hint=f"use --tile {max(1, min(th, tw))} or less")
            x = F.pad(x.float(), (0, tw - w, 0, th - h), mode="replicate")
        a = x.detach().to("cpu", torch.float32).contiguous().numpy()
        if self.half:
            a = a.astype(np.float16)
        try:
            y = self.session.run([self.output_name], {self.input_name: a})[0]
        except Exception as exc:
            raise SresrError(f"onnxruntime failed on a {' x '.join(map(str, a.shape))} input: {_short(exc)}",
                             hint="check the file, or run with --backend torch") from None
        out = torch.from_numpy(np.ascontiguousarray(y, dtype=np.float32))
        if self.window is not None and (h, w) != self.window:
            s = out.shape[2] // self.window[0]
            out = out[:, :, : h * s, : w * s]
        return out


def probe(module: OrtModule, channels: int) -> tuple[int, int]:
    """(scale, size multiple) of an ONNX network without metadata, from runs on small random inputs
    (non-square, so both axes are checked): the smallest multiple at which it runs and returns
    an integer multiple of its input size."""
    gen = torch.Generator().manual_seed(0)
    if module.window is not None:
        h, w = module.window
        out = module(torch.rand((1, channels, h, w), generator=gen))
        return _scale_of(module, (h, w), out, channels), 1
    last: str = ""
    for m in _PROBE_MULTIPLES:
        h = -(-_PROBE_SIDE // m) * m + m
        w = h + m
        try:
            out = module(torch.rand((1, channels, h, w), generator=gen))
        except SresrError as exc:
            last = exc.message
            continue
        if out.dim() == 4 and out.shape[2] % h == 0 and out.shape[3] % w == 0 and out.shape[2] // h == out.shape[3] // w:
            return _scale_of(module, (h, w), out, channels), m
        last = f"a {h} x {w} input gave {tuple(out.shape)}"
    raise UsageError(f"cannot find the scale of {shown(module.source)} by probe runs ({last})",
                     hint="export it with 'sresr export' (which records the scale), or check that it is an SR network")


def _scale_of(module: OrtModule, size: tuple[int, int], out: torch.Tensor, channels: int) -> int:
    h, w = size
    if out.dim() != 4 or out.shape[2] % h or out.shape[3] % w or out.shape[2] // h != out.shape[3] // w or out.shape[2] < h:
        raise UsageError(f"{shown(module.source)} maps a {h} x {w} input to {tuple(out.shape)}: not an integer upscale",
                         hint="sresr runs networks whose output is s times their input")
    if out.shape[1] != channels:
        raise UsageError(f"{shown(module.source)} turns {channels} channel(s) into {out.shape[1]}",
                         hint="sresr runs networks whose output has the channels of their input (RGB or luma)")
    return int(out.shape[2] // h)


def _check_metadata_scale(module: OrtModule, channels: int, scale: int, multiple: int) -> None:
    """One small run: the file must turn ``channels`` x H x W into ``channels`` x sH x sW, as its
    metadata says (a file whose metadata was edited or belongs to another network fails here in
    one line, not at the first image)."""
    gen = torch.Generator().manual_seed(0)
    if module.window is not None:
        h, w = module.window
    else:
        h = -(-16 // multiple) * multiple + multiple
        w = h + multiple
    out = module(torch.rand((1, channels, h, w), generator=gen))
    found = _scale_of(module, (h, w), out, channels)
    if found != scale:
        raise UsageError(f"{shown(module.source)} says it is a x{scale} network, but it upscales x{found}",
                         hint="export it again with 'sresr export'")


def _geometry(rf: int, multiple: int, exact: bool) -> Any:
    from ..spec import Geometry

    return Geometry(int(rf), max(1, int(multiple)), bool(exact))


def _loaded(**fields: Any) -> Any:
    from ..resolve import LoadedModel

    return LoadedModel(**fields)


def load_onnx(path: str | Path, scale: int | None = None, tile_pad: int | None = None, provider: str = "auto",
              device: str = "auto", threads: int | None = None) -> tuple[Any, list[str]]:
    """An ONNX file as a LoadedModel run by onnxruntime, and the warnings to show once.

    ``scale`` matters only for pre-upsampling networks (which run at any scale); a file's own scale
    is otherwise its metadata's (or the probe's). ``tile_pad``: the receptive field of a file
    without sresr metadata (see the module docstring)."""
    from ..download import sha256_file
    from ..registry import entries
    from ..spec import ModelSpec

    p = Path(path).expanduser()
    if not p.is_file():
        raise UsageError(f"ONNX file {shown(p)} not found" if not p.is_dir() else f"{shown(p)} is a folder, not an ONNX file")
    session = make_session(p, choose_providers(provider, device), threads)
    module = OrtModule(session, str(p))
    meta = dict(session.get_modelmeta().custom_metadata_map or {})
    warnings: list[str] = []
    if meta.get("sresr.format"):
        try:
            file_scale = int(meta["sresr.scale"])
            colorspace = meta.get("sresr.colorspace", "rgb")
            kind = meta.get("sresr.input", "lr")
            geo = _geometry(int(meta.get("sresr.receptive_field", "0")), int(meta.get("sresr.size_multiple", "1")),
                            meta.get("sresr.exact", "true") == "true")
            kwargs = json.loads(meta.get("sresr.kwargs", "{}"))
        except (KeyError, ValueError) as exc:
            raise UsageError(f"{shown(p)} has damaged sresr metadata ({exc})", hint="export it again") from None
        from ..export import FORMAT_VERSION

        if (meta.get("sresr.format") != FORMAT_VERSION or colorspace not in ("rgb", "y")
                or kind not in ("lr", "upsampled") or file_scale < 1 or not isinstance(kwargs, dict)):
            raise UsageError(f"{shown(p)} has sresr metadata this version does not understand",
                             hint="export it again with this sresr")
        _check_metadata_scale(module, 1 if colorspace == "y" else 3, file_scale if kind == "lr" else 1,
                              geo.size_multiple)
        name = meta.get("sresr.model", "onnx")
        weights_id = meta.get("sresr.weights") or str(p)
        sha = meta.get("sresr.weights_sha256") or sha256_file(p)
        s = int(scale) if scale is not None and kind == "upsampled" else file_scale
        entry = entries().get(name)
        if entry is not None and entry.spec is not None:
            spec = entry.spec
        else:
            spec = ModelSpec(name=name, factory=_not_buildable, scales=(s,), colorspace=colorspace, input=kind,
                             receptive_field=geo.receptive_field, size_multiple=geo.size_multiple,
                             description=f"ONNX file {p.name}")
    else:
        channels = module.channels or 3
        if channels not in (1, 3):
            raise UsageError(f"{shown(p)} takes {channels} channels", hint="sresr runs RGB (3) or luma (1) networks")
        s, multiple = probe(module, channels)
        colorspace = "y" if channels == 1 else "rgb"
        kind = "lr"
        # without --tile-pad the receptive field is unknown (0): the engine says so when it tiles
        geo = _geometry(int(tile_pad or 0), multiple, tile_pad is not None)
        if channels == 1:
            warnings.append(f"{p.name} takes one channel: it is run on BT.601 luma, chroma by bicubic")
        name, weights_id, sha, kwargs = p.name, str(p), sha256_file(p), {}
        spec = ModelSpec(name=name, factory=_not_buildable, scales=(s,), colorspace=colorspace, input=kind,
                         receptive_field=geo.receptive_field, size_multiple=geo.size_multiple,
                         description=f"ONNX file {p.name} (made elsewhere)")
    if module.window is not None:
        warnings.append(f"{p.name} takes a fixed {module.window[0]} x {module.window[1]} input: an image smaller "
                        "than that is padded to it (edge pixels repeated), so its pixels near the bottom and right "
                        "edges can differ from the network's own output (export without --tile for exact results)")
    if module.channels is not None and module.channels != (1 if colorspace == "y" else 3):
        raise UsageError(f"{shown(p)} takes {module.channels} channels but its metadata says {colorspace}")
    loaded = _loaded(module=module, spec=spec, scale=s, colorspace=colorspace, weights_id=weights_id,
                     kwargs=dict(kwargs), weights_sha256=sha, geometry=geo)
    return loaded, warnings


def _not_buildable(scale: int = 1, **kwargs: Any) -> Any:
    raise UsageError("an ONNX file cannot be rebuilt as a PyTorch network", hint="use the original model name")


def cached_export(loaded: Any, opset: int | None = None, fp16: bool = False) -> Path:
    """The ONNX export of ``loaded`` in the cache (``onnx/MODEL-xS-KEY.onnx``), made on first use
    (checked, atomically written; see :func:`sresr.export.export_onnx`); a file damaged since is
    found by :func:`onnxruntime_model`, which opens it."""
    from .. import cache
    from ..export import DEFAULT_OPSET, export_key, export_onnx

    opset = DEFAULT_OPSET if opset is None else int(opset)
    key = export_key(loaded, opset=opset, fp16=fp16)
    folder = cache.home() / "onnx"
    path = folder / f"{loaded.name}-x{int(loaded.scale)}{'-fp16' if fp16 else ''}-{key[:24]}.onnx"
    if path.is_file():  # written atomically, after its check (export_onnx): whole
        return path
    with cache.writing("an ONNX export", folder):
        folder.mkdir(parents=True, exist_ok=True)
        export_onnx(loaded, path, opset=opset, fp16=fp16)
    return path


def onnxruntime_model(loaded: Any, provider: str = "auto", device: str = "auto", precision: str = "auto",
                      threads: int | None = None, opset: int | None = None) -> Any:
    """``loaded`` (a torch LoadedModel) run by onnxruntime: its export from the cache (made on first
    use), with the same spec, scale, colour space, weights id and sha256 and geometry, so outputs
    and their records are the torch backend's. ``precision`` ``fp16`` uses an fp16 export; ``auto``
    and ``fp32`` an fp32 one."""

    if isinstance(getattr(loaded, "module", None), OrtModule):
        return loaded
    _ort()  # missing: said as the backend's need, not the export's
    p = (precision or "auto").lower()
    if p not in ("auto", "fp32", "fp16"):
        raise UsageError(f"--precision {precision} is not offered by the onnxruntime backend",
                         hint="use fp32 (or auto), or fp16 for a half-precision export")
    providers = choose_providers(provider, device)
    path = cached_export(loaded, opset=opset, fp16=p == "fp16")
    try:
        session = make_session(path, providers, threads)
    except SresrError:  # damaged in the cache since it was written: made again, once
        path.unlink(missing_ok=True)
        path = cached_export(loaded, opset=opset, fp16=p == "fp16")
        session = make_session(path, providers, threads)
    module = OrtModule(session, str(path))
    return replace(loaded, module=module)


def static_tile(module: Any, tile: int | None, tile_pad: int | None, geometry: Any) -> int | None:
    """The tile (core size) for a file with a fixed ``T x T`` input: ``T - 2 * pad`` (the pad
    rounded up to the size multiple), or the smaller ``tile`` asked for; the engine then plans
    windows of exactly ``T``. None (the engine's default) for a dynamic file."""
    window = getattr(module, "window", None)
    if window is None:
        return tile
    from ..engine import UNKNOWN_RF_PAD

    m = max(1, int(geometry.size_multiple))
    rf = int(geometry.receptive_field)
    pad = int(tile_pad) if tile_pad is not None else (rf if rf > 0 else UNKNOWN_RF_PAD)
    pad = -(-pad // m) * m
    core = (min(window) - 2 * pad) // m * m
    if core < m:
        raise UsageError(f"the ONNX file takes {window[0]} x {window[1]} inputs, too small for a tile overlap of {pad} px",
                         hint="export it with a larger --tile, or give a smaller --tile-pad (seams are then possible)")
    if tile is None or tile == 0 or tile > core:
        return core
    return tile
