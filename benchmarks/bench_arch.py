"""CPU speed, tiled-vs-whole difference and half-precision difference per architecture family.

    python benchmarks/bench_arch.py [--size 64] [--repeat 3] [--only rcan,span,dat] [--out FILE.md]

Shared by the families added in issue 26 (RCAN, SPAN, DAT; SwinIR, HAT): each adds its rows to
``SPEED`` (the paper configuration, random weights: speed does not depend on them) and ``SMALL``
(a reduced configuration whose receptive field fits a small image, for the tiling and precision
measurements), next to CNN baselines. Three tables:

1. speed: the network alone (``torch.inference_mode``, after ``sresr.optimize``), fp32, one
   ``size x size`` input (rounded up to the size multiple), median of ``--repeat`` runs, as input
   megapixels per second and seconds per image;
2. tiling: max |tiled - whole| on a Set5 crop at the default pad (the geometry hook's), with tile 32
   and with the CPU default tile (``sresr.tiling.default_tile``),
   random weights perturbed away from their init (they may exaggerate or understate what trained
   weights give: a measurement, not a bound);
3. precision on CPU: max |bf16 - fp32| and |fp16 - fp32| relative to the fp32 output's range,
   and whether anything overflowed (fp16 overflow with *trained* weights needs the release files
   and, for speed, a GPU).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from sresr.optimize import optimize_for_inference  # noqa: E402
from sresr.registry import get_spec  # noqa: E402
from sresr.tiling import plan_tiles, run_tiled  # noqa: E402

# (label, model, scale, factory kwargs): the papers' configurations
SPEED: list[tuple[str, str, int, dict]] = [
    ("EDSR-baseline x4", "edsr", 4, {}),
    ("RRDBNet (ESRGAN) x4", "esrgan", 4, {}),
    ("RCAN x4", "rcan", 4, {}),
    ("SPAN x4 (48 ch)", "span", 4, {}),
    ("DAT x4", "dat", 4, {}),
    ("DAT-S x4", "dat", 4, {"split_size": (8, 16), "expansion": 2.0}),
    ("DAT-light x4", "dat", 4, {"embed_dim": 60, "depths": (18,), "num_heads": (6,), "expansion": 2.0,
                                "resi_connection": "3conv", "upsampler": "pixelshuffledirect"}),
    ("SwinIR-M x4 (classical)", "swinir", 4, {}),
    ("SwinIR-S x4 (lightweight)", "swinir", 4, {"variant": "lightweight"}),
    ("SwinIR-L x4 (real-world)", "swinir", 4, {"variant": "real-large"}),
    ("HAT x4", "hat", 4, {}),
    ("HAT-S x4", "hat", 4, {"variant": "hat-s"}),
]

# (label, model, scale, reduced factory kwargs) for the tiling and precision tables
SMALL: list[tuple[str, str, int, dict]] = [
    ("EDSR 4 blocks", "edsr", 2, {"blocks": 4, "features": 32}),
    ("RCAN 2x4 blocks", "rcan", 2, {"groups": 2, "blocks": 4, "features": 32, "reduction": 8}),
    ("SPAN 16 ch", "span", 2, {"features": 16}),
    ("DAT 2x2 blocks, 4x8 windows", "dat", 2, {"embed_dim": 32, "depths": (2, 2), "num_heads": (2, 2),
                                               "split_size": (4, 8)}),
    ("DAT 2x2 blocks, 8x32 windows", "dat", 2, {"embed_dim": 32, "depths": (2, 2), "num_heads": (2, 2)}),
    ("SwinIR 2x2 blocks, window 8", "swinir", 2, {"embed_dim": 24, "depths": (2, 2), "num_heads": (2, 2),
                                                  "num_feat": 16}),
    ("HAT 1x2 blocks, window 8", "hat", 2, {"embed_dim": 24, "depths": (2,), "num_heads": (2,), "window_size": 8,
                                            "squeeze_factor": 6, "num_feat": 16}),
]


def _photo(size: int) -> torch.Tensor:
    import numpy as np
    from PIL import Image

    path = ROOT / "src" / "sresr" / "data" / "set5" / ("butterfly.png" if size <= 240 else "baby.png")
    img = np.array(Image.open(path).convert("RGB"))
    if img.shape[0] < size + 8:
        img = np.array(Image.open(path).convert("RGB").resize((size + 8, size + 8)))
    return torch.from_numpy(img[8 : 8 + size, 8 : 8 + size]).permute(2, 0, 1)[None].float().div(255).contiguous()


def _build(model: str, scale: int, kwargs: dict, perturb: float = 0.0) -> torch.nn.Module:
    torch.manual_seed(0)
    m = get_spec(model).build(scale, **kwargs).eval()
    if perturb:
        with torch.no_grad():
            for p in m.parameters():
                p.add_(torch.randn_like(p) * perturb)
    return m


def speed(size: int, repeat: int, only: set[str] | None) -> list[str]:
    rows = ["| network | params | input | optimisations | s / image | input MPix/s |", "|---|---|---|---|---|---|"]
    for label, model, scale, kwargs in SPEED:
        if only and model not in only:
            continue
        spec = get_spec(model)
        geo = spec.geometry_for(scale, kwargs)
        side = -(-size // geo.size_multiple) * geo.size_multiple
        m = _build(model, scale, kwargs)
        n = sum(p.numel() for p in m.parameters())
        x = torch.rand(1, 3, side, side)
        opt, report, cl = optimize_for_inference(m, x[..., : min(side, 32), : min(side, 32)])
        if cl:
            x = x.contiguous(memory_format=torch.channels_last)
        times = []
        with torch.inference_mode():
            opt(x)  # warm-up
            for _ in range(repeat):
                t0 = time.perf_counter()
                opt(x)
                times.append(time.perf_counter() - t0)
        t = statistics.median(times)
        rows.append(f"| {label} | {n / 1e6:.2f}M | {side}x{side} | {', '.join(report.applied) or '-'} | "
                    f"{t:.3f} | {side * side / 1e6 / t:.4f} |")
        print(rows[-1], flush=True)
    return rows


def tiling(only: set[str] | None, size: int = 128) -> list[str]:
    rows = ["| network (reduced, random weights) | pad | multiple | exact | tile | max abs tiled - whole | in 8-bit levels |",
            "|---|---|---|---|---|---|---|"]
    from sresr.tiling import default_tile

    for label, model, scale, kwargs in SMALL:
        if only and model not in only:
            continue
        geo = get_spec(model).geometry_for(scale, kwargs)
        m = _build(model, scale, kwargs, perturb=0.02)
        for tile in (32, default_tile(geo.receptive_field, "cpu")):  # a small tile, and the CPU default
            side = max(size, -(-(2 * tile + 2 * geo.receptive_field) // geo.size_multiple) * geo.size_multiple)
            x = _photo(side)
            plan = plan_tiles(side, side, tile, geo.receptive_field, geo.size_multiple)
            with torch.no_grad():
                whole = m(x)
                out = run_tiled(m, x, plan, scale)
            d = float((out - whole).abs().max())
            rows.append(f"| {label} | {plan.pad} | {geo.size_multiple} | {geo.exact} | {tile} ({len(plan)} tiles of "
                        f"{side}x{side}) | {d:.2e} | {d * 255:.4f} |")
            print(rows[-1], flush=True)
            if hasattr(m, "forward_tiles"):  # the network's own exact tiling, which the engine uses
                with torch.no_grad():
                    d = float((m.forward_tiles(x, tile) - whole).abs().max())
                rows.append(f"| {label}, engine (`forward_tiles`) | {m.tile_radius} | {geo.size_multiple} | True | "
                            f"{tile} | {d:.2e} | {d * 255:.4f} |")
                print(rows[-1], flush=True)
    return rows


def precision(only: set[str] | None) -> list[str]:
    rows = ["| network (reduced, random weights) | fp32 output range | bf16: max diff / range | fp16: max diff / range | fp16 finite |",
            "|---|---|---|---|---|"]
    for label, model, scale, kwargs in SMALL:
        if only and model not in only:
            continue
        m = _build(model, scale, kwargs, perturb=0.02)
        geo = get_spec(model).geometry_for(scale, kwargs)
        side = max(32, geo.size_multiple)
        x = _photo(side)
        with torch.no_grad():
            ref = m(x)
            rng = float(ref.abs().max())
            out = {}
            for dt in (torch.bfloat16, torch.float16):
                try:
                    y = _build(model, scale, kwargs, perturb=0.02).to(dt)(x.to(dt)).float()
                    out[dt] = (float((y - ref).abs().max()) / max(rng, 1e-12), bool(torch.isfinite(y).all()))
                except RuntimeError as exc:  # an op without a CPU half kernel
                    out[dt] = (float("nan"), f"n/a ({str(exc)[:40]})")
        rows.append(f"| {label} | {rng:.3g} | {out[torch.bfloat16][0]:.2e} | {out[torch.float16][0]:.2e} | "
                    f"{out[torch.float16][1]} |")
        print(rows[-1], flush=True)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--only", default="", help="comma-separated model names")
    ap.add_argument("--skip", default="", help="comma-separated sections to skip: speed,tiling,precision")
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    only = {s for s in args.only.split(",") if s} or None
    skip = {s for s in args.skip.split(",") if s}
    head = (f"CPU: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, "
            f"{torch.get_num_threads()} threads, load average {os.getloadavg()[0]:.1f}; "
            f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    print(head, flush=True)
    parts = [f"# Architecture families\n\n{head}\n"]
    if "speed" not in skip:
        parts += ["## Speed (fp32, network alone)\n", *speed(args.size, args.repeat, only), ""]
    if "tiling" not in skip:
        parts += ["## Tiled vs whole at the default pad\n", *tiling(only), ""]
    if "precision" not in skip:
        parts += ["## Half precision on CPU\n", *precision(only), ""]
    if args.out:
        args.out.write_text("\n".join(parts) + "\n")


if __name__ == "__main__":
    main()
