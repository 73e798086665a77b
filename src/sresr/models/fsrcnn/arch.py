"""FSRCNN (Dong et al., ECCV 2016): feature extraction, shrinking, mapping, expanding and a
transposed-convolution upsampler. Key names follow yjn870/FSRCNN-pytorch."""

from __future__ import annotations

from typing import Any, Mapping

import torch
from torch import nn

from .. import _rf, check_counts
from . import centered_padding  # torch-free, defined with the spec; also importable from here
from .._layouts import Layout, count, load_with_layouts, shape


class FSRCNN(nn.Module):
    def __init__(self, scale: int, channels: int = 1, d: int = 56, s: int = 12, m: int = 4,
                 deconv_padding: int = 4):
        super().__init__()
        self.scale = scale
        self.first_part = nn.Sequential(nn.Conv2d(channels, d, 5, padding=2), nn.PReLU(d))
        mid: list[nn.Module] = [nn.Conv2d(d, s, 1), nn.PReLU(s)]
        for _ in range(m):
            mid += [nn.Conv2d(s, s, 3, padding=1), nn.PReLU(s)]
        mid += [nn.Conv2d(s, d, 1), nn.PReLU(d)]
        self.mid_part = nn.Sequential(*mid)
        self.last_part = nn.ConvTranspose2d(d, channels, 9, stride=scale, padding=deconv_padding,
                                            output_padding=scale + 2 * deconv_padding - 9)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """The paper's initialisation: He (PReLU) normal for the convolutions, N(0, 0.001^2) for the
        deconvolution, zero biases."""
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                fan_out = m.out_channels * m.kernel_size[0] * m.kernel_size[1]
                nn.init.normal_(m.weight, 0.0, (2.0 / fan_out) ** 0.5)
                nn.init.zeros_(m.bias)
        nn.init.normal_(self.last_part.weight, 0.0, 0.001)
        nn.init.zeros_(self.last_part.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.last_part(self.mid_part(self.first_part(x)))


def fsrcnn(scale: int = 2, channels: int = 1, d: int = 56, s: int = 12, m: int = 4,
           deconv_padding: int = 4) -> FSRCNN:
    """FSRCNN(d, s, m); the paper's FSRCNN-s is ``d=32, s=5, m=1``."""
    check_counts("fsrcnn", channels=channels, d=d, s=s)
    if scale < 1:
        raise ValueError("scale must be >= 1")
    # output_padding = scale + 2 * padding - 9 must be in [0, scale): the centred padding is the least
    if not centered_padding(scale) <= deconv_padding <= 4:
        raise ValueError(f"deconv_padding must be {centered_padding(scale)}..4 at x{scale} (the first is centred)")
    return FSRCNN(scale, channels, d, s, m, deconv_padding)


def repad_state_dict(sd: Mapping[str, Any], old: int, new: int) -> dict[str, Any]:
    """The same network for a transposed convolution padded ``new`` instead of ``old``: the kernel
    moves by ``old - new`` taps so every output pixel keeps its place. Taps shifted past the
    kernel's edge are lost (so it is exact only when they are zero): fine-tune afterwards."""
    out = dict(sd)
    w = sd["last_part.weight"]
    k, d = w.shape[-1], old - new
    if abs(d) >= k:
        raise ValueError(f"cannot move a {k}-tap kernel by {d}")
    moved = torch.zeros_like(w)
    if d >= 0:
        moved[..., : k - d, : k - d] = w[..., d:, d:]
    else:
        moved[..., -d:, -d:] = w[..., : k + d, : k + d]
    out["last_part.weight"] = moved
    return out


def center_init(state: Mapping[str, Any], kwargs: Mapping[str, Any] | None, scale: int
                ) -> tuple[dict[str, Any], dict[str, Any]]:
    """An ``init_transform`` for training: FSRCNN weights (padded as their ``kwargs`` say, 4 when
    unknown) moved to the padding that centres the transposed convolution on the HR grid
    (:func:`centered_padding`), with the kwargs that now describe them."""
    kwargs = dict(kwargs or {})
    old = int(kwargs.get("deconv_padding", 4))
    new = centered_padding(scale)
    kwargs["deconv_padding"] = new
    return repad_state_dict(state, old, new), kwargs


def receptive_field(scale: int = 2, m: int = 4, deconv_padding: int = 4, **_: Any) -> int:
    ops = [("conv", 5), ("conv", 1)] + [("conv", 3)] * m + [("conv", 1), ("deconv", 9, scale, deconv_padding)]
    return _rf.radius(ops, scale)


geometry = _rf.geometry_hook(receptive_field)


def _infer(sd: Mapping[str, Any]) -> tuple[None, dict[str, Any]]:
    d, ch, _, _ = shape(sd, "first_part.0.weight")
    s = shape(sd, "mid_part.0.weight")[0]
    m = count(sd, r"mid_part\.(\d+)\.weight") // 2 - 2
    if m < 0:
        raise ValueError("no mapping layers")
    return None, {"channels": ch, "d": d, "s": s, "m": m}


LAYOUTS = (Layout("fsrcnn-yjn870", _infer, description="first_part/mid_part/last_part (yjn870)"),)


def load_state_dict(sd: Mapping[str, Any], scale: int | None = None, **overrides: Any):
    """``(module, scale, kwargs)``. The transposed convolution's stride is not stored in the
    weights, so ``scale`` must be given: without it an exact match raises
    :class:`~sresr.errors.ScaleUnknownError` rather than guess."""
    return load_with_layouts(sd, LAYOUTS, fsrcnn, "fsrcnn", 2, scale, overrides, scale_from_shapes_only=True)
