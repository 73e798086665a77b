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


def _run(inputs, out: Path, **options):
    """``sresr upscale`` through its library API, in this process: {input name: FileResult}."""
    from sresr.pipeline import UpscaleOptions, upscale_paths

    results = upscale_paths([str(i) for i in inputs], out, UpscaleOptions(**options))
    return {Path(r.path).name: r for r in results}


def _statuses(results) -> list[str]:
    return [r.status for r in results.values()]


# -- reruns: skip only what this run would make ------------------------------------------------


def test_rerun_with_another_model_or_scale_refuses_and_keeps_outputs(tmp_path):
    src, out = _folder(tmp_path / "in"), tmp_path / "out"
    assert _statuses(_run([src], out, model="fsrcnn", scale=2)) == ["ok"] * 3
    made = _snapshot(out)
    assert all(PILImage.open(out / n).size == (40, 32) for n in made)
    assert _statuses(_run([src], out, model="fsrcnn", scale=2)) == ["skipped"] * 3

    other = run_sresr("upscale", str(src), "-o", str(out), "-m", "bicubic", "-s", "4")
    assert other.returncode == 1, other.stdout + other.stderr
    lines = [ln for ln in other.stderr.splitlines() if ln.startswith("failed:")]
    assert len(lines) == 3 and all("fsrcnn" in ln and "bicubic" in ln and "--overwrite" in ln for ln in lines)
    assert _snapshot(out) == made  # nothing replaced

    level = _run([src], out, model="fsrcnn", scale=2, png_compression=9)
    assert _statuses(level) == ["failed"] * 3
    assert all("compression 3" in r.error and "compression 9" in r.error for r in level.values())
    assert _snapshot(out) == made

    assert _statuses(_run([src], out, model="bicubic", scale=4, overwrite=True)) == ["ok"] * 3
    assert all(PILImage.open(out / n).size == (80, 64) for n in made)


def test_rerun_after_the_input_changed_is_not_skipped(tmp_path):
    src, out = _folder(tmp_path / "in", 2), tmp_path / "out"
    _run([src], out, model="bicubic", scale=2)
    _png(src / "img1.png")  # edited since
    again = _run([src], out, model="bicubic", scale=2)
    assert again["img0.png"].status == "skipped" and again["img1.png"].status == "failed"
    assert "img1.png exists, made from another version of the input" in again["img1.png"].error


def test_output_not_made_by_sresr_is_neither_skipped_nor_replaced(tmp_path):
    src, out = _folder(tmp_path / "in", 1), tmp_path / "out"
    mine = _png(out / "img0.png", 5, 5)
    before = mine.read_bytes()
    (result,) = _run([src], out, model="bicubic", scale=2).values()
    assert result.status == "failed" and "holds no sresr record" in result.error
    assert mine.read_bytes() == before


@pytest.mark.parametrize("fmt", ["png", "jpg", "webp", "tiff"])
@pytest.mark.parametrize("depth", [8, 16])
def test_every_format_records_what_made_it(tmp_path, fmt, depth):
    import cv2

    from sresr.imaging.io import read_record

    src, out = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    a = (RNG.random((12, 14, 3)) * (65535 if depth == 16 else 255)).astype(np.uint16 if depth == 16 else np.uint8)
    cv2.imwrite(str(src / "a.png"), a[:, :, ::-1])
    (first,) = _run([src], out, model="bicubic", scale=2, format=fmt).values()
    assert first.status == "ok"
    record = json.loads(read_record(first.output))
    assert record["model"] == "bicubic" and record["scale"] == 2 and record["format"] == fmt
    assert _statuses(_run([src], out, model="bicubic", scale=2, format=fmt)) == ["skipped"]
    assert _statuses(_run([src], out, model="bicubic", scale=3, format=fmt)) == ["failed"]
    assert PILImage.open(first.output).size == (28, 24)  # the x2 output kept


def test_bad_model_or_scale_is_an_error_even_when_every_output_exists(tmp_path):
    from sresr.errors import SresrError

    src, out = _folder(tmp_path / "in", 1), tmp_path / "out"
    _run([src], out, model="bicubic", scale=2)
    for options in ({"model": "no-such-model", "scale": 2}, {"model": "fsrcnn", "scale": 100},
                    {"model": "bicubic", "scale": 2, "weights": "nope.pth"}):
        with pytest.raises(SresrError):
            _run([src], out, **options)
    proc = run_sresr("upscale", str(src), "-o", str(out), "-m", "no-such-model", "-s", "2")
    assert proc.returncode == 2 and proc.stderr.startswith("error:")


# -- names and paths ------------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", ["/../../../escaped", "/tmp/absolute", "a\\b", "x\ny"])
def test_suffix_with_a_path_is_refused(tmp_path, suffix):
    from sresr.errors import UsageError

    src, out = _folder(tmp_path / "deep" / "er" / "in", 1), tmp_path / "deep" / "er" / "out"
    with pytest.raises(UsageError, match="--suffix"):
        _run([src], out, model="bicubic", scale=2, suffix=suffix)
    written = [p for p in tmp_path.rglob("*") if p.is_file() and p.parent != src]
    assert written == [] and not Path("/tmp/absolute").exists()


def test_suffix_with_a_path_is_a_usage_error_on_the_command_line(tmp_path):
    src = _folder(tmp_path / "in", 1)
    proc = run_sresr("upscale", str(src), "-o", str(tmp_path / "out"), "-m", "bicubic", "-s", "2",
                     "--suffix", "/../../x")
    assert proc.returncode == 2 and "--suffix" in proc.stderr and not (tmp_path / "out").exists()


def test_output_folder_that_contains_the_input_folder(tmp_path, monkeypatch):
    _folder(tmp_path / "photos", 2)
    monkeypatch.chdir(tmp_path)
    assert _statuses(_run(["photos"], Path("."), model="bicubic", scale=2)) == ["ok", "ok"]
    assert PILImage.open(tmp_path / "img0.png").size == (40, 32)
    assert PILImage.open(tmp_path / "img1.png").size == (40, 32)


def test_output_inside_the_input_folder_is_not_taken_as_input(tmp_path):
    src = _folder(tmp_path / "in", 2)
    _run([src], src / "up", model="bicubic", scale=2, recursive=True)
    assert _statuses(_run([src], src / "up", model="bicubic", scale=2, recursive=True)) == ["skipped", "skipped"]


def test_collision_and_folder_lines_name_the_input(tmp_path):
    src = tmp_path / "in"
    _png(src / "a.png")
    PILImage.open(src / "a.png").save(src / "a.jpg", quality=95)
    out = tmp_path / "out"
    (out / "b.png").mkdir(parents=True)
    _png(src / "b.png")
    by_name = _run([src], out, model="bicubic", scale=2, format="png")
    statuses = sorted((by_name["a.png"].status, by_name["a.jpg"].status))
    assert statuses == ["failed", "ok"]  # the first in natural order (a.jpg) is written
    error = by_name["a.png"].error or by_name["a.jpg"].error
    assert str(src / "a.jpg") in error and str(src / "a.png") in error
    assert by_name["b.png"].status == "failed" and "is a folder" in by_name["b.png"].error


def test_a_newline_in_a_file_name_stays_on_one_line(tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    (src / "bad\nname.png").write_bytes(b"not an image at all")
    _png(src / "good.png")
    proc = run_sresr("upscale", str(src), "-o", str(tmp_path / "out"), "-m", "bicubic", "-s", "2")
    assert proc.returncode == 1
    lines = proc.stderr.splitlines()
    failed = [ln for ln in lines if ln.startswith("failed:")]
    assert len(failed) == 1 and "bad\\nname.png" in failed[0], proc.stderr
    # every other line is the model's description or a progress line: no fragment of a name
    assert all(ln.startswith(("failed:", "[", "bicubic x2")) for ln in lines), proc.stderr


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
    assert _statuses(_run([src], out, model="bicubic", scale=2)) == ["ok"]
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
    assert len([ln for ln in proc.stderr.splitlines() if ln.startswith("failed:")]) == len(failed)


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
        PILImage.fromarray((RNG.random((400, 400, 3)) * 255).astype(np.uint8)).save(_png(src / f"{i}.png"))
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


def test_debug_works_after_the_subcommand_too(tmp_path, capsys):
    from sresr.cli.main import main
    from sresr.errors import UnknownModelError

    src = _folder(tmp_path / "in", 1)
    args = ["upscale", str(src), "-o", str(tmp_path / "o"), "-m", "no-such-model"]
    for argv in (args + ["--debug"], ["--debug"] + args):
        with pytest.raises(UnknownModelError):  # --debug lets the exception through, with its traceback
            main(argv)
    with pytest.raises(SystemExit) as info:
        main(args)
    assert info.value.code == 2 and capsys.readouterr().err.startswith("error: unknown model")


def test_huge_outscale_is_a_usage_error(tmp_path, capsys):
    from sresr.cli.main import main

    src = _folder(tmp_path / "in", 1)
    with pytest.raises(SystemExit) as info:
        main(["upscale", str(src), "-o", str(tmp_path / "o"), "-m", "bicubic", "-s", "2", "--outscale", "1e9"])
    assert info.value.code == 2 and "outscale" in capsys.readouterr().err.lower()
    assert not (tmp_path / "o").exists()
