"""SPAN, Swift Parameter-free Attention Network (Wan et al., CVPRW 2024; NTIRE 2024 ESR winner).

Key names follow the authors' code (hongyuanyu/SPAN) and spandrel: ``conv_1``, ``block_1`` ..
``block_6`` (each ``c1_r``/``c2_r``/``c3_r``), ``conv_cat``, ``conv_2``, ``upsampler.0``; every
``Conv3XC`` holds ``sk`` (1x1), ``conv.{0,1,2}`` (1x1 -> 3x3 -> 1x1, twice the channels inside) and
``eval_conv``, the single 3x3 convolution they collapse to. Files trained without input
normalisation carry a ``no_norm`` buffer (spandrel's convention): ``norm=False``.

Inference follows the authors' eval path: each Conv3XC runs as one 3x3 convolution whose kernel
and bias are computed from ``sk`` and ``conv`` (the stored ``eval_conv`` is refreshed on
``.eval()`` and kept only so that published files load strictly; a stale one in a file is never
used). :func:`sresr.optimize.reparameterize` replaces each Conv3XC by that plain ``nn.Conv2d`` at
load time (exact up to float rounding). The *training* path (authors' code) zero-pads the input
before the 1x1 convolutions, whose biases then reach the one-pixel border: train-mode and eval-mode
outputs differ there, as in the original.

Input: ``(x - DIV2K mean) * 255`` (unless ``norm=False``); the output is *not* shifted back: the
network learned to output [0, 1] directly, as in the authors' code.

Tiling: a pure CNN (the attention is ``sigmoid`` of local features), 20 3x3 convolutions on the
path to the 3x3 upsampler convolution: receptive field 21 input pixels, exact tiling.
"""

from __future__ import annotations

from typing import Any, Mapping

import torch
import torch.nn.functional as F
from torch import nn

from .. import _rf, check_counts
from .._layouts import Layout, load_with_layouts, shape
from .._meanshift import MeanShifted
from .._upsample import direct_scale


class Conv3XC(nn.Module):
    """``sk`` (1x1) + ``conv`` (1x1 -> 3x3 -> 1x1 with ``gain`` times the channels), which is one
    3x3 convolution at inference (:meth:`fused`)."""

    def __init__(self, c_in: int, c_out: int, gain: int = 2):
        super().__init__()
        self.sk = nn.Conv2d(c_in, c_out, 1)
        self.conv = nn.Sequential(nn.Conv2d(c_in, c_in * gain, 1), nn.Conv2d(c_in * gain, c_out * gain, 3),
                                  nn.Conv2d(c_out * gain, c_out, 1))
        self.eval_conv = nn.Conv2d(c_in, c_out, 3, padding=1)
        self.eval_conv.weight.requires_grad_(False)
        self.eval_conv.bias.requires_grad_(False)  # type: ignore[union-attr]

    def fused(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(weight, bias) of the one 3x3 convolution equal to the eval path (computed in at least
        fp32, returned in the weights' dtype)."""
        dt = self.sk.weight.dtype
        work = torch.float64 if dt == torch.float64 else torch.float32
        w1, w2, w3 = (c.weight.detach().to(work) for c in self.conv)
        b1, b2, b3 = (c.bias.detach().to(work) for c in self.conv)  # type: ignore[union-attr]
        # (1x1 then 3x3): k[o, i] = sum_m w2[o, m] * w1[m, i]; bias: w2 summed over taps times b1
        k = torch.einsum("omyx,mi->oiyx", w2, w1[:, :, 0, 0])
        b = torch.einsum("omyx,m->o", w2, b1) + b2
        # then 1x1: w3 (out, mid)
        k = torch.einsum("pm,miyx->piyx", w3[:, :, 0, 0], k)
        b = w3[:, :, 0, 0] @ b + b3
        k = k + F.pad(self.sk.weight.detach().to(work), (1, 1, 1, 1))
        b = b + self.sk.bias.detach().to(work)  # type: ignore[union-attr]
        return k.to(dt), b.to(dt)

    def reparameterized(self) -> nn.Conv2d:
        """The plain 3x3 ``nn.Conv2d`` this block computes at inference (for :mod:`sresr.optimize`)."""
        w, b = self.fused()
        conv = nn.Conv2d(w.shape[1], w.shape[0], 3, padding=1, device=w.device, dtype=w.dtype)
        conv.weight = nn.Parameter(w, requires_grad=False)
        conv.bias = nn.Parameter(b, requires_grad=False)
        return conv

    def train(self, mode: bool = True) -> Conv3XC:
        super().train(mode)
        if not mode and self.sk.weight.device.type != "meta":
            with torch.no_grad():  # keep the stored eval_conv what the eval path computes
                w, b = self.fused()
                self.eval_conv.weight.copy_(w)
                self.eval_conv.bias.copy_(b)  # type: ignore[union-attr]
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:  # the authors' training path
            return self.conv(F.pad(x, (1, 1, 1, 1))) + self.sk(x)
        w, b = self.fused()
        return F.conv2d(x, w, b, padding=1)


class SPAB(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.c1_r = Conv3XC(channels, channels)
        self.c2_r = Conv3XC(channels, channels)
        self.c3_r = Conv3XC(channels, channels)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out1 = self.c1_r(x)
        out3 = self.c3_r(F.silu(self.c2_r(F.silu(out1))))
        att = torch.sigmoid(out3) - 0.5
        return (out3 + x) * att, out1


class SPAN(MeanShifted):
    def __init__(self, scale: int = 4, channels: int = 3, features: int = 48, norm: bool = True,
                 img_range: float = 255.0):
        super().__init__()
        self.scale = scale
        self.norm = norm
        self.img_range = img_range
        self._register_mean(channels, 0.5)
        if not norm:  # spandrel's marker of weights trained without normalisation
            self.register_buffer("no_norm", torch.zeros(1))
        self.conv_1 = Conv3XC(channels, features)
        for i in range(1, 7):
            self.add_module(f"block_{i}", SPAB(features))
        self.conv_cat = nn.Conv2d(features * 4, features, 1)
        self.conv_2 = Conv3XC(features, features)
        self.upsampler = nn.Sequential(nn.Conv2d(features, channels * scale * scale, 3, 1, 1), nn.PixelShuffle(scale))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        dtype = self.conv_cat.weight.dtype
        work = self.work_dtype(dtype)
        if self.norm:  # in fp32 whatever the weights' dtype (the 0..255 range is where bf16 rounds most)
            x = (x.to(work) - self.mean.to(work)) * self.img_range
        x = x.to(dtype)
        feat = self.conv_1(x)
        b1, _ = self.block_1(feat)
        b2, _ = self.block_2(b1)
        b3, _ = self.block_3(b2)
        b4, _ = self.block_4(b3)
        b5, _ = self.block_5(b4)
        b6, b5_2 = self.block_6(b5)
        out = self.conv_cat(torch.cat([feat, self.conv_2(b6), b1, b5_2], 1))
        return self.upsampler(out).to(work)


def span(scale: int = 4, channels: int = 3, features: int = 48, norm: bool = True, img_range: float = 255.0) -> SPAN:
    """SPAN with ``features`` channels (48 in the paper; 52 in some releases)."""
    check_counts("span", channels=channels, features=features)
    return SPAN(scale, channels, features, bool(norm), img_range)


def receptive_field(scale: int = 4, **_: Any) -> int:
    # conv_1, 6 blocks x 3, conv_2: 20 3x3 convolutions (conv_cat is 1x1); the upsampler's 3x3, shuffle
    return _rf.radius([("conv", 3)] * 20 + [("conv", 1), ("conv", 3), ("up", scale)], scale)


geometry = _rf.geometry_hook(receptive_field)


# -- published layout --------------------------------------------------------------------------

def _infer(sd: Mapping[str, Any]) -> tuple[int, dict[str, Any]]:
    features, ch, _, _ = shape(sd, "conv_1.sk.weight")
    r = direct_scale(sd, "upsampler.0.weight", ch)
    kwargs: dict[str, Any] = {"channels": ch, "features": features}
    if "no_norm" in sd:
        kwargs["norm"] = False
    return r, kwargs


LAYOUTS = (
    Layout("span", _infer, description="hongyuanyu/SPAN and spandrel: conv_1, block_{1..6}.c{1,2,3}_r "
           "(sk, conv.{0,1,2}, eval_conv), conv_cat, conv_2, upsampler.0 (+ no_norm)"),
)


def load_state_dict(sd: Mapping[str, Any], scale: int | None = None, **overrides: Any):
    """``(module, scale, kwargs)``: features and scale from the shapes, ``norm=False`` when the file
    carries ``no_norm``."""
    return load_with_layouts(sd, LAYOUTS, span, "span", 4, scale, overrides)
