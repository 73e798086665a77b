"""SRVGGNetCompact (Real-ESRGAN compact models: realesr-animevideov3, realesr-general-x4v3).

``num_conv`` 3x3 convolutions in LR space with PReLU, a last convolution to ``channels * s * s``,
pixel shuffle, plus the nearest-upsampled input. Key names as published (``body.{i}``).
"""

from __future__ import annotations

from typing import Any, Mapping

import torch
import torch.nn.functional as F
from torch import nn

from .. import _rf, check_counts
from .._layouts import Layout, isqrt_exact, load_with_layouts, shape

ACTIVATIONS = ("prelu", "relu", "leakyrelu")


def _act(kind: str, features: int) -> nn.Module:
    if kind == "prelu":
        return nn.PReLU(features)
    if kind == "relu":
        return nn.ReLU(inplace=True)
    if kind == "leakyrelu":
        return nn.LeakyReLU(0.1, inplace=True)
    raise ValueError(f"act_type must be one of {ACTIVATIONS}, got {kind!r}")


class SRVGGNetCompact(nn.Module):
    def __init__(self, scale: int = 4, channels: int = 3, features: int = 64, num_conv: int = 16,
                 act_type: str = "prelu"):
        super().__init__()
        self.scale = scale
        layers: list[nn.Module] = [nn.Conv2d(channels, features, 3, 1, 1), _act(act_type, features)]
        for _ in range(num_conv):
            layers += [nn.Conv2d(features, features, 3, 1, 1), _act(act_type, features)]
        layers.append(nn.Conv2d(features, channels * scale * scale, 3, 1, 1))
        self.body = nn.ModuleList(layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = x
        for layer in self.body:
            out = layer(out)
        return F.pixel_shuffle(out, self.scale) + F.interpolate(x, scale_factor=self.scale, mode="nearest")


def srvgg(scale: int = 4, channels: int = 3, features: int = 64, num_conv: int = 16,
          act_type: str = "prelu") -> SRVGGNetCompact:
    """SRVGGNetCompact; ``num_conv=16`` (animevideov3, default) or ``32`` (general-x4v3)."""
    check_counts("realesrgan-compact", channels=channels, features=features, num_conv=num_conv)
    return SRVGGNetCompact(scale, channels, features, num_conv, act_type)


def receptive_field(scale: int = 4, num_conv: int = 16, **_: Any) -> int:
    main = [("conv", 3)] * (num_conv + 2) + [("up", scale)]
    return _rf.radius([("branch", main, [("up", scale)])], scale)


geometry = _rf.geometry_hook(receptive_field)


def _infer(sd: Mapping[str, Any]) -> tuple[int, dict[str, Any]]:
    features, ch, _, _ = shape(sd, "body.0.weight")
    convs = [int(k.split(".")[1]) for k in sd if k.endswith(".weight") and len(shape(sd, k)) == 4]
    last = max(convs)
    num_conv = len(convs) - 2
    if "body.1.weight" not in sd:
        raise ValueError("only the PReLU variant can be recognised from the weights")
    if num_conv < 1:
        raise ValueError("SRVGGNetCompact has at least one body convolution")
    scale = isqrt_exact(shape(sd, f"body.{last}.weight")[0] // ch)
    return scale, {"channels": ch, "features": features, "num_conv": num_conv}


LAYOUTS = (Layout("srvgg-compact", _infer, description="Real-ESRGAN SRVGGNetCompact: body.{i}"),)


def load_state_dict(sd: Mapping[str, Any], scale: int | None = None, **overrides: Any):
    """``(module, scale, kwargs)``; ``num_conv`` and scale come from the shapes."""
    return load_with_layouts(sd, LAYOUTS, srvgg, "realesrgan-compact", 4, scale, overrides)
