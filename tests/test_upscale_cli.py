"""``sresr upscale`` end to end, in real subprocesses, on files made with Pillow and OpenCV.

The model is ``enginetoy`` from the test distribution in tests/plugins/enginetoy (registered
through a real entry point), with weights saved here to a .safetensors file.
"""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image as PILImage

from conftest import run_sresr, subprocess_env  # type: ignore[import-not-found]

PLUGIN = Path(__file__).resolve().parent / "plugins" / "enginetoy"
RNG = np.random.default_rng(0)


def sresr(*args: str, **kw):
    return run_sresr(*args, extra_paths=[PLUGIN], **kw)


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> Path:
    import torch
    from safetensors.torch import save_file

    sys.path.insert(0, str(PLUGIN))
    try:
        from sresr_enginetoy.net import ToyNet
    finally:
        sys.path.remove(str(PLUGIN))
    torch.manual_seed(1)
    path = tmp_path_factory.mktemp("w") / "toy_x2.safetensors"
    save_file({k: v.contiguous() for k, v in ToyNet(2).state_dict().items()}, str(path))
    return path


def _rgb(h: int, w: int) -> np.ndarray:
    return (RNG.random((h, w, 3)) * 255).astype(np.uint8)


def make_folder(root: Path) -> dict[str, tuple[int, int]]:
    """Good images (name -> displayed (width, height)) plus three bad files."""
    root.mkdir(parents=True, exist_ok=True)
    good: dict[str, tuple[int, int]] = {}
    PILImage.fromarray(_rgb(20, 30)).save(root / "rgb.png")
    good["rgb.png"] = (30, 20)
    rgba = np.dstack([_rgb(18, 22), np.tile(np.linspace(0, 255, 22).astype(np.uint8), (18, 1))])
    PILImage.fromarray(rgba, "RGBA").save(root / "rgba.png")
    good["rgba.png"] = (22, 18)
    PILImage.fromarray(_rgb(16, 24)[..., 0], "L").save(root / "gray.png")
    good["gray.png"] = (24, 16)
    cv2.imwrite(str(root / "deep16.png"), (RNG.random((14, 20, 3)) * 65535).astype(np.uint16))
    good["deep16.png"] = (20, 14)
    PILImage.fromarray(_rgb(16, 16)).convert("P").save(root / "palette.png")
    good["palette.png"] = (16, 16)
    PILImage.fromarray(_rgb(12, 20)).convert("CMYK").save(root / "cmyk.jpg", quality=95)
    good["cmyk.jpg"] = (20, 12)
    pil = PILImage.fromarray(_rgb(10, 26))  # stored 26 wide, displayed rotated: 10 wide
    exif = pil.getexif()
    exif[0x0112] = 6
    pil.save(root / "rotated.jpg", exif=exif.tobytes(), quality=95)
    good["rotated.jpg"] = (10, 26)
    buf = io.BytesIO()
    PILImage.fromarray(_rgb(40, 40)).save(buf, format="PNG")
    (root / "truncated.png").write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    (root / "empty.png").write_bytes(b"")
    (root / "notes.png").write_text("not an image\n")
    return good


def _no_temp_files(folder: Path) -> bool:
    return not [p for p in folder.rglob("*") if p.name.startswith(".") or "sresr-tmp" in p.name]


def test_folder_with_good_and_bad_files_then_rerun_skips(tmp_path, weights):
    good = make_folder(tmp_path / "in")
    out = tmp_path / "out"
    args = ["upscale", str(tmp_path / "in"), "-o", str(out), "-m", "enginetoy", "-s", "2", "--weights", str(weights),
            "--tile", "8"]
    proc = sresr(*args)
    assert proc.returncode == 1, proc.stderr
    failures = [line for line in proc.stderr.splitlines() if line.startswith("failed:")]
    assert len(failures) == 3, proc.stderr
    for name, word in (("truncated.png", "truncated"), ("empty.png", "empty"), ("notes.png", "not an image")):
        assert any(name in line and word in line for line in failures), proc.stderr
    assert "Traceback" not in proc.stderr
    assert "7 upscaled" in proc.stdout and "3 failed" in proc.stdout
    assert sorted(p.name for p in out.iterdir()) == sorted(good)  # nothing for the bad ones, no partial files
    assert _no_temp_files(out)

    for name, (w, h) in good.items():
        img = PILImage.open(out / name)
        assert img.size == (2 * w, 2 * h), name
    assert PILImage.open(out / "rgba.png").mode == "RGBA"
    alpha = np.asarray(PILImage.open(out / "rgba.png"))[..., 3].astype(int)
    assert alpha[:, 0].max() < 40 and alpha[:, -1].min() > 215  # the gradient survived, not black/opaque
    assert PILImage.open(out / "gray.png").mode == "L"
    deep = cv2.imread(str(out / "deep16.png"), cv2.IMREAD_UNCHANGED)
    assert deep.dtype == np.uint16 and deep.shape == (28, 40, 3)
    assert PILImage.open(out / "palette.png").mode == "RGB"
    assert PILImage.open(out / "cmyk.jpg").mode == "RGB"
    rotated = PILImage.open(out / "rotated.jpg")
    assert rotated.getexif().get(0x0112, 1) == 1
    # the inputs are untouched
    assert (tmp_path / "in" / "empty.png").read_bytes() == b""

    mtimes = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    again = sresr(*args, "--json")
    assert again.returncode == 1
    records = {Path(r["path"]).name: r for r in json.loads(again.stdout)}
    assert set(records) == set(good) | {"truncated.png", "empty.png", "notes.png"}
    assert all(records[n]["status"] == "skipped" for n in good)
    assert all(records[n]["status"] == "failed" and records[n]["error"] for n in ("truncated.png", "empty.png"))
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir()} == mtimes


def test_overwrite_format_suffix_outscale(tmp_path, weights):
    PILImage.fromarray(_rgb(10, 12)).save(tmp_path / "a.png")
    base = ["upscale", str(tmp_path / "a.png"), "-o", str(tmp_path / "o"), "-m", "enginetoy", "-s", "2",
            "--weights", str(weights), "--quiet"]
    assert sresr(*base, "--format", "webp", "--suffix", "_x3", "--outscale", "3").returncode == 0
    out = tmp_path / "o" / "a_x3.webp"
    assert PILImage.open(out).size == (36, 30)
    t = out.stat().st_mtime_ns
    time.sleep(0.01)
    proc = sresr(*base, "--format", "webp", "--suffix", "_x3", "--outscale", "3", "--overwrite", "--json")
    assert proc.returncode == 0 and json.loads(proc.stdout)[0]["status"] == "ok"
    assert out.stat().st_mtime_ns != t


def test_png_compression_option_changes_size_not_pixels(tmp_path, weights):
    yy, xx = np.mgrid[0:40, 0:60]
    PILImage.fromarray(np.dstack([yy * 6, xx * 4, (yy + xx) * 2]).astype(np.uint8)).save(tmp_path / "a.png")
    sizes, pixels = {}, []
    for level in ("0", "9"):
        out = tmp_path / f"o{level}"
        proc = sresr("upscale", str(tmp_path / "a.png"), "-o", str(out), "-m", "enginetoy", "-s", "2",
                     "--weights", str(weights), "--quiet", "--png-compression", level)
        assert proc.returncode == 0, proc.stderr
        sizes[level] = (out / "a.png").stat().st_size
        pixels.append(np.asarray(PILImage.open(out / "a.png")))
    assert sizes["0"] > 80 * 120 * 3 > sizes["9"]
    assert np.array_equal(pixels[0], pixels[1])


def test_never_overwrites_inputs(tmp_path, weights):
    PILImage.fromarray(_rgb(10, 12)).save(tmp_path / "a.png")
    before = (tmp_path / "a.png").read_bytes()
    proc = sresr("upscale", str(tmp_path), "-o", str(tmp_path), "-m", "enginetoy", "-s", "2", "--weights", str(weights))
    assert proc.returncode == 1 and "would overwrite the input" in proc.stderr
    assert (tmp_path / "a.png").read_bytes() == before


def test_animations_and_multipage_files_upscale_the_first_frame_with_a_warning(tmp_path, weights):
    src = tmp_path / "in"
    src.mkdir()
    frames = [PILImage.fromarray(_rgb(12, 14)) for _ in range(3)]
    frames[0].save(src / "anim.gif", save_all=True, append_images=frames[1:], duration=100, loop=0)
    frames[0].save(src / "pages.tif", save_all=True, append_images=frames[1:2])
    PILImage.fromarray(_rgb(12, 14)).save(src / "still.gif")
    # the first frame, decoded by Pillow alone, as the reference input
    ref = tmp_path / "ref"
    ref.mkdir()
    PILImage.open(src / "anim.gif").convert("RGB").save(ref / "anim.png")
    PILImage.open(src / "pages.tif").convert("RGB").save(ref / "pages.png")
    common = ["-m", "enginetoy", "-s", "2", "--weights", str(weights)]
    proc = sresr("upscale", str(src), "-o", str(tmp_path / "out"), *common, "--format", "png", "--json")
    assert proc.returncode == 0, proc.stderr
    records = {Path(r["path"]).name: r for r in json.loads(proc.stdout)}
    assert records["still.gif"]["warning"] is None
    warnings = [line for line in proc.stderr.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 2, proc.stderr
    for name, n in (("anim.gif", 3), ("pages.tif", 2)):
        assert records[name]["status"] == "ok" and f"{n} frames" in records[name]["warning"]
        assert any(str(src / name) in line and f"{n} frames" in line for line in warnings), proc.stderr
    assert sresr("upscale", str(ref), "-o", str(tmp_path / "ref_out"), *common, "--quiet").returncode == 0
    for stem in ("anim", "pages"):
        got = np.asarray(PILImage.open(tmp_path / "out" / f"{stem}.png"))
        want = np.asarray(PILImage.open(tmp_path / "ref_out" / f"{stem}.png"))
        assert got.shape == (24, 28, 3) and np.array_equal(got, want), stem


def test_unwritable_output_is_one_line_per_file(tmp_path, weights):
    for name in ("a.png", "b.png"):
        PILImage.fromarray(_rgb(10, 12)).save(tmp_path / name)
    (tmp_path / "blocker").write_text("a file where the output folder's parent should be\n")
    out = tmp_path / "blocker" / "out"
    proc = sresr("upscale", str(tmp_path / "a.png"), str(tmp_path / "b.png"), "-o", str(out), "-m", "enginetoy",
                 "-s", "2", "--weights", str(weights))
    assert proc.returncode == 1, proc.stderr
    failures = [line for line in proc.stderr.splitlines() if line.startswith("failed:")]
    assert len(failures) == 2 and all("cannot write" in line and "Not a directory" in line for line in failures)
    assert "Traceback" not in proc.stderr and "internal error" not in proc.stderr


def test_usage_errors_exit_2(tmp_path, weights):
    PILImage.fromarray(_rgb(10, 12)).save(tmp_path / "a.png")
    common = ["-o", str(tmp_path / "o"), "-m", "enginetoy", "--weights", str(weights)]
    cases = [
        (["upscale", str(tmp_path / "missing"), *common, "-s", "2"], "does not exist"),
        (["upscale", str(tmp_path / "a.png"), *common, "-s", "2", "--format", "bmp"], "unknown format"),
        (["upscale", str(tmp_path / "a.png"), *common, "-s", "3"], "scale 3"),
        (["upscale", str(tmp_path / "a.png"), *common, "-s", "2", "--device", "cuda:7"], "cuda:7"),
        (["upscale", str(tmp_path / "a.png"), *common, "-s", "2", "--tile", "-1"], ""),
        (["upscale", str(tmp_path / "a.png"), *common, "-s", "2", "--png-compression", "10"], ""),
        (["upscale", str(tmp_path / "a.png"), "-o", str(tmp_path / "a.png"), "-m", "enginetoy", "--weights", str(weights),
          "-s", "2"], "is a file, not a folder"),
    ]
    for args, word in cases:
        proc = sresr(*args)
        assert proc.returncode == 2, (args, proc.stdout, proc.stderr)
        assert word in proc.stderr and "Traceback" not in proc.stderr


def test_default_model_is_one_with_bundled_weights(tmp_path):
    PILImage.fromarray(_rgb(10, 12)).save(tmp_path / "a.png")
    proc = sresr("upscale", str(tmp_path / "a.png"), "-o", str(tmp_path / "o"), "-s", "2", "--json")
    assert proc.returncode == 0, proc.stderr
    assert PILImage.open(tmp_path / "o" / "a.png").size == (24, 20)
    # a scale nothing bundles: the best x4 model, resampled to x7 (Real-ESRGAN's --outscale)
    proc = sresr("upscale", str(tmp_path / "a.png"), "-o", str(tmp_path / "o2"), "-s", "7")
    assert proc.returncode == 0 and "x4" in proc.stdout and "resampled to x7" in proc.stdout, proc.stderr
    assert PILImage.open(tmp_path / "o2" / "a.png").size == (84, 70)


@pytest.mark.slow
def test_sigkill_mid_folder_leaves_complete_files_and_rerun_finishes(tmp_path, weights):
    src = tmp_path / "in"
    src.mkdir()
    n = 8
    for i in range(n):
        PILImage.fromarray(_rgb(400, 400)).save(src / f"img{i}.png", compress_level=1)
    out = tmp_path / "out"
    args = [sys.executable, "-m", "sresr", "upscale", str(src), "-o", str(out), "-m", "enginetoy", "-s", "2",
            "--weights", str(weights), "--tile", "64"]
    env = subprocess_env([PLUGIN], SRESR_HOME=str(tmp_path / "home"), OMP_NUM_THREADS="1")
    proc = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        if out.exists() and any(p.suffix == ".png" and not p.name.startswith(".") for p in out.iterdir()):
            break
        time.sleep(0.005)
    assert proc.poll() is None, f"the run ended before it could be killed: {proc.communicate()}"
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    done = sorted(p for p in out.iterdir() if not p.name.startswith("."))
    assert 1 <= len(done) < n
    for p in done:  # every visible output is complete
        img = PILImage.open(p)
        img.load()
        assert img.size == (800, 800)
    rerun = sresr(*args[3:], "--json", SRESR_HOME=str(tmp_path / "home"))
    assert rerun.returncode == 0, rerun.stderr
    status = [r["status"] for r in json.loads(rerun.stdout)]
    assert status.count("skipped") == len(done) and status.count("ok") == n - len(done)
    assert sorted(p.name for p in out.iterdir()) == [f"img{i}.png" for i in range(n)]  # temp files cleaned


def test_ranks_shard_the_inputs(tmp_path, weights):
    """Two processes with RANK/WORLD_SIZE (as torchrun sets them) split the folder between them."""
    src = tmp_path / "in"
    src.mkdir()
    for i in range(5):
        PILImage.fromarray(_rgb(12, 10 + i)).save(src / f"im{i}.png")
    out = tmp_path / "out"
    args = [sys.executable, "-m", "sresr", "upscale", str(src), "-o", str(out), "-m", "enginetoy", "-s", "2",
            "--weights", str(weights), "--json"]
    procs = [subprocess.Popen(args, env=subprocess_env([PLUGIN], RANK=str(r), WORLD_SIZE="2", LOCAL_RANK=str(r)),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for r in range(2)]
    outputs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs
    done = [[Path(r["path"]).name for r in json.loads(stdout) if r["status"] == "ok"] for stdout, _ in outputs]
    assert done[0] and done[1] and not set(done[0]) & set(done[1])
    assert sorted(done[0] + done[1]) == [f"im{i}.png" for i in range(5)]
    assert sorted(p.name for p in out.iterdir()) == [f"im{i}.png" for i in range(5)]
