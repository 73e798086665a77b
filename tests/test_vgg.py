"""VGG19 for the perceptual losses without torchvision: torchvision's file layout, fetched through
sresr's downloader from a real HTTP server on 127.0.0.1, verified by the hash prefix its name
carries, cut to the ``features`` tensors and cached."""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _http import FileServer  # noqa: E402

from sresr import cache  # noqa: E402
from sresr.errors import WeightsError  # noqa: E402
from sresr.download import hash_prefix  # noqa: E402
from sresr.models.vgg import LAYERS, VGG19_URL, VGG19Features, vgg19_state  # noqa: E402
from sresr.train.losses import VGGPerceptualLoss  # noqa: E402


def _torchvision_file(seed: int = 0) -> tuple[bytes, dict]:
    """A vgg19 state dict as torchvision saves it: ``features.*`` and a (here small) classifier."""
    torch.manual_seed(seed)
    state = {k: v.clone() for k, v in VGG19Features().state_dict().items()}
    state["classifier.0.weight"], state["classifier.0.bias"] = torch.randn(8, 6), torch.randn(8)
    path = Path(__import__("tempfile").mkdtemp()) / "v.pth"
    torch.save(state, path)
    return path.read_bytes(), state


def test_layout_is_torchvisions():
    """Published facts of torchvision's vgg19().features: 37 modules, conv5_4 at index 34,
    20,024,384 parameters, and the file name's hash prefix."""
    net = VGG19Features()
    assert len(net.features) == 37 and LAYERS["conv5_4"] == 34 and LAYERS["conv1_1"] == 0
    assert sum(p.numel() for p in net.parameters()) == 20_024_384
    assert hash_prefix(VGG19_URL) == "dcbb9e9d"


def test_served_file_is_verified_cut_to_features_and_cached(monkeypatch):
    monkeypatch.setenv("SRESR_OFFLINE", "0")
    body, state = _torchvision_file()
    prefix = hashlib.sha256(body).hexdigest()[:8]
    with FileServer({f"models/vgg19-{prefix}.pth": body}) as srv:
        url = srv.url(f"models/vgg19-{prefix}.pth")
        loss = VGGPerceptualLoss("conv2_1", before_activation=True, weights=url)
        assert srv.hits[f"/models/vgg19-{prefix}.pth"] == 1
        folder = cache.weights_dir() / "vgg"
        assert sorted(p.name for p in folder.iterdir() if not p.name.endswith(".lock")) == [
            f"vgg19-{prefix}-features.safetensors"]  # the raw download is not kept
        again = vgg19_state(url)
        assert srv.hits[f"/models/vgg19-{prefix}.pth"] == 1  # from the cache
        assert set(again) == {k for k in state if k.startswith("features.")}
        assert all(torch.equal(again[k], state[k]) for k in again)
    # the loss is the MSE of the features of an independent computation with those weights
    g = torch.Generator().manual_seed(1)
    sr, hr = torch.rand(2, 3, 16, 16, generator=g), torch.rand(2, 3, 16, 16, generator=g)

    def feats(x):
        mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
        std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
        x = (x - mean) / std
        x = F.relu(F.conv2d(x, state["features.0.weight"], state["features.0.bias"], padding=1))
        x = F.relu(F.conv2d(x, state["features.2.weight"], state["features.2.bias"], padding=1))
        x = F.max_pool2d(x, 2)
        return F.conv2d(x, state["features.5.weight"], state["features.5.bias"], padding=1)  # conv2_1

    expected = F.mse_loss(feats(sr), feats(hr))
    torch.testing.assert_close(loss(sr, hr), expected, rtol=1e-5, atol=1e-7)


def test_a_file_that_does_not_match_its_hash_prefix_is_not_kept(monkeypatch):
    monkeypatch.setenv("SRESR_OFFLINE", "0")
    body, _ = _torchvision_file()
    with FileServer({"vgg19-dcbb9e9d.pth": body}) as srv:
        with pytest.raises(WeightsError, match="failed verification.*dcbb9e9d"):
            vgg19_state(srv.url("vgg19-dcbb9e9d.pth"))
    folder = cache.weights_dir() / "vgg"
    assert not folder.exists() or [p.name for p in folder.iterdir() if not p.name.endswith(".lock")] == []


def test_offline_names_the_file_and_what_to_do():
    with pytest.raises(WeightsError) as info:
        vgg19_state("")
    assert VGG19_URL in info.value.message and "loss.vgg_weights" in info.value.hint


def test_local_file_and_a_file_of_something_else(tmp_path):
    body, state = _torchvision_file(seed=3)
    (tmp_path / "vgg19.pth").write_bytes(body)
    got = vgg19_state(tmp_path / "vgg19.pth")
    assert torch.equal(got["features.34.weight"], state["features.34.weight"])
    torch.save({"conv.weight": torch.zeros(3, 3, 3, 3)}, tmp_path / "other.pth")
    with pytest.raises(WeightsError, match="not a torchvision VGG19 state dict"):
        vgg19_state(tmp_path / "other.pth")


def test_sresr_does_not_need_torchvision():
    """Nothing in sresr imports torchvision (it does not import beside this torch)."""
    src = Path(__file__).resolve().parents[1] / "src" / "sresr"
    offenders = [str(p.relative_to(src)) for p in src.rglob("*.py") if "torchvision" in p.read_text()
                 and "import torchvision" in p.read_text()]
    assert offenders == []
    pyproject = (src.parents[1] / "pyproject.toml").read_text()
    assert "torchvision" not in pyproject
