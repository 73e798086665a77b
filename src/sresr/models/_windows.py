"""Window attention and the other pieces shared by the transformer families (SwinIR, HAT, DAT).

Tokens are kept as ``B x H x W x C`` tensors (channels last), so the convolutions between
transformer blocks read them through a permuted view (a channels_last NCHW tensor) without a copy.

Shifted windows (Liu et al., Swin Transformer) roll the feature map by half a window, attend
inside the windows of the rolled map and roll back. The windows that wrap around the border hold
pixels from opposite edges of the image; a mask keeps those groups apart, so in effect the
shifted grid's windows are cut at the image border. The published code adds -100 to the masked
logits; here they are excluded outright (-inf). The two differ by ``exp(-100) ~ 4e-44`` of a
softmax weight, nothing in float32 unless a masked logit exceeds its row's largest unmasked logit
by about 90 (trained networks are nowhere near), and excluding them makes a tile's output depend on
nothing outside its receptive field at all, so tiled and whole-image runs agree exactly.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn


def window_partition(x: torch.Tensor, window: int) -> torch.Tensor:
    """``B x H x W x C`` -> ``(B * nW) x window*window x C``, windows in row-major order per image."""
    b, h, w, c = x.shape
    x = x.view(b, h // window, window, w // window, window, c)
    return x.permute(0, 1, 3, 2, 4, 5).reshape(-1, window * window, c)


def window_reverse(windows: torch.Tensor, window: int, h: int, w: int) -> torch.Tensor:
    """Inverse of :func:`window_partition`: ``(B * nW) x window*window x C`` -> ``B x H x W x C``."""
    c = windows.shape[-1]
    b = windows.shape[0] // ((h // window) * (w // window))
    x = windows.view(b, h // window, w // window, window, window, c)
    return x.permute(0, 1, 3, 2, 4, 5).reshape(b, h, w, c)


def relative_position_index(window: int) -> torch.Tensor:
    """``window^2 x window^2``: for query ``i`` and key ``j`` of a window, the row of the
    ``(2 window - 1)^2``-entry bias table for their offset ``(dy, dx)``: ``(dy + window - 1) *
    (2 window - 1) + dx + window - 1`` (the Swin Transformer's table layout)."""
    ys, xs = torch.meshgrid(torch.arange(window), torch.arange(window), indexing="ij")
    ys, xs = ys.flatten(), xs.flatten()
    dy = ys[:, None] - ys[None, :] + window - 1
    dx = xs[:, None] - xs[None, :] + window - 1
    return dy * (2 * window - 1) + dx


def shift_mask(h: int, w: int, window: int, shift: int, device: torch.device | None = None,
               dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Additive mask ``nW x N x N`` (0 or -inf) for the shifted windows of an ``h x w`` map rolled
    by ``-shift``: the last window row and column of the rolled map hold two (or four) groups of
    pixels from opposite image edges that must not attend to each other."""
    labels = torch.zeros(h, w, device=device)
    cuts = (slice(0, h - window), slice(h - window, h - shift), slice(h - shift, h))
    cols = (slice(0, w - window), slice(w - window, w - shift), slice(w - shift, w))
    for i, rows in enumerate(cuts):
        for j, cs in enumerate(cols):
            labels[rows, cs] = 3 * i + j
    groups = window_partition(labels[None, :, :, None], window)[..., 0]  # nW x N
    apart = groups[:, None, :] != groups[:, :, None]
    return torch.zeros(apart.shape, device=device, dtype=dtype).masked_fill(apart, float("-inf"))


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class WindowAttention(nn.Module):
    """Multi-head self-attention inside ``window x window`` windows with a learned relative
    position bias (keys ``relative_position_bias_table``, ``qkv``, ``proj``). The index into the
    bias table is a constant, rebuilt at construction (a non-persistent buffer): published files
    carry it as ``relative_position_index``, and the loaders ignore that key."""

    def __init__(self, dim: int, window: int, heads: int):
        super().__init__()
        if dim % heads:
            raise ValueError(f"embedding dimension {dim} is not a multiple of {heads} heads")
        self.window = window
        self.heads = heads
        self.relative_position_bias_table = nn.Parameter(torch.zeros((2 * window - 1) ** 2, heads))
        nn.init.trunc_normal_(self.relative_position_bias_table, std=0.02)
        self.register_buffer("relative_position_index", relative_position_index(window), persistent=False)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def bias(self) -> torch.Tensor:
        n = self.window * self.window
        table = self.relative_position_bias_table
        return table[self.relative_position_index.reshape(-1)].view(n, n, -1).permute(2, 0, 1)  # heads x N x N

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """``x``: ``(B * nW) x N x C``; ``mask``: ``nW x N x N`` additive, or None."""
        bw, n, c = x.shape
        qkv = self.qkv(x).view(bw, n, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)  # (B * nW) x heads x N x d
        bias = self.bias().to(q.dtype)
        if mask is None:
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias)
        else:
            nw = mask.shape[0]
            shape = (bw // nw, nw, self.heads, n, -1)
            out = F.scaled_dot_product_attention(q.view(shape), k.view(shape), v.view(shape),
                                                 attn_mask=bias + mask.to(q.dtype)[:, None])
        return self.proj(out.reshape(bw, self.heads, n, -1).transpose(1, 2).reshape(bw, n, c))


class SwinBlock(nn.Module):
    """LayerNorm -> (shifted) window attention -> residual; LayerNorm -> MLP -> residual
    (keys ``norm1``, ``attn.*``, ``norm2``, ``mlp.fc1``, ``mlp.fc2``). HAT's block adds a
    convolution branch (:mod:`sresr.models.hat.arch`)."""

    def __init__(self, dim: int, heads: int, window: int, shift: int, mlp_ratio: float):
        super().__init__()
        self.window = window
        self.shift = shift
        self.norm1 = nn.LayerNorm(dim)
        self.attn = WindowAttention(dim, window, heads)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def attend(self, y: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        """Window attention over ``y`` (``B x H x W x C``, already normalised)."""
        _, h, w, _ = y.shape
        s = self.shift
        if s:
            y = torch.roll(y, shifts=(-s, -s), dims=(1, 2))
        y = window_reverse(self.attn(window_partition(y, self.window), mask if s else None), self.window, h, w)
        return torch.roll(y, shifts=(s, s), dims=(1, 2)) if s else y

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        x = x + self.attend(self.norm1(x), mask)
        return x + self.mlp(self.norm2(x))


class MaskCache:
    """The shifted-window mask of the last map size seen (tiles all have one size)."""

    def __init__(self) -> None:
        self._key: tuple | None = None
        self._mask: torch.Tensor | None = None

    def get(self, h: int, w: int, window: int, device: torch.device) -> torch.Tensor:
        if torch.jit.is_tracing():  # an export: computed from the traced size, never a cached constant
            return shift_mask(h, w, window, window // 2, device)
        key = (h, w, window, str(device))
        if self._key != key or self._mask is None:
            self._mask = shift_mask(h, w, window, window // 2, device)
            self._key = key
        return self._mask


def pad_to_window(x: torch.Tensor, window: int) -> torch.Tensor:
    """Pad the bottom and right edges to multiples of ``window``: mirror where the image is large
    enough (as the published test scripts do), else repeat the edge."""
    h, w = x.shape[-2:]
    dh, dw = -h % window, -w % window
    if not dh and not dw:
        return x
    mode = "reflect" if dh < h and dw < w else "replicate"
    return F.pad(x, (0, dw, 0, dh), mode=mode)


def as_tuple(values, name: str) -> tuple[int, ...]:
    """A sequence of whole numbers >= 1 (depths, heads) as a tuple; JSON gives lists back."""
    if isinstance(values, int) or not hasattr(values, "__iter__"):
        raise ValueError(f"{name} must be a sequence of whole numbers, got {values!r}")
    out = tuple(values)
    if not out or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in out):
        raise ValueError(f"{name} must be a non-empty sequence of whole numbers >= 1, got {values!r}")
    return out


class PatchNorm(nn.Module):
    """The published ``patch_embed``: only its LayerNorm holds weights (``patch_embed.norm.*``); the
    embedding itself (image to tokens) is a reshape in the network's forward."""

    def __init__(self, dim: int):
        super().__init__()
        self.norm = nn.LayerNorm(dim)


def init_transformer_weights(m: nn.Module) -> None:
    """The published transformers' initialisation (``model.apply``): linear layers truncated
    normal (std 0.02) with zero bias, normalisation layers at identity."""
    if isinstance(m, nn.Linear):
        nn.init.trunc_normal_(m.weight, std=0.02)
        if m.bias is not None:
            nn.init.zeros_(m.bias)
    elif isinstance(m, (nn.LayerNorm, nn.BatchNorm2d)) and m.weight is not None:
        nn.init.ones_(m.weight)
        nn.init.zeros_(m.bias)


def swin_body(net: nn.Module, feat: torch.Tensor) -> torch.Tensor:
    """The body of SwinIR and HAT: ``conv_first``'s features as tokens through ``patch_embed.norm``,
    the residual groups ``net.layers`` (each ``layer(tokens, mask)``) and ``net.norm``, back as an
    ``N x C x H x W`` view. ``net`` holds ``window_size`` and a :class:`MaskCache` ``_masks``."""
    _, _, h, w = feat.shape
    mask = net._masks.get(h, w, net.window_size, feat.device)
    x = net.patch_embed.norm(feat.permute(0, 2, 3, 1))
    for layer in net.layers:
        x = layer(x, mask)
    return net.norm(x).permute(0, 3, 1, 2)


def swin_stem(net: nn.Module, channels: int, embed_dim: int, window_size: int, scale: int, img_range: float) -> None:
    """The parts SwinIR and HAT share before their residual groups: scale, window, the DIV2K mean
    their input is centred on, the window masks, ``conv_first`` and ``patch_embed.norm``."""
    from . import DIV2K_MEAN

    net.scale = scale
    net.window_size = window_size
    net.img_range = img_range
    net._mean = DIV2K_MEAN if channels == 3 else (0.0,) * channels
    net._masks = MaskCache()
    net.conv_first = nn.Conv2d(channels, embed_dim, 3, 1, 1)
    net.patch_embed = PatchNorm(embed_dim)


def pixelshuffle_tail(net: nn.Module, embed_dim: int, num_feat: int, channels: int, stages: list[int]) -> None:
    """SwinIR's classical (and HAT's) upsampler: ``conv_before_upsample`` (conv + LeakyReLU), a
    conv + PixelShuffle per stage, ``conv_last``."""
    net.conv_before_upsample = nn.Sequential(nn.Conv2d(embed_dim, num_feat, 3, 1, 1), nn.LeakyReLU(inplace=True))
    up: list[nn.Module] = []
    for f in stages:
        up += [nn.Conv2d(num_feat, f * f * num_feat, 3, 1, 1), nn.PixelShuffle(f)]
    net.upsample = nn.Sequential(*up)
    net.conv_last = nn.Conv2d(num_feat, channels, 3, 1, 1)


def swin_features(net: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """An image (any size) padded to the window, centred and scaled as SwinIR/HAT do, through
    ``conv_first``, the body (:func:`swin_body`) and ``conv_after_body`` with its skip: the
    features their upsamplers take, and the mean to add back (:func:`swin_output`)."""
    x = pad_to_window(x, net.window_size)
    mean = torch.tensor(net._mean, device=x.device).view(1, -1, 1, 1)
    x = ((x.float() - mean) * net.img_range).to(net.conv_first.weight.dtype)
    feat = net.conv_first(x)
    return (net.conv_after_body(swin_body(net, feat)) + feat).contiguous(), mean


def swin_output(net: nn.Module, out: torch.Tensor, mean: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """The upsampler's output back in [0, 1] units, cropped to ``h x w`` times the scale."""
    out = out.float() / net.img_range + mean
    return out[..., : h * net.scale, : w * net.scale]


def swin_layout(sd: Any) -> dict[str, Any]:
    """What SwinIR's and HAT's published files share, read from the shapes: channels, embed dim,
    the depth and heads of each residual group, the window, the MLP ratio."""
    from ._layouts import count, isqrt_exact, shape

    embed, channels = shape(sd, "conv_first.weight")[:2]
    layers = count(sd, r"layers\.(\d+)\.residual_group\.blocks\.0\.norm1\.weight")
    if layers == 0:
        raise KeyError("layers.0")
    blk = "layers.0.residual_group.blocks.0"
    return {
        "channels": channels, "embed_dim": embed,
        "depths": tuple(count(sd, rf"layers\.{i}\.residual_group\.blocks\.(\d+)\.norm1\.weight") for i in range(layers)),
        "num_heads": tuple(shape(sd, f"layers.{i}.residual_group.blocks.0.attn.relative_position_bias_table")[1]
                           for i in range(layers)),
        "window_size": (isqrt_exact(shape(sd, f"{blk}.attn.relative_position_bias_table")[0]) + 1) // 2,
        "mlp_ratio": shape(sd, f"{blk}.mlp.fc1.weight")[0] / embed,
    }
