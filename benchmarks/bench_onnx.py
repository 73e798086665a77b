"""onnxruntime CPU against sresr's torch CPU path, per model family, in one run.

    python benchmarks/bench_onnx.py [--quick] [--size 128] [--models fsrcnn,esrgan] [--threads N] [--out FILE.md]

Each registered family at its default scale and published configuration, randomly initialised
(speed does not depend on the weights), on the same random input: the torch backend
(``Upscaler(loaded, device="cpu")``: the load-time rewrites, channels_last, ``inference_mode``)
against the onnxruntime backend (the same Upscaler on ``onnxruntime_model(loaded, provider="cpu")``:
the network's ONNX export, opset 17, fp32, made into a fresh cache). Both run the whole image in
one window (``tile=0``), with the same number of threads. Columns: median ms per image, the
speed-up of onnxruntime over torch, the largest output difference between the two, and the time
the export took (trace + onnxruntime check + write). ``--quick``: a 48-pixel input and one timed
repeat (the transformer families still take tens of seconds to export). Prints a Markdown table
(and writes it to ``--out`` when given).
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="48-pixel input, one timed repeat")
    ap.add_argument("--size", type=int, default=None, help="input side in pixels (default 128, quick 48)")
    ap.add_argument("--repeat", type=int, default=None, help="timed repeats (median; default 5, quick 1)")
    ap.add_argument("--models", default=None, help="comma-separated model names (default: every registered one)")
    ap.add_argument("--threads", type=int, default=None, help="threads for both backends (default: torch's)")
    ap.add_argument("--out", default=None, help="also write the table here")
    args = ap.parse_args()
    os.environ["SRESR_HOME"] = tempfile.mkdtemp(prefix="sresr-bench-onnx-")  # exports made fresh, timed

    import onnx
    import onnxruntime
    import torch

    from sresr.backends.onnxruntime import onnxruntime_model
    from sresr.engine import Upscaler
    from sresr.profiling import time_call
    from sresr.registry import get_spec, list_models
    from sresr.resolve import load_model

    if args.threads:
        torch.set_num_threads(args.threads)
    threads = torch.get_num_threads()
    size = args.size or (48 if args.quick else 128)
    repeat = args.repeat or (1 if args.quick else 5)
    names = args.models.split(",") if args.models else list_models()
    load = os.getloadavg() if hasattr(os, "getloadavg") else (0.0, 0.0, 0.0)
    lines = [
        "## onnxruntime CPU vs torch CPU",
        "",
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, {threads} threads for each backend, "
        f"torch {torch.__version__}, onnxruntime {onnxruntime.__version__}, onnx {onnx.__version__}, "
        f"load average at start {load[0]:.1f}{' (shared machine: timings are noisy)' if load[0] > 1 else ''}; "
        f"{'quick run' if args.quick else 'full run'}, {size}x{size} input (padded to the size multiple), "
        f"median of {repeat}; {time.strftime('%Y-%m-%d %H:%M')} UTC",
        "",
        "| model | scale | torch CPU (ms) | onnxruntime CPU (ms) | onnxruntime speed-up | max diff | export (s) |",
        "|---|---|---|---|---|---|---|",
    ]
    print("\n".join(lines), flush=True)
    for name in names:
        spec = get_spec(name)
        scale = spec.default_scale()
        torch.manual_seed(0)
        loaded = load_model(name, scale, pretrained=False)
        m = loaded.geometry.size_multiple
        side = -(-size // m) * m
        x = torch.rand(1, loaded.in_channels, side, side)
        try:
            t0 = time.perf_counter()
            ort_loaded = onnxruntime_model(loaded, provider="cpu", device="cpu", threads=threads)
            export_s = time.perf_counter() - t0
        except Exception as exc:  # a family that does not export: said in its row
            row = f"| {name} | x{scale} | - | - | - | - | failed: {' '.join(str(exc).split())[:80]} |"
            lines.append(row)
            print(row, flush=True)
            continue
        up_torch = Upscaler(loaded, device="cpu", tile=0)
        up_ort = Upscaler(ort_loaded, tile=0)
        a, b = up_torch.run(x), up_ort.run(x)
        diff = float((a - b).abs().max())
        t_torch = time_call(lambda: up_torch.run(x), "cpu", warmup=1, repeats=repeat).median_s
        t_ort = time_call(lambda: up_ort.run(x), "cpu", warmup=1, repeats=repeat).median_s
        row = (f"| {name} | x{scale} | {t_torch * 1e3:.1f} | {t_ort * 1e3:.1f} | {t_torch / t_ort:.2f}x | "
               f"{diff:.1e} | {export_s:.1f} |")
        lines.append(row)
        print(row, flush=True)
    if args.out:
        Path(args.out).write_text("\n".join(lines) + "\n")
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
