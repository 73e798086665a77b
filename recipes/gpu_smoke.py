"""Every training recipe for a few hundred iterations on one GPU, in bf16 and fp16, one resumed, and
sresr's samples/s against the synthetic step (the network alone, its data already on the GPU).

    python recipes/gpu_smoke.py --data DIR [--out DIR] [--iters 200]    # on a GPU (recipes/gpu_smoke.sh)
    python recipes/gpu_smoke.py --dry-run --out DIR                      # tiny, on the CPU (CI runs this)

Writes OUT/gpu_smoke.md (one row per recipe and precision: iterations, sresr samples/s, synthetic
samples/s, their ratio, final loss, whether the loss stayed finite) and OUT/gpu_smoke.json. The
GAN recipes run with their VGG loss on a VGG19 of random weights made here (torchvision's ImageNet
file cannot be fetched where the GPU is; the throughput is the same); their synthetic step is the
generator's alone, so their ratio is no bound. Exit status 1 when a
recipe fails, the resumed run does not continue from its checkpoint, or a loss is not finite.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import sys
import tempfile
import time
import traceback
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]

# smaller networks of the same architectures for --dry-run (as tests/test_train_recipes.py)
SMALL = {"srresnet": {"blocks": 2}, "srgan": {"blocks": 2}, "edsr": {"blocks": 2}, "esrgan": {"blocks": 1},
         "vdsr": {"depth": 5}}


def _vgg_file(folder: Path) -> Path:
    from sresr.models.vgg import VGG19Features

    torch.manual_seed(0)
    path = folder / "vgg19-random.pth"
    torch.save(VGG19Features().state_dict(), path)
    return path


def _dry_images(folder: Path) -> str:
    """The test images enlarged to 136 px: enough for the GAN recipes' 96 and 128 px patches."""
    from PIL import Image

    out = folder / "images"
    out.mkdir()
    for p in sorted((ROOT / "tests" / "data" / "train" / "hr").glob("*.png"))[:2]:
        Image.open(p).resize((136, 136), Image.BICUBIC).save(out / p.name)
    return str(out)


def _synthetic(cfg, device: torch.device, amp: torch.dtype | None, iters: int) -> float:
    """samples/s of the training step alone: the recipe's network, batch and patch, random data on the device."""
    from sresr.registry import get_spec

    spec = get_spec(cfg.model)
    torch.manual_seed(0)
    net = spec.build(cfg.scale, **dict(cfg.model_kwargs)).to(device).train()
    cl = torch.channels_last if device.type == "cpu" else torch.contiguous_format
    net = net.to(memory_format=cl)
    opt = torch.optim.Adam(net.parameters(), lr=1e-4)
    c = 1 if spec.colorspace == "y" else 3
    hr_side = cfg.data.patch_size
    lr_side = hr_side if spec.input == "upsampled" else hr_side // cfg.scale
    b = cfg.data.batch_size
    x = torch.rand(b, c, lr_side, lr_side, device=device).contiguous(memory_format=cl)
    y = torch.rand(b, c, hr_side, hr_side, device=device).contiguous(memory_format=cl)

    def step() -> None:
        with torch.autocast(device.type, dtype=amp, enabled=amp is not None):
            loss = torch.nn.functional.l1_loss(net(x).float(), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    for _ in range(3):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    t = time.perf_counter()
    for _ in range(iters):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return iters * b / (time.perf_counter() - t)


def _config(name: str, data: str, iters: int, precision: str, device: str, dry: bool, vgg: Path):
    from sresr.train.config import override
    from sresr.train.recipes import get_recipe

    cfg = get_recipe(name)
    model = cfg.model or "fsrcnn"
    changes = {"model": model, "data.train": [data], "iters": iters, "val.every": 0, "val.data": "",
               "checkpoint_every": 0, "log_every": max(1, iters // 4), "init_weights": "", "device": device,
               "precision": precision, "loss.vgg_weights": str(vgg)}
    if cfg.trainable == ("@last",):
        changes["trainable"] = ["@last"]
    if dry:
        changes.update({"data.batch_size": 2, "data.patch_size": cfg.data.patch_size if cfg.gan.weight else 24,
                        "model_kwargs": SMALL.get(model, {}), "threads": 1})
        if cfg.data.patch_size % cfg.scale and not cfg.gan.weight:
            changes["data.patch_size"] = 24
    return override(cfg, changes)


def _samples_per_second(rundir: Path, batch: int) -> float:
    import csv

    with open(rundir / "metrics.csv", newline="") as fh:
        rows = [r for r in csv.DictReader(fh) if r.get("loss")]
    if len(rows) < 2:
        return float("nan")
    (a, b) = rows[0], rows[-1]
    dt = float(b["seconds"]) - float(a["seconds"])
    return (int(b["iteration"]) - int(a["iteration"])) * batch / dt if dt > 0 else float("nan")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(ROOT / ".data" / "train291-webp"), help="training images (a folder)")
    ap.add_argument("--out", type=Path, default=Path(tempfile.mkdtemp(prefix="gpu-smoke-")))
    ap.add_argument("--iters", type=int, default=200)
    ap.add_argument("--precisions", nargs="+", default=["bf16", "fp16"])
    ap.add_argument("--recipes", nargs="*", default=None)
    ap.add_argument("--dry-run", action="store_true", help="tiny sizes on the CPU, fp32 (what CI runs)")
    a = ap.parse_args()
    from sresr.train.loop import train
    from sresr.train.recipes import RECIPES

    dry = a.dry_run
    device = "cpu" if dry else "cuda"
    if not dry and not torch.cuda.is_available():
        print("no CUDA device: use --dry-run", file=sys.stderr)
        return 2
    work = Path(tempfile.mkdtemp(prefix="gpu-smoke-runs-"))
    data = _dry_images(work) if dry else a.data
    precisions = ["fp32"] if dry else a.precisions
    iters = 4 if dry else a.iters
    names = a.recipes or [n for n in RECIPES if n != "generic"]
    a.out.mkdir(parents=True, exist_ok=True)
    vgg = _vgg_file(work)
    rows, failed = [], 0
    for name in names:
        for precision in precisions:
            cfg = _config(name, data, iters if not name.startswith("esrgan") else max(4, iters // 4), precision, device,
                          dry, vgg)
            run = work / f"{name}-{precision}"
            row = {"recipe": name, "precision": precision, "batch": cfg.data.batch_size, "patch": cfg.data.patch_size}
            try:
                t0 = time.perf_counter()
                res = train(cfg, run, progress=False, log=lambda m: None)
                row["seconds"] = round(time.perf_counter() - t0, 1)
                row["iterations"] = res.iterations
                row["samples_per_s"] = _samples_per_second(run, cfg.data.batch_size)
                amp = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)
                row["synthetic_per_s"] = _synthetic(cfg, torch.device(device), amp, 5 if dry else 30)
                row["ratio"] = row["samples_per_s"] / row["synthetic_per_s"]
                import csv

                with open(run / "metrics.csv", newline="") as fh:
                    losses = [float(r["loss"]) for r in csv.DictReader(fh) if r.get("loss")]
                row["final_loss"] = losses[-1] if losses else float("nan")
                row["ok"] = bool(losses) and all(math.isfinite(v) for v in losses)
            except Exception as exc:  # noqa: BLE001 - the table says which recipe broke and why
                row["ok"] = False
                row["error"] = f"{type(exc).__name__}: {exc}".splitlines()[0][:300]
                traceback.print_exc()
            failed += not row["ok"]
            rows.append(row)
            print(json.dumps(row), flush=True)
    # one run resumed from its checkpoint: it must continue where the checkpoint left off
    resumed = {"ok": False}
    try:
        from sresr.train.config import override

        cfg = _config(names[0], data, 2 * iters, precisions[0], device, dry, vgg)
        run = work / "resume"
        train(override(cfg, {"checkpoint_every": iters, "iters": iters}), run, progress=False, log=lambda m: None)
        lines: list[str] = []
        res = train(cfg, run, resume=True, progress=False, log=lines.append)
        resumed = {"recipe": names[0], "from": iters, "to": res.iterations,
                   "ok": res.iterations == 2 * iters and any(f"at iteration {iters}" in ln for ln in lines)}
    except Exception as exc:  # noqa: BLE001
        resumed["error"] = f"{type(exc).__name__}: {exc}".splitlines()[0][:300]
    failed += not resumed["ok"]
    card = torch.cuda.get_device_name() if device == "cuda" else platform.processor() or platform.machine()
    head = (f"# sresr training smoke test: {card}, torch {torch.__version__}, {time.strftime('%Y-%m-%d')}, "
            f"{'dry run (CPU, tiny)' if dry else f'{iters} iterations per recipe'}\n\n"
            "| recipe | precision | batch | HR patch | iterations | sresr samples/s | synthetic samples/s | "
            "ratio | final loss | ok |\n|---|---|---|---|---|---|---|---|---|---|\n")
    body = "".join(
        f"| {r['recipe']} | {r['precision']} | {r['batch']} | {r['patch']} | {r.get('iterations', '-')} | "
        f"{r.get('samples_per_s', float('nan')):.0f} | {r.get('synthetic_per_s', float('nan')):.0f} | "
        f"{r.get('ratio', float('nan')):.2f} | {r.get('final_loss', float('nan')):.4g} | "
        f"{'yes' if r['ok'] else 'NO: ' + r.get('error', 'loss not finite')} |\n" for r in rows)
    tail = f"\nresumed: {json.dumps(resumed)}\n"
    (a.out / "gpu_smoke.md").write_text(head + body + tail)
    (a.out / "gpu_smoke.json").write_text(json.dumps({"rows": rows, "resumed": resumed}, indent=1))
    print(head + body + tail)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
