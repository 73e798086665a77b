"""HAT, the Hybrid Attention Transformer (Chen et al., CVPR 2023), written from the paper with the
key names of the authors' ``hat/archs/hat_arch.py`` so that their release files load as published.

Like SwinIR (:mod:`sresr.models.swinir.arch`): ``conv_first`` -> ``patch_embed.norm`` ->
``layers.{i}`` (residual hybrid attention groups) -> ``norm`` -> ``conv_after_body`` (+ skip) ->
``conv_before_upsample.0`` + LeakyReLU(0.01), ``upsample`` (pixel shuffle stages), ``conv_last``.
A group is ``residual_group.blocks.{j}`` (hybrid attention blocks), then
``residual_group.overlap_attn`` (overlapping cross-attention), then ``conv`` (3x3), plus the skip.

* Hybrid attention block: LayerNorm, then (shifted) window self-attention (window 16) plus, in
  parallel, a channel-attention block ``conv_block.cab`` (3x3 conv to ``dim / compress_ratio``,
  GELU, 3x3 conv back, RCAN channel attention: global average pool, 1x1 conv to ``dim /
  squeeze_factor``, ReLU, 1x1 conv, sigmoid) scaled by ``conv_scale`` (0.01); then the MLP.
* Overlapping cross-attention: the queries of each 16x16 window attend to the keys and values of
  a 24x24 window around it (``overlap_ratio`` 0.5; zero padding at the border, as published),
  with its own relative position bias table of ``(16 + 24 - 1)^2`` entries. The published index
  into that table is not the plain offset: it shifts by ``window - overlap_window + 1`` and lets
  negative indices wrap around the table (Python indexing); :func:`relative_position_index_oca`
  reproduces it exactly, since the released tables were trained through it.

Published variants (``variant=``): ``"hat"`` (embed 180, 6 groups of 6 blocks, 6 heads, compress
3, squeeze 30; the default), ``"hat-s"`` (embed 144, compress 24, squeeze 24), ``"hat-l"`` (12
groups). All: window 16, MLP ratio 2, ``img_range`` 1, DIV2K mean shift (in fp32).

Tiling is **not exact**: the channel attention pools over the whole map it runs on, so a tile's
channel weights differ from the whole image's (``geometry(...).exact`` is False). The receptive
field of everything else (the default pad) is computed exactly as for SwinIR, the channel
attention's two 3x3 convolutions running beside each window attention and the overlapping
attention reaching 4 pixels past its window: 389 input pixels for HAT and HAT-S, 773 for HAT-L
(pads of 400 and 784 after rounding to the window), so on the CPU's default tile an image needs
more than about 1000 px a side before it is cut at all. Measured with :func:`tiling_error` on Set5
'bird' (288 px), tiles of 64 px at the default pad, HAT's width (embed 180, window 16) and one
group of 6 blocks, random weights at their initialisation: max |tiled - whole| = 1.2e-6 with the
published ``conv_scale`` 0.01 (the channel-attention branch enters every block multiplied by
0.01) and 1.3e-4 with ``conv_scale`` 1, both far below 1/255; a reduced network (embed 12) whose
weights are perturbed by N(0, 0.1) gives 6.4e-4 (0.16/255) at 0.01. Perturbing the full-width
network that much makes its output blow up to tens (no longer an image) and the tiled difference
with it; what the released weights give needs the release files (not available here).
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .. import _rf, check_counts
from .._layouts import Layout, isqrt_exact, load_with_layouts, shape
from .._upsample import shuffle_scale, shuffle_stages
from .._windows import (
    Mlp,
    SwinBlock,
    as_tuple,
    init_transformer_weights,
    pixelshuffle_tail,
    swin_body,
    swin_features,
    swin_layout,
    swin_output,
    swin_stem,
)
from ..rcan.arch import ChannelAttention  # the same module and keys as RCAN's

PRESETS: dict[str, dict[str, Any]] = {
    "hat": {"embed_dim": 180, "depths": (6,) * 6, "num_heads": (6,) * 6, "compress_ratio": 3, "squeeze_factor": 30},
    "hat-s": {"embed_dim": 144, "depths": (6,) * 6, "num_heads": (6,) * 6, "compress_ratio": 24, "squeeze_factor": 24},
    "hat-l": {"embed_dim": 180, "depths": (6,) * 12, "num_heads": (6,) * 12, "compress_ratio": 3, "squeeze_factor": 30},
}
VARIANTS = tuple(PRESETS)
_COMMON = {"window_size": 16, "mlp_ratio": 2.0, "overlap_ratio": 0.5}


def _stages(scale: int) -> list[int]:
    return shuffle_stages(scale, "HAT")


def overlap_window(window: int, overlap_ratio: float) -> int:
    return int(window * overlap_ratio) + window


def relative_position_index_oca(window: int, overlap: int) -> torch.Tensor:
    """``window^2 x overlap^2`` rows of the ``(window + overlap - 1)^2``-entry bias table, as the
    published code indexes it: offsets ``(key - query) + window - overlap + 1`` per axis, the row
    ``dy * (window + overlap - 1) + dx``, negative rows wrapping around the table."""
    side = window + overlap - 1
    qy, qx = torch.meshgrid(torch.arange(window), torch.arange(window), indexing="ij")
    ky, kx = torch.meshgrid(torch.arange(overlap), torch.arange(overlap), indexing="ij")
    dy = ky.flatten()[None, :] - qy.flatten()[:, None] + window - overlap + 1
    dx = kx.flatten()[None, :] - qx.flatten()[:, None] + window - overlap + 1
    return (dy * side + dx) % (side * side)


class CAB(nn.Module):
    def __init__(self, dim: int, compress: int, squeeze: int):
        super().__init__()
        self.cab = nn.Sequential(nn.Conv2d(dim, dim // compress, 3, 1, 1), nn.GELU(),
                                 nn.Conv2d(dim // compress, dim, 3, 1, 1), ChannelAttention(dim, squeeze))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.cab(x)


class HAB(SwinBlock):
    """Hybrid attention block: the Swin block plus ``conv_block`` (channel attention) added with
    weight ``conv_scale`` next to the attention."""

    def __init__(self, dim: int, heads: int, window: int, shift: int, mlp_ratio: float, compress: int,
                 squeeze: int, conv_scale: float):
        super().__init__(dim, heads, window, shift, mlp_ratio)
        self.conv_scale = conv_scale
        self.conv_block = CAB(dim, compress, squeeze)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        y = self.norm1(x)
        conv = self.conv_block(y.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)
        x = x + self.attend(y, mask) + conv * self.conv_scale
        return x + self.mlp(self.norm2(x))


class OCAB(nn.Module):
    """Overlapping cross-attention: queries from ``window``-sized windows, keys and values from
    the ``overlap``-sized windows centred on them (zero-padded at the border)."""

    def __init__(self, dim: int, window: int, overlap_ratio: float, heads: int, mlp_ratio: float):
        super().__init__()
        if dim % heads:
            raise ValueError(f"embedding dimension {dim} is not a multiple of {heads} heads")
        self.window = window
        self.overlap = overlap_window(window, overlap_ratio)
        self.heads = heads
        self.norm1 = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        side = window + self.overlap - 1
        self.relative_position_bias_table = nn.Parameter(torch.zeros(side * side, heads))
        nn.init.trunc_normal_(self.relative_position_bias_table, std=0.02)
        self.register_buffer("relative_position_index", relative_position_index_oca(window, self.overlap),
                             persistent=False)
        self.proj = nn.Linear(dim, dim)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, h, w, c = x.shape
        ws, ow, nh = self.window, self.overlap, self.heads
        d = c // nh
        qkv = self.qkv(self.norm1(x))  # b h w 3c
        q = qkv[..., :c].reshape(b, h // ws, ws, w // ws, ws, nh, d).permute(0, 1, 3, 5, 2, 4, 6)
        q = q.reshape(-1, nh, ws * ws, d)  # (b nW) heads N d
        kv = qkv[..., c:].permute(0, 3, 1, 2)  # b 2c h w
        kv = F.unfold(kv, kernel_size=ow, stride=ws, padding=(ow - ws) // 2)  # b (2c ow ow) nW
        nw = kv.shape[-1]
        kv = kv.view(b, 2, nh, d, ow * ow, nw).permute(1, 0, 5, 2, 4, 3).reshape(2, b * nw, nh, ow * ow, d)
        table = self.relative_position_bias_table
        bias = table[self.relative_position_index.reshape(-1)].view(ws * ws, ow * ow, nh).permute(2, 0, 1)
        out = F.scaled_dot_product_attention(q, kv[0], kv[1], attn_mask=bias.to(q.dtype))  # (b nW) heads N d
        out = out.view(b, h // ws, w // ws, nh, ws, ws, d).permute(0, 1, 4, 2, 5, 3, 6).reshape(b, h, w, c)
        x = x + self.proj(out)
        return x + self.mlp(self.norm2(x))


class _Group(nn.Module):
    def __init__(self, blocks: list[nn.Module], overlap_attn: nn.Module):
        super().__init__()
        self.blocks = nn.ModuleList(blocks)
        self.overlap_attn = overlap_attn


class RHAG(nn.Module):
    """Residual hybrid attention group."""

    def __init__(self, dim: int, depth: int, heads: int, window: int, mlp_ratio: float, compress: int, squeeze: int,
                 conv_scale: float, overlap_ratio: float):
        super().__init__()
        blocks = [HAB(dim, heads, window, 0 if j % 2 == 0 else window // 2, mlp_ratio, compress, squeeze, conv_scale)
                  for j in range(depth)]
        self.residual_group = _Group(blocks, OCAB(dim, window, overlap_ratio, heads, mlp_ratio))
        self.conv = nn.Conv2d(dim, dim, 3, 1, 1)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        y = x
        for blk in self.residual_group.blocks:
            y = blk(y, mask)
        y = self.residual_group.overlap_attn(y)
        return self.conv(y.permute(0, 3, 1, 2)).permute(0, 2, 3, 1) + x


class HAT(nn.Module):
    def __init__(self, scale: int = 4, channels: int = 3, embed_dim: int = 180, depths: Sequence[int] = (6,) * 6,
                 num_heads: Sequence[int] = (6,) * 6, window_size: int = 16, compress_ratio: int = 3,
                 squeeze_factor: int = 30, conv_scale: float = 0.01, overlap_ratio: float = 0.5,
                 mlp_ratio: float = 2.0, num_feat: int = 64, img_range: float = 1.0):
        super().__init__()
        depths, num_heads = as_tuple(depths, "depths"), as_tuple(num_heads, "num_heads")
        if len(depths) != len(num_heads):
            raise ValueError(f"depths {depths} and num_heads {num_heads} differ in length")
        if window_size < 2 or window_size % 2:
            raise ValueError(f"window_size must be an even number >= 2, got {window_size}")
        if (overlap_window(window_size, overlap_ratio) - window_size) % 2:
            raise ValueError(f"overlap_ratio {overlap_ratio} gives an odd overlap for window {window_size}")
        for name, v in (("compress_ratio", compress_ratio), ("squeeze_factor", squeeze_factor)):
            if embed_dim // v < 1:
                raise ValueError(f"{name} {v} leaves no channels of {embed_dim}")
        swin_stem(self, channels, embed_dim, window_size, scale, img_range)
        self.layers = nn.ModuleList([RHAG(embed_dim, d, h, window_size, mlp_ratio, compress_ratio, squeeze_factor,
                                          conv_scale, overlap_ratio) for d, h in zip(depths, num_heads)])
        self.norm = nn.LayerNorm(embed_dim)
        self.conv_after_body = nn.Conv2d(embed_dim, embed_dim, 3, 1, 1)
        pixelshuffle_tail(self, embed_dim, num_feat, channels, _stages(scale))
        self.apply(init_transformer_weights)

    def forward_features(self, feat: torch.Tensor) -> torch.Tensor:
        return swin_body(self, feat)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        feat, mean = swin_features(self, x)
        return swin_output(self, self.conv_last(self.upsample(self.conv_before_upsample(feat))), mean, h, w)


def _options(variant: str, **given: Any) -> dict[str, Any]:
    if variant not in PRESETS:
        raise ValueError(f"variant must be one of {VARIANTS}, got {variant!r}")
    return {**_COMMON, **PRESETS[variant], **{k: v for k, v in given.items() if v is not None}}


def hat(scale: int = 4, variant: str = "hat", channels: int = 3, embed_dim: int | None = None,
        depths: Sequence[int] | None = None, num_heads: Sequence[int] | None = None, window_size: int | None = None,
        compress_ratio: int | None = None, squeeze_factor: int | None = None, conv_scale: float = 0.01,
        overlap_ratio: float | None = None, mlp_ratio: float | None = None, num_feat: int = 64,
        img_range: float = 1.0) -> HAT:
    """HAT. ``variant`` picks the published configuration (``hat``, ``hat-s``, ``hat-l``); the
    other options override it (small ``embed_dim``/``depths``/``window_size`` for tests)."""
    o = _options(variant, embed_dim=embed_dim, depths=depths, num_heads=num_heads, window_size=window_size,
                 compress_ratio=compress_ratio, squeeze_factor=squeeze_factor, overlap_ratio=overlap_ratio,
                 mlp_ratio=mlp_ratio)
    check_counts("hat", channels=channels, embed_dim=o["embed_dim"], window_size=o["window_size"], num_feat=num_feat,
                 compress_ratio=o["compress_ratio"], squeeze_factor=o["squeeze_factor"])
    return HAT(scale, channels, o["embed_dim"], o["depths"], o["num_heads"], o["window_size"], o["compress_ratio"],
               o["squeeze_factor"], conv_scale, float(o["overlap_ratio"]), float(o["mlp_ratio"]), num_feat, img_range)


# -- geometry -------------------------------------------------------------------------------------

def _ops(scale: int, o: Mapping[str, Any]) -> list[tuple[Any, ...]]:
    ws = int(o["window_size"])
    extra = overlap_window(ws, float(o["overlap_ratio"])) - ws
    ops: list[tuple[Any, ...]] = [("conv", 3)]
    for depth in as_tuple(o["depths"], "depths"):
        for j in range(depth):  # attention and the channel-attention block's two 3x3 convolutions, side by side
            ops.append(("branch", [("window", ws, 0 if j % 2 == 0 else ws // 2, 0, 0)], [("conv", 3), ("conv", 3)]))
        ops += [("window", ws, 0, extra // 2, extra - extra // 2), ("conv", 3)]
    ops += [("conv", 3), ("conv", 3)]
    for f in _stages(scale):
        ops += [("conv", 3), ("up", f)]
    return ops + [("conv", 3)]


def receptive_field(scale: int = 4, variant: str = "hat", **kwargs: Any) -> int:
    """Exact radius in input pixels of everything but the channel attention's global pooling."""
    o = _options(variant, **{k: kwargs.get(k) for k in ("depths", "window_size", "overlap_ratio")})
    return _rf.radius(_ops(scale, o), scale)


def size_multiple(scale: int = 4, variant: str = "hat", window_size: int | None = None, **_: Any) -> int:
    """The window size: inputs are padded to it and tiles start on its grid."""
    return int(window_size or _COMMON["window_size"])


# not exact: the channel attention pools over the whole input
geometry = _rf.geometry_hook(receptive_field, size_multiple, exact=False)


# -- published layout -----------------------------------------------------------------------------

def _infer(sd: Mapping[str, Any]) -> tuple[int, dict[str, Any]]:
    kwargs = swin_layout(sd)
    embed, window = kwargs["embed_dim"], kwargs["window_size"]
    blk = "layers.0.residual_group.blocks.0"
    side = isqrt_exact(shape(sd, "layers.0.residual_group.overlap_attn.relative_position_bias_table")[0])
    overlap = side + 1 - window
    feat = shape(sd, "conv_before_upsample.0.weight")[0]
    scale = shuffle_scale(sd, feat, "upsample.0.weight", r"upsample\.(\d+)\.weight")
    kwargs.update({
        "compress_ratio": embed // shape(sd, f"{blk}.conv_block.cab.0.weight")[0],
        "squeeze_factor": embed // shape(sd, f"{blk}.conv_block.cab.3.attention.1.weight")[0],
        "overlap_ratio": (overlap - window) / window, "num_feat": feat,
    })
    return scale, kwargs


LAYOUTS = (
    Layout("hat-official", _infer,
           ignore=(r"relative_position_index_(SA|OCA)", r"layers\.\d+\.residual_group\.blocks\.\d+\.attn_mask",
                   r"layers\.\d+\.residual_group\.blocks\.\d+\.attn\.relative_position_index"),
           description="XPixelGroup/HAT hat_arch.py: layers.{i}.residual_group.blocks.{j}.conv_block.cab, "
           "overlap_attn, conv (relative_position_index_SA/OCA buffers ignored)"),
)


def load_state_dict(sd: Mapping[str, Any], scale: int | None = None, **overrides: Any):
    """``(module, scale, kwargs)`` from a HAT release file: embed dim, depths, heads, window,
    overlap, compress and squeeze ratios, MLP ratio and scale come from the shapes
    (``conv_scale``, not stored, is the published 0.01)."""
    overrides.pop("variant", None)
    return load_with_layouts(sd, LAYOUTS, hat, "hat", 4, scale, overrides)


def tiling_error(module: nn.Module, x: torch.Tensor, tile: int, pad: int) -> float:
    """Largest absolute difference between a tiled run (cores of ``tile`` px, windows grown by
    ``pad``: pass ``geometry(...).receptive_field`` for the engine's default) and the whole-image
    run of ``module`` on ``x`` (``1 x C x H x W``, sides multiples of the window): how far the
    channel attention's per-tile pooling moves the output."""
    from sresr.tiling import plan_tiles, run_tiled

    with torch.no_grad():
        whole = module(x)
        plan = plan_tiles(x.shape[2], x.shape[3], tile, pad, module.window_size)
        tiled = run_tiled(module, x, plan, module.scale)
    return float((tiled - whole).abs().max())

