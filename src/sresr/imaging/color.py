"""ITU-R BT.601 studio-swing colour conversion (MATLAB ``rgb2ycbcr``), the SR benchmark convention.

All functions take float tensors in [0, 1] with channels at dim -3 (``(..., 3, H, W)``) and return
values in [0, 1] as well (``Y / 255``): Y lies in [16/255, 235/255], Cb/Cr in [16/255, 240/255].
``Y = (16 + 65.481 R + 128.553 G + 24.966 B) / 255`` with R, G, B in [0, 1].
"""

from __future__ import annotations

import torch

__all__ = ["rgb_to_ycbcr", "ycbcr_to_rgb", "ycbcr_to_rgb_affine", "rgb_to_y", "RGB_TO_YCBCR", "YCBCR_OFFSET"]

#: rows Y, Cb, Cr; applied to RGB in [0, 1] they give values on the 0-255 scale (plus the offset)
RGB_TO_YCBCR = (
    (65.481, 128.553, 24.966),
    (-37.797, -74.203, 112.0),
    (112.0, -93.786, -18.214),
)
YCBCR_OFFSET = (16.0, 128.0, 128.0)


def _check(x: torch.Tensor, what: str) -> None:
    if x.dim() < 3 or x.shape[-3] != 3:
        raise ValueError(f"{what}: expected channels at dim -3 with 3 channels, got shape {tuple(x.shape)}")
    if not x.is_floating_point():
        raise TypeError(f"{what}: expected a float tensor in [0, 1], got {x.dtype}")


def _matrix(x: torch.Tensor) -> torch.Tensor:
    return torch.tensor(RGB_TO_YCBCR, dtype=torch.float64, device=x.device)


def _apply(m: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    # (3, 3) x (..., 3, H, W) -> (..., 3, H, W)
    return torch.einsum("ij,...jhw->...ihw", m.to(x.dtype), x)


def rgb_to_ycbcr(x: torch.Tensor) -> torch.Tensor:
    """RGB in [0, 1] -> YCbCr in [0, 1] (BT.601 studio swing, divided by 255)."""
    _check(x, "rgb_to_ycbcr")
    offset = torch.tensor(YCBCR_OFFSET, dtype=x.dtype, device=x.device).view(3, 1, 1)
    return (_apply(_matrix(x), x) + offset) / 255.0


def ycbcr_to_rgb(x: torch.Tensor) -> torch.Tensor:
    """YCbCr in [0, 1] (as made by :func:`rgb_to_ycbcr`) -> RGB in [0, 1]; not clipped."""
    _check(x, "ycbcr_to_rgb")
    inverse = torch.linalg.inv(_matrix(x))
    offset = torch.tensor(YCBCR_OFFSET, dtype=x.dtype, device=x.device).view(3, 1, 1)
    return _apply(inverse, x * 255.0 - offset)


def ycbcr_to_rgb_affine() -> tuple[torch.Tensor, torch.Tensor]:
    """``(M, o)`` (float64, ``3 x 3`` and ``3``) with ``ycbcr_to_rgb(x) == M @ x + o`` per pixel, for
    callers that fold the conversion into another linear step."""
    inverse = torch.linalg.inv(torch.tensor(RGB_TO_YCBCR, dtype=torch.float64))
    return inverse * 255.0, -(inverse @ torch.tensor(YCBCR_OFFSET, dtype=torch.float64))


def rgb_to_y(x: torch.Tensor) -> torch.Tensor:
    """RGB in [0, 1] -> Y in [0, 1], keeping a channel axis: ``(..., 3, H, W) -> (..., 1, H, W)``."""
    _check(x, "rgb_to_y")
    r, g, b = x.unbind(dim=-3)
    y = (16.0 + 65.481 * r + 128.553 * g + 24.966 * b) / 255.0
    return y.unsqueeze(-3)
