"""``sresr upscale`` as a careless user and as an attacker would run it: reruns with other settings,
hostile suffixes, FIFOs and devices, another run in the same folder, odd file names, a full disk.
Real subprocesses and real files (a real small filesystem for the full disk)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image as PILImage

from conftest import run_sresr, subprocess_env  # type: ignore[import-not-found]

RNG = np.random.default_rng(7)


def _png(path: Path, h: int = 16, w: int = 20) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    PILImage.fromarray((RNG.random((h, w, 3)) * 255).astype(np.uint8)).save(path)
    return path


def _folder(root: Path, n: int = 3) -> Path:
    for i in range(n):
        _png(root / f"img{i}.png")
    return root


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


# -- reruns: skip only what this run would make ------------------------------------------------


def test_rerun_with_another_model_or_scale_refuses_and_keeps_outputs(tmp_path):
    src, out = _folder(tmp_path / "in"), tmp_path / "out"
    run_sresr("upscale", str(src), "-o", str(out), "-m", "fsrcnn", "-s", "2", check=True)
    made = _snapshot(out)
    assert len(made) == 3 and all(PILImage.open(out / n).size == (40, 32) for n in made)

    again = run_sresr("upscale", str(src), "-o", str(out), "-m", "fsrcnn", "-s", "2")
    assert again.returncode == 0 and "3 skipped" in again.stdout, again.stdout + again.stderr

    other = run_sresr("upscale", str(src), "-o", str(out), "-m", "bicubic", "-s", "4")
    assert other.returncode == 1, other.stdout + other.stderr
    lines = [ln for ln in other.stderr.splitlines() if ln.startswith("failed:")]
    assert len(lines) == 3 and all("fsrcnn" in ln and "bicubic" in ln and "--overwrite" in ln for ln in lines)
    assert _snapshot(out) == made  # nothing replaced

    jpeg = run_sresr("upscale", str(src), "-o", str(out), "-m", "fsrcnn", "-s", "2", "--png-compression", "9")
    assert jpeg.returncode == 1 and "compression 3" in jpeg.stderr and "compression 9" in jpeg.stderr

    replaced = run_sresr("upscale", str(src), "-o", str(out), "-m", "bicubic", "-s", "4", "--overwrite")
    assert replaced.returncode == 0, replaced.stderr
    assert all(PILImage.open(out / n).size == (80, 64) for n in made)


def test_rerun_after_the_input_changed_is_not_skipped(tmp_path):
    src, out = _folder(tmp_path / "in", 2), tmp_path / "out"
    run_sresr("upscale", str(src), "-o", str(out), "-m", "bicubic", "-s", "2", check=True)
    _png(src / "img1.png")  # edited since
    proc = run_sresr("upscale", str(src), "-o", str(out), "-m", "bicubic", "-s", "2")
    assert proc.returncode == 1 and "1 skipped" in proc.stdout
    assert "img1.png exists, made from another version of the input" in proc.stderr


def test_output_not_made_by_sresr_is_neither_skipped_nor_replaced(tmp_path):
    src, out = _folder(tmp_path / "in", 1), tmp_path / "out"
    mine = _png(out / "img0.png", 5, 5)
    before = mine.read_bytes()
    proc = run_sresr("upscale", str(src), "-o", str(out), "-m", "bicubic", "-s", "2")
    assert proc.returncode == 1 and "holds no sresr record" in proc.stderr
    assert mine.read_bytes() == before


@pytest.mark.parametrize("fmt", ["png", "jpg", "webp", "tiff"])
@pytest.mark.parametrize("depth", [8, 16])
def test_every_format_records_what_made_it(tmp_path, fmt, depth):
    src, out = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    a = (RNG.random((12, 14, 3)) * (65535 if depth == 16 else 255)).astype(np.uint16 if depth == 16 else np.uint8)
    import cv2

    cv2.imwrite(str(src / "a.png"), a[:, :, ::-1])
    args = ("upscale", str(src), "-o", str(out), "-m", "bicubic", "-s", "2", "--format", fmt, "--json")
    first = json.loads(run_sresr(*args, check=True).stdout)
    assert first[0]["status"] == "ok"
    second = json.loads(run_sresr(*args, check=True).stdout)
    assert second[0]["status"] == "skipped"
    third = run_sresr("upscale", str(src), "-o", str(out), "-m", "bicubic", "-s", "3", "--format", fmt, "--json")
    assert third.returncode == 1 and json.loads(third.stdout)[0]["status"] == "failed"


def test_bad_model_or_scale_is_an_error_even_when_every_output_exists(tmp_path):
    src, out = _folder(tmp_path / "in", 1), tmp_path / "out"
    run_sresr("upscale", str(src), "-o", str(out), "-m", "bicubic", "-s", "2", check=True)
    for args in (("-m", "no-such-model", "-s", "2"), ("-m", "fsrcnn", "-s", "7"), ("-m", "bicubic", "-s", "2", "-w", "nope.pth")):
        proc = run_sresr("upscale", str(src), "-o", str(out), *args)
        assert proc.returncode in (1, 2) and proc.stderr.startswith("error:"), (args, proc.stdout, proc.stderr)


# -- names and paths ------------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", ["/../../../escaped", "/tmp/absolute", "a\\b", "x\ny"])
def test_suffix_with_a_path_is_refused(tmp_path, suffix):
    src, out = _folder(tmp_path / "deep" / "er" / "in", 1), tmp_path / "deep" / "er" / "out"
    proc = run_sresr("upscale", str(src), "-o", str(out), "-m", "bicubic", "-s", "2", "--suffix", suffix)
    assert proc.returncode == 2 and "--suffix" in proc.stderr
    written = [p for p in tmp_path.rglob("*") if p.is_file() and p.parent != src]
    assert written == [] and not Path("/tmp/absolute").exists()


def test_output_folder_that_contains_the_input_folder(tmp_path):
    _folder(tmp_path / "photos", 2)
    proc = run_sresr("upscale", "photos", "-o", ".", "-m", "bicubic", "-s", "2", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert PILImage.open(tmp_path / "img0.png").size == (40, 32)
    assert PILImage.open(tmp_path / "img1.png").size == (40, 32)


def test_output_inside_the_input_folder_is_not_taken_as_input(tmp_path):
    src = _folder(tmp_path / "in", 2)
    run_sresr("upscale", str(src), "-o", str(src / "up"), "-m", "bicubic", "-s", "2", "-r", check=True)
    again = run_sresr("upscale", str(src), "-o", str(src / "up"), "-m", "bicubic", "-s", "2", "-r", "--json")
    assert [r["status"] for r in json.loads(again.stdout)] == ["skipped", "skipped"]


def test_collision_and_folder_lines_name_the_input(tmp_path):
    src = tmp_path / "in"
    _png(src / "a.png")
    PILImage.open(src / "a.png").save(src / "a.jpg", quality=95)
    out = tmp_path / "out"
    (out / "b.png").mkdir(parents=True)
    _png(src / "b.png")
    proc = run_sresr("upscale", str(src), "-o", str(out), "-m", "bicubic", "-s", "2", "--format", "png", "--json")
    assert proc.returncode == 1
    by_name = {Path(r["path"]).name: r for r in json.loads(proc.stdout)}
    statuses = sorted((by_name["a.png"]["status"], by_name["a.jpg"]["status"]))
    assert statuses == ["failed", "ok"]  # the first in natural order (a.jpg) is written
    error = by_name["a.png"]["error"] or by_name["a.jpg"]["error"]
    assert str(src / "a.jpg") in error and str(src / "a.png") in error
    assert by_name["b.png"]["status"] == "failed" and "is a folder" in by_name["b.png"]["error"]


def test_a_newline_in_a_file_name_stays_on_one_line(tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    (src / "bad\nname.png").write_bytes(b"not an image at all")
    _png(src / "good.png")
    proc = run_sresr("upscale", str(src), "-o", str(tmp_path / "out"), "-m", "bicubic", "-s", "2")
    assert proc.returncode == 1
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and "bad\\nname.png" in lines[0], proc.stderr


# -- files that are not files -------------------------------------------------------------------------


def test_fifo_and_device_fail_in_one_line_without_hanging(tmp_path):
    src = _folder(tmp_path / "in", 1)
    fifo = tmp_path / "pipe.png"
    os.mkfifo(fifo)
    t0 = time.monotonic()
    proc = run_sresr("upscale", str(fifo), "/dev/zero", str(src / "img0.png"), "-o", str(tmp_path / "out"),
                     "-m", "bicubic", "-s", "2", timeout=120)
    assert time.monotonic() - t0 < 100
    assert proc.returncode == 1, proc.stderr
    lines = proc.stderr.splitlines()
    assert any("pipe.png: not a regular file (a FIFO)" in ln for ln in lines), proc.stderr
    assert any("/dev/zero: not a regular file (a character device)" in ln for ln in lines), proc.stderr
    assert (tmp_path / "out" / "img0.png").is_file()


# -- two runs, one folder --------------------------------------------------------------------------------


def test_temp_files_of_a_live_run_are_left_alone(tmp_path):
    """A run removes only temp files whose writer is gone, never another live run's in-flight file."""
    from sresr.atomic import HOST, TEMP_SUFFIX

    src, out = _folder(tmp_path / "in", 1), tmp_path / "out"
    out.mkdir()
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    live = out / f".img0.png.{HOST}.{os.getpid()}-abcd{TEMP_SUFFIX}"  # this test process: alive
    gone = out / f".img0.png.{HOST}.{dead.pid}-efgh{TEMP_SUFFIX}"
    live.write_bytes(b"in flight")
    gone.write_bytes(b"left by a killed run")
    run_sresr("upscale", str(src), "-o", str(out), "-m", "bicubic", "-s", "2", check=True)
    assert live.read_bytes() == b"in flight"
    assert not gone.exists()


def test_two_runs_into_one_folder_both_succeed(tmp_path):
    src, out = _folder(tmp_path / "in", 8), tmp_path / "out"
    for p in src.iterdir():  # larger images: each write takes a while, so the runs overlap
        PILImage.fromarray((RNG.random((300, 300, 3)) * 255).astype(np.uint8)).save(p)
    cmd = [sys.executable, "-m", "sresr", "upscale", str(src), "-o", str(out), "-m", "bicubic", "-s", "2",
           "--overwrite", "--png-compression", "9"]
    procs = [subprocess.Popen(cmd, env=subprocess_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    results = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], results
    assert len(list(out.iterdir())) == 8


# -- a full disk -------------------------------------------------------------------------------------------


def _can_mount_tmpfs() -> bool:
    if not shutil.which("unshare") or sys.platform != "linux":
        return False
    probe = subprocess.run(["unshare", "-rm", "sh", "-c", "mount -t tmpfs -o size=64k tmpfs /mnt"],
                           capture_output=True)
    return probe.returncode == 0


@pytest.mark.skipif(not _can_mount_tmpfs(), reason="needs unshare and a mountable tmpfs")
def test_full_disk_stops_the_run_with_one_line_per_input(tmp_path):
    src, out = _folder(tmp_path / "in", 6), tmp_path / "out"
    out.mkdir()
    for p in src.iterdir():
        PILImage.fromarray((RNG.random((64, 64, 3)) * 255).astype(np.uint8)).save(p)
    # a 48 KiB filesystem: one 128x128 noisy PNG (about 49 KB) does not fit
    script = (f"mount -t tmpfs -o size=48k tmpfs {out} && exec {sys.executable} -m sresr upscale {src} -o {out} "
              "-m bicubic -s 2 --json")
    proc = subprocess.run(["unshare", "-rm", "sh", "-c", script], env=subprocess_env(), capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 1, proc.stderr
    records = json.loads(proc.stdout)
    failed = [r for r in records if r["status"] == "failed"]
    assert failed and "No space left on device" in failed[0]["error"]
    # writes already queued fail on their own; what comes after is not computed at all
    full = [r for r in failed if "not upscaled: the output device is full" in r["error"]]
    assert len(full) >= 2 and all("No space left on device" in r["error"] for r in failed if r not in full)
    assert records[-1] in full
    assert len(proc.stderr.splitlines()) == len(failed)


def test_upscale_file_refuses_a_format_it_cannot_write(tmp_path):
    from sresr.errors import UsageError
    from sresr.pipeline import UpscaleOptions, upscale_file

    src = _png(tmp_path / "a.png")
    with pytest.raises(UsageError, match="cannot write .*a.gif"):
        upscale_file(src, tmp_path / "a.gif", options=UpscaleOptions(model="bicubic", scale=2))
    assert not (tmp_path / "a.gif").exists()


# -- the command line's own contract ----------------------------------------------------------------


def test_ctrl_c_prints_interrupted_and_exits_130(tmp_path):
    import signal

    src = tmp_path / "in"
    for i in range(6):
        PILImage.fromarray((RNG.random((700, 700, 3)) * 255).astype(np.uint8)).save(_png(src / f"{i}.png"))
    out = tmp_path / "out"
    proc = subprocess.Popen([sys.executable, "-m", "sresr", "upscale", str(src), "-o", str(out), "-m", "fsrcnn",
                             "-s", "4"], env=subprocess_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not (out.is_dir() and any(out.iterdir())) and time.monotonic() < deadline:
        time.sleep(0.05)  # until the first output is written: the model runs
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130
    assert err.strip().splitlines()[-1].startswith("interrupted"), err
    assert "Traceback" not in err
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temp files left


def test_debug_works_after_the_subcommand_too(tmp_path):
    src = _folder(tmp_path / "in", 1)
    after = run_sresr("upscale", str(src), "-o", str(tmp_path / "o"), "-m", "no-such-model", "--debug")
    before = run_sresr("--debug", "upscale", str(src), "-o", str(tmp_path / "o"), "-m", "no-such-model")
    for proc in (after, before):
        assert "Traceback" in proc.stderr and "UnknownModelError" in proc.stderr
    plain = run_sresr("upscale", str(src), "-o", str(tmp_path / "o"), "-m", "no-such-model")
    assert plain.returncode == 2 and "Traceback" not in plain.stderr


def test_huge_outscale_is_a_usage_error(tmp_path):
    src = _folder(tmp_path / "in", 1)
    proc = run_sresr("upscale", str(src), "-o", str(tmp_path / "o"), "-m", "bicubic", "-s", "2", "--outscale", "1e9")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr and "outscale" in proc.stderr.lower()
