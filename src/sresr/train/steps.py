"""One optimisation step per kind of training, as small objects (BasicSR's ``optimize_parameters``).

- :class:`PixelStep`: the generator alone, on its pixel and perceptual losses (SRCNN ... EDSR,
  the PSNR-oriented stages of SRGAN and ESRGAN).
- :class:`GanStep`: the same plus the adversarial term, then one update of the discriminator
  (the GAN stages).

A step returns its loss parts as detached tensors on the training device: the loop sums them
there and reads them only when it logs, so no step waits for the device.
"""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from typing import Any, Callable

import torch
from torch import nn

from ..errors import UsageError
from .config import TrainConfig
from .losses import discriminator_loss, generator_adversarial_loss
from .setup import clip_gradients


@dataclass
class PixelStep:
    """Forward, the generator's loss, backward and one optimiser step (with AMP's GradScaler and
    the config's gradient clipping). ``forward`` is the (DDP-wrapped or compiled) network."""

    cfg: TrainConfig
    forward: Callable[[torch.Tensor], torch.Tensor]
    opt: torch.optim.Optimizer
    scaler: torch.amp.GradScaler
    params: list[nn.Parameter]
    autocast: Callable[[], AbstractContextManager[Any]]
    crit_pixel: nn.Module | None = None
    crit_vgg: nn.Module | None = None
    exact: Callable[[], AbstractContextManager[Any]] = nullcontext  # around the whole step: IEEE fp32 on CUDA
    sr: torch.Tensor | None = field(default=None, repr=False)  # the last output (the GAN step reuses it)

    def generator_loss(self, sr: torch.Tensor, hr: torch.Tensor, parts: dict[str, torch.Tensor]) -> torch.Tensor:
        loss = sr.new_zeros((), dtype=torch.float32)
        if self.crit_pixel is not None:
            lp = self.crit_pixel(sr.float(), hr)
            loss = loss + self.cfg.loss.pixel_weight * lp
            parts["loss_pixel"] = lp.detach()
        if self.crit_vgg is not None:
            lv = self.crit_vgg(sr.float(), hr)
            loss = loss + self.cfg.loss.perceptual_weight * lv
            parts["loss_perceptual"] = lv.detach()
        return loss

    def __call__(self, inp: torch.Tensor, hr: torch.Tensor) -> dict[str, torch.Tensor]:
        with self.exact():
            return self._step(inp, hr)

    def _step(self, inp: torch.Tensor, hr: torch.Tensor) -> dict[str, torch.Tensor]:
        parts: dict[str, torch.Tensor] = {}
        with self.autocast():
            sr = self.forward(inp)
            if sr.shape != hr.shape:
                raise UsageError(f"model output {tuple(sr.shape)} does not match the HR patch {tuple(hr.shape)}",
                                 hint="check the scale and the model's colorspace")
            loss = self.generator_loss(sr, hr, parts)
        self.opt.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.unscale_(self.opt)
        clip_gradients(self.params, self.cfg, self.opt.param_groups[0]["lr"])
        self.scaler.step(self.opt)
        self.scaler.update()
        self.sr = sr
        parts["loss"] = loss.detach()
        return parts


@dataclass
class GanStep(PixelStep):
    """:class:`PixelStep` with ``gan.weight`` times the adversarial loss of ``disc`` (frozen while
    the generator learns), then one step of the discriminator on HR against the detached SR."""

    disc: nn.Module | None = None
    d_opt: torch.optim.Optimizer | None = None
    d_sched: Any = None

    def generator_loss(self, sr: torch.Tensor, hr: torch.Tensor, parts: dict[str, torch.Tensor]) -> torch.Tensor:
        loss = super().generator_loss(sr, hr, parts)
        assert self.disc is not None
        for p in self.disc.parameters():
            p.requires_grad_(False)
        fake_logits = self.disc(sr)
        real_logits = self.disc(hr).detach() if self.cfg.gan.kind == "ragan" else None
        la = generator_adversarial_loss(self.cfg.gan.kind, fake_logits, real_logits)
        parts["loss_adv"] = la.detach()
        return loss + self.cfg.gan.weight * la

    def _step(self, inp: torch.Tensor, hr: torch.Tensor) -> dict[str, torch.Tensor]:
        parts = super()._step(inp, hr)
        assert self.disc is not None and self.d_opt is not None and self.sr is not None
        for p in self.disc.parameters():
            p.requires_grad_(True)
        with self.autocast():
            ld = discriminator_loss(self.cfg.gan.kind, self.disc(hr), self.disc(self.sr.detach()))
        self.d_opt.zero_grad(set_to_none=True)
        ld.backward()
        self.d_opt.step()
        self.d_sched.step()
        parts["loss_d"] = ld.detach()
        self.sr = None
        return parts
