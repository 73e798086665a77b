"""ONNX export (sresr.export) and the onnxruntime backend (sresr.backends.onnxruntime).

What is proved here, each against an independent computation:
- every built-in family (small configurations, random weights) exports with dynamic height and
  width and runs on onnxruntime's CPU provider within 1e-4 of PyTorch, at another size and batch
  than the traced one;
- the metadata written is read back (scale, colour space, input kind, receptive field, size
  multiple, weights id and sha256), and a file made elsewhere (plain torch.onnx.export, no
  metadata) gets its scale and size multiple from probe runs;
- ``sresr upscale --backend onnxruntime`` and ``-m FILE.onnx`` write the torch backend's pixels
  within 1/255 (on a real image, a Y model: colour handling included), and the engine's tiling
  stays exact on onnxruntime (tiled == whole);
- without onnxruntime the commands fail in one line saying how to install it (a real subprocess
  whose import of onnxruntime is blocked).
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

from conftest import ROOT, run_sresr, subprocess_env  # type: ignore[import-not-found]  # noqa: E402

from sresr.backends.onnxruntime import OrtModule, load_onnx, onnxruntime_model, static_tile  # noqa: E402
from sresr.engine import Upscaler  # noqa: E402
from sresr.export import FP16_TOLERANCE, METADATA_KEYS, export_onnx, read_onnx_metadata  # noqa: E402
from sresr.registry import get_spec, list_models  # noqa: E402
from sresr.resolve import load_model  # noqa: E402

IMAGE = ROOT / "examples" / "butterfly.png"

#: small configurations of each family (the same code paths, a fraction of the work)
SMALL = {
    "edsr": dict(features=8, blocks=1),
    "esrgan": dict(features=8, blocks=1, growth=4),
    "realesrgan-compact": dict(features=8, num_conv=2),
    "srresnet": dict(features=8, blocks=1),
    "srgan": dict(features=8, blocks=1),
    "vdsr": dict(depth=3, features=8),
    "fsrcnn": dict(d=8, s=4, m=1),
    "espcn": dict(n1=8, n2=4),
    "srcnn": dict(n1=8, n2=4),
    # two blocks: the second has shifted windows, whose attention mask must be traced, not baked in
    # (MaskCache and DAT's masks check torch.jit.is_tracing(); otherwise the exports are refused by the check)
    "hat": dict(embed_dim=12, depths=(2,), num_heads=(2,), window_size=4, compress_ratio=3, squeeze_factor=4, num_feat=8),
    "swinir": dict(embed_dim=12, depths=(2,), num_heads=(2,), window_size=4, num_feat=8),
    "dat": dict(embed_dim=32, depths=(2,), num_heads=(2,), split_size=(2, 4)),
    "rcan": dict(features=8, groups=1, blocks=1, reduction=4),
    "span": dict(features=8),
}


def _cases() -> list[tuple[str, int]]:
    """Every registered family at its default scale, and ESRGAN x1 (pixel unshuffle: size multiple 4)."""
    return [(name, get_spec(name).default_scale()) for name in list_models()] + [("esrgan", 1)]


def _random(name: str, scale: int):
    torch.manual_seed(0)
    return load_model(name, scale, pretrained=False, **SMALL.get(name, {}))


def _input(loaded, h: int, w: int, n: int = 1, seed: int = 1) -> torch.Tensor:
    m = loaded.geometry.size_multiple
    gen = torch.Generator().manual_seed(seed)
    return torch.rand((n, loaded.in_channels, -(-h // m) * m, -(-w // m) * m), generator=gen)


@pytest.mark.parametrize(("name", "scale"), _cases())
def test_every_family_exports_and_round_trips(name: str, scale: int, tmp_path: Path) -> None:
    """bicubic included: its MATLAB-exact resize (no parameters) exports too. A family added later
    without a small configuration in SMALL runs at its full size (slow, but still checked)."""
    loaded = _random(name, scale)
    path = tmp_path / f"{name}.onnx"
    report = export_onnx(loaded, path)
    assert path.is_file() and report.max_diff <= 1e-4
    module = OrtModule(_session(path), str(path))
    x = _input(loaded, 21, 26, n=2)  # neither the traced size nor its batch
    with torch.inference_mode():
        want = loaded.module(x)
    got = module(x)
    assert got.shape == want.shape
    assert float((got - want).abs().max()) <= 1e-4 * max(1.0, float(want.abs().max()))


def test_window_masks_traced_not_baked(tmp_path: Path) -> None:
    """An export traced after the network ran at the trace size (its mask cache filled, as the
    rewrite check leaves it) still runs at other window counts, equal to PyTorch."""
    loaded = _random("swinir", 2)
    with torch.inference_mode():
        loaded.module(_input(loaded, 16, 16))  # fills the mask cache for 16 x 16
    export_onnx(loaded, tmp_path / "s.onnx")
    module = OrtModule(_session(tmp_path / "s.onnx"), "s.onnx")
    for h, w in ((8, 8), (16, 16), (28, 20)):
        x = _input(loaded, h, w)
        with torch.inference_mode():
            want = loaded.module(x)
        assert float((module(x) - want).abs().max()) <= 1e-4


def _session(path: Path):
    import onnxruntime as ort

    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def test_metadata_round_trip(tmp_path: Path) -> None:
    loaded = load_model("fsrcnn.x3")
    path = tmp_path / "f.onnx"
    export_onnx(loaded, path)
    meta = read_onnx_metadata(path)
    assert set(METADATA_KEYS) <= set(meta)
    assert meta["sresr.model"] == "fsrcnn" and meta["sresr.weights"] == "fsrcnn.x3"
    assert meta["sresr.weights_sha256"] == loaded.weights_sha256 and len(loaded.weights_sha256) == 64
    assert (meta["sresr.scale"], meta["sresr.colorspace"], meta["sresr.input"]) == ("3", "y", "lr")
    assert int(meta["sresr.receptive_field"]) == loaded.geometry.receptive_field
    assert int(meta["sresr.size_multiple"]) == loaded.geometry.size_multiple
    assert json.loads(meta["sresr.kwargs"]) == json.loads(json.dumps(loaded.kwargs))
    back, notes = load_onnx(path)
    assert notes == []
    assert (back.name, back.scale, back.colorspace, back.weights_id, back.weights_sha256) == \
        ("fsrcnn", 3, "y", "fsrcnn.x3", loaded.weights_sha256)
    assert back.geometry == loaded.geometry
    assert back.spec.input == "lr"
    # a pre-upsampling network keeps its kind and runs at any of its scales
    srcnn = load_model("srcnn.x3")
    export_onnx(srcnn, tmp_path / "s.onnx")
    back, _ = load_onnx(tmp_path / "s.onnx", scale=2)
    assert back.spec.input == "upsampled" and back.scale == 2


def test_tiled_equals_whole_on_onnxruntime() -> None:
    loaded = onnxruntime_model(_random("realesrgan-compact", 2), provider="cpu")
    assert isinstance(loaded.module, OrtModule)
    x = _input(loaded, 45, 38)
    whole = Upscaler(loaded, tile=0).run(x)
    up = Upscaler(loaded, tile=16)
    tiled = up.run(x)
    assert len(up.plan_for(45, 38).tiles) > 4
    assert float((tiled - whole).abs().max()) <= 1e-5
    # the same through TTA and a batch of windows, and equal to the torch backend
    torch_out = Upscaler(_random("realesrgan-compact", 2), device="cpu", tile=0).run(x)
    assert float((tiled - torch_out).abs().max()) <= 1e-4
    a = Upscaler(loaded, tile=16, batch=3, tta=True).run(x)
    b = Upscaler(_random("realesrgan-compact", 2), device="cpu", tile=0, tta=True).run(x)
    assert float((a - b).abs().max()) <= 1e-4


def test_engine_runs_ort_module_as_given() -> None:
    loaded = onnxruntime_model(_random("esrgan", 1), provider="cpu")
    up = Upscaler(loaded, device="cpu", precision="auto")
    assert up.module is loaded.module and up.report.applied == [] and not up.channels_last
    assert "onnxruntime CPUExecutionProvider" in up.describe()
    x = _input(loaded, 22, 19)  # padded to the size multiple (4) by the engine, as for torch
    got = up.run(x[:, :, :21, :18])
    assert got.shape[-2:] == (21, 18)


def test_export_cache_is_reused(sresr_home: Path) -> None:
    loaded = load_model("fsrcnn.x2")
    first = onnxruntime_model(loaded)
    files = sorted((sresr_home / "onnx").glob("*.onnx"))
    assert len(files) == 1
    stamp = files[0].stat().st_mtime_ns
    second = onnxruntime_model(load_model("fsrcnn.x2"))
    assert second.module.source == first.module.source and files[0].stat().st_mtime_ns == stamp
    onnxruntime_model(loaded, precision="fp16")  # another key
    assert len(list((sresr_home / "onnx").glob("*.onnx"))) == 2
    assert (first.weights_id, first.weights_sha256, first.geometry) == \
        (loaded.weights_id, loaded.weights_sha256, loaded.geometry)


def _png(path: Path) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.open(path)).astype(np.int16)


def test_upscale_cli_onnxruntime_matches_torch(tmp_path: Path) -> None:
    """A Y model on a real photo: luma through onnxruntime, chroma by bicubic, tiled (-t 24)."""
    run_sresr("upscale", str(IMAGE), "-o", str(tmp_path / "torch"), "-m", "fsrcnn.x3", "-t", "24", check=True)
    proc = run_sresr("upscale", str(IMAGE), "-o", str(tmp_path / "ort"), "-m", "fsrcnn.x3", "-t", "24",
                     "--backend", "onnxruntime", "--provider", "cpu", check=True)
    assert "onnxruntime CPUExecutionProvider" in proc.stdout + proc.stderr
    a, b = _png(tmp_path / "torch" / IMAGE.name), _png(tmp_path / "ort" / IMAGE.name)
    assert a.shape == b.shape and int(np.abs(a - b).max()) <= 1
    # the file exported by the CLI, run as -m FILE.onnx, whole image
    onnx_file = tmp_path / "fsrcnn_x3.onnx"
    proc = run_sresr("export", "fsrcnn.x3", "-o", str(onnx_file), check=True)
    assert "max difference" in proc.stdout
    run_sresr("upscale", str(IMAGE), "-o", str(tmp_path / "file"), "-m", str(onnx_file), "-t", "0", check=True)
    c = _png(tmp_path / "file" / IMAGE.name)
    assert int(np.abs(a - c).max()) <= 1


def _foreign(tmp_path: Path, name: str, scale: int) -> tuple[Path, object]:
    """A file made without sresr: plain torch.onnx.export, no metadata."""
    loaded = _random(name, scale)
    path = tmp_path / f"foreign_{name}.onnx"
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(loaded.module, (_input(loaded, 16, 16),), buf, dynamo=False, input_names=["x"],
                          output_names=["y"], dynamic_axes={"x": {0: "n", 2: "h", 3: "w"}, "y": {0: "n", 2: "H", 3: "W"}})
    path.write_bytes(buf.getvalue())
    return path, loaded


def test_foreign_onnx_probe(tmp_path: Path) -> None:
    path, loaded = _foreign(tmp_path, "realesrgan-compact", 2)
    assert not any(k.startswith("sresr.") for k in read_onnx_metadata(path))
    found, notes = load_onnx(path)
    assert (found.scale, found.colorspace, found.geometry.size_multiple) == (2, "rgb", 1)
    said = Upscaler(found).warnings  # the receptive field is unknown: one line, naming the file
    assert len(said) == 1 and "receptive field is unknown" in said[0] and path.name in said[0] and "--tile-pad" in said[0]
    rf = loaded.geometry.receptive_field
    found, notes = load_onnx(path, tile_pad=rf)
    assert notes == [] and found.geometry.receptive_field == rf
    x = _input(loaded, 40, 33)
    want = Upscaler(loaded, device="cpu", tile=0).run(x)
    got = Upscaler(found, tile=12, tile_pad=rf).run(x)
    assert float((got - want).abs().max()) <= 1e-4
    # a size multiple found by probing (ESRGAN x1 unshuffles by 4)
    path4, _ = _foreign(tmp_path, "esrgan", 1)
    found4, _ = load_onnx(path4)
    assert (found4.scale, found4.geometry.size_multiple) == (1, 4)
    # the CLI: the warning without --tile-pad, none with it
    proc = run_sresr("upscale", str(IMAGE), "-o", str(tmp_path / "a"), "-m", str(path), "-t", "32", check=True)
    assert "--tile-pad" in proc.stderr
    proc = run_sresr("upscale", str(IMAGE), "-o", str(tmp_path / "b"), "-m", str(path), "-t", "32",
                     "--tile-pad", str(rf), check=True)
    assert "warning" not in proc.stderr
    assert _png(tmp_path / "b" / IMAGE.name).shape[:2] == tuple(2 * s for s in _png(IMAGE).shape[:2])


def test_fp16_export_on_onnxruntime_cpu(tmp_path: Path) -> None:
    """onnxruntime's CPU provider runs float16 files (it casts around the kernels it lacks)."""
    loaded = load_model("fsrcnn.x2")
    report = export_onnx(loaded, tmp_path / "h.onnx", fp16=True)
    assert report.fp16 and report.max_diff <= FP16_TOLERANCE
    half, _ = load_onnx(tmp_path / "h.onnx")
    assert half.module.half and "fp16 file" in half.module.sresr_external
    x = _input(loaded, 30, 27)
    want = Upscaler(loaded, device="cpu").run(x)
    got = Upscaler(half).run(x)
    assert float((got - want).abs().max()) <= 2 / 255


def test_static_tile_export(tmp_path: Path) -> None:
    """A fixed 32 x 32 input: the engine plans windows of exactly 32 (centred on cores of 32 - 2 pad,
    shifted inside the image), so an image larger than that comes out exact everywhere, edges
    included, with the default tile or a smaller one; eval of a fixed-size file works too."""
    loaded = _random("realesrgan-compact", 2)
    export_onnx(loaded, tmp_path / "t.onnx", tile=32)
    fixed, notes = load_onnx(tmp_path / "t.onnx")
    assert fixed.module.window == (32, 32) and any("fixed 32 x 32" in n for n in notes)
    rf = fixed.geometry.receptive_field
    tile = static_tile(fixed.module, None, None, fixed.geometry)
    assert tile == 32 - 2 * rf
    for h, w in ((50, 41), (90, 90), (33, 70)):
        x = _input(loaded, h, w)
        want = Upscaler(loaded, device="cpu", tile=0).run(x)
        for t in (None, 4):
            up = Upscaler(fixed, tile=t)
            assert {(tl.wy1 - tl.wy0, tl.wx1 - tl.wx0) for tl in up.plan_for(h, w).tiles} == {(32, 32)}
            got = up.run(x)
            assert got.shape == want.shape and float((got - want).abs().max()) <= 1e-4, (h, w, t)
    from sresr.evaluate import evaluate

    export_onnx(load_model("fsrcnn.x2"), tmp_path / "f64.onnx", tile=64)
    static = evaluate(str(tmp_path / "f64.onnx"), "set5", progress=False)
    assert abs(static.mean.psnr - evaluate("fsrcnn.x2", "set5", 2, progress=False).mean.psnr) <= 0.01


def test_export_refuses_bad_options(tmp_path: Path) -> None:
    from sresr.errors import UsageError

    loaded = _random("esrgan", 1)
    with pytest.raises(UsageError, match="multiple of 4"):
        export_onnx(loaded, tmp_path / "x.onnx", tile=30)
    with pytest.raises(UsageError, match="opset"):
        export_onnx(loaded, tmp_path / "x.onnx", opset=9)
    with pytest.raises(UsageError, match="newer than this torch can export"):
        export_onnx(loaded, tmp_path / "x.onnx", opset=99)
    fsrcnn = load_model("fsrcnn.x2")  # receptive field 8: a 16 x 16 file would leave no core to run
    with pytest.raises(UsageError, match="too small for fsrcnn"):
        export_onnx(fsrcnn, tmp_path / "x.onnx", tile=16)
    assert not (tmp_path / "x.onnx").exists()


def _edit_metadata(src: Path, dest: Path, **changes: str) -> Path:
    import onnx

    model = onnx.load(str(src))
    for prop in model.metadata_props:
        if prop.key in changes:
            prop.value = changes[prop.key]
    onnx.save(model, str(dest))
    return dest


def test_files_whose_metadata_or_outputs_do_not_fit_are_refused_in_one_line(tmp_path: Path) -> None:
    """sresr metadata is checked against one run of the graph; a foreign file must return float
    images with its input's channels. Each refusal is a UsageError naming the file."""
    from sresr.errors import UsageError

    good = tmp_path / "f.onnx"
    export_onnx(_random("fsrcnn", 2), good)
    cases = {"sresr.scale": ("3", "says it is a x3 network, but it upscales x2"),
             "sresr.kwargs": ("[1, 2]", "does not understand"), "sresr.format": ("99", "does not understand")}
    for key, (value, why) in cases.items():
        edited = _edit_metadata(good, tmp_path / f"edited-{key}.onnx", **{key: value})
        with pytest.raises(UsageError, match=why):
            load_onnx(edited)

    class Net(torch.nn.Module):
        def __init__(self, out_channels: int, as_uint8: bool):
            super().__init__()
            self.conv = torch.nn.Conv2d(3, out_channels * 4, 3, padding=1)
            self.as_uint8 = as_uint8

        def forward(self, x):
            y = torch.nn.functional.pixel_shuffle(self.conv(x), 2)
            return (y * 255).to(torch.uint8) if self.as_uint8 else y

    for out_channels, as_uint8, why in ((3, True, "returns tensor\\(uint8\\), not float"), (1, False, "turns 3 channel")):
        path = tmp_path / f"net-{out_channels}-{as_uint8}.onnx"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(Net(out_channels, as_uint8).eval(), (torch.rand(1, 3, 16, 16),), str(path), dynamo=False,
                              input_names=["x"], output_names=["y"], dynamic_axes={"x": {2: "h", 3: "w"}, "y": {2: "H", 3: "W"}})
        with pytest.raises(UsageError, match=why):
            load_onnx(path, tile_pad=1)


def test_export_cache_follows_the_tensors_not_the_file_they_came_from(sresr_home: Path) -> None:
    """A network changed in place after loading (fine-tuned, say) gets a new export, not the
    cached export of the file it was loaded from."""
    from sresr.backends import to_backend

    loaded = load_model("fsrcnn.x2")
    x = _input(loaded, 20, 24)
    first = to_backend(loaded, "onnxruntime", provider="cpu")
    with torch.no_grad():
        for p in loaded.module.parameters():
            p.mul_(0.5)
    second = to_backend(loaded, "onnxruntime", provider="cpu")
    assert second.module.source != first.module.source
    want = Upscaler(loaded, device="cpu", tile=0).run(x)
    assert float((Upscaler(second, tile=0).run(x) - want).abs().max()) <= 1e-4


_BLOCK = "import sys; sys.modules['onnxruntime'] = None; from sresr.cli.main import main; main()"


@pytest.mark.parametrize("args", [
    ("upscale", str(IMAGE), "-o", "out", "--backend", "onnxruntime"),
    ("upscale", str(IMAGE), "-o", "out", "-m", "model.onnx"),
    ("export", "fsrcnn.x2", "-o", "f.onnx"),
])
def test_missing_onnxruntime_says_how_to_install(args: tuple[str, ...], tmp_path: Path) -> None:
    (tmp_path / "model.onnx").write_bytes(b"not used")
    proc = subprocess.run([sys.executable, "-c", _BLOCK, *args], capture_output=True, text=True, cwd=tmp_path,
                          env=subprocess_env(), timeout=300)
    assert proc.returncode == 1, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:") and "pip install 'sresr[onnx]'" in lines[0], proc.stderr
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_help_imports_neither_torch_nor_onnx() -> None:
    code = ("import sys, sresr.cli.main, sresr.backends; "
            "print(sorted(m for m in ('torch', 'onnx', 'onnxruntime') if m in sys.modules))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=subprocess_env(), timeout=120)
    assert proc.stdout.strip() == "[]", proc.stderr


def test_eval_on_onnxruntime_matches_torch(tmp_path: Path) -> None:
    """sresr eval's library path: the same PSNR on onnxruntime (exported on the fly, or as a file)."""
    from sresr.evaluate import evaluate

    torch_report = evaluate("fsrcnn.x2", "set5", 2, progress=False)
    ort_report = evaluate("fsrcnn.x2", "set5", 2, progress=False, backend="onnxruntime", provider="cpu")
    export_onnx(load_model("fsrcnn.x2"), tmp_path / "f.onnx")
    file_report = evaluate(str(tmp_path / "f.onnx"), "set5", progress=False)
    assert abs(ort_report.mean.psnr - torch_report.mean.psnr) <= 0.01
    assert abs(file_report.mean.psnr - torch_report.mean.psnr) <= 0.01
    assert file_report.paper == torch_report.paper and file_report.paper  # the registered spec's reference numbers


def test_bench_on_onnxruntime_scores_as_torch_and_says_so(tmp_path: Path) -> None:
    """sresr bench --backend onnxruntime: the network's export scores what torch scores on Set5,
    and the table's footer and JSON name the backend that ran (torch otherwise)."""
    proc = run_sresr("bench", "set5", "-s", "2", "-m", "fsrcnn", "--repeats", "1", "--device", "cpu",
                     "--backend", "onnxruntime", "--provider", "cpu", "--json", check=True,
                     SRESR_HOME=str(tmp_path / "home"))
    data = json.loads(proc.stdout)
    assert data["backend"].startswith("onnxruntime ") and data["backend"].endswith("(CPUExecutionProvider)")
    (row,) = [r for r in data["rows"] if r["model"] != "bicubic"]
    from sresr.evaluate import evaluate

    torch_report = evaluate("fsrcnn", "set5", 2, progress=False, device="cpu")
    assert row["model"].startswith("fsrcnn") and abs(row["psnr"] - torch_report.mean.psnr) <= 0.01
    from sresr.bench import BenchOptions, _backend_name, run_bench, write_grid

    assert _backend_name(BenchOptions(models=("bicubic",))) == "torch"
    # an exported file scores the same at its own scale and is skipped, with the reason, at another
    export_onnx(load_model("fsrcnn.x2"), tmp_path / "f.onnx")
    options = BenchOptions(models=(str(tmp_path / "f.onnx"),), scales=(2, 3), repeats=1, device="cpu")
    result = run_bench(options)
    (row,) = [r for r in result.rows if r.model != "bicubic"]
    assert row.scale == 2 and abs(row.psnr - torch_report.mean.psnr) <= 0.01
    assert [r.scale for r in result.rows if r.model == "bicubic"] == [2, 3]
    assert any("is a x2 network, not x3" in s for s in result.skipped)
    assert result.backend.startswith("torch, and onnxruntime ") and f"backend {result.backend};" in result.footer()
    write_grid(tmp_path / "grid.png", result, options)
    from PIL import Image

    with Image.open(tmp_path / "grid.png") as im:  # LR, bicubic, the file's output, HR
        assert im.width == 4 * 96 * 2


def test_eval_and_bench_report_an_onnx_files_load_warnings(tmp_path: Path) -> None:
    """What loading an ONNX file says (here: a foreign one-channel file runs on luma) reaches the
    user of every command, not only of upscale: the library results carry it and the CLIs print it
    as a ``warning:`` line on stderr (stdout stays JSON)."""
    from sresr.backends import load
    from sresr.bench import BenchOptions, run_bench
    from sresr.evaluate import evaluate

    path, _ = _foreign(tmp_path, "fsrcnn", 2)
    got = load(str(path), 2)
    (note,) = got.notes
    assert "takes one channel" in note and path.name in note
    assert got.backend == "onnxruntime" and got.model is got.network
    assert evaluate(str(path), "set5", progress=False, device="cpu").warnings == (note,)
    result = run_bench(BenchOptions(models=(str(path),), scales=(2,), repeats=1, device="cpu"))
    assert result.warnings == [note] and result.to_dict()["warnings"] == [note]
    for args in (("eval", str(path), "-d", "set5", "--device", "cpu", "--json"),
                 ("bench", "set5", "-s", "2", "-m", str(path), "--repeats", "1", "--device", "cpu", "--json")):
        proc = run_sresr(*args, check=True)
        said = [line for line in proc.stderr.splitlines() if line.startswith("warning:")]
        assert len(said) == 1 and "takes one channel" in said[0] and path.name in said[0], proc.stderr
        assert json.loads(proc.stdout)["warnings"] == [note]


def test_onnx_file_with_weights_is_refused_alike_by_upscale_eval_and_bench(tmp_path: Path) -> None:
    """An ONNX file is the model and its weights: each command refuses separate weights in the same
    line, before the file is read (bench ignored the weights, and upscale said it otherwise)."""
    from sresr.backends import load
    from sresr.errors import UsageError

    onnx_file = tmp_path / "model.onnx"
    onnx_file.write_bytes(b"never read")
    runs = {
        "upscale": ("upscale", str(IMAGE), "-o", str(tmp_path / "out"), "-m", str(onnx_file), "-w", "fsrcnn.x2"),
        "eval": ("eval", str(onnx_file), "-d", "set5", "-w", "fsrcnn.x2", "--device", "cpu"),
        "bench": ("bench", "set5", "-s", "2", "-m", str(onnx_file), "-w", "fsrcnn.x2", "--repeats", "1",
                  "--device", "cpu"),
    }
    said = {}
    for command, args in runs.items():
        proc = run_sresr(*args)
        assert proc.returncode != 0, (command, proc.stdout, proc.stderr)
        said[command] = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert said["upscale"] == said["eval"] == said["bench"] == \
        ["error: an ONNX file is the model and its weights: give it without --weights"], said
    with pytest.raises(UsageError, match="give it alone, as -m FILE.onnx"):
        load("fsrcnn", 2, weights=str(onnx_file))
    with pytest.raises(UsageError, match="--precision bf16 does not apply to an ONNX file"):
        load(str(onnx_file), precision="bf16")
