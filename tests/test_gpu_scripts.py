"""The prepared GPU scripts run on the CPU with tiny sizes (their --dry-run), so a lent GPU's few
minutes are not spent finding their bugs."""

from __future__ import annotations

import json
import sys

from conftest import ROOT, subprocess_env  # type: ignore[import-not-found]


def test_gpu_smoke_dry_run(tmp_path):
    import subprocess

    proc = subprocess.run(["bash", str(ROOT / "recipes" / "gpu_smoke.sh"), "--dry-run", "--recipes", "srcnn",
                           "srgan-l1"], env=subprocess_env(OUT=str(tmp_path), PYTHON=sys.executable),
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    report = json.loads((tmp_path / "gpu_smoke.json").read_text())
    assert [(r["recipe"], r["ok"]) for r in report["rows"]] == [("srcnn", True), ("srgan-l1", True)]
    assert all(r["samples_per_s"] > 0 and r["synthetic_per_s"] > 0 for r in report["rows"])
    assert report["resumed"] == {"recipe": "srcnn", "from": 4, "to": 8, "ok": True}
    assert "| srgan-l1 | fp32 |" in (tmp_path / "gpu_smoke.md").read_text()


def test_gpu_check_dry_run(tmp_path):
    """benchmarks/gpu_check.py end to end on the CPU with tiny sizes: every step runs, every model
    of the side-by-side table is measured, tiled equals whole on the device, the folder is upscaled."""
    import subprocess

    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gpu_check.py"), "--dry-run", "--out", str(tmp_path)],
                          env=subprocess_env(), capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    report = json.loads((tmp_path / "gpu_check.json").read_text())
    assert report["errors"] == {} and report["tests"]["returncode"] == 0 and "passed" in report["tests"]["summary"]
    rows = report["side_by_side"]
    assert [r["model"] for r in rows] == ["realesrgan-compact", "esrgan", "srresnet", "edsr", "fsrcnn"]
    assert all("error" not in r and r["sresr"] > 0 and r["network"] > 0 for r in rows)
    assert report["exact"]["max_abs_diff"] <= 1e-6
    assert [(r["model"], r["ok"]) for r in report["upscale"]] == [("realesrgan-compact", 2), ("esrgan", 2)]
    assert len(report["memory"]) == 4
    md = (tmp_path / "gpu_check.md").read_text()
    assert "| realesrgan-compact x4 | fp32 |" in md and "## `sresr upscale` on a folder" in md
    # every family in three precisions; fp32 is the reference, the half precisions stay close to it
    fams = report["families"]
    assert [(r["model"], r["precision"]) for r in fams] == [
        (m, p) for m in ("esrgan", "swinir", "hat", "rcan", "span", "dat") for p in ("fp32", "bf16", "fp16")]
    assert all("error" not in r and r["seconds"] > 0 and r["finite"] for r in fams)
    assert all(r["diff_over_range"] < 0.05 for r in fams if r["precision"] != "fp32")
    assert "## Architecture families" in md and "## Video" in md
    assert "network alone" in report["video"]["table"] or "PyAV" in report["video"].get("skipped", "")
