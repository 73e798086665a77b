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
