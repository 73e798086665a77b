"""The Python API with the inputs users of other SR libraries pass: numpy arrays, PIL images,
uint8 tensors, NaN, bad scales and sizes. Each is either upscaled exactly like the equivalent
sresr Image, or refused with a UsageError that says what is expected."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image as PILImage

import sresr
from sresr.engine import Upscaler
from sresr.errors import UsageError
from sresr.imaging.io import Image, quantize

RNG = np.random.default_rng(3)


@pytest.fixture(scope="module")
def up() -> Upscaler:
    return Upscaler(sresr.load_model("fsrcnn", scale=2), device="cpu")


def _reference(up: Upscaler, pixels: np.ndarray, alpha: np.ndarray | None = None, depth: int = 8):
    return up.upscale_image(Image(pixels, alpha, depth))


def test_numpy_uint8_rgb_and_rgba_give_arrays_of_the_same_kind(up):
    a = (RNG.random((9, 11, 3)) * 255).astype(np.uint8)
    out = up.upscale_image(a)
    assert out.dtype == np.uint8 and out.shape == (18, 22, 3)
    ref = _reference(up, a.astype(np.float32) / 255)
    assert np.array_equal(out, quantize(ref.pixels, 8))
    rgba = np.dstack([a, (RNG.random((9, 11)) * 255).astype(np.uint8)])
    out4 = up.upscale_rgb(rgba)  # numpy in: numpy out, through the same path
    ref4 = _reference(up, a.astype(np.float32) / 255, rgba[:, :, 3].astype(np.float32) / 255)
    assert out4.shape == (18, 22, 4)
    assert np.array_equal(out4[:, :, 3], quantize(ref4.alpha, 8))


def test_numpy_uint16_gray_and_float(up):
    g = (RNG.random((8, 10)) * 65535).astype(np.uint16)
    out = up.upscale_image(g)
    assert out.dtype == np.uint16 and out.shape == (16, 20)
    ref = _reference(up, (g.astype(np.float32) / 65535)[:, :, None], depth=16)
    assert np.array_equal(out, quantize(ref.pixels, 16)[:, :, 0])
    f = RNG.random((8, 10, 3)).astype(np.float64)
    outf = up.upscale_image(f)
    assert outf.dtype == np.float64 and np.allclose(outf, _reference(up, f.astype(np.float32)).pixels, atol=1e-6)


def test_pil_images_come_back_as_pil_images(up):
    a = (RNG.random((9, 11, 3)) * 255).astype(np.uint8)
    out = up.upscale_image(PILImage.fromarray(a))
    assert isinstance(out, PILImage.Image) and out.mode == "RGB" and out.size == (22, 18)
    assert np.array_equal(np.asarray(out), up.upscale_image(a))
    la = PILImage.fromarray(a).convert("LA")
    assert up.upscale_image(la).mode == "LA"
    pal = PILImage.fromarray(a).convert("P")
    assert up.upscale_image(pal).mode == "RGB"


def test_integer_tensors_are_scaled_not_read_as_unit_floats(up):
    a = (RNG.random((1, 3, 9, 11)) * 255).astype(np.uint8)
    from_uint8 = up.upscale_rgb(torch.from_numpy(a))
    from_float = up.upscale_rgb(torch.from_numpy(a).float() / 255)
    torch.testing.assert_close(from_uint8, from_float)
    assert float(from_uint8.mean()) < 0.9  # not a white image


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_non_finite_pixels_are_refused(up, bad):
    x = torch.rand(1, 3, 8, 8)
    x[0, 1, 3, 3] = bad
    with pytest.raises(UsageError, match="NaN or infinite"):
        up.upscale_rgb(x)
    a = np.random.default_rng(0).random((8, 8, 3)).astype(np.float32)
    a[2, 2, 0] = bad
    with pytest.raises(UsageError, match="NaN or infinite"):
        up.upscale_image(a)
    with pytest.raises(UsageError, match="NaN or infinite"):
        up.upscale_image(Image(a))


def test_float_pixels_in_0_255_are_refused_with_the_fix(up):
    with pytest.raises(UsageError, match=r"\[0, 1\]") as info:
        up.upscale_rgb(torch.rand(1, 3, 8, 8) * 255)
    assert "255" in info.value.hint


@pytest.mark.parametrize("outscale", [0, -2, float("nan"), 1e9])
def test_bad_outscale_is_refused(up, outscale):
    with pytest.raises(UsageError, match="outscale|output would be"):
        up.upscale_image(Image(np.zeros((8, 8, 3), np.float32)), outscale=outscale)


def test_wrong_shapes_and_types_say_what_is_expected(up):
    with pytest.raises(UsageError, match="H x W"):
        up.upscale_image(np.zeros((3, 8, 8, 2), np.uint8))
    with pytest.raises(UsageError, match="dtype"):
        up.upscale_image(np.zeros((8, 8, 3), np.int32))
    with pytest.raises(UsageError, match="cannot upscale a builtins.list"):
        up.upscale_image([[1, 2], [3, 4]])
    with pytest.raises(UsageError, match="Nx3xHxW"):
        up.upscale_rgb(torch.rand(3, 8, 8))


@pytest.mark.parametrize("scale", ["2", 2.0, 0, True])
def test_load_model_scale_must_be_a_whole_number(scale):
    with pytest.raises(UsageError, match="scale must be a whole number"):
        sresr.load_model("fsrcnn", scale=scale)


@pytest.mark.parametrize("kwargs", [{"blocks": -1}, {"blocks": 0}, {"features": 2.5}])
def test_impossible_architectures_are_refused(kwargs):
    with pytest.raises(UsageError, match="must be a whole number >= 1"):
        sresr.create_model("srresnet", scale=4, pretrained=False, **kwargs)


def test_unknown_model_option_names_the_accepted_ones():
    with pytest.raises(UsageError, match="no option 'norm'") as info:
        sresr.create_model("fsrcnn", scale=2, pretrained=False, norm="bn")
    assert "deconv_padding" in info.value.hint
