"""Load-time inference optimisations, each checked against the original network.

- :func:`fold_batchnorm`: ``Conv2d -> BatchNorm2d`` (eval statistics) becomes one ``Conv2d``.
- :func:`convtranspose_to_pixelshuffle`: a ``ConvTranspose2d`` with stride ``s`` whose output is
  exactly ``s`` times its input (``kernel - 2 * padding - 1 + output_padding - (s - 1) == 0``,
  FSRCNN's deconvolution) becomes a ``Conv2d`` to ``s*s`` times the channels followed by
  ``PixelShuffle(s)``: the same arithmetic without the zero-stuffed input.
- channels_last memory format (faster convolutions on CPU oneDNN and on tensor cores).

:func:`optimize_for_inference` applies them one by one and keeps each only when the output on a
random input matches the unoptimised network (up to float rounding); the result says what was
applied. Networks are deep-copied, never modified in place.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

__all__ = [
    "OptimizeReport",
    "optimize_for_inference",
    "fold_batchnorm",
    "convtranspose_to_pixelshuffle",
    "SubPixelConv",
    "outputs_match",
]


@dataclass
class OptimizeReport:
    applied: list[str] = field(default_factory=list)
    rejected: dict[str, str] = field(default_factory=dict)  # name -> why


# -- BatchNorm folding ------------------------------------------------------------------------


def _fold_pair(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> nn.Conv2d:
    """A new Conv2d equal to ``bn(conv(x))`` with ``bn`` using its running statistics."""
    assert bn.running_mean is not None and bn.running_var is not None
    fused = copy.deepcopy(conv)
    w = conv.weight.detach().double()
    b = conv.bias.detach().double() if conv.bias is not None else torch.zeros(w.shape[0], dtype=torch.float64)
    inv = torch.rsqrt(bn.running_var.double() + bn.eps)
    gamma = bn.weight.detach().double() if bn.weight is not None else torch.ones_like(inv)
    beta = bn.bias.detach().double() if bn.bias is not None else torch.zeros_like(inv)
    k = gamma * inv
    fused.weight = nn.Parameter((w * k.reshape(-1, 1, 1, 1)).to(conv.weight.dtype), requires_grad=False)
    fused.bias = nn.Parameter(((b - bn.running_mean.double()) * k + beta).to(conv.weight.dtype), requires_grad=False)
    return fused


def _foldable(conv: Any, bn: Any) -> bool:
    return (
        isinstance(conv, nn.Conv2d)
        and type(bn) is nn.BatchNorm2d
        and bn.track_running_stats
        and bn.running_mean is not None
        and bn.num_features == conv.out_channels
    )


def fold_batchnorm(module: nn.Module) -> tuple[nn.Module, int]:
    """Fold every ``Conv2d`` immediately followed by a ``BatchNorm2d``; returns (copy, pairs folded).

    Pairs are found as neighbours in an ``nn.Sequential`` and, for other layouts, in a
    ``torch.fx`` trace (when the network traces; otherwise those stay as they are).
    """
    module = copy.deepcopy(module).eval()
    folded = 0
    for parent in list(module.modules()):
        if not isinstance(parent, nn.Sequential):
            continue
        names = list(parent._modules)
        for a, b in zip(names, names[1:]):
            conv, bn = parent._modules[a], parent._modules[b]
            if _foldable(conv, bn):
                parent._modules[a] = _fold_pair(conv, bn)  # type: ignore[arg-type]
                parent._modules[b] = nn.Identity()
                folded += 1
    if any(type(m) is nn.BatchNorm2d for m in module.modules()):
        traced = _fold_fx(module)
        if traced is not None:
            module, n = traced
            folded += n
    return module, folded


def _fold_fx(module: nn.Module) -> tuple[nn.Module, int] | None:
    try:
        import torch.fx as fx

        gm = fx.symbolic_trace(module)
    except Exception:
        return None
    mods = dict(gm.named_modules())
    n = 0
    for node in list(gm.graph.nodes):
        if node.op != "call_module" or type(mods.get(node.target)) is not nn.BatchNorm2d:
            continue
        src = node.args[0] if node.args else None
        if not isinstance(src, fx.Node) or src.op != "call_module" or len(src.users) != 1:
            continue
        conv, bn = mods[src.target], mods[node.target]
        if not _foldable(conv, bn):
            continue
        _set_submodule(gm, str(src.target), _fold_pair(conv, bn))
        node.replace_all_uses_with(src)
        gm.graph.erase_node(node)
        n += 1
    if n == 0:
        return None
    gm.graph.lint()
    gm.recompile()
    gm.delete_all_unused_submodules()
    return gm, n


def _set_submodule(root: nn.Module, target: str, new: nn.Module) -> None:
    parent_name, _, name = target.rpartition(".")
    parent = root.get_submodule(parent_name) if parent_name else root
    setattr(parent, name, new)


# -- ConvTranspose2d -> Conv2d + PixelShuffle ---------------------------------------------------


class SubPixelConv(nn.Module):
    """``PixelShuffle(s)(conv(pad(x)))``: a transposed convolution in sub-pixel form."""

    def __init__(self, conv: nn.Conv2d, scale: int, pads: tuple[int, int, int, int]):
        super().__init__()
        self.conv = conv
        self.shuffle = nn.PixelShuffle(scale)
        self.pads = pads  # left, right, top, bottom (F.pad order)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if any(self.pads):
            x = F.pad(x, self.pads)
        return self.shuffle(self.conv(x))


def _axis_taps(k: int, s: int, p: int) -> tuple[int, int]:
    """(P, K): left padding and kernel length of the equivalent stride-1 convolution on one axis."""
    d_max = max((k - 1 - r - p) // s for r in range(s))
    d_min = min(-((r + p) // s) for r in range(s))
    return d_max, d_max - d_min + 1


def _subpixel_from(tconv: nn.ConvTranspose2d) -> SubPixelConv | None:
    sy, sx = tconv.stride
    if sy != sx or sy < 2 or tconv.groups != 1 or tconv.dilation != (1, 1) or tconv.padding_mode != "zeros":
        return None
    s = sy
    (ky, kx), (py, px), (oy, ox) = tconv.kernel_size, tconv.padding, tconv.output_padding
    # output length (H-1)*s - 2p + k + op must be exactly H*s
    if ky - 2 * py - s + oy != 0 or kx - 2 * px - s + ox != 0:
        return None
    Py, Ky = _axis_taps(ky, s, py)
    Px, Kx = _axis_taps(kx, s, px)
    w = tconv.weight.detach()  # (in, out, ky, kx)
    cin, cout = w.shape[0], w.shape[1]
    new_w = torch.zeros(cout * s * s, cin, Ky, Kx, dtype=w.dtype)
    for ry in range(s):
        for rx in range(s):
            for jy in range(Ky):
                ty = (Py - jy) * s + ry + py
                if not 0 <= ty < ky:
                    continue
                for jx in range(Kx):
                    tx = (Px - jx) * s + rx + px
                    if not 0 <= tx < kx:
                        continue
                    new_w[ry * s + rx :: s * s, :, jy, jx] = w[:, :, ty, tx].t()
    conv = nn.Conv2d(cin, cout * s * s, (Ky, Kx), bias=tconv.bias is not None)
    conv.weight = nn.Parameter(new_w, requires_grad=False)
    if tconv.bias is not None:
        conv.bias = nn.Parameter(tconv.bias.detach().repeat_interleave(s * s), requires_grad=False)
    return SubPixelConv(conv, s, (Px, Kx - 1 - Px, Py, Ky - 1 - Py))


def convtranspose_to_pixelshuffle(module: nn.Module) -> tuple[nn.Module, int]:
    """Replace every convertible ``ConvTranspose2d``; returns (copy, how many were replaced)."""
    module = copy.deepcopy(module).eval()
    n = 0
    for name, child in list(module.named_modules()):
        if type(child) is nn.ConvTranspose2d:
            new = _subpixel_from(child)
            if new is not None:
                _set_submodule(module, name, new)
                n += 1
    return module, n


# -- checking and the whole pass ----------------------------------------------------------------


def outputs_match(a: torch.Tensor, b: torch.Tensor, rtol: float = 1e-4, atol: float = 1e-5) -> bool:
    if a.shape != b.shape:
        return False
    a, b = a.double(), b.double()
    tol = atol + rtol * float(a.abs().max().clamp(min=1.0))
    return bool(torch.isfinite(b).all()) and float((a - b).abs().max()) <= tol


def _run(module: nn.Module, x: torch.Tensor, channels_last: bool = False) -> torch.Tensor:
    with torch.inference_mode():
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return module(x).float().contiguous()


def optimize_for_inference(
    module: nn.Module,
    example: torch.Tensor,
    fold_bn: bool = True,
    subpixel: bool = True,
    channels_last: bool = True,
) -> tuple[nn.Module, OptimizeReport, bool]:
    """Apply the optimisations that keep the output of ``module`` on ``example`` (CPU, float32).

    Returns ``(module, report, use_channels_last)``; the input ``module`` is not modified.
    """
    report = OptimizeReport()
    module = module.eval()
    reference = _run(module, example)
    current = module
    steps = []
    if fold_bn:
        steps.append(("fold_batchnorm", fold_batchnorm))
    if subpixel:
        steps.append(("convtranspose_to_pixelshuffle", convtranspose_to_pixelshuffle))
    for name, fn in steps:
        try:
            candidate, count = fn(current)
        except Exception as exc:  # an exotic network: keep it as it is
            report.rejected[name] = f"{type(exc).__name__}: {exc}"
            continue
        if count == 0:
            continue
        if outputs_match(reference, _run(candidate, example)):
            current = candidate
            report.applied.append(f"{name} ({count})")
        else:
            report.rejected[name] = "output differs"
    use_cl = False
    if channels_last:
        try:
            candidate = copy.deepcopy(current).to(memory_format=torch.channels_last)
            if outputs_match(reference, _run(candidate, example, channels_last=True)):
                current, use_cl = candidate, True
                report.applied.append("channels_last")
            else:
                report.rejected["channels_last"] = "output differs"
        except Exception as exc:
            report.rejected["channels_last"] = f"{type(exc).__name__}: {exc}"
    for p in current.parameters():
        p.requires_grad_(False)
    return current, report, use_cl
