"""The prepared inference check of a lent GPU (issue: GPU-first inference). One command, under
6 minutes on one H100/H200, from the repository root:

    python benchmarks/gpu_check.py --out DIR          # on the GPU machine ($OUT there)
    python benchmarks/gpu_check.py --dry-run --out DIR  # tiny sizes on the CPU (CI runs this)

It writes DIR/gpu_check.md (and gpu_check.json) with:

1. tests (run last, in the time ``--budget`` leaves, never less than a minute): the suite on this
   machine (``pytest -n 12`` when pytest-xdist is there), passed/failed and the failures' names,
   the log in DIR/gpu_check_tests.log (the dry run takes tests/test_devices.py only);
2. the side-by-side inference table, same run, same card, one 1024x1024 input (LR MPix/s, from a
   float32 RGB array in host memory to uint8 pixels in host memory): the plain Real-ESRGAN loop
   (the network in fp16 on the whole image, output copied back, clamped and rounded on the host),
   the network alone (its input already on the device, channels_last, sresr's precision, no
   copies) and sresr's Upscaler with its defaults, with the issue's targets (compact >= 70 % of
   the network alone, ESRGAN >= 2.5x the plain loop);
3. peak device memory of realesrgan-compact x4 on 1000x750, 2000x1500 and 4000x3000 inputs, with
   a fixed 512 px tile and with the default tile (bounded by the tile or the free memory, not the image);
4. ``sresr upscale`` end to end on a folder of photo-like PNGs (realesrgan-compact and ESRGAN,
   random weights written as a weights file), input MPix/s (over the whole process, and without
   its start-up, measured on a 16 px image) and GPU utilisation sampled by nvidia-smi every
   100 ms (mean over the run, and over the run after the first busy sample);
5. tiled == whole image in fp32 on the device (max abs difference);
6. the architecture families (ESRGAN, SwinIR, HAT, RCAN, SPAN, DAT) at x4, the network alone in
   fp32, bf16 and fp16 on a 256x256 input: seconds, MPix/s, finite output, difference to fp32;
7. video: ``benchmarks/bench_video.py --device cuda`` (1080p -> 4K, 24 frames; and 640x360 -> 1280x720, 48
   frames, where several frames share a forward pass), when PyAV is there.

The report files are written again after every step, so a run stopped from outside still brings
back what it measured. The models have random weights (no network where the GPU is): the speed is the same as trained ones.
Exit status 1 when a test fails or a step crashes (the targets are reported, not enforced).
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _ensure_sresr() -> None:
    """On the GPU machine sresr is not installed: install it alone (its dependencies are there)
    into a temporary folder, so its entry points register, and run again with it on the path."""
    try:
        import importlib.metadata as md

        md.distribution("sresr")
        return
    except Exception:
        pass
    site = Path(tempfile.gettempdir()) / "sresr-gpu-check-site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "--target",
                    str(site), str(ROOT)], check=True)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep))
    os.execve(sys.executable, [sys.executable, *sys.argv], env)


def _sync(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()


def _median_seconds(fn, device: str, rep: int) -> float:
    fn()
    _sync(device)
    times = []
    for _ in range(rep):
        t = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - t)
    return sorted(times)[len(times) // 2]


def _photo(h: int, w: int, seed: int):
    """A photo-like float32 RGB array: smooth low-pass noise with a few sharp edges."""
    import numpy as np
    import torch

    rng = np.random.default_rng(seed)
    base = torch.from_numpy(rng.random((1, 3, h // 8 + 2, w // 8 + 2), dtype=np.float32))
    img = torch.nn.functional.interpolate(base, size=(h, w), mode="bicubic", align_corners=False)[0]
    img[:, h // 3 : h // 3 + max(1, h // 50)] = 0.95  # an edge the tiles must not seam
    return img.clamp(0, 1).permute(1, 2, 0).contiguous().numpy()


def _model(name: str, scale: int, dry: bool):
    from sresr.resolve import load_model

    kwargs = {"esrgan": {"blocks": 2}, "srresnet": {"blocks": 2}, "edsr": {"blocks": 2}}.get(name, {}) if dry else {}
    import torch

    torch.manual_seed(0)
    return load_model(name, scale=scale, pretrained=False, **kwargs)


# -- 1. tests ---------------------------------------------------------------------------------------
def check_tests(dry: bool, out: Path, timeout: float) -> dict:
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-o", "addopts="]
    if dry:
        cmd += ["tests/test_devices.py"]
    else:
        try:
            import xdist  # noqa: F401

            cmd += ["-n", "12"]
        except ImportError:
            pass
        cmd += ["tests"]
    t0 = time.perf_counter()
    # its own process group, so that a timeout stops the xdist workers too (they hold the GPU)
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=dict(os.environ, PYTHONUNBUFFERED="1"), start_new_session=True)
    try:
        log, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, 9)
        log, _ = proc.communicate()
        log += f"\n[gpu_check: the tests were stopped after {timeout} s]\n"
    (out / "gpu_check_tests.log").write_text(log[-400_000:])
    summary = [ln for ln in log.splitlines() if " passed" in ln or " failed" in ln or " error" in ln]
    failures = sorted({ln.split(" ")[1] for ln in log.splitlines() if ln.startswith(("FAILED ", "ERROR "))})
    return {"command": " ".join(cmd[1:]), "returncode": proc.returncode, "summary": summary[-1] if summary else "",
            "failures": failures, "seconds": round(time.perf_counter() - t0, 1)}


# -- 2. side by side --------------------------------------------------------------------------------
def _plain_loop(module, img, device: str, half: bool):
    """Real-ESRGAN's RealESRGANer, whole image: .half() model and input, output copied to the host,
    clamped and rounded there."""
    import numpy as np
    import torch

    m = module.to(device).eval()
    if half:
        m = m.half()

    def run():
        x = torch.from_numpy(img).permute(2, 0, 1)[None].to(device)
        if half:
            x = x.half()
        with torch.no_grad():
            y = m(x)
        o = y.data.squeeze().float().cpu().clamp_(0, 1).numpy()
        return (np.transpose(o, (1, 2, 0)) * 255.0).round().astype(np.uint8)

    return run


def _network_alone(up, img, device: str):
    import torch

    m = up.module
    x = torch.from_numpy(img).permute(2, 0, 1)[None].to(device, up.dtype)
    if up.in_channels == 1:
        x = x[:, :1]
    if up.channels_last:
        x = x.contiguous(memory_format=torch.channels_last)

    def run():
        with torch.inference_mode():
            m(x)

    return run


def check_side_by_side(dry: bool, device: str, rep: int, size: tuple[int, int]) -> list[dict]:
    import torch

    from sresr.engine import Upscaler
    from sresr.imaging.io import Image

    h, w = size
    img = _photo(h, w, 0)
    mpix = h * w / 1e6
    rows = []
    for name, scale in (("realesrgan-compact", 4), ("esrgan", 4), ("srresnet", 4), ("edsr", 4), ("fsrcnn", 2)):
        loaded = _model(name, scale, dry)
        row: dict = {"model": name, "scale": scale}
        try:
            up = Upscaler(loaded, device=device)
            row["precision"] = up.precision
            if loaded.colorspace == "rgb":
                row["plain"] = mpix / _median_seconds(_plain_loop(copy.deepcopy(loaded.module), img, device,
                                                                  device.startswith("cuda")), device, rep)
            row["network"] = mpix / _median_seconds(_network_alone(up, img, device), device, rep)
            image = Image(pixels=img.copy())
            row["sresr"] = mpix / _median_seconds(lambda: up.upscale_image(image, depth=8), device, rep)
            row["plan"] = up.describe().split(", ", 1)[1]
            row["tiles"] = len(up.plan_for(h, w).tiles)
            row["of_network"] = row["sresr"] / row["network"]
            if "plain" in row:
                row["x_plain"] = row["sresr"] / row["plain"]
        except Exception as exc:  # noqa: BLE001 - the table says which model broke and why
            row["error"] = f"{type(exc).__name__}: {exc}".splitlines()[0][:300]
        rows.append(row)
        print(json.dumps(row), flush=True)
        del loaded
        if device.startswith("cuda"):
            torch.cuda.empty_cache()
    return rows


# -- 3. memory ----------------------------------------------------------------------------------------
def check_memory(dry: bool, device: str) -> list[dict]:
    import torch

    from sresr.engine import Upscaler
    from sresr.imaging.io import Image

    loaded = _model("realesrgan-compact", 4, dry)
    sizes = [(75, 100), (150, 200)] if dry else [(750, 1000), (1500, 2000), (3000, 4000)]
    rows = []
    for tile in (512, None):
        up = Upscaler(loaded, device=device, tile=tile)
        up.upscale_image(Image(pixels=_photo(32, 32, 0)), depth=8)  # warm-up: the footprint probe resets the peak
        for h, w in sizes:
            img = _photo(h, w, 1)
            if device.startswith("cuda"):
                torch.cuda.synchronize()
                torch.cuda.empty_cache()
                torch.cuda.reset_peak_memory_stats()
                base = torch.cuda.memory_allocated()
            t = time.perf_counter()
            up.upscale_image(Image(pixels=img), depth=8)
            _sync(device)
            row = {"tile": "default" if tile is None else tile, "input": f"{w}x{h}",
                   "tiles": len(up.plan_for(h, w).tiles), "seconds": round(time.perf_counter() - t, 3),
                   "peak_mib": round((torch.cuda.max_memory_allocated() - base) / 2**20, 1)
                   if device.startswith("cuda") else None}
            rows.append(row)
            print(json.dumps(row), flush=True)
    return rows


# -- 4. sresr upscale end to end --------------------------------------------------------------------
class _Utilisation:
    """GPU utilisation (%) sampled by nvidia-smi every 100 ms while the block runs."""

    def __init__(self) -> None:
        self.samples: list[int] = []
        self.proc = None

    def __enter__(self) -> "_Utilisation":
        smi = shutil.which("nvidia-smi")
        if smi:
            self.proc = subprocess.Popen([smi, "--query-gpu=utilization.gpu", "--format=csv,noheader,nounits",
                                          "-lms", "100", "-i", "0"], stdout=subprocess.PIPE, text=True)
            threading.Thread(target=self._read, daemon=True).start()
        return self

    def _read(self) -> None:
        for line in self.proc.stdout:  # type: ignore[union-attr]
            if line.strip().isdigit():
                self.samples.append(int(line.strip()))

    def __exit__(self, *exc) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(timeout=5)

    def summary(self) -> dict:
        if not self.samples:
            return {"gpu_busy_mean": None, "gpu_busy_after_start": None}
        first = next((i for i, v in enumerate(self.samples) if v > 0), len(self.samples))
        steady = self.samples[first:] or [0]
        return {"gpu_busy_mean": round(sum(self.samples) / len(self.samples), 1),
                "gpu_busy_after_start": round(sum(steady) / len(steady), 1), "samples": len(self.samples)}


def check_upscale(dry: bool, device: str, work: Path) -> list[dict]:
    from PIL import Image as PILImage

    from sresr.weights import write_weights

    n, (h, w) = (2, (40, 48)) if dry else (12, (900, 1200))
    photos = work / "photos"
    photos.mkdir()
    import numpy as np

    for i in range(n):
        pixels = (_photo(h, w, 10 + i) * 255).round().astype(np.uint8)
        PILImage.fromarray(pixels).save(photos / f"photo{i:02d}.png")
    tiny = work / "tiny"
    tiny.mkdir()
    PILImage.fromarray((_photo(16, 16, 9) * 255).round().astype(np.uint8)).save(tiny / "tiny.png")
    rows = []
    for name, extra in (("realesrgan-compact", ["--png-compression", "1"]), ("esrgan", [])):
        loaded = _model(name, 4, dry)
        weights = write_weights(loaded.module.state_dict(), work / f"{name}-random.safetensors", name, 4,
                                loaded.kwargs, loaded.colorspace)
        def command(folder: Path, out: Path) -> list[str]:
            return [sys.executable, "-m", "sresr", "upscale", str(folder), "-o", str(out), "-m", name, "-s", "4",
                    "-w", str(weights), "--device", device, "-q", "--json", *extra]

        # the start-up (imports, CUDA context, model load), measured on one 16 px image
        t = time.perf_counter()
        subprocess.run(command(tiny, work / f"tiny-{name}"), capture_output=True, timeout=120)
        startup = time.perf_counter() - t
        cmd = command(photos, work / f"out-{name}")
        with _Utilisation() as util:
            t = time.perf_counter()
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=240)
            wall = time.perf_counter() - t
        row = {"model": name, "images": n, "input": f"{w}x{h}", "returncode": proc.returncode,
               "seconds": round(wall, 2), "mpix_per_s": float(f"{n * h * w / 1e6 / wall:.3g}"), **util.summary()}
        row["startup_s"] = round(startup, 2)
        row["mpix_per_s_in_run"] = float(f"{n * h * w / 1e6 / (wall - startup):.3g}") if wall > startup else None
        try:
            files = json.loads(proc.stdout)
            row["ok"] = sum(1 for f in files if f.get("status") == "ok")
        except (ValueError, AttributeError):
            row["error"] = (proc.stderr or proc.stdout)[-300:]
        rows.append(row)
        print(json.dumps(row), flush=True)
    return rows


# -- 5. exactness on the device ----------------------------------------------------------------------
def check_exact(dry: bool, device: str) -> dict:
    import numpy as np

    from sresr.engine import Upscaler
    from sresr.imaging.io import Image

    loaded = _model("realesrgan-compact", 4, dry)
    img = _photo(96, 128, 2) if dry else _photo(512, 512, 2)
    whole = Upscaler(loaded, device=device, precision="fp32", tile=0).upscale_image(Image(pixels=img.copy()))
    tiled = Upscaler(loaded, device=device, precision="fp32", tile=64 if dry else 128).upscale_image(Image(pixels=img))
    return {"model": "realesrgan-compact", "max_abs_diff": float(np.abs(whole.pixels - tiled.pixels).max())}


# -- 6. architecture families ---------------------------------------------------------------------
#: the families of issue 26 next to ESRGAN; the dry run's reduced configurations
FAMILIES = ("esrgan", "swinir", "hat", "rcan", "span", "dat")
_SMALL = {"esrgan": {"blocks": 2},
          "swinir": {"embed_dim": 24, "depths": (2, 2), "num_heads": (2, 2), "num_feat": 16},
          "hat": {"embed_dim": 24, "depths": (2,), "num_heads": (2,), "window_size": 8, "squeeze_factor": 6, "num_feat": 16},
          "rcan": {"groups": 1, "blocks": 2, "features": 16, "reduction": 8},
          "span": {"features": 16},
          "dat": {"embed_dim": 32, "depths": (2, 2), "num_heads": (2, 2), "split_size": (4, 8)}}


def check_families(dry: bool, device: str) -> list[dict]:
    """The network alone per family at x4 (random weights: the speed of trained ones; the fp16
    range is *not* representative of trained weights), fp32 / bf16 / fp16 on one input: seconds,
    LR MPix/s, and the half-precision output's largest difference to fp32 over fp32's range."""
    import torch

    from sresr.resolve import load_model

    side = 32 if dry else 256
    rows = []
    for name in FAMILIES:
        torch.manual_seed(0)
        try:
            loaded = load_model(name, scale=4, pretrained=False, **(_SMALL[name] if dry else {}))
        except Exception as exc:  # noqa: BLE001 - a family that does not build is reported
            rows.append({"model": name, "error": f"{type(exc).__name__}: {exc}"[:200]})
            continue
        m = max(1, loaded.geometry.size_multiple)
        n = -(-side // m) * m
        x = torch.rand(1, 3, n, n, generator=torch.Generator().manual_seed(1)).to(device)
        ref = None
        for precision, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16), ("fp16", torch.float16)):
            row = {"model": name, "precision": precision, "input": f"{n}x{n}",
                   "params": sum(p.numel() for p in loaded.module.parameters())}
            try:
                net = copy.deepcopy(loaded.module).to(device=device, dtype=dtype).eval()
                xin = x.to(dtype)
                with torch.inference_mode():
                    out = net(xin).float()
                    sec = _median_seconds(lambda net=net: net(xin), device, 1 if dry else 5)
                row.update(seconds=round(sec, 4), mpix_per_s=round(n * n / 1e6 / sec, 3),
                           finite=bool(torch.isfinite(out).all()))
                if ref is None:
                    ref = out
                else:
                    rng = float(ref.max() - ref.min()) or 1.0
                    row["diff_over_range"] = float((out - ref).abs().max()) / rng
            except Exception as exc:  # noqa: BLE001 - e.g. bf16 not supported by a kernel here
                row["error"] = f"{type(exc).__name__}: {exc}".splitlines()[0][:200]
            rows.append(row)
            net = None  # (not del: a failed deepcopy leaves no name to delete)
        if device.startswith("cuda"):
            torch.cuda.empty_cache()
    return rows


# -- 7. video ---------------------------------------------------------------------------------------
def check_video(dry: bool, device: str) -> dict:
    """benchmarks/bench_video.py on this device: 1080p -> 4K with realesrgan-compact, the network
    alone against ``sresr upscale clip.mp4``. Needs PyAV (carry its wheel to the GPU machine)."""
    try:
        import av  # noqa: F401
    except ImportError:
        return {"skipped": "PyAV is not installed here (pip install av, or carry its wheel)"}
    runs = ([["--frames", "2", "--size", "96x64", "--device", "cpu"],
             ["--frames", "3", "--size", "64x48", "--device", "cpu", "--frame-batch", "3"]] if dry else
            [["--frames", "24", "--device", device], ["--frames", "48", "--size", "640x360", "--device", device]])
    tables = []
    for args in runs:
        proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "bench_video.py"), *args],
                              capture_output=True, text=True, timeout=300)
        if proc.returncode != 0:
            raise RuntimeError(f"bench_video.py failed: {proc.stderr.strip().splitlines()[-1:]}")
        tables.append(proc.stdout.strip())
    return {"table": "\n\n".join(tables)}


def _markdown(r: dict) -> str:
    def f(v, spec=".2f"):
        return "-" if v is None else format(v, spec)

    lines = [f"# sresr GPU inference check: {r['device_name']}, torch {r['torch']}, {r['date']}"
             f"{', dry run (CPU, tiny)' if r['dry_run'] else ''}", ""]
    t = r.get("tests", {})
    lines += ["## Tests", "", f"`{t.get('command', '')}`: {t.get('summary') or 'no summary'} "
              f"({t.get('seconds', '-')} s)", *[f"- {x}" for x in t.get("failures", [])], ""]
    lines += ["## Side by side (LR MPix/s, host float32 RGB in, host uint8 out; median of "
              f"{r['rep']}, input {r['size']})", "",
              "| model | precision | plain fp16 loop | network alone | sresr Upscaler | sresr / network | "
              "sresr / plain | plan |", "|---|---|---|---|---|---|---|---|"]
    for x in r.get("side_by_side", []):
        if "error" in x:
            lines.append(f"| {x['model']} x{x['scale']} | ERROR: {x['error']} | | | | | | |")
            continue
        lines.append(f"| {x['model']} x{x['scale']} | {x['precision']} | {f(x.get('plain'))} | {f(x['network'])} | "
                     f"{f(x['sresr'])} | {f(x['of_network'], '.0%')} | {f(x.get('x_plain'))}x | "
                     f"{x['tiles']} tile(s); {x['plan']} |")
    lines += ["", "Targets: realesrgan-compact x4 sresr >= 70 % of the network alone; ESRGAN x4 >= 2.5x the plain loop.",
              "", "## Peak device memory, realesrgan-compact x4", "",
              "| tile | input | tiles | seconds | peak MiB |", "|---|---|---|---|---|"]
    for x in r.get("memory", []):
        lines.append(f"| {x['tile']} | {x['input']} | {x['tiles']} | {x['seconds']} | {f(x['peak_mib'], '.0f')} |")
    lines += ["", "## `sresr upscale` on a folder (random weights, PNG out)", "",
              "| model | images | input | ok | wall s | start-up s | MPix/s (wall) | MPix/s (wall - start-up) | "
              "GPU busy mean % | GPU busy after start % |", "|---|---|---|---|---|---|---|---|---|---|"]
    for x in r.get("upscale", []):
        lines.append(f"| {x['model']} | {x['images']} | {x['input']} | {x.get('ok', 0)} (exit {x['returncode']}) | "
                     f"{x['seconds']} | {x['startup_s']} | {x['mpix_per_s']} | {f(x.get('mpix_per_s_in_run'))} | {f(x.get('gpu_busy_mean'), '.0f')} | "
                     f"{f(x.get('gpu_busy_after_start'), '.0f')} |")
    e = r.get("exact", {})
    lines += ["", f"Tiled vs whole image in fp32 on the device ({e.get('model')}): max abs difference "
              f"{f(e.get('max_abs_diff'), '.2e')}", ""]
    if r.get("families"):
        lines += ["## Architecture families, network alone, x4 (random weights)", "",
                  "| model | params | input | precision | s | LR MPix/s | finite | max diff / fp32 range |",
                  "|---|---|---|---|---|---|---|---|"]
        for x in r["families"]:
            if "error" in x:
                lines.append(f"| {x['model']} | | {x.get('input', '')} | {x.get('precision', '')} | ERROR: {x['error']} | | | |")
                continue
            lines.append(f"| {x['model']} | {x['params']:,} | {x['input']} | {x['precision']} | {x['seconds']} | "
                         f"{x['mpix_per_s']} | {x['finite']} | {f(x.get('diff_over_range'), '.2e')} |")
        lines.append("")
    v = r.get("video")
    if v:
        lines += ["## Video (benchmarks/bench_video.py)", "", v.get("table") or f"skipped: {v.get('skipped')}", ""]
    for k, v in r.get("errors", {}).items():
        lines.append(f"- step {k} failed: {v}")
    return "\n".join(lines) + "\n"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path(os.environ.get("OUT") or tempfile.mkdtemp(prefix="gpu-check-")))
    ap.add_argument("--dry-run", action="store_true", help="tiny sizes on the CPU (what CI runs)")
    ap.add_argument("--skip", nargs="*", default=[],
                    choices=["tests", "side", "memory", "upscale", "exact", "families", "video"])
    ap.add_argument("--size", default="1024x1024", help="input of the side-by-side table, WxH")
    ap.add_argument("--budget", type=float, default=330, help="seconds for the whole check; the tests get what is left")
    a = ap.parse_args()
    start = time.perf_counter()
    _ensure_sresr()
    os.environ.setdefault("SRESR_HOME", tempfile.mkdtemp(prefix="sresr-home-"))
    os.environ.setdefault("SRESR_OFFLINE", "1")
    import torch

    dry = a.dry_run
    if not dry and not torch.cuda.is_available():
        print("no CUDA device: use --dry-run", file=sys.stderr)
        return 2
    device = "cpu" if dry else "cuda"
    w, h = (int(v) for v in ("64x48" if dry else a.size).split("x"))
    a.out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="gpu-check-work-"))
    report: dict = {"device_name": torch.cuda.get_device_name() if not dry else platform.processor() or "cpu",
                    "torch": torch.__version__, "date": time.strftime("%Y-%m-%d"), "dry_run": dry,
                    "rep": 1 if dry else 3, "size": f"{w}x{h}", "errors": {}}
    # the measurements first (they need the GPU to themselves), the suite last, with what time is left
    steps = [("side_by_side", lambda: check_side_by_side(dry, device, report["rep"], (h, w))),
             ("memory", lambda: check_memory(dry, device)),
             ("upscale", lambda: check_upscale(dry, device, work)),
             ("exact", lambda: check_exact(dry, device)),
             ("families", lambda: check_families(dry, device)),
             ("video", lambda: check_video(dry, device)),
             ("tests", lambda: check_tests(dry, a.out, max(60.0, a.budget - (time.perf_counter() - start))))]
    skip = {"side": "side_by_side"}
    failed = False
    for key, step in steps:
        if key in {skip.get(s, s) for s in a.skip}:
            continue
        t = time.perf_counter()
        try:
            report[key] = step()
        except Exception as exc:  # noqa: BLE001 - a broken step is reported and the others still run
            import traceback

            traceback.print_exc()
            report["errors"][key] = f"{type(exc).__name__}: {exc}".splitlines()[0][:300]
            failed = True
        print(f"{key}: {time.perf_counter() - t:.1f} s", flush=True)
        # written after every step: a run stopped from outside still brings back what it measured
        (a.out / "gpu_check.json").write_text(json.dumps(report, indent=1))
        (a.out / "gpu_check.md").write_text(_markdown(report))
    if report.get("tests", {}).get("returncode", 0) != 0:
        failed = True
    print(_markdown(report))
    shutil.rmtree(work, ignore_errors=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
