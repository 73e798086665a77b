"""SRResNet, the generator of SRGAN (Ledig et al., CVPR 2017), with ablation switches, and the
BasicSR "MSRResNet" layout (no batch norm, LeakyReLU, bilinear global residual).

Paper network (``variant="paper"``): 9x9 conv + PReLU; ``blocks`` residual blocks
(conv-norm-PReLU-conv-norm, + input); conv-norm; + the first features (``global_skip``);
upsampling stages (conv to 4x features, pixel shuffle x2, PReLU; one x3 stage for scale 3) or,
with ``upsampler="bicubic"``, bicubic x2 interpolation + conv + PReLU per stage; 9x9 conv to RGB.
``norm``: ``"bn"`` (paper), ``"in"`` (instance norm; depends on the whole image, so tiled output
differs from untiled) or ``"none"``. Our key names: ``head``, ``body.{i}.conv1/norm1/act/conv2/norm2``,
``conv_body``, ``norm_body``, ``upsample.{i}.conv/act``, ``conv_last``.
"""

from __future__ import annotations

from typing import Any, Mapping

import torch
import torch.nn.functional as F
from torch import nn

from .. import _rf, check_counts
from .._layouts import Layout, count, load_with_layouts, shape
from .._upsample import shuffle_stages

NORMS = ("bn", "in", "none")
UPSAMPLERS = ("pixelshuffle", "bicubic")
VARIANTS = ("paper", "msrresnet")


def _stages(scale: int) -> list[int]:
    return shuffle_stages(scale, "SRResNet", allow_one=True)


def _norm(kind: str, features: int) -> nn.Module:
    if kind == "bn":
        return nn.BatchNorm2d(features)
    if kind == "in":
        return nn.InstanceNorm2d(features, affine=True)
    return nn.Identity()


class ResidualBlock(nn.Module):
    def __init__(self, features: int, norm: str):
        super().__init__()
        self.conv1 = nn.Conv2d(features, features, 3, padding=1)
        self.norm1 = _norm(norm, features)
        self.act = nn.PReLU()
        self.conv2 = nn.Conv2d(features, features, 3, padding=1)
        self.norm2 = _norm(norm, features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # in place: the residual branch ends in a fresh tensor that its backward does not need
        return self.norm2(self.conv2(self.act(self.norm1(self.conv1(x))))).add_(x)


class UpsampleStage(nn.Module):
    def __init__(self, features: int, factor: int, mode: str):
        super().__init__()
        self.factor, self.mode = factor, mode
        out = features * factor * factor if mode == "pixelshuffle" else features
        self.conv = nn.Conv2d(features, out, 3, padding=1)
        self.act = nn.PReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.mode == "pixelshuffle":
            return self.act(F.pixel_shuffle(self.conv(x), self.factor))
        x = F.interpolate(x, scale_factor=self.factor, mode="bicubic", align_corners=False)
        return self.act(self.conv(x))


class SRResNet(nn.Module):
    def __init__(self, scale: int = 4, channels: int = 3, features: int = 64, blocks: int = 16,
                 norm: str = "bn", global_skip: bool = True, upsampler: str = "pixelshuffle"):
        super().__init__()
        if norm not in NORMS:
            raise ValueError(f"norm must be one of {NORMS}, got {norm!r}")
        if upsampler not in UPSAMPLERS:
            raise ValueError(f"upsampler must be one of {UPSAMPLERS}, got {upsampler!r}")
        self.global_skip = global_skip
        self.head = nn.Conv2d(channels, features, 9, padding=4)
        self.head_act = nn.PReLU()
        self.body = nn.Sequential(*[ResidualBlock(features, norm) for _ in range(blocks)])
        self.conv_body = nn.Conv2d(features, features, 3, padding=1)
        self.norm_body = _norm(norm, features)
        self.upsample = nn.Sequential(*[UpsampleStage(features, f, upsampler) for f in _stages(scale)])
        self.conv_last = nn.Conv2d(features, channels, 9, padding=4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feat = self.head_act(self.head(x))
        out = self.norm_body(self.conv_body(self.body(feat)))
        if self.global_skip:
            out = out.add_(feat)
        return self.conv_last(self.upsample(out))


class MSRResNet(nn.Module):
    """BasicSR's MSRResNet (key names as published). ``upsample_act=False``: OpenMMLab's
    (mmediting) MSRResNet, the same network without the leaky ReLU after each pixel shuffle."""

    def __init__(self, scale: int = 4, channels: int = 3, features: int = 64, blocks: int = 16,
                 upsample_act: bool = True):
        super().__init__()
        self.upsample_act = upsample_act
        if scale not in (2, 3, 4):
            raise ValueError(f"MSRResNet supports scales 2, 3 and 4, not {scale}")
        self.scale = scale
        self.conv_first = nn.Conv2d(channels, features, 3, padding=1)
        self.body = nn.Sequential(*[_PlainBlock(features) for _ in range(blocks)])
        factor = 2 if scale == 4 else scale
        self.upconv1 = nn.Conv2d(features, features * factor * factor, 3, padding=1)
        if scale == 4:
            self.upconv2 = nn.Conv2d(features, features * 4, 3, padding=1)
        self.factor = factor
        self.conv_hr = nn.Conv2d(features, features, 3, padding=1)
        self.conv_last = nn.Conv2d(features, channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        act = (lambda t: F.leaky_relu(t, 0.1)) if self.upsample_act else (lambda t: t)
        out = self.body(F.leaky_relu(self.conv_first(x), 0.1))
        out = act(F.pixel_shuffle(self.upconv1(out), self.factor))
        if self.scale == 4:
            out = act(F.pixel_shuffle(self.upconv2(out), 2))
        out = self.conv_last(F.leaky_relu(self.conv_hr(out), 0.1))
        return out + F.interpolate(x, scale_factor=self.scale, mode="bilinear", align_corners=False)


class _PlainBlock(nn.Module):
    def __init__(self, features: int):
        super().__init__()
        self.conv1 = nn.Conv2d(features, features, 3, padding=1)
        self.conv2 = nn.Conv2d(features, features, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(F.relu(self.conv1(x)))


def srresnet(scale: int = 4, variant: str = "paper", channels: int = 3, features: int = 64, blocks: int = 16,
             norm: str = "bn", global_skip: bool = True, upsampler: str = "pixelshuffle",
             upsample_act: bool = True) -> nn.Module:
    """SRResNet. ``variant="paper"`` (default; ablation switches ``blocks``, ``norm``,
    ``global_skip``, ``upsampler``) or ``variant="msrresnet"`` (BasicSR MSRResNet; only
    ``channels``, ``features``, ``blocks`` and ``upsample_act`` (False: OpenMMLab's MSRResNet) apply)."""
    check_counts("srresnet", channels=channels, features=features, blocks=blocks)
    if variant == "paper":
        return SRResNet(scale, channels, features, blocks, norm, global_skip, upsampler)
    if variant == "msrresnet":
        if (norm, global_skip, upsampler) != ("bn", True, "pixelshuffle"):
            raise ValueError("norm, global_skip and upsampler do not apply to variant='msrresnet'")
        return MSRResNet(scale, channels, features, blocks, upsample_act)
    if not upsample_act:
        raise ValueError("upsample_act applies to variant='msrresnet' only")
    raise ValueError(f"variant must be one of {VARIANTS}, got {variant!r}")


def receptive_field(scale: int = 4, variant: str = "paper", blocks: int = 16, upsampler: str = "pixelshuffle",
                    **_: Any) -> int:
    """Exact radius in LR pixels (for ``norm="in"`` the output depends on the whole image)."""
    if variant == "msrresnet":
        stages = [2, 2] if scale == 4 else [scale]
        main = [("conv", 3)] + [("conv", 3)] * (2 * blocks)
        for f in stages:
            main += [("conv", 3), ("up", f)]
        main += [("conv", 3), ("conv", 3)]
        return _rf.radius([("branch", main, [("bilinear", scale)])], scale)
    ops: list[tuple[Any, ...]] = [("conv", 9)] + [("conv", 3)] * (2 * blocks + 1)
    for f in _stages(scale):
        ops += [("conv", 3), ("up", f)] if upsampler == "pixelshuffle" else [("bicubic", f), ("conv", 3)]
    ops += [("conv", 9)]
    return _rf.radius(ops, scale)


geometry = _rf.geometry_hook(receptive_field)


def _infer_msr(sd: Mapping[str, Any]) -> tuple[int, dict[str, Any]]:
    features, ch, _, _ = shape(sd, "conv_first.weight")
    up = shape(sd, "upconv1.weight")[0] // features
    scale = 4 if "upconv2.weight" in sd else {4: 2, 9: 3}[up]
    blocks = count(sd, r"body\.(\d+)\.conv1\.weight")
    return scale, {"variant": "msrresnet", "channels": ch, "features": features, "blocks": blocks}


_MM_RENAMES = (("body.", "trunk_net."), ("upconv1.", "upsample1.upsample_conv."), ("upconv2.", "upsample2.upsample_conv."))


def _mm_key(key: str, scale: int, kwargs: Mapping[str, Any]) -> str:
    for ours, theirs in _MM_RENAMES:
        if key.startswith(ours):
            return theirs + key[len(ours):]
    return key


def _infer_mm(sd: Mapping[str, Any]) -> tuple[int, dict[str, Any]]:
    features, ch, _, _ = shape(sd, "conv_first.weight")
    up = shape(sd, "upsample1.upsample_conv.weight")[0] // features
    scale = 4 if "upsample2.upsample_conv.weight" in sd else {4: 2, 9: 3}[up]
    blocks = count(sd, r"trunk_net\.(\d+)\.conv1\.weight")
    return scale, {"variant": "msrresnet", "channels": ch, "features": features, "blocks": blocks,
                   "upsample_act": False}


def _infer_native(sd: Mapping[str, Any]) -> tuple[int | None, dict[str, Any]]:
    features, ch, _, _ = shape(sd, "head.weight")
    blocks = count(sd, r"body\.(\d+)\.conv1\.weight")
    stages = count(sd, r"upsample\.(\d+)\.conv\.weight")
    first = shape(sd, "upsample.0.conv.weight")[0] // features if stages else 1
    upsampler = "bicubic" if stages and first == 1 else "pixelshuffle"
    scale: int | None = 1 if stages == 0 else (3 if first == 9 else 2 ** stages)
    if upsampler == "bicubic" and stages == 1:
        scale = None  # one bicubic stage: x2 or x3, the weights cannot tell
    if "body.0.norm1.running_mean" in sd:
        norm = "bn"
    elif "body.0.norm1.weight" in sd:
        norm = "in"
    else:
        norm = "none"
    kwargs = {"channels": ch, "features": features, "blocks": blocks, "norm": norm, "upsampler": upsampler}
    return scale, kwargs


LAYOUTS = (
    Layout("msrresnet-basicsr", _infer_msr, description="BasicSR MSRResNet: conv_first, body.{i}.conv1/2, upconv1/2"),
    Layout("msrresnet-mmediting", _infer_mm, _mm_key,
           description="OpenMMLab MSRResNet: conv_first, trunk_net.{i}.conv1/2, upsample{1,2}.upsample_conv"),
    Layout("srresnet-sresr", _infer_native, description="sresr SRResNet: head, body.{i}, conv_body, upsample"),
)


def load_state_dict(sd: Mapping[str, Any], scale: int | None = None, **overrides: Any):
    """``(module, scale, kwargs)`` from a BasicSR MSRResNet or an sresr SRResNet state dict.
    ``global_skip`` cannot be seen in the weights: pass ``global_skip=False`` if needed."""
    return load_with_layouts(sd, LAYOUTS, srresnet, "srresnet", 4, scale, overrides)
