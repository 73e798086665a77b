"""Losses: pixel (L1, MSE, Charbonnier), VGG19 perceptual, GAN (vanilla and relativistic average)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import SresrError, UsageError


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


# torchvision VGG19 ``features`` indices: name -> index of that conv (its ReLU is index + 1)
_VGG19_LAYERS: dict[str, int] = {}
_i = 0
for _block, _n in enumerate((2, 2, 4, 4, 4), start=1):
    for _c in range(1, _n + 1):
        _VGG19_LAYERS[f"conv{_block}_{_c}"] = _i
        _i += 2
    _i += 1  # max pool
del _i, _block, _n, _c

VGG_HINT = (
    "install torchvision built for your torch (pip install 'sresr[vgg]' with matching torch/torchvision "
    "versions, e.g. from the same PyTorch index), or train with a pixel loss only "
    "(set loss.perceptual_weight = 0 in a --config file)"
)


def _import_vgg19() -> Any:
    try:
        from torchvision.models import vgg19  # noqa: PLC0415
    except Exception as exc:  # torchvision can fail in many ways (missing, ABI mismatch, ops)
        raise SresrError(
            f"the VGG perceptual loss needs torchvision, which cannot be imported: {type(exc).__name__}: {exc}",
            hint=VGG_HINT,
        ) from None
    return vgg19


class VGGPerceptualLoss(nn.Module):
    """Distance between VGG19 features of SR and HR (ImageNet-normalised RGB input in [0, 1]).

    ``layer`` like ``conv5_4``; ``before_activation`` takes the conv output (ESRGAN), else the
    ReLU output (SRGAN). ``weights``: a local torchvision ``vgg19`` state-dict file; when empty
    torchvision's pretrained weights are used (downloaded by torchvision unless cached).
    Y (1-channel) inputs are repeated to 3 channels.
    """

    def __init__(self, layer: str = "conv5_4", before_activation: bool = True, criterion: str = "mse",
                 weights: str | Path = ""):
        super().__init__()
        if layer not in _VGG19_LAYERS:
            raise UsageError(f"unknown VGG19 layer '{layer}'", hint="layers: " + ", ".join(_VGG19_LAYERS))
        vgg19 = _import_vgg19()
        if weights:
            path = Path(weights)
            if not path.is_file():
                raise SresrError(f"VGG19 weights file not found: {path}", hint="pass an existing vgg19 .pth file")
            net = vgg19(weights=None)
            state = torch.load(path, map_location="cpu", weights_only=True)
            if isinstance(state, dict) and "state_dict" in state:
                state = state["state_dict"]
            net.load_state_dict(state, strict=True)
        else:
            try:
                net = vgg19(weights="IMAGENET1K_V1")
            except Exception as exc:
                raise SresrError(
                    f"cannot get the pretrained VGG19 weights: {type(exc).__name__}: {exc}",
                    hint="download vgg19-dcbb9e9d.pth once and give it as loss.vgg_weights",
                ) from None
        end = _VGG19_LAYERS[layer] + (1 if before_activation else 2)
        self.features = nn.Sequential(*list(net.features.children())[:end]).eval()
        for p in self.features.parameters():
            p.requires_grad_(False)
        self.register_buffer("mean", torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1))
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
