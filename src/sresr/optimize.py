"""Load-time inference optimisations, each checked against the original network.

- :func:`fold_batchnorm`: ``Conv2d -> BatchNorm2d`` (eval statistics) becomes one ``Conv2d``.
- :func:`convtranspose_to_pixelshuffle`: a ``ConvTranspose2d`` with stride ``s`` whose output is
  exactly ``s`` times its input (``kernel - 2 * padding - 1 + output_padding - (s - 1) == 0``,
  FSRCNN's deconvolution) becomes a ``Conv2d`` to ``s*s`` times the channels followed by
  ``PixelShuffle(s)``: the same arithmetic without the zero-stuffed input.
- :func:`shuffle_then_conv_to_conv_then_shuffle`: ``PixelShuffle(r) -> [PReLU/ReLU/LeakyReLU] ->
  Conv2d`` to a few output channels (SRResNet's 9x9 conv to RGB at the output resolution, which
  leaves most SIMD lanes of the convolution idle) becomes the activation and an equivalent
  convolution on the low-resolution side to ``r*r`` times the channels, then ``PixelShuffle(r)``.
- :func:`activations_in_place`: one-slope ``PReLU`` as ``LeakyReLU``, and ``ReLU``/``LeakyReLU`` in
  place where their input is a fresh tensor nothing else reads.
- :func:`reparameterize`: every submodule that offers ``reparameterized()`` (a structural
  re-parameterisation, such as SPAN's Conv3XC: 1x1 + 1x1 -> 3x3 -> 1x1 branches that compute one
  3x3 convolution at inference) is replaced by the plain module it returns.
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
    "SubPixelPlan",
    "subpixel_plan",
    "ShuffledConv",
    "shuffle_then_conv_to_conv_then_shuffle",
    "activations_in_place",
    "reparameterize",
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


def _padding_and_crop(pads: tuple[int, int, int, int]) -> tuple[tuple[int, int], tuple[int, int, int, int]]:
    """Zero padding ``pads`` (left, right, top, bottom) as a convolution's own symmetric padding (the
    larger side on both) and the excess to crop off its output (rows top/bottom, columns left/right)."""
    left, right, top, bottom = pads
    py, px = max(top, bottom), max(left, right)
    return (py, px), (py - top, py - bottom, px - left, px - right)


def crop_and_shuffle(y: torch.Tensor, crop: tuple[int, int, int, int], scale: int) -> torch.Tensor:
    """Crop ``y`` (rows top/bottom, columns left/right; a view), then :func:`pixel_shuffle` it."""
    top, bottom, left, right = crop
    if top or bottom or left or right:
        y = y[..., top : y.shape[-2] - bottom, left : y.shape[-1] - right]
    return pixel_shuffle(y, scale)


class SubPixelConv(nn.Module):
    """``PixelShuffle(s)(conv(pad(x)))``: a transposed convolution in sub-pixel form.

    The zero padding ``pads`` (left, right, top, bottom) is done by the convolution itself (the
    larger side on both, then a crop of the excess: a view), not by a padded copy of the input."""

    def __init__(self, conv: nn.Conv2d, scale: int, pads: tuple[int, int, int, int]):
        super().__init__()
        conv.padding, self.crop = _padding_and_crop(pads)
        self.conv = conv
        self.scale = int(scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return crop_and_shuffle(self.conv(x), self.crop, self.scale)


#: below this many output channels a pixel shuffle is faster as a view + one copy than as
#: ``F.pixel_shuffle`` (2-4x on CPU for the last layer of FSRCNN/ESPCN; slower for wide tensors)
_FEW_CHANNELS = 4


def pixel_shuffle(y: torch.Tensor, s: int) -> torch.Tensor:
    """``F.pixel_shuffle(y, s)`` (same values), as a permuted view copied once when few channels come out."""
    n, c, h, w = y.shape
    out_c = c // (s * s)
    if out_c > _FEW_CHANNELS:
        return F.pixel_shuffle(y, s)
    return y.view(n, out_c, s, s, h, w).permute(0, 1, 4, 2, 5, 3).reshape(n, out_c, h * s, w * s)


def _axis_taps(k: int, s: int, p: int) -> tuple[int, int]:
    """(P, K): left padding and kernel length of the equivalent stride-1 convolution on one axis."""
    d_max = max((k - 1 - r - p) // s for r in range(s))
    d_min = min(-((r + p) // s) for r in range(s))
    return d_max, d_max - d_min + 1


@dataclass(frozen=True)
class SubPixelPlan:
    """How an exact ``scale``-times upsampling ``ConvTranspose2d`` runs as a stride-1 convolution to
    ``scale**2`` times the channels followed by a pixel shuffle (made by :func:`subpixel_plan`).

    index: for every tap of the stride-1 kernel, phase by phase (``scale**2 x Ky x Kx``, flattened),
    the transposed kernel's tap it takes (``ky*kx`` flattened), or ``ky*kx`` for a zero.
    pads: the zero padding (left, right, top, bottom) the stride-1 convolution needs."""

    scale: int
    taps: tuple[int, int]
    index: torch.Tensor
    pads: tuple[int, int, int, int]

    def kernel(self, weight: torch.Tensor) -> torch.Tensor:
        """The stride-1 kernel ``(out * s*s, in, Ky, Kx)`` of a transposed kernel ``(in, out, ky, kx)``
        (differentiable in ``weight``)."""
        cin, cout = weight.shape[0], weight.shape[1]
        s2, (Ky, Kx) = self.scale * self.scale, self.taps
        flat = torch.cat([weight.reshape(cin, cout, -1), weight.new_zeros(cin, cout, 1)], dim=2)
        k = flat.index_select(2, self.index.to(weight.device)).reshape(cin, cout, s2, Ky, Kx)
        return k.permute(1, 2, 0, 3, 4).reshape(cout * s2, cin, Ky, Kx)

    def bias(self, bias: torch.Tensor) -> torch.Tensor:
        return bias.repeat_interleave(self.scale * self.scale)


def subpixel_plan(tconv: nn.ConvTranspose2d) -> SubPixelPlan | None:
    """The :class:`SubPixelPlan` of ``tconv``, or None when its output is not exactly ``stride``
    times its input (``kernel - 2 * padding - stride + output_padding == 0``) or it is grouped,
    dilated or not zero-padded."""
    sy, sx = tconv.stride
    if sy != sx or sy < 2 or tconv.groups != 1 or tconv.dilation != (1, 1) or tconv.padding_mode != "zeros":
        return None
    s = sy
    (ky, kx), (py, px), (oy, ox) = tconv.kernel_size, tconv.padding, tconv.output_padding
    if ky - 2 * py - s + oy != 0 or kx - 2 * px - s + ox != 0:
        return None
    Py, Ky = _axis_taps(ky, s, py)
    Px, Kx = _axis_taps(kx, s, px)
    index = torch.full((s * s, Ky, Kx), ky * kx, dtype=torch.long)
    for ry in range(s):
        for rx in range(s):
            for jy in range(Ky):
                ty = (Py - jy) * s + ry + py
                for jx in range(Kx):
                    tx = (Px - jx) * s + rx + px
                    if 0 <= ty < ky and 0 <= tx < kx:
                        index[ry * s + rx, jy, jx] = ty * kx + tx
    return SubPixelPlan(s, (Ky, Kx), index.flatten(), (Px, Kx - 1 - Px, Py, Ky - 1 - Py))


def _subpixel_from(tconv: nn.ConvTranspose2d) -> SubPixelConv | None:
    plan = subpixel_plan(tconv)
    if plan is None:
        return None
    w = tconv.weight.detach()  # (in, out, ky, kx)
    conv = nn.Conv2d(w.shape[0], w.shape[1] * plan.scale**2, plan.taps, bias=tconv.bias is not None)
    conv.weight = nn.Parameter(plan.kernel(w), requires_grad=False)
    if tconv.bias is not None:
        conv.bias = nn.Parameter(plan.bias(tconv.bias.detach()), requires_grad=False)
    return SubPixelConv(conv, plan.scale, plan.pads)


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


# -- PixelShuffle -> act -> Conv2d  ==>  act -> Conv2d -> PixelShuffle ----------------------------


class ShuffledConv(SubPixelConv):
    """``PixelShuffle(r)(conv(pad(act(x))))``: a convolution at the output resolution moved in front
    of the pixel shuffle that feeds it."""

    def __init__(self, act: nn.Module, conv: nn.Conv2d, scale: int, pads: tuple[int, int, int, int]):
        super().__init__(conv, scale, pads)
        self.act = act

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(self.act(x))


# the convolution is moved only where it pays: few output channels (most SIMD lanes idle at the
# output resolution) and at most this many times the multiply-adds after the move
_MOVE_MAX_OUT = 4
_MOVE_MAX_FLOP_RATIO = 2.0


def _shuffled_taps(k: int, p: int, r: int) -> tuple[int, int]:
    """(lo, K): the low-resolution offsets ``lo .. lo + K - 1`` a ``k``-tap, ``p``-padded output-
    resolution kernel reaches, over the ``r`` phases."""
    lo = min((a - p) // r for a in range(r))
    hi = max((a - p + k - 1) // r for a in range(r))
    return lo, hi - lo + 1


def _moved_act(act: nn.Module | None, r: int) -> nn.Module | None:
    if act is None:
        return nn.Identity()
    if type(act) in (nn.ReLU, nn.LeakyReLU):
        return copy.deepcopy(act)
    if type(act) is nn.PReLU:  # per-channel slopes follow their channels through the shuffle
        w = act.weight.detach()
        w = w.repeat_interleave(r * r) if w.numel() > 1 else w.clone()
        new = nn.PReLU(w.numel())
        new.weight = nn.Parameter(w, requires_grad=False)
        return new
    return None


def _moved_conv(conv: nn.Conv2d, r: int) -> tuple[nn.Conv2d, tuple[int, int, int, int]] | None:
    if (conv.stride != (1, 1) or conv.dilation != (1, 1) or conv.groups != 1 or conv.padding_mode != "zeros"
            or not isinstance(conv.padding, tuple) or conv.out_channels > _MOVE_MAX_OUT):
        return None
    (ky, kx), (py, px) = conv.kernel_size, conv.padding
    if ky != 2 * py + 1 or kx != 2 * px + 1:  # output size must equal input size
        return None
    loy, Ky = _shuffled_taps(ky, py, r)
    lox, Kx = _shuffled_taps(kx, px, r)
    if r * r * Ky * Kx > _MOVE_MAX_FLOP_RATIO * ky * kx:
        return None
    w = conv.weight.detach()  # (out, in, ky, kx)
    cout, cin = w.shape[0], w.shape[1]
    new_w = torch.zeros(cout * r * r, cin * r * r, Ky, Kx, dtype=w.dtype)
    for a in range(r):  # output phase (rows)
        for b in range(r):  # output phase (columns)
            for ty in range(ky):
                my, c = divmod(a + ty - py, r)
                for tx in range(kx):
                    mx, d = divmod(b + tx - px, r)
                    # output channel o*r*r + a*r + b reads input channel ch*r*r + c*r + d at (my, mx)
                    new_w[a * r + b :: r * r, c * r + d :: r * r, my - loy, mx - lox] = w[:, :, ty, tx]
    new = nn.Conv2d(cin * r * r, cout * r * r, (Ky, Kx), bias=conv.bias is not None)
    new.weight = nn.Parameter(new_w, requires_grad=False)
    if conv.bias is not None:
        new.bias = nn.Parameter(conv.bias.detach().repeat_interleave(r * r), requires_grad=False)
    return new, (-lox, Kx - 1 + lox, -loy, Ky - 1 + loy)


def _trace(module: nn.Module) -> Any:
    """``torch.fx`` trace that keeps this module's own layers (SubPixelConv, ShuffledConv) as leaves."""
    import torch.fx as fx

    class Tracer(fx.Tracer):
        def is_leaf_module(self, m: nn.Module, qualname: str) -> bool:
            return isinstance(m, SubPixelConv) or super().is_leaf_module(m, qualname)

    return fx.GraphModule(module, Tracer().trace(module))


def shuffle_then_conv_to_conv_then_shuffle(module: nn.Module) -> tuple[nn.Module, int]:
    """Move each ``Conv2d`` that follows a pixel shuffle (and an optional PReLU/ReLU/LeakyReLU) in front
    of the shuffle, when it pays (see ``_MOVE_MAX_*``); returns (copy, how many were moved).
    Works on a ``torch.fx`` trace; a network that does not trace is returned unchanged."""
    import torch.fx as fx

    try:
        gm = _trace(copy.deepcopy(module).eval())
    except Exception:
        return module, 0
    mods = dict(gm.named_modules())

    def shuffle_factor(node: fx.Node) -> int | None:
        if node.op == "call_function" and node.target in (F.pixel_shuffle, torch.pixel_shuffle):
            r = node.args[1] if len(node.args) > 1 else node.kwargs.get("upscale_factor")
            return int(r) if isinstance(r, int) else None
        if node.op == "call_module" and type(mods.get(str(node.target))) is nn.PixelShuffle:
            return int(mods[str(node.target)].upscale_factor)
        return None

    moved = 0
    for node in list(gm.graph.nodes):
        if node.op != "call_module" or type(mods.get(str(node.target))) is not nn.Conv2d:
            continue
        prev = node.args[0] if node.args else None
        if not isinstance(prev, fx.Node) or len(prev.users) != 1 or len(node.args) != 1 or node.kwargs:
            continue
        act_node, act = None, None
        if prev.op == "call_module" and type(mods.get(str(prev.target))) in (nn.PReLU, nn.ReLU, nn.LeakyReLU):
            act_node, act = prev, mods[str(prev.target)]
            prev = prev.args[0] if prev.args else None
            if not isinstance(prev, fx.Node) or len(prev.users) != 1:
                continue
        r = shuffle_factor(prev)
        if r is None or r < 2:
            continue
        new_act = _moved_act(act, r)
        conv_pads = _moved_conv(mods[str(node.target)], r)
        if new_act is None or conv_pads is None:
            continue
        name = f"shuffled_conv_{moved}"
        gm.add_submodule(name, ShuffledConv(new_act, conv_pads[0], r, conv_pads[1]))
        with gm.graph.inserting_after(node):
            new_node = gm.graph.call_module(name, (prev.args[0],))
        node.replace_all_uses_with(new_node)
        for dead in (node, act_node, prev):
            if dead is not None and not dead.users:
                gm.graph.erase_node(dead)
        moved += 1
    if moved == 0:
        return module, 0
    gm.graph.lint()
    gm.recompile()
    gm.delete_all_unused_submodules()
    return gm, moved


# -- activations: single-slope PReLU as LeakyReLU, in place where nothing else reads the input ----

#: producers whose output is a fresh tensor (not a view of another), safe to overwrite when the
#: activation is its only reader
_FRESH_PRODUCERS = (nn.Conv2d, nn.ConvTranspose2d, nn.BatchNorm2d, nn.PixelShuffle, nn.Linear, SubPixelConv)


def activations_in_place(module: nn.Module) -> tuple[nn.Module, int]:
    """``PReLU`` with one slope becomes ``LeakyReLU`` (the same function; its kernel is ~4x faster
    on CPU), and ``ReLU``/``LeakyReLU`` modules run in place wherever every call reads a fresh
    tensor that nothing else reads (a convolution's or pixel shuffle's output): on large tiles a
    new buffer costs more than the activation itself. Works on a copy (the in-place decisions on
    its ``torch.fx`` trace: none when it does not trace); returns (copy, how many modules changed)."""
    import torch.fx as fx

    module = copy.deepcopy(module).eval()
    changed = 0
    for name, mod in list(module.named_modules()):  # needs no trace
        if type(mod) is nn.PReLU and mod.weight.numel() == 1:
            _set_submodule(module, name, nn.LeakyReLU(float(mod.weight.detach().reshape(()))))
            changed += 1
    try:
        gm = _trace(module)
    except Exception:
        return module, changed
    mods = dict(module.named_modules())

    def fresh_and_alone(node: fx.Node) -> bool:
        if not node.args or not isinstance(node.args[0], fx.Node):
            return False
        src = node.args[0]
        if len(src.users) != 1:
            return False
        if src.op == "call_module":
            return isinstance(mods.get(str(src.target)), _FRESH_PRODUCERS)
        return src.op == "call_function" and src.target in (F.pixel_shuffle, torch.pixel_shuffle, F.conv2d)

    # an activation module may be called at several places: in place only if every call allows it
    verdict: dict[nn.Module, bool] = {}
    for node in gm.graph.nodes:
        if node.op != "call_module":
            continue
        mod = mods.get(str(node.target))
        act = mod.act if isinstance(mod, ShuffledConv) else mod  # ShuffledConv applies act to its input
        if type(act) in (nn.ReLU, nn.LeakyReLU):
            verdict[act] = verdict.get(act, True) and fresh_and_alone(node)
    for act, ok in verdict.items():
        if ok and not act.inplace:
            act.inplace = True
            changed += 1
    return module, changed


# -- structural re-parameterisation (RepVGG-style blocks) ----------------------------------------


def reparameterize(module: nn.Module) -> tuple[nn.Module, int]:
    """Replace every submodule (outermost first) that has a callable ``reparameterized()`` by the
    module it returns: the block's inference-time equivalent (SPAN's ``Conv3XC`` returns one 3x3
    ``nn.Conv2d``). Works on an eval-mode copy; returns (copy, how many were replaced)."""
    module = copy.deepcopy(module).eval()
    n = 0
    done: list[str] = []
    for name, child in list(module.named_modules()):
        if not name or any(name.startswith(d + ".") for d in done):
            continue
        fn = getattr(child, "reparameterized", None)
        if callable(fn):
            new = fn()
            if isinstance(new, nn.Module):
                _set_submodule(module, name, new.eval())
                done.append(name)
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
    activations: bool = True,
    reparam: bool = True,
) -> tuple[nn.Module, OptimizeReport, bool]:
    """Apply the optimisations that keep the output of ``module`` on ``example`` (CPU, float32).

    Returns ``(module, report, use_channels_last)``; the input ``module`` is not modified.
    """
    report = OptimizeReport()
    module = module.eval()
    reference = _run(module, example)
    current = module
    steps = []
    if reparam:
        steps.append(("reparameterize", reparameterize))
    if fold_bn:
        steps.append(("fold_batchnorm", fold_batchnorm))
    if subpixel:
        steps.append(("convtranspose_to_pixelshuffle", convtranspose_to_pixelshuffle))
        steps.append(("shuffle_then_conv_to_conv_then_shuffle", shuffle_then_conv_to_conv_then_shuffle))
    if activations:
        steps.append(("activations_in_place", activations_in_place))
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
