"""EDSR (Lim et al., CVPRW 2017). Key names follow BasicSR's EDSR; the official EDSR-PyTorch
layout is mapped onto them. Inputs in [0, 1]; internally ``(x - mean) * img_range`` like both
reference implementations (their weights expect ``img_range=255``). The DIV2K mean is a
non-persistent buffer, so it is not part of the state dict.

EDSR-baseline: ``features=64, blocks=16, res_scale=1`` (default); EDSR: ``features=256,
blocks=32, res_scale=0.1``.
"""

from __future__ import annotations

import re
from typing import Any, Mapping

import torch
import torch.nn.functional as F
from torch import nn

from .. import _rf, check_counts
from .._layouts import Layout, count, load_with_layouts, shape
from .._meanshift import EDSRLike, official_img_range
from .._upsample import shuffle_scale, shuffle_stages


def _stages(scale: int) -> list[int]:
    return shuffle_stages(scale, "EDSR")


class ResBlock(nn.Module):
    def __init__(self, features: int, res_scale: float):
        super().__init__()
        self.res_scale = res_scale
        self.conv1 = nn.Conv2d(features, features, 3, padding=1)
        self.conv2 = nn.Conv2d(features, features, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(F.relu(self.conv1(x))) * self.res_scale


class EDSR(EDSRLike):
    def __init__(self, scale: int = 4, channels: int = 3, features: int = 64, blocks: int = 16,
                 res_scale: float = 1.0, img_range: float = 255.0):
        super().__init__(channels, features, _stages(scale),
                         lambda: nn.Sequential(*[ResBlock(features, res_scale) for _ in range(blocks)]), img_range)


def edsr(scale: int = 4, channels: int = 3, features: int = 64, blocks: int = 16, res_scale: float = 1.0,
         img_range: float = 255.0) -> EDSR:
    """EDSR-baseline by default; the paper's EDSR is ``features=256, blocks=32, res_scale=0.1``."""
    check_counts("edsr", channels=channels, features=features, blocks=blocks)
    return EDSR(scale, channels, features, blocks, res_scale, img_range)


def receptive_field(scale: int = 4, blocks: int = 16, **_: Any) -> int:
    ops: list[tuple[Any, ...]] = [("conv", 3)] + [("conv", 3)] * (2 * blocks + 1)
    for f in _stages(scale):
        ops += [("conv", 3), ("up", f)]
    return _rf.radius(ops + [("conv", 3)], scale)


geometry = _rf.geometry_hook(receptive_field)


def _res_scale(features: int) -> float:
    # not stored in the weights: the published EDSR (256 features) uses 0.1, the baseline 1
    return 0.1 if features >= 256 else 1.0


def _infer_basicsr(sd: Mapping[str, Any]) -> tuple[int, dict[str, Any]]:
    features, ch, _, _ = shape(sd, "conv_first.weight")
    scale = shuffle_scale(sd, features, "upsample.0.weight", r"upsample\.(\d+)\.weight")
    blocks = count(sd, r"body\.(\d+)\.conv1\.weight")
    return scale, {"channels": ch, "features": features, "blocks": blocks, "res_scale": _res_scale(features)}


def _infer_official(sd: Mapping[str, Any]) -> tuple[int, dict[str, Any]]:
    features, ch, _, _ = shape(sd, "head.0.weight")
    scale = shuffle_scale(sd, features, "tail.0.0.weight", r"tail\.0\.(\d+)\.weight")
    blocks = count(sd, r"body\.(\d+)\.body\.0\.weight")
    return scale, {"channels": ch, "features": features, "blocks": blocks, "res_scale": _res_scale(features),
                   **official_img_range(sd, ch)}


def _rename_official(key: str, scale: int, kwargs: Mapping[str, Any]) -> str:
    blocks = int(kwargs.get("blocks", 16))
    if key.startswith("conv_first."):
        return "head.0." + key.split(".", 1)[1]
    if m := re.fullmatch(r"body\.(\d+)\.conv([12])\.(\w+)", key):
        return f"body.{m.group(1)}.body.{0 if m.group(2) == '1' else 2}.{m.group(3)}"
    if key.startswith("conv_after_body."):
        return f"body.{blocks}." + key.split(".", 1)[1]
    if m := re.fullmatch(r"upsample\.(\d+)\.(\w+)", key):
        return f"tail.0.{m.group(1)}.{m.group(2)}"
    if key.startswith("conv_last."):
        return "tail.1." + key.split(".", 1)[1]
    return key


LAYOUTS = (
    Layout("edsr-basicsr", _infer_basicsr, description="conv_first, body.{i}.conv1/2, conv_after_body, upsample"),
    Layout("edsr-official", _infer_official, _rename_official, ignore=(r"(sub|add)_mean\.(weight|bias)",),
           description="EDSR-PyTorch: head.0, body.{i}.body.{0,2}, body.{nb}, tail.0.{0,2}, tail.1"),
)


def load_state_dict(sd: Mapping[str, Any], scale: int | None = None, **overrides: Any):
    """``(module, scale, kwargs)``. ``res_scale`` is not in the weights: 0.1 is assumed for 256
    features (the published EDSR), else 1; override with ``res_scale=``."""
    return load_with_layouts(sd, LAYOUTS, edsr, "edsr", 4, scale, overrides)
