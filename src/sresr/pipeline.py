"""Upscaling files and folders: the library behind ``sresr upscale``.

- :func:`upscale_file`: one file in, one file out.
- :func:`upscale_paths`: files and folders in, an output folder out. Decoding and encoding run
  in background threads while the model computes; every output is written atomically (a hidden
  temporary file renamed into place), so an interrupted run leaves only complete files and the
  same command run again skips them (unless ``overwrite``). Each output records what made it
  (:class:`OutputRecord`: model, weights sha256, scale, output options, input sha256); an existing
  output that another model, option or input made (or that holds no record) is never skipped as
  done nor silently replaced: it fails with a line saying how it differs. A bad input becomes one
  :class:`FileResult` with ``status="failed"`` and a one-line ``error``; the others go on.
  Inputs are never overwritten. Under ``torchrun`` (``RANK`` / ``WORLD_SIZE`` in the
  environment) each rank takes every ``WORLD_SIZE``-th input, so each output has one writer.

This module does not import torch at import time.
"""

from __future__ import annotations

import functools
import json
import math
import os
import re
import stat
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, Literal, Sequence

from . import ranks
from .download import sha256_file
from .errors import NoSpaceError, SresrError, UsageError, shown
from .imaging.io import (
    DEFAULT_MAX_PIXELS,
    DEFAULT_PNG_COMPRESSION,
    FORMATS,
    format_for_path,
    output_depth,
    read_image,
    remove_stale_temps,
    write_image,
)
from .video import VIDEO_EXTENSIONS, VideoOptions, read_media_record

if TYPE_CHECKING:  # pragma: no cover
    from .engine import Upscaler
    from .imaging.io import Image
    from .resolve import Request

__all__ = [
    "UpscaleOptions",
    "Job",
    "FileResult",
    "OutputRecord",
    "Reporter",
    "IMAGE_EXTENSIONS",
    "collect_jobs",
    "shard",
    "default_model",
    "make_upscaler",
    "resolve_scale",
    "parse_threads",
    "upscale_file",
    "upscale_paths",
]

#: Files a folder contributes (by extension, case-insensitive). Files named explicitly are
#: always tried.
IMAGE_EXTENSIONS = frozenset(
    {".png", ".jpg", ".jpeg", ".jpe", ".webp", ".tif", ".tiff", ".bmp", ".gif", ".tga", ".ppm", ".pgm", ".pnm", ".jp2"}
)

Status = Literal["ok", "skipped", "failed"]


@dataclass(frozen=True)
class UpscaleOptions:
    """What ``sresr upscale`` takes besides the inputs and the output folder.

    model: ``NAME`` or ``NAME.TAG``; None = the best model with bundled weights for ``scale``.
    scale: the output's scale; None = the weights' (or the model's default) scale. A scale the
    model has no weights for (``3.5``; ``2`` for an x4-only model) is reached as Real-ESRGAN's
    ``--outscale`` is: the model at the smallest scale above it (else its largest), then bicubic
    resampling (:func:`resolve_scale`).
    weights: ``MODEL.TAG`` or a weights file (see :func:`sresr.load_model`).
    tile: core size in input pixels (None = default, 0 = whole image); tile_pad: None = the
    model's receptive field; batch: tiles per forward pass; frame_batch: video frames upscaled
    together (None = :meth:`sresr.engine.Upscaler.frames_per_pass`: on CUDA as many small frames a
    pass as the free memory holds, else one).
    format: ``same`` (the input's format where writable, else PNG), png, jpg, webp or tiff.
    quality: JPEG/WebP quality; png_compression: PNG zlib level 0-9 (:func:`sresr.imaging.io.encode_image`).
    suffix: appended to the file stem of each output.
    outscale: final scale, reached by bicubic resampling of the model's output.
    """

    model: str | None = None
    scale: float | None = None
    weights: str | None = None
    device: str = "auto"
    precision: str = "auto"
    tile: int | None = None
    tile_pad: int | None = None
    batch: int = 1
    frame_batch: int | None = None
    format: str = "same"
    quality: int = 95
    png_compression: int = DEFAULT_PNG_COMPRESSION
    suffix: str = ""
    overwrite: bool = False
    outscale: float | None = None
    max_pixels: int | None = DEFAULT_MAX_PIXELS
    recursive: bool = False
    tta: bool = False  # x8 self-ensemble (:class:`sresr.engine.Upscaler`'s ``tta``)
    #: Real-ESRGAN's ``-dn``: mix the weights with their denoising companion (:func:`sresr.resolve.load`)
    denoise_strength: float | None = None
    #: threads that decode inputs, compute on the CPU (torch; None = torch's default) and encode
    #: outputs (None = :func:`encoder_threads` of the device)
    decode_threads: int = 2
    compute_threads: int | None = None
    encode_threads: int | None = None
    #: what runs the network (:mod:`sresr.backends`): ``torch``, or ``onnxruntime`` (the model's
    #: ONNX export, made once into the cache; a ``.onnx`` file as ``model`` always runs there) on
    #: ``provider`` (``auto``: from ``device``, see :func:`sresr.backends.onnxruntime.choose_providers`)
    backend: str = "torch"
    provider: str = "auto"
    #: how videos are written (codec, crf, preset, pixel format, container, segments); images ignore it
    video: VideoOptions = field(default_factory=VideoOptions)


@dataclass(frozen=True)
class Job:
    source: Path
    output: Path
    error: str | None = None  # a problem known before decoding (collision, would overwrite input)


@dataclass(frozen=True)
class FileResult:
    path: str
    output: str | None
    status: Status
    seconds: float
    error: str | None = None
    input_pixels: int = 0
    warning: str | None = None  # written, but not all of the input (e.g. one frame of an animation)
    frames: int | None = None  # videos and animations: frames written
    repeated_frames: int | None = None  # videos: bad frames replaced by the previous one

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("input_pixels")
        for key in ("frames", "repeated_frames"):  # image records keep their keys
            if d[key] is None:
                d.pop(key)
        return d


class Reporter:
    """Progress callbacks (all called from the calling thread). The default does nothing."""

    def start(self, jobs: Sequence[Job], description: str) -> None: ...

    def warn(self, message: str) -> None: ...

    def image_started(self, job: Job) -> None: ...

    def tiles(self, done: int, total: int) -> None: ...

    def frames(self, done: int, total: int, fps: float) -> None:
        """A video's or animation's progress (total: 0 when the file does not say)."""

    def image_done(self, result: FileResult) -> None: ...

    def finish(self, results: Sequence[FileResult]) -> None: ...


# -- planning ---------------------------------------------------------------------------------


def _natural_key(p: Path) -> list[object]:
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", str(p))]


def _output_name(source: Path, fmt: str, suffix: str, video: VideoOptions | None = None) -> str:
    from .video import is_animated, is_video_path, output_suffix

    if is_video_path(source):  # --format is for images; a video keeps its container (or --container)
        return f"{source.stem}{suffix}{output_suffix(source, video or VideoOptions())}"
    if fmt == "same":
        ext = source.suffix.lower()
        if format_for_path(source) is None:
            ext = ".gif" if ext == ".gif" and is_animated(source) else ".png"  # an animation stays one
    else:
        ext = FORMATS[fmt]
    return f"{source.stem}{suffix}{ext}"


def _inside(path: Path, folder: Path) -> bool:
    try:
        path.relative_to(folder)
        return True
    except ValueError:
        return False


def _check_suffix(suffix: str) -> None:
    """A suffix is part of a file name: no folder separators, nothing unprintable."""
    bad = [c for c in ("/", "\\", os.sep, os.altsep or "/") if c in suffix]
    if bad or not suffix.isprintable() or suffix in (".", ".."):
        raise UsageError(f"--suffix {shown(suffix)} is not a file-name part",
                         hint="a suffix is added to each output's name: no '/' or '\\', no control characters")


def _format_name(options: UpscaleOptions) -> str:
    """``--format`` in its canonical spelling (``jpeg`` -> ``jpg``, ``tif`` -> ``tiff``)."""
    fmt = options.format.lower()
    return {"jpeg": "jpg", "tif": "tiff"}.get(fmt, fmt)


def collect_jobs(inputs: Iterable[str | os.PathLike[str]], outdir: str | os.PathLike[str], options: UpscaleOptions) -> list[Job]:
    """Expand files and folders into jobs (source -> output), in a stable natural order.

    Missing inputs and an empty selection are :class:`UsageError`; outputs that would collide
    or overwrite an input become jobs with an ``error``. Every output lies inside ``outdir``.
    A folder scan leaves out the output folder when that lies inside the scanned folder (the
    outputs of an earlier run), never the inputs themselves.
    """
    fmt = _format_name(options)
    if fmt != "same" and fmt not in FORMATS:
        raise UsageError(f"unknown format '{options.format}'", hint=f"use same, {', '.join(FORMATS)}")
    if not 0 <= options.png_compression <= 9:
        raise UsageError(f"PNG compression must be 0-9, got {options.png_compression}")
    _check_suffix(options.suffix)
    out_root = Path(outdir)
    if out_root.exists() and not out_root.is_dir():
        raise UsageError(f"the output {shown(out_root)} is a file, not a folder", hint="-o takes a folder (new or existing)")
    out_abs = out_root.resolve()
    pairs: list[tuple[Path, Path]] = []  # (source, relative output path)
    for raw in inputs:
        src = Path(raw)
        if src.is_dir():
            src_abs = src.resolve()
            out_below = out_abs != src_abs and _inside(out_abs, src_abs)  # -o inside the scanned folder
            pattern = "**/*" if options.recursive else "*"
            found = []
            for p in src.glob(pattern):
                rel = p.relative_to(src)
                if any(part.startswith(".") for part in rel.parts):
                    continue  # hidden files, our own temporary files
                if not p.is_file() or p.suffix.lower() not in IMAGE_EXTENSIONS | VIDEO_EXTENSIONS:
                    continue
                if out_below and _inside(p.resolve(), out_abs):
                    continue  # outputs of an earlier run inside the input tree
                found.append(p)
            for p in sorted(found, key=_natural_key):
                rel = p.relative_to(src)
                pairs.append((p, rel.parent / _output_name(p, fmt, options.suffix, options.video)))
        elif src.exists():
            pairs.append((src, Path(_output_name(src, fmt, options.suffix, options.video))))
        else:
            raise UsageError(f"input {shown(src)} does not exist")
    if not pairs:
        names = ", ".join(shown(p) for p in inputs)
        hint = "add -r to search sub-folders" if not options.recursive else None
        raise UsageError(f"no images found in {names}", hint=hint)
    sources = {p.resolve(): p for p, _ in pairs}
    seen: dict[Path, Path] = {}
    root_text = os.path.abspath(out_root)
    jobs = []
    for src, rel in pairs:
        out = out_root / rel
        key = out.resolve()
        error = None
        if os.path.commonpath([root_text, os.path.abspath(out)]) != root_text:  # never outside -o
            error = f"{shown(src)}: its output {shown(out)} would lie outside {shown(out_root)}"
        elif key in sources:
            error = (f"{shown(src)}: its output {shown(out)} would overwrite the input {shown(sources[key])}; "
                     "use another -o folder or a --suffix")
        elif key in seen:
            error = f"{shown(src)}: its output {shown(out)} is also the output of {shown(seen[key])}; use --suffix or --format"
        else:
            seen[key] = src
        jobs.append(Job(src, out, error))
    return jobs


def shard(jobs: Sequence[Job], rank: int | None = None, world_size: int | None = None) -> list[Job]:
    """The jobs of one rank: every ``world_size``-th, from ``RANK`` / ``WORLD_SIZE`` by default."""
    rank = ranks.rank() if rank is None else rank
    world_size = ranks.world_size() if world_size is None else world_size
    if world_size < 1 or not 0 <= rank < world_size:
        raise UsageError(f"invalid RANK={rank} / WORLD_SIZE={world_size}")
    return [j for i, j in enumerate(jobs) if i % world_size == rank]


def _metric(w: Any) -> float:
    best = float("-inf")
    for key, value in dict(w.metrics).items():
        k = key.lower()
        if "psnr" in k and "set5" in k:
            best = max(best, float(value))
    return best


def default_model(scale: int | None = None) -> tuple[str, int]:
    """The best registered ``MODEL.TAG`` with bundled weights for ``scale`` (x4 preferred when
    ``scale`` is None): a declared default first, then the higher Set5 PSNR, then the larger
    network. Raises :class:`UsageError` when no model bundles weights."""
    from .registry import entries

    candidates = []
    for name, entry in entries().items():
        spec = entry.spec
        if spec is None:
            continue
        for w in spec.weights:
            if not w.file or (scale is not None and w.scale != scale):
                continue
            key = (w.default, w.scale == 4, _metric(w), int(spec.num_params.get(w.scale, 0)))
            candidates.append((key, f"{name}.{w.tag}", w.scale))
    if not candidates:
        which = f"x{scale}" if scale else "any scale"
        raise UsageError(
            f"no installed model bundles weights for {which}",
            hint="choose one with -m MODEL (see 'sresr models') and give --weights FILE if it has none",
        )
    candidates.sort(key=lambda c: c[0], reverse=True)
    return candidates[0][1], candidates[0][2]


def _request(options: UpscaleOptions) -> "Request | None":
    """What the options' model and weights name (:func:`sresr.resolve.resolve`), or None for the
    default bundled model. A foreign checkpoint is read at the scale asked for, if whole."""
    from .resolve import resolve

    if options.model is None and options.weights is None:
        return None
    s = options.scale
    whole = int(s) if isinstance(s, (int, float)) and not isinstance(s, bool) and math.isfinite(s) \
        and 1 <= s <= 64 and float(s).is_integer() else None
    return resolve(options.model, options.weights, whole)


def _bundled_scales() -> set[int]:
    from .registry import entries

    return {w.scale for e in entries().values() if e.spec is not None for w in e.spec.weights if w.file}


def resolve_scale(options: UpscaleOptions, upscaler: "Upscaler | None" = None,
                  request: "Request | None" = None) -> UpscaleOptions:
    """``options`` with ``scale`` a whole scale the model has weights for (or None) and
    ``outscale`` set where ``scale`` asked for another one: ``-s 3.5`` or ``-s 2`` with x4-only
    weights run the model at the smallest of its scales above (else its largest) and resample, as
    Real-ESRGAN's ``--outscale`` does. ``upscaler``: the model is already chosen."""
    s = options.scale
    if s is None:
        return options
    if isinstance(s, bool) or not isinstance(s, (int, float)) or not math.isfinite(s) or not 0 < s <= 64:
        raise UsageError(f"invalid scale {s!r}", hint="give a number above 0 and at most 64, such as -s 4 or -s 2.5")
    if upscaler is not None:
        scales = {upscaler.scale}
    else:
        request = request if request is not None else _request(options)
        scales = set(request.scales) if request is not None else _bundled_scales()
    if float(s).is_integer() and int(s) in scales:
        return replace(options, scale=int(s))
    if not scales:
        raise UsageError("no installed model bundles weights", hint="choose one with -m MODEL and --weights FILE")
    if options.outscale is not None:
        raise UsageError(f"the model has no x{s:g} weights (it has {', '.join(f'x{x}' for x in sorted(scales))}) "
                         "and --outscale is given too", hint=f"use -s {min(scales)} --outscale {options.outscale:g}, "
                         f"or -s {s:g} alone")
    model_scale = min((x for x in scales if x >= s), default=max(scales))
    return replace(options, scale=model_scale, outscale=float(s))


def parse_threads(text: str) -> dict[str, int]:
    """``LOAD:PROC:SAVE`` (realesrgan-ncnn-vulkan's ``-j``: ``2:4:2``; a part left empty keeps
    its default) -> the :class:`UpscaleOptions` thread fields it sets."""
    parts = text.split(":")
    fields = ("decode_threads", "compute_threads", "encode_threads")
    bad = UsageError(f"invalid -j {text!r}", hint="write LOAD:PROC:SAVE thread counts, such as -j 2:4:2 (or -j ::4)")
    if len(parts) != 3:
        raise bad
    out = {}
    for field_name, part in zip(fields, parts):
        if not part.strip():
            continue
        if not part.strip().isdigit() or not 1 <= int(part) <= 256:
            raise bad
        out[field_name] = int(part)
    return out


def make_upscaler(options: UpscaleOptions) -> "Upscaler":
    """Load the model the options name (or the default one) on the backend they name into an
    :class:`Upscaler` (and tune the process's allocator for tiled work, see
    :func:`sresr.engine.tune_cpu_allocator`). A ``.onnx`` file given as ``-m``/``-w`` runs at its
    own scale (a ``-s`` it is not made for becomes an outscale); the warnings of its load are the
    upscaler's. The loading is :func:`sresr.backends.load`'s; the engine is the torch backend's on
    either backend (see :mod:`sresr.backends`)."""
    from . import backends
    from .engine import Upscaler, tune_cpu_allocator
    from .resolve import resolve

    tune_cpu_allocator()
    if options.compute_threads is not None:
        import torch

        torch.set_num_threads(options.compute_threads)
    backend = backends.check_backend(options.backend)
    model: Any = options.model
    weights, scale = options.weights, options.scale
    if not (backends.is_onnx_ref(options.model) or backends.is_onnx_ref(options.weights)):
        request = _request(options)  # resolved once: the weights file is read here only
        options = resolve_scale(options, request=request)
        scale = None if options.scale is None else int(options.scale)
        if request is None:
            name, scale = default_model(scale)
            request = resolve(name, None, scale)
        model, weights = request, None
    got = backends.load(model, scale, weights=weights, backend=backend, provider=options.provider,
                        device=options.device, precision=options.precision, threads=options.compute_threads,
                        tile_pad=options.tile_pad, denoise=options.denoise_strength)
    on_torch = got.backend == "torch"  # onnxruntime: host float32 windows, the file's own precision
    up = Upscaler(got.model, device=options.device if on_torch else "cpu",
                  precision=options.precision if on_torch else "fp32", tile=options.tile, tile_pad=options.tile_pad,
                  batch=options.batch, tta=options.tta, frame_batch=options.frame_batch)
    up.warnings.extend(got.notes)
    return up


# -- running ------------------------------------------------------------------------------------


def upscale_file(
    source: str | os.PathLike[str],
    output: str | os.PathLike[str],
    upscaler: "Upscaler | None" = None,
    options: UpscaleOptions | None = None,
) -> Path:
    """Upscale one file to ``output`` (format from its extension). Raises on any problem.

    Of an animation or a multi-page file, only the first frame is upscaled (``upscale_paths``
    reports that as the result's ``warning``)."""
    options = options or UpscaleOptions()
    source, output = Path(source), Path(output)
    fmt = format_for_path(output)
    if fmt is None:
        raise UsageError(f"cannot write {shown(output)}: sresr writes {', '.join(sorted(set(FORMATS.values())))} files",
                         hint="give the output one of those extensions")
    if output.is_dir():
        raise UsageError(f"the output {shown(output)} is a folder", hint="give a file path")
    if output.exists() and source.exists() and os.path.samefile(source, output):
        raise UsageError(f"refusing to overwrite the input {shown(source)}", hint="write to another path")
    upscaler = upscaler or make_upscaler(options)
    options = resolve_scale(options, upscaler)  # -s beyond the model's scale: its outscale
    image = read_image(source, max_pixels=options.max_pixels)
    result = upscaler.upscale_image(image, outscale=options.outscale, depth=output_depth(image, fmt))
    record = OutputRecord.make(upscaler, options, fmt, image.source_sha256)
    return write_image(output, result, format=fmt, quality=options.quality, png_compression=options.png_compression,
                       record=record.to_text())


@dataclass(frozen=True)
class OutputRecord:
    """What made an output, stored inside it (:func:`sresr.imaging.io.encode_image`'s ``record``:
    a PNG text chunk, a TIFF ImageDescription, a JPEG comment, WebP XMP), so a rerun skips an
    existing output only when the same model, weights, scale, output options and input made it.
    Tile size, batch, device and thread count are left out: they do not change the pixels beyond
    rounding (tiling is exact)."""

    model: str
    weights: str  # the weights' id ("fsrcnn.x2", a path...); compared only when no sha256 is known
    weights_sha256: str
    scale: int
    outscale: float | None
    format: str
    quality: int | None  # JPEG/WebP only
    png_compression: int | None  # PNG only
    input_sha256: str
    tta: bool = False  # x8 self-ensemble (records made before it existed read as False)

    VERSION = 1

    @classmethod
    def make(cls, upscaler: "Upscaler", options: UpscaleOptions, fmt: str, input_sha256: str) -> "OutputRecord":
        loaded = upscaler.loaded
        outscale = None if options.outscale is None or math.isclose(options.outscale, upscaler.scale) \
            else float(options.outscale)
        return cls(
            model=loaded.name,
            weights=loaded.weights_id,
            weights_sha256=loaded.weights_sha256,
            scale=int(upscaler.scale),
            outscale=outscale,
            format=fmt,
            quality=int(options.quality) if fmt in ("jpg", "webp") else None,
            png_compression=int(options.png_compression) if fmt == "png" else None,
            input_sha256=input_sha256,
            tta=upscaler.tta,
        )

    def to_text(self) -> str:
        return json.dumps({"sresr": self.VERSION, **asdict(self)}, sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_text(cls, text: str | None) -> "OutputRecord | None":
        try:
            data = json.loads(text) if text else None
            if not isinstance(data, dict) or data.pop("sresr", None) != cls.VERSION:
                return None
            return cls(**data)
        except (ValueError, TypeError):
            return None

    def same_output(self, other: "OutputRecord") -> bool:
        mine, theirs = asdict(self), asdict(other)
        if self.weights_sha256 and other.weights_sha256:
            mine.pop("weights"), theirs.pop("weights")  # the same file under another name or path
        return mine == theirs

    def differences(self, other: "OutputRecord") -> str:
        """How ``other`` (what made an existing output) differs from this run, in words."""
        if self.input_sha256 != other.input_sha256 and self.model_part() == other.model_part():
            return "made from another version of the input"
        parts = []
        if self.model_part() != other.model_part():
            parts.append(f"made by {other.model_part()} (this run: {self.model_part()})")
        if (self.format, self.quality, self.png_compression) != (other.format, other.quality, other.png_compression):
            parts.append(f"written as {other.options_part()} (this run: {self.options_part()})")
        if self.input_sha256 != other.input_sha256:
            parts.append("from another version of the input")
        return ", ".join(parts) or "made with other settings"

    def model_part(self) -> str:
        weights = self.weights if self.weights != self.model else "no weights"
        text = f"{self.model} ({weights}{', sha256 ' + self.weights_sha256[:12] if self.weights_sha256 else ''}) x{self.scale}"
        text += " with --tta" if self.tta else ""
        return text + (f" to x{self.outscale:g}" if self.outscale is not None else "")

    def options_part(self) -> str:
        extra = f" quality {self.quality}" if self.quality is not None else (
            f" compression {self.png_compression}" if self.png_compression is not None else "")
        return f"{self.format}{extra}"


def _existing_output(job: Job, want: "Callable[[str], OutputRecord]") -> tuple[Status | None, str | None]:
    """What to do about an output that exists: ("skipped", None) when this run would make the same
    file, ("failed", reason) when another model, option or input made it (or no sresr), None to
    (re)do it (the input cannot be read: decoding it reports why)."""
    try:
        st = job.source.stat()
        regular = stat.S_ISREG(st.st_mode)
    except OSError:
        regular = False
    if not regular:
        return None, None
    try:
        digest = sha256_file(job.source)
    except OSError:
        return None, None
    this_run = want(digest)
    found = OutputRecord.from_text(read_media_record(job.output))
    if found is not None and found.same_output(this_run):
        return "skipped", None
    how = this_run.differences(found) if found is not None else "not made by sresr (it holds no sresr record)"
    return "failed", (f"{shown(job.output)} exists, {how}; pass --overwrite to replace it, "
                      "or write elsewhere (-o) or under other names (--suffix)")


def _frames_warning(image: "Image", source: Path) -> str | None:
    if image.frames <= 1:
        return None
    return (f"{shown(source)}: {image.frames} frames (an animation or a multi-page file); only the first was upscaled"
            " (split it into single images to upscale every frame)")


def encoder_threads(device_type: str) -> int:
    """Threads that encode outputs while the next image computes: 2 when the CPU computes too; with
    a GPU computing, up to half the cores (at most 6), since one big PNG takes longer to compress
    than a GPU takes to make it. Pending outputs are bounded by the same number."""
    if device_type == "cpu":
        return 2
    return max(2, min(6, (os.cpu_count() or 2) // 2))


def _one_line(exc: BaseException, source: Path) -> str:
    """One line naming the file and the reason."""
    if isinstance(exc, SresrError):
        text = exc.message
    else:
        text = f"internal error: {type(exc).__name__}: {exc}"
    text = " ".join(text.split())
    return text if text.startswith(shown(source)) else f"{shown(source)}: {text}"


def _is_video(job: Job) -> bool:
    return job.source.suffix.lower() in VIDEO_EXTENSIONS


def _animated_output(image: "Image", job: Job, fmt: str) -> bool:
    """An animated GIF / WebP / APNG whose output keeps its format (``--format same``)."""
    from .video import ANIMATION_FORMATS

    return (fmt == "same" and image.frames > 1 and image.source_format in ANIMATION_FORMATS
            and job.output.suffix.lower() in (".gif", ".webp", ".png"))


def _upscale_media(job: Job, upscaler: "Upscaler", options: UpscaleOptions, reporter: Reporter, out_fmt: str,
                   t0: float, animation: bool, full: list[str], digest: str | None = None) -> FileResult:
    """One video (:func:`sresr.video.upscale_video`) or animation (:func:`sresr.video.upscale_animation`)
    as a :class:`FileResult` with its frame count; a bad input is one failed line. ``digest``: the
    input's sha256 when the caller has it (an animation read as an image), else it is read here."""
    from .video import upscale_animation, upscale_video

    try:
        digest = digest or sha256_file(job.source)
        record = OutputRecord.make(upscaler, options, out_fmt, digest).to_text()
        remove_stale_temps(job.output)
        if animation:
            rec = upscale_animation(upscaler, job.source, job.output, outscale=options.outscale, quality=options.quality,
                                    png_compression=options.png_compression, record=record, on_frames=reporter.frames)
        else:
            rec = upscale_video(upscaler, job.source, job.output, options.video, outscale=options.outscale,
                                record=record, source_sha256=digest, on_frames=reporter.frames)
    except Exception as exc:
        if isinstance(exc, NoSpaceError) and not full:
            full.append(exc.message)
        return FileResult(str(job.source), None, "failed", time.perf_counter() - t0, _one_line(exc, job.source))
    notes = []
    if rec.repeated_frames:
        notes.append(f"{rec.repeated_frames} of {rec.frames} frames could not be decoded and repeat the previous frame")
    if getattr(rec, "missing", ""):
        notes.append(f"the input ends early ({rec.missing}); the frames that decode were kept")
    for what in getattr(rec, "dropped_streams", ()):
        notes.append(f"not copied: {what} (another --container may hold it)")
    warning = f"{shown(job.source)}: {'; '.join(notes)}" if notes else None
    return FileResult(str(job.source), str(job.output), "ok", time.perf_counter() - t0, None, rec.input_pixels, warning,
                      frames=rec.frames, repeated_frames=None if animation else rec.repeated_frames)


def upscale_paths(
    inputs: Iterable[str | os.PathLike[str]],
    outdir: str | os.PathLike[str],
    options: UpscaleOptions | None = None,
    upscaler: "Upscaler | None" = None,
    reporter: Reporter | None = None,
    prefetch: int = 2,
) -> list[FileResult]:
    """Upscale files and folders into ``outdir``; one :class:`FileResult` per input of this rank."""
    options = options or UpscaleOptions()
    prefetch = max(prefetch, options.decode_threads)
    reporter = reporter or Reporter()
    jobs = shard(collect_jobs(inputs, outdir, options))
    # the model first, even when every output exists: a bad -m / -w / -s is an error in any case,
    # and whether an existing output counts as done depends on what would make it now
    upscaler = upscaler or make_upscaler(options)
    options = resolve_scale(options, upscaler)  # -s beyond the model's scale: its outscale
    fmt = _format_name(options)

    video_formats: dict[Path, str] = {}

    def out_format(job: Job) -> str:
        suffix = job.output.suffix.lower()
        if suffix in VIDEO_EXTENSIONS:  # container, encoder, pixel format and options, for this input
            if job.output not in video_formats:
                from .video import format_key

                try:
                    video_formats[job.output] = format_key(job.source, job.output, options.video)
                except SresrError:  # decoding reports it
                    video_formats[job.output] = suffix.lstrip(".")
            return video_formats[job.output]
        if suffix == ".gif":  # an animation written back as one
            return "gif"
        return fmt if fmt != "same" else (format_for_path(job.output) or "png")

    todo: list[Job] = []
    results: dict[int, FileResult] = {}
    for i, job in enumerate(jobs):
        status, reason = None, job.error
        if job.error is not None:
            status = "failed"
        elif job.output.exists() or job.output.is_symlink():
            if job.output.is_dir():
                status, reason = "failed", f"{shown(job.source)}: its output {shown(job.output)} is a folder"
            elif not options.overwrite:
                status, reason = _existing_output(
                    job, functools.partial(OutputRecord.make, upscaler, options, out_format(job)))
        if status is None:
            todo.append(job)
        else:
            results[i] = FileResult(str(job.source), str(job.output), status, 0.0, reason)
    index = {id(j): i for i, j in enumerate(jobs)}
    resampled = options.outscale is not None and not math.isclose(options.outscale, upscaler.scale)
    reporter.start(jobs, upscaler.describe() + (f"; output resampled to x{options.outscale:g}" if resampled else ""))
    for message in upscaler.warnings:
        reporter.warn(message)
    for i in sorted(results):
        reporter.image_done(results[i])
    readers = ThreadPoolExecutor(max_workers=max(1, options.decode_threads), thread_name_prefix="sresr-decode")
    encoders = options.encode_threads or encoder_threads(upscaler.device.type)
    writers = ThreadPoolExecutor(max_workers=encoders, thread_name_prefix="sresr-encode")
    decoded: dict[int, Future[Image]] = {}
    writing: list[tuple[int, Job, float, int, str | None, Future[Path]]] = []

    def submit_read(k: int) -> None:
        if k < len(todo) and k not in decoded and not _is_video(todo[k]):
            decoded[k] = readers.submit(read_image, todo[k].source, options.max_pixels)

    full: list[str] = []  # set when the output device is full: nothing more can be written

    def harvest(block: bool) -> None:
        while writing and (block or writing[0][-1].done()):
            i, job, t0, pixels, warning, fut = writing.pop(0)
            try:
                fut.result()
                res = FileResult(str(job.source), str(job.output), "ok", time.perf_counter() - t0, None, pixels, warning)
            except Exception as exc:
                res = FileResult(str(job.source), None, "failed", time.perf_counter() - t0, _one_line(exc, job.source))
                if isinstance(exc, NoSpaceError) and not full:
                    full.append(exc.message)
            results[i] = res
            reporter.image_done(res)

    try:
        for k in range(min(prefetch, len(todo))):
            submit_read(k)
        for k, job in enumerate(todo):
            i = index[id(job)]
            if full:  # the output device is full: stop computing what cannot be written
                res = FileResult(str(job.source), None, "failed", 0.0,
                                 f"{shown(job.source)}: not upscaled: the output device is full")
                results[i] = res
                reporter.image_done(res)
                continue
            t0 = time.perf_counter()
            reporter.image_started(job)
            submit_read(k + prefetch)
            if _is_video(job):  # its own decoder, engine and encoder threads, frame by frame
                results[i] = res = _upscale_media(job, upscaler, options, reporter, out_format(job), t0, False, full)
                reporter.image_done(res)
                harvest(block=False)
                continue
            try:
                image = decoded.pop(k).result()
                out_fmt = out_format(job)
                if _animated_output(image, job, fmt):  # every frame, written back in its own format
                    digest = image.source_sha256
                    del image
                    results[i] = res = _upscale_media(job, upscaler, options, reporter, out_fmt, t0, True, full,
                                                      digest)
                    reporter.image_done(res)
                    harvest(block=False)
                    continue
                # rounded to the written bit depth tile by tile: no full-size float image in memory
                out = upscaler.upscale_image(image, outscale=options.outscale, on_tiles=reporter.tiles,
                                             depth=output_depth(image, out_fmt))
                pixels = image.width * image.height
                warning = _frames_warning(image, job.source)
                record = OutputRecord.make(upscaler, options, out_fmt, image.source_sha256).to_text()
                del image
            except Exception as exc:
                res = FileResult(str(job.source), None, "failed", time.perf_counter() - t0, _one_line(exc, job.source))
                results[i] = res
                reporter.image_done(res)
                harvest(block=False)
                continue
            remove_stale_temps(job.output)
            writing.append((i, job, t0, pixels, warning, writers.submit(
                write_image, job.output, out, out_fmt, options.quality, options.png_compression, record)))
            del out
            while len(writing) > encoders:  # bound the memory held by pending encodes
                writing[0][-1].exception()  # wait for the oldest
                harvest(block=False)
            harvest(block=False)
        harvest(block=True)
    finally:
        readers.shutdown(wait=True, cancel_futures=True)
        writers.shutdown(wait=True)
    ordered = [results[i] for i in sorted(results)]
    reporter.finish(ordered)
    return ordered
