"""``sresr upscale``: upscale files and folders (a thin layer over :mod:`sresr.pipeline`)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Optional, Sequence

import typer

from .common import DeviceOpt, JsonOpt, PrecisionOpt, WeightsOpt, console, err_console, print_json

if TYPE_CHECKING:  # pragma: no cover
    from ..pipeline import FileResult, Job


def upscale(
    inputs: Annotated[list[Path], typer.Argument(help="Image files and/or folders.", show_default=False)],
    output: Annotated[Path, typer.Option("--output", "-o", help="Output folder (created if needed).")],
    model: Annotated[
        Optional[str],
        typer.Option("--model", "-m", help="Model or MODEL.TAG (default: the best one with bundled weights)."),
    ] = None,
    scale: Annotated[Optional[int], typer.Option("--scale", "-s", min=1, help="Model scale.")] = None,
    weights: WeightsOpt = None,
    recursive: Annotated[bool, typer.Option("--recursive", "-r", help="Also take images in sub-folders.")] = False,
    tile: Annotated[
        Optional[int], typer.Option("--tile", min=0, help="Tile size in input pixels; 0 = whole image. Default on CPU: "
                                    "max(256, 2 x pad); on CUDA: the whole image when it fits the free GPU memory (the model's "
                                    "footprint is measured at the first image), else the largest tile that fits.")
    ] = None,
    tile_pad: Annotated[
        Optional[int], typer.Option("--tile-pad", min=0, help="Tile overlap (default: the model's receptive field).")
    ] = None,
    batch: Annotated[int, typer.Option("--batch", min=1, help="Tiles per forward pass.")] = 1,
    device: DeviceOpt = "auto",
    precision: PrecisionOpt = "auto",
    fmt: Annotated[str, typer.Option("--format", help="same, png, jpg, webp or tiff.")] = "same",
    quality: Annotated[int, typer.Option("--quality", min=1, max=100, help="JPEG/WebP quality.")] = 95,
    png_compression: Annotated[
        int, typer.Option("--png-compression", min=0, max=9, help="PNG zlib level: 0 fastest ... 9 smallest.")
    ] = 3,
    suffix: Annotated[str, typer.Option("--suffix", help="Appended to each output's file name stem.")] = "",
    skip_existing: Annotated[
        bool, typer.Option("--skip-existing/--overwrite", help="Skip inputs whose output exists (default).")
    ] = True,
    outscale: Annotated[
        Optional[float], typer.Option("--outscale", min=0.01, max=64, help="Final scale (resampled from the model's).")
    ] = None,
    max_pixels: Annotated[
        Optional[int], typer.Option("--max-pixels", min=1, help="Refuse inputs larger than this (default 200M).")
    ] = None,
    as_json: JsonOpt = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar and no summary.")] = False,
) -> None:
    """Upscale images: files and folders in, an output folder out.

    Outputs keep the input's bit depth, grey/colour mode, alpha, ICC profile and EXIF. Existing
    outputs are skipped, so re-running an interrupted command resumes it. Exit code 0 when every
    input succeeded, 1 when some failed (the others are still written), 2 for usage errors.
    """
    from ..pipeline import UpscaleOptions, upscale_paths

    kwargs: dict[str, Any] = {}
    if max_pixels is not None:
        kwargs["max_pixels"] = max_pixels
    options = UpscaleOptions(
        model=model,
        scale=scale,
        weights=weights,
        device=device,
        precision=precision,
        tile=tile,
        tile_pad=tile_pad,
        batch=batch,
        format=fmt,
        quality=quality,
        png_compression=png_compression,
        suffix=suffix,
        overwrite=not skip_existing,
        outscale=outscale,
        recursive=recursive,
        **kwargs,
    )
    show_progress = not quiet and not as_json and err_console.is_terminal
    reporter = _RichReporter() if show_progress else _PlainReporter()
    t0 = time.perf_counter()
    try:
        results = upscale_paths(inputs, output, options, reporter=reporter)
    finally:
        reporter.close()
    elapsed = time.perf_counter() - t0
    failed = [r for r in results if r.status == "failed"]
    if as_json:
        print_json([r.to_dict() for r in results])
    elif not quiet:
        _summary(results, elapsed, output, getattr(reporter, "description", None))
    if failed:
        raise SystemExit(1)  # some inputs failed (each reported on stderr); the others are written


def _rank_prefix() -> str:
    from ..ranks import rank, world_size

    world = world_size()
    return f"rank {rank()}/{world}: " if world > 1 else ""


def _summary(results: Sequence["FileResult"], elapsed: float, output: Path, description: str | None) -> None:
    ok = sum(r.status == "ok" for r in results)
    skipped = sum(r.status == "skipped" for r in results)
    failed = sum(r.status == "failed" for r in results)
    mpix = sum(r.input_pixels for r in results if r.status == "ok") / 1e6
    rate = f", {mpix / elapsed:.3g} input MPix/s" if ok and elapsed > 0 else ""
    parts = [f"{ok} upscaled", f"{skipped} skipped (output exists)" if skipped else "", f"{failed} failed" if failed else ""]
    text = ", ".join(p for p in parts if p)
    console.print(f"{_rank_prefix()}{text} in {elapsed:.1f} s{rate} -> {output}", highlight=False, soft_wrap=True)
    if description and ok:
        console.print(f"{_rank_prefix()}model: {description}", highlight=False, soft_wrap=True)


def _print_problem(result: "FileResult", out: Any = None) -> None:
    """One line on stderr (or ``out``) for a failed input, or for one written with a warning."""
    out = out or err_console
    if result.status == "failed":
        out.print(f"[bold red]failed:[/bold red] {result.error}", highlight=False, soft_wrap=True)
    elif result.warning:
        out.print(f"[yellow]warning:[/yellow] {result.warning}", highlight=False, soft_wrap=True)


class _PlainReporter:
    """Not a terminal (or --quiet): only one line per failed input (or warning), on stderr."""

    def start(self, jobs: Sequence["Job"], description: str) -> None:
        self.description = description

    def image_started(self, job: "Job") -> None: ...

    def tiles(self, done: int, total: int) -> None: ...

    def image_done(self, result: "FileResult") -> None:
        _print_problem(result)

    def finish(self, results: Sequence["FileResult"]) -> None: ...

    def close(self) -> None: ...


class _RichReporter(_PlainReporter):
    """A live progress display on a terminal: images, tiles of the current image, MPix/s, ETA."""

    def __init__(self) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        self.progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[rate]}"),
            TimeRemainingColumn(),
            console=err_console,
            transient=True,
        )
        self.images = None
        self.tile_task = None
        self.t0 = time.perf_counter()
        self.pixels = 0
        self.started = False

    def start(self, jobs: Sequence["Job"], description: str) -> None:
        err_console.print(f"[dim]{_rank_prefix()}{description}[/dim]", highlight=False, soft_wrap=True)
        self.progress.start()
        self.started = True
        self.images = self.progress.add_task("images", total=len(jobs), rate="")
        self.tile_task = self.progress.add_task("tiles", total=1, rate="")
        self.t0 = time.perf_counter()

    def image_started(self, job: "Job") -> None:
        name = job.source.name if len(job.source.name) <= 40 else job.source.name[:37] + "..."
        self.progress.update(self.tile_task, description=f"tiles [dim]{name}[/dim]", completed=0)

    def tiles(self, done: int, total: int) -> None:
        self.progress.update(self.tile_task, completed=done, total=total)

    def image_done(self, result: "FileResult") -> None:
        _print_problem(result, self.progress.console)
        self.pixels += result.input_pixels
        elapsed = max(1e-9, time.perf_counter() - self.t0)
        rate = f"{self.pixels / 1e6 / elapsed:.2f} MPix/s" if self.pixels else ""
        self.progress.update(self.images, advance=1, rate=rate)

    def close(self) -> None:
        if self.started:
            self.progress.stop()
            self.started = False
