"""Inference speed of the sresr engine, written as a markdown report.

    python benchmarks/bench_inference.py --out benchmarks/results/inference.md [--quick] [--models a,b]

Sections:
1. Per model: the plain way (NCHW, eager, ``torch.no_grad``: what Real-ESRGAN's tiling loop does)
   against the engine's network (BatchNorm folded, sub-pixel deconvolution, channels_last,
   ``inference_mode``), achieved GFLOP/s (convolution FLOPs counted with hooks) and the share of
   the roofline: a 64->64 3x3 convolution measured in the same run, and the max output difference.
2. Tiled against untiled time for the same image.
3. Time per input megapixel against image size (tiled, 8-bit output as ``sresr upscale`` makes
   it), and peak resident memory of a separate process next to the size of the output canvas.
4. With CUDA: MPix/s for esrgan x4 in fp16 and bf16 at several tile sizes, and the ratio to the
   plain fp32 loop.

Random-initialised networks (speed does not depend on the weights). Numbers depend on the
machine and on what else runs on it: the report records the CPU count, threads and load average.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from sresr.engine import Upscaler  # noqa: E402
from sresr.profiling import conv_roofline, count_flops, time_call  # noqa: E402
from sresr.resolve import load_model  # noqa: E402

# (label, model, scale, kwargs)
MODELS = [
    ("fsrcnn x2", "fsrcnn", 2, {}),
    ("espcn x3", "espcn", 3, {}),
    ("realesrgan-compact x4", "realesrgan-compact", 4, {}),
    ("srresnet x4", "srresnet", 4, {"variant": "paper"}),  # the paper network (the default weights are MSRResNet)
    ("edsr-baseline x4", "edsr", 4, {}),
    ("vdsr x2", "vdsr", 2, {}),
    ("esrgan x4", "esrgan", 4, {}),
]
SIXTY_FOUR = {"realesrgan-compact", "srresnet", "edsr", "vdsr", "esrgan"}


def timeit(fn, repeat: int, warmup: int = 1) -> float:
    """Median seconds of ``fn()`` after a warm-up (sresr.profiling.time_call)."""
    return time_call(fn, "cuda" if torch.cuda.is_available() else "cpu", warmup=warmup, repeats=repeat).median_s


def roofline(size: int, repeat: int, device: str = "cpu") -> float:
    """GFLOP/s of one 64->64 3x3 convolution: the better of NCHW and channels_last."""
    return max(conv_roofline(device, channels_last=cl, size=size, repeats=repeat).gflops for cl in (False, True))


def model_rows(models, size: int, repeat: int, roof: float) -> list[str]:
    rows = ["| model | input | GFLOP | plain NCHW eager (s) | engine (s) | speed-up | plain % of roofline "
            "| ceiling (roofline / plain) | engine GFLOP/s | % of roofline | max diff | optimisations |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for label, name, scale, kwargs in models:
        torch.manual_seed(0)
        loaded = load_model(name, scale=scale, pretrained=False, **kwargs)
        ch = 1 if loaded.colorspace == "y" else 3
        s = size * scale if loaded.spec.input == "upsampled" else size
        x = torch.rand(1, ch, s, s)
        plain = loaded.module.eval()
        up = Upscaler(loaded, device="cpu", tile=0)
        flops = count_flops(plain, x)

        def run_plain():
            with torch.no_grad():
                return plain(x)

        def run_engine():
            xb = x.contiguous(memory_format=torch.channels_last) if up.channels_last else x
            with torch.inference_mode():
                return up.module(xb)

        t_plain = timeit(run_plain, repeat)
        t_engine = timeit(run_engine, repeat)
        diff = float((run_plain() - run_engine()).abs().max())
        gflops = flops / t_engine / 1e9
        share = f"{100 * gflops / roof:.0f}%" if name in SIXTY_FOUR else "-"
        # the speed-up an engine running exactly at the roofline would reach over the plain loop
        plain_gflops = flops / t_plain / 1e9
        plain_share = f"{100 * plain_gflops / roof:.0f}%" if name in SIXTY_FOUR else "-"
        ceiling = f"{roof / plain_gflops:.2f}x" if name in SIXTY_FOUR else "-"
        rows.append(f"| {label} | {s}x{s} | {flops / 1e9:.2f} | {t_plain:.3f} | {t_engine:.3f} | "
                    f"{t_plain / t_engine:.2f}x | {plain_share} | {ceiling} | {gflops:.1f} | {share} | {diff:.1e} | "
                    f"{', '.join(up.report.applied)} |")
        print(rows[-1], flush=True)
    return rows


def tiled_rows(name: str, scale: int, size: int, tiles: list[int], repeat: int) -> list[str]:
    torch.manual_seed(0)
    loaded = load_model(name, scale=scale, pretrained=False)
    x = torch.rand(1, 3, size, size)
    whole = Upscaler(loaded, device="cpu", tile=0)
    t_whole = timeit(lambda: whole.run(x), repeat)
    rows = [f"{name} x{scale}, {size}x{size} input, pad = receptive field ({whole.tile_pad})", "",
            "| tile | tiles | window pixels / image pixels | time (s) | vs untiled |", "|---|---|---|---|---|",
            f"| whole image | 1 | 1.00 | {t_whole:.3f} | 1.00x |"]
    for t in tiles:  # None: the engine's default tile for this model
        up = Upscaler(loaded, device="cpu", tile=t)
        plan = up.plan_for(size, size)
        tt = timeit(lambda: up.run(x), repeat)
        label = f"{up.tile} (default)" if t is None else str(t)
        rows.append(f"| {label} | {len(plan)} | {plan.overhead:.2f} | {tt:.3f} | {tt / t_whole:.2f}x |")
        print(rows[-1], flush=True)
    return rows


_MEM_CHILD = r"""
import resource, sys, time, json, numpy as np, torch


def _status_kb(key):
    # VmHWM/VmRSS belong to this process's own memory map (ru_maxrss is inherited from the parent
    # across fork + exec on Linux, so a big benchmark parent would inflate it)
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


sys.path.insert(0, sys.argv[1])
from sresr.engine import Upscaler, tune_cpu_allocator
from sresr.imaging.io import Image
from sresr.resolve import load_model
tune_cpu_allocator()  # as `sresr upscale` does
torch.manual_seed(0)
name, scale, h, w, tile, repeat = (sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6]),
                                   int(sys.argv[7]))
up = Upscaler(load_model(name, scale=scale, pretrained=False), device="cpu", tile=None if tile < 0 else tile)
# warm, as a folder run is after its first image: one small image first (oneDNN builds its kernels)
up.upscale_image(Image(np.random.default_rng(1).random((320, 320, 3), dtype=np.float32)))
img = Image(np.random.default_rng(0).random((h, w, 3), dtype=np.float32))
base = _status_kb("VmRSS")
times = []
for _ in range(repeat):
    t0 = time.perf_counter()
    out = up.upscale_image(img, depth=8)  # as `sresr upscale` does for an 8-bit output
    times.append(time.perf_counter() - t0)
    canvas = out.pixels.nbytes
    del out
    if len(times) == 1:
        peak = _status_kb("VmHWM")  # the first run's peak: what one image costs
print(json.dumps({"seconds": min(times), "times": times, "peak_kb": peak, "base_kb": base, "canvas_bytes": canvas}))
"""


def size_rows(name: str, scale: int, sizes: list[tuple[int, int]], tile: int | None = None, repeat: int = 3) -> list[str]:
    """tile None: the engine's default tile for the model on CPU. Each size runs in its own process,
    warmed by one small image first; seconds are the best of ``repeat`` runs, peak memory the first's."""
    if tile is None:
        torch.manual_seed(0)
        shown = f"the default tile ({Upscaler(load_model(name, scale=scale, pretrained=False), device='cpu').tile})"
    else:
        shown = f"tile {tile}"
    rows = [f"{name} x{scale}, {shown}, one process per size, warmed by a 320x320 image; best of {repeat} runs", "",
            "| input | MPix | seconds | s / MPix | 8-bit output canvas (GB) | peak RSS (GB) | peak - canvas - before (GB) |",
            "|---|---|---|---|---|---|---|"]
    per_mpix: list[float] = []
    for h, w in sizes:
        proc = subprocess.run([sys.executable, "-c", _MEM_CHILD, str(ROOT / "src"), name, str(scale), str(h), str(w),
                               str(-1 if tile is None else tile), str(repeat)],
                              capture_output=True, text=True, env={**os.environ})
        if proc.returncode != 0:
            rows.append(f"| {w}x{h} | failed: {proc.stderr.strip().splitlines()[-1] if proc.stderr else proc.returncode} |")
            continue
        r = json.loads(proc.stdout.strip().splitlines()[-1])
        mpix = h * w / 1e6
        canvas = r["canvas_bytes"] / 1e9
        peak = r["peak_kb"] / 1e6
        rows.append(f"| {w}x{h} | {mpix:.2f} | {r['seconds']:.2f} | {r['seconds'] / mpix:.3f} | {canvas:.2f} | "
                    f"{peak:.2f} | {peak - canvas - r['base_kb'] / 1e6:.2f} |")
        per_mpix.append(r["seconds"] / mpix)
        print(rows[-1], flush=True)
    if len(per_mpix) > 1:
        spread = max(per_mpix) / min(per_mpix) - 1
        rows += ["", f"Time per input MPix: {min(per_mpix):.3f}-{max(per_mpix):.3f} s, spread {100 * spread:.1f} % "
                     "(largest over smallest)."]
    return rows


def gpu_rows(tiles: list[int], repeat: int) -> list[str]:
    torch.manual_seed(0)
    loaded = load_model("esrgan", scale=4, pretrained=False)
    x = torch.rand(1, 3, 512, 512)
    rows = ["esrgan x4, 512x512 input on " + torch.cuda.get_device_name(0), "",
            "| precision | tile | MPix/s (input) | vs plain fp32 loop |", "|---|---|---|---|"]
    plain = loaded.module.cuda().eval()

    def run_plain():  # Real-ESRGAN style: fp32 NCHW eager, whole image
        with torch.no_grad():
            plain(x.cuda()).cpu()

    t_plain = timeit(run_plain, repeat)
    rows.append(f"| plain fp32 | whole | {x.shape[2] * x.shape[3] / 1e6 / t_plain:.3f} | 1.00x |")
    for precision in ("fp16", "bf16"):
        for t in tiles:
            up = Upscaler(loaded, device="cuda", precision=precision, tile=t, batch=4)
            tt = timeit(lambda: up.run(x), repeat)
            rows.append(f"| {precision} | {t or 'whole'} | {x.shape[2] * x.shape[3] / 1e6 / tt:.3f} | {t_plain / tt:.2f}x |")
            print(rows[-1], flush=True)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "inference.md"))
    ap.add_argument("--quick", action="store_true", help="small sizes, fewer models (minutes, not hours)")
    ap.add_argument("--only", default=None, choices=["models", "tiled", "sizes"],
                    help="run one section alone (written to --out)")
    ap.add_argument("--models", default=None, help="comma-separated labels' model names to include")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--size-model", default="realesrgan-compact",
                    help="model of the time/memory vs image size section (x4)")
    ap.add_argument("--sizes", default=None, help="input sizes for that section, e.g. 1000x1000,3000x4000")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    quick = args.quick
    models = MODELS if not args.models else [m for m in MODELS if m[1] in args.models.split(",")]
    if quick and not args.models:
        models = [m for m in MODELS if m[1] != "esrgan"]
    size = 64 if quick else 128
    repeat = 2 if quick else 5
    load = os.getloadavg() if hasattr(os, "getloadavg") else (0, 0, 0)
    lines = ["# Inference benchmark", "",
             f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}, "
             f"{torch.get_num_threads()} threads, load average at start {load[0]:.1f}/{load[1]:.1f}/{load[2]:.1f}"
             f"{' (shared machine: timings are noisy)' if load[0] > 1 else ''}; "
             f"{'quick run' if quick else 'full run'}; {time.strftime('%Y-%m-%d %H:%M')}", ""]
    sizes = [(500, 500), (1000, 1000)] if quick else [(1000, 1000), (2000, 2000), (3000, 4000), (4000, 4000)]
    if args.sizes:
        sizes = [tuple(int(v) for v in item.split("x")) for item in args.sizes.split(",")]
    tiled_section = ["## Tiled vs untiled (CPU)", ""] + tiled_rows(
        "realesrgan-compact", 4, 256 if quick else 1536, [None, 256] if quick else [None, 512, 960],
        repeat if quick else 1) + [""] if args.only in (None, "tiled") else []
    if args.only == "models":
        roof = roofline(128 if quick else 256, repeat)
        lines += [f"Roofline (64->64 3x3 conv, best of NCHW/channels_last, inference_mode, same run): "
                  f"**{roof:.1f} GFLOP/s** (median of repeats)", "", "## Per model (CPU)", ""]
        lines += model_rows(models, size, repeat, roof) + [""]
        Path(args.out).write_text("\n".join(lines) + "\n")
        print(f"wrote {args.out}")
        return
    if args.only:
        sections = tiled_section if args.only == "tiled" else (
            ["## Time and memory vs image size (CPU)", ""] + size_rows(args.size_model, 4, sizes) + [""])
        Path(args.out).write_text("\n".join(lines + sections) + "\n")
        print(f"wrote {args.out}")
        return
    roof = roofline(128 if quick else 256, repeat)
    lines += [f"Roofline (64->64 3x3 conv, best of NCHW/channels_last, inference_mode, same run): **{roof:.1f} GFLOP/s** (median of repeats)", ""]
    print(lines[-2], flush=True)
    lines += ["## Per model (CPU)", ""] + model_rows(models, size, repeat, roof) + [""]
    lines += tiled_section
    lines += ["## Time and memory vs image size (CPU)", ""]
    lines += size_rows(args.size_model, 4, sizes) + [""]
    if torch.cuda.is_available():
        lines += ["## GPU", ""] + gpu_rows([0, 256, 512], repeat) + [""]
    else:
        lines += ["## GPU", "", "no CUDA device in this run", ""]
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
