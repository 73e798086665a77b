import torch
from torch import nn


class Tiny(nn.Module):
    """conv-PReLU-conv-pixelshuffle: a few hundred parameters."""

    def __init__(self, scale: int, channels: int = 1, features: int = 8):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(channels, features, 3, padding=1), nn.PReLU(features))
        self.tail = nn.Conv2d(features, channels * scale * scale, 3, padding=1)
        self.shuffle = nn.PixelShuffle(scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.shuffle(self.tail(self.body(x)))


class TinyUp(nn.Module):
    """Pre-upsampled input, global residual (VDSR-like)."""

    def __init__(self, channels: int = 1, features: int = 8):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(channels, features, 3, padding=1), nn.ReLU(),
                                  nn.Conv2d(features, channels, 3, padding=1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


def tiny(scale: int, features: int = 8) -> Tiny:
    return Tiny(scale, 1, features)


def tiny_rgb(scale: int, features: int = 8) -> Tiny:
    return Tiny(scale, 3, features)


def tiny_up(scale: int, features: int = 8) -> TinyUp:
    return TinyUp(1, features)
