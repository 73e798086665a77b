"""Built-in architectures: build, shapes, parameter counts, safetensors round trip, receptive field."""

from __future__ import annotations

import importlib

import pytest
import torch

from sresr.registry import get_spec, list_models
from sresr.spec import validate_spec

MINE = ("srcnn", "fsrcnn", "espcn", "vdsr", "srresnet", "srgan", "edsr", "esrgan", "realesrgan-compact")
PKG = {"realesrgan-compact": "srvgg"}

# Parameter counts from the papers / reference implementations (checkpoint-formats.md).
REQUIRED = {
    ("srcnn", s): 57281 for s in (2, 3, 4)
} | {
    ("fsrcnn", s): 12809 for s in (2, 3, 4)
} | {
    ("vdsr", s): 664704 for s in (2, 3, 4)
} | {
    ("edsr", 2): 1369859, ("edsr", 3): 1554499, ("edsr", 4): 1517571,
    ("esrgan", 4): 16697987, ("esrgan", 2): 16703171,
    ("realesrgan-compact", 4): 621424,
}


def _cases() -> list[tuple[str, int]]:
    names = list_models()  # every registered model, bicubic included
    return [(n, s) for n in names for s in get_spec(n).scales]


_BUILT: dict[tuple[str, int], torch.nn.Module] = {}


def _built(name: str, scale: int) -> torch.nn.Module:
    """Each (model, scale) is built once per session: the RRDBNet ones have 16.7M parameters."""
    if (name, scale) not in _BUILT:
        torch.manual_seed(0)
        _BUILT[(name, scale)] = get_spec(name).build(scale).eval()
    return _BUILT[(name, scale)]


def _nparams(m: torch.nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


def _arch(name: str):
    return importlib.import_module(f"sresr.models.{PKG.get(name, name)}.arch")


def _input(name: str, size: int = 12) -> torch.Tensor:
    spec = get_spec(name)
    channels = 1 if spec.colorspace == "y" else 3
    torch.manual_seed(1)
    return torch.rand(1, channels, size, size)


def test_all_builtin_models_registered_and_valid() -> None:
    names = list_models()
    for name in MINE:
        assert name in names
        assert validate_spec(get_spec(name), name) == []


@pytest.mark.parametrize(("name", "scale"), _cases())
def test_build_shape_params_and_safetensors_roundtrip(name: str, scale: int, tmp_path) -> None:
    from safetensors.torch import load_file, save_file

    spec = get_spec(name)
    model = _built(name, scale)
    x = _input(name)
    with torch.no_grad():
        y = model(x)
    size = 12 if spec.input == "upsampled" else 12 * scale
    assert y.shape == (1, x.shape[1], size, size)
    assert torch.isfinite(y).all()
    n = _nparams(model)
    assert n == spec.num_params[scale]
    if (name, scale) in REQUIRED:
        assert n == REQUIRED[(name, scale)]
    if n == 0:
        return
    path = tmp_path / "w.safetensors"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))
    with torch.no_grad():  # wipe the weights (cheaper than a second 16M-parameter build) ...
        for p in model.parameters():
            p.zero_()
        assert not torch.equal(model(x), y)
    model.load_state_dict(load_file(str(path)), strict=True)  # ... and restore them from the file
    with torch.no_grad():
        assert torch.equal(model(x), y)


def test_y_models_rgb_variant() -> None:
    for name in ("srcnn", "fsrcnn", "espcn", "vdsr"):
        m = get_spec(name).build(3, channels=3).eval()
        x = torch.rand(1, 3, 9, 9)
        out = m(x)
        assert out.shape[1] == 3
    # SRCNN 9-5-5 on RGB: 3*64*81+64 + 64*32*25+32 + 32*3*25+3
    assert _nparams(get_spec("srcnn").build(2, channels=3)) == 15616 + 51232 + 2403


def test_variant_parameter_counts() -> None:
    srcnn915 = get_spec("srcnn").build(2, f2=1)
    assert _nparams(srcnn915) == 64 * 81 + 64 + 32 * 64 + 32 + 32 * 25 + 1  # 9-1-5
    # FSRCNN(d, s, m): independent formula from the paper's layer list (1 channel)
    for d, s, m in ((56, 12, 4), (32, 5, 1)):
        expected = (25 * d + d + d) + (d * s + s + s) + m * (9 * s * s + s + s) + (s * d + d + d) + (81 * d + 1)
        assert _nparams(get_spec("fsrcnn").build(2, d=d, s=s, m=m)) == expected
    assert _nparams(get_spec("fsrcnn").build(2)) == 12809
    srr = _arch("srresnet")
    assert _nparams(srr.srresnet(4, variant="msrresnet")) == 1517571
    assert _nparams(_arch("esrgan").rrdbnet(4, blocks=6)) == 4467779
    assert _nparams(_arch("realesrgan-compact").srvgg(4, num_conv=32)) == 1213296
    assert _nparams(_arch("realesrgan-compact").srvgg(4, num_conv=16)) == 621424


def _srresnet_formula(scale: int, blocks: int, norm: str, upsampler: str, f: int = 64, c: int = 3) -> int:
    """SRResNet parameter count from the paper's layer list (PReLU: one slope per layer)."""
    norm_p = 0 if norm == "none" else 2 * f  # BN/IN affine weight + bias
    head = c * f * 81 + f + 1
    block = 2 * (f * f * 9 + f) + 2 * norm_p + 1
    after = f * f * 9 + f + norm_p
    stages = {2: [2], 3: [3], 4: [2, 2]}[scale]
    if upsampler == "pixelshuffle":
        up = sum(f * f * r * r * 9 + f * r * r + 1 for r in stages)
    else:
        up = len(stages) * (f * f * 9 + f + 1)
    return head + blocks * block + after + up + (f * c * 81 + c)


@pytest.mark.parametrize("blocks", [8, 12, 16, 24])
@pytest.mark.parametrize("norm", ["bn", "in", "none"])
def test_srresnet_paper_parameter_formula(blocks: int, norm: str) -> None:
    srr = _arch("srresnet")
    for upsampler in ("pixelshuffle", "bicubic"):
        m = srr.srresnet(4, blocks=blocks, norm=norm, upsampler=upsampler)
        assert _nparams(m) == _srresnet_formula(4, blocks, norm, upsampler)
    assert _srresnet_formula(4, 16, "bn", "pixelshuffle") == 1549462


def test_srresnet_switches_change_the_network() -> None:
    srr = _arch("srresnet")
    x = torch.rand(1, 3, 8, 8)
    torch.manual_seed(0)
    a = srr.srresnet(2, blocks=2, norm="none").eval()
    b = srr.srresnet(2, blocks=2, norm="none", global_skip=False).eval()
    b.load_state_dict(a.state_dict())
    with torch.no_grad():
        assert not torch.allclose(a(x), b(x))
        assert srr.srresnet(2, blocks=2, upsampler="bicubic").eval()(x).shape == (1, 3, 16, 16)
    with pytest.raises(ValueError):
        srr.srresnet(4, norm="group")
    with pytest.raises(ValueError):
        srr.srresnet(4, variant="msrresnet", norm="none")


def test_espcn_activations_differ() -> None:
    esp = _arch("espcn")
    torch.manual_seed(0)
    a = esp.espcn(3, activation="tanh").eval()
    b = esp.espcn(3, activation="relu").eval()
    b.load_state_dict(a.state_dict())
    x = torch.rand(1, 1, 6, 6)
    with torch.no_grad():
        assert not torch.allclose(a(x), b(x))


def test_fsrcnn_uses_the_papers_transposed_conv() -> None:
    m = get_spec("fsrcnn").build(3)
    tail = m.last_part
    assert isinstance(tail, torch.nn.ConvTranspose2d)
    assert (tail.kernel_size, tail.stride, tail.padding, tail.output_padding) == ((9, 9), (3, 3), (4, 4), (2, 2))


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_fsrcnn_centered_padding_centres_the_upsampler_on_matlab_bicubic(scale: int) -> None:
    """The HR pixel an LR pixel comes from, found by MATLAB-style imresize (checked against MATLAB's
    own files in test_resize.py), is where a symmetric transposed-conv kernel puts that LR pixel's
    mass with the centred padding: exactly at odd scales, within half a pixel at even ones. The
    usual padding 4 is off by (scale - 1) / 2 HR pixels."""
    from sresr.imaging.resize import imresize
    from sresr.models.fsrcnn import centered_padding
    from sresr.models.fsrcnn.arch import fsrcnn

    n = 8
    # where LR pixel 3 comes from: the centroid of its weights over HR pixels (impulse responses)
    weights = torch.zeros(n * scale, dtype=torch.float64)
    for j in range(n * scale):
        hr = torch.zeros(1, 1, n * scale, dtype=torch.float64)
        hr[..., j] = 1.0
        weights[j] = imresize(hr.expand(1, n * scale, n * scale).clone(), scale=1 / scale)[0, 0, 3]
    source = float((weights * torch.arange(n * scale, dtype=torch.float64)).sum() / weights.sum())
    for pad, off in ((centered_padding(scale), 0.5 * (scale % 2 == 0)), (4, (scale - 1) / 2)):
        m = fsrcnn(scale, deconv_padding=pad).double()
        tail = m.last_part
        k = torch.arange(9, dtype=torch.float64)
        with torch.no_grad():  # a symmetric (Gaussian) kernel, one input channel on
            tail.weight.zero_()
            tail.weight[0, 0] = torch.exp(-((k[:, None] - 4) ** 2 + (k[None, :] - 4) ** 2) / 8)
            tail.bias.zero_()
            lr = torch.zeros(1, m.first_part[0].out_channels, n, n, dtype=torch.float64)
            lr[0, 0, 3, 3] = 1.0
            out = tail(lr)[0, 0].sum(0)
        assert out.shape[-1] == n * scale
        centre = float((out * torch.arange(n * scale)).sum() / out.sum())
        assert abs(centre - source) == pytest.approx(off, abs=1e-6), (pad, centre, source)


def test_fsrcnn_repad_state_dict_keeps_every_output_pixel_in_place() -> None:
    from sresr.models.fsrcnn.arch import fsrcnn, repad_state_dict

    torch.manual_seed(0)
    old = fsrcnn(4).double().eval()
    with torch.no_grad():  # taps that move off the edge are lost: make them zero for an exact match
        old.last_part.weight[..., 0, :] = 0
        old.last_part.weight[..., :, 0] = 0
    new = fsrcnn(4, deconv_padding=3).double().eval()
    new.load_state_dict(repad_state_dict(old.state_dict(), 4, 3))
    x = torch.rand(1, 1, 10, 10, dtype=torch.float64)
    with torch.no_grad():
        torch.testing.assert_close(new(x), old(x))
        back = fsrcnn(4).double().eval()
        back.load_state_dict(repad_state_dict(new.state_dict(), 3, 4))
        torch.testing.assert_close(back(x), old(x))
    with pytest.raises(ValueError):
        repad_state_dict(old.state_dict(), 4, -5)
    for bad in ((2, 3), (3, 2), (4, 5)):  # output_padding would be negative / padding past the kernel
        with pytest.raises(ValueError, match="deconv_padding"):
            fsrcnn(bad[0], deconv_padding=bad[1])


def test_edsr_paper_size_once() -> None:
    m = get_spec("edsr").build(4, features=256, blocks=32, res_scale=0.1)
    assert _nparams(m) == 43089923
    assert "mean" not in m.state_dict()  # the DIV2K mean is a constant buffer, not a weight
    with torch.no_grad():
        assert m.eval()(torch.rand(1, 3, 4, 4)).shape == (1, 3, 16, 16)


def test_discriminators() -> None:
    from sresr.models import discriminators as D
    from sresr.models.srgan import arch as srgan_arch

    vgg = D.VGGStyleDiscriminator()
    assert _nparams(vgg) == 14499401
    paper = srgan_arch.discriminator()  # SRGAN's own, for 96x96 patches (Ledig et al. 2017, Fig. 4)
    assert isinstance(paper, D.SRGANDiscriminator)
    convs = [(3, 64, False)] + [(a, b, True) for a, b in ((64, 64), (64, 128), (128, 128), (128, 256), (256, 256),
                                                          (256, 512), (512, 512))]
    expected = sum(9 * a * b + (2 * b if bn else b) for a, b, bn in convs) + (512 * 6 * 6 + 1) * 1024 + 1025
    assert _nparams(paper) == expected
    with torch.no_grad():
        assert paper.eval()(torch.rand(2, 3, 96, 96)).shape == (2, 1)
        assert D.VGGStyleDiscriminator(input_size=96).eval()(torch.rand(1, 3, 96, 96)).shape == (1, 1)
    with pytest.raises(ValueError, match="multiple of 16"):
        D.SRGANDiscriminator(input_size=100)
    unet = D.UNetDiscriminatorSN(3, 64)
    assert _nparams(unet) == 4376897
    keys = set(unet.state_dict())
    assert {"conv1.weight_orig", "conv1.weight_u", "conv1.weight_v", "conv0.weight", "conv9.bias"} <= keys
    vgg.eval()
    unet.eval()
    with torch.no_grad():
        assert vgg(torch.rand(2, 3, 128, 128)).shape == (2, 1)
        assert D.UNetDiscriminatorSN(3, 8)(torch.rand(1, 3, 32, 32)).shape == (1, 1, 32, 32)
    with pytest.raises(ValueError):
        vgg(torch.rand(1, 3, 64, 64))


def test_esrgan_size_multiple() -> None:
    arch = _arch("esrgan")
    assert [arch.size_multiple(s) for s in (4, 2, 1)] == [1, 2, 4]
    assert get_spec("esrgan").size_multiple == 4


# -- receptive field ------------------------------------------------------------------------

# SPEC.receptive_field = max over scales for the largest published configuration.
SPEC_RF = {
    "srcnn": ("srcnn", {}),
    "fsrcnn": ("fsrcnn", {}),
    "espcn": ("espcn", {}),
    "vdsr": ("vdsr", {}),
    "srresnet": ("srresnet", {}),
    "srgan": ("srgan", {}),
    "edsr": ("edsr", {"blocks": 32}),
    "esrgan": ("esrgan", {}),
    "realesrgan-compact": ("realesrgan-compact", {"num_conv": 32}),
}


@pytest.mark.parametrize("name", MINE)
def test_spec_receptive_field_matches_formula(name: str) -> None:
    spec = get_spec(name)
    _, kwargs = SPEC_RF[name]
    rf = max(_arch(name).receptive_field(s, **kwargs) for s in spec.scales)
    assert spec.receptive_field == rf
    # the default configuration never needs more than the declared radius
    assert max(_arch(name).receptive_field(s) for s in spec.scales) <= spec.receptive_field


def test_receptive_field_known_values() -> None:
    # hand-derived: sums of (k-1)/2 in input pixels
    assert _arch("srcnn").receptive_field(2) == 4 + 2 + 2
    assert _arch("vdsr").receptive_field(3) == 20
    assert _arch("espcn").receptive_field(3) == 2 + 1 + 1
    assert _arch("realesrgan-compact").receptive_field(4, num_conv=16) == 18
    # RRDBNet x4: 1 + 23*15 + 1 in LR, then nearest x2 -> conv (+1), nearest x2 -> 3 convs (+1)
    assert _arch("esrgan").receptive_field(4) == 349


RF_CASES = [
    ("srcnn", 2, {}, 24),
    ("srcnn", 3, {"f2": 1}, 24),
    ("fsrcnn", 2, {}, 22),
    ("fsrcnn", 3, {}, 22),
    ("fsrcnn", 4, {"d": 16, "s": 8, "m": 2}, 22),
    ("fsrcnn", 4, {"d": 16, "s": 8, "m": 2, "deconv_padding": 3}, 22),
    ("fsrcnn", 3, {"d": 16, "s": 8, "m": 2, "deconv_padding": 3}, 22),
    ("espcn", 3, {}, 14),
    ("vdsr", 2, {"features": 16}, 48),
    ("srresnet", 4, {"blocks": 2, "features": 16}, 28),
    ("srresnet", 3, {"blocks": 1, "features": 16, "upsampler": "bicubic"}, 28),
    ("srresnet", 3, {"variant": "msrresnet", "blocks": 2, "features": 16}, 24),
    ("srresnet", 4, {"variant": "msrresnet", "blocks": 1, "features": 16}, 24),
    ("edsr", 4, {"blocks": 2, "features": 16}, 22),
    ("edsr", 3, {"blocks": 2, "features": 16}, 22),
    ("esrgan", 4, {"blocks": 1, "features": 8, "growth": 4}, 44),
    ("esrgan", 2, {"blocks": 1, "features": 8, "growth": 4}, 80),
    ("esrgan", 1, {"blocks": 1, "features": 8, "growth": 4}, 160),
    ("realesrgan-compact", 4, {"num_conv": 4, "features": 16}, 20),
    ("realesrgan-compact", 3, {"num_conv": 2, "features": 16}, 16),
]


@pytest.mark.parametrize(("name", "scale", "kwargs", "size"), RF_CASES)
def test_one_pixel_changes_only_its_receptive_field(name: str, scale: int, kwargs: dict, size: int) -> None:
    """Perturb one input pixel: every output pixel that changes lies within the declared radius."""
    spec = get_spec(name)
    r = _arch(name).receptive_field(scale, **kwargs)
    torch.manual_seed(0)
    model = spec.build(scale, **kwargs).eval()
    channels = 1 if spec.colorspace == "y" else 3
    if "channels" in kwargs:
        channels = kwargs["channels"]
    x = torch.rand(1, channels, size, size, dtype=torch.float64)
    model = model.double()
    p = size // 2
    x2 = x.clone()
    x2[..., p, p] += 1.0
    with torch.no_grad():
        diff = (model(x2) - model(x)).abs().amax(dim=(0, 1))
    out_scale = 1 if spec.input == "upsampled" else scale
    changed = (diff > 0).nonzero()  # float64: pixels outside the field stay bit-identical
    assert len(changed) > 0
    owners = changed // out_scale
    dist = (owners - p).abs().amax().item()
    assert dist <= r, f"{name} x{scale} {kwargs}: output changed {dist} input pixels away, declared {r}"
    # and the bound is tight: the change reaches it (within one pixel for bicubic stages, whose
    # outermost tap has zero weight at some phases)
    if p - r >= 0 and p + r < size:
        assert dist >= r - 1, f"{name} x{scale}: change reaches {dist}, declared {r}"


def test_each_variant_is_compared_with_its_own_published_numbers():
    """bench/eval compare published weights with their authors' numbers for those weights (none
    for GAN weights), and weights sresr trained (bundled, or your own) with the architecture's paper."""
    from sresr.registry import get_spec
    from sresr.resolve import LoadedModel

    esrgan, edsr, fsrcnn = get_spec("esrgan"), get_spec("edsr"), get_spec("fsrcnn")
    assert esrgan.reference_metrics("realesrgan-x4plus") == {}  # GAN weights: not the PSNR-oriented RRDB
    assert esrgan.reference_metrics(None)["set5/x4/psnr"] == 32.73  # RRDB, ESRGAN paper
    assert edsr.reference_metrics("large-x4")["set5/x4/psnr"] == 32.46  # EDSR paper Table 3
    assert edsr.reference_metrics("baseline-x4")["set5/x4/psnr"] == 32.09
    assert fsrcnn.reference_metrics("x2") == fsrcnn.paper_metrics  # trained by sresr: the paper is the bar
    large = LoadedModel(None, edsr, 4, "rgb", "edsr.large-x4")
    own = LoadedModel(None, edsr, 4, "rgb", "runs/edsr-x4/weights.safetensors")
    assert large.reference_metrics["set5/x4/ssim"] == 0.8968 and own.reference_metrics == edsr.paper_metrics
