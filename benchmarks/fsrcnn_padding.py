"""FSRCNN's transposed-convolution padding: the usual 4 (yjn870/FSRCNN-pytorch) against the padding
that centres the upsampler on the HR grid (`sresr.models.fsrcnn.centered_padding`: 3 at x3 and x4),
each trained from scratch with the same seed, data order and schedule; Set5 PSNR as training goes.

    python benchmarks/fsrcnn_padding.py [--data ../shared/datasets/T91 ../shared/datasets/BSDS200]
        [--scales 3 4] [--iters 20000] [--batch 16] [--patch LR_PX] [--jobs 2] [--out runs/padding]
        > benchmarks/results/fsrcnn-padding.md

`--scales 4 --iters 60000 --batch 32 --patch 16` is the first stage of the bundled x4 chain
(`recipes/chains/fsrcnn-x4.toml`, padding 4) against the same with the centred padding; they end
level.

Each run is `sresr train fsrcnn` in its own process with one torch thread (``--jobs`` at a time);
a run folder that already finished is read, not trained again. About 5 minutes per run here.
"""

from __future__ import annotations

import argparse
import csv
import os
import platform
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from sresr.models.fsrcnn import centered_padding
from sresr.train.config import override, save_toml
from sresr.train.recipes import get_recipe


def config(scale: int, padding: int, iters: int, every: int, batch: int, patch: int):
    return override(get_recipe("fsrcnn", scale), {
        "model_kwargs": {"deconv_padding": padding}, "iters": iters, "seed": 0, "threads": 1,
        "data.train": ["t91", "bsds200"], "data.patch_size": patch * scale, "data.batch_size": batch,
        "data.resize_factors": [], "data.workers": 0, "optim.lr": 1e-3,
        "schedule.name": "cosine", "schedule.eta_min": 1e-6,
        "val.data": "set5", "val.every": every, "checkpoint_every": every, "log_every": 50,
    })


def run(rundir: Path, cfg, data: list[str]) -> list[tuple[int, float]]:
    """(iteration, Set5 PSNR) of a finished run, training it first when needed."""
    metrics = rundir / "metrics.csv"
    if not (rundir / "weights.safetensors").is_file():
        rundir.mkdir(parents=True, exist_ok=True)
        save_toml(cfg, rundir.with_suffix(".toml"))
        cmd = [sys.executable, "-m", "sresr", "train", "fsrcnn", "--config", str(rundir.with_suffix(".toml")),
               "--out", str(rundir), "--quiet"] + [a for d in data for a in ("--data", d)]
        env = {**os.environ, "OMP_NUM_THREADS": "1"}
        subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL)
    with metrics.open() as f:
        return [(int(r["iteration"]), float(r["val_psnr"])) for r in csv.DictReader(f) if r["val_psnr"]]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", nargs="+", default=["../shared/datasets/T91", "../shared/datasets/BSDS200"])
    ap.add_argument("--scales", type=int, nargs="+", default=[3, 4])
    ap.add_argument("--iters", type=int, default=20000)
    ap.add_argument("--every", type=int, default=5000)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--patch", type=int, default=16, help="LR patch side (the HR patch is scale times that)")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--out", type=Path, default=Path("runs/padding"))
    args = ap.parse_args()

    cases = [(s, p) for s in args.scales for p in sorted({4, centered_padding(s)}, reverse=True)]
    with ThreadPoolExecutor(args.jobs) as pool:
        futures = {c: pool.submit(run, args.out / f"x{c[0]}-pad{c[1]}-{args.iters}it-b{args.batch}-p{args.patch}",
                                  config(*c, args.iters, args.every, args.batch, args.patch), args.data)
                   for c in cases}
        curves = {c: f.result() for c, f in futures.items()}

    print("# FSRCNN transposed-conv padding, trained from scratch\n")
    print(f"Command: `python benchmarks/fsrcnn_padding.py --scales {' '.join(map(str, args.scales))} "
          f"--iters {args.iters} --batch {args.batch} --patch {args.patch}` on {platform.machine()}; recipe "
          f"`fsrcnn` with {args.patch} LR px patches in batches of {args.batch}, Adam 1e-3 cosine, no scale "
          "augmentation, seed 0; Set5 PSNR (dB, standard protocol).\n")
    its = sorted({i for c in cases for i, _ in curves[c]})
    print("| scale | padding | offset (HR px) | " + " | ".join(f"{i // 1000}k" for i in its) + " |")
    print("|---" * (3 + len(its)) + "|")
    for s, p in cases:
        offset = abs(p - 4 + (s - 1) / 2)  # kernel centre i*s - p + 4 against i*s + (s-1)/2
        got = dict(curves[(s, p)])
        print(f"| x{s} | {p} | {offset:g} | " + " | ".join(f"{got[i]:.2f}" if i in got else "-" for i in its) + " |")


if __name__ == "__main__":
    main()
