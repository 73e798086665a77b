"""`sresr bench`: the table's numbers against published ones and independent computations."""

from __future__ import annotations

import csv
import io
import json

import pytest
from PIL import Image

from conftest import run_sresr


def test_bench_bicubic_set5_reproduces_the_published_baseline(tmp_path) -> None:
    md, csv_file, grid = tmp_path / "t.md", tmp_path / "t.csv", tmp_path / "g.png"
    proc = run_sresr("bench", "set5", "-s", "3", "-m", "bicubic", "--repeats", "1", "--json",
                     "--markdown", str(md), "--csv", str(csv_file), "--grid", str(grid), check=True)
    data = json.loads(proc.stdout)
    assert data["dataset"] == "set5"
    assert data["protocol"]["standard"] is True
    assert data["roofline_gflops"] > 0
    (row,) = data["rows"]
    assert row["model"] == "bicubic" and row["scale"] == 3
    assert row["psnr"] == pytest.approx(30.40, abs=0.02)  # published-results.md self-check
    assert row["ssim"] == pytest.approx(0.8690, abs=0.0005)
    assert row["paper_psnr"] == pytest.approx(30.39)
    assert row["delta_psnr"] == 0.0
    assert row["params"] == 0
    assert row["ms_per_image"] > 0 and row["mpix_per_s"] > 0
    assert set(row["images"]) == {"baby", "bird", "butterfly", "head", "woman"}
    # the files say the same as the JSON
    assert "| bicubic | x3 | 30.40 |" in md.read_text()
    (csv_row,) = list(csv.DictReader(io.StringIO(csv_file.read_text())))
    assert float(csv_row["psnr"]) == pytest.approx(row["psnr"])
    # grid: one row per image, panels LR / bicubic / HR, crops of 96 px shown at 2x plus a label
    with Image.open(grid) as im:
        assert im.mode == "RGB"
        assert im.width == 3 * 96 * 2
        assert im.height == 5 * (96 * 2 + 14 + 2)


def test_flop_count_matches_the_closed_form_for_srcnn_and_fsrcnn() -> None:
    from sresr.bench import gflops_per_output_mpix
    from sresr.resolve import load_model

    srcnn = load_model("srcnn", 3, pretrained=False)
    # per HR pixel: 9x9 1->64, 5x5 64->32, 5x5 32->1, two FLOPs per multiply-add
    per_pixel = 2 * (81 * 1 * 64 + 25 * 64 * 32 + 25 * 32 * 1)
    assert gflops_per_output_mpix(srcnn) == pytest.approx(per_pixel * 1e6 / 1e9)
    fsrcnn = load_model("fsrcnn", 2, pretrained=False)
    d, s, m = 56, 12, 4
    per_lr_pixel = 2 * (25 * 1 * d + d * s + m * 9 * s * s + s * d + 81 * d * 1)  # deconv: each input tap
    assert gflops_per_output_mpix(fsrcnn) == pytest.approx(per_lr_pixel / 4 * 1e6 / 1e9)


def test_peak_memory_sees_a_large_allocation() -> None:
    import torch

    from sresr.profiling import PeakMemory

    with PeakMemory("cpu") as pm:
        x = torch.ones(64, 1024, 1024)  # 256 MiB, touched
        del x
    assert pm.peak_mb is not None and pm.peak_mb >= 200


def test_unknown_model_in_bench_is_a_usage_error() -> None:
    proc = run_sresr("bench", "set5", "-s", "2", "-m", "fsrcnnn")
    assert proc.returncode == 2
    assert "did you mean" in proc.stderr


def test_bench_scores_a_weights_file_given_with_weights(tmp_path) -> None:
    import shutil
    from importlib import resources

    from sresr.registry import get_spec

    variant = get_spec("fsrcnn").variant("x2")
    mine = tmp_path / "mine.safetensors"
    with resources.as_file(resources.files("sresr.weights_data") / variant.file) as src:
        shutil.copyfile(src, mine)
    proc = run_sresr("bench", "set5", "-s", "2", "-m", "fsrcnn", "--weights", str(mine), "--repeats", "1",
                     "--json", check=True)
    rows = {r["model"]: r for r in json.loads(proc.stdout)["rows"]}
    assert rows["fsrcnn"]["weights"] == str(mine)
    assert rows["fsrcnn"]["psnr"] == pytest.approx(variant.metrics["set5/psnr"], abs=0.006)
    assert rows["fsrcnn"]["delta_psnr"] == pytest.approx(rows["fsrcnn"]["psnr"] - rows["bicubic"]["psnr"])
    assert rows["fsrcnn"]["params"] == 12809
    assert rows["fsrcnn"]["gflop_per_s"] > 0 and rows["fsrcnn"]["roofline_share"] > 0
    # --weights with two models is ambiguous
    proc = run_sresr("bench", "set5", "-s", "2", "-m", "fsrcnn", "-m", "espcn", "--weights", str(mine))
    assert proc.returncode == 2 and "exactly one model" in proc.stderr


def test_terminal_output_never_truncates_numbers() -> None:
    # too narrow for 14 columns: the Markdown table, whole numbers, and the protocol's [standard] tag
    proc = run_sresr("bench", "set5", "-s", "2", "-m", "bicubic", "--repeats", "1", COLUMNS="80", check=True)
    assert "| bicubic | x2 | 33.68 | 0.9304 |" in proc.stdout
    assert "[standard]" in proc.stdout
    wide = run_sresr("bench", "set5", "-s", "2", "-m", "bicubic", "--repeats", "1", COLUMNS="220", check=True)
    assert "33.68" in wide.stdout and "0.9304" in wide.stdout and "[standard]" in wide.stdout
