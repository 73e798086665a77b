"""sresr.imaging.io against files made by Pillow and OpenCV (independent encoders/decoders)."""

from __future__ import annotations

import io

import cv2
import numpy as np
import pytest
from PIL import Image as PILImage
from PIL import ImageCms, ImageOps

from sresr.errors import ImageError
from sresr.imaging.io import TEMP_SUFFIX, Image, read_image, write_image

RNG = np.random.default_rng(0)


def _rgb(h: int = 12, w: int = 17) -> np.ndarray:
    return (RNG.random((h, w, 3)) * 255).astype(np.uint8)


def _srgb_icc() -> bytes:
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def test_rgb_png_roundtrip_exact(tmp_path):
    a = _rgb()
    PILImage.fromarray(a).save(tmp_path / "a.png")
    im = read_image(tmp_path / "a.png")
    assert im.mode == "rgb" and im.bit_depth == 8 and im.alpha is None and im.size == (17, 12)
    write_image(tmp_path / "b.png", im)
    assert np.array_equal(np.asarray(PILImage.open(tmp_path / "b.png")), a)


def test_16bit_color_png_keeps_all_bits(tmp_path):
    a = (RNG.random((9, 11, 3)) * 65535).astype(np.uint16)
    cv2.imwrite(str(tmp_path / "a.png"), a)  # BGR order on disk
    im = read_image(tmp_path / "a.png")
    assert im.bit_depth == 16 and im.mode == "rgb"
    assert np.allclose(im.pixels[..., 0] * 65535, a[..., 2], atol=0.01)  # red first
    write_image(tmp_path / "b.png", im)
    write_image(tmp_path / "b.tif", im)
    for name in ("b.png", "b.tif"):
        back = cv2.imread(str(tmp_path / name), cv2.IMREAD_UNCHANGED)
        assert back.dtype == np.uint16 and np.array_equal(back, a)


def test_16bit_rgba_and_gray(tmp_path):
    a = (RNG.random((9, 11, 4)) * 65535).astype(np.uint16)
    cv2.imwrite(str(tmp_path / "a.png"), a)
    im = read_image(tmp_path / "a.png")
    assert im.bit_depth == 16 and im.alpha is not None
    write_image(tmp_path / "b.png", im)
    assert np.array_equal(cv2.imread(str(tmp_path / "b.png"), cv2.IMREAD_UNCHANGED), a)
    g = (RNG.random((9, 11)) * 65535).astype(np.uint16)
    cv2.imwrite(str(tmp_path / "g.png"), g)
    im = read_image(tmp_path / "g.png")
    assert im.mode == "gray" and im.bit_depth == 16
    write_image(tmp_path / "g2.png", im)
    back = cv2.imread(str(tmp_path / "g2.png"), cv2.IMREAD_UNCHANGED)
    assert back.ndim == 2 and back.dtype == np.uint16 and np.array_equal(back, g)


@pytest.mark.parametrize("mode", ["L", "LA", "RGBA", "P", "1", "CMYK"])
def test_modes(tmp_path, mode):
    base = PILImage.fromarray(_rgb()).convert("RGBA")
    src = base.convert(mode)
    path = tmp_path / ("a.jpg" if mode == "CMYK" else "a.png")
    if mode == "P":
        src.info["transparency"] = 0
    src.save(path, **({"quality": 100} if mode == "CMYK" else {}))
    im = read_image(path)
    expected_gray = mode in ("L", "LA", "1")
    assert im.mode == ("gray" if expected_gray else "rgb")
    assert (im.alpha is not None) == (mode in ("LA", "RGBA", "P"))
    reference = PILImage.open(path)
    if mode == "CMYK":
        reference = reference.convert("RGB")
    ref = np.asarray(reference.convert("L" if expected_gray else "RGB"), dtype=np.float32) / 255
    got = im.pixels[..., 0] if expected_gray else im.pixels
    assert np.abs(got - ref).max() <= 1 / 255 + 1e-6


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_applied_like_pillow_and_reset(tmp_path, orientation):
    a = _rgb(10, 16)
    pil = PILImage.fromarray(a)
    exif = pil.getexif()
    exif[0x0112] = orientation
    exif[0x010F] = "sresr-test-camera"  # Make: must survive
    pil.save(tmp_path / "a.png", exif=exif.tobytes())
    im = read_image(tmp_path / "a.png")
    expected = np.asarray(ImageOps.exif_transpose(PILImage.open(tmp_path / "a.png")).convert("RGB"))
    assert im.pixels.shape[:2] == expected.shape[:2]
    assert np.array_equal(np.rint(im.pixels * 255).astype(np.uint8), expected)
    write_image(tmp_path / "b.jpg", im)
    out_exif = PILImage.open(tmp_path / "b.jpg").getexif()
    assert out_exif.get(0x0112, 1) == 1
    assert out_exif.get(0x010F) == "sresr-test-camera"


@pytest.mark.parametrize("ext", ["png", "jpg", "webp", "tiff"])
def test_icc_and_exif_kept(tmp_path, ext):
    icc = _srgb_icc()
    pil = PILImage.fromarray(_rgb())
    exif = pil.getexif()
    exif[0x010F] = "maker"
    pil.save(tmp_path / "a.png", icc_profile=icc, exif=exif.tobytes())
    im = read_image(tmp_path / "a.png")
    assert im.icc_profile == icc
    write_image(tmp_path / f"b.{ext}", im)
    back = PILImage.open(tmp_path / f"b.{ext}")
    assert back.info.get("icc_profile") == icc
    if ext != "tiff":
        assert back.getexif().get(0x010F) == "maker"


def test_16bit_png_keeps_icc(tmp_path):
    icc = _srgb_icc()
    im = Image(pixels=RNG.random((5, 6, 3)).astype(np.float32), bit_depth=16, icc_profile=icc)
    write_image(tmp_path / "a.png", im)
    back = PILImage.open(tmp_path / "a.png")
    assert back.info.get("icc_profile") == icc
    assert read_image(tmp_path / "a.png").bit_depth == 16


def test_alpha_to_jpeg_composites_on_white(tmp_path):
    px = np.zeros((4, 4, 3), np.float32)
    alpha = np.zeros((4, 4), np.float32)
    write_image(tmp_path / "a.jpg", Image(px, alpha))
    assert np.asarray(PILImage.open(tmp_path / "a.jpg")).min() >= 250


def test_errors_are_one_line_and_name_the_file(tmp_path):
    buf = io.BytesIO()
    PILImage.fromarray(_rgb(64, 64)).save(buf, format="PNG")
    (tmp_path / "trunc.png").write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    (tmp_path / "zero.png").write_bytes(b"")
    (tmp_path / "text.png").write_text("this is not a picture\n")
    PILImage.fromarray(_rgb(30, 40)).save(tmp_path / "big.png")
    cases = {"trunc.png": "truncated", "zero.png": "empty", "text.png": "not an image", "missing.png": "cannot read"}
    for name, word in cases.items():
        with pytest.raises(ImageError) as info:
            read_image(tmp_path / name)
        msg = str(info.value)
        assert name in msg and word in msg and "\n" not in msg
    with pytest.raises(ImageError, match="limit"):
        read_image(tmp_path / "big.png", max_pixels=1000)
    assert read_image(tmp_path / "big.png", max_pixels=1200).size == (40, 30)


def test_write_is_atomic_and_leaves_no_temp(tmp_path):
    im = Image(RNG.random((8, 8, 3)).astype(np.float32))
    write_image(tmp_path / "a.png", im)
    with pytest.raises(ImageError):
        write_image(tmp_path / "b.xyz", im)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.png"]
    assert not list(tmp_path.glob("*" + TEMP_SUFFIX))


@pytest.mark.parametrize("depth", [8, 16])
def test_png_compression_level_trades_size_only(tmp_path, depth):
    # a smooth gradient compresses well: level 0 stores it raw, 9 squeezes it; pixels are the same
    # (decoded by Pillow / OpenCV, not by sresr)
    from sresr.imaging.io import encode_image

    yy, xx = np.mgrid[0:64, 0:96].astype(np.float32)
    pixels = np.dstack([yy / 63, xx / 95, (yy + xx) / 158]).astype(np.float32)
    image = Image(pixels, bit_depth=depth)
    sizes = {}
    decoded = []
    for level in (0, 3, 9):
        data = encode_image(image, "png", png_compression=level)
        sizes[level] = len(data)
        arr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
        assert arr.dtype == (np.uint16 if depth == 16 else np.uint8)
        decoded.append(arr)
    assert sizes[0] > 64 * 96 * 3 * depth // 8 and sizes[0] > 2 * sizes[3] and sizes[9] <= sizes[3]
    assert all(np.array_equal(decoded[0], d) for d in decoded[1:])
    peak = 65535 if depth == 16 else 255
    assert np.array_equal(decoded[0][:, :, ::-1], np.rint(pixels * peak).astype(decoded[0].dtype))
    with pytest.raises(ValueError):
        encode_image(image, "png", png_compression=10)
