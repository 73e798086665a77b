"""Each load-time optimisation against the original network on random input."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from sresr.optimize import (
    ShuffledConv,
    SubPixelConv,
    convtranspose_to_pixelshuffle,
    fold_batchnorm,
    optimize_for_inference,
    shuffle_then_conv_to_conv_then_shuffle,
)


def _randomise_bn(module: nn.Module) -> None:
    g = torch.Generator().manual_seed(1)
    for m in module.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.copy_(torch.rand(m.num_features, generator=g) * 2 - 1)
            m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.weight.data.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.bias.data.copy_(torch.rand(m.num_features, generator=g) - 0.5)


@pytest.mark.parametrize("scale", [2, 3, 4])
@pytest.mark.parametrize("kernel", [9, 5, 3])
def test_convtranspose_equals_subpixel(scale, kernel):
    torch.manual_seed(scale * 10 + kernel)
    pad = kernel // 2
    tconv = nn.ConvTranspose2d(6, 3, kernel, stride=scale, padding=pad, output_padding=scale - 1)
    net = nn.Sequential(nn.Conv2d(3, 6, 3, padding=1), nn.PReLU(6), tconv).eval()
    new, n = convtranspose_to_pixelshuffle(net)
    assert n == 1 and isinstance(new[2], SubPixelConv) and isinstance(net[2], nn.ConvTranspose2d)
    x = torch.rand(2, 3, 13, 10)
    with torch.no_grad():
        a, b = net(x), new(x)
    assert a.shape == b.shape == (2, 3, 13 * scale, 10 * scale)
    assert (a - b).abs().max() < 1e-5


def test_convtranspose_with_other_geometry_is_left_alone():
    net = nn.Sequential(nn.ConvTranspose2d(3, 3, 4, stride=2, padding=0))  # output 2H+2
    new, n = convtranspose_to_pixelshuffle(net)
    assert n == 0 and isinstance(new[0], nn.ConvTranspose2d)


class _Branchy(nn.Module):
    """BN outside a Sequential (found through torch.fx) and inside one."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(8)
        self.block = nn.Sequential(nn.Conv2d(8, 8, 3, padding=1), nn.BatchNorm2d(8), nn.PReLU())
        self.shared = nn.Conv2d(8, 8, 1)
        self.bn_shared = nn.BatchNorm2d(8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.block(torch.relu(self.bn(self.conv(x))))
        z = self.shared(y)
        return self.bn_shared(z) + z  # conv output used twice: must not be folded


def test_fold_batchnorm_matches_and_counts():
    net = _Branchy().eval()
    _randomise_bn(net)
    folded, n = fold_batchnorm(net)
    assert n == 2
    x = torch.randn(2, 3, 16, 12)
    with torch.no_grad():
        assert (net(x) - folded(x)).abs().max() < 1e-5
    remaining = [m for m in folded.modules() if isinstance(m, nn.BatchNorm2d)]
    assert len(remaining) == 1  # the one after the shared conv


@pytest.mark.parametrize("scale,kernel,act", [(2, 9, nn.PReLU(5)), (2, 9, nn.PReLU()), (2, 5, nn.LeakyReLU(0.2)),
                                              (4, 9, nn.ReLU()), (2, 5, None)])
def test_conv_after_pixel_shuffle_moves_in_front_of_it(scale, kernel, act):
    """PixelShuffle -> act -> Conv2d(5 -> 3, kxk) equals act -> Conv2d on the low-resolution side ->
    PixelShuffle, compared with the original network on random weights and input."""
    torch.manual_seed(kernel + scale)
    layers = [nn.Conv2d(3, 5 * scale * scale, 3, padding=1), nn.PixelShuffle(scale)]
    layers += [act] if act is not None else []
    layers += [nn.Conv2d(5, 3, kernel, padding=kernel // 2)]
    net = nn.Sequential(*layers).eval()
    for m in net.modules():
        if isinstance(m, nn.PReLU):
            m.weight.data.uniform_(-0.5, 0.5)  # per-channel slopes must follow their channels
    new, n = shuffle_then_conv_to_conv_then_shuffle(net)
    assert n == 1 and any(isinstance(m, ShuffledConv) for m in new.modules())
    x = torch.randn(2, 3, 11, 14)
    with torch.no_grad():
        a, b = net(x), new(x)
    assert a.shape == b.shape == (2, 3, 11 * scale, 14 * scale)
    assert (a - b).abs().max() < 1e-5 * max(1.0, float(a.abs().max()))


def test_conv_after_pixel_shuffle_stays_when_moving_costs_more():
    # a 3x3 conv at the output resolution would need 4x the multiply-adds (EDSR's last conv)
    net = nn.Sequential(nn.Conv2d(3, 12, 3, padding=1), nn.PixelShuffle(2), nn.Conv2d(3, 3, 3, padding=1))
    assert shuffle_then_conv_to_conv_then_shuffle(net)[1] == 0
    # 7x7 at x2 becomes 5x5 on 4x the channels: 100 vs 49 taps
    net = nn.Sequential(nn.Conv2d(3, 12, 3, padding=1), nn.PixelShuffle(2), nn.Conv2d(3, 3, 7, padding=3))
    assert shuffle_then_conv_to_conv_then_shuffle(net)[1] == 0
    # many output channels: the convolution already uses its vector lanes
    net = nn.Sequential(nn.Conv2d(3, 64 * 4, 3, padding=1), nn.PixelShuffle(2), nn.Conv2d(64, 64, 9, padding=4))
    assert shuffle_then_conv_to_conv_then_shuffle(net)[1] == 0


def test_srresnet_last_conv_moves_and_output_is_unchanged():
    from sresr import load_model

    loaded = load_model("srresnet", scale=4, pretrained=False, variant="paper", blocks=2, features=16)
    x = torch.rand(1, 3, 20, 24)
    opt, report, _ = optimize_for_inference(loaded.module, x)
    assert "shuffle_then_conv_to_conv_then_shuffle (1)" in report.applied
    y = torch.rand(1, 3, 17, 9)
    with torch.inference_mode():
        assert (opt(y.contiguous(memory_format=torch.channels_last)) - loaded.module(y)).abs().max() < 1e-5


def test_optimize_for_inference_reports_and_keeps_output():
    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
        nn.ConvTranspose2d(8, 3, 9, stride=2, padding=4, output_padding=1),
    ).eval()
    _randomise_bn(net)
    x = torch.rand(1, 3, 16, 16)
    opt, report, channels_last = optimize_for_inference(net, x)
    assert any(a.startswith("fold_batchnorm") for a in report.applied)
    assert any(a.startswith("convtranspose_to_pixelshuffle") for a in report.applied)
    assert channels_last and "channels_last" in report.applied
    y = torch.rand(1, 3, 23, 31)
    with torch.inference_mode():
        ref = net(y)
        got = opt(y.contiguous(memory_format=torch.channels_last))
    assert (ref - got).abs().max() < 1e-5
    assert isinstance(net[1], nn.BatchNorm2d)  # the original is untouched


def test_optimize_rejects_a_change_that_alters_output():
    class Sneaky(nn.Module):  # BN in training mode: batch statistics, folding would change it
        def __init__(self) -> None:
            super().__init__()
            self.seq = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            self.seq[1].train()
            return self.seq(x)

    net = Sneaky()
    _randomise_bn(net)
    opt, report, _ = optimize_for_inference(net, torch.rand(2, 3, 8, 8))
    assert "fold_batchnorm" in report.rejected


# -- activations in place ------------------------------------------------------------------------


class _Reuse(nn.Module):
    """relu(conv(x)) + conv(x): the activation's input is read again, so it must not be overwritten;
    the shared ``act`` is also called on the network's own input, which is the caller's tensor."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.conv2 = nn.Conv2d(8, 8, 3, padding=1)
        self.one = nn.PReLU()
        self.many = nn.PReLU(8)
        self.act = nn.ReLU()
        self.solo = nn.LeakyReLU(0.1)

    def forward(self, x):
        y = self.conv(self.act(x))
        z = self.act(y) + y
        w = self.solo(self.conv2(z))
        return self.many(self.one(self.conv2(w)))


def test_activations_in_place_only_where_nothing_else_reads_the_input():
    from sresr.optimize import activations_in_place

    torch.manual_seed(0)
    net = _Reuse().eval()
    with torch.no_grad():
        net.one.weight.fill_(0.3)
    new, changed = activations_in_place(net)
    assert type(new.one) is nn.LeakyReLU and new.one.negative_slope == pytest.approx(0.3)
    assert type(new.many) is nn.PReLU  # per-channel slopes stay a PReLU
    # solo and one read a convolution's output that nothing else reads; act reads x and y
    assert new.solo.inplace and new.one.inplace and not new.act.inplace
    assert changed == 3  # the PReLU swap, then solo and one in place
    assert not net.solo.inplace and type(net.one) is nn.PReLU  # the original is not modified
    x = torch.randn(2, 3, 12, 12)
    x0 = x.clone()
    with torch.no_grad():
        assert torch.allclose(new(x), net(x), atol=0, rtol=0)
    assert torch.equal(x, x0)
