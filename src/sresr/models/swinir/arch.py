"""SwinIR (Liang et al., ICCVW 2021), written from the paper with the key names of the authors'
``models/network_swinir.py`` so that their release files load as published.

Layout: ``conv_first`` -> ``patch_embed.norm`` -> ``layers.{i}`` (residual Swin transformer
blocks: ``residual_group.blocks.{j}`` with plain windows for even ``j`` and windows shifted by
half a window for odd ``j``, then ``conv``, a 3x3 convolution or ``3conv``'s 3x3/1x1/3x3 stack,
added to the group's input) -> ``norm`` -> ``conv_after_body`` (+ ``conv_first``'s output) ->
the reconstruction:

* ``pixelshuffle`` (classical SR, SwinIR-M): ``conv_before_upsample.0`` + LeakyReLU(0.01),
  ``upsample.{0,2,..}`` (3x3 conv to 4x/9x ``num_feat`` + pixel shuffle per stage), ``conv_last``;
* ``pixelshuffledirect`` (lightweight SR, SwinIR-S): ``upsample.0``, one 3x3 conv to
  ``scale^2 * 3`` channels + pixel shuffle;
* ``nearest+conv`` (real-world SR): ``conv_before_upsample.0``, then per x2 stage nearest
  upsampling and ``conv_up1``/``conv_up2`` with LeakyReLU(0.2), ``conv_hr``, ``conv_last``.

Published variants (``variant=``): ``"classical"`` (SwinIR-M: embed 180, 6x6 blocks, 6 heads,
window 8, MLP ratio 2, pixelshuffle; the default), ``"lightweight"`` (SwinIR-S: embed 60, 4x6
blocks, pixelshuffledirect), ``"real"`` (SwinIR-M with nearest+conv), ``"real-large"`` (SwinIR-L:
embed 240, 9x6 blocks, 8 heads, ``3conv``, nearest+conv). Explicit options override the preset.

Input in [0, 1]; ``(x - DIV2K mean) * img_range`` like the reference (``img_range = 1``), the
shift done in fp32 whatever the weights' dtype (as :mod:`sresr.models.edsr.arch` does). Sides
that are not multiples of the window are mirror-padded and the output cropped, as the authors'
test script does.

Geometry (:func:`geometry`): inputs are padded to the window size and tiles start on the window
grid, so a tile sees the same windows as the whole image; the receptive field is computed
exactly by :func:`sresr.models._rf.radius` over the network's operations (a window attention
reaches to the edges of the windows its interval touches, a 3x3 convolution one pixel): 103 input
pixels for SwinIR-S, 153 for SwinIR-M and 227 for SwinIR-L at every scale (per group: the first
block reaches up to ``window - 1``, each further block half a window, since plain and shifted
grids alternate, and the group's 3x3 convolution one pixel; then the convolutions around the body).
The engine rounds the pad up to the window (160 for SwinIR-M).
The shifted-window mask (built for the grid at the border of whatever map it runs on) cuts the
border windows of a tile exactly where it cuts them at the image border, so a tile differs from
the whole-image run only within that radius of its window's edge, which the pad discards: tiling
is exact (measured: tiled == whole to float rounding, ``tests/test_arch_swinir_hat.py``).
"""

from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .. import _rf, check_counts
from .._layouts import Layout, load_with_layouts, shape
from .._upsample import direct_scale, shuffle_scale, shuffle_stages
from .._windows import (
    SwinBlock,
    as_tuple,
    init_transformer_weights,
    pixelshuffle_tail,
    swin_body,
    swin_features,
    swin_layout,
    swin_output,
    swin_stem,
)

UPSAMPLERS = ("pixelshuffle", "pixelshuffledirect", "nearest+conv")
RESI = ("1conv", "3conv")

PRESETS: dict[str, dict[str, Any]] = {
    "classical": {"embed_dim": 180, "depths": (6,) * 6, "num_heads": (6,) * 6, "window_size": 8, "mlp_ratio": 2.0,
                  "upsampler": "pixelshuffle", "resi_connection": "1conv"},
    "lightweight": {"embed_dim": 60, "depths": (6,) * 4, "num_heads": (6,) * 4, "window_size": 8, "mlp_ratio": 2.0,
                    "upsampler": "pixelshuffledirect", "resi_connection": "1conv"},
    "real": {"embed_dim": 180, "depths": (6,) * 6, "num_heads": (6,) * 6, "window_size": 8, "mlp_ratio": 2.0,
             "upsampler": "nearest+conv", "resi_connection": "1conv"},
    "real-large": {"embed_dim": 240, "depths": (6,) * 9, "num_heads": (8,) * 9, "window_size": 8, "mlp_ratio": 2.0,
                   "upsampler": "nearest+conv", "resi_connection": "3conv"},
}
VARIANTS = tuple(PRESETS)


def _stages(scale: int) -> list[int]:
    return shuffle_stages(scale, "SwinIR's pixelshuffle upsampler")


def _resi_conv(dim: int, kind: str) -> nn.Module:
    if kind == "1conv":
        return nn.Conv2d(dim, dim, 3, 1, 1)
    return nn.Sequential(nn.Conv2d(dim, dim // 4, 3, 1, 1), nn.LeakyReLU(0.2, inplace=True),
                         nn.Conv2d(dim // 4, dim // 4, 1, 1, 0), nn.LeakyReLU(0.2, inplace=True),
                         nn.Conv2d(dim // 4, dim, 3, 1, 1))


class _Group(nn.Module):
    def __init__(self, blocks: list[nn.Module]):
        super().__init__()
        self.blocks = nn.ModuleList(blocks)


class RSTB(nn.Module):
    """Residual Swin transformer block: ``depth`` Swin blocks, a convolution, the skip."""

    def __init__(self, dim: int, depth: int, heads: int, window: int, mlp_ratio: float, resi: str):
        super().__init__()
        self.residual_group = _Group([SwinBlock(dim, heads, window, 0 if j % 2 == 0 else window // 2, mlp_ratio)
                                      for j in range(depth)])
        self.conv = _resi_conv(dim, resi)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        y = x
        for blk in self.residual_group.blocks:
            y = blk(y, mask)
        return self.conv(y.permute(0, 3, 1, 2)).permute(0, 2, 3, 1) + x


class SwinIR(nn.Module):
    def __init__(self, scale: int = 4, channels: int = 3, embed_dim: int = 180, depths: Sequence[int] = (6,) * 6,
                 num_heads: Sequence[int] = (6,) * 6, window_size: int = 8, mlp_ratio: float = 2.0,
                 upsampler: str = "pixelshuffle", resi_connection: str = "1conv", num_feat: int = 64,
                 img_range: float = 1.0):
        super().__init__()
        depths, num_heads = as_tuple(depths, "depths"), as_tuple(num_heads, "num_heads")
        if len(depths) != len(num_heads):
            raise ValueError(f"depths {depths} and num_heads {num_heads} differ in length")
        if upsampler not in UPSAMPLERS:
            raise ValueError(f"upsampler must be one of {UPSAMPLERS}, got {upsampler!r}")
        if resi_connection not in RESI:
            raise ValueError(f"resi_connection must be one of {RESI}, got {resi_connection!r}")
        if window_size < 2 or window_size % 2:
            raise ValueError(f"window_size must be an even number >= 2, got {window_size}")
        if upsampler == "nearest+conv" and scale not in (2, 4):
            raise ValueError(f"the nearest+conv upsampler supports x2 and x4, not x{scale}")
        swin_stem(self, channels, embed_dim, window_size, scale, img_range)
        self.upsampler = upsampler
        self.layers = nn.ModuleList([RSTB(embed_dim, d, h, window_size, mlp_ratio, resi_connection)
                                     for d, h in zip(depths, num_heads)])
        self.norm = nn.LayerNorm(embed_dim)
        self.conv_after_body = _resi_conv(embed_dim, resi_connection)
        if upsampler == "pixelshuffle":
            pixelshuffle_tail(self, embed_dim, num_feat, channels, _stages(scale))
        elif upsampler == "pixelshuffledirect":
            self.upsample = nn.Sequential(nn.Conv2d(embed_dim, scale * scale * channels, 3, 1, 1), nn.PixelShuffle(scale))
        else:
            self.conv_before_upsample = nn.Sequential(nn.Conv2d(embed_dim, num_feat, 3, 1, 1), nn.LeakyReLU(inplace=True))
            self.conv_up1 = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
            if scale == 4:
                self.conv_up2 = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
            self.conv_hr = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
            self.conv_last = nn.Conv2d(num_feat, channels, 3, 1, 1)
            self.lrelu = nn.LeakyReLU(0.2, inplace=True)
        self.apply(init_transformer_weights)

    def forward_features(self, feat: torch.Tensor) -> torch.Tensor:
        return swin_body(self, feat)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        feat, mean = swin_features(self, x)
        if self.upsampler == "pixelshuffle":
            out = self.conv_last(self.upsample(self.conv_before_upsample(feat)))
        elif self.upsampler == "pixelshuffledirect":
            out = self.upsample(feat)
        else:
            y = self.conv_before_upsample(feat)
            y = self.lrelu(self.conv_up1(F.interpolate(y, scale_factor=2, mode="nearest")))
            if self.scale == 4:
                y = self.lrelu(self.conv_up2(F.interpolate(y, scale_factor=2, mode="nearest")))
            out = self.conv_last(self.lrelu(self.conv_hr(y)))
        return swin_output(self, out, mean, h, w)


def _options(variant: str, **given: Any) -> dict[str, Any]:
    if variant not in PRESETS:
        raise ValueError(f"variant must be one of {VARIANTS}, got {variant!r}")
    return {**PRESETS[variant], **{k: v for k, v in given.items() if v is not None}}


def swinir(scale: int = 4, variant: str = "classical", channels: int = 3, embed_dim: int | None = None,
           depths: Sequence[int] | None = None, num_heads: Sequence[int] | None = None, window_size: int | None = None,
           mlp_ratio: float | None = None, upsampler: str | None = None, resi_connection: str | None = None,
           num_feat: int = 64, img_range: float = 1.0) -> SwinIR:
    """SwinIR. ``variant`` picks the published configuration (``classical`` = SwinIR-M,
    ``lightweight`` = SwinIR-S, ``real``, ``real-large`` = SwinIR-L); the other options
    override it (small ``embed_dim``/``depths`` for tests)."""
    o = _options(variant, embed_dim=embed_dim, depths=depths, num_heads=num_heads, window_size=window_size,
                 mlp_ratio=mlp_ratio, upsampler=upsampler, resi_connection=resi_connection)
    check_counts("swinir", channels=channels, embed_dim=o["embed_dim"], window_size=o["window_size"], num_feat=num_feat)
    return SwinIR(scale, channels, o["embed_dim"], o["depths"], o["num_heads"], o["window_size"], float(o["mlp_ratio"]),
                  o["upsampler"], o["resi_connection"], num_feat, img_range)


# -- geometry -------------------------------------------------------------------------------------

def _ops(scale: int, o: Mapping[str, Any]) -> list[tuple[Any, ...]]:
    ws = int(o["window_size"])
    resi = [("conv", 3)] * (1 if o["resi_connection"] == "1conv" else 2)  # 3conv: 3x3, 1x1, 3x3
    ops: list[tuple[Any, ...]] = [("conv", 3)]
    for depth in as_tuple(o["depths"], "depths"):
        ops += [("window", ws, 0 if j % 2 == 0 else ws // 2, 0, 0) for j in range(depth)] + resi
    ops += resi
    if o["upsampler"] == "pixelshuffle":
        ops.append(("conv", 3))
        for f in _stages(scale):
            ops += [("conv", 3), ("up", f)]
        ops.append(("conv", 3))
    elif o["upsampler"] == "pixelshuffledirect":
        ops += [("conv", 3), ("up", scale)]
    else:
        ops.append(("conv", 3))
        for _ in range(int(math.log2(scale))):
            ops += [("up", 2), ("conv", 3)]
        ops += [("conv", 3), ("conv", 3)]
    return ops


def receptive_field(scale: int = 4, variant: str = "classical", **kwargs: Any) -> int:
    """Exact radius in input pixels (see the module docstring)."""
    o = _options(variant, **{k: kwargs.get(k) for k in ("depths", "window_size", "upsampler", "resi_connection")})
    return _rf.radius(_ops(scale, o), scale)


def size_multiple(scale: int = 4, variant: str = "classical", window_size: int | None = None, **_: Any) -> int:
    """The window size: inputs are padded to it and tiles start on its grid."""
    return int(window_size or PRESETS[variant]["window_size"])


# exact: no global operation, and tiles start on the window grid
geometry = _rf.geometry_hook(receptive_field, size_multiple)


# -- published layout -----------------------------------------------------------------------------

def _infer(sd: Mapping[str, Any]) -> tuple[int, dict[str, Any]]:
    kwargs = swin_layout(sd)
    channels = kwargs["channels"]
    kwargs["resi_connection"] = "3conv" if "conv_after_body.0.weight" in sd else "1conv"
    if "conv_up1.weight" in sd:
        kwargs["upsampler"] = "nearest+conv"
        scale = 4 if "conv_up2.weight" in sd else 2
        kwargs["num_feat"] = shape(sd, "conv_up1.weight")[0]
    elif "conv_before_upsample.0.weight" in sd:
        kwargs["upsampler"] = "pixelshuffle"
        feat = shape(sd, "conv_before_upsample.0.weight")[0]
        kwargs["num_feat"] = feat
        scale = shuffle_scale(sd, feat, "upsample.0.weight", r"upsample\.(\d+)\.weight")
    else:
        kwargs["upsampler"] = "pixelshuffledirect"
        scale = direct_scale(sd, "upsample.0.weight", channels)
    return scale, kwargs


LAYOUTS = (
    Layout("swinir-official", _infer,
           ignore=(r"layers\.\d+\.residual_group\.blocks\.\d+\.attn\.relative_position_index",
                   r"layers\.\d+\.residual_group\.blocks\.\d+\.attn_mask"),
           description="JingyunLiang/SwinIR network_swinir.py: conv_first, layers.{i}.residual_group.blocks.{j}, "
           "conv_after_body, upsample / conv_up1,2 (relative_position_index and attn_mask buffers ignored)"),
)


def load_state_dict(sd: Mapping[str, Any], scale: int | None = None, **overrides: Any):
    """``(module, scale, kwargs)`` from a SwinIR release file (``params``/``params_ema``
    wrappers removed by the caller or here): embed dim, depths, heads, window, MLP ratio,
    residual convolution, upsampler and scale all come from the shapes."""
    overrides.pop("variant", None)  # the shapes say everything a preset would
    return load_with_layouts(sd, LAYOUTS, swinir, "swinir", 4, scale, overrides)

