"""Tile planning and seamless stitching.

An image too large for one forward pass is cut into *cores* that partition it. Each core is run
inside a *window*: the core grown by ``pad`` pixels on every side (clamped to the image by
shifting, not cutting, so that every window has the same size and windows batch together).
Only the core's part of each output is written into the canvas. When ``pad`` is at least the
network's receptive-field radius, every output pixel sees exactly the input it would see in one
whole-image pass, so the stitched result equals the untiled one up to float rounding: no seams,
no blending.

Networks that need sizes divisible by ``size_multiple`` get an image padded to that multiple
(the caller pads, see :func:`padded_size`) and cores, windows and ``pad`` aligned to it.

:func:`plan_tiles` is pure Python; :func:`run_tiled` does the batching and stitching with torch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

if TYPE_CHECKING:  # pragma: no cover
    import torch

__all__ = ["Tile", "TilePlan", "plan_tiles", "padded_size", "run_tiled", "DEFAULT_TILE", "default_tile", "tile_for_budget"]

#: Smallest core size (input pixels) used on accelerators when the caller does not choose one.
DEFAULT_TILE = 512
#: On accelerators the default tile grows up to this size so that the overlap costs at most
#: MAX_OVERLAP_COST.
MAX_AUTO_TILE = 1280
MAX_OVERLAP_COST = 1.15
#: Core size used on CPU: convolutions over windows of about 300 pixels stay in the CPU's caches
#: and run ~1.5x faster per pixel than over whole images, which more than pays for the overlap
#: (benchmarks/bench_inference.py, BENCHMARKS.md).
CPU_TILE = 256


def default_tile(pad: int, device_type: str) -> int:
    """The core size used when none is given.

    CPU: ``max(CPU_TILE, 2 * pad)``. Elsewhere: the smallest multiple of 64 (at least
    DEFAULT_TILE) whose padded window ``(tile + 2 * pad)^2`` costs at most MAX_OVERLAP_COST times
    the core, when that is at most MAX_AUTO_TILE; otherwise (receptive fields too wide for that,
    such as ESRGAN's) ``max(DEFAULT_TILE, 2 * pad)``, which keeps memory bounded."""
    if device_type == "cpu":
        return max(CPU_TILE, 2 * pad)
    need = math.ceil(2 * pad / (math.sqrt(MAX_OVERLAP_COST) - 1))
    need = -(-need // 64) * 64
    if need <= MAX_AUTO_TILE:
        return max(DEFAULT_TILE, need)
    return max(DEFAULT_TILE, 2 * pad)


def tile_for_budget(height: int, width: int, pad: int, budget_pixels: int, size_multiple: int = 1,
                    floor: int = 64) -> int:
    """The core size for a device that can hold ``budget_pixels`` window pixels in one forward
    pass (free memory over the model's measured bytes per pixel): 0 (the whole image) when the
    padded image fits, else the largest multiple of ``size_multiple`` (and of 64 when above 64)
    whose square window ``(tile + 2 * pad)^2`` fits, never below ``floor``. Invariant: the
    windows of :func:`plan_tiles` with this tile hold at most ``budget_pixels`` pixels each,
    unless the budget is below the floor's window."""
    if height * width <= budget_pixels:
        return 0
    m = max(1, int(size_multiple))
    pad_m = -(-max(0, pad) // m) * m  # as plan_tiles aligns it; a core may also grow by one multiple
    side = math.isqrt(max(0, budget_pixels)) - 2 * pad_m - (m if m > 1 else 0)
    step = 64 if side >= 64 else m
    side = side // step * step // m * m
    return max(floor, side)


@dataclass(frozen=True)
class Tile:
    """One core (the region this tile owns) and its window (what the network sees).

    Coordinates are in input pixels of the (padded) image: rows ``[y0, y1)``, columns ``[x0, x1)``.
    """

    y0: int
    y1: int
    x0: int
    x1: int
    wy0: int
    wy1: int
    wx0: int
    wx1: int


@dataclass(frozen=True)
class TilePlan:
    height: int  # of the padded image (a multiple of size_multiple)
    width: int
    tile: int  # requested core size, 0 = whole image
    pad: int  # effective pad (rounded up to size_multiple)
    size_multiple: int
    window: tuple[int, int]  # (height, width) of every window
    tiles: tuple[Tile, ...]

    def __len__(self) -> int:
        return len(self.tiles)

    @property
    def overhead(self) -> float:
        """Input pixels computed / image pixels (1.0 = no tiling overhead)."""
        wh, ww = self.window
        return len(self.tiles) * wh * ww / float(self.height * self.width)


def padded_size(height: int, width: int, size_multiple: int) -> tuple[int, int]:
    m = max(1, int(size_multiple))
    return -(-height // m) * m, -(-width // m) * m


def _axis(length: int, tile: int, pad: int, m: int, min_window: int = 0) -> tuple[list[tuple[int, int]], list[int], int]:
    """Cores ``[(start, end)]``, window starts and window length along one axis (all multiples of m).

    ``min_window``: windows at least this long (where the axis is): a network with a fixed input
    size gets exactly that size, each window centred on its core, so it still covers the core and
    ``pad`` on either side (or reaches the image's edge)."""
    units = length // m
    if tile <= 0 or length <= tile + 2 * pad:
        return [(0, length)], [0], length
    tile_units = max(1, tile // m)
    n = math.ceil(units / tile_units)
    bounds = [round(i * units / n) * m for i in range(n + 1)]
    cores = [(bounds[i], bounds[i + 1]) for i in range(n)]
    core_max = max(e - s for s, e in cores)
    win = min(length, max(core_max + 2 * pad, min_window))
    if win == core_max + 2 * pad:
        starts = [min(max(s - pad, 0), length - win) for s, _ in cores]
    else:  # a longer window: centred (offset at least pad, as (win - core) / 2 >= pad)
        starts = [min(max(s - (win - (e - s)) // 2 // m * m, 0), length - win) for s, e in cores]
    return cores, starts, win


def plan_tiles(height: int, width: int, tile: int, pad: int, size_multiple: int = 1,
               min_window: tuple[int, int] = (0, 0)) -> TilePlan:
    """Cut a ``height x width`` image (already padded to ``size_multiple``) into tiles.

    ``tile`` is the core size in input pixels (0 = one tile for the whole image); cores along an
    axis are made equal (no thin sliver at the end). An axis no longer than ``tile + 2 * pad``
    is not cut at all, since its window would cover it anyway. ``min_window`` (height, width):
    windows at least that large where the image is (a network with a fixed input size).
    """
    m = max(1, int(size_multiple))
    if height % m or width % m:
        raise ValueError(f"image {height}x{width} is not padded to a multiple of {m}")
    if height <= 0 or width <= 0:
        raise ValueError(f"empty image {height}x{width}")
    pad_m = -(-max(0, int(pad)) // m) * m
    tile_m = 0 if tile <= 0 else max(m, (int(tile) // m) * m)
    ycores, ystarts, wh = _axis(height, tile_m, pad_m, m, int(min_window[0]))
    xcores, xstarts, ww = _axis(width, tile_m, pad_m, m, int(min_window[1]))
    tiles = tuple(
        Tile(y0, y1, x0, x1, wy, wy + wh, wx, wx + ww)
        for (y0, y1), wy in zip(ycores, ystarts)
        for (x0, x1), wx in zip(xcores, xstarts)
    )
    return TilePlan(height, width, int(tile), pad_m, m, (wh, ww), tiles)


def run_tiled(
    forward: Callable[["torch.Tensor"], "torch.Tensor"],
    x: "torch.Tensor",
    plan: TilePlan,
    scale: int,
    batch: int = 1,
    on_tile: Callable[[int], None] | None = None,
    canvas: "torch.Tensor | None" = None,
    on_block: "Callable[[int, int, int, int, int, torch.Tensor], None] | None" = None,
) -> "torch.Tensor | None":
    """Run ``forward`` over the tiles of ``x`` (``N x C x H x W``: N images of one size, all cut by
    ``plan``) and stitch.

    ``forward`` maps a ``B x C x h x w`` batch of windows to ``B x C' x h*scale x w*scale``; a
    batch takes ``batch`` windows in order, image after image, so the windows of several small
    images (video frames run whole, say) share one forward pass. The canvas
    (``N x C' x H*scale x W*scale``, float32) stays in host memory and is allocated from the first
    output, unless the caller passes one to fill (a view into a larger output, say; any strides). A
    uint8/uint16 canvas receives each tile rounded as :func:`store` does. ``on_tile(n)`` is called
    after every batch with the tiles done.

    ``on_block(i, y0, y1, x0, x1, block)`` instead of a canvas: each tile's core is handed over as
    it is computed, ``block`` being ``1 x C' x (y1-y0)*scale x (x1-x0)*scale`` float32 for input
    rows ``[y0, y1)`` and columns ``[x0, x1)`` of image ``i`` (a view of the network's output: copy
    what you keep), and nothing is returned. The output then never exists whole.
    """
    import torch

    if x.dim() != 4 or x.shape[0] < 1:
        raise ValueError(f"expected an NxCxHxW tensor, got {tuple(x.shape)}")
    if (x.shape[2], x.shape[3]) != (plan.height, plan.width):
        raise ValueError(f"tensor {tuple(x.shape[2:])} does not match the plan {plan.height}x{plan.width}")
    if on_block is not None and canvas is not None:
        raise ValueError("give a canvas or on_block, not both")
    s = int(scale)
    batch = max(1, int(batch))
    wh, ww = plan.window
    whole = len(plan.tiles) == 1 and (wh, ww) == (plan.height, plan.width)
    work = [(i, t) for i in range(x.shape[0]) for t in plan.tiles]
    for k in range(0, len(work), batch):
        group = work[k : k + batch]
        if whole:  # whole images, consecutive: a slice of the input, no copy
            windows = x[group[0][0] : group[-1][0] + 1]
        else:
            windows = torch.cat([x[i : i + 1, :, t.wy0 : t.wy1, t.wx0 : t.wx1] for i, t in group], dim=0)
        out = forward(windows)
        if out.shape[0] != len(group) or out.shape[2] != wh * s or out.shape[3] != ww * s:
            raise RuntimeError(
                f"the network returned {tuple(out.shape)} for input {tuple(windows.shape)}; expected scale {s}"
            )
        if on_block is None:
            want = (x.shape[0], out.shape[1], plan.height * s, plan.width * s)
            if canvas is None:
                canvas = torch.empty(want, dtype=torch.float32)
            elif tuple(canvas.shape) != want:
                raise ValueError(f"canvas {tuple(canvas.shape)} does not match the output {want}")
        for j, (i, t) in enumerate(group):
            core = out[j : j + 1, :, (t.y0 - t.wy0) * s : (t.y1 - t.wy0) * s, (t.x0 - t.wx0) * s : (t.x1 - t.wx0) * s]
            if on_block is not None:
                on_block(i, t.y0, t.y1, t.x0, t.x1, core)
            else:
                assert canvas is not None
                store(canvas[i, :, t.y0 * s : t.y1 * s, t.x0 * s : t.x1 * s], core[0])
        if on_tile is not None:
            on_tile(len(group))
    if on_block is not None:
        return None
    assert canvas is not None
    return canvas


def store(dst: "torch.Tensor", src: "torch.Tensor", scratch: bool = False) -> None:
    """Copy float ``src`` into ``dst``. An integer ``dst`` (uint8 or uint16) gets ``src`` clamped to
    [0, 1], scaled to 255 / 65535 and rounded half to even: exactly what the image encoders do with
    a float image (:func:`sresr.imaging.io.quantize`), so a quantized canvas equals the encoded one.
    ``scratch``: ``src`` is a temporary the caller no longer needs and may be overwritten."""
    import torch

    if dst.is_floating_point():
        dst.copy_(src)
        return
    peak = {torch.uint8: 255.0, torch.uint16: 65535.0}.get(dst.dtype)
    if peak is None:
        raise TypeError(f"cannot store into a {dst.dtype} canvas")
    q = (src.clamp_(0.0, 1.0) if scratch else src.clamp(0.0, 1.0)).mul_(peak).round_()
    if not _interleave(dst, q):
        dst.copy_(q)


def _interleave(dst: "torch.Tensor", q: "torch.Tensor") -> bool:
    """Write the planes of ``q`` (``[1 x] C x h x w``, whole numbers) into a channels-last integer
    ``dst`` (a block of an ``H x W x C`` image) with OpenCV's merge, several times faster than
    torch's strided copy. False where that does not apply."""
    if tuple(q.shape) != tuple(dst.shape) or dst.dim() not in (3, 4) or (dst.dim() == 4 and dst.shape[0] != 1):
        return False
    if dst.dim() == 4:
        dst, q = dst[0], q[0]
    c = dst.shape[0]
    if c not in (3, 4) or dst.stride(0) != 1 or dst.stride(2) != c or dst.device.type != "cpu":
        return False
    try:
        import cv2
    except Exception:
        return False
    target = dst.permute(1, 2, 0).numpy()  # an h x w x c view of the canvas
    planes = [p.numpy() for p in q.to(dst.dtype)]
    merged = cv2.merge(planes, target)
    if merged.ctypes.data != target.ctypes.data:  # OpenCV made a new array: copy it in
        target[...] = merged
    return True
