"""The ``bicubic`` module: MATLAB-exact bicubic upscaling as a parameter-free ``nn.Module``."""

from __future__ import annotations

import torch
from torch import nn

from sresr.imaging.resize import imresize


class Bicubic(nn.Module):
    """``forward(x)`` = ``imresize(x, scale)`` on NCHW float input; output not clipped."""

    def __init__(self, scale: int = 4):
        super().__init__()
        self.scale = int(scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return imresize(x, self.scale)

    def extra_repr(self) -> str:
        return f"scale={self.scale}"
