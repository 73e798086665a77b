"""The standard SR evaluation protocol: PSNR and MATLAB-equivalent SSIM (torch-free, numpy float64).

Default protocol (the one behind every published Set5/Set14/B100/Urban100 table):

1. HR = ``modcrop(image, s)``; LR = MATLAB bicubic of it (see :mod:`sresr.datasets`).
2. SR output clipped to [0, 255] and rounded to uint8 (half away from zero).
3. Scored on BT.601 studio-swing Y, ``16 + 65.481 R + 128.553 G + 24.966 B`` (R, G, B in [0, 1]),
   not rounded; a grayscale HR image is scored on its gray value itself.
4. ``s`` pixels cropped from every border; PSNR = ``10 log10(255^2 / MSE)``.
5. SSIM = MATLAB ``ssim_index``: 11x11 Gaussian window (sigma 1.5), K1 = 0.01, K2 = 0.03, L = 255,
   'valid' filtering, mean of the map; float64.

:class:`Protocol` selects variants (``y_only=False`` for RGB, ``crop`` in pixels, ``quantize``).
Arrays here are images as image readers return them: ``(H, W)`` or ``(H, W, C)`` with values on
the 0-255 scale (uint8 or float). Identical images give ``psnr = inf`` (JSON: the string "inf").
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from .errors import ImageError

__all__ = [
    "Protocol", "Score", "modcrop", "quantize", "y_channel", "prepare", "psnr", "ssim", "score",
    "mean_scores", "json_number",
]


@dataclass(frozen=True)
class Protocol:
    """How images are scored. The defaults are the published protocol.

    y_only: score BT.601 Y (True) or all RGB channels (False; SSIM averaged over channels).
    crop: pixels removed from every border; ``None`` means "the scale" (the standard).
    quantize: clip and round the SR output to uint8 before scoring.
    """

    y_only: bool = True
    crop: int | None = None
    quantize: bool = True

    def border(self, scale: int) -> int:
        return int(scale) if self.crop is None else int(self.crop)

    def describe(self, scale: int | None = None) -> str:
        """One line, printed under every table."""
        if scale is not None:
            crop = f"border {self.border(scale)} px"
        else:
            crop = "border = scale" if self.crop is None else f"border {self.crop} px"
        channels = "Y (BT.601 studio swing; gray images on gray)" if self.y_only else "RGB"
        rounding = "SR rounded to uint8" if self.quantize else "SR not rounded"
        standard = " [standard]" if self.is_standard() else " [non-standard]"
        return (
            f"protocol: {channels}, {crop}, {rounding}, modcrop, LR = MATLAB bicubic, "
            f"SSIM Gaussian 11x11 sigma 1.5 valid{standard}"
        )

    def is_standard(self) -> bool:
        return self == Protocol()

    def to_dict(self, scale: int | None = None) -> dict[str, Any]:
        out: dict[str, Any] = asdict(self)
        out["channels"] = "y" if self.y_only else "rgb"
        if scale is not None:
            out["crop"] = self.border(scale)
        out["lr"] = "matlab-bicubic"
        out["ssim"] = "gaussian-11x11-sigma1.5-valid"
        out["standard"] = self.is_standard()
        out["description"] = self.describe(scale)
        return out


@dataclass(frozen=True)
class Score:
    psnr: float
    ssim: float


def modcrop(img: Any, scale: int) -> Any:
    """The top-left region whose height and width are multiples of ``scale`` (``(H, W, ...)``)."""
    h, w = img.shape[0], img.shape[1]
    return img[: h - h % scale, : w - w % scale]


def quantize(img: np.ndarray) -> np.ndarray:
    """Clip to [0, 255] and round half away from zero (MATLAB's uint8 conversion); float64."""
    return np.floor(np.clip(np.asarray(img, dtype=np.float64), 0, 255) + 0.5)


def _is_gray(img: np.ndarray) -> bool:
    return img.ndim == 2 or img.shape[2] == 1


def y_channel(img: np.ndarray) -> np.ndarray:
    """BT.601 studio-swing Y on the 0-255 scale from an RGB ``(H, W, 3)`` image on 0-255; float64.

    A grayscale image (``(H, W)`` or ``(H, W, 1)``) is returned as its gray value.
    """
    arr = np.asarray(img, dtype=np.float64)
    if _is_gray(arr):
        return arr.reshape(arr.shape[0], arr.shape[1])
    if arr.shape[2] != 3:
        raise ImageError(f"expected 1 or 3 channels, got {arr.shape[2]}")
    rgb = arr / 255.0
    return 16.0 + 65.481 * rgb[..., 0] + 128.553 * rgb[..., 1] + 24.966 * rgb[..., 2]


def _as_channels(img: np.ndarray) -> np.ndarray:
    arr = np.asarray(img, dtype=np.float64)
    return arr[..., None] if arr.ndim == 2 else arr


def prepare(sr: np.ndarray, hr: np.ndarray, scale: int, protocol: Protocol = Protocol(),
            sr_is_y: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """The two float64 ``(H, W, C)`` arrays that are scored: channels chosen, border cropped.

    ``sr_is_y``: ``sr`` is already the Y channel on 0-255 (a Y-only model's output); ``hr`` is
    then converted to Y. When HR is grayscale and SR has 3 channels, SR is scored on the mean of
    its channels (its gray value).
    """
    sr = np.asarray(sr)
    hr = np.asarray(hr)
    if sr.shape[:2] != hr.shape[:2]:
        raise ImageError(
            f"SR and HR sizes differ: SR is {sr.shape[1]}x{sr.shape[0]}, HR is {hr.shape[1]}x{hr.shape[0]} (WxH)",
            hint="the SR output must be exactly scale x the LR size of the modcropped HR image",
        )
    sr_f = quantize(sr) if protocol.quantize else np.asarray(sr, dtype=np.float64)
    hr_f = np.asarray(hr, dtype=np.float64)
    if sr_is_y:
        if not protocol.y_only:
            raise ImageError("an SR image given as Y only cannot be scored on RGB", hint="drop --rgb")
        a, b = _as_channels(sr_f), y_channel(hr_f)[..., None]
    elif _is_gray(hr_f):
        a = _as_channels(sr_f)
        if a.shape[2] == 3:
            a = a.mean(axis=2, keepdims=True)
        b = _as_channels(hr_f)
    elif protocol.y_only:
        if _is_gray(sr_f):
            raise ImageError("SR image is grayscale but HR is RGB", hint="write the SR image in RGB")
        a, b = y_channel(sr_f)[..., None], y_channel(hr_f)[..., None]
    else:
        a, b = _as_channels(sr_f), _as_channels(hr_f)
        if a.shape[2] != b.shape[2]:
            raise ImageError(f"SR has {a.shape[2]} channels, HR has {b.shape[2]}")
    crop = protocol.border(scale)
    if crop:
        if 2 * crop >= a.shape[0] or 2 * crop >= a.shape[1]:
            raise ImageError(f"image {a.shape[1]}x{a.shape[0]} is too small for a {crop} px border crop")
        a = a[crop:-crop, crop:-crop]
        b = b[crop:-crop, crop:-crop]
    return a, b


def psnr(a: np.ndarray, b: np.ndarray, data_range: float = 255.0) -> float:
    """``10 log10(range^2 / MSE)`` over all elements, float64; ``inf`` for identical images."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        raise ImageError(f"PSNR needs equal shapes, got {a.shape} and {b.shape}")
    mse = float(np.mean((a - b) ** 2))
    if mse == 0:
        return math.inf
    return 10.0 * math.log10(data_range**2 / mse)


def _gaussian_1d(size: int = 11, sigma: float = 1.5) -> np.ndarray:
    x = np.arange(size, dtype=np.float64) - (size - 1) / 2
    g = np.exp(-(x**2) / (2 * sigma**2))
    return g / g.sum()


def _filter_valid(img: np.ndarray, g: np.ndarray) -> np.ndarray:
    """Separable 'valid' correlation of a 2-D image with ``outer(g, g)``."""
    k = len(g)
    h, w = img.shape
    rows = sum(g[i] * img[i : h - k + 1 + i, :] for i in range(k))
    return sum(g[j] * rows[:, j : w - k + 1 + j] for j in range(k))


def _ssim_2d(a: np.ndarray, b: np.ndarray, data_range: float) -> float:
    g = _gaussian_1d()
    if a.shape[0] < len(g) or a.shape[1] < len(g):
        raise ImageError(f"SSIM needs at least 11x11 pixels after cropping, got {a.shape[1]}x{a.shape[0]}")
    c1 = (0.01 * data_range) ** 2
    c2 = (0.03 * data_range) ** 2
    mu_a = _filter_valid(a, g)
    mu_b = _filter_valid(b, g)
    saa = _filter_valid(a * a, g) - mu_a * mu_a
    sbb = _filter_valid(b * b, g) - mu_b * mu_b
    sab = _filter_valid(a * b, g) - mu_a * mu_b
    num = (2 * mu_a * mu_b + c1) * (2 * sab + c2)
    den = (mu_a * mu_a + mu_b * mu_b + c1) * (saa + sbb + c2)
    return float(np.mean(num / den))


def ssim(a: np.ndarray, b: np.ndarray, data_range: float = 255.0) -> float:
    """MATLAB ``ssim_index`` (Wang et al. 2004) on ``(H, W)`` or ``(H, W, C)``; channel mean."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        raise ImageError(f"SSIM needs equal shapes, got {a.shape} and {b.shape}")
    if a.ndim == 2:
        return _ssim_2d(a, b, data_range)
    return float(np.mean([_ssim_2d(a[..., c], b[..., c], data_range) for c in range(a.shape[2])]))


def score(sr: np.ndarray, hr: np.ndarray, scale: int, protocol: Protocol = Protocol(),
          sr_is_y: bool = False) -> Score:
    """PSNR and SSIM of one SR image against its (modcropped) HR image under ``protocol``."""
    a, b = prepare(sr, hr, scale, protocol, sr_is_y=sr_is_y)
    return Score(psnr(a, b), ssim(a, b))


def mean_scores(scores: list[Score]) -> Score:
    """Average PSNR and SSIM over a set (PSNR is ``inf`` if any image is identical)."""
    if not scores:
        return Score(math.nan, math.nan)
    return Score(float(np.mean([s.psnr for s in scores])), float(np.mean([s.ssim for s in scores])))


def json_number(value: float) -> float | str | None:
    """JSON has no infinity: ``inf`` becomes the string ``"inf"``, NaN becomes ``null``."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, float) and math.isinf(value):
        return "inf" if value > 0 else "-inf"
    return value
