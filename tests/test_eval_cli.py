"""``sresr eval``: the published bicubic numbers end to end, --pred/--gt on files from PIL and OpenCV."""

from __future__ import annotations

import json
import math
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from conftest import run_sresr
from sresr.cli.main import app
from sresr.evaluate import evaluate, evaluate_dirs
from sresr.imaging.resize import imresize
from sresr.spec import ModelSpec
from sresr.resolve import LoadedModel


def test_eval_bicubic_set5_json_subprocess() -> None:
    proc = run_sresr("eval", "bicubic", "--data", "set5", "-s", "3", "--json")
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert set(data) >= {"model", "dataset", "scale", "protocol", "images", "mean"}
    assert data["model"] == "bicubic" and data["dataset"] == "set5" and data["scale"] == 3
    assert [im["name"] for im in data["images"]] == ["baby", "bird", "butterfly", "head", "woman"]
    assert data["mean"]["psnr"] == pytest.approx(30.40, abs=0.02)
    assert data["mean"]["ssim"] == pytest.approx(0.8690, abs=0.0005)
    assert data["protocol"]["crop"] == 3 and data["protocol"]["channels"] == "y" and data["protocol"]["quantize"]
    assert data["paper"] == {"psnr": 30.39, "ssim": 0.8682}


def test_eval_table_prints_protocol_clirunner() -> None:
    result = CliRunner().invoke(app, ["eval", "bicubic", "--data", "set5", "-s", "4"])
    assert result.exit_code == 0, result.output
    assert "28.43" in result.output and "0.8113" in result.output
    assert "protocol: Y (BT.601" in result.output and "border 4 px" in result.output
    result = CliRunner().invoke(app, ["eval", "bicubic", "--data", "set5", "-s", "2", "--rgb", "--crop", "0",
                                      "--no-quantize", "--json"])
    assert result.exit_code == 0, result.output
    proto = json.loads(result.output)["protocol"]
    assert proto["channels"] == "rgb" and proto["crop"] == 0 and proto["quantize"] is False
    assert proto["standard"] is False


def _y(img: np.ndarray) -> np.ndarray:
    f = img.astype(np.float64) / 255
    return 16 + 65.481 * f[..., 0] + 128.553 * f[..., 1] + 24.966 * f[..., 2]


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    return 10 * math.log10(255**2 / np.mean((a - b) ** 2))


def test_pred_gt_with_pil_and_opencv_files(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    gt_dir, pred_dir = tmp_path / "gt", tmp_path / "pred"
    gt_dir.mkdir()
    pred_dir.mkdir()
    hr_a = rng.integers(0, 256, (50, 46, 3), dtype=np.uint8)  # not a multiple of 4: modcrop to 48x44
    hr_b = rng.integers(0, 256, (40, 40), dtype=np.uint8)  # grayscale
    Image.fromarray(hr_a).save(gt_dir / "alpha.png")
    Image.fromarray(hr_b).save(gt_dir / "beta.png")
    Image.fromarray(hr_b).save(gt_dir / "gamma.png")  # no prediction for this one
    sr_a = np.clip(hr_a[:48, :44].astype(int) + rng.integers(-6, 7, (48, 44, 3)), 0, 255).astype(np.uint8)
    cv2.imwrite(str(pred_dir / "alpha_RCAN_x4.png"), cv2.cvtColor(sr_a, cv2.COLOR_RGB2BGR))
    sr_b = np.clip(hr_b.astype(int) + rng.integers(-3, 4, hr_b.shape), 0, 255).astype(np.uint8)
    cv2.imwrite(str(pred_dir / "betax4.png"), cv2.cvtColor(sr_b, cv2.COLOR_GRAY2BGR))  # 3 equal channels

    proc = run_sresr("eval", "--pred", str(pred_dir), "--gt", str(gt_dir), "-s", "4", "--json")
    assert proc.returncode == 1  # one image had no prediction
    assert "gamma" in proc.stderr or "gamma" in proc.stdout
    data = json.loads(proc.stdout)
    scores = {im["name"]: im for im in data["images"]}
    assert set(scores) == {"alpha", "beta"}
    exp_a = _psnr(_y(sr_a)[4:-4, 4:-4], _y(hr_a[:48, :44])[4:-4, 4:-4])
    exp_b = _psnr(sr_b[4:-4, 4:-4].astype(np.float64), hr_b[4:-4, 4:-4].astype(np.float64))
    assert scores["alpha"]["psnr"] == pytest.approx(exp_a, abs=1e-9)
    assert scores["beta"]["psnr"] == pytest.approx(exp_b, abs=1e-9)
    assert data["failures"] == [{"name": "gamma", "error": f"no prediction in {pred_dir} for gamma.png"}]


def test_identical_pred_is_inf_in_json(tmp_path: Path) -> None:
    img = np.random.default_rng(1).integers(0, 256, (24, 24, 3), dtype=np.uint8)
    for d in ("a", "b"):
        (tmp_path / d).mkdir()
        Image.fromarray(img).save(tmp_path / d / "x.png")
    proc = run_sresr("eval", "--pred", str(tmp_path / "a"), "--gt", str(tmp_path / "b"), "-s", "2", "--json")
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["images"][0]["psnr"] == "inf" and data["mean"]["psnr"] == "inf"
    table = run_sresr("eval", "--pred", str(tmp_path / "a"), "--gt", str(tmp_path / "b"), "-s", "2")
    assert " inf " in table.stdout


def test_save_then_pred_gt_round_trip(tmp_path: Path) -> None:
    report = evaluate("bicubic", "set5", 2, save_dir=tmp_path / "sr")
    assert sorted(p.name for p in (tmp_path / "sr").iterdir())[0] == "baby_x2.png"
    from importlib import resources

    gt = Path(str(resources.files("sresr.data").joinpath("set5")))
    again = evaluate_dirs(tmp_path / "sr", gt, 2)
    assert [r.name for r in again.images] == [r.name for r in report.images]
    for a, b in zip(report.images, again.images):
        assert a.psnr == pytest.approx(b.psnr, abs=1e-9) and a.ssim == pytest.approx(b.ssim, abs=1e-12)


def test_y_model_with_upsampled_input_is_scored_on_its_y(tmp_path: Path) -> None:
    # An "upsampled" Y model that returns its input: SR = MATLAB bicubic of the LR's Y.
    spec = ModelSpec(name="ident", factory="torch.nn:Identity", scales=(2,), colorspace="y", input="upsampled")
    loaded = LoadedModel(torch.nn.Identity(), spec, 2, "y", "none")
    rng = np.random.default_rng(2)
    hr = rng.integers(0, 256, (32, 30, 3), dtype=np.uint8)
    (tmp_path / "d").mkdir()
    Image.fromarray(hr).save(tmp_path / "d" / "r.png")
    report = evaluate(loaded, tmp_path / "d", 2)
    lr = imresize(torch.from_numpy(hr).permute(2, 0, 1).contiguous(), 1 / 2).permute(1, 2, 0).numpy()
    y_lr = torch.from_numpy(_y(lr) / 255.0)
    sr_y = np.floor(np.clip(imresize(y_lr, 2).numpy() * 255, 0, 255) + 0.5)
    expected = _psnr(sr_y[2:-2, 2:-2], _y(hr)[2:-2, 2:-2])
    assert report.images[0].psnr == pytest.approx(expected, abs=1e-6)


def test_errors_are_one_line() -> None:
    proc = run_sresr("eval", "bicubic", "--data", "no-such-set", "-s", "4")
    assert proc.returncode == 1 and "unknown dataset 'no-such-set'" in proc.stderr
    assert "Traceback" not in proc.stderr
    proc = run_sresr("eval", "--pred", "x", "-s", "4")
    assert proc.returncode == 2 and "--pred and --gt go together" in proc.stderr
    proc = run_sresr("eval", "bicubic", "-s", "4")
    assert proc.returncode == 2 and "--data is required" in proc.stderr


def test_lpips_missing_is_clear() -> None:
    try:
        import lpips  # noqa: F401
    except Exception:
        proc = run_sresr("eval", "bicubic", "--data", "set5", "-s", "4", "--lpips")
        assert proc.returncode == 2 and "LPIPS needs the 'lpips' package" in proc.stderr
    else:
        pytest.skip("lpips is installed")


def test_list_datasets_json() -> None:
    proc = run_sresr("eval", "--list", "--json")
    assert proc.returncode == 0
    names = [d["name"] for d in json.loads(proc.stdout)]
    assert names[0] == "set5" and "div2k-valid" in names


def test_dataset_folder_with_bad_files_scores_the_rest(tmp_path: Path) -> None:
    yy, xx = np.mgrid[0:40, 0:44]
    for name, f in (("a", 7.0), ("b", 11.0)):  # smooth content: bicubic scores well above 30 dB
        img = np.stack([127 + 90 * np.sin(xx / f + c) * np.cos(yy / (f + 3)) for c in range(3)], -1)
        Image.fromarray(img.astype(np.uint8)).save(tmp_path / f"{name}.png")
    Image.fromarray(np.zeros((1, 1, 3), np.uint8)).save(tmp_path / "tiny.png")
    (tmp_path / "empty.png").write_bytes(b"")
    proc = run_sresr("eval", "bicubic", "--data", str(tmp_path), "-s", "2", "--json")
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr and "internal error" not in proc.stderr
    data = json.loads(proc.stdout)
    assert [im["name"] for im in data["images"]] == ["a", "b"]
    assert all(30 < im["psnr"] < 60 for im in data["images"]), data["images"]
    failures = {f["name"]: f["error"] for f in data["failures"]}
    assert set(failures) == {"tiny", "empty"}
    assert "smaller than the scale" in failures["tiny"] and "empty file" in failures["empty"]
