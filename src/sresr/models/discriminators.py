"""Discriminators for adversarial training (key names as in BasicSR / Real-ESRGAN, so their
published discriminator checkpoints load with ``load_state_dict``).

* :class:`SRGANDiscriminator`: the SRGAN paper's discriminator (Ledig et al. 2017, Fig. 4): eight
  3x3 convolutions (64-512 channels, every second one strided), dense 1024, dense 1; for 96x96 HR
  patches as in the paper, or any multiple of 16.
* :class:`VGGStyleDiscriminator`: BasicSR's VGG-style discriminator (ESRGAN) for 128x128 patches
  (14,499,401 parameters with ``features=64``), or any other multiple of 32 (256: BasicSR's extra
  stage).

Both take their ``input_size`` from the training patch when the config does not give it (see
``sresr.train.loop``): a patch size they cannot take is a usage error before training starts.
* :class:`UNetDiscriminatorSN`: Real-ESRGAN's U-Net discriminator with spectral normalisation,
  a per-pixel realness map (4,376,897 parameters with ``features=64``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class SRGANDiscriminator(nn.Module):
    """SRGAN's discriminator: conv(64, s1) + LeakyReLU, then seven conv + BN + LeakyReLU(0.2) with
    (channels, stride) (64, 2), (128, 1), (128, 2), (256, 1), (256, 2), (512, 1), (512, 2), then
    dense 1024, LeakyReLU, dense 1 (a logit: the sigmoid is in the loss)."""

    def __init__(self, in_channels: int = 3, features: int = 64, input_size: int = 96):
        super().__init__()
        if input_size < 16 or input_size % 16:
            raise ValueError(f"input_size must be a multiple of 16, got {input_size}")
        self.input_size = input_size
        f = features
        layers: list[nn.Module] = [nn.Conv2d(in_channels, f, 3, 1, 1), nn.LeakyReLU(0.2, inplace=True)]
        channels = f
        for width, stride in ((f, 2), (2 * f, 1), (2 * f, 2), (4 * f, 1), (4 * f, 2), (8 * f, 1), (8 * f, 2)):
            layers += [nn.Conv2d(channels, width, 3, stride, 1, bias=False), nn.BatchNorm2d(width),
                       nn.LeakyReLU(0.2, inplace=True)]
            channels = width
        self.features = nn.Sequential(*layers)
        side = input_size // 16
        self.classifier = nn.Sequential(nn.Flatten(), nn.Linear(channels * side * side, 1024),
                                        nn.LeakyReLU(0.2, inplace=True), nn.Linear(1024, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_size(x, self.input_size)
        return self.classifier(self.features(x))


def _check_size(x: torch.Tensor, size: int) -> None:
    if x.shape[-2:] != (size, size):
        raise ValueError(f"expected {size}x{size} input, got {tuple(x.shape[-2:])}")


class VGGStyleDiscriminator(nn.Module):
    """Five stages of (3x3 conv, 4x4 stride-2 conv) with BN and LeakyReLU(0.2), then 2 linear."""

    def __init__(self, in_channels: int = 3, features: int = 64, input_size: int = 128):
        super().__init__()
        if input_size < 32 or input_size % 32:
            raise ValueError(f"input_size must be a multiple of 32, got {input_size}")
        self.input_size = input_size
        f = features
        widths = [f, 2 * f, 4 * f, 8 * f, 8 * f] + ([8 * f] if input_size == 256 else [])
        self.conv0_0 = nn.Conv2d(in_channels, f, 3, 1, 1, bias=True)
        self.conv0_1 = nn.Conv2d(f, f, 4, 2, 1, bias=False)
        self.bn0_1 = nn.BatchNorm2d(f)
        for i in range(1, len(widths)):
            a, b = widths[i - 1], widths[i]
            setattr(self, f"conv{i}_0", nn.Conv2d(a, b, 3, 1, 1, bias=False))
            setattr(self, f"bn{i}_0", nn.BatchNorm2d(b))
            setattr(self, f"conv{i}_1", nn.Conv2d(b, b, 4, 2, 1, bias=False))
            setattr(self, f"bn{i}_1", nn.BatchNorm2d(b))
        self.stages = len(widths)
        side = input_size // 2 ** len(widths)
        self.linear1 = nn.Linear(8 * f * side * side, 100)
        self.linear2 = nn.Linear(100, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_size(x, self.input_size)
        act = lambda t: F.leaky_relu(t, 0.2)  # noqa: E731
        feat = act(self.conv0_0(x))
        feat = act(self.bn0_1(self.conv0_1(feat)))
        for i in range(1, self.stages):
            feat = act(getattr(self, f"bn{i}_0")(getattr(self, f"conv{i}_0")(feat)))
            feat = act(getattr(self, f"bn{i}_1")(getattr(self, f"conv{i}_1")(feat)))
        feat = act(self.linear1(feat.flatten(1)))
        return self.linear2(feat)


class UNetDiscriminatorSN(nn.Module):
    """U-Net discriminator with spectral norm (Real-ESRGAN); output has the input's size."""

    def __init__(self, in_channels: int = 3, features: int = 64, skip_connection: bool = True):
        super().__init__()
        sn = nn.utils.spectral_norm
        f = features
        self.skip_connection = skip_connection
        self.conv0 = nn.Conv2d(in_channels, f, 3, 1, 1)
        self.conv1 = sn(nn.Conv2d(f, 2 * f, 4, 2, 1, bias=False))
        self.conv2 = sn(nn.Conv2d(2 * f, 4 * f, 4, 2, 1, bias=False))
        self.conv3 = sn(nn.Conv2d(4 * f, 8 * f, 4, 2, 1, bias=False))
        self.conv4 = sn(nn.Conv2d(8 * f, 4 * f, 3, 1, 1, bias=False))
        self.conv5 = sn(nn.Conv2d(4 * f, 2 * f, 3, 1, 1, bias=False))
        self.conv6 = sn(nn.Conv2d(2 * f, f, 3, 1, 1, bias=False))
        self.conv7 = sn(nn.Conv2d(f, f, 3, 1, 1, bias=False))
        self.conv8 = sn(nn.Conv2d(f, f, 3, 1, 1, bias=False))
        self.conv9 = nn.Conv2d(f, 1, 3, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        act = lambda t: F.leaky_relu(t, 0.2)  # noqa: E731
        up = lambda t: F.interpolate(t, scale_factor=2, mode="bilinear", align_corners=False)  # noqa: E731
        x0 = act(self.conv0(x))
        x1 = act(self.conv1(x0))
        x2 = act(self.conv2(x1))
        x3 = act(self.conv3(x2))
        x4 = act(self.conv4(up(x3)))
        if self.skip_connection:
            x4 = x4 + x2
        x5 = act(self.conv5(up(x4)))
        if self.skip_connection:
            x5 = x5 + x1
        x6 = act(self.conv6(up(x5)))
        if self.skip_connection:
            x6 = x6 + x0
        out = act(self.conv7(x6))
        out = act(self.conv8(out))
        return self.conv9(out)


def vgg_discriminator(in_channels: int = 3, features: int = 64, input_size: int = 128) -> VGGStyleDiscriminator:
    return VGGStyleDiscriminator(in_channels, features, input_size)


def srgan_discriminator(in_channels: int = 3, features: int = 64, input_size: int = 96) -> SRGANDiscriminator:
    return SRGANDiscriminator(in_channels, features, input_size)


def unet_discriminator(in_channels: int = 3, features: int = 64, skip_connection: bool = True) -> UNetDiscriminatorSN:
    return UNetDiscriminatorSN(in_channels, features, skip_connection)
