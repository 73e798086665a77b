"""Import of checkpoints in each published layout of the built-in models, then use by name
from fresh processes (``sresr weights list/path`` and ``load_model(NAME)``, ``sresr upscale`` when
the engine has landed). Skipped until the model zoo is installed."""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from conftest import run_sresr, subprocess_env  # noqa: E402

from sresr import registry  # noqa: E402

# (model, scale, factory kwargs kept small, layout name, --scale needed at import, anchor keys
# taken from the published layouts in checkpoint-formats.md)
CASES = [
    ("esrgan", 4, {"features": 8, "blocks": 2, "growth": 4}, "rrdbnet-basicsr", False,
     ["conv_first.weight", "body.1.rdb3.conv5.weight", "conv_up2.weight", "conv_hr.weight"]),
    ("esrgan", 4, {"features": 8, "blocks": 2, "growth": 4}, "rrdbnet-esrgan", False,
     ["RRDB_trunk.1.RDB3.conv5.weight", "trunk_conv.weight", "upconv2.weight", "HRconv.weight"]),
    ("esrgan", 4, {"features": 8, "blocks": 2, "growth": 4}, "rrdbnet-esrgan-old", False,
     ["model.0.weight", "model.1.sub.1.RDB3.conv5.0.weight", "model.1.sub.2.weight", "model.10.weight"]),
    ("esrgan", 2, {"features": 8, "blocks": 1, "growth": 4}, "rrdbnet-basicsr", False, ["conv_first.weight"]),
    ("edsr", 2, {"features": 8, "blocks": 2}, "edsr-basicsr", False, ["conv_after_body.weight", "upsample.0.weight"]),
    ("edsr", 4, {"features": 8, "blocks": 2}, "edsr-official", False,
     ["head.0.weight", "body.1.body.2.weight", "body.2.weight", "tail.0.2.weight", "tail.1.weight"]),
    ("realesrgan-compact", 4, {"features": 8, "num_conv": 2}, "srvgg-compact", False, ["body.0.weight", "body.5.weight", "body.6.bias"]),
    ("srresnet", 4, {"variant": "msrresnet", "features": 8, "blocks": 2}, "msrresnet-basicsr", False,
     ["conv_first.weight", "body.1.conv2.weight", "upconv2.weight", "conv_hr.weight"]),
    ("fsrcnn", 3, {}, "fsrcnn-yjn870", True, ["first_part.1.weight", "mid_part.11.weight", "last_part.weight"]),
    ("vdsr", 2, {}, "vdsr-twtygqyy", False, ["input.weight", "residual_layer.17.conv.weight", "output.weight"]),
    ("srcnn", 2, {}, "srcnn", False, ["conv1.weight", "conv3.bias"]),
    ("espcn", 3, {}, "espcn-yjn870", False, ["first_part.0.weight", "last_part.0.weight"]),
]


def _arch(model: str):
    spec = registry.get_spec(model)
    return spec, importlib.import_module(str(spec.loader).split(":")[0])


def _published(model: str, scale: int, kwargs: dict, layout_name: str, seed: int):
    spec, arch = _arch(model)
    torch.manual_seed(seed)
    module = spec.build(scale, **kwargs).eval()
    for p in module.parameters():  # away from the init so that outputs really depend on them
        p.data.add_(torch.randn_like(p) * 0.01)
    layout = next(lay for lay in arch.LAYOUTS if lay.name == layout_name)
    full = {**kwargs, "blocks": kwargs.get("blocks", 0)}
    sd = {layout.rename(k, scale, full): v.clone() for k, v in module.state_dict().items()}
    if layout_name == "edsr-official":  # the fixed mean shifts the official files carry
        mean = torch.tensor([0.4488, 0.4371, 0.4040]) * 255
        eye = torch.eye(3).view(3, 3, 1, 1)
        sd.update({"sub_mean.weight": eye, "sub_mean.bias": -mean, "add_mean.weight": eye, "add_mean.bias": mean})
    return spec, module, sd


@pytest.mark.slow
def test_each_published_layout_imports_and_is_usable_by_name(tmp_path):
    pytest.importorskip("sresr.models.esrgan.arch")
    registry.refresh()
    from sresr.weights import import_weights

    expected: dict[str, dict] = {}
    for i, (model, scale, kwargs, layout, needs_scale, anchors) in enumerate(CASES):
        spec, module, sd = _published(model, scale, kwargs, layout, seed=i)
        missing = [k for k in anchors if k not in sd]
        assert not missing, f"{layout}: the synthetic file lacks published keys {missing}"
        wrapped = {"params_ema": {f"module.{k}": v for k, v in sd.items()}} if i % 2 else sd
        pth = tmp_path / f"{layout}-x{scale}.pth"
        torch.save(wrapped, pth)
        name = f"case{i}"
        entry = import_weights(pth, name=name, scale=scale if needs_scale else None)
        assert (entry.model, entry.scale) == (spec.name, scale), layout
        ch = 1 if spec.colorspace == "y" else 3
        size = 8 * scale if spec.input == "upsampled" else 8
        x = torch.rand(1, ch, size, size, generator=torch.Generator().manual_seed(i))
        with torch.no_grad():
            y = module(x)
        torch.save({"x": x, "y": y}, tmp_path / f"{name}.pt")
        expected[name] = {"model": spec.name, "scale": scale, "layout": layout}

    listed = {r["id"]: r for r in json.loads(run_sresr("weights", "list", "--json", check=True).stdout)}
    from sresr.weights import find_imported

    for name, exp in expected.items():
        assert listed[name]["model"] == exp["model"] and listed[name]["scale"] == exp["scale"], exp
        assert find_imported(name) == Path(listed[name]["path"])
    # `sresr weights path NAME` (one process start is enough: every name resolves the same way)
    assert Path(run_sresr("weights", "path", "case1", check=True).stdout.strip()) == Path(listed["case1"]["path"])

    code = (
        "import sys, json, torch\n"
        "from sresr.resolve import load_model\n"
        "out = {}\n"
        "for name in sys.argv[2:]:\n"
        "    m = load_model(name)\n"
        "    d = torch.load(f'{sys.argv[1]}/{name}.pt')\n"
        "    with torch.no_grad():\n"
        "        err = (m.module(d['x']) - d['y']).abs().max().item()\n"
        "    out[name] = [m.name, m.scale, err]\n"
        "print(json.dumps(out))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path), *expected],
        capture_output=True, text=True, env=subprocess_env(), timeout=600,
    )
    assert proc.returncode == 0, proc.stderr
    got = json.loads(proc.stdout)
    for name, exp in expected.items():
        model, scale, err = got[name]
        assert (model, scale) == (exp["model"], exp["scale"]), exp
        assert err < 1e-5, f"{exp['layout']}: max abs difference {err}"

    if run_sresr("upscale", "--help").returncode == 0:  # the engine's command, once it has landed
        from PIL import Image

        Image.new("RGB", (8, 8), (120, 30, 200)).save(tmp_path / "in.png")
        up = run_sresr("upscale", str(tmp_path / "in.png"), "-m", "case0", "-o", str(tmp_path / "out"))
        assert up.returncode == 0, up.stderr
        outs = list((tmp_path / "out").glob("*.png"))
        assert len(outs) == 1 and Image.open(outs[0]).size == (32, 32)
