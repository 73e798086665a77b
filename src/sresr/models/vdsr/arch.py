"""VDSR (Kim et al., CVPR 2016): 20 3x3 convolutions without biases, ReLU after all but the last,
and a global residual on the bicubic-upsampled input. Key names follow twtygqyy/pytorch-vdsr."""

from __future__ import annotations

from typing import Any, Mapping

import torch
from torch import nn

from .. import _rf, check_counts
from .._layouts import Layout, count, load_with_layouts, shape


class ConvReLU(nn.Module):
    def __init__(self, features: int):
        super().__init__()
        self.conv = nn.Conv2d(features, features, 3, padding=1, bias=False)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.conv(x))


class VDSR(nn.Module):
    def __init__(self, channels: int = 1, depth: int = 20, features: int = 64):
        super().__init__()
        if depth < 2:
            raise ValueError("VDSR depth must be >= 2")
        self.input = nn.Conv2d(channels, features, 3, padding=1, bias=False)
        self.residual_layer = nn.Sequential(*[ConvReLU(features) for _ in range(depth - 2)])
        self.output = nn.Conv2d(features, channels, 3, padding=1, bias=False)
        self.relu = nn.ReLU(inplace=True)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """He initialisation, as the paper (and twtygqyy/pytorch-vdsr: N(0, 2 / (9 * out_channels)))
        does. PyTorch's default for a convolution (about N(0, 1 / (3 * fan_in))) keeps a sixth of
        the variance through each bias-free conv + ReLU: after 20 of them the residual branch
        carries ~1e-9 of the input, its gradients vanish with it, and SGD at the recipe's lr 0.1
        trains nothing: the network stays exactly bicubic (tests/test_train.py proves both)."""
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.residual_layer(self.relu(self.input(x)))
        return self.output(out) + x


def vdsr(scale: int = 2, channels: int = 1, depth: int = 20, features: int = 64) -> VDSR:
    """VDSR: one network for every scale (``scale`` only selects weights)."""
    check_counts("vdsr", channels=channels, depth=depth, features=features)
    return VDSR(channels, depth, features)


def receptive_field(scale: int = 2, depth: int = 20, **_: Any) -> int:
    """Radius in pixels of the (upsampled) input."""
    return _rf.radius([("branch", [("conv", 3)] * depth, [])], 1)


geometry = _rf.geometry_hook(receptive_field)


def _infer(sd: Mapping[str, Any]) -> tuple[None, dict[str, Any]]:
    features, ch, _, _ = shape(sd, "input.weight")
    depth = count(sd, r"residual_layer\.(\d+)\.conv\.weight") + 2
    return None, {"channels": ch, "depth": depth, "features": features}


LAYOUTS = (Layout("vdsr-twtygqyy", _infer, description="input, residual_layer.{i}.conv, output"),)


def load_state_dict(sd: Mapping[str, Any], scale: int | None = None, **overrides: Any):
    """``(module, scale, kwargs)``; VDSR weights serve every scale (default 2)."""
    return load_with_layouts(sd, LAYOUTS, vdsr, "vdsr", 2, scale, overrides)
