"""Losses: pixel (L1, MSE, Charbonnier), VGG19 perceptual, GAN (vanilla and relativistic average)."""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import UsageError


class CharbonnierLoss(nn.Module):
    """mean(sqrt((x - y)^2 + eps^2)) (LapSRN)."""

    def __init__(self, eps: float = 1e-3):
        super().__init__()
        self.eps = float(eps)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return torch.sqrt((x - y).pow(2) + self.eps * self.eps).mean()


class PerSampleSum(nn.Module):
    """A mean pixel loss turned into its sum over each sample's elements, averaged over the batch."""

    def __init__(self, base: nn.Module):
        super().__init__()
        self.base = base

    def forward(self, sr: torch.Tensor, hr: torch.Tensor) -> torch.Tensor:
        return self.base(sr, hr) * sr[0].numel()


def pixel_loss(name: str, charbonnier_eps: float = 1e-3, reduction: str = "mean") -> nn.Module:
    """The pixel loss ``name`` (l1, mse, charbonnier); ``reduction``: ``mean`` over every element,
    or ``sum`` over each sample's elements with the mean over the batch (see LossConfig)."""
    if name == "l1":
        base: nn.Module = nn.L1Loss()
    elif name == "mse":
        base = nn.MSELoss()
    elif name == "charbonnier":
        base = CharbonnierLoss(charbonnier_eps)
    else:
        raise UsageError(f"unknown pixel loss '{name}'", hint="use l1, mse or charbonnier")
    if reduction == "sum":
        return PerSampleSum(base)
    if reduction != "mean":
        raise UsageError(f"unknown pixel loss reduction '{reduction}'", hint="mean or sum")
    return base


class VGGPerceptualLoss(nn.Module):
    """Distance between VGG19 features of SR and HR (ImageNet-normalised RGB input in [0, 1]).

    ``layer`` like ``conv5_4``; ``before_activation`` takes the conv output (ESRGAN), else the
    ReLU output (SRGAN). ``weights``: where torchvision's ImageNet VGG19 weights come from (see
    :func:`sresr.models.vgg.vgg19_state`): empty downloads the published file once into the
    weights cache; a URL or a local file. No torchvision is needed. Y (1-channel) inputs are
    repeated to 3 channels.
    """

    def __init__(self, layer: str = "conv5_4", before_activation: bool = True, criterion: str = "mse",
                 weights: str | Path = ""):
        super().__init__()
        from ..models.vgg import IMAGENET_MEAN, IMAGENET_STD, VGG19Features, features_up_to, vgg19_state

        end = features_up_to(layer, before_activation)
        net = VGG19Features(end)
        state = vgg19_state(weights)
        net.load_state_dict({k: v for k, v in state.items() if k in net.state_dict()}, strict=True)
        self.features = net.features.eval()
        for p in self.features.parameters():
            p.requires_grad_(False)
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1))
        self.criterion = nn.L1Loss() if criterion == "l1" else nn.MSELoss()

    def train(self, mode: bool = True) -> VGGPerceptualLoss:
        super().train(mode)
        self.features.eval()  # never update anything inside VGG
        return self

    def _feat(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[1] == 1:
            x = x.repeat(1, 3, 1, 1)
        return self.features((x - self.mean) / self.std)

    def forward(self, sr: torch.Tensor, hr: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            target = self._feat(hr)
        return self.criterion(self._feat(sr), target)


# -- GAN ---------------------------------------------------------------------------------------


def _bce(logits: torch.Tensor, target: float) -> torch.Tensor:
    return F.binary_cross_entropy_with_logits(logits, torch.full_like(logits, target))


def generator_adversarial_loss(kind: str, fake_logits: torch.Tensor, real_logits: torch.Tensor | None = None
                               ) -> torch.Tensor:
    """Adversarial term of the generator.

    vanilla: -log D(G(z)) (non-saturating). ragan (ESRGAN): both relativistic terms,
    BCE(C(fake) - E[C(real)], 1) and BCE(C(real) - E[C(fake)], 0), averaged; ``real_logits``
    must be computed without gradient to D.
    """
    if kind == "vanilla":
        return _bce(fake_logits, 1.0)
    if kind == "ragan":
        if real_logits is None:
            raise ValueError("ragan needs the real logits")
        real_logits = real_logits.detach()
        return (_bce(real_logits - fake_logits.mean(), 0.0) + _bce(fake_logits - real_logits.mean(), 1.0)) / 2
    raise UsageError(f"unknown GAN kind '{kind}'", hint="use vanilla or ragan")


def discriminator_loss(kind: str, real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """Loss of the discriminator (``fake_logits`` from a detached SR)."""
    if kind == "vanilla":
        return (_bce(real_logits, 1.0) + _bce(fake_logits, 0.0)) / 2
    if kind == "ragan":
        return (_bce(real_logits - fake_logits.mean(), 1.0) + _bce(fake_logits - real_logits.mean(), 0.0)) / 2
    raise UsageError(f"unknown GAN kind '{kind}'", hint="use vanilla or ragan")
