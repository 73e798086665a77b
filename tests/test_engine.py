"""Tiling and the Upscaler: tiled == untiled, seams, OOM fallback, precision, images."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest
import torch
from torch import nn

from sresr.engine import OutOfMemory, Upscaler, resolve_device, resolve_precision
from sresr.errors import UsageError
from sresr.imaging.io import Image
from sresr.registry import get_spec, list_models
from sresr.resolve import LoadedModel, load_model
from sresr.spec import ModelSpec
from sresr.tiling import plan_tiles, run_tiled

# -- plan -------------------------------------------------------------------------------------


@pytest.mark.parametrize("h,w,tile,pad,m", [(37, 53, 8, 2, 1), (64, 64, 16, 5, 4), (100, 30, 32, 0, 2), (9, 9, 4, 3, 1),
                                            (120, 88, 24, 7, 8), (50, 50, 0, 4, 1)])
@pytest.mark.parametrize("min_window", [0, 40])
def test_plan_partitions_and_windows_cover_pad(h, w, tile, pad, m, min_window):
    """Also with windows of at least 40 (a network with a fixed input size): where the image is
    that large, every window is exactly 40 and still covers its core and the pad."""
    hp, wp = -(-h // m) * m, -(-w // m) * m
    plan = plan_tiles(hp, wp, tile, pad, m, (min_window, min_window))
    owner = np.zeros((hp, wp), dtype=int)
    for t in plan.tiles:
        owner[t.y0 : t.y1, t.x0 : t.x1] += 1
        assert (t.wy1 - t.wy0, t.wx1 - t.wx0) == plan.window  # all windows batch together
        if min_window and tile and hp > tile + 2 * pad and 2 * pad + tile <= min_window:
            assert t.wy1 - t.wy0 == min(hp, min_window)
        assert t.wy0 <= max(0, t.y0 - pad) and t.wy1 >= min(hp, t.y1 + pad)
        assert t.wx0 <= max(0, t.x0 - pad) and t.wx1 >= min(wp, t.x1 + pad)
        assert 0 <= t.wy0 and t.wy1 <= hp and 0 <= t.wx0 and t.wx1 <= wp
        for v in (t.y0, t.y1, t.x0, t.x1, t.wy0, t.wx0):
            assert v % m == 0
        if tile and hp > tile + 2 * pad:
            assert t.y1 - t.y0 <= max(tile, m) + m
        if tile and wp > tile + 2 * pad:
            assert t.x1 - t.x0 <= max(tile, m) + m
    assert (owner == 1).all()  # every pixel owned by exactly one tile



@pytest.mark.parametrize("h,w,pad,budget,m", [(300, 200, 10, 60_000, 1), (300, 200, 10, 59_999, 1),
                                               (4000, 3000, 68, 4_000_000, 1), (4000, 3000, 20, 1_000_000, 4),
                                               (2001, 2001, 30, 90_000, 3), (500, 500, 60, 10_000, 1)])
def test_tile_from_a_memory_budget_fits_it_or_is_the_whole_image(h, w, pad, budget, m):
    """The CUDA default tile (free memory over the model's bytes per pixel): the whole image when
    it fits the budget, else windows no larger than the budget, and no more than a 64 px step
    below the largest tile that would fit."""
    from sresr.tiling import tile_for_budget

    floor = 128
    tile = tile_for_budget(h, w, pad, budget, m, floor=floor)
    if h * w <= budget:
        assert tile == 0
        return
    assert tile > 0 and tile % m == 0
    plan = plan_tiles(h, w, tile, pad, m)
    wy, wx = plan.window
    if tile > floor:
        assert wy * wx <= budget
        pad_m = -(-pad // m) * m
        assert (tile + 64 + 2 * m + 2 * pad_m) ** 2 > budget  # a larger step would not fit
    else:  # the budget is below the floor's window: the out-of-memory fallback takes over from there
        assert (floor + 2 * pad) ** 2 > budget or tile == floor


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_default_tile_is_the_whole_image_when_it_fits_and_matches_the_cpu():
    loaded = load_model("fsrcnn", scale=2)
    up = Upscaler(loaded, device="cuda", precision="fp32")
    assert up.auto_tile and "from free memory" in up.describe()
    x = torch.rand(1, 1, 200, 150, generator=torch.Generator().manual_seed(3))
    assert len(up.plan_for(200, 150).tiles) == 1  # a small image fits a GPU whole
    per_pixel, _ = up._footprint()
    assert per_pixel >= 2 * 4 * 4  # at least the double-buffered output rows
    cpu = Upscaler(loaded, device="cpu", tile=0).run(x)
    torch.testing.assert_close(up.run(x), cpu, atol=2e-6, rtol=0)


@pytest.mark.parametrize("pad", [0, 4, 20, 34, 40, 46, 47, 349])
def test_default_tile_keeps_the_overlap_cheap_or_the_memory_bounded(pad):
    from sresr.tiling import CPU_TILE, MAX_AUTO_TILE, default_tile

    assert default_tile(pad, "cpu") == max(CPU_TILE, 2 * pad)
    tile = default_tile(pad, "cuda")
    assert tile % 64 == 0 or tile == 2 * pad
    assert tile >= 512
    if (tile + 2 * pad) ** 2 <= 1.15 * tile**2:
        assert tile <= MAX_AUTO_TILE  # cheap overlap and still bounded
        # and it is the smallest such multiple of 64 (at least 512)
        smaller = tile - 64
        assert smaller < 512 or (smaller + 2 * pad) ** 2 > 1.15 * smaller**2
        # a large image tiled with the default tile: windows cover at most ~15 % more than the image
        plan = plan_tiles(8 * tile, 8 * tile, tile, pad, 1)
        assert plan.overhead <= 1.16
    else:  # too wide a receptive field for a 15 % overlap within MAX_AUTO_TILE
        assert pad >= 47 and tile == max(512, 2 * pad)


# -- models built in the tests ---------------------------------------------------------------


class PixelShuffleNet(nn.Module):
    def __init__(self, scale: int = 2):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                                  nn.Conv2d(8, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 3 * scale * scale, 3, padding=1))
        self.up = nn.PixelShuffle(scale)

    def forward(self, x):
        return torch.sigmoid(self.up(self.body(x)))


class DeconvNet(nn.Module):  # FSRCNN-like, receptive field 1 + 1 + 2 (deconv 9 at stride 2)
    def __init__(self, scale: int = 2):
        super().__init__()
        self.a = nn.Sequential(nn.Conv2d(3, 6, 3, padding=1), nn.PReLU(6))
        self.b = nn.ConvTranspose2d(6, 3, 9, stride=scale, padding=4, output_padding=scale - 1)

    def forward(self, x):
        return self.b(self.a(x)) + 0.5


class UnshuffleNet(nn.Module):  # needs sizes divisible by 4, like Real-ESRGAN x1
    def __init__(self, scale: int = 1):
        super().__init__()
        self.down = nn.PixelUnshuffle(4)
        self.body = nn.Sequential(nn.Conv2d(48, 16, 3, padding=1), nn.ReLU(), nn.Conv2d(16, 3 * 16 * scale * scale, 3, padding=1))
        self.up = nn.PixelShuffle(4 * scale)

    def forward(self, x):
        return self.up(self.body(self.down(x))) * 0.2 + 0.4


def _loaded(module: nn.Module, scale: int, rf: int, multiple: int = 1, name: str = "testnet") -> LoadedModel:
    torch.manual_seed(0)
    for p in module.parameters():
        nn.init.uniform_(p, -0.3, 0.3)
    for m in module.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
    spec = ModelSpec(name=name, factory=lambda scale: module, scales=(scale,), receptive_field=rf, size_multiple=multiple)
    return LoadedModel(module.eval(), spec, scale, "rgb", "test")


TOYS = {
    "pixelshuffle": lambda: _loaded(PixelShuffleNet(2), 2, rf=3),
    "deconv": lambda: _loaded(DeconvNet(3), 3, rf=3),
    "unshuffle": lambda: _loaded(UnshuffleNet(1), 1, rf=8, multiple=4),
}


@pytest.mark.parametrize("toy", sorted(TOYS))
@pytest.mark.parametrize("batch", [1, 3])
def test_tiled_equals_untiled_toys(toy, batch):
    loaded = TOYS[toy]()
    x = torch.rand(1, 3, 45, 61)
    whole = Upscaler(loaded, tile=0).run(x)
    with torch.no_grad():
        direct = loaded.module(nn.functional.pad(x, (0, 3, 0, 3), mode="reflect"))[..., : 45 * loaded.scale, : 61 * loaded.scale] \
            if toy == "unshuffle" else loaded.module(x)
    assert (whole - direct.clamp(0, 1)).abs().max() < 1e-5  # whole-image run == the plain module
    tiled = Upscaler(loaded, tile=12, batch=batch)
    out = tiled.run(x)
    assert len(tiled.plan_for(45, 61)) > 4
    assert out.shape == whole.shape
    assert (out - whole).abs().max() <= 1 / 255


def test_run_writes_into_the_callers_canvas():
    # out= must be filled in place (a Y model's luma goes straight into channel 0 of the RGB canvas),
    # not computed into a second full-size buffer and copied
    loaded = TOYS["pixelshuffle"]()
    x = torch.rand(1, 3, 45, 61)
    whole = Upscaler(loaded, tile=0).run(x)
    big = torch.full((1, 5, 90, 122), -1.0)
    target = big[:, 1:4]
    up = Upscaler(loaded, tile=12, batch=2)
    got = up.run(x, out=target)
    assert got.data_ptr() == target.data_ptr()
    assert (big[:, 1:4] - whole).abs().max() <= 1 / 255
    assert bool((big[:, 0] == -1).all()) and bool((big[:, 4] == -1).all())
    # the stitching itself fills the given canvas and returns it
    plan = plan_tiles(45, 61, 12, 3)
    canvas = torch.full((1, 3, 90, 122), -1.0)
    with torch.no_grad():
        stitched = run_tiled(loaded.module, x, plan, 2, batch=3, canvas=canvas)
    assert stitched.data_ptr() == canvas.data_ptr()
    assert (canvas.clamp(0, 1) - whole).abs().max() <= 1 / 255


def test_seams_invisible_on_gradient_and_visible_without_pad():
    loaded = TOYS["pixelshuffle"]()
    yy, xx = torch.meshgrid(torch.linspace(0, 1, 72), torch.linspace(0, 1, 96), indexing="ij")
    x = torch.stack([yy, xx, (yy + xx) / 2])[None]
    whole = Upscaler(loaded, tile=0).run(x)
    up = Upscaler(loaded, tile=16)
    out = up.run(x)
    assert (out - whole).abs().max() <= 1 / 255
    # the horizontal step across each tile boundary is no larger than anywhere else
    steps = (out[..., 1:] - out[..., :-1]).abs().amax(dim=(0, 1, 2))
    boundaries = sorted({t.x0 * 2 for t in up.plan_for(72, 96).tiles if t.x0 > 0})
    assert boundaries
    inner = torch.ones_like(steps, dtype=torch.bool)
    inner[[b - 1 for b in boundaries]] = False
    assert steps[[b - 1 for b in boundaries]].max() <= steps[inner].max() + 1 / 255
    # the test can fail: without padding the tiles do not match
    nopad = Upscaler(loaded, tile=16, tile_pad=0).run(x)
    assert (nopad - whole).abs().max() > 1 / 255


# -- every registered model -------------------------------------------------------------------

# Big networks are tested in a reduced configuration (their geometry functions follow kwargs).
REDUCED = {
    "esrgan": {"blocks": 1, "features": 16, "growth": 8},
    "edsr": {"blocks": 2, "features": 16},
    "srresnet": {"blocks": 2, "features": 16},
    "srgan": {"blocks": 2, "features": 16},
    "vdsr": {"depth": 6, "features": 16},
    "realesrgan-compact": {"num_conv": 4, "features": 16},
    "srcnn": {"n1": 16, "n2": 8},
    "fsrcnn": {"d": 16, "s": 8, "m": 2},
    "espcn": {"n1": 16, "n2": 8},
    "swinir": {"embed_dim": 12, "depths": (2, 2), "num_heads": (2, 3), "window_size": 4, "num_feat": 8},
    "hat": {"embed_dim": 12, "depths": (2, 2), "num_heads": (2, 3), "window_size": 4, "num_feat": 8,
            "compress_ratio": 3, "squeeze_factor": 4},
}


def _measured_radius(loaded: LoadedModel, size: int, multiple: int) -> int:
    """Input pixels that one output pixel depends on, from autograd (independent of the spec)."""
    module = loaded.module
    ch = 1 if loaded.colorspace == "y" else 3
    s = 1 if loaded.spec.input == "upsampled" else loaded.scale
    size = -(-size // multiple) * multiple
    x = torch.rand(1, ch, size, size, requires_grad=True)
    y = module(x)
    c = size // 2
    y[..., c * s : c * s + s, c * s : c * s + s].sum().backward()
    nz = (x.grad[0].abs().sum(0) > 0).nonzero()
    return int((nz - c).abs().max()) if nz.numel() else 0


@pytest.mark.parametrize("name", list_models())
def test_tiled_equals_untiled_every_model(name):
    spec = get_spec(name)
    scale = 2 if 2 in spec.scales else spec.scales[0]
    torch.manual_seed(0)
    loaded = load_model(name, scale=scale, pretrained=False, **REDUCED.get(name, {}))
    rf, multiple = loaded.geometry.receptive_field, loaded.geometry.size_multiple
    if not loaded.geometry.exact:
        pytest.skip(f"{name} declares inexact tiling (Geometry.exact=False); its bound is in its own tests")
    if rf > 48:
        pytest.skip(f"receptive field {rf} too large for a fast test; add a reduced config")
    ch = 1 if loaded.colorspace == "y" else 3
    if any(True for _ in loaded.module.parameters()):
        measured = _measured_radius(loaded, 2 * rf + 9, multiple)
        assert measured <= rf, f"{name}: output depends on {measured} pixels, spec/geometry says {rf}"
    tile = max(8, rf)
    side = 2 * tile + 2 * rf + 5  # a few tiles per axis, each with its full pad
    x = torch.rand(1, ch, side, side + 3)
    if spec.input == "upsampled":
        x = torch.rand(1, ch, side // scale + 1, (side + 3) // scale + 1)
    whole = Upscaler(loaded, tile=0).run(x)
    tiled = Upscaler(loaded, tile=tile, batch=2)
    assert tiled.tile_pad == rf  # the default pad is the receptive field
    assert len(tiled.plan_for(x.shape[2], x.shape[3])) >= 4
    out = tiled.run(x)
    assert out.shape == whole.shape == (1, ch, x.shape[2] * scale, x.shape[3] * scale)
    assert (out - whole).abs().max() <= 1 / 255
    # also relative to the output's size: a randomly initialised network may output tiny values
    # (FSRCNN's deconvolution starts at N(0, 0.001^2)), for which 1/255 alone proves nothing
    assert (out - whole).abs().max() <= 1e-3 * whole.abs().max()


class BatchSizes(nn.Module):
    """Wraps a network and records the batch size of every forward pass (shared by the engine's copies)."""

    def __init__(self, inner: nn.Module):
        super().__init__()
        self.inner = inner
        self.seen = Seen()

    def forward(self, x):
        self.seen.sizes.append(x.shape[0])
        return self.inner(x)


class Seen:
    def __init__(self) -> None:
        self.sizes: list[int] = []

    def __deepcopy__(self, memo):
        return self


def _frames(n: int, h: int, w: int, seed: int = 5) -> list[Image]:
    rng = np.random.default_rng(seed)
    return [Image(rng.integers(0, 256, (h, w, 3), dtype=np.uint8), bit_depth=8) for _ in range(n)]


@pytest.mark.parametrize("toy", sorted(TOYS))
@pytest.mark.parametrize("tile,batch", [(0, 1), (12, 1), (12, 4)])
@pytest.mark.parametrize("resident", [False, True])
def test_upscale_batch_equals_each_frame_alone(toy, tile, batch, resident):
    """Frames run together (their windows sharing forward passes, image after image) give each
    frame's own upscale_image, up to the float rounding of a larger batch; whole frames are one pass."""
    ref = TOYS[toy]()
    probe = BatchSizes(ref.module)
    loaded = LoadedModel(probe, ref.spec, ref.scale, "rgb", "test")
    frames = _frames(3, 21, 34)
    alone = Upscaler(loaded, device="cpu", tile=tile, batch=batch, resident=resident)
    expected = [alone.upscale_image(f, depth=8) for f in frames]
    together = Upscaler(loaded, device="cpu", tile=tile, batch=batch, resident=resident)
    probe.seen.sizes.clear()
    got = together.upscale_batch(frames, depth=8)
    if tile == 0:
        assert probe.seen.sizes == [3]  # the three frames in one forward pass
    else:
        tiles = len(together.plan_for(21, 34))
        assert sum(probe.seen.sizes) == 3 * tiles and max(probe.seen.sizes) == batch
    for e, g in zip(expected, got):
        assert g.pixels.shape == e.pixels.shape and g.pixels.dtype == np.uint8 and g.bit_depth == 8
        diff = np.abs(g.pixels.astype(int) - e.pixels.astype(int))
        assert diff.max() <= 1 and (diff > 0).mean() < 1e-3


def test_upscale_batch_runs_anything_else_one_image_at_a_time():
    """Other sizes, alpha, grey, resampling or float output: each image as upscale_image makes it."""
    loaded = TOYS["pixelshuffle"]()
    up = Upscaler(loaded, device="cpu", tile=0)
    a, b = _frames(1, 20, 30)[0], _frames(1, 22, 30, seed=6)[0]
    alpha = Image(a.pixels, alpha=np.full((20, 30), 128, np.uint8), bit_depth=8)
    grey = Image(a.pixels[:, :, :1], bit_depth=8)
    for images, kwargs in (([a, b], {"depth": 8}), ([a, alpha], {"depth": 8}), ([a, grey], {"depth": 8}),
                           ([a, a], {"depth": 8, "outscale": 1.5}), ([a, a], {})):
        got = up.upscale_batch(images, **kwargs)
        for im, g in zip(images, got):
            e = up.upscale_image(im, **kwargs)
            assert np.array_equal(g.pixels, e.pixels) and g.bit_depth == e.bit_depth
            assert (g.alpha is None) == (e.alpha is None)


def test_upscale_batch_out_of_memory_halves_the_frames_per_pass():
    ref = TOYS["pixelshuffle"]()
    guard = OOMAbove(ref.module, max_pixels=2 * 24 * 24)
    up = Upscaler(LoadedModel(guard, ref.spec, 2, "rgb", "test"), device="cpu", tile=0, optimize=False,
                  frame_batch=4)
    assert up.frames_per_pass(24, 24) == 4
    frames = _frames(4, 24, 24)
    got = up.upscale_batch(frames, depth=8)
    assert guard.failures == 1 and up.stats.oom_retries == 1 and up.frames_per_pass(24, 24) == 2
    again = up.upscale_batch(frames, depth=8)  # the lowered frames per pass hold for later batches
    assert guard.failures == 1 and up.stats.oom_retries == 1
    alone = Upscaler(ref, device="cpu", tile=0, optimize=False)
    assert all(np.array_equal(a.pixels, g.pixels) for a, g in zip(again, got))
    for f, g in zip(frames, got):
        assert np.abs(g.pixels.astype(int) - alone.upscale_image(f, depth=8).pixels.astype(int)).max() <= 1


def test_frames_per_pass_is_one_on_the_cpu_unless_asked():
    loaded = TOYS["pixelshuffle"]()
    assert Upscaler(loaded, device="cpu").frames_per_pass(1080, 1920) == 1
    assert Upscaler(loaded, device="cpu", frame_batch=3).frames_per_pass(1080, 1920) == 3
    with pytest.raises(UsageError, match="frame-batch"):
        Upscaler(loaded, frame_batch=0)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_stacks_small_frames_from_free_memory():
    """On CUDA the frames per pass come from free memory: several small frames, one huge one."""
    up = Upscaler(TOYS["pixelshuffle"](), device="cuda", precision="fp32")
    assert 1 < up.frames_per_pass(64, 64) <= 8
    assert up.frames_per_pass(40_000, 40_000) == 1
    frames = _frames(3, 64, 64)
    got = up.upscale_batch(frames, depth=8)
    for f, g in zip(frames, got):
        assert np.abs(g.pixels.astype(int) - up.upscale_image(f, depth=8).pixels.astype(int)).max() <= 1


# -- out of memory, precision, devices ----------------------------------------------------------


class Counter:
    """Shared by the copies the engine makes of a module."""

    def __init__(self) -> None:
        self.n = 0

    def __deepcopy__(self, memo):
        return self


class OOMAbove(nn.Module):
    """Wraps a network and raises a real torch.OutOfMemoryError for inputs above a size."""

    def __init__(self, inner: nn.Module, max_pixels: int):
        super().__init__()
        self.inner = inner
        self.max_pixels = max_pixels
        self.counter = Counter()

    @property
    def failures(self) -> int:
        return self.counter.n

    def forward(self, x):
        if x.shape[0] * x.shape[2] * x.shape[3] > self.max_pixels:
            self.counter.n += 1
            raise torch.OutOfMemoryError(f"injected: {tuple(x.shape)} is over {self.max_pixels} pixels")
        return self.inner(x)


def test_oom_halves_batch_then_tile_and_matches_reference():
    ref_loaded = TOYS["pixelshuffle"]()
    x = torch.rand(1, 3, 70, 90)
    reference = Upscaler(ref_loaded, tile=0).run(x)
    guard = OOMAbove(ref_loaded.module, max_pixels=24 * 24)
    loaded = LoadedModel(guard, ref_loaded.spec, 2, "rgb", "test")
    up = Upscaler(loaded, tile=64, batch=4, optimize=False)
    out = up.run(x)
    assert guard.failures >= 2 and up.stats.oom_retries == guard.failures
    assert up.batch == 1 and up.tile < 64
    assert any("batch lowered" in e for e in up.stats.events) and any("tile lowered" in e for e in up.stats.events)
    assert (out - reference).abs().max() <= 1 / 255
    # the smaller tile sticks for the next image: no new failures
    before = guard.failures
    up.run(torch.rand(1, 3, 40, 40))
    assert guard.failures == before


@pytest.mark.parametrize("toy,batch", [("pixelshuffle", 1), ("pixelshuffle", 3), ("unshuffle", 2)])
def test_blocks_mode_hands_over_each_tile_core_once(toy, batch):
    # run(blocks=...) gives the output a tile core at a time (what Y models colour as they go):
    # the blocks must cover the output exactly once and equal the whole output; a padded input
    # (size multiple) is cropped
    loaded = TOYS[toy]()
    s = loaded.scale
    x = torch.rand(1, 3, 45, 61)
    up = Upscaler(loaded, tile=12, batch=batch)
    whole = up.run(x)
    canvas = torch.zeros_like(whole)
    hits = torch.zeros(whole.shape[2:], dtype=torch.int32)

    def blocks(y0, y1, x0, x1, block):
        assert block.shape[2:] == ((y1 - y0) * s, (x1 - x0) * s)
        canvas[:, :, y0 * s : y1 * s, x0 * s : x1 * s] = block
        hits[y0 * s : y1 * s, x0 * s : x1 * s] += 1

    assert up.run(x, blocks=blocks) is None
    assert bool((hits == 1).all())
    assert torch.equal(canvas, whole)


def test_blocks_mode_survives_an_out_of_memory_retry():
    ref_loaded = TOYS["pixelshuffle"]()
    x = torch.rand(1, 3, 70, 90)
    reference = Upscaler(ref_loaded, tile=0).run(x)
    guard = OOMAbove(ref_loaded.module, max_pixels=24 * 24)
    up = Upscaler(LoadedModel(guard, ref_loaded.spec, 2, "rgb", "test"), tile=64, optimize=False)
    canvas = torch.full_like(reference, -1.0)

    def blocks(y0, y1, x0, x1, block):  # a block may come again after a retry: the last one counts
        canvas[:, :, y0 * 2 : y1 * 2, x0 * 2 : x1 * 2] = block

    up.run(x, blocks=blocks)
    assert guard.failures >= 1
    assert (canvas - reference).abs().max() <= 1 / 255


def test_oom_everywhere_is_a_clear_error():
    ref_loaded = TOYS["pixelshuffle"]()
    guard = OOMAbove(ref_loaded.module, max_pixels=1)
    up = Upscaler(LoadedModel(guard, ref_loaded.spec, 2, "rgb", "test"), tile=64, optimize=False)
    with pytest.raises(OutOfMemory, match="out of memory"):
        up.run(torch.rand(1, 3, 40, 40))


class NaNInHalf(nn.Module):
    """Gives NaN when run below float32, like an fp16 overflow."""

    def __init__(self, inner: nn.Module):
        super().__init__()
        self.inner = inner

    def forward(self, x):
        y = self.inner(x)
        return y * float("nan") if x.dtype != torch.float32 else y


def test_non_finite_half_output_is_recomputed_in_fp32():
    ref_loaded = TOYS["pixelshuffle"]()
    x = torch.rand(1, 3, 20, 24)
    reference = Upscaler(ref_loaded, tile=0).run(x)
    loaded = LoadedModel(NaNInHalf(ref_loaded.module), ref_loaded.spec, 2, "rgb", "test")
    up = Upscaler(loaded, device="cpu", precision="bf16", tile=0)
    out = up.run(x)
    assert up.stats.fp32_fallbacks == 1
    assert torch.isfinite(out).all() and (out - reference).abs().max() < 1e-5


def test_precision_and_device_policy():
    spec = get_spec("enginetoy") if "enginetoy" in list_models() else ModelSpec(name="t", factory="x:y", scales=(2,))
    cpu = torch.device("cpu")
    assert resolve_precision("auto", cpu, spec) == torch.float32
    with pytest.raises(UsageError):
        resolve_precision("fp16", cpu, spec)
    with pytest.raises(UsageError):
        resolve_precision("fp8", cpu, spec)
    nofp16 = ModelSpec(name="t", factory="x:y", scales=(2,), supports_fp16=False, supports_bf16=False)
    with pytest.raises(UsageError, match="does not support"):
        resolve_precision("bf16", cpu, nofp16)
    assert resolve_device("cpu") == cpu
    with pytest.raises(UsageError):
        resolve_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(UsageError, match="not available"):
            resolve_device("cuda:0")
        assert resolve_device("auto").type in ("cpu", "mps")


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_gpu_half_precision_matches_fp32():
    loaded = TOYS["pixelshuffle"]()
    x = torch.rand(1, 3, 64, 80)
    ref = Upscaler(loaded, device="cpu", tile=0).run(x)
    for precision in ("fp16", "bf16"):
        out = Upscaler(loaded, device="cuda", precision=precision, tile=24, batch=2).run(x)
        assert (out - ref).abs().max() < 0.02


# -- images: grey, alpha, outscale --------------------------------------------------------------


def test_upscale_image_keeps_mode_alpha_and_depth():
    loaded = TOYS["pixelshuffle"]()
    up = Upscaler(loaded, tile=16)
    rng = np.random.default_rng(0)
    gray = Image(rng.random((20, 30, 1)).astype(np.float32), bit_depth=16, icc_profile=b"icc", exif=b"exif")
    out = up.upscale_image(gray)
    assert out.pixels.shape == (40, 60, 1) and out.bit_depth == 16 and out.icc_profile == b"icc" and out.exif == b"exif"
    rgba = Image(rng.random((20, 30, 3)).astype(np.float32), alpha=np.linspace(0, 1, 600, dtype=np.float32).reshape(20, 30))
    out = up.upscale_image(rgba)
    assert out.pixels.shape == (40, 60, 3) and out.alpha is not None and out.alpha.shape == (40, 60)
    # alpha went through the network as a grey image
    a3 = torch.from_numpy(rgba.alpha)[None, None].expand(1, 3, 20, 30)
    assert np.allclose(out.alpha, up.run(a3).mean(1)[0].numpy(), atol=1e-5)
    opaque = Image(rgba.pixels, alpha=np.ones((20, 30), np.float32))
    assert (up.upscale_image(opaque).alpha == 1).all()


def test_opaque_alpha_is_made_at_the_output_depth():
    # an opaque alpha needs no float plane: numpy's allocations (traced; torch's are not) stay
    # near one byte per output pixel for the 8-bit alpha, where a float32 plane alone is four
    import tracemalloc

    up = Upscaler(load_model("fsrcnn", 4, pretrained=False), tile=64)
    h, w = 120, 160
    rng = np.random.default_rng(0)
    image = Image(rng.integers(0, 256, (h, w, 3), dtype=np.uint8), alpha=np.full((h, w), 255, np.uint8))
    up.upscale_image(image, depth=8)  # first-call work (imports, caches) is not what is measured
    tracemalloc.start()
    try:
        out = up.upscale_image(image, depth=8)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert out.alpha is not None and out.alpha.dtype == np.uint8 and bool((out.alpha == 255).all())
    assert peak < 2.5 * (4 * h) * (4 * w)


def test_outscale_resamples_the_model_output():
    pytest.importorskip("sresr.imaging.resize")
    loaded = TOYS["pixelshuffle"]()
    up = Upscaler(loaded, tile=0)
    im = Image(np.random.default_rng(1).random((20, 30, 3)).astype(np.float32))
    out = up.upscale_image(im, outscale=3.5)
    assert out.pixels.shape == (70, 105, 3)
    assert up.upscale_image(im, outscale=2).pixels.shape == (40, 60, 3)


def test_y_model_upscales_luma_with_network_and_chroma_with_bicubic():
    color = pytest.importorskip("sresr.imaging.color")
    resize = pytest.importorskip("sresr.imaging.resize")

    class Identity(nn.Module):
        def forward(self, x):
            return x

    spec = ModelSpec(name="ident-y", factory=lambda scale: Identity(), scales=(3,), colorspace="y", input="upsampled",
                     receptive_field=0)
    up = Upscaler(LoadedModel(Identity(), spec, 3, "y", "test"), tile=8, tile_pad=4)
    x = torch.rand(1, 3, 10, 14)
    out = up.upscale_rgb(x)
    # identity network on pre-upsampled Y == bicubic of all of YCbCr
    expected = color.ycbcr_to_rgb(resize.imresize(color.rgb_to_ycbcr(x), scale=3)).clamp(0, 1)
    assert out.shape == (1, 3, 30, 42)
    assert (out - expected).abs().max() < 1e-4
    assert math.isclose(up.stats.input_pixels, 140)


@pytest.mark.parametrize("model,tile", [("fsrcnn", 0), ("srcnn", 0), ("fsrcnn", 8), ("srcnn", 10)])
def test_y_model_chroma_strips_equal_the_whole_image_conversion(model, tile, monkeypatch):
    """upscale_rgb of a Y model converts colour in strips; the result must equal converting the
    whole image at once (network on Y, MATLAB bicubic on CbCr, back to RGB)."""
    import torch

    from sresr import engine
    from sresr.imaging.color import rgb_to_ycbcr, ycbcr_to_rgb
    from sresr.imaging.resize import imresize
    from sresr.resolve import load_model

    torch.manual_seed(0)
    scale = 3
    # tile 10 on SRCNN (fed the upsampled image): tiles end between input pixels
    up = engine.Upscaler(load_model(model, scale, pretrained=False), device="cpu", tile=tile)
    x = torch.rand(1, 3, 23, 17)
    monkeypatch.setattr(engine, "_STRIP_PIXELS", 17 * 5)  # 5 input rows per strip: 5 strips
    got = up.upscale_rgb(x)
    ycc = rgb_to_ycbcr(x)
    y = up.run(ycc[:, :1].contiguous())
    want = ycbcr_to_rgb(torch.cat([y, imresize(ycc[:, 1:].contiguous(), scale=scale)], dim=1)).clamp(0, 1)
    assert got.shape == (1, 3, 69, 51)
    assert torch.allclose(got, want, atol=1e-6, rtol=0)


_FAULTS = r"""
import resource, statistics, sys, torch
from sresr.engine import tune_cpu_allocator
applied = tune_cpu_allocator() if sys.argv[1] == "1" else None
def tile():  # three 16 MiB activations alive at once, then all freed, as a tile's forward does
    bufs = [torch.ones(4 << 20) for _ in range(3)]
    del bufs
tile()
rounds = []
for _ in range(7):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    tile()
    rounds.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
print(applied, int(statistics.median(rounds)))
"""


def test_tuned_allocator_reuses_freed_tile_buffers():
    import platform
    import subprocess
    import sys

    from conftest import subprocess_env

    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        pytest.skip("glibc only")
    faults = {}
    for mode in ("0", "1"):
        out = subprocess.run([sys.executable, "-c", _FAULTS, mode], capture_output=True, text=True,
                             env=subprocess_env(), check=True).stdout.split()
        faults[mode] = int(out[1])  # page faults of a typical round (the median of 7)
        if mode == "1":
            assert out[0] == "True"
    pages = 3 * (16 << 20) // 4096  # one round's three buffers
    # Tuned: the freed buffers are reused, every round. The median round, not the total: the
    # kernel may reclaim retained pages now and then (DAMON), which refaults one round of a tuned
    # run too. Untuned, glibc gives freed buffers back to the OS and faults them in afresh (all of
    # them, or about a third, or, once its dynamic mmap threshold has risen early, none: it
    # depends on the heap's history, so on what was imported before), so it is no fixed baseline
    # to compare with; it is run to show the measurement sees faults where there are some.
    assert faults["1"] < pages // 8
    assert faults["0"] >= faults["1"]


def _rounded(a: np.ndarray, depth: int) -> np.ndarray:
    """The reference rounding, written out: clamp, scale in float32, round half to even."""
    peak = np.float32(65535.0 if depth == 16 else 255.0)
    return np.rint(np.clip(a, 0, 1).astype(np.float32) * peak).astype(np.uint16 if depth == 16 else np.uint8)


@pytest.mark.parametrize("case", ["rgb-toy", "padded-toy", "y-model", "y-model-16bit", "rgba", "opaque", "gray",
                                  "outscale"])
def test_integer_output_equals_rounding_the_float_output(case, monkeypatch):
    """upscale_image(depth=8/16) rounds tiles straight into an integer canvas: it must equal the
    float result rounded afterwards, and encode to the same file."""
    from sresr import engine
    from sresr.imaging.io import decode_image, encode_image

    rng = np.random.default_rng(3)
    depth = 16 if case == "y-model-16bit" else 8
    h, w = 45, 61
    pixels = rng.random((h, w, 1 if case == "gray" else 3)).astype(np.float32)
    alpha = None
    if case == "rgba":
        alpha = np.linspace(0, 1, h * w, dtype=np.float32).reshape(h, w)
    elif case == "opaque":
        alpha = np.ones((h, w), np.float32)
    image = Image(pixels, alpha=alpha, bit_depth=depth)
    if case.startswith("y-model"):
        torch.manual_seed(0)
        loaded = load_model("fsrcnn", 3, pretrained=False)
        monkeypatch.setattr(engine, "_STRIP_PIXELS", w * 7)  # several chroma strips
    else:
        loaded = TOYS["unshuffle" if case == "padded-toy" else "pixelshuffle"]()
    up = Upscaler(loaded, tile=16)
    outscale = 2.5 if case == "outscale" else None
    ref = up.upscale_image(image, outscale=outscale)
    got = up.upscale_image(image, outscale=outscale, depth=depth)
    assert got.pixels.dtype == (np.uint16 if depth == 16 else np.uint8) and got.bit_depth == depth
    assert got.pixels.shape == ref.pixels.shape
    assert np.array_equal(got.pixels, _rounded(ref.pixels, depth))
    if alpha is not None:
        assert got.alpha is not None and ref.alpha is not None
        assert np.array_equal(got.alpha, _rounded(ref.alpha, depth))
    else:
        assert got.alpha is None
    # an integer image goes in as well as a float one (upscaling the rounded result again)
    again = up.upscale_image(got, depth=depth)
    assert np.array_equal(again.pixels, up.upscale_image(replace(got, pixels=got.pixels / np.float32(
        65535 if depth == 16 else 255), alpha=None if got.alpha is None else got.alpha / np.float32(
        65535 if depth == 16 else 255)), depth=depth).pixels)
    a = decode_image(encode_image(ref, "png"), "float.png")
    b = decode_image(encode_image(got, "png"), "int.png")
    assert np.array_equal(a.pixels, b.pixels) and a.bit_depth == b.bit_depth == depth
    assert (a.alpha is None) == (b.alpha is None) and (a.alpha is None or np.array_equal(a.alpha, b.alpha))
    # JPEG composites onto white: the same for either kind of image up to the rounding of the
    # integer one (which the JPEG transform may spread by a few levels)
    if alpha is not None:
        ja = decode_image(encode_image(ref, "jpg", quality=100), "a.jpg").pixels
        jb = decode_image(encode_image(got, "jpg", quality=100), "b.jpg").pixels
        assert np.abs(ja - jb).max() <= 8 / 255 and np.abs(ja - jb).mean() <= 1 / 255


class _Tf32Probe(torch.nn.Module):
    """Records whether TF32 was allowed while it ran (the global switches PyTorch reads)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 12, 3, padding=1)
        self.seen: list[tuple[bool, bool]] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.seen.append((torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32))
        return torch.nn.functional.pixel_shuffle(self.conv(x), 2)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_fp32_on_cuda_runs_without_tf32_and_restores_it():
    from sresr.spec import ModelSpec

    spec = ModelSpec(name="probe", factory="torch.nn:Identity", scales=(2,), receptive_field=1)
    saved = (torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32)
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = True
    try:
        probe = _Tf32Probe()
        up = Upscaler(LoadedModel(probe, spec, 2, "rgb", "test"), device="cuda", precision="fp32", optimize=False)
        x = torch.rand(1, 3, 16, 16)
        got = up.run(x)
        assert up.module.seen and all(s == (False, False) for s in up.module.seen)
        assert (torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32) == (True, True)
        cpu = Upscaler(LoadedModel(probe.cpu(), spec, 2, "rgb", "test"), device="cpu", optimize=False).run(x)
        torch.testing.assert_close(got, cpu, atol=1e-6, rtol=0)  # IEEE fp32 on both
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved
