"""SRCNN (Dong et al., 2014/2016): patch extraction, non-linear mapping, reconstruction.

Works on the image already upsampled by bicubic (``SPEC.input == "upsampled"``) and returns the
same size; the convolutions are zero-padded ("same") instead of the paper's valid convolutions.
"""

from __future__ import annotations

from typing import Any, Mapping

import torch
from torch import nn

from .. import _rf, check_counts
from .._layouts import Layout, load_with_layouts, shape


class SRCNN(nn.Module):
    def __init__(self, channels: int = 1, f1: int = 9, f2: int = 5, f3: int = 5, n1: int = 64, n2: int = 32):
        super().__init__()
        for k in (f1, f2, f3):
            if k % 2 != 1:
                raise ValueError(f"SRCNN kernel sizes must be odd, got {k}")
        self.conv1 = nn.Conv2d(channels, n1, f1, padding=f1 // 2)
        self.conv2 = nn.Conv2d(n1, n2, f2, padding=f2 // 2)
        self.conv3 = nn.Conv2d(n2, channels, f3, padding=f3 // 2)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv3(self.relu(self.conv2(self.relu(self.conv1(x)))))


def srcnn(scale: int = 2, channels: int = 1, f1: int = 9, f2: int = 5, f3: int = 5, n1: int = 64,
          n2: int = 32) -> SRCNN:
    """SRCNN 9-5-5 by default (``f2=1`` gives 9-1-5); ``channels=3`` for the RGB variant.

    ``scale`` only selects the weights: the network maps the upsampled image to the same size.
    """
    check_counts("srcnn", channels=channels, n1=n1, n2=n2)
    return SRCNN(channels, f1, f2, f3, n1, n2)


def receptive_field(scale: int = 2, f1: int = 9, f2: int = 5, f3: int = 5, **_: Any) -> int:
    """Radius in pixels of the (upsampled) input."""
    return _rf.radius([("conv", f1), ("conv", f2), ("conv", f3)], 1)


geometry = _rf.geometry_hook(receptive_field)


def _infer(sd: Mapping[str, Any]) -> tuple[None, dict[str, Any]]:
    n1, ch, f1, _ = shape(sd, "conv1.weight")
    n2, _, f2, _ = shape(sd, "conv2.weight")
    _, _, f3, _ = shape(sd, "conv3.weight")
    return None, {"channels": ch, "f1": f1, "f2": f2, "f3": f3, "n1": n1, "n2": n2}


LAYOUTS = (Layout("srcnn", _infer, description="conv1/conv2/conv3 with biases (SRCNN-pytorch)"),)


def load_state_dict(sd: Mapping[str, Any], scale: int | None = None, **overrides: Any):
    """``(module, scale, kwargs)``; the scale cannot be read from SRCNN weights (default 2)."""
    return load_with_layouts(sd, LAYOUTS, srcnn, "srcnn", 2, scale, overrides)
