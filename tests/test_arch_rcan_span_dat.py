"""RCAN, SPAN and DAT: conformance, published key layouts (state dicts written out here from the
published key names and shapes, not from our modules), the forward pass of one block against an
independent functional reimplementation, receptive fields, and tiled vs whole-image output."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from sresr.models import find_model
from sresr.models.dat import arch as dat_arch
from sresr.models.rcan import arch as rcan_arch
from sresr.models.span import arch as span_arch
from sresr.registry import get_spec
from sresr.testing import check_spec
from sresr.tiling import plan_tiles, run_tiled

_GEN = torch.Generator().manual_seed(0)
MEAN = torch.tensor([0.4488, 0.4371, 0.4040]).view(1, 3, 1, 1)


def t(*shape: int, scale: float = 0.05) -> torch.Tensor:
    return torch.randn(*shape, generator=_GEN) * scale


def conv(sd: dict, name: str, cout: int, cin: int, k: int) -> None:
    sd[f"{name}.weight"] = t(cout, cin, k, k)
    sd[f"{name}.bias"] = t(cout)


def linear(sd: dict, name: str, cout: int, cin: int, bias: bool = True) -> None:
    sd[f"{name}.weight"] = t(cout, cin)
    if bias:
        sd[f"{name}.bias"] = t(cout)


def norm(sd: dict, name: str, c: int) -> None:
    sd[f"{name}.weight"] = 1 + t(c)
    sd[f"{name}.bias"] = t(c)


def bn(sd: dict, name: str, c: int) -> None:
    norm(sd, name, c)
    sd[f"{name}.running_mean"] = t(c)
    sd[f"{name}.running_var"] = 1 + t(c).abs()
    sd[f"{name}.num_batches_tracked"] = torch.tensor(10)


def c2(x: torch.Tensor, sd: dict, name: str, **kw) -> torch.Tensor:
    w = sd[f"{name}.weight"]
    return F.conv2d(x, w, sd.get(f"{name}.bias"), padding=w.shape[-1] // 2, **kw)


def photo(size: int = 96, name: str = "butterfly.png") -> torch.Tensor:
    """A crop of a Set5 image (real structure, unlike noise, for the tiling measurements)."""
    from PIL import Image

    import sresr.data

    path = Path(sresr.data.__file__).parent / "set5" / name
    img = torch.from_numpy(__import__("numpy").array(Image.open(path).convert("RGB"))).permute(2, 0, 1)
    return (img[None, :, 40 : 40 + size, 40 : 40 + size].float() / 255).contiguous()


def tiled(model: torch.nn.Module, x: torch.Tensor, scale: int, tile: int, pad: int, multiple: int = 1) -> torch.Tensor:
    plan = plan_tiles(x.shape[2], x.shape[3], tile, pad, multiple)
    assert len(plan) > 1
    canvas = torch.empty(1, 3, x.shape[2] * scale, x.shape[3] * scale, dtype=x.dtype)
    with torch.no_grad():
        return run_tiled(model, x, plan, scale, canvas=canvas)


def nparams(m: torch.nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


# -- conformance -------------------------------------------------------------------------------

@pytest.mark.parametrize(("name", "size", "scales"), [("rcan", 4, (3, 8)), ("span", 8, None), ("dat", 1, (4,))])
def test_check_spec(name: str, size: int, scales) -> None:
    """The paper-size RCAN (15.6M) and DAT (14.8M) are checked at some scales here (every scale's build,
    parameter count and round trip is in tests/test_models.py); DAT on 32x32, its window grid."""
    check_spec(get_spec(name), scales=scales, size=size)


def test_listed_with_parameter_counts() -> None:
    from sresr.cli.models import _record
    from sresr.registry import get_entry

    for name in ("rcan", "span", "dat"):
        rec = _record(get_entry(name))
        assert rec["status"] == "ok" and rec["weights_hint"]
        assert rec["params"] == {str(k): v for k, v in get_spec(name).num_params.items()}
        assert set(rec["params"]) == {str(s) for s in get_spec(name).scales}


def test_paper_parameter_counts() -> None:
    with torch.device("meta"):
        assert nparams(rcan_arch.rcan(4)) + 24 == 15592379  # RCAN x4 with its two 1x1 mean shifts
        assert round(nparams(dat_arch.dat(4)) / 1e4) == 1480  # DAT 14.80M (paper)
        assert round(nparams(dat_arch.dat(4, **dat_arch.CONFIGS["dat-s"])) / 1e4) == 1121  # DAT-S 11.21M
        assert round(nparams(dat_arch.dat(4, **dat_arch.CONFIGS["dat-2"])) / 1e4) == 1121  # DAT-2 11.21M
        assert round(nparams(dat_arch.dat(4, **dat_arch.CONFIGS["dat-light"])) / 1e3) == 573  # DAT-light 573K
    # SPAN x4, 48 channels: 426K once each Conv3XC is one 3x3 convolution (the paper's count)
    from sresr.optimize import reparameterize

    fused, n = reparameterize(span_arch.span(4))
    assert n == 20 and nparams(fused) == 426288


# -- RCAN ----------------------------------------------------------------------------------------

def rcan_official_sd(scale: int, groups: int = 10, blocks: int = 20, f: int = 64, red: int = 16) -> dict:
    sd: dict = {}
    eye = torch.eye(3).view(3, 3, 1, 1)
    sd.update({"sub_mean.weight": eye, "sub_mean.bias": -255 * MEAN.flatten(), "add_mean.weight": eye,
               "add_mean.bias": 255 * MEAN.flatten()})
    conv(sd, "head.0", f, 3, 3)
    for g in range(groups):
        for b in range(blocks):
            conv(sd, f"body.{g}.body.{b}.body.0", f, f, 3)
            conv(sd, f"body.{g}.body.{b}.body.2", f, f, 3)
            conv(sd, f"body.{g}.body.{b}.body.3.conv_du.0", f // red, f, 1)
            conv(sd, f"body.{g}.body.{b}.body.3.conv_du.2", f, f // red, 1)
        conv(sd, f"body.{g}.body.{blocks}", f, f, 3)
    conv(sd, f"body.{groups}", f, f, 3)
    stages = [3] if scale == 3 else [2] * int(math.log2(scale))
    for i, r in enumerate(stages):
        conv(sd, f"tail.0.{2 * i}", f * r * r, f, 3)
    conv(sd, "tail.1", 3, f, 3)
    return sd


def rcan_basicsr_sd(scale: int, groups: int = 10, blocks: int = 20, f: int = 64, red: int = 16) -> dict:
    sd: dict = {}
    conv(sd, "conv_first", f, 3, 3)
    for g in range(groups):
        for b in range(blocks):
            conv(sd, f"body.{g}.residual_group.{b}.rcab.0", f, f, 3)
            conv(sd, f"body.{g}.residual_group.{b}.rcab.2", f, f, 3)
            conv(sd, f"body.{g}.residual_group.{b}.rcab.3.attention.1", f // red, f, 1)
            conv(sd, f"body.{g}.residual_group.{b}.rcab.3.attention.3", f, f // red, 1)
        conv(sd, f"body.{g}.conv", f, f, 3)
    conv(sd, "conv_after_body", f, f, 3)
    stages = [3] if scale == 3 else [2] * int(math.log2(scale))
    for i, r in enumerate(stages):
        conv(sd, f"upsample.{2 * i}", f * r * r, f, 3)
    conv(sd, "conv_last", 3, f, 3)
    return sd


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_rcan_published_layouts_full_size(scale: int) -> None:
    for make, layout in ((rcan_official_sd, "official"), (rcan_basicsr_sd, "basicsr")):
        sd = make(scale)
        assert find_model(sd) == "rcan", layout
        wrapped = {"params": sd} if layout == "basicsr" else {"state_dict": {f"module.{k}": v for k, v in sd.items()}}
        model, s, kwargs = rcan_arch.load_state_dict(wrapped)
        assert s == scale and (kwargs["groups"], kwargs["blocks"], kwargs["features"], kwargs["reduction"]) == (10, 20, 64, 16)
        assert nparams(model) == get_spec("rcan").num_params[scale]


def rcan_reference(x: torch.Tensor, sd: dict, groups: int, blocks: int, scale: int) -> torch.Tensor:
    """RCAN as the official code computes it, from the official keys (MeanShift as 1x1 convs)."""
    h = F.conv2d(x * 255, sd["sub_mean.weight"], sd["sub_mean.bias"])
    h = c2(h, sd, "head.0")
    body = h
    for g in range(groups):
        gin = body
        for b in range(blocks):
            p = f"body.{g}.body.{b}.body"
            r = c2(F.relu(c2(body, sd, f"{p}.0")), sd, f"{p}.2")
            y = r.mean(dim=(2, 3), keepdim=True)
            y = torch.sigmoid(c2(F.relu(c2(y, sd, f"{p}.3.conv_du.0")), sd, f"{p}.3.conv_du.2"))
            body = body + r * y
        body = gin + c2(body, sd, f"body.{g}.body.{blocks}")
    h = h + c2(body, sd, f"body.{groups}")
    stages = [3] if scale == 3 else [2] * int(math.log2(scale))
    for i, r in enumerate(stages):
        h = F.pixel_shuffle(c2(h, sd, f"tail.0.{2 * i}"), r)
    h = c2(h, sd, "tail.1")
    return F.conv2d(h, sd["add_mean.weight"], sd["add_mean.bias"]) / 255


@pytest.mark.parametrize("scale", [2, 3])
def test_rcan_forward_matches_the_official_computation(scale: int) -> None:
    sd = rcan_official_sd(scale, groups=2, blocks=2, f=16, red=4)
    model, s, kwargs = rcan_arch.load_state_dict(sd)
    assert (s, kwargs["groups"], kwargs["blocks"], kwargs["reduction"]) == (scale, 2, 2, 4)
    x = photo(12)
    with torch.no_grad():
        torch.testing.assert_close(model(x), rcan_reference(x, sd, 2, 2, scale), atol=2e-5, rtol=1e-4)


# -- SPAN ----------------------------------------------------------------------------------------

def conv3xc_sd(sd: dict, name: str, cin: int, cout: int) -> None:
    conv(sd, f"{name}.sk", cout, cin, 1)
    conv(sd, f"{name}.conv.0", 2 * cin, cin, 1)
    conv(sd, f"{name}.conv.1", 2 * cout, 2 * cin, 3)
    conv(sd, f"{name}.conv.2", cout, 2 * cout, 1)
    conv(sd, f"{name}.eval_conv", cout, cin, 3)  # stale on purpose: the eval path recomputes it


def span_sd(scale: int, f: int = 48, no_norm: bool = False) -> dict:
    sd: dict = {}
    conv3xc_sd(sd, "conv_1", 3, f)
    for i in range(1, 7):
        for c in ("c1_r", "c2_r", "c3_r"):
            conv3xc_sd(sd, f"block_{i}.{c}", f, f)
    conv(sd, "conv_cat", f, 4 * f, 1)
    conv3xc_sd(sd, "conv_2", f, f)
    conv(sd, "upsampler.0", 3 * scale * scale, f, 3)
    if no_norm:
        sd["no_norm"] = torch.zeros(1)
    return sd


@pytest.mark.parametrize(("scale", "f", "no_norm"), [(2, 48, False), (4, 48, False), (4, 52, False), (4, 48, True)])
def test_span_published_layout(scale: int, f: int, no_norm: bool) -> None:
    sd = span_sd(scale, f, no_norm)
    assert find_model(sd) == "span"
    model, s, kwargs = span_arch.load_state_dict({"params_ema": sd})
    assert s == scale and kwargs["features"] == f and kwargs.get("norm", True) is not no_norm
    if (f, no_norm) == (48, False):
        assert nparams(model) == get_spec("span").num_params[scale]


def conv3xc_eval_reference(sd: dict, name: str) -> tuple[torch.Tensor, torch.Tensor]:
    """The 3x3 kernel and bias of a Conv3XC at inference, probed from the authors' *training*
    formula ``conv(pad(x)) + sk(x)`` by linearity (no weight algebra: an independent route): at the
    centre of a 5x5 input the padding is not reached, so the two paths agree there."""
    def train_path(x: torch.Tensor) -> torch.Tensor:
        h = F.conv2d(F.pad(x, (1, 1, 1, 1)), sd[f"{name}.conv.0.weight"], sd[f"{name}.conv.0.bias"])
        h = F.conv2d(h, sd[f"{name}.conv.1.weight"], sd[f"{name}.conv.1.bias"])
        h = F.conv2d(h, sd[f"{name}.conv.2.weight"], sd[f"{name}.conv.2.bias"])
        return h + F.conv2d(x, sd[f"{name}.sk.weight"], sd[f"{name}.sk.bias"])

    cin = sd[f"{name}.sk.weight"].shape[1]
    x = torch.zeros(cin * 9, cin, 5, 5, dtype=torch.float64)
    for i in range(cin):
        for dy in range(3):
            for dx in range(3):
                x[i * 9 + dy * 3 + dx, i, 1 + dy, 1 + dx] = 1.0  # read by tap (dy, dx) at the centre
    zero = train_path(torch.zeros(1, cin, 5, 5, dtype=torch.float64))[0, :, 2, 2]
    resp = train_path(x)[:, :, 2, 2] - zero  # (cin*9) x cout
    kernel = resp.T.reshape(-1, cin, 3, 3)
    return kernel, zero


def test_span_forward_matches_an_independent_eval_path() -> None:
    scale, f = 2, 8
    sd = {k: v.double() for k, v in span_sd(scale, f).items()}
    model, _, _ = span_arch.load_state_dict(sd)
    model = model.double()
    fused = {n: conv3xc_eval_reference(sd, n) for n in
             ["conv_1", "conv_2"] + [f"block_{i}.{c}" for i in range(1, 7) for c in ("c1_r", "c2_r", "c3_r")]}

    def c3(x, n):
        return F.conv2d(x, fused[n][0], fused[n][1], padding=1)

    x = photo(10).double()
    h = (x - MEAN.double()) * 255
    feat = c3(h, "conv_1")
    outs, b = [], feat
    for i in range(1, 7):
        o1 = c3(b, f"block_{i}.c1_r")
        o3 = c3(F.silu(c3(F.silu(o1), f"block_{i}.c2_r")), f"block_{i}.c3_r")
        b = (o3 + b) * (torch.sigmoid(o3) - 0.5)
        outs.append((b, o1))
    cat = torch.cat([feat, c3(outs[5][0], "conv_2"), outs[0][0], outs[5][1]], 1)
    ref = F.pixel_shuffle(c2(c2(cat, sd, "conv_cat"), sd, "upsampler.0"), scale)
    with torch.no_grad():
        torch.testing.assert_close(model(x), ref, atol=1e-9, rtol=1e-9)
        # the refreshed eval_conv (what a saved file will hold) is that same kernel
        torch.testing.assert_close(model.block_3.c2_r.eval_conv.weight, fused["block_3.c2_r"][0])


def test_span_reparameterized_at_load_and_tiles_exactly() -> None:
    from sresr.optimize import optimize_for_inference

    torch.manual_seed(0)
    model = span_arch.span(3, features=8).eval()
    for p in model.parameters():
        p.data.add_(torch.randn_like(p) * 0.05)
    x = photo(72)
    opt, report, _ = optimize_for_inference(model, x[..., :16, :16])
    assert "reparameterize (20)" in report.applied
    assert not any(isinstance(m, span_arch.Conv3XC) for m in opt.modules())
    with torch.no_grad():
        whole = model(x)
        torch.testing.assert_close(opt(x.contiguous(memory_format=torch.channels_last)).float(), whole,
                                   atol=1e-4, rtol=1e-4)
    geo = get_spec("span").geometry_for(3, {"features": 8})
    assert (geo.receptive_field, geo.size_multiple, geo.exact) == (21, 1, True)
    m64 = model.double()
    with torch.no_grad():
        whole = m64(x.double())
    out = tiled(m64, x.double(), 3, tile=16, pad=geo.receptive_field)
    assert float((out - whole).abs().max()) < 1e-12  # exact: float rounding only


def test_span_receptive_field_is_exact() -> None:
    torch.manual_seed(0)
    # inputs kept in [0, 1] (norm=False): with the x255 scaling random weights saturate the sigmoid
    # and SiLU exactly (in float64 too), which stops a change before it reaches the field's edge
    model = span_arch.span(2, features=4, norm=False).double().eval()
    r = span_arch.receptive_field(2)
    # the gradient of one output pixel (owned by input pixel 25, 25): a perturbation's far effects
    # (products of 20 small layers) would round away against the output's own value, gradients do not
    x = torch.rand(1, 3, 50, 50, dtype=torch.float64, requires_grad=True)
    model(x)[0, :, 50, 51].sum().backward()
    reads = (x.grad.abs().amax(dim=(0, 1)) > 0).nonzero()
    assert (reads - 25).abs().max().item() == r == 21


# -- DAT -----------------------------------------------------------------------------------------

def _shifted(g: int, b: int) -> bool:
    return (g % 2 == 0 and b > 0 and (b - 2) % 4 == 0) or (g % 2 == 1 and b % 4 == 0)


def _aim_sd(sd: dict, p: str, dim: int) -> None:
    conv(sd, f"{p}.dwconv.0", dim, 1, 3)
    bn(sd, f"{p}.dwconv.1", dim)
    conv(sd, f"{p}.channel_interaction.1", dim // 8, dim, 1)
    bn(sd, f"{p}.channel_interaction.2", dim // 8)
    conv(sd, f"{p}.channel_interaction.4", dim, dim // 8, 1)
    conv(sd, f"{p}.spatial_interaction.0", dim // 16, dim, 1)
    bn(sd, f"{p}.spatial_interaction.1", dim // 16)
    conv(sd, f"{p}.spatial_interaction.3", 1, dim // 16, 1)


def _window_buffers(hs: int, ws: int) -> tuple[torch.Tensor, torch.Tensor]:
    dy, dx = torch.meshgrid(torch.arange(1 - hs, hs), torch.arange(1 - ws, ws), indexing="ij")
    biases = torch.stack([dy, dx]).flatten(1).transpose(0, 1).float()
    n = hs * ws
    return biases, torch.zeros(n, n, dtype=torch.long)  # the index's values do not matter here


def dat_sd(scale: int, dim: int = 180, depths=(6,) * 6, heads=(6,) * 6, split=(8, 32), expansion: float = 4,
           resi: str = "1conv", upsampler: str = "pixelshuffle", img_size: int = 64, num_feat: int = 64) -> dict:
    """The published DAT layout, buffers included (the masks are those of a 64x64 training crop)."""
    sd: dict = {}
    conv(sd, "conv_first", dim, 3, 3)
    norm(sd, "before_RG.1", dim)
    hidden = int(dim * expansion)
    for g, (depth, h) in enumerate(zip(depths, heads)):
        for b in range(depth):
            p = f"layers.{g}.blocks.{b}"
            norm(sd, f"{p}.norm1", dim)
            norm(sd, f"{p}.norm2", dim)
            linear(sd, f"{p}.attn.qkv", 3 * dim, dim)
            linear(sd, f"{p}.attn.proj", dim, dim)
            _aim_sd(sd, f"{p}.attn", dim)
            if b % 2 == 0:
                pos = dim // 2 // 4 // 4
                for i, (hs, ws) in enumerate((split, split[::-1])):
                    q = f"{p}.attn.attns.{i}"
                    linear(sd, f"{q}.pos.pos_proj", pos, 2)
                    for j in (1, 2, 3):
                        norm(sd, f"{q}.pos.pos{j}.0", pos)
                        linear(sd, f"{q}.pos.pos{j}.2", pos if j < 3 else h // 2, pos)
                    sd[f"{q}.rpe_biases"], sd[f"{q}.relative_position_index"] = _window_buffers(hs, ws)
                if _shifted(g, b):
                    n = split[0] * split[1]
                    nw = (img_size // split[0]) * (img_size // split[1])
                    sd[f"{p}.attn.attn_mask_0"] = torch.zeros(nw, n, n)
                    sd[f"{p}.attn.attn_mask_1"] = torch.zeros(nw, n, n)
            else:
                sd[f"{p}.attn.temperature"] = 1 + t(h, 1, 1)
            linear(sd, f"{p}.ffn.fc1", hidden, dim)
            norm(sd, f"{p}.ffn.sg.norm", hidden // 2)
            conv(sd, f"{p}.ffn.sg.conv", hidden // 2, 1, 3)
            linear(sd, f"{p}.ffn.fc2", dim, hidden // 2)
        if resi == "1conv":
            conv(sd, f"layers.{g}.conv", dim, dim, 3)
        else:
            conv(sd, f"layers.{g}.conv.0", dim // 4, dim, 3)
            conv(sd, f"layers.{g}.conv.2", dim // 4, dim // 4, 1)
            conv(sd, f"layers.{g}.conv.4", dim, dim // 4, 3)
    norm(sd, "norm", dim)
    if resi == "1conv":
        conv(sd, "conv_after_body", dim, dim, 3)
    else:
        conv(sd, "conv_after_body.0", dim // 4, dim, 3)
        conv(sd, "conv_after_body.2", dim // 4, dim // 4, 1)
        conv(sd, "conv_after_body.4", dim, dim // 4, 3)
    if upsampler == "pixelshuffle":
        conv(sd, "conv_before_upsample.0", num_feat, dim, 3)
        stages = [3] if scale == 3 else [2] * int(math.log2(scale))
        for i, r in enumerate(stages):
            conv(sd, f"upsample.{2 * i}", num_feat * r * r, num_feat, 3)
        conv(sd, "conv_last", 3, num_feat, 3)
    else:
        conv(sd, "upsample.0", 3 * scale * scale, dim, 3)
    return sd


DAT_PUBLISHED = {
    "dat": ({}, (8, 32), 4.0),
    "dat-s": ({"split": (8, 16), "expansion": 2}, (8, 16), 2.0),
    "dat-2": ({"expansion": 2}, (8, 32), 2.0),
    "dat-light": ({"dim": 60, "depths": (18,), "heads": (6,), "expansion": 2, "resi": "3conv",
                   "upsampler": "pixelshuffledirect"}, (8, 32), 2.0),
}


@pytest.mark.parametrize("name", list(DAT_PUBLISHED))
def test_dat_published_layouts_full_size(name: str) -> None:
    kw, split, expansion = DAT_PUBLISHED[name]
    scales = (2, 3, 4) if name in ("dat", "dat-light") else (4,)
    for scale in scales:
        sd = dat_sd(scale, **kw)
        assert find_model(sd) == "dat"
        model, s, kwargs = dat_arch.load_state_dict({"params": sd})
        assert s == scale and tuple(kwargs["split_size"]) == split and kwargs["expansion"] == expansion
        cfg = dat_arch.CONFIGS[name]
        assert tuple(kwargs["depths"]) == tuple(cfg.get("depths", (6,) * 6))
        assert tuple(kwargs["num_heads"]) == tuple(cfg.get("num_heads", (6,) * 6))
        assert kwargs.get("upsampler", "pixelshuffle") == cfg.get("upsampler", "pixelshuffle")
        assert kwargs.get("resi_connection", "1conv") == cfg.get("resi_connection", "1conv")
        assert nparams(model) == nparams(get_spec("dat").build(scale, **cfg))
    geo = get_spec("dat").geometry_for(4, dat_arch.CONFIGS[name])
    assert geo.size_multiple == math.lcm(*split) and not geo.exact and geo.receptive_field % geo.size_multiple == 0


# an independent functional DAT block, following the authors' algorithm step by step

def _img2win(x: torch.Tensor, hs: int, ws: int) -> torch.Tensor:  # B C H W -> B' N C
    b, c, h, w = x.shape
    return x.view(b, c, h // hs, hs, w // ws, ws).permute(0, 2, 4, 3, 5, 1).reshape(-1, hs * ws, c)


def _win2img(x: torch.Tensor, hs: int, ws: int, h: int, w: int) -> torch.Tensor:  # B' N C -> B H W C
    b = int(x.shape[0] / (h * w / hs / ws))
    return x.view(b, h // hs, w // ws, hs, ws, -1).permute(0, 1, 3, 2, 4, 5).reshape(b, h, w, -1)


def _ln(x, sd, p):
    return F.layer_norm(x, x.shape[-1:], sd[f"{p}.weight"], sd[f"{p}.bias"])


def _lin(x, sd, p):
    return F.linear(x, sd[f"{p}.weight"], sd.get(f"{p}.bias"))


def _bn(x, sd, p):
    return F.batch_norm(x, sd[f"{p}.running_mean"], sd[f"{p}.running_var"], sd[f"{p}.weight"], sd[f"{p}.bias"])


def _masks(h, w, split, shift):
    def one(hsz, wsz, hsh, wsh):
        img = torch.zeros(1, h, w, 1)
        cnt = 0
        for hh in (slice(0, -hsz), slice(-hsz, -hsh), slice(-hsh, None)):
            for ww in (slice(0, -wsz), slice(-wsz, -wsh), slice(-wsh, None)):
                img[:, hh, ww, :] = cnt
                cnt += 1
        win = img.view(1, h // hsz, hsz, w // wsz, wsz, 1).permute(0, 1, 3, 2, 4, 5).reshape(-1, hsz * wsz)
        m = win.unsqueeze(1) - win.unsqueeze(2)
        return m.masked_fill(m != 0, -100.0).masked_fill(m == 0, 0.0)

    return one(split[0], split[1], shift[0], shift[1]), one(split[1], split[0], shift[1], shift[0])


def _window_attn(qkv, sd, p, hs, ws, heads, h, w, mask):
    q, k, v = qkv[0], qkv[1], qkv[2]
    b, _, c = q.shape

    def im2win(x):
        x = _img2win(x.transpose(-2, -1).reshape(b, c, h, w), hs, ws)
        return x.reshape(-1, hs * ws, heads, c // heads).permute(0, 2, 1, 3)

    q, k, v = im2win(q) * (c // heads) ** -0.5, im2win(k), im2win(v)
    attn = q @ k.transpose(-2, -1)
    hb, wb = torch.arange(1 - hs, hs), torch.arange(1 - ws, ws)
    biases = torch.stack(torch.meshgrid([hb, wb], indexing="ij")).flatten(1).transpose(0, 1).to(q.dtype)
    pos = _lin(biases, sd, f"{p}.pos.pos_proj")
    for j in (1, 2, 3):
        pos = _lin(F.relu(_ln(pos, sd, f"{p}.pos.pos{j}.0")), sd, f"{p}.pos.pos{j}.2")
    coords = torch.stack(torch.meshgrid([torch.arange(hs), torch.arange(ws)], indexing="ij")).flatten(1)
    rel = (coords[:, :, None] - coords[:, None, :]).permute(1, 2, 0)
    index = (rel[..., 0] + hs - 1) * (2 * ws - 1) + rel[..., 1] + ws - 1
    attn = attn + pos[index.view(-1)].view(hs * ws, hs * ws, -1).permute(2, 0, 1).unsqueeze(0)
    n = attn.shape[-1]
    if mask is not None:
        attn = (attn.view(b, mask.shape[0], heads, n, n) + mask.unsqueeze(1).unsqueeze(0).to(attn.dtype)).view(-1, heads, n, n)
    x = (attn.softmax(-1) @ v).transpose(1, 2).reshape(-1, hs * ws, c)
    return _win2img(x, hs, ws, h, w)


def dat_block_reference(x, sd, p, h, w, heads, split, shifted, spatial):
    """One DATB (norm1 -> attention -> +, norm2 -> SGFN -> +) from the published keys."""
    b, n, c = x.shape
    y = _ln(x, sd, f"{p}.norm1")
    a = f"{p}.attn"
    if spatial:
        qkv = _lin(y, sd, f"{a}.qkv").reshape(b, -1, 3, c).permute(2, 0, 1, 3)
        v = qkv[2].transpose(-2, -1).reshape(b, c, h, w)
        shift = (split[0] // 2, split[1] // 2)
        half = c // 2
        if shifted:
            grid = qkv.view(3, b, h, w, c)
            q0 = torch.roll(grid[..., :half], shifts=(-shift[0], -shift[1]), dims=(2, 3)).reshape(3, b, n, half)
            q1 = torch.roll(grid[..., half:], shifts=(-shift[1], -shift[0]), dims=(2, 3)).reshape(3, b, n, half)
            m0, m1 = _masks(h, w, split, shift)
            x0 = _window_attn(q0, sd, f"{a}.attns.0", split[0], split[1], heads // 2, h, w, m0)
            x1 = _window_attn(q1, sd, f"{a}.attns.1", split[1], split[0], heads // 2, h, w, m1)
            x0 = torch.roll(x0, shifts=shift, dims=(1, 2))
            x1 = torch.roll(x1, shifts=shift[::-1], dims=(1, 2))
        else:
            x0 = _window_attn(qkv[..., :half], sd, f"{a}.attns.0", split[0], split[1], heads // 2, h, w, None)
            x1 = _window_attn(qkv[..., half:], sd, f"{a}.attns.1", split[1], split[0], heads // 2, h, w, None)
        att = torch.cat([x0.reshape(b, n, half), x1.reshape(b, n, half)], 2)
        conv_x = F.gelu(_bn(c2(v, sd, f"{a}.dwconv.0", groups=c), sd, f"{a}.dwconv.1"))
        cm = c2(F.gelu(_bn(c2(conv_x.mean((2, 3), keepdim=True), sd, f"{a}.channel_interaction.1"), sd,
                           f"{a}.channel_interaction.2")), sd, f"{a}.channel_interaction.4").permute(0, 2, 3, 1).reshape(b, 1, c)
        sm = c2(F.gelu(_bn(c2(att.transpose(1, 2).reshape(b, c, h, w), sd, f"{a}.spatial_interaction.0"), sd,
                           f"{a}.spatial_interaction.1")), sd, f"{a}.spatial_interaction.3")
        out = att * torch.sigmoid(cm) + (torch.sigmoid(sm) * conv_x).permute(0, 2, 3, 1).reshape(b, n, c)
    else:
        qkv = _lin(y, sd, f"{a}.qkv").reshape(b, n, 3, heads, c // heads).permute(2, 0, 3, 1, 4)
        q, k, v = (z.transpose(-2, -1) for z in qkv)
        v_ = v.reshape(b, c, n).reshape(b, c, h, w)
        attn = (F.normalize(q, dim=-1) @ F.normalize(k, dim=-1).transpose(-2, -1)) * sd[f"{a}.temperature"]
        att = (attn.softmax(-1) @ v).permute(0, 3, 1, 2).reshape(b, n, c)
        conv_x = F.gelu(_bn(c2(v_, sd, f"{a}.dwconv.0", groups=c), sd, f"{a}.dwconv.1"))
        cm = c2(F.gelu(_bn(c2(att.transpose(1, 2).reshape(b, c, h, w).mean((2, 3), keepdim=True), sd,
                              f"{a}.channel_interaction.1"), sd, f"{a}.channel_interaction.2")), sd, f"{a}.channel_interaction.4")
        sm = c2(F.gelu(_bn(c2(conv_x, sd, f"{a}.spatial_interaction.0"), sd, f"{a}.spatial_interaction.1")), sd,
                f"{a}.spatial_interaction.3").permute(0, 2, 3, 1).reshape(b, n, 1)
        out = att * torch.sigmoid(sm) + (conv_x * torch.sigmoid(cm)).permute(0, 2, 3, 1).reshape(b, n, c)
    x = x + _lin(out, sd, f"{a}.proj")
    y = F.gelu(_lin(_ln(x, sd, f"{p}.norm2"), sd, f"{p}.ffn.fc1"))
    y1, y2 = y.chunk(2, dim=-1)
    y2 = _ln(y2, sd, f"{p}.ffn.sg.norm").transpose(1, 2).reshape(b, -1, h, w)
    y2 = c2(y2, sd, f"{p}.ffn.sg.conv", groups=y2.shape[1]).flatten(2).transpose(1, 2)
    return x + _lin(y1 * y2, sd, f"{p}.ffn.fc2")


@pytest.mark.parametrize(("block", "split"), [(0, (4, 8)), (1, (4, 8)), (2, (4, 8)), (2, (8, 8))])
def test_dat_block_matches_the_authors_algorithm(block: int, split: tuple) -> None:
    """Group 0: block 0 spatial (plain windows), 1 channel, 2 spatial with shifted windows."""
    sd = {k: (v.double() if v.is_floating_point() else v) for k, v in
          dat_sd(2, dim=32, depths=(3,), heads=(4,), split=split, expansion=2).items()}
    model, _, kwargs = dat_arch.load_state_dict(sd)
    assert tuple(kwargs["split_size"]) == split
    model = model.double().eval()
    h, w = 16, 24
    x = torch.randn(2, h * w, 32, generator=_GEN, dtype=torch.float64)
    with torch.no_grad():
        ours = model.layers[0].blocks[block](x, h, w)
    ref = dat_block_reference(x, sd, f"layers.0.blocks.{block}", h, w, 4, split, _shifted(0, block), block % 2 == 0)
    torch.testing.assert_close(ours, ref, atol=1e-10, rtol=1e-10)


def test_dat_pads_to_the_window_grid_inside_like_the_authors() -> None:
    """Sizes off the window grid run (the authors' zero padding after the qkv projection)."""
    torch.manual_seed(0)
    m = dat_arch.dat(2, embed_dim=32, depths=(2,), num_heads=(2,), split_size=(4, 8)).eval()
    with torch.no_grad():
        assert m(torch.rand(1, 3, 10, 13)).shape == (1, 3, 20, 26)


def _local_dat(scale: int, **kw) -> torch.nn.Module:
    """A DAT with spatial blocks only and the AIM's globally pooled channel map switched off: what
    remains is local, so its reach must equal the computed receptive field."""
    torch.manual_seed(0)
    m = dat_arch.dat(scale, embed_dim=32, num_heads=(2,) * len(kw["depths"]), **kw).double().eval()
    for mod in m.modules():
        if isinstance(mod, dat_arch.AdaptiveSpatialAttention):
            torch.nn.init.zeros_(mod.channel_interaction[4].weight)
            torch.nn.init.zeros_(mod.channel_interaction[4].bias)
    return m


def test_dat_window_reach_is_the_receptive_field() -> None:
    kw = {"depths": (1, 1, 1, 1), "split_size": (4, 8)}  # groups 1 and 3 shift their windows
    m = _local_dat(2, **kw)
    r = dat_arch.receptive_field(2, **kw)
    size, p = 96, 48
    x = torch.rand(1, 3, size, size, dtype=torch.float64)
    x2 = x.clone()
    x2[..., p, p] += 1
    with torch.no_grad():
        diff = (m(x2) - m(x)).abs().amax(dim=(0, 1))
    changed = (diff > 1e-25).nonzero() // 2  # masked (wrapped) tokens leak exp(-100)
    dist = (changed - p).abs().max().item()
    assert r - 4 <= dist <= r, (dist, r)


def test_dat_geometry_covers_both_window_orientations() -> None:
    assert dat_arch.size_multiple(4, split_size=(8, 32)) == 32
    assert dat_arch.size_multiple(4, split_size=(8, 16)) == 16
    assert dat_arch.size_multiple(4, split_size=(8, 12)) == 24
    geo = get_spec("dat").geometry_for(4, {})
    assert (geo.size_multiple, geo.exact) == (32, False) and geo.receptive_field == get_spec("dat").receptive_field


# -- tiled vs whole (not exact for RCAN and DAT: the measured differences) ------------------------

def _perturbed(m: torch.nn.Module, amount: float = 0.02) -> torch.nn.Module:
    torch.manual_seed(1)
    with torch.no_grad():
        for p in m.parameters():
            p.add_(torch.randn_like(p) * amount)
    return m.eval()


@pytest.mark.parametrize(("kw", "bound"), [({"groups": 2, "blocks": 2, "features": 16, "reduction": 4}, 2 / 255),
                                           ({"groups": 2, "blocks": 4, "features": 32, "reduction": 8}, 6 / 255)])
def test_rcan_tiled_vs_whole_at_default_pad(kw: dict, bound: float) -> None:
    """Cut into windows, RCAN is not exact (channel attention pools globally): measured with random
    weights, about a level for the smaller network and up to ~4.4 levels for the larger one. This is
    why the engine tiles it with RCAN.forward_tiles instead (next test)."""
    torch.manual_seed(0)  # the initial weights, before _perturbed's own seed
    m = _perturbed(rcan_arch.rcan(2, **kw))
    geo = get_spec("rcan").geometry_for(2, kw)
    assert not geo.exact and geo.receptive_field == rcan_arch.receptive_field(2, **kw)
    x = photo(96)
    with torch.no_grad():
        whole = m(x)
    diff = float((tiled(m, x, 2, tile=32, pad=geo.receptive_field) - whole).abs().max())
    assert 1e-5 < diff < bound, diff


def test_rcan_tiles_exactly_through_its_own_tiling() -> None:
    """The engine runs RCAN's convolutions tile by tile and each channel attention over the whole
    feature map (RCAN.forward_tiles): equal to the whole-image pass up to float rounding where
    plain windows are visibly off, with TTA, on the resident path, rounded to 8 bits, and
    with no 'does not tile exactly' warning."""
    from sresr import load_model
    from sresr.engine import Upscaler
    from sresr.imaging.io import Image

    kw = {"groups": 2, "blocks": 4, "features": 32, "reduction": 8}
    torch.manual_seed(0)
    loaded = load_model("rcan", scale=2, pretrained=False, **kw)
    _perturbed(loaded.module)
    x = photo(96)
    whole = Upscaler(loaded, device="cpu", tile=0).run(x)
    up = Upscaler(loaded, device="cpu", tile=24)
    assert up.exact and up.streams and not [w for w in up.warnings if "tile exactly" in w]
    assert len(up.plan_for(96, 96)) == 16 and up.tile_pad == loaded.module.tile_radius == 2
    assert float((up.run(x) - whole).abs().max()) < 1e-5
    windows = tiled(loaded.module, x, 2, tile=24, pad=loaded.geometry.receptive_field)
    assert float((windows.clamp(0, 1) - whole).abs().max()) > 1e-3  # plain windows: far beyond float rounding
    tta_whole = Upscaler(loaded, device="cpu", tile=0, tta=True).run(x)
    assert float((Upscaler(loaded, device="cpu", tile=24, tta=True).run(x) - tta_whole).abs().max()) < 1e-5
    img = Image((x[0].permute(1, 2, 0).numpy() * 255).round().astype("uint8"), bit_depth=8)
    ref = Upscaler(loaded, device="cpu", tile=0).upscale_image(img, depth=8).pixels
    got = Upscaler(loaded, device="cpu", tile=24, resident=True).upscale_image(img, depth=8).pixels
    assert abs(got.astype(int) - ref.astype(int)).max() <= 1 and (got != ref).mean() < 1e-3
    # the default on the CPU: 256-pixel tiles of the convolutions, exact at any size
    default = Upscaler(loaded, device="cpu")
    y = torch.rand(1, 3, 300, 280, generator=torch.Generator().manual_seed(5))
    assert len(default.plan_for(300, 280)) > 1
    assert float((default.run(y) - Upscaler(loaded, device="cpu", tile=0).run(y)).abs().max()) < 1e-5


def test_rcan_frames_through_its_own_tiling_a_few_at_a_time() -> None:
    """Several frames of a tiled RCAN (video): forward_tiles holds each image's whole feature maps,
    so it gets ``batch`` images a call, and an out-of-memory error halves that before the tile; every
    frame equals its own upscale."""
    import numpy as np

    from sresr import load_model
    from sresr.engine import Upscaler
    from sresr.imaging.io import Image

    torch.manual_seed(0)
    loaded = load_model("rcan", scale=2, pretrained=False, groups=1, blocks=1, features=8, reduction=4)
    plain = type(loaded.module)
    calls: list[tuple[int, int]] = []

    class OneImageFits(plain):  # type: ignore[misc, valid-type]
        def forward_tiles(self, x, tile):
            calls.append((x.shape[0], tile))
            if x.shape[0] > 1:
                raise torch.OutOfMemoryError(f"injected: the feature maps of {x.shape[0]} images")
            return plain.forward_tiles(self, x, tile)

    loaded.module.__class__ = OneImageFits
    rng = np.random.default_rng(0)
    frames = [Image(rng.integers(0, 256, (80, 72, 3), dtype=np.uint8), bit_depth=8) for _ in range(4)]
    up = Upscaler(loaded, device="cpu", tile=32, batch=4, frame_batch=4, optimize=False)
    assert up.streams and len(up.plan_for(80, 72)) > 1
    got = up.upscale_batch(frames, depth=8)
    assert [c for c, _ in calls] == [4, 2, 1, 1, 1, 1] and {t for _, t in calls} == {32}, calls
    assert up.stats.oom_retries == 2 and up.tile == 32
    loaded.module.__class__ = plain
    alone = Upscaler(loaded, device="cpu", tile=32, optimize=False)
    for f, g in zip(frames, got):
        want = alone.upscale_image(f, depth=8).pixels
        assert np.abs(g.pixels.astype(int) - want.astype(int)).max() <= 1


def test_dat_tiled_close_to_whole_at_default_pad() -> None:
    kw = {"embed_dim": 32, "depths": (2, 2), "num_heads": (2, 2), "split_size": (4, 8)}
    m = _perturbed(dat_arch.dat(2, **kw))
    geo = get_spec("dat").geometry_for(2, kw)
    x = photo(96)
    with torch.no_grad():
        whole = m(x)
    out = tiled(m, x, 2, tile=32, pad=geo.receptive_field, multiple=geo.size_multiple)
    diff = float((out - whole).abs().max())
    assert diff < 1 / 255, diff


# -- precision -----------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["rcan", "span", "dat"])
def test_bf16_close_to_fp32_on_cpu(name: str) -> None:
    small = {"rcan": {"groups": 2, "blocks": 2, "features": 16, "reduction": 4}, "span": {"features": 8},
             "dat": {"embed_dim": 32, "depths": (2,), "num_heads": (2,), "split_size": (4, 8)}}[name]
    m = _perturbed(get_spec(name).build(2, **small))
    x = photo(16)
    with torch.no_grad():
        ref = m(x)
        low = m.to(torch.bfloat16)(x.to(torch.bfloat16)).float()
    # relative to the output's range (random SPAN weights output tens: it has no "+ mean, / 255")
    assert torch.isfinite(low).all() and float((low - ref).abs().max()) < 0.02 * max(1.0, float(ref.abs().max()))


# -- sresr weights import ------------------------------------------------------------------------

def test_weights_import_recognises_each_family(tmp_path) -> None:
    """``sresr weights import FILE`` (the library call behind it) finds the family from the keys,
    reads the scale from the shapes and caches the file; it then loads by name."""
    from sresr.weights import import_weights, load_model

    files = {
        "rcan": ({"state_dict": rcan_official_sd(3, 1, 1, 16, 4)}, 3),
        "span": ({"params_ema": span_sd(2, 8, no_norm=True)}, 2),
        "dat": ({"params": dat_sd(4, dim=32, depths=(2,), heads=(2,), split=(4, 8), resi="3conv",
                                  upsampler="pixelshuffledirect")}, 4),
    }
    for model, (obj, scale) in files.items():
        path = tmp_path / f"{model}.pth"
        torch.save(obj, path)
        entry = import_weights(path, name=f"my-{model}")
        assert (entry.model, entry.scale) == (model, scale)
        loaded = load_model(f"my-{model}")
        with torch.no_grad():
            assert loaded.module(torch.rand(1, 3, 8, 8)).shape == (1, 3, 8 * scale, 8 * scale)


@pytest.mark.parametrize("name", ["rcan", "dat", "span"])
def test_upscaler_warns_when_tiling_is_approximate(name: str) -> None:
    """Models whose tiles are not exact say so once when tiled (DAT); a whole-image run (tile 0), an
    exactly tiling model (SPAN) and RCAN (exact through its own tiling) say nothing."""
    from sresr import load_model
    from sresr.engine import Upscaler

    small = {"rcan": {"groups": 1, "blocks": 1, "features": 8, "reduction": 4},
             "dat": {"embed_dim": 32, "depths": (2, 2), "num_heads": (2, 2), "split_size": (4, 8)},
             "span": {"features": 8}}[name]
    loaded = load_model(name, scale=2, pretrained=False, **small)
    tiled_warnings = Upscaler(loaded, device="cpu", tile=64).warnings
    approximate = [w for w in tiled_warnings if "does not tile exactly" in w]
    assert len(approximate) == (0 if name in ("span", "rcan") else 1)
    assert (name == "span") == loaded.geometry.exact  # RCAN's windows are not exact: its own tiling is
    assert not [w for w in Upscaler(loaded, device="cpu", tile=0).warnings if "does not tile exactly" in w]


def test_inexact_models_run_small_images_whole_by_default() -> None:
    """With no --tile, a network that does not tile exactly runs an image of up to 512x512 pixels
    in one window (the paper's whole-image result, bit for bit) and tiles only larger ones; an
    exact network keeps the CPU's 256-pixel tiles."""
    from sresr import load_model
    from sresr.engine import INEXACT_WHOLE_PIXELS, Upscaler

    dat = load_model("dat", scale=2, pretrained=False, embed_dim=32, depths=(1,), num_heads=(2,), split_size=(4, 8))
    up = Upscaler(dat, device="cpu")
    assert INEXACT_WHOLE_PIXELS == 512 * 512
    assert len(up.plan_for(512, 512).tiles) == 1 and len(up.plan_for(400, 600).tiles) == 1
    assert len(up.plan_for(520, 520).tiles) > 1
    assert any("images over 512x512 pixels are tiled" in w for w in up.warnings)
    x = torch.rand(1, 3, 200, 180, generator=torch.Generator().manual_seed(5))
    whole = Upscaler(dat, device="cpu", tile=0).upscale_rgb(x)
    assert torch.equal(up.upscale_rgb(x), whole)
    assert not torch.equal(Upscaler(dat, device="cpu", tile=64).upscale_rgb(x), whole)
    span = load_model("span", scale=2, pretrained=False, features=8)
    assert len(Upscaler(span, device="cpu").plan_for(512, 512).tiles) > 1


@pytest.mark.parametrize("alias,ident,host_path", [
    ("DAT_x4", "dat.x4", "huggingface.co/w-e-w/DAT/resolve/main/experiments/pretrained_models/DAT/DAT_x4.pth"),
    ("HAT_SRx4_ImageNet-pretrain", "hat.x4-imagenet", "huggingface.co/Acly/hat/resolve/main/HAT_SRx4_ImageNet-pretrain.pth"),
])
def test_mirrored_release_files_are_found_by_their_names_and_verified(alias, ident, host_path, tmp_path, monkeypatch):
    """DAT x2-x4 and HAT x4 (ImageNet) come from Hugging Face mirrors of the authors' Google Drive
    files: the published file name finds the variant, the download goes to the declared mirror
    path (here served from 127.0.0.1 through SRESR_MIRROR) and a file that is not the published
    one (its full sha256 differs) is refused with both hashes named, and nothing is kept."""
    from _http import FileServer  # type: ignore[import-not-found]

    from sresr.errors import WeightsError
    from sresr.resolve import resolve
    from sresr.weights import list_cached, pull

    request = resolve(alias)
    assert (request.rule, request.ident, request.variant.scale) == ("variant", ident, 4)
    assert len(request.variant.sha256) == 64 and request.spec.default_weights(4) is request.variant
    impostor = tmp_path / "impostor.pth"
    torch.save({"params": {"conv_first.weight": torch.zeros(1)}}, impostor)
    with FileServer({host_path: impostor.read_bytes()}) as srv:
        monkeypatch.setenv("SRESR_MIRROR", srv.base)
        monkeypatch.setenv("SRESR_OFFLINE", "0")
        with pytest.raises(WeightsError) as info:
            pull(ident)
        assert srv.hits == {"/" + host_path: 1}
    assert request.variant.sha256 in str(info.value.message) or request.variant.sha256 in str(info.value.hint)
    assert [e for e in list_cached(include_bundled=False)] == []


def test_dat_whole_image_is_the_authors_output_and_masks_live_for_one_pass() -> None:
    """DAT pads inside (zeros after its qkv projection, as the authors' code): run whole, an image
    of any size is given to it unpadded (Geometry.any_size), so the engine's output is the
    network's own, edges included; its shifted-window masks are shared by all blocks and dropped
    after each pass (a 512x512 mask is 256 MB)."""
    from sresr import load_model
    from sresr.engine import Upscaler

    torch.manual_seed(0)
    lm = load_model("dat", scale=2, pretrained=False, embed_dim=32, depths=(2, 2), num_heads=(2, 2))
    with torch.no_grad():
        for p in lm.module.parameters():
            p.add_(0.05 * torch.randn_like(p))
    x = torch.rand(1, 3, 45, 70, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        own = lm.module(x).clamp(0, 1)
    for tile in (0, None):
        assert float((Upscaler(lm, device="cpu", tile=tile).upscale_rgb(x) - own).abs().max()) < 1e-5
    memos = {id(m.memo) for m in lm.module.modules() if isinstance(m, dat_arch.AdaptiveSpatialAttention)}
    assert memos == {id(lm.module._memo)} and lm.module._memo.entries == {}


def test_dat_file_without_its_window_size_is_refused_not_guessed(tmp_path: Path) -> None:
    """A DAT state dict saved without its rpe_biases buffers cannot tell 8x32 windows (DAT) from
    8x16 (DAT-S): loading it says so instead of building the wrong network; split_size= loads it."""
    from sresr.errors import LayoutError

    net = dat_arch.dat(scale=2, embed_dim=32, depths=(2,), num_heads=(2,), split_size=(8, 16), expansion=2.0)
    sd = net.state_dict()
    assert not any(k.endswith("rpe_biases") for k in sd)
    with pytest.raises(LayoutError, match="does not record its window size"):
        dat_arch.load_state_dict(sd)
    module, scale, kwargs = dat_arch.load_state_dict(sd, split_size=(8, 16))
    x = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(module(x), net.eval()(x)) and scale == 2
