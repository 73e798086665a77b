"""Upscaling files and folders: the library behind ``sresr upscale``.

- :func:`upscale_file`: one file in, one file out.
- :func:`upscale_paths`: files and folders in, an output folder out. Decoding and encoding run
  in background threads while the model computes; every output is written atomically (a hidden
  temporary file renamed into place), so an interrupted run leaves only complete files and the
  same command run again skips them (unless ``overwrite``). A bad input becomes one
  :class:`FileResult` with ``status="failed"`` and a one-line ``error``; the others go on.
  Inputs are never overwritten. Under ``torchrun`` (``RANK`` / ``WORLD_SIZE`` in the
  environment) each rank takes every ``WORLD_SIZE``-th input, so each output has one writer.

This module does not import torch at import time.
"""

from __future__ import annotations

import os
import re
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Literal, Sequence

from .errors import SresrError, UsageError
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

if TYPE_CHECKING:  # pragma: no cover
    from .engine import Upscaler
    from .imaging.io import Image

__all__ = [
    "UpscaleOptions",
    "Job",
    "FileResult",
    "Reporter",
    "IMAGE_EXTENSIONS",
    "collect_jobs",
    "shard",
    "default_model",
    "make_upscaler",
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
    scale: the model's scale; None = the weights' (or the model's default) scale.
    weights: ``MODEL.TAG`` or a weights file (see :func:`sresr.load_model`).
    tile: core size in input pixels (None = default, 0 = whole image); tile_pad: None = the
    model's receptive field; batch: tiles per forward pass.
    format: ``same`` (the input's format where writable, else PNG), png, jpg, webp or tiff.
    quality: JPEG/WebP quality; png_compression: PNG zlib level 0-9 (:func:`sresr.imaging.io.encode_image`).
    suffix: appended to the file stem of each output.
    outscale: final scale, reached by bicubic resampling of the model's output.
    """

    model: str | None = None
    scale: int | None = None
    weights: str | None = None
    device: str = "auto"
    precision: str = "auto"
    tile: int | None = None
    tile_pad: int | None = None
    batch: int = 1
    format: str = "same"
    quality: int = 95
    png_compression: int = DEFAULT_PNG_COMPRESSION
    suffix: str = ""
    overwrite: bool = False
    outscale: float | None = None
    max_pixels: int | None = DEFAULT_MAX_PIXELS
    recursive: bool = False


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

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("input_pixels")
        return d


class Reporter:
    """Progress callbacks (all called from the calling thread). The default does nothing."""

    def start(self, jobs: Sequence[Job], description: str) -> None: ...

    def image_started(self, job: Job) -> None: ...

    def tiles(self, done: int, total: int) -> None: ...

    def image_done(self, result: FileResult) -> None: ...

    def finish(self, results: Sequence[FileResult]) -> None: ...


# -- planning ---------------------------------------------------------------------------------


def _natural_key(p: Path) -> list[object]:
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", str(p))]


def _output_name(source: Path, fmt: str, suffix: str) -> str:
    if fmt == "same":
        ext = source.suffix.lower()
        if format_for_path(source) is None:
            ext = ".png"
    else:
        ext = FORMATS[fmt]
    return f"{source.stem}{suffix}{ext}"


def _inside(path: Path, folder: Path) -> bool:
    try:
        path.relative_to(folder)
        return True
    except ValueError:
        return False


def collect_jobs(inputs: Iterable[str | os.PathLike[str]], outdir: str | os.PathLike[str], options: UpscaleOptions) -> list[Job]:
    """Expand files and folders into jobs (source -> output), in a stable natural order.

    Missing inputs and an empty selection are :class:`UsageError`; outputs that would collide
    or overwrite an input become jobs with an ``error``.
    """
    fmt = options.format.lower()
    fmt = {"jpeg": "jpg", "tif": "tiff"}.get(fmt, fmt)
    if fmt != "same" and fmt not in FORMATS:
        raise UsageError(f"unknown format '{options.format}'", hint=f"use same, {', '.join(FORMATS)}")
    if not 0 <= options.png_compression <= 9:
        raise UsageError(f"PNG compression must be 0-9, got {options.png_compression}")
    out_root = Path(outdir)
    if out_root.exists() and not out_root.is_dir():
        raise UsageError(f"the output {out_root} is a file, not a folder", hint="-o takes a folder (new or existing)")
    out_abs = out_root.resolve()
    pairs: list[tuple[Path, Path]] = []  # (source, relative output path)
    for raw in inputs:
        src = Path(raw)
        if src.is_dir():
            pattern = "**/*" if options.recursive else "*"
            found = []
            for p in src.glob(pattern):
                rel = p.relative_to(src)
                if any(part.startswith(".") for part in rel.parts):
                    continue  # hidden files, our own temporary files
                if not p.is_file() or p.suffix.lower() not in IMAGE_EXTENSIONS:
                    continue
                if _inside(p.resolve(), out_abs) and out_abs != src.resolve():
                    continue  # outputs of an earlier run inside the input tree
                found.append(p)
            for p in sorted(found, key=_natural_key):
                rel = p.relative_to(src)
                pairs.append((p, rel.parent / _output_name(p, fmt, options.suffix)))
        elif src.exists():
            pairs.append((src, Path(_output_name(src, fmt, options.suffix))))
        else:
            raise UsageError(f"input '{src}' does not exist")
    if not pairs:
        names = ", ".join(str(p) for p in inputs)
        hint = "add -r to search sub-folders" if not options.recursive else None
        raise UsageError(f"no images found in {names}", hint=hint)
    sources = {p.resolve() for p, _ in pairs}
    seen: dict[Path, Path] = {}
    jobs = []
    for src, rel in pairs:
        out = out_root / rel
        key = out.resolve()
        error = None
        if key in sources:
            error = f"the output {out} would overwrite an input; use another -o folder or a --suffix"
        elif key in seen:
            error = f"the output {out} is also the output of {seen[key]}; use --suffix or --format"
        else:
            seen[key] = src
        jobs.append(Job(src, out, error))
    return jobs


def shard(jobs: Sequence[Job], rank: int | None = None, world_size: int | None = None) -> list[Job]:
    """The jobs of one rank: every ``world_size``-th, from ``RANK`` / ``WORLD_SIZE`` by default."""
    rank = int(os.environ.get("RANK", "0")) if rank is None else rank
    world_size = int(os.environ.get("WORLD_SIZE", "1")) if world_size is None else world_size
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


def make_upscaler(options: UpscaleOptions) -> "Upscaler":
    """Load the model the options name (or the default one) into an :class:`Upscaler` (and tune
    the process's allocator for tiled work, see :func:`sresr.engine.tune_cpu_allocator`)."""
    from .engine import Upscaler, tune_cpu_allocator
    from .weights import load_model

    tune_cpu_allocator()
    model, scale, weights = options.model, options.scale, options.weights
    if model is None and weights is None:
        model, scale = default_model(scale)
    loaded = load_model(model, scale=scale, weights=weights)
    return Upscaler(
        loaded,
        device=options.device,
        precision=options.precision,
        tile=options.tile,
        tile_pad=options.tile_pad,
        batch=options.batch,
    )


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
    if output.exists() and source.exists() and os.path.samefile(source, output):
        raise UsageError(f"refusing to overwrite the input {source}", hint="write to another path")
    upscaler = upscaler or make_upscaler(options)
    image = read_image(source, max_pixels=options.max_pixels)
    fmt = format_for_path(output) or "png"
    result = upscaler.upscale_image(image, outscale=options.outscale, depth=output_depth(image, fmt))
    return write_image(output, result, format=fmt, quality=options.quality, png_compression=options.png_compression)


def _frames_warning(image: "Image", source: Path) -> str | None:
    if image.frames <= 1:
        return None
    return (f"{source}: {image.frames} frames (an animation or a multi-page file); only the first was upscaled"
            " (split it into single images to upscale every frame)")


def _one_line(exc: BaseException, source: Path) -> str:
    """One line naming the file and the reason."""
    if isinstance(exc, SresrError):
        text = exc.message
    else:
        text = f"internal error: {type(exc).__name__}: {exc}"
    text = " ".join(text.split())
    return text if text.startswith(str(source)) else f"{source}: {text}"


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
    reporter = reporter or Reporter()
    jobs = shard(collect_jobs(inputs, outdir, options))
    todo: list[Job] = []
    results: dict[int, FileResult] = {}
    for i, job in enumerate(jobs):
        if job.error is not None:
            results[i] = FileResult(str(job.source), str(job.output), "failed", 0.0, job.error)
        elif job.output.exists() and not options.overwrite:
            results[i] = FileResult(str(job.source), str(job.output), "skipped", 0.0)
        else:
            todo.append(job)
    index = {id(j): i for i, j in enumerate(jobs)}
    if todo and upscaler is None:
        upscaler = make_upscaler(options)
    reporter.start(jobs, upscaler.describe() if upscaler is not None else "nothing to do")
    for i in sorted(results):
        reporter.image_done(results[i])

    fmt = options.format.lower()
    fmt = {"jpeg": "jpg", "tif": "tiff"}.get(fmt, fmt)
    readers = ThreadPoolExecutor(max_workers=2, thread_name_prefix="sresr-decode")
    writers = ThreadPoolExecutor(max_workers=2, thread_name_prefix="sresr-encode")
    decoded: dict[int, Future[Image]] = {}
    writing: list[tuple[int, Job, float, int, str | None, Future[Path]]] = []

    def submit_read(k: int) -> None:
        if k < len(todo) and k not in decoded:
            decoded[k] = readers.submit(read_image, todo[k].source, options.max_pixels)

    def harvest(block: bool) -> None:
        while writing and (block or writing[0][-1].done()):
            i, job, t0, pixels, warning, fut = writing.pop(0)
            try:
                fut.result()
                res = FileResult(str(job.source), str(job.output), "ok", time.perf_counter() - t0, None, pixels, warning)
            except Exception as exc:
                res = FileResult(str(job.source), None, "failed", time.perf_counter() - t0, _one_line(exc, job.source))
            results[i] = res
            reporter.image_done(res)

    try:
        for k in range(min(prefetch, len(todo))):
            submit_read(k)
        for k, job in enumerate(todo):
            i = index[id(job)]
            t0 = time.perf_counter()
            reporter.image_started(job)
            submit_read(k + prefetch)
            try:
                image = decoded.pop(k).result()
                assert upscaler is not None
                out_fmt = fmt if fmt != "same" else (format_for_path(job.output) or "png")
                # rounded to the written bit depth tile by tile: no full-size float image in memory
                out = upscaler.upscale_image(image, outscale=options.outscale, on_tiles=reporter.tiles,
                                             depth=output_depth(image, out_fmt))
                pixels = image.width * image.height
                warning = _frames_warning(image, job.source)
                del image
            except Exception as exc:
                res = FileResult(str(job.source), None, "failed", time.perf_counter() - t0, _one_line(exc, job.source))
                results[i] = res
                reporter.image_done(res)
                harvest(block=False)
                continue
            remove_stale_temps(job.output)
            writing.append((i, job, t0, pixels, warning, writers.submit(write_image, job.output, out, out_fmt, options.quality,
                                                               options.png_compression)))
            del out
            while len(writing) > 2:  # bound the memory held by pending encodes
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
