"""Training-time forms of layers that compute the same function faster (on CPU).

- :func:`subpixel_transposed_convs`: a ``ConvTranspose2d`` whose output is exactly ``stride``
  times its input (FSRCNN's deconvolution) runs its forward pass as a stride-1 convolution to
  ``stride**2`` times the channels and a pixel shuffle (:mod:`sresr.optimize`'s inference
  rewrite, here with the kernel rebuilt from the layer's own weight at every call), and its
  backward pass as the transposed convolution's own (``aten.convolution_backward``). PyTorch's CPU
  transposed convolution runs its forward about 3x slower than that convolution, while its
  backward is the fast one, so each pass takes the faster form (with channels_last, FSRCNN trains
  1.4-1.6x faster: benchmarks/bench_train.py, BENCHMARKS.md).

- :func:`fast_prelu`: ``PReLU`` with a backward pass of four vectorised element-wise passes and a
  reduction (relu's backward, a lerp by the slopes, the slope gradient as a sum) instead of
  PyTorch's CPU PReLU backward kernel, which takes about four times as long; the forward is
  PReLU's own.

Each layer keeps its class's parameters and state-dict keys (its class is swapped for a subclass
that only overrides ``forward``), so checkpoints, optimizers and weights files are unaffected, and
gradients are the original layer's up to float rounding (tests/test_train.py).
:func:`training_forms` applies both.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from ..optimize import _axis_taps, pixel_shuffle

__all__ = ["SubPixelConvTranspose2d", "subpixel_transposed_convs", "FastPReLU", "fast_prelu", "training_forms"]


def _plan(tconv: nn.ConvTranspose2d) -> tuple | None:
    """(index, taps, pads, crop) rebuilding the sub-pixel kernel from the weight, or None when the
    layer is not an exact ``stride``-times upsampler."""
    sy, sx = tconv.stride
    if sy != sx or sy < 2 or tconv.groups != 1 or tconv.dilation != (1, 1) or tconv.padding_mode != "zeros":
        return None
    s = sy
    (ky, kx), (py, px), (oy, ox) = tconv.kernel_size, tconv.padding, tconv.output_padding
    if ky - 2 * py - s + oy != 0 or kx - 2 * px - s + ox != 0:
        return None
    Py, Ky = _axis_taps(ky, s, py)
    Px, Kx = _axis_taps(kx, s, px)
    zero = ky * kx  # index of an appended zero tap
    index = torch.full((s * s, Ky, Kx), zero, dtype=torch.long)
    for ry in range(s):
        for rx in range(s):
            for jy in range(Ky):
                ty = (Py - jy) * s + ry + py
                for jx in range(Kx):
                    tx = (Px - jx) * s + rx + px
                    if 0 <= ty < ky and 0 <= tx < kx:
                        index[ry * s + rx, jy, jx] = ty * kx + tx
    top, bottom, left, right = Py, Ky - 1 - Py, Px, Kx - 1 - Px
    pad_y, pad_x = max(top, bottom), max(left, right)
    crop = (pad_y - top, pad_y - bottom, pad_x - left, pad_x - right)
    return index.flatten(), (Ky, Kx), (pad_y, pad_x), crop


class _SubPixelForward(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight, bias, layer):  # type: ignore[override]
        index, (Ky, Kx), pads, (top, bottom, left, right) = layer._subpixel_plan
        s = layer.stride[0]
        cin, cout = weight.shape[0], weight.shape[1]
        flat = torch.cat([weight.reshape(cin, cout, -1), weight.new_zeros(cin, cout, 1)], dim=2)
        kernel = flat.index_select(2, index.to(weight.device)).reshape(cin, cout, s * s, Ky, Kx)
        kernel = kernel.permute(1, 2, 0, 3, 4).reshape(cout * s * s, cin, Ky, Kx)
        b = bias.repeat_interleave(s * s) if bias is not None else None
        y = F.conv2d(x, kernel, b, padding=pads)
        if top or bottom or left or right:
            y = y[..., top : y.shape[-2] - bottom, left : y.shape[-1] - right]
        ctx.save_for_backward(x, weight)
        ctx.layer = layer
        ctx.has_bias = bias is not None
        return pixel_shuffle(y, s)

    @staticmethod
    def backward(ctx, grad):  # type: ignore[override]
        x, weight = ctx.saved_tensors
        layer = ctx.layer
        mask = [ctx.needs_input_grad[0], ctx.needs_input_grad[1], ctx.has_bias and ctx.needs_input_grad[2]]
        gx, gw, gb = torch.ops.aten.convolution_backward(
            grad.contiguous(), x, weight, [weight.shape[1]] if ctx.has_bias else None, list(layer.stride),
            list(layer.padding), list(layer.dilation), True, list(layer.output_padding), layer.groups, mask)
        return gx, gw, gb, None


class SubPixelConvTranspose2d(nn.ConvTranspose2d):
    """A ``ConvTranspose2d`` whose forward runs in sub-pixel form (see the module docstring).
    Made by :func:`subpixel_transposed_convs`, never constructed directly."""

    _subpixel_plan: tuple

    def forward(self, input: torch.Tensor, output_size: list[int] | None = None) -> torch.Tensor:
        if output_size is not None or input.dim() != 4:
            return super().forward(input, output_size)
        return _SubPixelForward.apply(input, self.weight, self.bias, self)


def subpixel_transposed_convs(module: nn.Module) -> int:
    """Swap (in place) every exact-upsampling ``ConvTranspose2d`` in ``module`` to
    :class:`SubPixelConvTranspose2d`; returns how many."""
    n = 0
    for child in module.modules():
        if type(child) is nn.ConvTranspose2d:
            plan = _plan(child)
            if plan is not None:
                child.__class__ = SubPixelConvTranspose2d
                child._subpixel_plan = plan
                n += 1
    return n


class _PReLU(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight):  # type: ignore[override]
        ctx.save_for_backward(x, weight)
        return F.prelu(x, weight)

    @staticmethod
    def backward(ctx, grad):  # type: ignore[override]
        x, weight = ctx.saved_tensors
        slope = weight.view(1, -1, *([1] * (x.dim() - 2))) if x.dim() > 1 and weight.numel() > 1 else weight
        kept = torch.ops.aten.threshold_backward(grad, x, 0)  # grad where x > 0, else 0
        gx = torch.lerp(grad, kept, 1 - slope) if ctx.needs_input_grad[0] else None  # x > 0: grad; else slope * grad
        gw = None
        if ctx.needs_input_grad[1]:
            neg = (grad - kept).mul_(x)  # grad * x where x <= 0, else 0
            if weight.numel() == 1:
                gw = neg.sum().reshape(weight.shape)
            else:
                gw = (neg.sum([0, *range(2, x.dim())]) if x.dim() > 1 else neg).reshape(weight.shape)
        return gx, gw


class FastPReLU(nn.PReLU):
    """``PReLU`` with the faster backward (see the module docstring); made by :func:`fast_prelu`."""

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        return _PReLU.apply(input, self.weight)


def fast_prelu(module: nn.Module) -> int:
    """Swap (in place) every ``PReLU`` in ``module`` to :class:`FastPReLU`; returns how many."""
    n = 0
    for child in module.modules():
        if type(child) is nn.PReLU:
            child.__class__ = FastPReLU
            n += 1
    return n


def training_forms(module: nn.Module) -> list[str]:
    """Apply every rewrite of this module to ``module`` (in place); the names of those that changed
    a layer, with counts (for the run's log)."""
    done = []
    for name, rewrite in (("subpixel_transposed_convs", subpixel_transposed_convs), ("fast_prelu", fast_prelu)):
        n = rewrite(module)
        if n:
            done.append(f"{name} ({n})")
    return done
