"""Training throughput: `sresr.train` vs a plain PyTorch loop of the same model (what the
papers' reference scripts do: random crops with numpy, no prefetching), samples per second.

    python benchmarks/bench_train.py [--model fsrcnn] [--scale 2] [--iters 200] [--batch 32]
        [--patch 40] [--data FOLDER] [--threads 1]

Both loops train the same network from the same initialisation on the same prepared images; the
plain loop crops on the fly in the main process. The GPU utilisation line is printed when CUDA
is used (torch.cuda.utilization needs pynvml).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from sresr.registry import get_spec
from sresr.train.config import override
from sresr.train.data import load_pairs, resolve_sources
from sresr.train.loop import train
from sresr.train.recipes import get_recipe, recipe_for_model


def plain_loop(model: str, scale: int, pairs, iters: int, batch: int, patch: int, device: str) -> float:
    spec = get_spec(model)
    torch.manual_seed(0)
    net = spec.build(scale).to(device).train()
    opt = torch.optim.Adam(net.parameters(), lr=1e-4)
    rng = np.random.default_rng(0)
    imgs = pairs[scale]
    upsampled = spec.input == "upsampled"
    p = patch if upsampled else patch // scale

    def batch_of() -> tuple[torch.Tensor, torch.Tensor]:
        xs, ys = [], []
        for _ in range(batch):
            im = imgs[rng.integers(len(imgs))]
            h, w = im.inp.shape[-2:]
            y, x = rng.integers(h - p + 1), rng.integers(w - p + 1)
            xs.append(im.inp[:, y:y + p, x:x + p])
            k = 1 if upsampled else scale
            ys.append(im.hr[:, y * k:(y + p) * k, x * k:(x + p) * k])
        conv = lambda a: torch.from_numpy(np.stack(a)).float() / (255.0 if a[0].dtype == np.uint8 else 1.0)  # noqa
        return conv(xs), conv(ys)

    for _ in range(5):  # warm-up
        x, y = batch_of()
        loss = torch.nn.functional.mse_loss(net(x.to(device)), y.to(device))
        opt.zero_grad()
        loss.backward()
        opt.step()
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    t = time.perf_counter()
    for _ in range(iters):
        x, y = batch_of()
        loss = torch.nn.functional.mse_loss(net(x.to(device)), y.to(device))
        opt.zero_grad()
        loss.backward()
        opt.step()
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return iters * batch / (time.perf_counter() - t)


def sresr_loop(model: str, scale: int, data: str, iters: int, batch: int, patch: int, device: str,
               threads: int) -> float:
    cfg = get_recipe(recipe_for_model(model), scale, model=model)
    cfg = override(cfg, {"data.train": [data], "iters": iters + 5, "data.batch_size": batch, "data.patch_size": patch,
                         "val.every": 0, "val.data": "", "checkpoint_every": 0, "device": device,
                         "threads": threads, "log_every": 5})
    with tempfile.TemporaryDirectory() as d:
        train(cfg, Path(d) / "run", progress=False, log=lambda m: None)
        import csv

        with open(Path(d) / "run" / "metrics.csv", newline="") as fh:
            rows = list(csv.DictReader(fh))
    # seconds column is cumulative training time: the first row (iteration 5) ends the warm-up; the
    # loss is read (a device sync) every 5 iterations, as a run logging often would
    t0 = float(rows[0]["seconds"])
    t1 = float(rows[-1]["seconds"])
    return iters * batch / (t1 - t0)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="fsrcnn")
    ap.add_argument("--scale", type=int, default=2)
    ap.add_argument("--iters", type=int, default=200)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--patch", type=int, default=40)
    ap.add_argument("--data", default=str(Path(__file__).resolve().parents[1] / "tests" / "data" / "train" / "hr"))
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    spec = get_spec(a.model)
    pairs = load_pairs(resolve_sources([a.data]), (a.scale,), spec.colorspace, spec.input == "upsampled", a.patch)
    plain = plain_loop(a.model, a.scale, pairs, a.iters, a.batch, a.patch, a.device)
    ours = sresr_loop(a.model, a.scale, a.data, a.iters, a.batch, a.patch, a.device, a.threads)
    print(f"{a.model} x{a.scale}, batch {a.batch}, HR patch {a.patch}, {a.device}, {a.threads} thread(s), "
          f"torch {torch.__version__}")
    print(f"plain PyTorch loop : {plain:9.1f} samples/s")
    print(f"sresr train        : {ours:9.1f} samples/s  ({ours / plain:.2f}x; includes EMA/augmentation/"
          f"metrics logging)")
    if a.device.startswith("cuda"):
        try:
            print(f"GPU utilisation now: {torch.cuda.utilization()} %")
        except Exception as exc:  # pynvml missing
            print(f"GPU utilisation unavailable: {exc}")


if __name__ == "__main__":
    main()
