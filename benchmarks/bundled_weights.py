"""The bundled default weights against bicubic and the papers (Set5 and Set14, standard protocol).

    python benchmarks/bundled_weights.py            # prints the Markdown table of BENCHMARKS.md

Scores every bundled variant afresh with `sresr.evaluate` (Set5 bundled, Set14 from tests/data),
so the table is measured, not copied from the specs; tests/test_bundled_weights.py checks that
the specs declare the same Set5 numbers.
"""

from __future__ import annotations

import json
from pathlib import Path

from sresr.evaluate import evaluate
from sresr.registry import entries
from sresr.weights import read_metadata, variant_path

ROOT = Path(__file__).resolve().parents[1]
SET14 = str(ROOT / "tests" / "data" / "set14")
TARGETS = {  # issue #9: the numbers the bundled weights are measured against (Set5 PSNR)
    ("fsrcnn", 2): "36.94", ("fsrcnn", 3): "33.06", ("fsrcnn", 4): "30.55",
    ("espcn", 2): "bicubic +2.5", ("espcn", 3): "32.55", ("espcn", 4): "bicubic +1.5",
    ("srcnn", 3): "32.39",
}


def main() -> None:
    bicubic = {s: (evaluate("bicubic", "set5", s, progress=False).mean.psnr,
                   evaluate("bicubic", SET14, s, progress=False).mean.psnr) for s in (2, 3, 4)}
    print("| weights | Set5 PSNR / SSIM | Set14 PSNR / SSIM | vs bicubic (Set5) | paper (Set5) | target | "
          "iterations | CPU minutes | recipe |")
    print("|---|---|---|---|---|---|---|---|---|")
    data: set[str] = set()
    for name, entry in entries().items():
        spec = entry.spec
        if spec is None or entry.source != "sresr":
            continue
        for w in spec.weights:
            if not w.file:
                continue
            s = w.scale
            r5 = evaluate(f"{name}.{w.tag}", "set5", s, progress=False).mean
            r14 = evaluate(f"{name}.{w.tag}", SET14, s, progress=False).mean
            meta = read_metadata(variant_path(spec, w))
            data.update(json.loads(meta.get("sresr.train_data", "[]")))
            paper = spec.paper_metrics.get(f"set5/x{s}/psnr")
            # all training stages (a fine-tune or polish counts its starting run too)
            stages = json.loads(meta.get("sresr.stages", "[]")) or [
                {"iterations": int(meta.get("sresr.iterations", 0)), "seconds": float(meta.get("sresr.train_seconds", "nan"))}]
            iters = " + ".join(str(st["iterations"]) for st in stages)
            minutes = sum(float(st["seconds"]) for st in stages) / 60
            print(f"| {name}.{w.tag} | {r5.psnr:.2f} / {r5.ssim:.4f} | {r14.psnr:.2f} / {r14.ssim:.4f} | "
                  f"{r5.psnr - bicubic[s][0]:+.2f} | {paper if paper else '-'} | {TARGETS.get((name, s), '-')} | "
                  f"{iters} | {minutes:.0f} | "
                  f"`{w.recipe}` |", flush=True)
    print("\nBicubic (same protocol): " + ", ".join(
        f"x{s} Set5 {b5:.2f} / Set14 {b14:.2f}" for s, (b5, b14) in bicubic.items()))
    print("Training data: " + json.dumps(sorted(data)) + " (../shared/datasets); validation on Set5.")


if __name__ == "__main__":
    main()
