"""The DIV2K mean shift of EDSR, RCAN, SPAN and DAT, and the EDSR-style network RCAN shares.

Their input is centred on the training set's mean and scaled to ``img_range`` before the first
convolution (the output gets the reverse). Those two steps run in fp32 whatever the weights'
dtype: in bf16 the mean (0.4488) and the output's ``+ mean`` would each round by up to a quarter
or half of an 8-bit level, while the convolutions' relative precision does not depend on the
range. So the mean is a non-persistent buffer (not in the state dict) that ``.half()`` /
``.to(bf16)`` leave in fp32, made again from its exact values.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping

import torch
from torch import nn

from . import DIV2K_MEAN


class MeanShifted(nn.Module):
    """A network with an fp32 ``mean`` buffer (DIV2K's for RGB, ``other`` per channel else)."""

    def _register_mean(self, channels: int, other: float) -> None:
        self._mean_values = tuple(DIV2K_MEAN if channels == 3 else [other] * channels)
        self.register_buffer("mean", torch.tensor(self._mean_values).view(1, channels, 1, 1), persistent=False)

    def _apply(self, fn, recurse=True):  # type: ignore[no-untyped-def]
        super()._apply(fn, recurse)
        self.mean = torch.tensor(self._mean_values, device=self.mean.device).view(self.mean.shape)
        return self

    @staticmethod
    def work_dtype(dtype: torch.dtype) -> torch.dtype:
        """Where the shift runs: fp64 for an fp64 network, else fp32."""
        return torch.float64 if dtype == torch.float64 else torch.float32


class EDSRLike(MeanShifted):
    """``conv_first`` -> ``body`` (+ ``conv_after_body``, residual) -> pixel-shuffle ``upsample``
    -> ``conv_last``, between the mean shift: EDSR with ``body`` its residual blocks, RCAN with
    its residual groups (BasicSR's key names)."""

    def __init__(self, channels: int, features: int, stages: list[int], body: Callable[[], nn.Module],
                 img_range: float):
        super().__init__()
        self.img_range = img_range
        self._register_mean(channels, 0.5)
        self.conv_first = nn.Conv2d(channels, features, 3, 1, 1)
        self.body = body()
        self.conv_after_body = nn.Conv2d(features, features, 3, 1, 1)
        up: list[nn.Module] = []
        for f in stages:
            up += [nn.Conv2d(features, features * f * f, 3, 1, 1), nn.PixelShuffle(f)]
        self.upsample = nn.Sequential(*up)
        self.conv_last = nn.Conv2d(features, channels, 3, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` in [0, 1] (any float dtype) -> the output in fp32 (fp64 for an fp64 network)."""
        dtype = self.conv_first.weight.dtype
        work = self.work_dtype(dtype)
        mean = self.mean.to(work)
        feat = self.conv_first(((x.to(work) - mean) * self.img_range).to(dtype))
        feat = feat + self.conv_after_body(self.body(feat))
        return self.conv_last(self.upsample(feat)).to(work) / self.img_range + mean


def official_img_range(sd: Mapping[str, Any], channels: int) -> dict[str, float]:
    """EDSR-PyTorch files store their mean shift as ``sub_mean.bias = -rgb_range * mean``: the
    ``img_range`` kwarg when it is not the default 255 (empty otherwise)."""
    if "sub_mean.bias" not in sd or channels != 3:
        return {}
    rgb_range = round(float(-sd["sub_mean.bias"][0]) / DIV2K_MEAN[0])
    return {"img_range": float(rgb_range)} if rgb_range not in (0, 255) else {}
