"""Published checkpoint layouts: synthetic state dicts with exactly the published key names and
shapes (written out here from checkpoint-formats.md, not derived from our modules) load strictly,
and each loaded network computes what an independent functional forward of the published
architecture computes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from sresr.errors import LayoutError, UnsafeCheckpointError, WeightsError
from sresr.models import find_model
from sresr.models._layouts import read_checkpoint, unwrap_state_dict
from sresr.models.edsr import arch as edsr_arch
from sresr.models.esrgan import arch as esrgan_arch
from sresr.models.espcn import arch as espcn_arch
from sresr.models.fsrcnn import arch as fsrcnn_arch
from sresr.models.srcnn import arch as srcnn_arch
from sresr.models.srresnet import arch as srresnet_arch
from sresr.models.srvgg import arch as srvgg_arch
from sresr.models.vdsr import arch as vdsr_arch
from sresr.registry import get_spec

_GEN = torch.Generator().manual_seed(0)


def t(*shape: int) -> torch.Tensor:
    return torch.randn(*shape, generator=_GEN) * 0.05


def conv(sd: dict, name: str, cout: int, cin: int, k: int, bias: bool = True) -> None:
    sd[f"{name}.weight"] = t(cout, cin, k, k)
    if bias:
        sd[f"{name}.bias"] = t(cout)


def c2(x: torch.Tensor, sd: dict, name: str) -> torch.Tensor:
    w = sd[f"{name}.weight"]
    return F.conv2d(x, w, sd.get(f"{name}.bias"), padding=w.shape[-1] // 2)


def image(channels: int, size: int = 10) -> torch.Tensor:
    return torch.rand(1, channels, size, size, generator=_GEN)


# -- SRCNN / FSRCNN / ESPCN / VDSR -------------------------------------------------------------

def srcnn_sd(f2: int = 5) -> dict:
    sd: dict = {}
    conv(sd, "conv1", 64, 1, 9)
    conv(sd, "conv2", 32, 64, f2)
    conv(sd, "conv3", 1, 32, 5)
    return sd


def test_srcnn_layout() -> None:
    for f2 in (5, 1):
        sd = srcnn_sd(f2)
        model, scale, kwargs = srcnn_arch.load_state_dict(sd, scale=3)
        assert (scale, kwargs["f2"]) == (3, f2)
        x = image(1)
        ref = c2(F.relu(c2(F.relu(c2(x, sd, "conv1")), sd, "conv2")), sd, "conv3")
        assert torch.allclose(model(x), ref, atol=1e-6)
    assert find_model(srcnn_sd()) == "srcnn"


def fsrcnn_sd(d: int = 56, s: int = 12, m: int = 4) -> dict:
    sd: dict = {}
    conv(sd, "first_part.0", d, 1, 5)
    sd["first_part.1.weight"] = t(d).abs()
    conv(sd, "mid_part.0", s, d, 1)
    sd["mid_part.1.weight"] = t(s).abs()
    for i in range(m):
        conv(sd, f"mid_part.{2 + 2 * i}", s, s, 3)
        sd[f"mid_part.{3 + 2 * i}.weight"] = t(s).abs()
    conv(sd, f"mid_part.{2 + 2 * m}", d, s, 1)
    sd[f"mid_part.{3 + 2 * m}.weight"] = t(d).abs()
    sd["last_part.weight"] = t(d, 1, 9, 9)
    sd["last_part.bias"] = t(1)
    return sd


def fsrcnn_reference(x: torch.Tensor, sd: dict, m: int, scale: int) -> torch.Tensor:
    y = F.prelu(c2(x, sd, "first_part.0"), sd["first_part.1.weight"])
    for j in range(0, 2 * m + 4, 2):
        y = F.prelu(c2(y, sd, f"mid_part.{j}"), sd[f"mid_part.{j + 1}.weight"])
    return F.conv_transpose2d(y, sd["last_part.weight"], sd["last_part.bias"], stride=scale, padding=4,
                              output_padding=scale - 1)


@pytest.mark.parametrize(("d", "s", "m", "scale"), [(56, 12, 4, 2), (56, 12, 4, 3), (32, 5, 1, 4)])
def test_fsrcnn_yjn870_layout(d: int, s: int, m: int, scale: int) -> None:
    sd = fsrcnn_sd(d, s, m)
    if (d, s, m) == (56, 12, 4):
        assert sum(v.numel() for v in sd.values()) == 12809
    model, got_scale, kwargs = fsrcnn_arch.load_state_dict(sd, scale=scale)
    assert got_scale == scale and kwargs == {"channels": 1, "d": d, "s": s, "m": m}
    x = image(1, 7)
    out = model(x)
    assert out.shape[-1] == 7 * scale
    assert torch.allclose(out, fsrcnn_reference(x, sd, m, scale), atol=1e-6)
    assert find_model(sd) == "fsrcnn"


def espcn_sd(scale: int) -> dict:
    sd: dict = {}
    conv(sd, "first_part.0", 64, 1, 5)
    conv(sd, "first_part.2", 32, 64, 3)
    conv(sd, "last_part.0", scale * scale, 32, 3)
    return sd


@pytest.mark.parametrize("activation", ["tanh", "relu"])
def test_espcn_yjn870_layout(activation: str) -> None:
    sd = espcn_sd(3)
    model, scale, kwargs = espcn_arch.load_state_dict(sd, activation=activation)
    assert scale == 3 and kwargs["activation"] == activation
    act = torch.tanh if activation == "tanh" else F.relu
    x = image(1)
    ref = F.pixel_shuffle(c2(act(c2(act(c2(x, sd, "first_part.0")), sd, "first_part.2")), sd, "last_part.0"), 3)
    assert torch.allclose(model(x), ref, atol=1e-6)
    assert find_model(sd) == "espcn"


def vdsr_sd() -> dict:
    sd: dict = {"input.weight": t(64, 1, 3, 3)}
    for i in range(18):
        sd[f"residual_layer.{i}.conv.weight"] = t(64, 64, 3, 3)
    sd["output.weight"] = t(1, 64, 3, 3)
    return sd


def test_vdsr_twtygqyy_layout() -> None:
    sd = vdsr_sd()
    assert sum(v.numel() for v in sd.values()) == 664704
    model, scale, kwargs = vdsr_arch.load_state_dict(sd, scale=4)
    assert scale == 4 and kwargs == {"channels": 1, "depth": 20, "features": 64}
    x = image(1)
    y = F.relu(c2(x, sd, "input"))
    for i in range(18):
        y = F.relu(c2(y, sd, f"residual_layer.{i}.conv"))
    ref = c2(y, sd, "output") + x
    assert torch.allclose(model(x), ref, atol=1e-5)
    assert find_model(sd) == "vdsr"


# -- RRDBNet: three layouts ---------------------------------------------------------------------

def rrdb_basicsr(nb: int, nf: int, gc: int, in_ch: int = 3, out_ch: int = 3) -> dict:
    sd: dict = {}
    conv(sd, "conv_first", nf, in_ch, 3)
    for i in range(nb):
        for r in (1, 2, 3):
            for j in range(1, 6):
                conv(sd, f"body.{i}.rdb{r}.conv{j}", nf if j == 5 else gc, nf + (j - 1) * gc, 3)
    for name in ("conv_body", "conv_up1", "conv_up2", "conv_hr"):
        conv(sd, name, nf, nf, 3)
    conv(sd, "conv_last", out_ch, nf, 3)
    return sd


def to_esrgan_repo(sd: dict) -> dict:
    names = {"conv_body": "trunk_conv", "conv_up1": "upconv1", "conv_up2": "upconv2", "conv_hr": "HRconv"}
    out = {}
    for k, v in sd.items():
        parts = k.split(".")
        if parts[0] == "body":
            k = f"RRDB_trunk.{parts[1]}.RDB{parts[2][3:]}.{parts[3]}.{parts[4]}"
        elif parts[0] in names:
            k = f"{names[parts[0]]}.{parts[1]}"
        out[k] = v
    return out


def to_esrgan_old(sd: dict, nb: int) -> dict:
    names = {"conv_first": "model.0", "conv_body": f"model.1.sub.{nb}", "conv_up1": "model.3",
             "conv_up2": "model.6", "conv_hr": "model.8", "conv_last": "model.10"}
    out = {}
    for k, v in sd.items():
        parts = k.split(".")
        if parts[0] == "body":
            k = f"model.1.sub.{parts[1]}.RDB{parts[2][3:]}.{parts[3]}.0.{parts[4]}"
        else:
            k = f"{names[parts[0]]}.{parts[1]}"
        out[k] = v
    return out


def rrdb_reference(x: torch.Tensor, sd: dict, nb: int, unshuffle: int) -> torch.Tensor:
    """RRDBNet forward written from the published description, on the BasicSR key names."""
    lrelu = lambda v: F.leaky_relu(v, 0.2)  # noqa: E731
    if unshuffle > 1:
        x = F.pixel_unshuffle(x, unshuffle)
    fea = c2(x, sd, "conv_first")
    trunk = fea
    for i in range(nb):
        block_in = trunk
        for r in (1, 2, 3):
            feats = [trunk]
            for j in range(1, 5):
                feats.append(lrelu(c2(torch.cat(feats, 1), sd, f"body.{i}.rdb{r}.conv{j}")))
            trunk = c2(torch.cat(feats, 1), sd, f"body.{i}.rdb{r}.conv5") * 0.2 + trunk
        trunk = trunk * 0.2 + block_in
    fea = fea + c2(trunk, sd, "conv_body")
    fea = lrelu(c2(F.interpolate(fea, scale_factor=2, mode="nearest"), sd, "conv_up1"))
    fea = lrelu(c2(F.interpolate(fea, scale_factor=2, mode="nearest"), sd, "conv_up2"))
    return c2(lrelu(c2(fea, sd, "conv_hr")), sd, "conv_last")


def test_rrdbnet_three_layouts_same_output() -> None:
    nb, nf, gc = 2, 16, 8
    sd = rrdb_basicsr(nb, nf, gc)
    x = image(3, 8)
    outs = []
    for layout_sd in (sd, to_esrgan_repo(sd), to_esrgan_old(sd, nb)):
        assert find_model(layout_sd) == "esrgan"
        model, scale, kwargs = esrgan_arch.load_state_dict(layout_sd)
        assert scale == 4 and kwargs == {"channels": 3, "features": nf, "blocks": nb, "growth": gc}
        with torch.no_grad():
            outs.append(model(x))
    assert torch.equal(outs[0], outs[1]) and torch.equal(outs[0], outs[2])
    assert torch.allclose(outs[0], rrdb_reference(x, sd, nb, 1), atol=1e-6)
    assert outs[0].shape == (1, 3, 32, 32)


def test_rrdbnet_published_key_names() -> None:
    sd = rrdb_basicsr(23, 64, 32)
    # spot checks against checkpoint-formats.md (shapes (out, in, kh, kw))
    assert sd["body.22.rdb3.conv5.weight"].shape == (64, 192, 3, 3)
    assert sd["body.0.rdb1.conv2.weight"].shape == (32, 96, 3, 3)
    assert sum(v.numel() for v in sd.values()) == 16697987
    old = to_esrgan_old(sd, 23)
    assert "model.1.sub.23.weight" in old and "model.1.sub.0.RDB1.conv1.0.weight" in old
    assert {"model.0.weight", "model.3.weight", "model.6.weight", "model.8.weight", "model.10.weight"} <= set(old)
    repo = to_esrgan_repo(sd)
    assert {"trunk_conv.weight", "upconv1.weight", "upconv2.weight", "HRconv.weight", "conv_last.weight",
            "RRDB_trunk.22.RDB3.conv5.bias"} <= set(repo)


@pytest.mark.parametrize(("unshuffle", "scale"), [(2, 2), (4, 1)])
def test_rrdbnet_pixel_unshuffle_variants(unshuffle: int, scale: int) -> None:
    nb = 1
    sd = rrdb_basicsr(nb, 64, 32, in_ch=3 * unshuffle**2)
    model, got, kwargs = esrgan_arch.load_state_dict({"params_ema": sd})
    assert got == scale and kwargs["blocks"] == nb
    x = image(3, 8)
    with torch.no_grad():
        out = model(x)
        assert out.shape == (1, 3, 8 * scale, 8 * scale)
        assert torch.allclose(out, rrdb_reference(x, sd, nb, unshuffle), atol=1e-5)
    with pytest.raises(LayoutError, match="x2|x1"):
        esrgan_arch.load_state_dict(sd, scale=4)


def test_rrdbnet_anime_6b_blocks_inferred() -> None:
    sd = rrdb_basicsr(6, 64, 32)
    assert sum(v.numel() for v in sd.values()) == 4467779
    model, scale, kwargs = esrgan_arch.load_state_dict({"params_ema": sd, "params": rrdb_basicsr(6, 64, 32)})
    assert (scale, kwargs["blocks"]) == (4, 6)
    assert torch.equal(model.conv_last.weight, sd["conv_last.weight"])  # params_ema preferred


def test_layout_error_names_closest_layout_and_keys() -> None:
    sd = rrdb_basicsr(2, 8, 4)
    del sd["conv_hr.bias"]
    sd["conv_extra.weight"] = t(8, 8, 3, 3)
    with pytest.raises(LayoutError) as info:
        esrgan_arch.load_state_dict(sd)
    err = info.value
    assert err.closest == "rrdbnet-basicsr"
    assert err.missing == ["conv_hr.bias"] and err.unexpected == ["conv_extra.weight"]
    assert "rrdbnet-basicsr" in str(err) and "conv_hr.bias" in str(err) and "conv_extra.weight" in str(err)
    assert err.hint and "rrdbnet-esrgan-old" in err.hint

    old = to_esrgan_old(rrdb_basicsr(2, 8, 4), 2)
    old["model.8.weight"] = t(8, 8, 1, 1)
    with pytest.raises(LayoutError, match="shape mismatch: model.8.weight") as info:
        esrgan_arch.load_state_dict(old)
    assert info.value.closest == "rrdbnet-esrgan-old"

    with pytest.raises(LayoutError, match="no known esrgan layout"):
        esrgan_arch.load_state_dict(fsrcnn_sd())


# -- SRVGGNetCompact, MSRResNet, EDSR ------------------------------------------------------------

def srvgg_sd(num_conv: int, scale: int) -> dict:
    sd: dict = {}
    conv(sd, "body.0", 64, 3, 3)
    sd["body.1.weight"] = t(64).abs()
    for i in range(num_conv):
        conv(sd, f"body.{2 + 2 * i}", 64, 64, 3)
        sd[f"body.{3 + 2 * i}.weight"] = t(64).abs()
    conv(sd, f"body.{2 + 2 * num_conv}", 3 * scale * scale, 64, 3)
    return sd


@pytest.mark.parametrize(("num_conv", "scale", "params"), [(16, 4, 621424), (32, 4, 1213296), (16, 2, None)])
def test_srvgg_compact_layout(num_conv: int, scale: int, params: int | None) -> None:
    sd = srvgg_sd(num_conv, scale)
    if params:
        assert sum(v.numel() for v in sd.values()) == params
    model, got, kwargs = srvgg_arch.load_state_dict({"params": sd})
    assert got == scale and kwargs["num_conv"] == num_conv
    x = image(3, 6)
    y = x
    for i in range(0, 2 * num_conv + 2, 2):
        y = F.prelu(c2(y, sd, f"body.{i}"), sd[f"body.{i + 1}.weight"])
    ref = F.pixel_shuffle(c2(y, sd, f"body.{2 * num_conv + 2}"), scale) + F.interpolate(x, scale_factor=scale)
    with torch.no_grad():
        assert torch.allclose(model(x), ref, atol=1e-5)
    assert find_model(sd) == "realesrgan-compact"


def msrresnet_sd(scale: int, nb: int = 16) -> dict:
    sd: dict = {}
    conv(sd, "conv_first", 64, 3, 3)
    for i in range(nb):
        conv(sd, f"body.{i}.conv1", 64, 64, 3)
        conv(sd, f"body.{i}.conv2", 64, 64, 3)
    conv(sd, "upconv1", 64 * (4 if scale in (2, 4) else 9), 64, 3)
    if scale == 4:
        conv(sd, "upconv2", 256, 64, 3)
    conv(sd, "conv_hr", 64, 64, 3)
    conv(sd, "conv_last", 3, 64, 3)
    return sd


@pytest.mark.parametrize("scale", [4, 3])
def test_msrresnet_basicsr_layout(scale: int) -> None:
    sd = msrresnet_sd(scale)
    if scale == 4:
        assert sum(v.numel() for v in sd.values()) == 1517571
    model, got, kwargs = srresnet_arch.load_state_dict(sd)
    assert got == scale and kwargs["variant"] == "msrresnet" and kwargs["blocks"] == 16
    lrelu = lambda v: F.leaky_relu(v, 0.1)  # noqa: E731
    x = image(3, 6)
    y = lrelu(c2(x, sd, "conv_first"))
    for i in range(16):
        y = y + c2(F.relu(c2(y, sd, f"body.{i}.conv1")), sd, f"body.{i}.conv2")
    if scale == 4:
        y = lrelu(F.pixel_shuffle(c2(y, sd, "upconv1"), 2))
        y = lrelu(F.pixel_shuffle(c2(y, sd, "upconv2"), 2))
    else:
        y = lrelu(F.pixel_shuffle(c2(y, sd, "upconv1"), 3))
    ref = c2(lrelu(c2(y, sd, "conv_hr")), sd, "conv_last")
    ref = ref + F.interpolate(x, scale_factor=scale, mode="bilinear", align_corners=False)
    with torch.no_grad():
        assert torch.allclose(model(x), ref, atol=1e-5)
    assert find_model(sd) == "srresnet"
    # the SRGAN spec loads the same generator weights
    assert get_spec("srgan").loader is not None


def test_srresnet_native_layout_roundtrip() -> None:
    for kwargs in ({"blocks": 2, "norm": "bn"}, {"blocks": 3, "norm": "none", "upsampler": "bicubic"},
                   {"blocks": 1, "norm": "in"}):
        torch.manual_seed(0)
        ref = srresnet_arch.srresnet(4, features=16, **kwargs).eval()
        model, scale, got = srresnet_arch.load_state_dict({"module." + k: v for k, v in ref.state_dict().items()})
        assert scale == 4
        for k, v in kwargs.items():
            assert got[k] == v
        x = image(3, 6)
        with torch.no_grad():
            assert torch.equal(model(x), ref(x))


def edsr_basicsr_sd(scale: int, nf: int = 64, nb: int = 16) -> dict:
    sd: dict = {}
    conv(sd, "conv_first", nf, 3, 3)
    for i in range(nb):
        conv(sd, f"body.{i}.conv1", nf, nf, 3)
        conv(sd, f"body.{i}.conv2", nf, nf, 3)
    conv(sd, "conv_after_body", nf, nf, 3)
    if scale == 3:
        conv(sd, "upsample.0", 9 * nf, nf, 3)
    else:
        for j in range(scale.bit_length() - 1):
            conv(sd, f"upsample.{2 * j}", 4 * nf, nf, 3)
    conv(sd, "conv_last", 3, nf, 3)
    return sd


def edsr_official_from_basicsr(sd: dict, nb: int) -> dict:
    mean = torch.tensor([0.4488, 0.4371, 0.4040])
    out = {
        "sub_mean.weight": torch.eye(3).view(3, 3, 1, 1), "sub_mean.bias": -255 * mean,
        "add_mean.weight": torch.eye(3).view(3, 3, 1, 1), "add_mean.bias": 255 * mean,
    }
    for k, v in sd.items():
        p = k.split(".")
        if p[0] == "conv_first":
            k = f"head.0.{p[1]}"
        elif p[0] == "body":
            k = f"body.{p[1]}.body.{0 if p[2] == 'conv1' else 2}.{p[3]}"
        elif p[0] == "conv_after_body":
            k = f"body.{nb}.{p[1]}"
        elif p[0] == "upsample":
            k = f"tail.0.{p[1]}.{p[2]}"
        elif p[0] == "conv_last":
            k = f"tail.1.{p[1]}"
        out[k] = v
    return out


def edsr_official_reference(x: torch.Tensor, sd: dict, nb: int, scale: int, res_scale: float) -> torch.Tensor:
    """EDSR-PyTorch forward on [0, 255] images, with its mean-shift 1x1 convolutions."""
    y = F.conv2d(x * 255, sd["sub_mean.weight"], sd["sub_mean.bias"])
    y = c2(y, sd, "head.0")
    res = y
    for i in range(nb):
        res = res + c2(F.relu(c2(res, sd, f"body.{i}.body.0")), sd, f"body.{i}.body.2") * res_scale
    res = c2(res, sd, f"body.{nb}") + y
    if scale == 3:
        res = F.pixel_shuffle(c2(res, sd, "tail.0.0"), 3)
    else:
        for j in range(scale.bit_length() - 1):
            res = F.pixel_shuffle(c2(res, sd, f"tail.0.{2 * j}"), 2)
    out = c2(res, sd, "tail.1")
    return F.conv2d(out, sd["add_mean.weight"], sd["add_mean.bias"]) / 255


@pytest.mark.parametrize(("scale", "params"), [(2, 1369859), (3, 1554499), (4, 1517571)])
def test_edsr_basicsr_and_official_layouts(scale: int, params: int) -> None:
    sd = edsr_basicsr_sd(scale)
    assert sum(v.numel() for v in sd.values()) == params
    official = edsr_official_from_basicsr(sd, 16)
    assert {"head.0.weight", "body.0.body.0.weight", "body.0.body.2.weight", "body.16.weight",
            "tail.0.0.weight", "tail.1.weight"} <= set(official)
    assert ("tail.0.2.weight" in official) == (scale == 4)
    a, sa, ka = edsr_arch.load_state_dict(sd)
    b, sb, kb = edsr_arch.load_state_dict(official)
    assert sa == sb == scale and ka == kb and ka["res_scale"] == 1.0
    x = image(3, 6)
    with torch.no_grad():
        ya, yb = a(x), b(x)
    assert torch.equal(ya, yb)
    ref = edsr_official_reference(x, official, 16, scale, 1.0)
    assert torch.allclose(ya, ref, atol=1e-4)
    assert find_model(sd) == "edsr" and find_model(official) == "edsr"


def test_edsr_large_res_scale_inferred() -> None:
    sd = edsr_basicsr_sd(2, nf=256, nb=2)
    model, scale, kwargs = edsr_arch.load_state_dict(sd)
    assert kwargs["res_scale"] == 0.1 and kwargs["features"] == 256 and scale == 2
    _, _, kwargs = edsr_arch.load_state_dict(sd, res_scale=0.5)
    assert kwargs["res_scale"] == 0.5


# -- wrappers and safe reading ------------------------------------------------------------------

def test_unwrap_wrappers_and_prefixes() -> None:
    sd = srcnn_sd()
    for wrapped in ({"params_ema": sd, "params": srcnn_sd()}, {"params": sd}, {"state_dict": sd}, {"model": sd},
                    {"module." + k: v for k, v in sd.items()}, {"_orig_mod." + k: v for k, v in sd.items()},
                    {"state_dict": {"module._orig_mod." + k: v for k, v in sd.items()}, "epoch": 3}):
        out = unwrap_state_dict(wrapped)
        assert set(out) == set(sd) and all(out[k] is sd[k] for k in sd)
    with pytest.raises(WeightsError):
        unwrap_state_dict({"epoch": 3})


def test_read_checkpoint_pth_legacy_and_safetensors(tmp_path: Path) -> None:
    from safetensors.torch import save_file

    sd = fsrcnn_sd()
    torch.save({"params_ema": sd}, tmp_path / "a.pth")
    torch.save(sd, tmp_path / "b.pth", _use_new_zipfile_serialization=False)  # legacy format
    save_file(sd, str(tmp_path / "c.safetensors"))
    for name in ("a.pth", "b.pth", "c.safetensors"):
        got = read_checkpoint(tmp_path / name)
        assert set(got) == set(sd) and all(torch.equal(got[k], sd[k]) for k in sd)
    model, scale, _ = fsrcnn_arch.load_state_dict(read_checkpoint(tmp_path / "a.pth"), scale=2)
    assert scale == 2


class _Evil:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_pickle_that_runs_code_is_refused(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pth"
    torch.save({"conv1.weight": torch.zeros(1), "payload": _Evil(marker)}, path)
    with pytest.raises(UnsafeCheckpointError) as info:
        read_checkpoint(path)
    assert "system" in str(info.value) and info.value.hint
    assert not marker.exists()

    # the file really is dangerous: an unrestricted torch.load (in a child process) runs it
    proof = tmp_path / "evil2.pth"
    proof_marker = tmp_path / "pwned2"
    torch.save({"payload": _Evil(proof_marker)}, proof)
    code = f"import torch; torch.load({str(proof)!r}, weights_only=False)"
    subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, timeout=120)
    assert proof_marker.exists()
    assert not marker.exists()


class _TinyNet(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(1, 1, 3)


def test_pickled_module_is_refused_and_garbage_is_a_weights_error(tmp_path: Path) -> None:
    torch.save(_TinyNet(), tmp_path / "model_epoch_50.pth")  # like the public VDSR file
    with pytest.raises(UnsafeCheckpointError, match="_TinyNet|refusing"):
        read_checkpoint(tmp_path / "model_epoch_50.pth")
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint at all")
    with pytest.raises(WeightsError) as info:
        read_checkpoint(tmp_path / "junk.pth")
    assert not isinstance(info.value, UnsafeCheckpointError)
    (tmp_path / "junk.safetensors").write_bytes(b"\x00" * 20)
    with pytest.raises(WeightsError):
        read_checkpoint(tmp_path / "junk.safetensors")
    with pytest.raises(WeightsError, match="no such file"):
        read_checkpoint(tmp_path / "missing.pth")


def test_find_model_unknown_keys() -> None:
    assert find_model(["foo.weight", "bar.bias"]) is None
    assert find_model(["module.conv1.weight", "module.conv2.weight", "module.conv3.weight"]) == "srcnn"


def test_every_spec_loader_resolves() -> None:
    from sresr.spec import resolve

    for name in ("srcnn", "fsrcnn", "espcn", "vdsr", "srresnet", "srgan", "edsr", "esrgan", "realesrgan-compact"):
        assert callable(resolve(get_spec(name).loader))


def test_srvgg_needs_a_body_convolution() -> None:
    # conv + PReLU + last conv only (num_conv=0) is not a published SRVGGNetCompact: leave it to
    # other architectures (plugins) instead of claiming it
    sd = {k: v for k, v in srvgg_sd(1, 4).items() if not k.startswith(("body.2.", "body.3."))}
    sd = {"body.2." + k.split(".", 2)[2] if k.startswith("body.4.") else k: v for k, v in sd.items()}
    assert set(sd) == {"body.0.weight", "body.0.bias", "body.1.weight", "body.2.weight", "body.2.bias"}
    with pytest.raises(LayoutError):
        srvgg_arch.load_state_dict(sd)
    assert find_model(sd) is None


def test_load_model_passes_the_scale_to_scale_free_layouts(tmp_path: Path) -> None:
    """yjn870 FSRCNN x3 weights do not record the scale: --scale 3 must build a x3 network."""
    from sresr.resolve import load_model

    sd = fsrcnn_sd()
    pth = tmp_path / "fsrcnn_x3.pth"
    torch.save(sd, pth)
    loaded = load_model("fsrcnn", scale=3, weights=pth)
    assert loaded.scale == 3
    x = image(1, 7)
    with torch.no_grad():
        assert torch.allclose(loaded.module(x), fsrcnn_reference(x, sd, 4, 3), atol=1e-6)


# -- OpenMMLab (mmediting) checkpoints: every network of a GAN training state in one dict -----------


def _mm_msrresnet_state(scale: int, nf: int = 8, nb: int = 2, seed: int = 0) -> dict:
    g = torch.Generator().manual_seed(seed)

    def conv(cout, cin):
        return torch.randn(cout, cin, 3, 3, generator=g) * 0.1, torch.randn(cout, generator=g) * 0.01

    sd = {}
    names = [("conv_first", nf, 3)] + [(f"trunk_net.{i}.conv{j}", nf, nf) for i in range(nb) for j in (1, 2)]
    stages = [2, 2] if scale == 4 else [scale]
    names += [(f"upsample{k + 1}.upsample_conv", nf * f * f, nf) for k, f in enumerate(stages)]
    names += [("conv_hr", nf, nf), ("conv_last", 3, nf)]
    for name, cout, cin in names:
        sd[f"{name}.weight"], sd[f"{name}.bias"] = conv(cout, cin)
    return sd, stages


def _mm_msrresnet_forward(sd: dict, stages: list[int], x: torch.Tensor) -> torch.Tensor:
    """OpenMMLab's MSRResNet, written from its published forward: no activation after a pixel shuffle."""
    import torch.nn.functional as F

    def c(name, t):
        return F.conv2d(t, sd[f"{name}.weight"], sd[f"{name}.bias"], padding=1)

    feat = F.leaky_relu(c("conv_first", x), 0.1)
    out = feat
    i = 0
    while f"trunk_net.{i}.conv1.weight" in sd:
        out = out + c(f"trunk_net.{i}.conv2", F.relu(c(f"trunk_net.{i}.conv1", out)))
        i += 1
    for k, f in enumerate(stages):
        out = F.pixel_shuffle(c(f"upsample{k + 1}.upsample_conv", out), f)
    out = c("conv_last", F.leaky_relu(c("conv_hr", out), 0.1))
    scale = 1
    for f in stages:
        scale *= f
    return out + F.interpolate(x, scale_factor=scale, mode="bilinear", align_corners=False)


@pytest.mark.parametrize("scale", [4, 3])
def test_openmmlab_msrresnet_training_state_loads_its_generator(tmp_path, scale):
    from sresr.resolve import load_model

    gen, stages = _mm_msrresnet_state(scale)
    g = torch.Generator().manual_seed(5)
    training_state = {f"generator.{k}": v for k, v in gen.items()}
    training_state["discriminator.conv0_0.weight"] = torch.randn(8, 3, 3, 3, generator=g)
    training_state["perceptual_loss.vgg.vgg_layers.0.weight"] = torch.randn(4, 3, 3, 3, generator=g)
    training_state["step_counter"] = torch.zeros(1)
    pth = tmp_path / f"msrresnet_x{scale}_mm-0badf00d.pth"
    torch.save({"meta": {"epoch": 1}, "state_dict": training_state}, pth)
    x = torch.rand(1, 3, 9, 7, generator=g)
    for model in (None, "srgan"):
        loaded = load_model(model, weights=str(pth))
        assert loaded.kwargs["upsample_act"] is False and loaded.scale == scale
        with torch.no_grad():
            torch.testing.assert_close(loaded.module(x), _mm_msrresnet_forward(gen, stages, x), rtol=1e-5, atol=1e-5)


def test_generator_ema_is_preferred_in_a_training_state():
    from sresr.models._layouts import unwrap_state_dict

    t = torch.zeros(1)
    state = {"state_dict": {"generator.a": t, "generator_ema.a": t + 1, "discriminator.b": t}}
    assert {k: float(v) for k, v in unwrap_state_dict(state).items()} == {"a": 1.0}
    assert set(unwrap_state_dict({"conv.weight": t, "generator_x": t})) == {"conv.weight", "generator_x"}


def test_a_family_rejects_another_familys_file_at_once_while_detecting() -> None:
    """While the architecture of a file is detected (every loader tried), a family none of whose
    layouts can read the file's hyperparameters says so in one line, without building its network;
    named explicitly (--model) it compares the keys and names the closest layout."""
    from sresr.models._layouts import detecting
    from sresr.models.rcan import arch as rcan_arch

    from sresr import create_model

    sd = create_model("edsr", scale=2, pretrained=False, features=8, blocks=1).state_dict()
    sd = {f"x.{k}": v for k, v in sd.items()}  # keys no layout of RCAN reads
    with detecting(), pytest.raises(LayoutError, match="not a rcan checkpoint: none of its layouts"):
        rcan_arch.load_state_dict(sd)
    with pytest.raises(LayoutError, match="closest is the") as info:
        rcan_arch.load_state_dict(sd)
    assert info.value.missing  # type: ignore[attr-defined]
