"""A seeded fuzz corpus of damaged images: every file either fails with one line naming it, or
decodes to exactly what Pillow's strict load gives (an independent decoder run on the same bytes).

Before the fix a corrupt PNG was upscaled as a mostly black image and reported "ok": the EXIF lookup
ran Pillow's decoder first and swallowed its "broken data stream" error.
"""

from __future__ import annotations

import io

import cv2
import numpy as np
import pytest
from PIL import Image as PILImage
from PIL import ImageFile, ImageOps

from sresr.errors import ImageError
from sresr.imaging.io import read_image

SEED = 20261128


def _picture(h: int = 20, w: int = 24) -> np.ndarray:
    """A smooth gradient with some noise: compresses like a photo, so every format has real data."""
    rng = np.random.default_rng(SEED)
    yy, xx = np.mgrid[0:h, 0:w]
    base = np.stack([xx * 255 / w, yy * 255 / h, (xx + yy) * 127 / (h + w)], axis=2)
    return np.clip(base + rng.normal(0, 12, base.shape), 0, 255).astype(np.uint8)


def _encode(kind: str) -> bytes:
    a = _picture()
    buf = io.BytesIO()
    if kind == "png16":
        ok, enc = cv2.imencode(".png", (a[:, :, ::-1].astype(np.uint16) * 257))
        assert ok
        return enc.tobytes()
    pil = PILImage.fromarray(a)
    if kind == "png":
        pil.save(buf, format="PNG")
    elif kind == "png-gray":
        pil.convert("L").save(buf, format="PNG")
    elif kind == "jpeg":
        pil.save(buf, format="JPEG", quality=90)
    elif kind == "webp":
        pil.save(buf, format="WEBP", quality=80)
    elif kind == "webp-lossless":
        pil.save(buf, format="WEBP", lossless=True)
    elif kind == "tiff":
        pil.save(buf, format="TIFF", compression="tiff_deflate")
    elif kind == "tiff-raw":
        pil.save(buf, format="TIFF")
    else:  # pragma: no cover
        raise AssertionError(kind)
    return buf.getvalue()


KINDS = ["png", "png-gray", "png16", "jpeg", "webp", "webp-lossless", "tiff", "tiff-raw"]


def _mutations(data: bytes, rng: np.random.Generator) -> list[tuple[str, bytes]]:
    out = []
    for _ in range(40):  # single-byte flips anywhere, headers included
        pos = int(rng.integers(0, len(data)))
        b = bytearray(data)
        b[pos] ^= int(rng.integers(1, 256))
        out.append((f"flip@{pos}", bytes(b)))
    idat = data.find(b"IDAT")
    if idat > 0:  # the reported case: flips inside a PNG's compressed image data
        for _ in range(20):
            pos = int(rng.integers(idat + 4, min(len(data) - 16, idat + 4 + 200)))
            b = bytearray(data)
            b[pos] ^= 1 << int(rng.integers(0, 8))
            out.append((f"idat-bit@{pos}", bytes(b)))
    for _ in range(10):  # truncations
        cut = int(rng.integers(1, len(data)))
        out.append((f"cut@{cut}", data[:cut]))
    return out


def _pillow_strict(path) -> PILImage.Image:
    im = PILImage.open(path)
    im.load()
    return ImageOps.exif_transpose(im)


@pytest.mark.filterwarnings("ignore::UserWarning")  # Pillow's notes on the metadata it skips
@pytest.mark.parametrize("kind", KINDS)
def test_damaged_files_fail_in_one_line_or_decode_like_pillow(tmp_path, kind):
    assert not ImageFile.LOAD_TRUNCATED_IMAGES  # "strict": Pillow's default
    rng = np.random.default_rng([SEED, KINDS.index(kind)])
    data = _encode(kind)
    accepted = rejected = 0
    for label, blob in _mutations(data, rng):
        path = tmp_path / f"{kind}-{label}.img"
        path.write_bytes(blob)
        try:
            ours = read_image(path)
        except ImageError as exc:
            msg = str(exc)
            assert "\n" not in msg and path.name in msg, (label, msg)
            rejected += 1
            continue
        accepted += 1
        try:
            ref = _pillow_strict(path)
        except Exception as exc:  # noqa: BLE001 - any decoder error
            pytest.fail(f"{kind} {label}: sresr decoded a file Pillow's strict load rejects ({exc})")
        if ours.bit_depth == 16:  # 16-bit colour (OpenCV's decoder): Pillow keeps the high byte
            ours16 = np.rint(ours.pixels * 65535).astype(np.uint16)
            assert np.array_equal(ours16 >> 8, np.asarray(ref.convert("RGB"))), label
            continue
        if ref.mode not in ("L", "LA", "RGB", "RGBA"):
            continue  # a flipped header byte made another mode: sresr's conversions are tested elsewhere
        want = np.asarray(ref.convert("L" if ours.mode == "gray" else "RGB"))
        got = np.rint(ours.pixels * 255).astype(np.uint8)
        got = got[:, :, 0] if ours.mode == "gray" else got
        assert np.array_equal(got, want), f"{kind} {label}: pixels differ from Pillow's"
    assert rejected > 0  # the corpus does damage each format
    if kind.startswith("png"):
        # every flip inside a PNG is caught by its chunk CRCs (the bug: 154 of 155 were accepted)
        flips = [lab for lab, _ in _mutations(data, np.random.default_rng([SEED, KINDS.index(kind)]))]
        assert accepted <= sum(lab.startswith("cut@") for lab in flips)


def test_corrupt_png_is_a_failed_upscale_not_ok(tmp_path):
    """The reported case end to end: one bit flipped in IDAT -> 'failed', exit 1, nothing written."""
    import sys

    sys.path.insert(0, str(__import__("pathlib").Path(__file__).parent))
    from conftest import run_sresr

    data = bytearray(_encode("png"))
    pos = data.find(b"IDAT") + 30
    data[pos] ^= 0x04
    src = tmp_path / "in"
    src.mkdir()
    (src / "bad.png").write_bytes(bytes(data))
    (src / "good.png").write_bytes(_encode("png"))
    out = tmp_path / "out"
    proc = run_sresr("upscale", str(src), "-o", str(out), "-m", "bicubic", "-s", "2")
    assert proc.returncode == 1, proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if "bad.png" in ln]
    assert len(lines) == 1 and "CRC" in lines[0], proc.stderr
    assert sorted(p.name for p in out.iterdir()) == ["good.png"]
