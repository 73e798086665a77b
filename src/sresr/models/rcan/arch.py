"""RCAN (Zhang et al., ECCV 2018): residual-in-residual groups of residual channel-attention blocks.

Key names follow BasicSR's RCAN (``conv_first``, ``body.{g}.residual_group.{b}.rcab.{0,2}``,
``rcab.3.attention.{1,3}``, ``body.{g}.conv``, ``conv_after_body``, ``upsample``, ``conv_last``);
the official release layout (yulunzhang/RCAN, EDSR-PyTorch codebase: ``head.0``,
``body.{g}.body.{b}.body.{0,2}``, ``body.3.conv_du.{0,2}``, ``body.{g}.body.{nb}``, ``body.{ng}``,
``tail.0.{0,2,..}``, ``tail.1``, fixed ``sub_mean``/``add_mean``) is mapped onto them. Inputs in
[0, 1]; internally ``(x - DIV2K mean) * 255`` like both reference implementations.

Paper configuration (default): 10 groups of 20 blocks, 64 features, reduction 16.

Tiling: every convolution is local, but each block's channel attention scales its features by a
function of their *global* average (``AdaptiveAvgPool2d(1)``), so a tile sees different
attention weights than the whole image: tiling is not exact (``Geometry.exact`` is False) and is
NOT within 1/255 in general. The default pad is the receptive field of the convolutions (414
input pixels for the paper configuration); what remains is the channel-attention term. Measured
with random weights (tests/test_arch_rcan_span_dat.py, benchmarks/bench_arch.py, Set5 crops):
2 groups x 2 blocks, 16 features: below 1/255; 2 groups x 4 blocks, 32 features: up to 4.4/255,
with 32-pixel and with 256-pixel tiles alike. Random weights may exaggerate this (trained
attention is typically less sensitive to the pooled means) but nothing bounds it: for an exact
result run whole images (``--tile 0``). With the paper configuration the CPU default tile
(2 x 414 pixels) already runs images up to about 1650 pixels whole, and on GPUs the memory-budget
tile is the whole image whenever it fits.
"""

from __future__ import annotations

import re
from typing import Any, Mapping

import torch
from torch import nn

from .. import _rf, check_counts
from .._layouts import Layout, count, load_with_layouts, shape
from .._meanshift import EDSRLike, official_img_range
from .._upsample import shuffle_scale, shuffle_stages


def _stages(scale: int) -> list[int]:
    return shuffle_stages(scale, "RCAN")


class ChannelAttention(nn.Module):
    def __init__(self, features: int, reduction: int):
        super().__init__()
        self.attention = nn.Sequential(
            nn.AdaptiveAvgPool2d(1), nn.Conv2d(features, features // reduction, 1), nn.ReLU(inplace=True),
            nn.Conv2d(features // reduction, features, 1), nn.Sigmoid())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.attention(x)


class RCAB(nn.Module):
    def __init__(self, features: int, reduction: int, res_scale: float = 1.0):
        super().__init__()
        self.res_scale = res_scale
        self.rcab = nn.Sequential(nn.Conv2d(features, features, 3, 1, 1), nn.ReLU(inplace=True),
                                  nn.Conv2d(features, features, 3, 1, 1), ChannelAttention(features, reduction))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.rcab(x) * self.res_scale


class ResidualGroup(nn.Module):
    def __init__(self, features: int, blocks: int, reduction: int, res_scale: float = 1.0):
        super().__init__()
        self.residual_group = nn.Sequential(*[RCAB(features, reduction, res_scale) for _ in range(blocks)])
        self.conv = nn.Conv2d(features, features, 3, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv(self.residual_group(x))


class RCAN(EDSRLike):
    def __init__(self, scale: int = 4, channels: int = 3, features: int = 64, groups: int = 10, blocks: int = 20,
                 reduction: int = 16, res_scale: float = 1.0, img_range: float = 255.0):
        super().__init__(channels, features, _stages(scale),
                         lambda: nn.Sequential(*[ResidualGroup(features, blocks, reduction, res_scale)
                                                 for _ in range(groups)]), img_range)


def rcan(scale: int = 4, channels: int = 3, features: int = 64, groups: int = 10, blocks: int = 20,
         reduction: int = 16, res_scale: float = 1.0, img_range: float = 255.0) -> RCAN:
    """RCAN; the paper's network is the default (10 groups x 20 blocks, 64 features, reduction 16)."""
    check_counts("rcan", channels=channels, features=features, groups=groups, blocks=blocks, reduction=reduction)
    if features // reduction < 1:
        raise ValueError(f"rcan: features ({features}) must be at least reduction ({reduction})")
    return RCAN(scale, channels, features, groups, blocks, reduction, res_scale, img_range)


def receptive_field(scale: int = 4, groups: int = 10, blocks: int = 20, **_: Any) -> int:
    """Radius of the convolutions alone (the channel attention's global pooling is left out)."""
    ops: list[tuple[Any, ...]] = [("conv", 3)] * (1 + groups * (2 * blocks + 1) + 1)
    for f in _stages(scale):
        ops += [("conv", 3), ("up", f)]
    return _rf.radius(ops + [("conv", 3)], scale)


# not exact: the channel attention pools over the whole input (see the module docstring)
geometry = _rf.geometry_hook(receptive_field, exact=False)


# -- published layouts -------------------------------------------------------------------------

def _infer_basicsr(sd: Mapping[str, Any]) -> tuple[int, dict[str, Any]]:
    features, ch, _, _ = shape(sd, "conv_first.weight")
    scale = shuffle_scale(sd, features, "upsample.0.weight", r"upsample\.(\d+)\.weight")
    groups = count(sd, r"body\.(\d+)\.conv\.weight")
    blocks = count(sd, r"body\.0\.residual_group\.(\d+)\.rcab\.0\.weight")
    squeezed = shape(sd, "body.0.residual_group.0.rcab.3.attention.1.weight")[0]
    return scale, {"channels": ch, "features": features, "groups": groups, "blocks": blocks,
                   "reduction": features // squeezed}


def _infer_official(sd: Mapping[str, Any]) -> tuple[int, dict[str, Any]]:
    features, ch, _, _ = shape(sd, "head.0.weight")
    scale = shuffle_scale(sd, features, "tail.0.0.weight", r"tail\.0\.(\d+)\.weight")
    # body.{g} for g < groups is a group; body.{groups} is the conv after the body
    groups = count(sd, r"body\.(\d+)\.body\.0\.body\.0\.weight")
    blocks = count(sd, r"body\.0\.body\.(\d+)\.body\.0\.weight")
    squeezed = shape(sd, "body.0.body.0.body.3.conv_du.0.weight")[0]
    return scale, {"channels": ch, "features": features, "groups": groups, "blocks": blocks,
                   "reduction": features // squeezed, **official_img_range(sd, ch)}


def _rename_official(key: str, scale: int, kwargs: Mapping[str, Any]) -> str:
    groups, blocks = int(kwargs.get("groups", 10)), int(kwargs.get("blocks", 20))
    if key.startswith("conv_first."):
        return "head.0." + key.split(".", 1)[1]
    if m := re.fullmatch(r"body\.(\d+)\.residual_group\.(\d+)\.rcab\.([02])\.(\w+)", key):
        return f"body.{m.group(1)}.body.{m.group(2)}.body.{m.group(3)}.{m.group(4)}"
    if m := re.fullmatch(r"body\.(\d+)\.residual_group\.(\d+)\.rcab\.3\.attention\.([13])\.(\w+)", key):
        du = 0 if m.group(3) == "1" else 2
        return f"body.{m.group(1)}.body.{m.group(2)}.body.3.conv_du.{du}.{m.group(4)}"
    if m := re.fullmatch(r"body\.(\d+)\.conv\.(\w+)", key):
        return f"body.{m.group(1)}.body.{blocks}.{m.group(2)}"
    if key.startswith("conv_after_body."):
        return f"body.{groups}." + key.split(".", 1)[1]
    if m := re.fullmatch(r"upsample\.(\d+)\.(\w+)", key):
        return f"tail.0.{m.group(1)}.{m.group(2)}"
    if key.startswith("conv_last."):
        return "tail.1." + key.split(".", 1)[1]
    return key


LAYOUTS = (
    Layout("rcan-basicsr", _infer_basicsr,
           description="BasicSR: conv_first, body.{g}.residual_group.{b}.rcab.{0,2,3.attention.{1,3}}, body.{g}.conv, "
           "conv_after_body, upsample, conv_last"),
    Layout("rcan-official", _infer_official, _rename_official, ignore=(r"(sub|add)_mean\.(weight|bias)",),
           description="yulunzhang/RCAN (EDSR-PyTorch): head.0, body.{g}.body.{b}.body.{0,2,3.conv_du.{0,2}}, "
           "body.{g}.body.{nb}, body.{ng}, tail.0.*, tail.1"),
)


def load_state_dict(sd: Mapping[str, Any], scale: int | None = None, **overrides: Any):
    """``(module, scale, kwargs)``: groups, blocks, features, reduction and scale from the shapes;
    ``res_scale`` (1 in every published RCAN) is not in the weights: override with ``res_scale=``."""
    return load_with_layouts(sd, LAYOUTS, rcan, "rcan", 4, scale, overrides)
