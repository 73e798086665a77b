"""Quality and speed of the bundled models against bicubic (what `sresr bench` prints).

    python benchmarks/quality_speed.py                  # Set5 (bundled) and Set14 (tests/data)
    python benchmarks/quality_speed.py --scales 4 --datasets set5

Writes one Markdown table per dataset into benchmarks/results/ and prints them; BENCHMARKS.md
quotes those files.
"""

from __future__ import annotations

import argparse
import platform
from pathlib import Path

from sresr.bench import BenchOptions, run_bench, write_grid, write_text

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
DATASETS = {"set5": "set5", "set14": str(ROOT / "tests" / "data" / "set14")}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=list(DATASETS))
    ap.add_argument("--scales", nargs="+", type=int, default=[2, 3, 4])
    ap.add_argument("--device", default="auto")
    ap.add_argument("--precision", default="auto")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--grid", action="store_true", help="also write a comparison grid PNG for set5")
    args = ap.parse_args()
    RESULTS.mkdir(parents=True, exist_ok=True)
    for name in args.datasets:
        options = BenchOptions(dataset=DATASETS[name], scales=tuple(args.scales), device=args.device,
                               precision=args.precision, repeats=args.repeats)
        result = run_bench(options, on_row=lambda r: print(f"  {r.model} x{r.scale}: {r.psnr:.2f} dB", flush=True))
        text = (
            f"### {name}\n\nCommand: `python benchmarks/quality_speed.py --datasets {name} "
            f"--scales {' '.join(map(str, args.scales))}` on {platform.processor() or platform.machine()}\n\n"
            + result.to_markdown()
        )
        out = RESULTS / f"quality_speed_{name}.md"
        write_text(out, text)
        print(text)
        if args.grid and name == "set5":
            write_grid(RESULTS / "grid_set5.png", result, options)


if __name__ == "__main__":
    main()
