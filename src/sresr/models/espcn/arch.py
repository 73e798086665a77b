"""ESPCN (Shi et al., CVPR 2016): two convolutions in LR space and a sub-pixel convolution.
Key names follow yjn870/ESPCN-pytorch (``first_part.{0,2}``, ``last_part.0``)."""

from __future__ import annotations

from typing import Any, Mapping

import torch
from torch import nn

from .. import _rf, check_counts
from .._layouts import Layout, isqrt_exact, load_with_layouts, shape

ACTIVATIONS = ("tanh", "relu")


class ESPCN(nn.Module):
    def __init__(self, scale: int, channels: int = 1, n1: int = 64, n2: int = 32, activation: str = "tanh"):
        super().__init__()
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {ACTIVATIONS}, got {activation!r}")
        act = nn.Tanh if activation == "tanh" else (lambda: nn.ReLU(inplace=True))
        self.first_part = nn.Sequential(
            nn.Conv2d(channels, n1, 5, padding=2), act(), nn.Conv2d(n1, n2, 3, padding=1), act()
        )
        self.last_part = nn.Sequential(nn.Conv2d(n2, channels * scale * scale, 3, padding=1), nn.PixelShuffle(scale))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.last_part(self.first_part(x))


def espcn(scale: int = 3, channels: int = 1, n1: int = 64, n2: int = 32, activation: str = "tanh") -> ESPCN:
    """ESPCN 5-3-3; ``activation="tanh"`` (paper) or ``"relu"``."""
    check_counts("espcn", channels=channels, n1=n1, n2=n2)
    return ESPCN(scale, channels, n1, n2, activation)


def receptive_field(scale: int = 3, **_: Any) -> int:
    return _rf.radius([("conv", 5), ("conv", 3), ("conv", 3), ("up", scale)], scale)


geometry = _rf.geometry_hook(receptive_field)


def _infer(sd: Mapping[str, Any]) -> tuple[int, dict[str, Any]]:
    n1, ch, _, _ = shape(sd, "first_part.0.weight")
    n2 = shape(sd, "first_part.2.weight")[0]
    out = shape(sd, "last_part.0.weight")[0]
    if out % ch:
        raise ValueError("output channels do not fit")
    return isqrt_exact(out // ch), {"channels": ch, "n1": n1, "n2": n2}


LAYOUTS = (Layout("espcn-yjn870", _infer, description="first_part.{0,2}, last_part.0 (yjn870)"),)


def load_state_dict(sd: Mapping[str, Any], scale: int | None = None, **overrides: Any):
    """``(module, scale, kwargs)``; tanh unless ``activation="relu"`` is passed."""
    return load_with_layouts(sd, LAYOUTS, espcn, "espcn", 3, scale, overrides)
