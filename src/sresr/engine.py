"""The inference engine: :class:`Upscaler` runs a :class:`~sresr.resolve.LoadedModel` on images of
any size, tiled, on the chosen device and precision.

- ``run(x)``: ``N x C x H x W`` in the model's own colour space (RGB or BT.601 Y), [0, 1] ->
  the upscaled tensor (float32, host memory, clamped to [0, 1]). Pre-upsampling models
  (``spec.input == "upsampled"``) get the MATLAB-bicubic-upsampled image here.
- ``upscale_rgb(x)``: ``N x 3 x H x W`` RGB; Y-channel models upscale luma with the network and
  chroma with bicubic, colouring each tile as it finishes (``run(x, blocks=...)``).
- ``upscale_image(image)``: an :class:`sresr.imaging.io.Image` (grey, RGB, alpha, 8/16-bit) ->
  the upscaled :class:`Image` with the same mode, bit depth, ICC profile and EXIF. With
  ``depth=8`` or ``16`` its pixels come back already rounded to uint8/uint16 (what the encoders
  write), stored tile by tile, so no full-size float image is ever made: the CLI's path. A numpy
  array (``H x W``, ``H x W x 1/2/3/4``: grey, grey + alpha, RGB, RGBA; uint8, uint16 or float in
  [0, 1]) gives back an array of the same layout and dtype, a PIL image a PIL image.

Inputs are checked before any work: float pixels must be finite and within [0, 1] (integer
tensors and arrays are scaled by 255 or 65535), and ``outscale`` must be positive, with an output
of at most :data:`MAX_OUTPUT_PIXELS`; anything else is a :class:`~sresr.errors.UsageError` that
says what is expected, never silent black or white blocks.

Tiles are planned by :mod:`sresr.tiling` with ``tile_pad`` defaulting to the model's receptive
field, so the result equals an untiled run. A network with its own exact tiling
(``forward_tiles(x, tile)``: RCAN, whose channel attention pools over the whole image, runs its
convolutions tile by tile and the attention over the whole feature map) is given the tile instead
of windows, padded by its ``tile_radius``. A network that cannot tile exactly at all
(``Geometry.exact`` False: HAT's and DAT's channel attention) runs images up to
:data:`INEXACT_WHOLE_PIXELS` whole by default instead, and says so when it tiles. Memory is bounded by the tile: the image and the
output canvas stay in host memory. On CUDA the default tile comes from the device's free memory
and the model's footprint measured at the first image (two probe passes): the whole image when it
fits, else the largest tile that does (:func:`sresr.tiling.tile_for_budget`); cuDNN's autotuner
is on while an image is tiled (every window has one shape). An out-of-memory error halves the batch, then the tile, and
retries. Half precision output that is not finite is recomputed in float32.
"""

from __future__ import annotations

import copy
import functools
import math
import time
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Literal

import numpy as np
import torch
import torch.nn.functional as F

from .devices import cudnn_benchmark, ieee_fp32, inference_dtype, resolve_device, tf32_allowed
from .errors import SresrError, UsageError
from .imaging.io import Image
from .imaging.resize import enlarge
from .optimize import OptimizeReport, optimize_for_inference
from .resolve import LoadedModel
from .tiling import default_tile, padded_size, plan_tiles, run_tiled, store, tile_for_budget

__all__ = ["Upscaler", "EngineStats", "resolve_device", "resolve_precision", "OutOfMemory", "UNKNOWN_RF_PAD"]

#: the device/precision policy lives in sresr.devices; these names stay importable from here
resolve_precision = inference_dtype

#: Tile padding for models whose spec does not give a receptive field.
UNKNOWN_RF_PAD = 32
#: The smallest tile the out-of-memory fallback goes down to.
MIN_TILE = 16
#: The smallest tile chosen from free memory (below it, the out-of-memory fallback takes over).
DEFAULT_AUTO_FLOOR = 128
#: The largest output (pixels) ``upscale_image`` makes: 4.3 GPix, 13 GB as 8-bit RGB.
MAX_OUTPUT_PIXELS = 1 << 32
#: A network that does not tile exactly (``Geometry.exact`` False: global pooling, attention that
#: reaches past any pad) runs images of up to this many (padded) input pixels whole by default,
#: as the paper evaluated it; larger ones are tiled, to bound memory, with a warning.
INEXACT_WHOLE_PIXELS = 512 * 512
#: The most images :meth:`Upscaler.frames_per_pass` stacks by itself (more adds little once the
#: device is busy, and each holds its output rows on the device).
MAX_FRAME_BATCH = 8
#: Float pixels beyond [0, 1] by more than this are an input mistake (0-255 values), not rounding.
_RANGE_SLACK = 0.01

TileCallback = Callable[[int, int], None]  # (tiles done, tiles total) for the current image
BlockCallback = Callable[[int, int, int, int, torch.Tensor], None]  # (y0, y1, x0, x1, a tile core's output)
IndexedBlock = Callable[[int, int, int, int, int, torch.Tensor], None]  # (image, y0, y1, x0, x1, a core's output)



class OutOfMemory(SresrError):
    """The device ran out of memory even with the smallest tile."""


@dataclass
class EngineStats:
    images: int = 0
    tiles: int = 0
    input_pixels: int = 0
    seconds: float = 0.0
    oom_retries: int = 0
    fp32_fallbacks: int = 0
    events: list[str] = field(default_factory=list)


_ALLOCATOR_TUNED = False


def tune_cpu_allocator() -> bool:
    """Keep freed memory in the process for reuse instead of handing it back to the OS after every
    tile (glibc only; process-wide, so the CLI calls it, not the library): blocks up to 32 MiB come
    from the heap and up to 256 MiB of free heap is kept. Without it every tile's activations are
    fresh ``mmap`` pages, and page faults cost about a tenth of the CPU time of a tiled upscale.
    Returns whether it was applied; calling it again does nothing."""
    global _ALLOCATOR_TUNED
    if _ALLOCATOR_TUNED:
        return True
    import ctypes
    import ctypes.util
    import platform

    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        m_trim_threshold, m_mmap_threshold = -1, -3
        ok = libc.mallopt(m_mmap_threshold, 32 << 20) == 1 and libc.mallopt(m_trim_threshold, 256 << 20) == 1
    except (OSError, AttributeError):
        return False
    _ALLOCATOR_TUNED = ok
    return ok


def is_oom(exc: BaseException) -> bool:
    oom_type = getattr(torch, "OutOfMemoryError", None) or getattr(torch.cuda, "OutOfMemoryError", None)
    if oom_type is not None and isinstance(exc, oom_type):
        return True
    if isinstance(exc, RuntimeError):
        msg = str(exc).lower()
        return "out of memory" in msg or "not enough memory" in msg or "can't allocate memory" in msg
    return False


#: chroma is upsampled in strips of about this many input pixels (their temporaries, ~200 bytes
#: per input pixel at x4, stay under the allocator's 32 MiB heap limit, see tune_cpu_allocator)
_STRIP_PIXELS = 1 << 17
#: input rows of context around a strip: MATLAB bicubic enlarging reads 2 pixels each side, so a
#: strip with 4 rows of context gives exactly the whole-image result
_CHROMA_PAD = 4


class Upscaler:
    """Run ``loaded`` on images of any size. See the module docstring.

    tile: core size in input pixels; 0 = whole image; None = on CUDA from free memory (the whole
        image when it fits, see the module docstring), elsewhere :func:`sresr.tiling.default_tile`.
    tile_pad: overlap; None = the model's receptive field (exact stitching).
    batch: tiles per forward pass.
    optimize: fold BatchNorm, use sub-pixel convolutions and channels_last where verified equal.
    alpha: how the alpha channel is upscaled: ``"model"`` (as a grey image) or ``"bicubic"``.
    resident: keep each image on the device from upload to rounded output rows (:class:`_Rows`);
        None = on accelerators (on the CPU the direct path is faster: no bands to copy).
    tta: x8 self-ensemble (:class:`SelfEnsemble`): 8x the work, tiled and exact like the plain path.
    frame_batch: how many images of one size :meth:`upscale_batch` runs together (video frames):
        their windows share forward passes, so frames small enough to run whole are one pass of
        ``frame_batch`` images. None = :meth:`frames_per_pass` decides (on CUDA from free memory).
    """

    def __init__(
        self,
        loaded: LoadedModel,
        device: str | torch.device = "auto",
        precision: str = "auto",
        tile: int | None = None,
        tile_pad: int | None = None,
        batch: int = 1,
        optimize: bool = True,
        alpha: Literal["model", "bicubic"] = "model",
        resident: bool | None = None,
        tta: bool = False,
        frame_batch: int | None = None,
    ):
        self.loaded = loaded
        self.spec = loaded.spec
        self.scale = int(loaded.scale)
        self.colorspace = loaded.colorspace
        # a module that runs itself (sresr.backends: an onnxruntime session) gets host float32 windows
        # as they are: its runtime has its own device and the file its own precision and rewrites
        self.external: str | None = getattr(loaded.module, "sresr_external", None)
        if self.external is not None:
            device, precision, optimize = "cpu", "fp32", False
        self.device = device if isinstance(device, torch.device) else resolve_device(str(device))
        self.dtype = inference_dtype(precision, self.device, self.spec)
        self.allow_tf32 = tf32_allowed(precision)
        if tile is not None and tile < 0:
            raise UsageError(f"--tile must be >= 0, got {tile}")
        if tile_pad is not None and tile_pad < 0:
            raise UsageError(f"--tile-pad must be >= 0, got {tile_pad}")
        if batch < 1:
            raise UsageError(f"--batch must be >= 1, got {batch}")
        if frame_batch is not None and frame_batch < 1:
            raise UsageError(f"--frame-batch must be >= 1, got {frame_batch}")
        self.frame_batch = frame_batch
        if alpha not in ("model", "bicubic"):
            raise UsageError(f"alpha must be 'model' or 'bicubic', got {alpha!r}")
        assert loaded.geometry is not None  # LoadedModel computes it when built
        rf, multiple = loaded.geometry.receptive_field, loaded.geometry.size_multiple
        self.receptive_field = rf
        # a network that tiles exactly its own way (forward_tiles: RCAN's convolutions tile by tile,
        # its channel attention over the whole map) is handed the tile, not windows (_run_one)
        self.streams = self.external is None and callable(getattr(loaded.module, "forward_tiles", None))
        own_pad = int(getattr(loaded.module, "tile_radius", rf)) if self.streams else rf
        self.tile_pad = int(tile_pad) if tile_pad is not None else (own_pad if own_pad > 0 else UNKNOWN_RF_PAD)
        #: whether tiled outputs equal the whole-image one (up to float rounding)
        self.exact = bool(loaded.geometry.exact) or self.streams
        #: what the caller should be told once (the CLI prints each as a ``warning:`` line)
        self.warnings: list[str] = []
        if tile_pad is not None and self.tile_pad < rf and tile != 0 and not self.streams:
            self.warnings.append(f"tile pad {self.tile_pad} is below the receptive field of {self.spec.name} ({rf} px): "
                                 "tiled outputs may show seams (leave --tile-pad out for exact tiling)")
        # a module with a fixed input size (an ONNX file exported with --tile T) gets windows of
        # exactly that size (sresr.tiling.plan_tiles' min_window), so its tiles stay exact
        self.fixed_window: tuple[int, int] | None = getattr(loaded.module, "window", None) if self.external else None
        if self.fixed_window is not None:
            from .backends.onnxruntime import static_tile

            tile = static_tile(loaded.module, tile, tile_pad, loaded.geometry)
        self.tile = default_tile(self.tile_pad, self.device.type) if tile is None else int(tile)
        # CUDA without a chosen tile: the tile of each image from free memory (_tile_for)
        self.auto_tile = tile is None and self.device.type == "cuda"
        # elsewhere, a network that does not tile exactly runs images up to INEXACT_WHOLE_PIXELS whole
        self.whole_when_small = tile is None and not self.auto_tile and not self.exact
        if not self.exact and tile != 0:
            side = math.isqrt(INEXACT_WHOLE_PIXELS)
            which = (f"images over {side}x{side} pixels are tiled and" if self.whole_when_small
                     else "images too large for the free memory are tiled and" if self.auto_tile else "tiled outputs")
            if rf == 0 and tile_pad is None:  # an ONNX file made elsewhere, say
                self.warnings.append(f"{self.spec.name}'s receptive field is unknown, so tiles overlap by a default "
                                     f"{self.tile_pad} px: {which} may show seams (give --tile-pad RADIUS for exact "
                                     "tiling, or --tile 0)")
            else:
                self.warnings.append(f"{self.spec.name} does not tile exactly (part of it sees the whole image): "
                                     f"{which} may differ slightly from a whole-image run (--tile 0 for the exact result)")
        self._per_pixel: tuple[float, float] | None = None  # bytes per window pixel, fixed bytes
        self.batch = int(batch)
        self.alpha = alpha
        self.size_multiple = multiple
        self.any_size = bool(getattr(loaded.geometry, "any_size", False)) and self.external is None
        self.stats = EngineStats()
        # on an accelerator the work stays there from upload to rounded output (see _Rows); the same
        # path runs on the CPU when asked for (resident=True), which is how the tests check it
        self.resident = self.device.type != "cpu" if resident is None else bool(resident)
        self._nonfinite: torch.Tensor | None = None
        self._in_fp32 = False
        self.in_channels = 1 if self.colorspace == "y" else 3
        self.module_scale = 1 if self.spec.input == "upsampled" else self.scale

        module = loaded.module.eval()
        self.report = OptimizeReport()
        self.channels_last = False
        if optimize and any(True for _ in module.parameters()):
            e = max(16, 2 * self.size_multiple)
            e = -(-e // self.size_multiple) * self.size_multiple
            gen = torch.Generator().manual_seed(0)
            example = torch.rand((1, self.in_channels, e, e), generator=gen)
            module = module.to("cpu", torch.float32)
            module, self.report, self.channels_last = optimize_for_inference(module, example)
        else:
            module = copy.deepcopy(module)
        self._fp32_reference = module  # CPU float32, for the NaN/Inf fallback
        self._fp32_on_device: torch.nn.Module | None = module if self.device.type == "cpu" else None
        if self.device.type == "cpu" and self.dtype == torch.float32:
            self.module = module
        else:
            self.module = copy.deepcopy(module).to(self.device, self.dtype)
            if self.channels_last:
                self.module = self.module.to(memory_format=torch.channels_last)
        if self.dtype == torch.float32:
            self._fp32_on_device = self.module
        self.tta = bool(tta)
        if self.tta:  # around the optimised network: its rewrites were checked on the plain one
            self.module = SelfEnsemble(self.module)
            self._fp32_reference = SelfEnsemble(self._fp32_reference)
            if self._fp32_on_device is not None:
                self._fp32_on_device = self.module if self.dtype == torch.float32 else SelfEnsemble(self._fp32_on_device)

    # -- description ------------------------------------------------------------------------
    @property
    def precision(self) -> str:
        if self.allow_tf32:
            return "tf32"
        return {torch.float32: "fp32", torch.float16: "fp16", torch.bfloat16: "bf16"}[self.dtype]

    def describe(self) -> str:
        opts = ", ".join(self.report.applied) or "none"
        return (
            f"{self.loaded.weights_id} x{self.scale}{' with x8 self-ensemble' if self.tta else ''} on "
            f"{self.external or f'{self.device} ({self.precision})'}, "
            f"tile {self._tile_words()}, pad {self.tile_pad}, batch {self.batch}, optimisations: {opts}"
        )

    def _tile_words(self) -> str:
        if self.auto_tile:
            return "from free memory"
        if self.whole_when_small:
            side = math.isqrt(INEXACT_WHOLE_PIXELS)
            return f"whole image up to {side}x{side}, else {self.tile}"
        return str(self.tile or "whole image")

    def plan_for(self, height: int, width: int) -> Any:
        """The tile plan :meth:`run` would use for an input of this size (in the module's input)."""
        h, w = height, width
        if self.spec.input == "upsampled":
            h, w = height * self.scale, width * self.scale
        hp, wp = padded_size(h, w, self.size_multiple)
        return plan_tiles(hp, wp, self._tile_for(hp, wp), self.tile_pad, self.size_multiple, self.fixed_window or (0, 0))

    # -- the forward pass on one batch of windows --------------------------------------------
    def _forward(self, windows: torch.Tensor, tile: int | None = None) -> torch.Tensor:
        """Windows (host float32) -> float32 outputs on the host; ``tile``: the whole images through
        the module's own exact tiling (``forward_tiles``) instead."""
        if self.resident:
            return self._forward_resident(windows, tile)
        xb = windows.to(self.device, self.dtype, non_blocking=True)
        if self.channels_last:
            xb = xb.contiguous(memory_format=torch.channels_last)
        with torch.inference_mode():
            y = _call(self.module, xb, tile)
            if self.dtype != torch.float32 and not bool(torch.isfinite(y).all()):
                self.stats.fp32_fallbacks += 1
                self.stats.events.append("non-finite half-precision output recomputed in fp32")
                y = _call(self._fp32_module(), self._to_fp32_input(windows), tile)
        return y.to("cpu", torch.float32)

    def _forward_resident(self, windows: torch.Tensor, tile: int | None = None) -> torch.Tensor:
        """Windows on the device -> float32 outputs on the device; the non-finite check of half
        precision goes into a device flag (read once per image), not a host sync per tile."""
        if self._in_fp32:
            with torch.inference_mode():
                return _call(self._fp32_module(), self._to_fp32_input(windows), tile).float()
        xb = windows.to(self.dtype)
        if self.channels_last:
            xb = xb.contiguous(memory_format=torch.channels_last)
        with torch.inference_mode():
            y = _call(self.module, xb, tile)
            if self.dtype != torch.float32 and self._nonfinite is not None:
                self._nonfinite |= ~torch.isfinite(y).all()
        return y.float()

    def _to_fp32_input(self, windows: torch.Tensor) -> torch.Tensor:
        xb = windows.to(self.device, torch.float32)
        return xb.contiguous(memory_format=torch.channels_last) if self.channels_last else xb

    def _fp32_module(self) -> torch.nn.Module:
        if self._fp32_on_device is None:
            m = copy.deepcopy(self._fp32_reference).to(self.device)
            self._fp32_on_device = m.to(memory_format=torch.channels_last) if self.channels_last else m
        return self._fp32_on_device

    def _free(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.empty_cache()
        elif self.device.type == "mps":
            try:
                torch.mps.empty_cache()
            except Exception:
                pass

    # -- images of one size, tiled, with the out-of-memory fallback ----------------------------
    def _run_one(
        self,
        x: torch.Tensor,
        on_tiles: TileCallback | None,
        canvas: torch.Tensor | None = None,
        on_block: "IndexedBlock | None" = None,
        batch: int | None = None,
    ) -> torch.Tensor | None:
        """``x`` (``N x C x H x W``, N images of one size, host memory or on the device) through
        the tiles of one plan: into ``canvas`` (or a new one, returned), or each tile's core into
        ``on_block(i, y0, y1, x0, x1, block)``. ``batch``: windows per forward pass (default
        ``self.batch``); windows of consecutive images share a pass."""
        n, _, h, w = x.shape
        m = self.size_multiple
        s = self.module_scale
        hp, wp = padded_size(h, w, m)
        padded = None
        batch = self.batch if batch is None else batch

        def on_padded_block(i: int, y0: int, y1: int, x0: int, x1: int, block: torch.Tensor) -> None:  # crop the padding
            if y0 < h and x0 < w:
                y1, x1 = min(y1, h), min(x1, w)
                on_block(i, y0, y1, x0, x1, block[:, :, : (y1 - y0) * s, : (x1 - x0) * s])  # type: ignore[misc]

        while True:
            plan = plan_tiles(hp, wp, self._tile_for(hp, wp), self.tile_pad, m, self.fixed_window or (0, 0))
            source, sink, into = x, on_block, canvas
            if (hp, wp) != (h, w):
                if self.any_size and len(plan.tiles) == 1:
                    # one window over the whole image, and a network that pads inside as its authors'
                    # code does (Geometry.any_size): give it the image as it is
                    plan = plan_tiles(h, w, 0, self.tile_pad, 1)
                else:  # padded to the size multiple: the output is larger than the caller's canvas
                    if padded is None:
                        padded = _pad_bottom_right(x, hp - h, wp - w)
                    source, into = padded, None
                    sink = on_padded_block if on_block is not None else None
            done = [0]
            total = n * len(plan.tiles)
            if on_tiles is not None:
                on_tiles(0, total)

            def tick(k: int) -> None:
                done[0] += k
                self.stats.tiles += k
                if on_tiles is not None:
                    on_tiles(done[0], total)

            try:
                # fp32 work (the network in fp32, the fp32 fallback, Y models' chroma) is IEEE fp32 on
                # CUDA unless --precision tf32; half-precision convolutions are not affected
                with cudnn_benchmark(self.device.type == "cuda" and len(plan.tiles) > 1), \
                        ieee_fp32(self.device, torch.float32, self.allow_tf32):
                    if self.streams and len(plan.tiles) > 1:
                        # the module tiles itself (forward_tiles with the plan's tile), each call
                        # holding whole feature maps: whole images, ``batch`` a call
                        whole = plan_tiles(plan.height, plan.width, 0, 0)
                        out = run_tiled(functools.partial(self._forward, tile=plan.tile), source, whole, s, batch,
                                        lambda k: tick(k * len(plan.tiles)), into, sink)
                    else:
                        out = run_tiled(self._forward, source, plan, s, batch, tick, into, sink)
                break
            except Exception as exc:
                if not is_oom(exc):
                    raise
                del exc
                self._free()
                batch = self._shrink(plan, batch)
        return None if out is None else out[:, :, : h * s, : w * s]

    def _tile_for(self, height: int, width: int) -> int:
        """The tile of one (padded) image: ``self.tile``, or on CUDA by default the largest that the
        free memory holds (0 = the whole image); for a network that does not tile exactly, the whole
        image when it has at most INEXACT_WHOLE_PIXELS pixels."""
        if self.whole_when_small and height * width <= INEXACT_WHOLE_PIXELS:
            return 0
        budget = self._window_budget()
        if budget is None:
            return self.tile
        return tile_for_budget(height, width, self.tile_pad, budget // self.batch, self.size_multiple,
                               floor=DEFAULT_AUTO_FLOOR)

    def _window_budget(self) -> int | None:
        """On CUDA with the automatic tile: the window pixels one forward pass can hold (free memory
        over the model's measured footprint); None elsewhere, or when measuring ran out of memory."""
        if not self.auto_tile:
            return None
        try:
            per_pixel, fixed = self._footprint()
        except Exception as exc:
            if not is_oom(exc):
                raise
            del exc
            self._free()
            self.auto_tile = False  # the fixed default tile, and the out-of-memory fallback from there
            self.stats.events.append("out of memory while measuring the model's footprint: default tile")
            return None
        free, _ = torch.cuda.mem_get_info(self.device)
        free += torch.cuda.memory_reserved(self.device) - torch.cuda.memory_allocated(self.device)
        # headroom for fragmentation and the allocator's rounding; the output rows stay on the device too
        return int((0.7 * free - fixed) / per_pixel)

    def frames_per_pass(self, height: int, width: int) -> int:
        """How many images of ``height x width`` to give :meth:`upscale_batch` at once: ``frame_batch``
        when set; else, on CUDA with the automatic tile, as many as fit one forward pass whole (at
        most :data:`MAX_FRAME_BATCH`; 1 when a frame must be tiled); else 1 (on the CPU one frame's
        tiles already keep every core busy)."""
        if self.frame_batch is not None:
            return self.frame_batch
        if self.spec.input == "upsampled":
            height, width = height * self.scale, width * self.scale
        hp, wp = padded_size(height, width, self.size_multiple)
        budget = self._window_budget()
        if budget is None:
            return 1
        return max(1, min(MAX_FRAME_BATCH, budget // (self.batch * hp * wp)))

    def _footprint(self) -> tuple[float, float]:
        """Device bytes of one forward pass per window pixel, and fixed bytes: the peak of two probe
        passes (windows of side e and 2e, after a warm-up) on random input, measured once; plus the
        rounded output rows (a band of the output, double-buffered, up to 4 bytes a sample) per
        input pixel. It resets the device's peak-memory counter (once, at the first image)."""
        if self._per_pixel is None:
            m = self.size_multiple
            e = -(-max(64, 2 * m) // m) * m
            peaks = []
            flag, self._nonfinite = self._nonfinite, None  # the probe's outputs are not the image's
            for side in (e, e, 2 * e):  # the first pass warms up (cuDNN's handles and workspace)
                x = torch.rand((self.batch, self.in_channels, side, side), device=self.device)
                torch.cuda.synchronize(self.device)
                base = torch.cuda.memory_allocated(self.device)
                torch.cuda.reset_peak_memory_stats(self.device)
                self._forward_resident(x) if self.resident else self._forward(x.cpu())
                torch.cuda.synchronize(self.device)
                peaks.append(torch.cuda.max_memory_allocated(self.device) - base)
                del x
            self._nonfinite = flag
            peaks = peaks[1:]
            slope = max(1.0, (peaks[1] - peaks[0]) / (self.batch * 3 * e * e))  # (2e)^2 - e^2 pixels a window
            fixed = max(0.0, peaks[0] - slope * self.batch * e * e)
            per_pixel = slope + 2 * self.module_scale**2 * self.in_channels * 4
            self._per_pixel = (per_pixel, fixed)
        return self._per_pixel

    def _shrink(self, plan: Any, batch: int) -> int:
        """After an out-of-memory error: the windows per pass halved (and the frames per pass with
        them), or once down to one, the tile halved. Returns the batch to retry with."""
        self.stats.oom_retries += 1
        self.auto_tile = False  # from here on the tile halves as on a device of fixed memory
        self.whole_when_small = False
        if batch > 1:
            batch //= 2
            self.batch = min(self.batch, batch)
            if self.frame_batch is not None:  # (an automatic one stops with auto_tile: 1 frame a pass)
                self.frame_batch = min(self.frame_batch, batch)
            self.stats.events.append(f"out of memory: batch lowered to {batch}")
            return batch
        current = max(max(t.y1 - t.y0, t.x1 - t.x0) for t in plan.tiles)
        floor = max(MIN_TILE, self.size_multiple)
        if current <= floor:
            raise OutOfMemory(
                f"out of memory on {self.device} even with {current}px tiles",
                hint="free GPU memory, or use --device cpu",
            )
        self.tile = max(floor, current // 2)
        self.stats.events.append(f"out of memory: tile lowered to {self.tile}")
        return batch

    # -- public API ----------------------------------------------------------------------------
    def run(
        self,
        x: torch.Tensor,
        on_tiles: TileCallback | None = None,
        out: torch.Tensor | None = None,
        *,
        blocks: BlockCallback | None = None,
    ) -> torch.Tensor | None:
        """``N x C x H x W`` in the model's colour space, [0, 1] -> upscaled, float32 on the CPU.

        ``out`` (``N x C x H*s x W*s``, any strides) receives the result in place, so
        a caller can have the network write straight into part of a larger output canvas; a uint8 or
        uint16 ``out`` receives it rounded (:func:`sresr.tiling.store`) tile by tile.

        ``blocks(y0, y1, x0, x1, block)``: instead of an output, each tile's core output (clamped; a
        view: copy what you keep; coordinates in the model's input) goes to this callback as soon
        as it is computed, and None is returned: the output never exists whole (one image at a
        time; a block may come again after an out-of-memory retry)."""
        if x.dim() != 4:
            raise UsageError(f"expected an NxCxHxW tensor, got shape {tuple(x.shape)}")
        if x.shape[1] != self.in_channels:
            raise UsageError(
                f"model '{self.spec.name}' ({self.colorspace}) takes {self.in_channels} channel(s), got {x.shape[1]}"
            )
        return self._run(_float_pixels(x), on_tiles, out, blocks)

    __call__ = run

    def _run(self, x: torch.Tensor, on_tiles: TileCallback | None, out: torch.Tensor | None,
             blocks: BlockCallback | None, batch: int | None = None) -> torch.Tensor | None:
        """:meth:`run` of an input already checked: float32 on the CPU, finite, in [0, 1]. The N
        images go through the tiles together (``batch`` windows a pass, default ``self.batch``)."""
        if blocks is not None and x.shape[0] != 1:
            raise ValueError("blocks= takes one image at a time")
        if blocks is not None and out is not None:
            raise ValueError("give out= or blocks=, not both")
        if self.resident:
            return self._run_resident(x, on_tiles, out, blocks, batch)
        t0 = time.perf_counter()
        lr_pixels = x.shape[0] * x.shape[2] * x.shape[3]
        if self.spec.input == "upsampled":
            from .imaging.resize import imresize

            x = imresize(x, scale=self.scale)
        if blocks is not None:
            sink = blocks

            def clamped(i: int, y0: int, y1: int, x0: int, x1: int, block: torch.Tensor) -> None:
                sink(y0, y1, x0, x1, block.clamp(0.0, 1.0))

            self._run_one(x, on_tiles, None, clamped, batch)
            result = None
        else:
            result = self._run_one(x, on_tiles, out, None, batch)
            assert result is not None
            if result.is_floating_point():
                result = result.clamp_(0.0, 1.0)
            if out is not None and result.data_ptr() != out.data_ptr():
                store(out, result)  # the input was padded to the size multiple: the caller's canvas was too small
                result = out
        self.stats.images += x.shape[0]
        self.stats.input_pixels += lr_pixels
        self.stats.seconds += time.perf_counter() - t0
        return result

    # -- on an accelerator: the image uploaded once, the output rounded there, rows copied back --
    def _upload(self, x: torch.Tensor) -> torch.Tensor:
        """The model's input on the device (pre-upsampled there for SRCNN/VDSR-style models)."""
        x = x.to(self.device, non_blocking=True)
        if self.spec.input == "upsampled":
            from .imaging.resize import imresize

            x = imresize(x, scale=self.scale)
        return x

    def _run_resident(self, x: torch.Tensor, on_tiles: TileCallback | None, out: torch.Tensor | None,
                      blocks: BlockCallback | None, batch: int | None = None) -> torch.Tensor | None:
        t0 = time.perf_counter()
        n, c, h, w = x.shape
        result = None
        if blocks is not None:  # a caller's callback gets host tensors, as on the CPU
            sink = blocks

            def to_host(i: int, y0: int, y1: int, x0: int, x1: int, block: torch.Tensor) -> None:
                sink(y0, y1, x0, x1, block.clamp(0.0, 1.0).to("cpu", torch.float32))

            self._image_resident(self._upload(x), on_tiles, None, to_host, batch)
        else:
            s = self.scale
            result = out if out is not None else torch.empty((n, c, h * s, w * s), dtype=torch.float32)
            ms = self.module_scale
            rows = _RowsOfImages(result, self.device)

            def into_rows(i: int, y0: int, y1: int, x0: int, x1: int, block: torch.Tensor) -> None:
                band = rows.view(i, y0 * ms, y1 * ms)
                store(band[:, :, :, x0 * ms : x1 * ms], block if band.dtype != torch.float32 else block.clamp(0, 1))

            self._image_resident(self._upload(x), on_tiles, rows, into_rows, batch)
        self.stats.images += n
        self.stats.input_pixels += n * h * w
        self.stats.seconds += time.perf_counter() - t0
        return result

    def _image_resident(self, x: torch.Tensor, on_tiles: TileCallback | None, rows: "_RowsOfImages | None",
                        on_block: IndexedBlock, batch: int | None = None) -> None:
        """Images already on the device through the tiles into ``on_block``, no host sync per
        tile: half-precision outputs are checked for non-finite values with one flag read at the
        end, and then all of them are computed again in fp32."""
        self._nonfinite = torch.zeros((), dtype=torch.bool, device=self.device)
        try:
            self._run_one(x, on_tiles, None, on_block, batch)
            if rows is not None:
                rows.finish()
            if self.dtype != torch.float32 and bool(self._nonfinite):
                self.stats.fp32_fallbacks += 1
                self.stats.events.append("non-finite half-precision output: image recomputed in fp32")
                self._in_fp32 = True  # the rows are written again, over the finished ones
                self._run_one(x, on_tiles, None, on_block, batch)
                if rows is not None:
                    rows.finish()
        finally:
            self._in_fp32 = False
            self._nonfinite = None

    def upscale_rgb(
        self, x: torch.Tensor, on_tiles: TileCallback | None = None, out: torch.Tensor | None = None
    ) -> torch.Tensor:
        """``N x 3 x H x W`` RGB in [0, 1] (a float tensor, or uint8 / uint16 scaled by 255 /
        65535) -> upscaled RGB (float32, CPU, [0, 1]). A numpy array or PIL image is upscaled by
        :meth:`upscale_image` and comes back as one.

        ``out`` (``N x 3 x H*s x W*s``, any strides: an ``H x W x 3`` array's permuted view, say)
        receives the result; uint8/uint16 gets it rounded as the encoders would. Returns ``out``."""
        if not isinstance(x, torch.Tensor):
            if out is not None:
                raise UsageError("out= takes a tensor input")
            return self.upscale_image(x, on_tiles=on_tiles)  # type: ignore[arg-type,return-value]
        if x.dim() != 4 or x.shape[1] != 3:
            raise UsageError(f"expected an Nx3xHxW RGB tensor, got shape {tuple(x.shape)}",
                             hint="add a batch dimension with x[None]; grey images: x.expand(-1, 3, -1, -1)")
        return self._upscale_rgb(_float_pixels(x), on_tiles, out)

    def _upscale_rgb(self, x: torch.Tensor, on_tiles: TileCallback | None, out: torch.Tensor | None,
                     batch: int | None = None) -> torch.Tensor:
        """:meth:`upscale_rgb` of an input already checked: float32 on the CPU, finite, in [0, 1].
        RGB models take the N images together (``batch`` windows a pass); Y models one at a time."""
        n, _, h, w = x.shape
        s = self.scale
        if out is None:
            out = torch.empty((n, 3, h * s, w * s), dtype=torch.float32)
        elif tuple(out.shape) != (n, 3, h * s, w * s):
            raise ValueError(f"out has shape {tuple(out.shape)}, expected {(n, 3, h * s, w * s)}")
        if self.colorspace != "y":
            self._run(x, on_tiles, out, None, batch)
            return out
        from .imaging.color import rgb_to_ycbcr, ycbcr_to_rgb_affine

        # Luma through the network a tile at a time; each tile's core gets its colour at once, while
        # it is still in cache (chroma: MATLAB-bicubic enlargement with the YCbCr -> RGB matrix
        # folded in, one convolution, plus the luma's share) and is stored. No full-size float
        # buffer exists beyond ``out`` itself.
        ycc = rgb_to_ycbcr(x)
        luma_in, cbcr = ycc[:, :1].contiguous(), ycc[:, 1:].contiguous()
        del ycc
        m, o = ycbcr_to_rgb_affine()
        mix, bias, coef = m[:, 1:].float(), o.float(), m[:, 0].tolist()
        if self.resident:  # chroma and luma uploaded once; colour made, rounded and interleaved on the device
            mix, bias = mix.to(self.device), bias.to(self.device)
            for i in range(n):
                rows = _RowsOfImages(out[i : i + 1], self.device)
                chroma = cbcr[i : i + 1].to(self.device)
                luma = self._upload(luma_in[i : i + 1])
                colour = functools.partial(self._colour_block, chroma, rows, mix, bias, coef)

                def clamped(_: int, y0: int, y1: int, x0: int, x1: int, block: torch.Tensor, colour=colour) -> None:
                    colour(y0, y1, x0, x1, block.clamp(0.0, 1.0))  # as run(blocks=...) hands luma over

                self._image_resident(luma, on_tiles, rows, clamped)
                self.stats.images += 1
                self.stats.input_pixels += h * w
            return out
        for i in range(n):
            colour = functools.partial(self._colour_block, cbcr[i : i + 1], out[i : i + 1], mix, bias, coef)
            self._run(luma_in[i : i + 1], on_tiles, None, colour)
        return out

    def _colour_block(
        self, cbcr: torch.Tensor, dest: "torch.Tensor | _RowsOfImages", mix: torch.Tensor, bias: torch.Tensor,
        coef: list[float], y0: int, y1: int, x0: int, x1: int, luma: torch.Tensor,
    ) -> None:
        """RGB for one tile core of a Y model: ``luma`` is the network's output for the model's input
        rows ``[y0, y1)`` and columns ``[x0, x1)``; the chroma of the same block is enlarged from
        ``cbcr`` (the whole image's, ``1 x 2 x H x W``) with a few pixels of context, and the sum is
        stored into ``dest`` (``1 x 3 x H*s x W*s``), in strips of bounded size."""
        s, ms = self.scale, self.module_scale  # ms: module pixels -> output pixels (1 if fed upsampled)
        h, w = cbcr.shape[2], cbcr.shape[3]
        a, b, c0, c1 = y0 * ms, y1 * ms, x0 * ms, x1 * ms  # the output block
        # on a GPU the block's output rows are a band on the device (_Rows), copied to the host per row of tiles
        canvas, row0 = (dest.view(0, a, b), a) if isinstance(dest, _RowsOfImages) else (dest, 0)
        k0, k1 = max(0, c0 // s - _CHROMA_PAD), min(w, -(-c1 // s) + _CHROMA_PAD)  # input columns + context
        step = max(1, _STRIP_PIXELS // max(1, k1 - k0)) * s  # output rows per strip
        direct = canvas.dtype == torch.float32
        for a0 in range(a, b, step):
            a1 = min(b, a0 + step)
            p0, p1 = max(0, a0 // s - _CHROMA_PAD), min(h, -(-a1 // s) + _CHROMA_PAD)  # input rows + context
            chroma = enlarge(cbcr[:, :, p0:p1, k0:k1], s, mix, bias)[
                :, :, a0 - p0 * s : a1 - p0 * s, c0 - k0 * s : c1 - k0 * s]
            y = luma[:, :, a0 - a : a1 - a]
            target = canvas[:, :, a0 - row0 : a1 - row0, c0:c1]
            strip = target if direct else torch.empty((1, 3, a1 - a0, c1 - c0), device=cbcr.device)
            for ch in range(3):
                torch.add(chroma[:, ch : ch + 1], y, alpha=coef[ch], out=strip[:, ch : ch + 1])
            if direct:
                strip.clamp_(0.0, 1.0)
            else:  # clamped, scaled and rounded into the integer canvas
                store(target, strip, scratch=True)

    def upscale_image(
        self,
        image: Image,
        outscale: float | None = None,
        on_tiles: TileCallback | None = None,
        depth: int | None = None,
    ) -> Image:
        """Upscale an :class:`Image` by the model's scale (then resample to ``outscale`` if given).

        depth: None returns float32 pixels in [0, 1]; 8 or 16 returns uint8 / uint16 pixels (and
        alpha), rounded exactly as :func:`sresr.imaging.io.encode_image` rounds a float image, with
        ``bit_depth`` set to match. For an RGB image at the model's scale the network's tiles are
        rounded straight into the integer canvas: a quarter (8-bit) or half (16-bit) of the float
        image's memory, and no float copy of the output exists."""
        if depth not in (None, 8, 16):
            raise UsageError(f"depth must be None, 8 or 16, got {depth!r}")
        if not isinstance(image, Image):
            return _upscale_foreign(self, image, outscale, on_tiles)
        from .imaging.io import as_float, quantize

        h, w = image.height, image.width
        s = self.scale
        out_h, out_w, resampling = self._output_size(h, w, outscale)
        _check_finite(image.pixels, "pixels")
        if image.alpha is not None:
            _check_finite(image.alpha, "alpha")
        px = torch.from_numpy(np.ascontiguousarray(as_float(image.pixels))).permute(2, 0, 1).unsqueeze(0)
        gray = px.shape[1] == 1
        if depth is not None and not gray and not resampling:
            # rounded tile by tile into the integer image. torch's allocator, not numpy's: numpy asks
            # for transparent huge pages on large arrays, and faulting those in tile by tile across
            # a wide canvas costs up to twice the time per pixel on big images (kernel compaction)
            canvas = torch.empty((h * s, w * s, 3), dtype=torch.uint8 if depth == 8 else torch.uint16)
            self._upscale_rgb(px, on_tiles, canvas.permute(2, 0, 1).unsqueeze(0))
            pixels = canvas.numpy()
        else:
            out = self._upscale_rgb(px.expand(1, 3, h, w).contiguous() if gray else px, on_tiles, None)
            if gray:
                out = out.mean(dim=1, keepdim=True)
            pixels = resample(out, out_h, out_w)[0].permute(1, 2, 0).numpy()
            if depth is not None:
                pixels = quantize(pixels, depth)
        del px
        alpha_np = None
        if image.alpha is not None:
            a = torch.from_numpy(np.ascontiguousarray(as_float(image.alpha)))[None, None]
            if bool((a >= 1.0).all()):  # opaque stays exactly opaque, at any size, made at the output
                # depth (a float plane first would be 4 bytes per output pixel, for a constant)
                one = np.ones((1, 1), np.float32)
                if depth is not None:
                    one = quantize(one, depth)
                alpha_np = np.full((out_h, out_w), one[0, 0], one.dtype)
            else:
                if self.alpha == "model":
                    alpha = self._upscale_rgb(a.expand(1, 3, h, w).contiguous(), on_tiles, None).mean(dim=1, keepdim=True)
                else:
                    from .imaging.resize import imresize

                    alpha = imresize(a.float(), scale=s).clamp_(0.0, 1.0)
                alpha_np = resample(alpha, out_h, out_w)[0, 0].numpy()
                if depth is not None:
                    alpha_np = quantize(alpha_np, depth)
        if depth is None:
            return image.with_pixels(pixels, alpha_np)
        return replace(image.with_pixels(pixels, alpha_np), bit_depth=depth)


    def _output_size(self, h: int, w: int, outscale: float | None) -> tuple[int, int, bool]:
        """The output size for an ``h x w`` input and ``outscale``, and whether it is resampled
        (``outscale`` checked, the output's size bounded by MAX_OUTPUT_PIXELS)."""
        s = self.scale
        if outscale is not None:
            if isinstance(outscale, bool) or not isinstance(outscale, (int, float)) or not math.isfinite(outscale) \
                    or outscale <= 0:
                raise UsageError(f"outscale must be a positive number, got {outscale!r}")
        resampling = outscale is not None and not math.isclose(float(outscale), float(s))
        out_h, out_w = (max(1, round(h * outscale)), max(1, round(w * outscale))) if resampling else (h * s, w * s)
        if out_h * out_w > MAX_OUTPUT_PIXELS:
            raise UsageError(f"the output would be {out_w} x {out_h} pixels ({out_w * out_h / 1e9:.3g} GPix), more than "
                             f"the {MAX_OUTPUT_PIXELS / 1e9:.3g} GPix sresr makes",
                             hint="use a smaller --outscale (or split the image)")
        return out_h, out_w, resampling

    def upscale_batch(
        self,
        images: "list[Image]",
        outscale: float | None = None,
        on_tiles: TileCallback | None = None,
        depth: int | None = None,
    ) -> "list[Image]":
        """:meth:`upscale_image` of several images (video frames). Images of one size, RGB without
        alpha, at the model's scale and with ``depth`` 8 or 16 run together: their windows share
        forward passes (``batch`` windows a pass, or every image at once when each runs as one
        window), so a GPU upscales small frames several to a pass. Each result equals the image's
        own :meth:`upscale_image` up to the float rounding of a larger batch (a level of 8 bits at
        rare pixels); anything else runs one image at a time."""
        from .imaging.io import as_float

        images = list(images)
        first = images[0] if images else None
        together = (
            len(images) > 1 and depth in (8, 16) and isinstance(first, Image)
            and not self._output_size(first.height, first.width, outscale)[2]
            and all(isinstance(im, Image) and im.alpha is None and im.pixels.ndim == 3 and im.pixels.shape[2] == 3
                    and im.pixels.shape == first.pixels.shape for im in images)
        )
        if not together:
            return [self.upscale_image(im, outscale, on_tiles, depth) for im in images]
        assert first is not None
        n, h, w, s = len(images), first.height, first.width, self.scale
        for im in images:
            _check_finite(im.pixels, "pixels")
        px = torch.from_numpy(np.stack([as_float(im.pixels) for im in images])).permute(0, 3, 1, 2)
        canvas = torch.empty((n, h * s, w * s, 3), dtype=torch.uint8 if depth == 8 else torch.uint16)
        whole = len(self.plan_for(h, w).tiles) == 1
        # whole frames: all of them a pass, or at most frame_batch (lowered by an out-of-memory error)
        per_pass = n if self.frame_batch is None else min(n, self.frame_batch)
        self._upscale_rgb(px, on_tiles, canvas.permute(0, 3, 1, 2), max(self.batch, per_pass) if whole else None)
        del px
        return [replace(im.with_pixels(canvas[i].numpy(), None), bit_depth=depth) for i, im in enumerate(images)]


def _call(module: torch.nn.Module, x: torch.Tensor, tile: int | None) -> torch.Tensor:
    """``module(x)``, or with a tile the module's own exact tiling ``module.forward_tiles(x, tile)``."""
    return module(x) if tile is None else module.forward_tiles(x, tile)  # type: ignore[operator]


class SelfEnsemble(torch.nn.Module):
    """x8 self-ensemble ("TTA", Lim et al. 2017; Timofte et al. 2016): the network on the eight
    flips and transposes of its input, each output turned back, the eight averaged in float32.
    Every output pixel still depends on the same input neighbourhood (its receptive field is the
    network's), so tiled runs stay equal to whole-image ones. Windows need not be square: a
    transposed window is run as it is."""

    def __init__(self, module: torch.nn.Module):
        super().__init__()
        self.inner = module

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._ensemble(x, self.inner)

    def forward_tiles(self, x: torch.Tensor, tile: int) -> torch.Tensor:
        """The ensemble of the inner network's own exact tiling (when it has one)."""
        return self._ensemble(x, lambda t: self.inner.forward_tiles(t, tile))  # type: ignore[operator]

    def _ensemble(self, x: torch.Tensor, run: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
        total: torch.Tensor | None = None
        for transpose in (False, True):
            for flips in ((), (2,), (3,), (2, 3)):
                t = x.transpose(2, 3) if transpose else x
                t = t.flip(flips) if flips else t
                y = run(t.contiguous(memory_format=_memory_format(x))).float()
                y = y.flip(flips) if flips else y
                y = y.transpose(2, 3) if transpose else y
                total = y if total is None else total + y
        assert total is not None
        return total / 8


def _memory_format(x: torch.Tensor) -> torch.memory_format:
    return torch.channels_last if x.dim() == 4 and x.is_contiguous(memory_format=torch.channels_last) \
        and not x.is_contiguous() else torch.contiguous_format


def _check_finite(a: Any, what: str) -> None:
    """Float pixels must be finite and within [0, 1] (within rounding); integers are always fine."""
    # min and max in one pass each, no temporary: NaN propagates into them and Inf shows as a bound
    if isinstance(a, torch.Tensor):
        if not a.is_floating_point() or not a.numel():
            return
        lo_t, hi_t = torch.aminmax(a.detach())
        lo, hi = float(lo_t), float(hi_t)
    else:
        arr = np.asarray(a)
        if arr.dtype.kind != "f" or not arr.size:
            return
        lo, hi = float(arr.min()), float(arr.max())
    if not (math.isfinite(lo) and math.isfinite(hi)):
        raise UsageError(f"the input {what} hold NaN or infinite values", hint="give finite pixel values in [0, 1]")
    if lo < -_RANGE_SLACK or hi > 1 + _RANGE_SLACK:
        hint = "divide 0-255 values by 255 (or pass a uint8 array)" if hi > 2 else "clip the values to [0, 1]"
        raise UsageError(f"the input {what} range over [{lo:g}, {hi:g}]; float pixels must lie in [0, 1]", hint=hint)


def _float_pixels(x: torch.Tensor) -> torch.Tensor:
    """A float32 CPU tensor in [0, 1] from a float (checked), uint8 or uint16 (scaled) tensor."""
    peak = {torch.uint8: 255.0, torch.uint16: 65535.0}.get(x.dtype)
    if peak is not None:
        return x.detach().to("cpu", torch.float32) / peak
    if not x.is_floating_point():
        raise UsageError(f"unsupported tensor dtype {x.dtype}", hint="use float in [0, 1], uint8 or uint16")
    _check_finite(x, "pixels")
    return x.detach().to("cpu", torch.float32)


def _upscale_foreign(up: "Upscaler", image: Any, outscale: float | None, on_tiles: TileCallback | None) -> Any:
    """``upscale_image`` of a numpy array or a PIL image, returned as the same kind of thing."""
    from .imaging.io import quantize

    pil = None
    if type(image).__module__.startswith("PIL.") and hasattr(image, "mode"):
        pil = image
        mode = image.mode
        if mode in ("I;16", "I;16L", "I;16B", "I;16N"):
            arr = np.asarray(image).astype(np.uint16)
        else:
            want = {"1": "L", "P": "RGBA" if "transparency" in image.info else "RGB", "CMYK": "RGB",
                    "YCbCr": "RGB", "PA": "RGBA", "La": "LA", "RGBa": "RGBA", "RGBX": "RGB"}.get(mode, mode)
            if want not in ("L", "LA", "RGB", "RGBA"):
                raise UsageError(f"unsupported PIL image mode {mode!r}", hint="convert it to RGB or RGBA first")
            arr = np.asarray(image.convert(want) if want != mode else image)
    elif isinstance(image, np.ndarray):
        arr = image
    else:
        raise UsageError(f"cannot upscale a {type(image).__module__}.{type(image).__qualname__}",
                         hint="pass an sresr Image, a numpy array (H x W x C) or a PIL image")
    a = arr[:, :, None] if arr.ndim == 2 else arr
    if a.ndim != 3 or a.shape[2] not in (1, 2, 3, 4) or a.shape[0] < 1 or a.shape[1] < 1:
        raise UsageError(f"expected an H x W or H x W x C array (C = 1 grey, 2 grey + alpha, 3 RGB, 4 RGBA), "
                         f"got shape {tuple(arr.shape)}", hint="channels last; for CHW arrays use a.transpose(1, 2, 0)")
    kind = a.dtype
    if kind == np.uint8:
        f, depth = a.astype(np.float32) / np.float32(255), 8
    elif kind == np.uint16:
        f, depth = a.astype(np.float32) / np.float32(65535), 16
    elif kind.kind == "f":
        _check_finite(a, "pixels")
        f, depth = np.clip(a.astype(np.float32), 0, 1), 8
    else:
        raise UsageError(f"unsupported array dtype {kind}", hint="use uint8, uint16, or float in [0, 1]")
    colour = 3 if a.shape[2] >= 3 else 1
    alpha = f[:, :, colour] if a.shape[2] in (2, 4) else None
    result = up.upscale_image(Image(np.ascontiguousarray(f[:, :, :colour]), alpha, depth), outscale, on_tiles)
    planes = [result.pixels] + ([result.alpha[:, :, None]] if result.alpha is not None else [])
    out = np.concatenate(planes, axis=2) if len(planes) > 1 else planes[0]
    if kind in (np.uint8, np.uint16):
        out = quantize(out, 8 if kind == np.uint8 else 16)
    else:
        out = out.astype(kind, copy=False)
    out = out[:, :, 0] if arr.ndim == 2 else out
    if pil is None:
        return out
    from PIL import Image as PILImage

    if out.dtype == np.uint16:
        return PILImage.fromarray(out if out.ndim == 2 else out[:, :, 0], mode="I;16")
    return PILImage.fromarray(np.ascontiguousarray(out))


class _Rows:
    """The output of one image made on an accelerator, a row of tiles at a time.

    A row of tiles writes (rounded, for an integer output; interleaved, when the host output is an
    ``H x W x C`` array) into a band on the device; when the next row starts, the band is copied
    to a pinned host buffer on a side stream while the device goes on with the next row in the
    other band, and the host buffer is copied into the output once its copy has finished. The
    device holds two bands of one row of tiles, whatever the image's height: memory is bounded by
    a row, and only finished integer pixels cross the bus.
    """

    def __init__(self, out: torch.Tensor, device: torch.device):
        self.out = out  # 1 x C x H x W on the host, any strides
        self.device = device
        self.hwc = out[0].permute(1, 2, 0)
        self.interleaved = self.hwc.is_contiguous()
        self.cuda = device.type == "cuda"
        self.copier = torch.cuda.Stream(device) if self.cuda else None
        self.slots: list[dict[str, Any]] = [{}, {}]
        self.turn = 0
        self.rows: tuple[int, int] | None = None  # output rows of the current band

    def view(self, a: int, b: int) -> torch.Tensor:
        """``1 x C x (b-a) x W`` on the device for output rows ``[a, b)`` (one row of tiles; a
        new range flushes the band before it)."""
        if self.rows is not None and self.rows[0] <= a and b <= self.rows[1]:
            slot = self.slots[self.turn]
            return slot["view"][:, :, a - self.rows[0] : b - self.rows[0]]
        self._flush()
        self.turn ^= 1
        slot = self.slots[self.turn]
        if slot.get("done") is not None:  # the device writes this band again only after its copy left it
            torch.cuda.current_stream(self.device).wait_event(slot["done"])
        _, c, _, w = self.out.shape
        shape = (b - a, w, c) if self.interleaved else (1, c, b - a, w)
        size = (b - a) * w * c
        band = slot.get("band")
        if band is None or band.numel() < size:  # flat buffers: every band a contiguous prefix of them
            band = torch.empty(size, dtype=self.out.dtype, device=self.device)
            slot["band"] = band
            slot["host"] = torch.empty(size, dtype=band.dtype, pin_memory=self.cuda)
        used = band[:size].view(shape)
        slot["view"] = used.permute(2, 0, 1).unsqueeze(0) if self.interleaved else used
        slot["used"] = used
        self.rows = (a, b)
        return slot["view"]

    def _flush(self) -> None:
        """Start copying the current band to the host (after finishing this slot's copy before:
        its pinned buffer is written again)."""
        if self.rows is None:
            return
        slot = self.slots[self.turn]
        self._drain(slot)
        used = slot["used"]
        host = slot["host"][: used.numel()].view(used.shape)  # contiguous: a truly asynchronous copy
        if self.cuda:
            ready = torch.cuda.Event()
            ready.record(torch.cuda.current_stream(self.device))  # the image's device, not the current one
            with torch.cuda.stream(self.copier):
                self.copier.wait_event(ready)
                host.copy_(used, non_blocking=True)
                done = torch.cuda.Event()
                done.record(self.copier)
            slot["done"] = done
        else:
            host.copy_(used)
            slot["done"] = None
        slot["pending"] = (self.rows, host)
        self.rows = None

    def _drain(self, slot: dict[str, Any]) -> None:
        """Finish a slot's copy: wait for it, then put the rows into the output."""
        pending = slot.pop("pending", None)
        if pending is None:
            return
        if slot.get("done") is not None:
            slot["done"].synchronize()
            slot["done"] = None
        (a, b), host = pending
        if self.interleaved:
            self.hwc[a:b].copy_(host)
        else:
            self.out[:, :, a:b].copy_(host)

    def finish(self) -> None:
        """Every row in the output."""
        self._flush()
        for slot in self.slots:
            self._drain(slot)


class _RowsOfImages:
    """The outputs of N images made on an accelerator, each through its own :class:`_Rows`. Tiles
    come image after image, so an image is complete when the next one's first block arrives: its
    last band's copy to the host is started then and finished one image later, so the copies of a
    batch of whole frames overlap the device's work as the bands of one image do."""

    def __init__(self, out: torch.Tensor, device: torch.device):
        self.out = out  # N x C x H x W on the host, any strides
        self.device = device
        self.current: tuple[int, _Rows] | None = None
        self.leaving: _Rows | None = None  # the previous image, its last copy under way

    def view(self, i: int, a: int, b: int) -> torch.Tensor:
        """:meth:`_Rows.view` of image ``i``'s output rows ``[a, b)``."""
        if self.current is None or self.current[0] != i:
            if self.current is not None:
                self.current[1]._flush()
                if self.leaving is not None:
                    self.leaving.finish()
                self.leaving = self.current[1]
            self.current = (i, _Rows(self.out[i : i + 1], self.device))
        return self.current[1].view(a, b)

    def finish(self) -> None:
        """Every image's rows in the output."""
        for rows in (self.leaving, self.current[1] if self.current else None):
            if rows is not None:
                rows.finish()
        self.current = self.leaving = None


def resample(x: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """MATLAB-bicubic resize of ``1 x C x H x W`` to ``height x width`` (antialiased when shrinking)."""
    if (x.shape[2], x.shape[3]) == (height, width):
        return x
    from .imaging.resize import imresize

    return imresize(x, size=(height, width)).clamp_(0.0, 1.0)


def _pad_bottom_right(x: torch.Tensor, dh: int, dw: int) -> torch.Tensor:
    """Pad to a size multiple: mirror when the image is large enough, else repeat the edge."""
    mode = "reflect" if dh < x.shape[2] and dw < x.shape[3] else "replicate"
    return F.pad(x, (0, dw, 0, dh), mode=mode)
