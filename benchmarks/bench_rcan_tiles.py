"""RCAN's exact tiling (``RCAN.forward_tiles``, what the engine runs) against one whole-image pass.

    python benchmarks/bench_rcan_tiles.py [--size 384] [--scale 4] [--tile 256] [--device cpu]

The paper's network (10 groups x 20 blocks, 64 features) with random initial weights (the same
work as the published ones), on a ``--size`` square crop of a Set5 image. Three runs through
:class:`sresr.engine.Upscaler`: ``--tile 0`` (one whole-image pass), the engine's default
(the convolutions tile by tile, the channel attention over the whole feature map), and, for
comparison, plain windows of the same tile with the convolutions' receptive field as the pad (what
a tiler that does not know about the global pooling does: not exact). Prints a Markdown table with
seconds, peak memory above the start (resident set on the CPU, allocated memory on CUDA: see
:class:`sresr.profiling.PeakMemory`) and the max difference from the whole-image output.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=384)
    ap.add_argument("--scale", type=int, default=4)
    ap.add_argument("--tile", type=int, default=256)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--groups", type=int, default=10, help="reduced networks for a quick check (paper: 10)")
    ap.add_argument("--blocks", type=int, default=20, help="(paper: 20)")
    args = ap.parse_args()
    import numpy as np
    import torch
    from PIL import Image as PILImage

    from sresr.engine import Upscaler
    from sresr.profiling import PeakMemory
    from sresr.resolve import load_model
    from sresr.tiling import plan_tiles, run_tiled

    torch.manual_seed(0)
    loaded = load_model("rcan", scale=args.scale, pretrained=False, groups=args.groups, blocks=args.blocks)
    img = PILImage.open(ROOT / "src" / "sresr" / "data" / "set5" / "baby.png").convert("RGB")
    img = img.resize((max(img.width, args.size), max(img.height, args.size)), PILImage.BICUBIC)
    x = torch.from_numpy(np.array(img)[: args.size, : args.size]).permute(2, 0, 1)[None].float().div(255)
    rf = loaded.geometry.receptive_field

    class Windows(torch.nn.Module):  # the network without its own tiling: cut into plain windows
        def __init__(self, inner: torch.nn.Module):
            super().__init__()
            self.inner = inner

        def forward(self, t: torch.Tensor) -> torch.Tensor:
            return self.inner(t)

    rows = []
    whole = None
    for name, up in (
        ("one whole-image pass (`--tile 0`)", Upscaler(loaded, device=args.device, tile=0)),
        (f"engine (`forward_tiles`), tile {args.tile}", Upscaler(loaded, device=args.device, tile=args.tile)),
    ):
        up.run(x[..., :32, :32])  # warm-up
        with PeakMemory(up.device) as peak:
            t0 = time.perf_counter()
            out = up.run(x)
            sec = time.perf_counter() - t0
        whole = out if whole is None else whole
        rows.append((name, sec, peak.peak_mb, float((out - whole).abs().max()) * 255))
    plan = plan_tiles(args.size, args.size, args.tile, rf)
    windows = Windows(loaded.module).eval()
    with PeakMemory("cpu") as peak, torch.inference_mode():
        t0 = time.perf_counter()
        out = run_tiled(windows, x, plan, args.scale).clamp_(0, 1)
        sec = time.perf_counter() - t0
    rows.append((f"plain windows: tile {args.tile}, pad {rf} ({len(plan)} windows of {plan.window[0]}x{plan.window[1]})",
                 sec, peak.peak_mb, float((out - whole).abs().max()) * 255))
    dev = torch.cuda.get_device_name() if str(args.device).startswith("cuda") else platform.machine()
    print(f"`python benchmarks/bench_rcan_tiles.py --size {args.size} --scale {args.scale} --tile {args.tile}"
          f"{'' if args.device == 'cpu' else ' --device ' + args.device}"
          f"{'' if (args.groups, args.blocks) == (10, 20) else f' --groups {args.groups} --blocks {args.blocks}'}` "
          f"({dev}, {os.cpu_count()} CPUs, torch {torch.__version__}, {torch.get_num_threads()} threads; "
          f"{time.strftime('%Y-%m-%d %H:%M')}).\n")
    print(f"RCAN x{args.scale}, {args.groups} groups x {args.blocks} blocks, 64 features (random weights), "
          f"{args.size}x{args.size} -> {args.size * args.scale}x{args.size * args.scale}\n")
    print("| run | seconds | peak memory (MiB) | max diff from whole (8-bit levels) |")
    print("|---|---|---|---|")
    for name, sec, mb, d in rows:
        print(f"| {name} | {sec:.1f} | {mb:.0f} | {d:.4f} |")


if __name__ == "__main__":
    main()
