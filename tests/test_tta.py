"""x8 self-ensemble (--tta): the average of the network over flips and transposes, checked against
the same average computed independently (numpy dihedral transforms of whole-image runs), tiled
and untiled, and through the CLI (a rerun with or without --tta is not the same output)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from conftest import ROOT, run_sresr  # type: ignore[import-not-found]
from sresr.engine import Upscaler
from sresr.resolve import load_model


def _ensemble_by_hand(loaded, x: torch.Tensor) -> np.ndarray:
    """The network itself (no engine) on the eight dihedral versions of the whole input, made
    and turned back by numpy, averaged, then clamped as every output is."""
    a = x[0].numpy()  # C x H x W
    outs = []
    for k in range(4):
        for flip in (False, True):
            t = np.rot90(a, k, axes=(1, 2))
            t = t[:, :, ::-1] if flip else t
            with torch.no_grad():
                y = loaded.module(torch.from_numpy(np.ascontiguousarray(t))[None])[0].numpy()
            y = y[:, :, ::-1] if flip else y
            outs.append(np.rot90(y, -k, axes=(1, 2)))
    return np.clip(np.mean(outs, axis=0), 0, 1)


@pytest.mark.parametrize("name,scale", [("fsrcnn", 3), ("espcn", 2)])
def test_tta_is_the_dihedral_average_tiled_or_whole(name, scale):
    loaded = load_model(name, scale=scale)
    x = torch.rand(1, 1, 37, 52, generator=torch.Generator().manual_seed(1))
    expected = _ensemble_by_hand(loaded, x)
    whole = Upscaler(loaded, tile=0, tta=True).run(x)[0].numpy()
    tiled_up = Upscaler(loaded, tile=16, tta=True, batch=2)
    assert len(tiled_up.plan_for(37, 52).tiles) >= 4
    tiled = tiled_up.run(x)[0].numpy()
    assert np.abs(whole - expected).max() < 1e-5
    assert np.abs(tiled - whole).max() < 1e-5
    # and it is not the plain output
    assert np.abs(whole - Upscaler(loaded, tile=0).run(x)[0].numpy()).max() > 1e-3


def test_tta_on_the_device_path_equals_the_host_path():
    loaded = load_model("fsrcnn", scale=2)
    x = torch.rand(1, 3, 30, 41, generator=torch.Generator().manual_seed(2))
    host = Upscaler(loaded, tile=16, tta=True).upscale_rgb(x)
    resident = Upscaler(loaded, tile=16, tta=True, resident=True).upscale_rgb(x)
    assert torch.equal(host, resident)


def test_cli_tta_output_and_rerun(tmp_path):
    out = tmp_path / "out"
    bird = ROOT / "examples" / "bird.png"
    run_sresr("upscale", str(bird), "-o", str(out), "-s", "2", "--tta", "-q", check=True)
    with_tta = np.asarray(__import__("PIL.Image", fromlist=["Image"]).open(out / "bird.png"))
    again = run_sresr("upscale", str(bird), "-o", str(out), "-s", "2", "--tta", "-q")
    assert again.returncode == 0  # the same command skips its own output
    plain = run_sresr("upscale", str(bird), "-o", str(out), "-s", "2", "-q")
    assert plain.returncode == 1 and "with --tta" in plain.stderr  # made with --tta, this run without
    run_sresr("upscale", str(bird), "-o", str(tmp_path / "plain"), "-s", "2", "-q", check=True)
    without = np.asarray(__import__("PIL.Image", fromlist=["Image"]).open(tmp_path / "plain" / "bird.png"))
    assert with_tta.shape == without.shape and (with_tta != without).any()
