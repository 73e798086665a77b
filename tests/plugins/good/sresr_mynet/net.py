import torch
from torch import nn


class MyNet(nn.Module):
    def __init__(self, scale: int):
        super().__init__()
        self.conv = nn.Conv2d(3, 3 * scale * scale, 3, padding=1)
        self.shuffle = nn.PixelShuffle(scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.shuffle(self.conv(x))


def build(scale: int) -> nn.Module:
    return MyNet(scale)
