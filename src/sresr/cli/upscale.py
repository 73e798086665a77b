"""``sresr upscale``: upscale files and folders (a thin layer over :mod:`sresr.pipeline`)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Optional, Sequence

import typer
from rich.markup import escape

from .common import BackendOpt, DeviceOpt, JsonOpt, PrecisionOpt, ProviderOpt, WeightsOpt, console, err_console, print_json

if TYPE_CHECKING:  # pragma: no cover
    from ..pipeline import FileResult, Job


def upscale(
    inputs: Annotated[list[Path], typer.Argument(help="Image or video files and/or folders.", show_default=False)],
    output: Annotated[Path, typer.Option("--output", "-o", help="Output folder (created if needed).")] = Path("results"),
    model: Annotated[
        Optional[str],
        typer.Option("--model", "-m", "-n", help="Model, MODEL.TAG, a published name such as RealESRGAN_x4plus, or an ONNX file (FILE.onnx, run by onnxruntime) (default: the best one with bundled weights)."),
    ] = None,
    scale: Annotated[
        Optional[float], typer.Option("--scale", "-s", min=0.01, max=64, help="Scale: the model's (2, 3, 4), or any other "
                                      "(2.5; 2 with an x4-only model), reached like Real-ESRGAN's --outscale: the model "
                                      "at the next scale it has, then bicubic resampling.")
    ] = None,
    weights: WeightsOpt = None,
    recursive: Annotated[bool, typer.Option("--recursive", "-r", help="Also take images in sub-folders.")] = False,
    tile: Annotated[
        Optional[int], typer.Option("--tile", "-t", min=0, help="Tile size in input pixels; 0 = whole image. Default on CPU: "
                                    "max(256, 2 x pad); on CUDA: the whole image when it fits the free GPU memory (the model's "
                                    "footprint is measured at the first image), else the largest tile that fits.")
    ] = None,
    tile_pad: Annotated[
        Optional[int], typer.Option("--tile-pad", min=0, help="Tile overlap (default: the model's receptive field; for an ONNX file made elsewhere, give its receptive field here).")
    ] = None,
    batch: Annotated[int, typer.Option("--batch", min=1, help="Tiles per forward pass.")] = 1,
    frame_batch: Annotated[
        Optional[int], typer.Option("--frame-batch", min=1, help="Video frames upscaled together (their tiles share forward "
                                    "passes). Default: on CUDA as many frames a pass as the free memory holds when a frame "
                                    "runs whole, else 1.")
    ] = None,
    tta: Annotated[bool, typer.Option("--tta", "-x", help="x8 self-ensemble: the average over flips and transposes "
                                      "(8x slower; tiled and exact as without).")] = False,
    denoise: Annotated[
        Optional[float], typer.Option("--denoise-strength", "-dn", min=0.0, max=1.0,
                                      help="Real-ESRGAN's denoise strength for realesr-general-x4v3: its weights mixed with "
                                      "realesr-general-wdn-x4v3's (1 = as published, 0 = the most denoising). Unlike "
                                      "Real-ESRGAN (0.5), sresr mixes only when asked.")
    ] = None,
    device: DeviceOpt = "auto",
    gpu: Annotated[Optional[int], typer.Option("--gpu", "-g", min=0, help="GPU number: --device cuda:N.")] = None,
    precision: PrecisionOpt = "auto",
    backend: BackendOpt = "torch",
    provider: ProviderOpt = "auto",
    fp32: Annotated[bool, typer.Option("--fp32", help="--precision fp32.")] = False,
    fmt: Annotated[str, typer.Option("--format", "-f", "--ext", help="same (or auto), png, jpg, webp or tiff.")] = "same",
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
    threads: Annotated[
        Optional[str], typer.Option("-j", "--threads", help="LOAD:PROC:SAVE threads: decoding, CPU compute (torch) and "
                                    "encoding, as realesrgan-ncnn-vulkan's -j (default 2:all:2, on a GPU 2:all:half the cores).")
    ] = None,
    codec: Annotated[
        Optional[str], typer.Option("--codec", help="Videos: the encoder (libx264/h264, libx265/hevc, libvpx-vp9/vp9, "
                                    "libsvtav1/av1, mpeg4; lossless: ffv1, png). Default: the input's codec where it can "
                                    "be encoded again, else H.264.", rich_help_panel="Video")
    ] = None,
    crf: Annotated[int, typer.Option("--crf", min=0, max=63, help="Videos: constant rate factor (x264/x265/VP9/AV1).",
                                     rich_help_panel="Video")] = 18,
    preset: Annotated[Optional[str], typer.Option("--preset", help="Videos: encoder speed preset (x264/x265: ultrafast "
                                                  "... veryslow; default medium).", rich_help_panel="Video")] = None,
    pix_fmt: Annotated[Optional[str], typer.Option("--pix-fmt", help="Videos: output pixel format (default: the input's "
                                                   "where the encoder takes it; bgr0 with ffv1 keeps exact pixels).",
                                                   rich_help_panel="Video")] = None,
    container: Annotated[str, typer.Option("--container", help="Videos: same, mp4, mkv, webm, mov or avi.",
                                           rich_help_panel="Video")] = "same",
    segment_frames: Annotated[int, typer.Option("--segment-frames", min=1, help="Videos: frames per resumable segment "
                                                "(a killed run redoes at most one).", rich_help_panel="Video")] = 240,
    skip_bad_frames: Annotated[bool, typer.Option("--skip-bad-frames", help="Videos: repeat the previous frame for "
                                                  "frames that cannot be decoded instead of failing the file.",
                                                  rich_help_panel="Video")] = False,
    as_json: JsonOpt = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress and no summary.")] = False,
) -> None:
    """Upscale images and videos: files and folders in, an output folder out.

    Outputs keep the input's bit depth, grey/colour mode, alpha, ICC profile and EXIF. Existing
    outputs are skipped, so re-running an interrupted command resumes it. Exit code 0 when every
    input succeeded, 1 when some failed (the others are still written), 2 for usage errors.

    Real-ESRGAN's habits work: -o defaults to results/, -n is -m (with the published names),
    -s takes any final scale, -t/-g/--fp32/-f/--ext/-j are here.
    """
    from ..errors import UsageError
    from ..pipeline import UpscaleOptions, parse_threads, upscale_paths
    from ..video import VideoOptions

    kwargs: dict[str, Any] = {}
    if max_pixels is not None:
        kwargs["max_pixels"] = max_pixels
    if gpu is not None:
        if device not in ("auto", f"cuda:{gpu}"):
            raise UsageError(f"-g {gpu} and --device {device} name different devices", hint="give one of them")
        device = f"cuda:{gpu}"
    if fp32:
        if precision not in ("auto", "fp32"):
            raise UsageError(f"--fp32 and --precision {precision} disagree", hint="give one of them")
        precision = "fp32"
    if fmt.strip().lower() == "auto":  # Real-ESRGAN's --ext auto
        fmt = "same"
    if threads is not None:
        kwargs.update(parse_threads(threads))
    options = UpscaleOptions(
        model=model,
        scale=scale,
        weights=weights,
        device=device,
        precision=precision,
        tile=tile,
        tile_pad=tile_pad,
        batch=batch,
        frame_batch=frame_batch,
        format=fmt,
        quality=quality,
        png_compression=png_compression,
        suffix=suffix,
        overwrite=not skip_existing,
        outscale=outscale,
        recursive=recursive,
        tta=tta,
        denoise_strength=denoise,
        backend=backend,
        provider=provider,
        video=VideoOptions(codec=codec, crf=crf, preset=preset, pix_fmt=pix_fmt, container=container,
                           segment_frames=segment_frames, skip_bad_frames=skip_bad_frames),
        **kwargs,
    )
    if quiet:
        reporter: _PlainReporter = _PlainReporter()
    elif err_console.is_terminal and not as_json:
        reporter = _RichReporter()
    else:  # a log file, a pipe, a CI job, --json: progress as lines on stderr
        reporter = _LineReporter()
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


def _clock(seconds: float) -> str:
    seconds = int(round(seconds))
    h, rest = divmod(seconds, 3600)
    return f"{h}:{rest // 60:02d}:{rest % 60:02d}" if h else f"{rest // 60}:{rest % 60:02d}"


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
        out.print(f"[bold red]failed:[/bold red] {escape(result.error or '')}", highlight=False, soft_wrap=True)
    elif result.warning:
        out.print(f"[yellow]warning:[/yellow] {escape(result.warning)}", highlight=False, soft_wrap=True)


class _PlainReporter:
    """Not a terminal (or --quiet): only one line per failed input (or warning), on stderr."""

    def start(self, jobs: Sequence["Job"], description: str) -> None:
        self.description = description

    def warn(self, message: str) -> None:
        err_console.print(f"[yellow]warning:[/yellow] {escape(message)}", highlight=False, soft_wrap=True)

    def image_started(self, job: "Job") -> None: ...

    def tiles(self, done: int, total: int) -> None: ...

    def frames(self, done: int, total: int, fps: float) -> None: ...

    def image_done(self, result: "FileResult") -> None:
        _print_problem(result)

    def finish(self, results: Sequence["FileResult"]) -> None: ...

    def close(self) -> None: ...


class _LineReporter(_PlainReporter):
    """Not a terminal: one line per file on stderr (``[3/12] ok photo.png 1.2 s``), and for an
    image of many tiles a line at every tenth of them, so a log shows progress as it happens."""

    def start(self, jobs: Sequence["Job"], description: str) -> None:
        super().start(jobs, description)
        self.total, self.done = len(jobs), 0
        self.name, self.last_tenth = "", 0
        err_console.print(f"{_rank_prefix()}{description}", highlight=False, markup=False, soft_wrap=True)

    def image_started(self, job: "Job") -> None:
        self.name, self.last_tenth = job.source.name, 0

    def tiles(self, done: int, total: int) -> None:
        tenth = done * 10 // total if total >= 20 else 0
        if tenth > self.last_tenth and done < total:
            self.last_tenth = tenth
            err_console.print(f"{_rank_prefix()}  {self.name}: tiles {done}/{total}", highlight=False, markup=False,
                              soft_wrap=True)

    def frames(self, done: int, total: int, fps: float) -> None:
        """A video: a line at every tenth of its frames (and at least every 30 s), with fps and ETA."""
        now = time.perf_counter()
        tenth = done * 10 // total if total else 0
        last = getattr(self, "frames_line", (0, now))
        if done < total and (tenth > self.last_tenth or now - last[1] >= 30):
            self.last_tenth = max(self.last_tenth, tenth)
            self.frames_line = (done, now)
            eta = f", ETA {_clock((total - done) / fps)}" if fps > 0 and total else ""
            err_console.print(f"{_rank_prefix()}  {self.name}: frames {done}/{total or '?'}, {fps:.2f} fps{eta}",
                              highlight=False, markup=False, soft_wrap=True)

    def image_done(self, result: "FileResult") -> None:
        self.done += 1
        _print_problem(result)
        if result.status != "failed":
            from ..errors import shown

            took = f" {result.seconds:.1f} s" if result.status == "ok" else ""
            err_console.print(f"{_rank_prefix()}[{self.done}/{self.total}] {result.status} {shown(result.path)}{took}",
                              highlight=False, markup=False, soft_wrap=True)


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
        self.name = name
        self.progress.update(self.tile_task, description=f"tiles [dim]{name}[/dim]", completed=0, rate="")

    def tiles(self, done: int, total: int) -> None:
        self.progress.update(self.tile_task, completed=done, total=total)

    def frames(self, done: int, total: int, fps: float) -> None:
        """A video: the second bar counts its frames (the ETA column follows), with frames per second."""
        self.progress.update(self.tile_task, completed=done, total=total or None, rate=f"{fps:.2f} fps",
                             description=f"frames [dim]{escape(self.name)}[/dim]")

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
