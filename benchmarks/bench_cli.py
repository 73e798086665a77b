"""`sresr upscale` end to end on a large photo: wall time, peak memory and file size by PNG level.

    python benchmarks/bench_cli.py [--size 4000x3000] [--model fsrcnn] [--scale 4] [--levels 6,3,1]

The input is examples/butterfly.png enlarged (Pillow bicubic) to ``--size`` and saved as PNG in
a temporary folder; each run is a fresh ``sresr upscale`` process (decode, upscale, encode,
atomic write), timed from outside, with its peak resident memory (``ru_maxrss`` of that child
alone, measured by a wrapper process). Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

_WRAPPER = r"""
import json, resource, subprocess, sys, time
t0 = time.perf_counter()
proc = subprocess.run(sys.argv[1:], capture_output=True, text=True)
seconds = time.perf_counter() - t0
print(json.dumps({"rc": proc.returncode, "seconds": seconds, "stderr": proc.stderr[-500:],
                  "max_rss_kb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss}))
"""


def run_once(inp: Path, out: Path, model: str, scale: int, level: int, threads: int | None) -> dict:
    cmd = [sys.executable, "-m", "sresr", "upscale", str(inp), "-o", str(out), "-m", model, "-s", str(scale),
           "--png-compression", str(level), "--overwrite", "--quiet"]
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    if threads:
        env["OMP_NUM_THREADS"] = str(threads)
    res = subprocess.run([sys.executable, "-c", _WRAPPER, *cmd], capture_output=True, text=True, env=env, check=True)
    r = json.loads(res.stdout.strip().splitlines()[-1])
    if r["rc"] != 0:
        raise SystemExit(f"sresr upscale failed ({r['rc']}): {r['stderr']}")
    r["bytes"] = sum(p.stat().st_size for p in out.iterdir())
    return r


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", default="4000x3000", help="input WIDTHxHEIGHT")
    ap.add_argument("--model", default="fsrcnn")
    ap.add_argument("--scale", type=int, default=4)
    ap.add_argument("--levels", default="6,3,1", help="PNG zlib levels to compare")
    ap.add_argument("--repeat", type=int, default=2, help="runs per level; the fastest is shown")
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args()
    from PIL import Image

    w, h = (int(v) for v in args.size.lower().split("x"))
    with tempfile.TemporaryDirectory() as tmp:
        inp = Path(tmp) / "in" / "photo.png"
        inp.parent.mkdir()
        with Image.open(ROOT / "examples" / "butterfly.png") as im:
            im.convert("RGB").resize((w, h), Image.BICUBIC).save(inp)
        load = os.getloadavg() if hasattr(os, "getloadavg") else (0.0, 0.0, 0.0)
        print(f"`python benchmarks/bench_cli.py --size {args.size} --model {args.model} --scale {args.scale}` "
              f"({platform.machine()}, {os.cpu_count()} CPUs, load average at start "
              f"{load[0]:.1f}/{load[1]:.1f}/{load[2]:.1f}; {time.strftime('%Y-%m-%d %H:%M')}).\n")
        print(f"{args.model} x{args.scale}, {w}x{h} input ({w * h / 1e6:.1f} MPix) -> "
              f"{w * args.scale}x{h * args.scale} PNG; fastest of {args.repeat} runs\n")
        print("| PNG level | seconds | peak RSS (GB) | output (MB) |")
        print("|---|---|---|---|")
        for level in (int(v) for v in args.levels.split(",")):
            runs = [run_once(inp, Path(tmp) / f"out{level}", args.model, args.scale, level, args.threads)
                    for _ in range(args.repeat)]
            best = min(runs, key=lambda r: r["seconds"])
            print(f"| {level} | {best['seconds']:.1f} | {best['max_rss_kb'] / 1e6:.2f} | {best['bytes'] / 1e6:.1f} |",
                  flush=True)


if __name__ == "__main__":
    main()
