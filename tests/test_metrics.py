"""PSNR/SSIM against an independent float64 reference, edge cases, and the published bicubic baseline."""

from __future__ import annotations

import math
from importlib import resources
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from sresr.errors import ImageError
from sresr.imaging.resize import imresize
from sresr.metrics import Protocol, json_number, modcrop, prepare, psnr, score, ssim, y_channel

DATA = Path(__file__).resolve().parent / "data"


# -- independent reference: full 2-D window, explicit loops over the valid positions -------------
def _ref_window() -> np.ndarray:
    w = np.zeros((11, 11))
    for i in range(11):
        for j in range(11):
            w[i, j] = math.exp(-((i - 5) ** 2 + (j - 5) ** 2) / (2 * 1.5**2))
    return w / w.sum()


def _ref_ssim(a: np.ndarray, b: np.ndarray) -> float:
    w = _ref_window()
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    h, wd = a.shape
    vals = []
    for i in range(h - 10):
        for j in range(wd - 10):
            pa, pb = a[i : i + 11, j : j + 11], b[i : i + 11, j : j + 11]
            ma, mb = (w * pa).sum(), (w * pb).sum()
            va = (w * (pa - ma) ** 2).sum()
            vb = (w * (pb - mb) ** 2).sum()
            cov = (w * (pa - ma) * (pb - mb)).sum()
            vals.append(((2 * ma * mb + c1) * (2 * cov + c2)) / ((ma**2 + mb**2 + c1) * (va + vb + c2)))
    return float(np.mean(vals))


def _ref_psnr(a: np.ndarray, b: np.ndarray) -> float:
    return 10 * math.log10(255.0**2 / np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))


def test_psnr_ssim_match_reference_on_random_images() -> None:
    rng = np.random.default_rng(1)
    a = rng.integers(0, 256, (24, 30)).astype(np.float64)
    b = np.clip(a + rng.normal(0, 12, a.shape), 0, 255)
    assert psnr(a, b) == pytest.approx(_ref_psnr(a, b), abs=1e-10)
    assert ssim(a, b) == pytest.approx(_ref_ssim(a, b), abs=1e-10)
    # smooth image with mild distortion (SSIM close to 1)
    x = np.linspace(0, 255, 30)
    c = np.add.outer(x[:20] * 0.5, x * 0.5)
    d = c + rng.normal(0, 2, c.shape)
    assert ssim(c, d) == pytest.approx(_ref_ssim(c, d), abs=1e-10)


def test_score_y_channel_and_border_against_reference() -> None:
    rng = np.random.default_rng(2)
    hr = rng.integers(0, 256, (30, 33, 3)).astype(np.uint8)
    sr = np.clip(hr + rng.normal(0, 10, hr.shape), -20, 280)  # out of range on purpose
    s = score(sr, hr, scale=3)
    sr_q = np.floor(np.clip(sr, 0, 255) + 0.5) / 255.0
    hr_f = hr / 255.0
    ys = 16 + 65.481 * sr_q[..., 0] + 128.553 * sr_q[..., 1] + 24.966 * sr_q[..., 2]
    yh = 16 + 65.481 * hr_f[..., 0] + 128.553 * hr_f[..., 1] + 24.966 * hr_f[..., 2]
    ys, yh = ys[3:-3, 3:-3], yh[3:-3, 3:-3]
    assert s.psnr == pytest.approx(_ref_psnr(ys, yh), abs=1e-10)
    assert s.ssim == pytest.approx(_ref_ssim(ys, yh), abs=1e-10)
    # RGB protocol, custom crop, no quantization: mean of per-channel SSIM, PSNR over all values
    p = Protocol(y_only=False, crop=1, quantize=False)
    s2 = score(sr, hr, scale=3, protocol=p)
    a, b = sr[1:-1, 1:-1], hr[1:-1, 1:-1].astype(np.float64)
    assert s2.psnr == pytest.approx(_ref_psnr(a, b), abs=1e-10)
    assert s2.ssim == pytest.approx(np.mean([_ref_ssim(a[..., c], b[..., c]) for c in range(3)]), abs=1e-10)


def test_identical_images_give_inf_and_json_string() -> None:
    img = np.random.default_rng(3).integers(0, 256, (20, 20, 3)).astype(np.uint8)
    s = score(img, img, scale=2)
    assert math.isinf(s.psnr) and s.ssim == pytest.approx(1.0)
    assert json_number(s.psnr) == "inf"
    assert json_number(31.5) == 31.5


def test_mismatched_sizes_are_a_clear_error() -> None:
    with pytest.raises(ImageError, match="sizes differ"):
        score(np.zeros((20, 22, 3)), np.zeros((20, 20, 3)), scale=2)
    with pytest.raises(ImageError, match="equal shapes"):
        psnr(np.zeros((4, 4)), np.zeros((4, 5)))
    with pytest.raises(ImageError, match="too small"):
        score(np.zeros((6, 6, 3)), np.zeros((6, 6, 3)), scale=4)


def test_grayscale_is_scored_on_gray_value() -> None:
    rng = np.random.default_rng(4)
    hr = rng.integers(0, 256, (24, 24)).astype(np.uint8)
    sr = np.clip(hr + rng.normal(0, 5, hr.shape), 0, 255)
    expected = _ref_psnr(np.floor(sr + 0.5)[2:-2, 2:-2], hr[2:-2, 2:-2])
    assert score(sr, hr, 2).psnr == pytest.approx(expected, abs=1e-10)
    # an RGB output of a gray image is scored on its channel mean; replicated gray == gray
    assert score(np.repeat(sr[..., None], 3, axis=2), hr, 2).psnr == pytest.approx(expected, abs=1e-10)
    # gray values are not mapped to studio swing
    assert np.array_equal(y_channel(hr), hr.astype(np.float64))
    with pytest.raises(ImageError, match="grayscale"):
        score(sr, np.stack([hr] * 3, axis=2), 2)


def test_y_only_sr() -> None:
    rng = np.random.default_rng(5)
    hr = rng.integers(0, 256, (20, 20, 3)).astype(np.uint8)
    y = y_channel(hr)
    a, b = prepare(y, hr, 2, sr_is_y=True)
    assert np.array_equal(a[..., 0], np.floor(y + 0.5)[2:-2, 2:-2])
    assert np.array_equal(b[..., 0], y[2:-2, 2:-2])


def test_protocol_describe_and_dict() -> None:
    p = Protocol()
    assert p.border(4) == 4 and p.is_standard()
    line = p.describe(4)
    assert "\n" not in line and "border 4 px" in line and "Y" in line and "[standard]" in line
    q = Protocol(y_only=False, crop=0, quantize=False)
    assert "RGB" in q.describe(3) and "not rounded" in q.describe(3) and "non-standard" in q.describe(3)
    d = q.to_dict(3)
    assert d["channels"] == "rgb" and d["crop"] == 0 and d["quantize"] is False


# -- the published bicubic baseline through the protocol ----------------------------------------
def _read(path: Path) -> np.ndarray:
    im = Image.open(path)
    return np.array(im.convert("L") if im.mode in ("L", "LA", "I;16") else im.convert("RGB"))


def _bicubic_scores(paths: list[Path], scale: int) -> tuple[float, float]:
    ps, ss = [], []
    for path in paths:
        hr = modcrop(_read(path), scale)
        x = torch.from_numpy(hr)
        chw = x.permute(2, 0, 1).contiguous() if x.dim() == 3 else x
        lr = imresize(chw, 1 / scale)  # uint8: MATLAB semantics
        sr = imresize(lr.double(), scale)
        sr = sr.permute(1, 2, 0).numpy() if sr.dim() == 3 else sr.numpy()
        s = score(sr, hr, scale)
        ps.append(s.psnr)
        ss.append(s.ssim)
    return float(np.mean(ps)), float(np.mean(ss))


def _set5_paths() -> list[Path]:
    root = resources.files("sresr.data").joinpath("set5")
    return sorted(Path(str(p)) for p in root.iterdir() if p.name.endswith(".png"))


@pytest.mark.parametrize("scale,exp_psnr,exp_ssim", [(2, 33.68, 0.9305), (3, 30.40, 0.8690), (4, 28.43, 0.8113)])
def test_bicubic_set5_matches_published(scale: int, exp_psnr: float, exp_ssim: float) -> None:
    paths = _set5_paths()
    assert len(paths) == 5
    p, s = _bicubic_scores(paths, scale)
    assert p == pytest.approx(exp_psnr, abs=0.02)
    assert s == pytest.approx(exp_ssim, abs=0.0005)


SET14 = DATA / "set14"


@pytest.mark.slow
@pytest.mark.skipif(not SET14.is_dir(), reason="tests/data/set14 not present")
@pytest.mark.parametrize("scale,exp_psnr,exp_ssim", [(2, 30.24, 0.8692), (3, 27.54, 0.7746), (4, 26.00, 0.7031)])
def test_bicubic_set14_matches_published(scale: int, exp_psnr: float, exp_ssim: float) -> None:
    paths = sorted(SET14.glob("*.png"))
    assert len(paths) == 14
    p, s = _bicubic_scores(paths, scale)
    assert p == pytest.approx(exp_psnr, abs=0.02)
    assert s == pytest.approx(exp_ssim, abs=0.0005)
