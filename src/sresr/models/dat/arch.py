"""DAT, Dual Aggregation Transformer (Chen et al., ICCV 2023): residual groups of blocks that
alternate spatial window self-attention (even blocks) and channel self-attention (odd blocks),
each with an adaptive interaction module (AIM) and a spatial-gate feed-forward network (SGFN).

Key names are those of the authors' code (zhengchen1999/DAT) and of spandrel: ``conv_first``,
``before_RG.1``, ``layers.{g}.blocks.{b}.{norm1,attn,norm2,ffn}`` (spatial blocks:
``attn.qkv/proj/attns.{0,1}.pos.*/dwconv/channel_interaction/spatial_interaction``; channel blocks
add ``attn.temperature``), ``layers.{g}.conv`` (``conv.{0,2,4}`` with ``resi_connection='3conv'``),
``norm``, ``conv_after_body``, then ``conv_before_upsample.0`` + ``upsample.{0,2}`` + ``conv_last``
(``upsampler='pixelshuffle'``) or ``upsample.0`` (``'pixelshuffledirect'``, DAT-light). The
constant buffers of the published files (``rpe_biases``, ``relative_position_index``,
``attn_mask_0/1``, the masks for a 64x64 training crop) are recomputed here, so a loader ignores
them; the window size is read from ``rpe_biases``.

Configurations (``dat(scale, **CONFIGS[name])``): DAT (180 dims, 6 groups x 6 blocks, 6 heads,
windows 8x32, expansion 4), DAT-S (windows 8x16, expansion 2), DAT-2 (windows 8x32, expansion 2),
DAT-light (60 dims, 1 group x 18 blocks, expansion 2, 3conv, pixelshuffledirect).

Tiling: the spatial attention runs in 8x32 and 32x8 windows (half the channels each) whose grid
is shifted by half a window in every other spatial block; the input is padded to a multiple of
the window grid (``size_multiple`` = lcm of the window sides: 32 for DAT, 16 for DAT-S) so that
tiles starting on the grid see the whole image's windows. ``receptive_field`` is the exact reach
of the windows and convolutions. Two operations are global: the channel self-attention (a
``d x d`` attention matrix per head from dot products over *all* pixels) and the AIM's channel
map (global average pool), so tiling is not exact (``Geometry.exact`` is False). Measured with
random weights (tests/test_arch_rcan_span_dat.py, benchmarks/bench_arch.py, Set5 crops, reduced
configurations of 2 groups x 2 blocks): max |tiled - whole| 0.03 to 0.2 of an 8-bit level
(below 1/255) at the default pad, with 32-pixel and 256-pixel tiles. Random weights may
exaggerate or understate what the released weights give: a measurement, not a bound.

Precision: bf16 and fp16 run on CPU with finite output for random weights (bench_arch.py);
``supports_fp16`` stays False as in spandrel (large attention logits of trained weights may
overflow fp16: unmeasured, it needs the release files and a GPU).
"""

from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from sresr.spec import Geometry

from ...errors import LayoutError
from .. import _rf, check_counts
from .._layouts import Layout, count, load_with_layouts, shape
from .._meanshift import MeanShifted
from .._upsample import direct_scale, shuffle_scale, shuffle_stages
from .._windows import init_transformer_weights

#: the published configurations (factory kwargs)
CONFIGS: dict[str, dict[str, Any]] = {
    "dat": {},
    "dat-s": {"split_size": (8, 16), "expansion": 2.0},
    "dat-2": {"expansion": 2.0},
    "dat-light": {"embed_dim": 60, "depths": (18,), "num_heads": (6,), "expansion": 2.0,
                  "resi_connection": "3conv", "upsampler": "pixelshuffledirect"},
}


def _stages(scale: int) -> list[int]:
    return shuffle_stages(scale, "DAT")


def _shifted(group: int, block: int) -> bool:
    """Whether spatial block ``block`` of group ``group`` uses shifted windows (the authors' rule:
    the shifts alternate from one spatial block to the next across groups)."""
    return (group % 2 == 0 and block > 0 and (block - 2) % 4 == 0) or (group % 2 == 1 and block % 4 == 0)


def _tokens_to_image(x: torch.Tensor, h: int, w: int) -> torch.Tensor:
    return x.transpose(1, 2).reshape(x.shape[0], x.shape[2], h, w)


def _image_to_tokens(x: torch.Tensor) -> torch.Tensor:
    return x.flatten(2).transpose(1, 2)


class _ToTokens(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _image_to_tokens(x)


class SpatialGate(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.conv = nn.Conv2d(dim, dim, 3, 1, 1, groups=dim)

    def forward(self, x: torch.Tensor, h: int, w: int) -> torch.Tensor:
        x1, x2 = x.chunk(2, dim=-1)
        return x1 * _image_to_tokens(self.conv(_tokens_to_image(self.norm(x2), h, w)))


class SGFN(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.sg = SpatialGate(hidden // 2)
        self.fc2 = nn.Linear(hidden // 2, dim)

    def forward(self, x: torch.Tensor, h: int, w: int) -> torch.Tensor:
        return self.fc2(self.sg(self.act(self.fc1(x)), h, w))


def _mlp(dim: int, out: int) -> nn.Sequential:
    return nn.Sequential(nn.LayerNorm(dim), nn.ReLU(inplace=True), nn.Linear(dim, out))


class DynamicPosBias(nn.Module):
    """Relative position bias from an MLP over the (dy, dx) offsets (non-residual form)."""

    def __init__(self, dim: int, heads: int):
        super().__init__()
        pos_dim = dim // 4
        self.pos_proj = nn.Linear(2, pos_dim)
        self.pos1 = _mlp(pos_dim, pos_dim)
        self.pos2 = _mlp(pos_dim, pos_dim)
        self.pos3 = _mlp(pos_dim, heads)

    def forward(self, offsets: torch.Tensor) -> torch.Tensor:
        return self.pos3(self.pos2(self.pos1(self.pos_proj(offsets))))


class WindowAttention(nn.Module):
    """Self-attention inside ``hs x ws`` windows for one half of the channels."""

    def __init__(self, dim: int, heads: int, hs: int, ws: int):
        super().__init__()
        self.heads, self.hs, self.ws = heads, hs, ws
        self.scale = (dim // heads) ** -0.5
        self.pos = DynamicPosBias(dim // 4, heads)
        dy, dx = torch.meshgrid(torch.arange(1 - hs, hs), torch.arange(1 - ws, ws), indexing="ij")
        self.register_buffer("rpe_biases", torch.stack([dy.flatten(), dx.flatten()], 1).float(), persistent=False)
        ys, xs = torch.meshgrid(torch.arange(hs), torch.arange(ws), indexing="ij")
        ys, xs = ys.flatten(), xs.flatten()
        index = (ys[:, None] - ys[None, :] + hs - 1) * (2 * ws - 1) + (xs[:, None] - xs[None, :] + ws - 1)
        self.register_buffer("relative_position_index", index, persistent=False)

    def forward(self, qkv: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        """``qkv``: ``3 x B x H x W x c`` (H, W multiples of the window) -> ``B x H x W x c``."""
        _, b, h, w, c = qkv.shape
        hs, ws, heads = self.hs, self.ws, self.heads
        n = hs * ws
        t = qkv.reshape(3, b, h // hs, hs, w // ws, ws, heads, c // heads)
        t = t.permute(0, 1, 2, 4, 6, 3, 5, 7).reshape(3, -1, heads, n, c // heads)
        q, k, v = t[0] * self.scale, t[1], t[2]
        attn = q @ k.transpose(-2, -1)
        bias = self.pos(self.rpe_biases.to(attn.dtype))[self.relative_position_index.view(-1)]
        attn = attn + bias.view(n, n, heads).permute(2, 0, 1).unsqueeze(0)
        if mask is not None:
            nw = mask.shape[0]
            attn = (attn.view(-1, nw, heads, n, n) + mask.to(attn.dtype)[None, :, None]).view(-1, heads, n, n)
        out = attn.softmax(dim=-1) @ v  # (B * windows) x heads x n x d
        out = out.view(b, h // hs, w // ws, heads, hs, ws, c // heads).permute(0, 1, 4, 2, 5, 3, 6)
        return out.reshape(b, h, w, c)


def _aim(dim: int) -> tuple[nn.Sequential, nn.Sequential, nn.Sequential]:
    dwconv = nn.Sequential(nn.Conv2d(dim, dim, 3, 1, 1, groups=dim), nn.BatchNorm2d(dim), nn.GELU())
    channel = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(dim, dim // 8, 1), nn.BatchNorm2d(dim // 8), nn.GELU(),
                            nn.Conv2d(dim // 8, dim, 1))
    spatial = nn.Sequential(nn.Conv2d(dim, dim // 16, 1), nn.BatchNorm2d(dim // 16), nn.GELU(),
                            nn.Conv2d(dim // 16, 1, 1))
    return dwconv, channel, spatial


def _region_mask(h: int, w: int, sh: int, sw: int, oh: int, ow: int) -> torch.Tensor:
    """Swin's mask for ``sh x sw`` windows over an image rolled by ``(-oh, -ow)``: -100 between
    tokens of one window that come from different (wrapped) regions."""
    img = torch.zeros(h, w)
    cnt = 0
    for hsl in (slice(0, -sh), slice(-sh, -oh), slice(-oh, None)):
        for wsl in (slice(0, -sw), slice(-sw, -ow), slice(-ow, None)):
            img[hsl, wsl] = cnt
            cnt += 1
    win = img.view(h // sh, sh, w // sw, sw).permute(0, 2, 1, 3).reshape(-1, sh * sw)
    diff = win.unsqueeze(1) - win.unsqueeze(2)
    return diff.masked_fill(diff != 0, -100.0).masked_fill(diff == 0, 0.0)


class _MaskMemo:
    """The shifted-window masks of one forward pass, shared by all of a network's blocks (they
    depend only on the size, the windows and the shift) and dropped when the pass ends: a mask of
    a 512x512 input is 256 MB, so neither one per block nor one per image size is kept."""

    def __init__(self) -> None:
        self.entries: dict[tuple[Any, ...], tuple[torch.Tensor, torch.Tensor]] = {}


class AdaptiveSpatialAttention(nn.Module):
    def __init__(self, dim: int, heads: int, split: Sequence[int], shifted: bool, qkv_bias: bool = True):
        super().__init__()
        s0, s1 = int(split[0]), int(split[1])
        self.split = (s0, s1)
        self.shift = (s0 // 2, s1 // 2)
        self.shifted = shifted
        self.multiple = math.lcm(s0, s1)
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)
        self.attns = nn.ModuleList([WindowAttention(dim // 2, heads // 2, s0, s1),
                                    WindowAttention(dim // 2, heads // 2, s1, s0)])
        self.dwconv, self.channel_interaction, self.spatial_interaction = _aim(dim)
        #: the network's :class:`_MaskMemo` (shared by its blocks; set by DAT), else masks per call
        self.memo: _MaskMemo | None = None

    def masks(self, h: int, w: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        (s0, s1), (o0, o1) = self.split, self.shift
        if torch.jit.is_tracing():  # an export: computed from the traced size, never a memoised constant
            return _region_mask(h, w, s0, s1, o0, o1).to(device), _region_mask(h, w, s1, s0, o1, o0).to(device)
        key = (h, w, s0, s1, o0, o1, str(device))
        found = self.memo.entries.get(key) if self.memo is not None else None
        if found is None:
            found = (_region_mask(h, w, s0, s1, o0, o1).to(device), _region_mask(h, w, s1, s0, o1, o0).to(device))
            if self.memo is not None:
                self.memo.entries[key] = found
        return found

    def forward(self, x: torch.Tensor, h: int, w: int) -> torch.Tensor:
        b, n, c = x.shape
        qkv = self.qkv(x).reshape(b, n, 3, c).permute(2, 0, 1, 3)  # 3 x B x N x C
        v = _tokens_to_image(qkv[2], h, w)
        m = self.multiple
        ph, pw = -h % m, -w % m
        grid = qkv.reshape(3, b, h, w, c)
        if ph or pw:  # zeros after the projection, as in the authors' code
            grid = F.pad(grid, (0, 0, 0, pw, 0, ph))
        hp, wp = h + ph, w + pw
        half = c // 2
        q0, q1 = grid[..., :half], grid[..., half:]
        (o0, o1) = self.shift
        if self.shifted:
            mask0, mask1 = self.masks(hp, wp, x.device)
            x0 = self.attns[0](torch.roll(q0, (-o0, -o1), (2, 3)), mask0).roll((o0, o1), (1, 2))
            x1 = self.attns[1](torch.roll(q1, (-o1, -o0), (2, 3)), mask1).roll((o1, o0), (1, 2))
        else:
            x0 = self.attns[0](q0, None)
            x1 = self.attns[1](q1, None)
        attended = torch.cat([x0[:, :h, :w], x1[:, :h, :w]], dim=-1).reshape(b, n, c)
        conv_x = self.dwconv(v)
        channel_map = self.channel_interaction(conv_x).view(b, 1, c)
        spatial_map = self.spatial_interaction(_tokens_to_image(attended, h, w))
        attended = attended * torch.sigmoid(channel_map)
        conv_x = _image_to_tokens(torch.sigmoid(spatial_map) * conv_x)
        return self.proj(attended + conv_x)


class AdaptiveChannelAttention(nn.Module):
    def __init__(self, dim: int, heads: int, qkv_bias: bool = True):
        super().__init__()
        self.heads = heads
        self.temperature = nn.Parameter(torch.ones(heads, 1, 1))
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)
        self.dwconv, self.channel_interaction, self.spatial_interaction = _aim(dim)

    def forward(self, x: torch.Tensor, h: int, w: int) -> torch.Tensor:
        b, n, c = x.shape
        qkv = self.qkv(x).reshape(b, n, 3, self.heads, c // self.heads).permute(2, 0, 3, 4, 1)  # 3 B heads d N
        q, k, v = qkv[0], qkv[1], qkv[2]
        v_img = v.reshape(b, c, h, w)
        attn = (F.normalize(q, dim=-1) @ F.normalize(k, dim=-1).transpose(-2, -1)) * self.temperature
        attended = (attn.softmax(dim=-1) @ v).permute(0, 3, 1, 2).reshape(b, n, c)
        conv_x = self.dwconv(v_img)
        channel_map = self.channel_interaction(_tokens_to_image(attended, h, w))
        spatial_map = _image_to_tokens(self.spatial_interaction(conv_x))
        attended = attended * torch.sigmoid(spatial_map)
        conv_x = _image_to_tokens(conv_x * torch.sigmoid(channel_map))
        return self.proj(attended + conv_x)


class DATB(nn.Module):
    def __init__(self, dim: int, heads: int, split: Sequence[int], expansion: float, group: int, block: int,
                 qkv_bias: bool = True):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        if block % 2 == 0:
            self.attn: nn.Module = AdaptiveSpatialAttention(dim, heads, split, _shifted(group, block), qkv_bias)
        else:
            self.attn = AdaptiveChannelAttention(dim, heads, qkv_bias)
        self.norm2 = nn.LayerNorm(dim)
        self.ffn = SGFN(dim, int(dim * expansion))

    def forward(self, x: torch.Tensor, h: int, w: int) -> torch.Tensor:
        x = x + self.attn(self.norm1(x), h, w)
        return x + self.ffn(self.norm2(x), h, w)


def _resi(dim: int, kind: str) -> nn.Module:
    if kind == "1conv":
        return nn.Conv2d(dim, dim, 3, 1, 1)
    if kind == "3conv":
        return nn.Sequential(nn.Conv2d(dim, dim // 4, 3, 1, 1), nn.LeakyReLU(0.2, inplace=True),
                             nn.Conv2d(dim // 4, dim // 4, 1), nn.LeakyReLU(0.2, inplace=True),
                             nn.Conv2d(dim // 4, dim, 3, 1, 1))
    raise ValueError(f"resi_connection must be '1conv' or '3conv', not {kind!r}")


class ResidualGroup(nn.Module):
    def __init__(self, dim: int, depth: int, heads: int, split: Sequence[int], expansion: float, group: int,
                 resi_connection: str, qkv_bias: bool = True):
        super().__init__()
        self.blocks = nn.ModuleList([DATB(dim, heads, split, expansion, group, i, qkv_bias) for i in range(depth)])
        self.conv = _resi(dim, resi_connection)

    def forward(self, x: torch.Tensor, h: int, w: int) -> torch.Tensor:
        res = x
        for blk in self.blocks:
            x = blk(x, h, w)
        return res + _image_to_tokens(self.conv(_tokens_to_image(x, h, w)))


class DAT(MeanShifted):
    def __init__(self, scale: int = 4, channels: int = 3, embed_dim: int = 180,
                 depths: Sequence[int] = (6, 6, 6, 6, 6, 6), num_heads: Sequence[int] = (6, 6, 6, 6, 6, 6),
                 split_size: Sequence[int] = (8, 32), expansion: float = 4.0, resi_connection: str = "1conv",
                 upsampler: str = "pixelshuffle", qkv_bias: bool = True, img_range: float = 1.0, num_feat: int = 64):
        super().__init__()
        self.scale = scale
        self.img_range = img_range
        self.upsampler = upsampler
        self._register_mean(channels, 0.0)
        self.conv_first = nn.Conv2d(channels, embed_dim, 3, 1, 1)
        self.before_RG = nn.Sequential(_ToTokens(), nn.LayerNorm(embed_dim))
        self.layers = nn.ModuleList([
            ResidualGroup(embed_dim, d, h, split_size, expansion, i, resi_connection, qkv_bias)
            for i, (d, h) in enumerate(zip(depths, num_heads))])
        self.norm = nn.LayerNorm(embed_dim)
        self.conv_after_body = _resi(embed_dim, resi_connection)
        if upsampler == "pixelshuffle":
            self.conv_before_upsample = nn.Sequential(nn.Conv2d(embed_dim, num_feat, 3, 1, 1), nn.LeakyReLU(inplace=True))
            up: list[nn.Module] = []
            for f in _stages(scale):
                up += [nn.Conv2d(num_feat, num_feat * f * f, 3, 1, 1), nn.PixelShuffle(f)]
            self.upsample = nn.Sequential(*up)
            self.conv_last = nn.Conv2d(num_feat, channels, 3, 1, 1)
        elif upsampler == "pixelshuffledirect":
            self.upsample = nn.Sequential(nn.Conv2d(embed_dim, channels * scale * scale, 3, 1, 1), nn.PixelShuffle(scale))
        else:
            raise ValueError(f"upsampler must be 'pixelshuffle' or 'pixelshuffledirect', not {upsampler!r}")
        self.apply(init_transformer_weights)
        self._memo = _MaskMemo()
        for m in self.modules():
            if isinstance(m, AdaptiveSpatialAttention):
                m.memo = self._memo

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        dtype = self.conv_first.weight.dtype
        work = self.work_dtype(dtype)
        mean = self.mean.to(work)
        h, w = x.shape[-2:]
        x = self.conv_first(((x.to(work) - mean) * self.img_range).to(dtype))
        t = self.before_RG(x)
        try:
            for layer in self.layers:
                t = layer(t, h, w)
        finally:
            self._memo.entries.clear()  # masks live for one pass
        x = self.conv_after_body(_tokens_to_image(self.norm(t), h, w)) + x
        if self.upsampler == "pixelshuffle":
            x = self.conv_last(self.upsample(self.conv_before_upsample(x)))
        else:
            x = self.upsample(x)
        return x.to(work) / self.img_range + mean


def _split(split_size: Sequence[int]) -> tuple[int, int]:
    s = tuple(int(v) for v in split_size)
    if len(s) != 2 or min(s) < 2:
        raise ValueError(f"split_size must be two window sides >= 2, got {split_size!r}")
    return s  # type: ignore[return-value]


def dat(scale: int = 4, channels: int = 3, embed_dim: int = 180, depths: Sequence[int] = (6, 6, 6, 6, 6, 6),
        num_heads: Sequence[int] = (6, 6, 6, 6, 6, 6), split_size: Sequence[int] = (8, 32), expansion: float = 4.0,
        resi_connection: str = "1conv", upsampler: str = "pixelshuffle", qkv_bias: bool = True,
        img_range: float = 1.0) -> DAT:
    """DAT; the paper's DAT by default. DAT-S, DAT-2 and DAT-light are ``CONFIGS`` (see the module)."""
    depths, num_heads = tuple(int(d) for d in depths), tuple(int(h) for h in num_heads)
    check_counts("dat", channels=channels, embed_dim=embed_dim, groups=len(depths) or 0)
    if len(depths) != len(num_heads):
        raise ValueError(f"dat: depths {depths} and num_heads {num_heads} differ in length")
    for d, h in zip(depths, num_heads):
        check_counts("dat", depth=d, heads=h)
        if h % 2 or embed_dim % h or (embed_dim // 2) % (h // 2):
            raise ValueError(f"dat: {h} heads do not divide {embed_dim} dims into two halves")
    if embed_dim < 32 or embed_dim % 2:  # the position-bias MLP has (embed_dim // 2) // 16 channels
        raise ValueError(f"dat: embed_dim must be even and >= 32, got {embed_dim}")
    _stages(scale)
    return DAT(scale, channels, embed_dim, depths, num_heads, _split(split_size), float(expansion), resi_connection,
               upsampler, bool(qkv_bias), float(img_range))


def _window_reach(split: tuple[int, int], shifted: bool) -> tuple[Any, ...]:
    s0, s1 = split
    o0, o1 = (s0 // 2, s1 // 2) if shifted else (0, 0)
    # one axis: half the channels in windows of s0 (grid at o0), half in windows of s1 (grid at o1);
    # the other axis swaps them, which gives the same reach
    return ("branch", [("window", s0, o0, 0, 0)], [("window", s1, o1, 0, 0)])


def receptive_field(scale: int = 4, depths: Sequence[int] = (6, 6, 6, 6, 6, 6), split_size: Sequence[int] = (8, 32),
                    resi_connection: str = "1conv", upsampler: str = "pixelshuffle", **_: Any) -> int:
    """Exact reach of the windows and convolutions (the global channel operations left out)."""
    split = _split(split_size)
    resi = [("conv", 3)] * (1 if resi_connection == "1conv" else 2)
    ops: list[tuple[Any, ...]] = [("conv", 3)]
    for g, depth in enumerate(depths):
        for b in range(depth):
            if b % 2 == 0:  # windows, in parallel with the 3x3 depthwise conv on v
                ops.append(("branch", [_window_reach(split, _shifted(g, b))], [("conv", 3)]))
            else:
                ops.append(("conv", 3))  # depthwise conv on v (the attention itself is global)
            ops.append(("conv", 3))  # SGFN's depthwise conv
        ops += resi
    ops += resi
    if upsampler == "pixelshuffle":
        ops.append(("conv", 3))
        for f in _stages(scale):
            ops += [("conv", 3), ("up", f)]
        ops.append(("conv", 3))
    else:
        ops += [("conv", 3), ("up", scale)]
    return _rf.radius(ops, scale)


def size_multiple(scale: int = 4, split_size: Sequence[int] = (8, 32), **_: Any) -> int:
    """The window grid: both orientations (s0 x s1 and s1 x s0) must tile the input."""
    s0, s1 = _split(split_size)
    return math.lcm(s0, s1)


def geometry(scale: int = 4, **kwargs: Any) -> Geometry:
    """Tiling facts of ``dat(scale, **kwargs)``: windows and convolutions' reach as the pad, rounded
    up to the window grid; not exact (channel self-attention and the AIM pool globally)."""
    m = size_multiple(scale, **kwargs)
    rf = receptive_field(scale, **kwargs)
    return Geometry(-(-rf // m) * m, m, exact=False, any_size=True)


# -- published layout --------------------------------------------------------------------------

_BUFFERS = (r"layers\.\d+\.blocks\.\d+\.attn\.attns\.[01]\.(rpe_biases|relative_position_index)",
            r"layers\.\d+\.blocks\.\d+\.attn\.attn_mask_[01]")


def _infer(sd: Mapping[str, Any]) -> tuple[int, dict[str, Any]]:
    embed_dim, ch, _, _ = shape(sd, "conv_first.weight")
    groups = count(sd, r"layers\.(\d+)\.blocks\.0\.norm1\.weight")
    depths = tuple(count(sd, rf"layers\.{g}\.blocks\.(\d+)\.norm1\.weight") for g in range(groups))
    heads = []
    for g in range(groups):
        if f"layers.{g}.blocks.1.attn.temperature" in sd:
            heads.append(shape(sd, f"layers.{g}.blocks.1.attn.temperature")[0])
        else:
            heads.append(2 * shape(sd, f"layers.{g}.blocks.0.attn.attns.0.pos.pos3.2.weight")[0])
    kwargs: dict[str, Any] = {"channels": ch, "embed_dim": embed_dim, "depths": depths, "num_heads": tuple(heads),
                              "expansion": shape(sd, "layers.0.blocks.0.ffn.fc1.weight")[0] / embed_dim}
    rpe = sd.get("layers.0.blocks.0.attn.attns.0.rpe_biases")
    if rpe is not None:  # its last row is (s0 - 1, s1 - 1)
        kwargs["split_size"] = tuple(int(v) + 1 for v in rpe[-1].tolist())
    if "conv_after_body.weight" not in sd:
        kwargs["resi_connection"] = "3conv"
    if "layers.0.blocks.0.attn.qkv.bias" not in sd:
        kwargs["qkv_bias"] = False
    if "conv_last.weight" in sd:
        num_feat = shape(sd, "conv_before_upsample.0.weight")[0]
        scale = shuffle_scale(sd, num_feat, "upsample.0.weight", r"upsample\.(\d+)\.weight")
    else:
        kwargs["upsampler"] = "pixelshuffledirect"
        scale = direct_scale(sd, "upsample.0.weight", ch)
    return scale, kwargs


LAYOUTS = (
    Layout("dat", _infer, ignore=_BUFFERS,
           description="zhengchen1999/DAT and spandrel: conv_first, before_RG.1, layers.{g}.blocks.{b}.{norm1,attn,"
           "norm2,ffn}, layers.{g}.conv, norm, conv_after_body, conv_before_upsample/upsample/conv_last or upsample.0"),
)


def load_state_dict(sd: Mapping[str, Any], scale: int | None = None, **overrides: Any):
    """``(module, scale, kwargs)``: dims, depths, heads, expansion, residual connection, upsampler
    and scale from the shapes; the window size from ``rpe_biases``. A DAT file without it (saved
    from a network whose buffers were left out) cannot tell DAT's 8x32 windows from DAT-S's 8x16:
    pass ``split_size=`` then, or keep weights as sresr writes them (their metadata says it)."""
    from .._layouts import unwrap_state_dict

    sd = unwrap_state_dict(sd)  # wrappers and prefixes gone (load_with_layouts takes it as it is)
    keys = set(sd)
    if ("split_size" not in overrides and "layers.0.blocks.0.attn.attns.0.pos.pos_proj.weight" in keys
            and "layers.0.blocks.0.attn.attns.0.rpe_biases" not in keys):
        raise LayoutError("this DAT checkpoint does not record its window size (no rpe_biases): DAT's 8x32 and "
                          "DAT-S's 8x16 windows have the same tensors",
                          hint="load it in Python with split_size=(8, 32) or (8, 16), or keep DAT weights as "
                          "'sresr weights import' or sresr's training write them (their metadata records it)")
    return load_with_layouts(sd, LAYOUTS, dat, "dat", 4, scale, overrides)
