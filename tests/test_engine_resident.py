"""The accelerator path of the engine (each image uploaded once, tiles cut, run, rounded and
interleaved on the device, a row of tiles copied back at a time) run on the CPU: it must give
the CPU path's output bit for bit, survive out-of-memory retries and recompute non-finite
half-precision images in fp32."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import sresr
from sresr.engine import Upscaler, _Rows
from sresr.imaging.io import Image
from sresr.resolve import LoadedModel
from test_engine import TOYS, NaNInHalf, OOMAbove  # type: ignore[import-not-found]

RNG = np.random.default_rng(11)


@pytest.mark.parametrize("toy", sorted(TOYS))
@pytest.mark.parametrize("tile,batch", [(0, 1), (12, 1), (12, 3)])
def test_resident_run_equals_the_cpu_path(toy, tile, batch):
    loaded = TOYS[toy]()
    x = torch.rand(2, 3, 45, 61)
    direct = Upscaler(loaded, tile=tile, batch=batch).run(x)
    resident = Upscaler(loaded, tile=tile, batch=batch, resident=True)
    assert resident.resident
    assert torch.equal(resident.run(x), direct)
    out = torch.empty((1, 45 * loaded.scale, 61 * loaded.scale, 3), dtype=torch.uint8)  # an H x W x 3 canvas
    ref = torch.empty_like(out)
    Upscaler(loaded, tile=tile, batch=batch).upscale_rgb(x[:1], out=ref[0].permute(2, 0, 1).unsqueeze(0))
    resident.upscale_rgb(x[:1], out=out[0].permute(2, 0, 1).unsqueeze(0))
    assert torch.equal(out, ref)


@pytest.mark.parametrize("model,scale", [("fsrcnn", 3), ("espcn", 2), ("srcnn", 3), ("bicubic", 4)])
@pytest.mark.parametrize("depth", [None, 8, 16])
def test_resident_images_equal_the_cpu_path(model, scale, depth):
    """Y models (colour made per tile on the device), alpha, grey, 8/16-bit and float outputs."""
    lm = sresr.load_model(model, scale=scale)
    img = Image(RNG.random((37, 53, 3)).astype(np.float32), alpha=RNG.random((37, 53)).astype(np.float32))
    grey = Image(RNG.random((29, 31, 1)).astype(np.float32))
    for tile in (0, 16):
        a, b = Upscaler(lm, tile=tile), Upscaler(lm, tile=tile, resident=True)
        for im in (img, grey):
            x, y = a.upscale_image(im, depth=depth), b.upscale_image(im, depth=depth)
            assert np.array_equal(x.pixels, y.pixels)
            assert (x.alpha is None and y.alpha is None) or np.array_equal(x.alpha, y.alpha)


def test_resident_out_of_memory_retry_and_blocks():
    ref_loaded = TOYS["pixelshuffle"]()
    x = torch.rand(1, 3, 70, 90)
    reference = Upscaler(ref_loaded, tile=0).run(x)
    guard = OOMAbove(ref_loaded.module, max_pixels=24 * 24)
    up = Upscaler(LoadedModel(guard, ref_loaded.spec, 2, "rgb", "test"), tile=64, batch=4, optimize=False,
                  resident=True)
    out = up.run(x)
    assert guard.failures >= 2 and up.stats.oom_retries == guard.failures
    assert (out - reference).abs().max() <= 1 / 255
    canvas, hits = torch.zeros_like(reference), torch.zeros(reference.shape[2:], dtype=torch.int32)

    def blocks(y0, y1, x0, x1, block):
        assert block.device.type == "cpu" and block.dtype == torch.float32
        canvas[:, :, y0 * 2 : y1 * 2, x0 * 2 : x1 * 2] = block
        hits[y0 * 2 : y1 * 2, x0 * 2 : x1 * 2] += 1

    assert up.run(x, blocks=blocks) is None
    assert bool((hits == 1).all()) and (canvas - reference).abs().max() <= 1 / 255


def test_resident_non_finite_half_image_is_recomputed_in_fp32():
    ref_loaded = TOYS["pixelshuffle"]()
    x = torch.rand(1, 3, 40, 44)
    reference = Upscaler(ref_loaded, tile=0).run(x)
    loaded = LoadedModel(NaNInHalf(ref_loaded.module), ref_loaded.spec, 2, "rgb", "test")
    up = Upscaler(loaded, device="cpu", precision="bf16", tile=12, resident=True)
    out = up.run(x)
    assert up.stats.fp32_fallbacks == 1  # one flag read for the whole image, not one per tile
    assert torch.isfinite(out).all() and (out - reference).abs().max() < 1e-5


@pytest.mark.parametrize("dtype", [torch.uint8, torch.float32])
@pytest.mark.parametrize("interleaved", [True, False])
def test_rows_bands_copy_every_row_once(dtype, interleaved):
    h, w = 23, 17
    src = (torch.rand(1, 3, h, w) * 200).to(dtype)
    out = torch.zeros((h, w, 3), dtype=dtype).permute(2, 0, 1).unsqueeze(0) if interleaved else \
        torch.zeros((1, 3, h, w), dtype=dtype)
    rows = _Rows(out, torch.device("cpu"))
    assert rows.interleaved == interleaved
    for a in range(0, h, 5):  # rows of tiles, each written in two column blocks
        b = min(h, a + 5)
        for c0, c1 in ((0, 9), (9, w)):
            rows.view(a, b)[:, :, :, c0:c1].copy_(src[:, :, a:b, c0:c1])
        assert all(s.get("band") is None or s["band"].numel() <= 5 * w * 3 for s in rows.slots)  # a row of tiles
    rows.finish()
    assert torch.equal(out, src)
