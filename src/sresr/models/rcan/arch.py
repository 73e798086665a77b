"""RCAN (Zhang et al., ECCV 2018): residual-in-residual groups of residual channel-attention blocks.

Key names follow BasicSR's RCAN (``conv_first``, ``body.{g}.residual_group.{b}.rcab.{0,2}``,
``rcab.3.attention.{1,3}``, ``body.{g}.conv``, ``conv_after_body``, ``upsample``, ``conv_last``);
the official release layout (yulunzhang/RCAN, EDSR-PyTorch codebase: ``head.0``,
``body.{g}.body.{b}.body.{0,2}``, ``body.3.conv_du.{0,2}``, ``body.{g}.body.{nb}``, ``body.{ng}``,
``tail.0.{0,2,..}``, ``tail.1``, fixed ``sub_mean``/``add_mean``) is mapped onto them. Inputs in
[0, 1]; internally ``(x - DIV2K mean) * 255`` like both reference implementations.

Paper configuration (default): 10 groups of 20 blocks, 64 features, reduction 16.

Tiling: every convolution is local, but each block's channel attention scales its features by a
function of their *global* average (``AdaptiveAvgPool2d(1)``), so a window cut from the image sees
different attention weights than the whole image: cut into windows, RCAN is not exact
(``Geometry.exact`` is False; measured with random weights in benchmarks/bench_arch.py: up to 4.4
levels of 8 bits for 2 groups x 4 blocks, whatever the pad). :meth:`RCAN.forward_tiles` tiles it
exactly instead, and is what the engine runs: the convolutions (an RCAB's two, the group and body
convolutions, the upsampler) over tiles with their own small radius (:attr:`RCAN.tile_radius`, 2
input pixels), each channel attention over the whole feature map, which stays whole (four maps of
64 channels at the input's size: 1 KiB per input pixel in fp32). Result: the whole-image output up
to float rounding at any size, less memory than one whole-image pass (the x4 upsampler's
activations are tiled) and none of the receptive field's overlap (414 pixels each side for the
paper configuration). Measured in benchmarks/bench_rcan_tiles.py.
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
        self.scale = scale
        #: the widest local piece of :meth:`forward_tiles` (input pixels): an RCAB's two convolutions,
        #: or the upsampler (what the engine pads its tiles by for this network)
        self.tile_radius = max(2, _tail_radius(scale))

    def forward_tiles(self, x: torch.Tensor, tile: int) -> torch.Tensor:
        """:meth:`forward` computed with every convolution run over tiles of ``tile`` input pixels
        and each channel attention over the *whole* feature map: the same result as one
        whole-image pass (up to float rounding), at any image size, with the network's working
        memory bounded by the tile. The feature maps themselves stay whole, on ``x``'s device
        (four maps of ``features`` channels at the input's size: 1 KiB per input pixel in fp32
        with 64 features, half that in fp16/bf16); the upsampler, where the output's size makes the
        memory, is tiled too. This is how the engine tiles RCAN exactly."""
        from sresr.tiling import plan_tiles, run_tiled

        n, _, h, w = x.shape
        dtype = self.conv_first.weight.dtype
        work = self.work_dtype(dtype)
        fmt = torch.channels_last if x.dim() == 4 and x.is_contiguous(memory_format=torch.channels_last) \
            and not x.is_contiguous() else torch.contiguous_format

        def local(fn: Any, m: torch.Tensor, radius: int, channels: int, s: int = 1) -> torch.Tensor:
            out = torch.empty((n, channels, h * s, w * s), dtype=m.dtype, device=m.device, memory_format=fmt)
            return run_tiled(fn, m, plan_tiles(h, w, tile, radius), s, canvas=out)  # type: ignore[return-value]

        mean = self.mean.to(x.device, work)
        c = self.conv_first.out_channels
        feat = local(self.conv_first, ((x.to(work) - mean) * self.img_range).to(dtype), 1, c)
        h_in = feat
        for group in self.body:
            assert isinstance(group, ResidualGroup)
            cur = h_in.clone(memory_format=fmt)
            for block in group.residual_group:
                assert isinstance(block, RCAB)
                body, attention = block.rcab[:3], block.rcab[3].attention
                pre = local(body, cur, 2, c)
                pooled = pre.sum(dim=(2, 3), keepdim=True, dtype=torch.float32).div_(h * w).to(pre.dtype)
                cur.add_(pre.mul_(attention[1:](pooled) * block.res_scale))
                del pre
            out = local(group.conv, cur, 1, c)
            del cur
            h_in = out.add_(h_in)
        body_out = local(self.conv_after_body, h_in, 1, c).add_(feat)
        del h_in, feat

        def tail(t: torch.Tensor) -> torch.Tensor:
            return self.conv_last(self.upsample(t))

        y = local(tail, body_out, _tail_radius(self.scale), self.conv_last.out_channels, self.scale)
        return y.to(work) / self.img_range + mean


def rcan(scale: int = 4, channels: int = 3, features: int = 64, groups: int = 10, blocks: int = 20,
         reduction: int = 16, res_scale: float = 1.0, img_range: float = 255.0) -> RCAN:
    """RCAN; the paper's network is the default (10 groups x 20 blocks, 64 features, reduction 16)."""
    check_counts("rcan", channels=channels, features=features, groups=groups, blocks=blocks, reduction=reduction)
    if features // reduction < 1:
        raise ValueError(f"rcan: features ({features}) must be at least reduction ({reduction})")
    return RCAN(scale, channels, features, groups, blocks, reduction, res_scale, img_range)


def _tail_radius(scale: int) -> int:
    """Radius (input pixels) of the upsampler and the last convolution."""
    ops: list[tuple[Any, ...]] = []
    for f in _stages(scale):
        ops += [("conv", 3), ("up", f)]
    return _rf.radius(ops + [("conv", 3)], scale)


def receptive_field(scale: int = 4, groups: int = 10, blocks: int = 20, **_: Any) -> int:
    """Radius of the convolutions alone (the channel attention's global pooling is left out)."""
    ops: list[tuple[Any, ...]] = [("conv", 3)] * (1 + groups * (2 * blocks + 1) + 1)
    for f in _stages(scale):
        ops += [("conv", 3), ("up", f)]
    return _rf.radius(ops + [("conv", 3)], scale)


# windows are not exact (the channel attention pools over the whole input): RCAN.forward_tiles is
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
