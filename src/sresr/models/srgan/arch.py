"""SRGAN (Ledig et al., CVPR 2017): the SRResNet generator (used for inference) and the
VGG-style discriminator (used for training)."""

from __future__ import annotations

from typing import Any, Mapping

from torch import nn

from ..discriminators import SRGANDiscriminator
from ..srresnet import arch as _srresnet

generator = _srresnet.srresnet
receptive_field = _srresnet.receptive_field
geometry = _srresnet.geometry


def srgan(scale: int = 4, **kwargs: Any) -> nn.Module:
    """The SRGAN generator: an SRResNet (same kwargs as ``sresr.models.srresnet.arch.srresnet``)."""
    return _srresnet.srresnet(scale=scale, **kwargs)


def discriminator(in_channels: int = 3, features: int = 64, input_size: int = 96) -> SRGANDiscriminator:
    """The SRGAN paper's discriminator (96x96 HR patches by default; any multiple of 16)."""
    return SRGANDiscriminator(in_channels, features, input_size)


def load_state_dict(sd: Mapping[str, Any], scale: int | None = None, **overrides: Any):
    """Generator weights: same layouts as SRResNet."""
    return _srresnet.load_state_dict(sd, scale, **overrides)
