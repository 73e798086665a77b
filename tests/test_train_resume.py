"""Exact resume after SIGKILL/SIGINT, and checkpoints that are never half-written (real subprocesses)."""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sresr.atomic import TEMP_SUFFIX
import torch
from safetensors.torch import load_file

sys.path.insert(0, str(Path(__file__).resolve().parent))
from conftest import TRAIN_DATA as DATA  # noqa: E402
from conftest import TRAIN_PLUGIN as PLUGIN  # noqa: E402
from conftest import SRC, run_sresr, subprocess_env  # noqa: E402

CONFIG = f"""
model = "tinysr"
scale = 2
recipe = "resume-test"
iters = {{iters}}
seed = 11
ema = 0.9
threads = 1
checkpoint_every = 20
log_every = 10

[data]
train = ["{DATA / 'hr'}"]
patch_size = 24
batch_size = 4
workers = 1

[optim]
name = "adam"
lr = 0.01

[schedule]
name = "step"
step_size = 100
gamma = 0.5

[loss]
pixel = "l1"

[val]
data = "{DATA / 'val'}"
every = 100
"""

ITERS = 400


def _train_args(cfg: Path, out: Path) -> list[str]:
    return ["train", "tinysr", "--config", str(cfg), "--out", str(out), "-q"]


def _cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "sresr", *args]


def _env() -> dict[str, str]:
    return subprocess_env([PLUGIN], OMP_NUM_THREADS="1")


def _assert_same_run(a: Path, b: Path) -> None:
    wa, wb = load_file(str(a / "weights.safetensors")), load_file(str(b / "weights.safetensors"))
    assert wa.keys() == wb.keys()
    for k in wa:
        assert torch.equal(wa[k], wb[k]), f"EMA weights differ at {k}"
    ca = torch.load(a / "checkpoint.pt", weights_only=True)
    cb = torch.load(b / "checkpoint.pt", weights_only=True)
    assert ca["iteration"] == cb["iteration"] == ITERS
    for k in ca["model"]:
        assert torch.equal(ca["model"][k], cb["model"][k]), f"raw weights differ at {k}"
    for k in ca["ema"]:
        assert torch.equal(ca["ema"][k], cb["ema"][k])
    sa, sb = ca["optimizer"]["state"], cb["optimizer"]["state"]
    for i in sa:
        for key in ("exp_avg", "exp_avg_sq", "step"):
            assert torch.equal(sa[i][key], sb[i][key]), f"optimizer {key} differs"
    assert ca["scheduler"] == cb["scheduler"]
    assert ca["scheduler"]["last_epoch"] == ITERS and ca["scheduler"]["_last_lr"] == [0.01 * 0.5**4]


def _iterations(run: Path) -> list[int]:
    with open(run / "metrics.csv", newline="") as fh:
        return [int(r["iteration"]) for r in csv.DictReader(fh)]


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An uninterrupted run."""
    d = tmp_path_factory.mktemp("ref")
    cfg = d / "cfg.toml"
    cfg.write_text(CONFIG.format(iters=ITERS))
    proc = subprocess.run(_cmd(*_train_args(cfg, d / "run")), env=_env(), capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr
    return d / "run"


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT])
def test_killed_and_resumed_run_is_bit_identical(reference: Path, tmp_path: Path, sig: signal.Signals):
    cfg = tmp_path / "cfg.toml"
    cfg.write_text(CONFIG.format(iters=ITERS))
    run = tmp_path / "run"
    proc = subprocess.Popen(_cmd(*_train_args(cfg, run)), env=_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 300
    while not (run / "checkpoint.pt").exists():
        assert proc.poll() is None, proc.communicate()
        assert time.time() < deadline
        time.sleep(0.005)
    time.sleep(0.05)  # somewhere after the first checkpoint, maybe in the middle of the next one
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=120)
    if sig == signal.SIGINT:
        assert proc.returncode == 130, err
        assert "interrupted at iteration" in err and "--resume" in err
    else:
        assert proc.returncode == -signal.SIGKILL
    stopped = torch.load(run / "checkpoint.pt", weights_only=True)["iteration"]
    assert 0 < stopped < ITERS, "the run must be stopped in the middle"
    assert not (run / "weights.safetensors").exists()

    res = run_sresr("train", "tinysr", "--out", str(run), "--resume", "-q", extra_paths=[PLUGIN], OMP_NUM_THREADS="1")
    assert res.returncode == 0, res.stderr
    _assert_same_run(reference, run)
    its = _iterations(run)
    assert its == sorted(set(its)) and its[-1] == ITERS  # no duplicated rows from the killed part
    assert _iterations(reference) == its


def test_resume_of_a_finished_run_changes_nothing(tmp_path: Path):
    cfg = tmp_path / "cfg.toml"
    cfg.write_text(CONFIG.format(iters=12))
    run = tmp_path / "run"
    assert run_sresr(*_train_args(cfg, run), extra_paths=[PLUGIN]).returncode == 0
    before = (run / "weights.safetensors").read_bytes()
    res = run_sresr("train", "tinysr", "--out", str(run), "--resume", extra_paths=[PLUGIN])
    assert res.returncode == 0 and "already trained" in res.stdout
    assert (run / "weights.safetensors").read_bytes() == before
    # a different model on that run folder is refused
    res = run_sresr("train", "fsrcnn", "--out", str(run), "--resume", extra_paths=[PLUGIN])
    assert res.returncode == 2 and "tinysr" in res.stderr


_WRITER = """
import sys, torch
sys.path.insert(0, {src!r})
from pathlib import Path
from sresr.train.checkpoint import save_checkpoint
path = Path(sys.argv[1])
save_checkpoint(path, {{"iteration": 1, "w": torch.ones(10)}})
print("first", flush=True)
save_checkpoint(path, {{"iteration": 2, "w": torch.zeros(50_000_000)}})  # 200 MB: slow to write
print("second", flush=True)
"""


def test_checkpoint_killed_while_being_written_keeps_the_previous_one(tmp_path: Path):
    from sresr.train.checkpoint import clean_stale_temps as _clean_stale_temps, load_checkpoint

    script = tmp_path / "w.py"
    script.write_text(_WRITER.format(src=str(SRC)))
    ckpt = tmp_path / "run" / "checkpoint.pt"
    proc = subprocess.Popen([sys.executable, str(script), str(ckpt)], stdout=subprocess.PIPE, text=True,
                            env=_env())
    assert proc.stdout is not None and proc.stdout.readline().strip() == "first"
    deadline = time.time() + 120
    temps: list[Path] = []
    while not any(t.stat().st_size > 0 for t in temps if t.exists()):  # the second save has started writing
        temps = list(ckpt.parent.glob(".checkpoint.pt.*" + TEMP_SUFFIX))
        assert proc.poll() is None and time.time() < deadline, "the big save finished before the kill"
        time.sleep(0.001)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    state = load_checkpoint(ckpt)
    assert state["iteration"] == 1 and torch.equal(state["w"], torch.ones(10))
    assert list(ckpt.parent.glob(".checkpoint.pt.*" + TEMP_SUFFIX))  # the half-written temp file is all that was lost
    _clean_stale_temps(ckpt.parent)  # a resumed run removes it
    assert [p.name for p in ckpt.parent.iterdir()] == ["checkpoint.pt"]
