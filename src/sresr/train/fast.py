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

from ..optimize import SubPixelPlan, _padding_and_crop, crop_and_shuffle, subpixel_plan

__all__ = ["SubPixelConvTranspose2d", "subpixel_transposed_convs", "FastPReLU", "fast_prelu", "training_forms"]


class _SubPixelForward(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight, bias, layer):  # type: ignore[override]
        plan = layer._subpixel_plan
        y = F.conv2d(x, plan.kernel(weight), plan.bias(bias) if bias is not None else None,
                     padding=layer._subpixel_padding)
        ctx.save_for_backward(x, weight)
        ctx.layer = layer
        ctx.has_bias = bias is not None
        return crop_and_shuffle(y, layer._subpixel_crop, plan.scale)

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

    _subpixel_plan: SubPixelPlan
    _subpixel_padding: tuple[int, int]
    _subpixel_crop: tuple[int, int, int, int]

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
            plan = subpixel_plan(child)
            if plan is not None:
                child.__class__ = SubPixelConvTranspose2d
                child._subpixel_plan = plan
                child._subpixel_padding, child._subpixel_crop = _padding_and_crop(plan.pads)
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
