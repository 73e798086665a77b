"""RRDBNet, the ESRGAN / Real-ESRGAN generator (Wang et al., ECCVW 2018; ICCVW 2021).

Key names follow BasicSR / Real-ESRGAN; the ESRGAN repository layout (``RRDB_trunk``, ``trunk_conv``,
``upconv1``, ``HRconv``) and the original sequential release (``model.0``, ``model.1.sub.*``,
``model.3/6/8/10``) are mapped onto them. Scale 4 is the plain network; scales 2 and 1 first
pixel-unshuffle the input by 2 and 4 (Real-ESRGAN x2plus), so their input sides must be even /
multiples of 4.
"""

from __future__ import annotations

import re
from typing import Any, Mapping

import torch
import torch.nn.functional as F
from torch import nn

from .. import _rf, check_counts
from .._layouts import Layout, count, load_with_layouts, shape

UNSHUFFLE = {4: 1, 2: 2, 1: 4}


class ResidualDenseBlock(nn.Module):
    def __init__(self, features: int = 64, growth: int = 32):
        super().__init__()
        self.conv1 = nn.Conv2d(features, growth, 3, 1, 1)
        self.conv2 = nn.Conv2d(features + growth, growth, 3, 1, 1)
        self.conv3 = nn.Conv2d(features + 2 * growth, growth, 3, 1, 1)
        self.conv4 = nn.Conv2d(features + 3 * growth, growth, 3, 1, 1)
        self.conv5 = nn.Conv2d(features + 4 * growth, features, 3, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x1 = F.leaky_relu(self.conv1(x), 0.2)
        x2 = F.leaky_relu(self.conv2(torch.cat((x, x1), 1)), 0.2)
        x3 = F.leaky_relu(self.conv3(torch.cat((x, x1, x2), 1)), 0.2)
        x4 = F.leaky_relu(self.conv4(torch.cat((x, x1, x2, x3), 1)), 0.2)
        x5 = self.conv5(torch.cat((x, x1, x2, x3, x4), 1))
        return x5 * 0.2 + x


class RRDB(nn.Module):
    def __init__(self, features: int = 64, growth: int = 32):
        super().__init__()
        self.rdb1 = ResidualDenseBlock(features, growth)
        self.rdb2 = ResidualDenseBlock(features, growth)
        self.rdb3 = ResidualDenseBlock(features, growth)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.rdb3(self.rdb2(self.rdb1(x))) * 0.2 + x


class RRDBNet(nn.Module):
    def __init__(self, scale: int = 4, channels: int = 3, features: int = 64, blocks: int = 23, growth: int = 32):
        super().__init__()
        if scale not in UNSHUFFLE:
            raise ValueError(f"RRDBNet supports scales 1, 2 and 4, not {scale}")
        self.scale = scale
        self.unshuffle = UNSHUFFLE[scale]
        self.conv_first = nn.Conv2d(channels * self.unshuffle**2, features, 3, 1, 1)
        self.body = nn.Sequential(*[RRDB(features, growth) for _ in range(blocks)])
        self.conv_body = nn.Conv2d(features, features, 3, 1, 1)
        self.conv_up1 = nn.Conv2d(features, features, 3, 1, 1)
        self.conv_up2 = nn.Conv2d(features, features, 3, 1, 1)
        self.conv_hr = nn.Conv2d(features, features, 3, 1, 1)
        self.conv_last = nn.Conv2d(features, channels, 3, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.unshuffle > 1:
            x = F.pixel_unshuffle(x, self.unshuffle)
        feat = self.conv_first(x)
        feat = feat + self.conv_body(self.body(feat))
        feat = F.leaky_relu(self.conv_up1(F.interpolate(feat, scale_factor=2, mode="nearest")), 0.2)
        feat = F.leaky_relu(self.conv_up2(F.interpolate(feat, scale_factor=2, mode="nearest")), 0.2)
        return self.conv_last(F.leaky_relu(self.conv_hr(feat), 0.2))


def rrdbnet(scale: int = 4, channels: int = 3, features: int = 64, blocks: int = 23, growth: int = 32) -> RRDBNet:
    """RRDBNet(nf=features, nb=blocks, gc=growth); ``blocks=6`` is Real-ESRGAN's anime_6B."""
    check_counts("esrgan", channels=channels, features=features, blocks=blocks, growth=growth)
    return RRDBNet(scale, channels, features, blocks, growth)


def receptive_field(scale: int = 4, blocks: int = 23, **_: Any) -> int:
    ops: list[tuple[Any, ...]] = []
    if UNSHUFFLE[scale] > 1:
        ops.append(("unshuffle", UNSHUFFLE[scale]))
    ops += [("conv", 3)] * (1 + 15 * blocks + 1)
    ops += [("up", 2), ("conv", 3), ("up", 2), ("conv", 3), ("conv", 3), ("conv", 3)]
    return _rf.radius(ops, scale)


def size_multiple(scale: int = 4, **_: Any) -> int:
    """Input sides must be multiples of this (the pixel-unshuffle factor)."""
    return UNSHUFFLE[scale]


geometry = _rf.geometry_hook(receptive_field, size_multiple)


def _scale_from(in_ch: int, out_ch: int) -> int:
    ratio, rest = divmod(in_ch, out_ch)
    if rest or ratio not in (1, 4, 16):
        raise ValueError(f"conv_first has {in_ch} input channels for {out_ch} output channels")
    return {1: 4, 4: 2, 16: 1}[ratio]


def _rrdb_infer(first: str, last: str, dense: str) -> Any:
    """Read an RRDBNet layout's hyperparameters from tensor shapes: ``first``/``last`` are the
    first and last conv weights, ``dense`` the regex of block i's first dense conv (i in group 1)."""
    dense0 = dense.replace(r"(\d+)", "0").replace("\\", "")

    def infer(sd: Mapping[str, Any]) -> tuple[int, dict[str, Any]]:
        features, in_ch, _, _ = shape(sd, first)
        out_ch = shape(sd, last)[0]
        growth = shape(sd, dense0)[0]
        blocks = count(sd, dense)
        return _scale_from(in_ch, out_ch), {"channels": out_ch, "features": features, "blocks": blocks, "growth": growth}

    return infer


_infer_basicsr = _rrdb_infer("conv_first.weight", "conv_last.weight", r"body\.(\d+)\.rdb1\.conv1\.weight")
_infer_esrgan = _rrdb_infer("conv_first.weight", "conv_last.weight", r"RRDB_trunk\.(\d+)\.RDB1\.conv1\.weight")
_infer_old = _rrdb_infer("model.0.weight", "model.10.weight", r"model\.1\.sub\.(\d+)\.RDB1\.conv1\.0\.weight")


_ESRGAN_NAMES = {"conv_body": "trunk_conv", "conv_up1": "upconv1", "conv_up2": "upconv2", "conv_hr": "HRconv"}
_OLD_NAMES = {"conv_first": "model.0", "conv_up1": "model.3", "conv_up2": "model.6", "conv_hr": "model.8",
              "conv_last": "model.10"}


def _rename_esrgan(key: str, scale: int, kwargs: Mapping[str, Any]) -> str:
    if m := re.fullmatch(r"body\.(\d+)\.rdb(\d)\.(conv\d\.\w+)", key):
        return f"RRDB_trunk.{m.group(1)}.RDB{m.group(2)}.{m.group(3)}"
    head, _, tail = key.partition(".")
    return f"{_ESRGAN_NAMES.get(head, head)}.{tail}"


def _rename_old(key: str, scale: int, kwargs: Mapping[str, Any]) -> str:
    if m := re.fullmatch(r"body\.(\d+)\.rdb(\d)\.(conv\d)\.(\w+)", key):
        return f"model.1.sub.{m.group(1)}.RDB{m.group(2)}.{m.group(3)}.0.{m.group(4)}"
    head, _, tail = key.partition(".")
    if head == "conv_body":
        return f"model.1.sub.{kwargs.get('blocks', 23)}.{tail}"
    return f"{_OLD_NAMES.get(head, head)}.{tail}"


LAYOUTS = (
    Layout("rrdbnet-basicsr", _infer_basicsr, description="BasicSR / Real-ESRGAN: conv_first, body.{i}.rdb{1,2,3}"),
    Layout("rrdbnet-esrgan", _infer_esrgan, _rename_esrgan, description="ESRGAN repo: RRDB_trunk, trunk_conv, HRconv"),
    Layout("rrdbnet-esrgan-old", _infer_old, _rename_old, description="original ESRGAN release: model.0 .. model.10"),
)


def load_state_dict(sd: Mapping[str, Any], scale: int | None = None, **overrides: Any):
    """``(module, scale, kwargs)`` from any of the three RRDBNet layouts; blocks, features,
    growth channels and the unshuffle scale (x4/x2/x1) come from the shapes."""
    return load_with_layouts(sd, LAYOUTS, rrdbnet, "esrgan", 4, scale, overrides)
