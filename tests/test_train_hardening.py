"""``sresr train`` on damaged or hostile input: a run folder that lost its config.toml, damaged
checkpoints, malformed/malicious --init files, a non-integer RANK, a wrong model kwarg. Real files
and real subprocesses; each message is one ``error:`` line (plus a ``hint:``), never a traceback."""

from __future__ import annotations

import pickle
import shutil
import struct
import sys
import zipfile
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from sresr.train.config import load_toml, override, to_dict

sys.path.insert(0, str(Path(__file__).resolve().parent))
from conftest import TRAIN_DATA as DATA  # noqa: E402
from conftest import TRAIN_PLUGIN as PLUGIN  # noqa: E402
from conftest import run_sresr  # noqa: E402

CONFIG = f"""
model = "tinysr"
scale = 2
recipe = "hardening-test"
iters = {{iters}}
seed = 5
ema = 0.9
threads = 1
checkpoint_every = 10
log_every = 10

[data]
train = ["{DATA / 'hr'}"]
patch_size = 24
batch_size = 4
workers = 0

[optim]
name = "adam"
lr = 0.01

[schedule]
name = "step"
step_size = 15
gamma = 0.5

[loss]
pixel = "l1"

[val]
data = "{DATA / 'val'}"
every = 0
"""


def _sresr(*args: str, **env: str):
    return run_sresr(*args, extra_paths=[PLUGIN], OMP_NUM_THREADS="1", **env)


_TRAINED: dict[int, Path] = {}  # iterations -> a finished run, trained once per module
_BASE: list[Path] = []


@pytest.fixture(scope="module", autouse=True)
def _trained_runs(tmp_path_factory: pytest.TempPathFactory):
    _BASE.append(tmp_path_factory.mktemp("trained"))
    yield
    _BASE.clear()
    _TRAINED.clear()


def _train_run(tmp_path: Path, iters: int) -> tuple[Path, Path]:
    """A finished tinysr run (a checkpoint every 10 iterations): (config file, run folder), a copy
    of one trained once for the module (each test damages its own copy)."""
    cfg = tmp_path / "cfg.toml"
    cfg.write_text(CONFIG.format(iters=iters))
    if iters not in _TRAINED:
        run = _BASE[0] / f"run{iters}"
        res = _sresr("train", "tinysr", "--config", str(cfg), "--out", str(run), "-q")
        assert res.returncode == 0, res.stderr
        _TRAINED[iters] = run
    run = tmp_path / "run"
    shutil.copytree(_TRAINED[iters], run)
    return cfg, run


def _lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]


def _one_error(res, code: int) -> str:
    """The error line of a failed command: exit ``code``, one ``error:`` line plus at most a hint."""
    assert res.returncode == code, (res.returncode, res.stdout, res.stderr)
    assert "Traceback" not in res.stderr and "Traceback" not in res.stdout
    lines = _lines(res.stderr)
    assert 1 <= len(lines) <= 2, res.stderr
    assert lines[0].startswith("error: "), res.stderr
    assert all(line.startswith("hint: ") for line in lines[1:]), res.stderr
    return lines[0]


def _flip_tensor_byte(path: Path) -> None:
    """Flip one byte in the middle of the largest tensor storage of a torch.save zip (the data of a
    record, not the zip's headers or directory)."""
    with zipfile.ZipFile(path) as z:
        rec = max((i for i in z.infolist() if "/data/" in i.filename and not i.filename.endswith("/")),
                  key=lambda i: i.file_size)
        assert rec.compress_type == zipfile.ZIP_STORED
    raw = bytearray(path.read_bytes())
    off = rec.header_offset
    assert raw[off:off + 4] == b"PK\x03\x04"
    name_len, extra_len = struct.unpack("<HH", raw[off + 26:off + 30])
    raw[off + 30 + name_len + extra_len + rec.file_size // 2] ^= 0x10
    path.write_bytes(bytes(raw))


def _all_tensors(obj, where: str = ""):
    """(path, tensor) for every tensor in a nested payload."""
    if isinstance(obj, torch.Tensor):
        yield where, obj
    elif isinstance(obj, dict):
        for k, v in obj.items():
            yield from _all_tensors(v, f"{where}/{k}")
    elif isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            yield from _all_tensors(v, f"{where}/{i}")


def _tensors_equal(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


# -- 1. a --resume whose config.toml is gone ---------------------------------------------------------


def test_resume_without_config_toml_continues_with_the_config_its_checkpoint_records(tmp_path: Path):
    cfgfile, run = _train_run(tmp_path, iters=20)
    (run / "config.toml").unlink()
    res = _sresr("train", "tinysr", "--out", str(run), "--resume", "--iters", "30")
    assert res.returncode == 0, res.stderr
    warnings = _lines(res.stderr)
    assert len(warnings) == 1 and warnings[0].startswith("warning: "), res.stderr
    assert "config.toml is missing" in warnings[0] and str(run / "checkpoint.pt") in warnings[0]
    assert "iteration 20" in warnings[0]
    assert f"resumed from {run / 'checkpoint.pt'} at iteration 20" in res.stdout
    # the run went on with its own config (data, lr, schedule, seed...), not the recipe's, and says so in config.toml
    expected = override(load_toml(cfgfile), {"iters": 30})
    assert to_dict(load_toml(run / "config.toml")) == to_dict(expected)
    assert torch.load(run / "checkpoint.pt", weights_only=True)["iteration"] == 30


def test_resume_without_config_toml_nor_a_recorded_config_is_refused(tmp_path: Path):
    _, run = _train_run(tmp_path, iters=10)
    (run / "config.toml").unlink()
    state = torch.load(run / "checkpoint.pt", weights_only=True)
    for key in ("config", "sha256"):
        state.pop(key, None)
    state["format"] = "sresr-train-checkpoint-1"
    torch.save(state, run / "checkpoint.pt")
    line = _one_error(_sresr("train", "tinysr", "--out", str(run), "--resume", "--data", str(DATA / "hr")), 2)
    assert "config.toml is missing" in line and "checkpoint.pt" in line
    assert not (run / "config.toml").exists()


def test_resume_of_an_empty_folder_still_starts_from_scratch(tmp_path: Path):
    run = tmp_path / "empty"
    res = _sresr("train", "tinysr", "--out", str(run), "--resume", "--data", str(DATA / "hr"), "--iters", "2",
                 "--patch-size", "24", "--val-data", str(DATA / "val"))
    assert res.returncode == 0, res.stderr
    assert "nothing to resume" in res.stdout
    assert torch.load(run / "checkpoint.pt", weights_only=True)["iteration"] == 2


# -- 2. checksummed checkpoints, the previous one kept -------------------------------------------------


def test_damaged_checkpoint_resumes_from_the_previous_one_and_ends_as_the_uninterrupted_run(tmp_path: Path):
    _, run = _train_run(tmp_path, iters=20)
    ckpt, prev = run / "checkpoint.pt", run / "checkpoint.prev.pt"
    assert torch.load(ckpt, weights_only=True)["iteration"] == 20
    assert torch.load(prev, weights_only=True)["iteration"] == 10
    reference = load_file(str(run / "weights.safetensors"))  # the uninterrupted run's final (EMA) weights

    before = dict(_all_tensors(torch.load(ckpt, weights_only=True)))
    _flip_tensor_byte(ckpt)
    after_state = torch.load(ckpt, weights_only=True)  # torch.load does not notice...
    after = dict(_all_tensors(after_state))
    assert after_state["iteration"] == 20 and before.keys() == after.keys()
    assert sum(not torch.equal(before[k], after[k]) for k in before) == 1  # ... that one tensor is not what was saved
    (run / "weights.safetensors").unlink()  # the resume must compute them again

    res = _sresr("train", "tinysr", "--out", str(run), "--resume", "-q")
    assert res.returncode == 0, res.stderr
    lines = _lines(res.stderr)
    assert len(lines) == 1 and lines[0].startswith("warning: "), res.stderr
    assert str(ckpt) in lines[0] and str(prev) in lines[0] and "iteration 10" in lines[0]
    assert "checksum" in lines[0]
    assert _tensors_equal(load_file(str(run / "weights.safetensors")), reference)  # bit for bit
    # the damaged file was replaced by a good one, and was not kept as the previous checkpoint
    assert torch.load(ckpt, weights_only=True)["iteration"] == 20
    assert torch.load(prev, weights_only=True)["iteration"] == 10


@pytest.mark.parametrize("damage", ["both", "newest-and-no-previous"])
def test_no_good_checkpoint_is_one_error_naming_the_files(tmp_path: Path, damage: str):
    _, run = _train_run(tmp_path, iters=20)
    ckpt, prev = run / "checkpoint.pt", run / "checkpoint.prev.pt"
    _flip_tensor_byte(ckpt)
    if damage == "both":
        _flip_tensor_byte(prev)
    else:
        prev.unlink(missing_ok=True)
    before = ckpt.read_bytes()
    line = _one_error(_sresr("train", "tinysr", "--out", str(run), "--resume", "-q"), 1)
    assert str(ckpt) in line and "checksum" in line
    assert (str(prev) in line) if damage == "both" else ("no previous checkpoint" in line)
    assert ckpt.read_bytes() == before  # nothing was overwritten


def test_checkpoint_without_a_checksum_still_resumes_with_a_note(tmp_path: Path):
    """A run checkpointed by an older sresr (format 1: no checksum, no previous checkpoint)."""
    _, run = _train_run(tmp_path, iters=20)
    state = torch.load(run / "checkpoint.pt", weights_only=True)
    state.pop("sha256", None)
    state["format"] = "sresr-train-checkpoint-1"
    torch.save(state, run / "checkpoint.pt")
    (run / "checkpoint.prev.pt").unlink(missing_ok=True)
    res = _sresr("train", "tinysr", "--out", str(run), "--resume", "--iters", "30")
    assert res.returncode == 0, res.stderr
    lines = _lines(res.stderr)
    assert len(lines) == 1 and "carries no checksum" in lines[0] and str(run / "checkpoint.pt") in lines[0], \
        res.stderr
    assert f"resumed from {run / 'checkpoint.pt'} at iteration 20" in res.stdout
    assert torch.load(run / "checkpoint.pt", weights_only=True)["iteration"] == 30


# -- 3a. --init files ---------------------------------------------------------------------------------


class _RunsCode:
    """Unpickling this would create a file: sresr must refuse it without running it."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def _bad_init(kind: str, d: Path, marker: Path) -> Path:
    if kind == "bare-tensor":
        torch.save(torch.zeros(3), d / "bare.pth")
        return d / "bare.pth"
    if kind == "no-state-dict":
        torch.save({"epoch": 3, "note": "no weights here"}, d / "nokey.pth")
        return d / "nokey.pth"
    if kind == "not-a-checkpoint":
        (d / "text.pth").write_text("hello, I am not a checkpoint\n")
        return d / "text.pth"
    if kind == "code-in-torch-save":
        torch.save({"model": _RunsCode(marker)}, d / "evil.pth")
        return d / "evil.pth"
    if kind == "code-in-raw-pickle":
        with open(d / "evil.pkl.pth", "wb") as fh:
            pickle.dump(_RunsCode(marker), fh, protocol=2)
        return d / "evil.pkl.pth"
    raise AssertionError(kind)


@pytest.mark.parametrize("kind", ["bare-tensor", "no-state-dict", "not-a-checkpoint", "code-in-torch-save",
                                  "code-in-raw-pickle"])
def test_bad_init_file_is_one_error_naming_it(tmp_path: Path, kind: str):
    marker = tmp_path / "code-ran"
    path = _bad_init(kind, tmp_path, marker)
    cfg = tmp_path / "cfg.toml"
    cfg.write_text(CONFIG.format(iters=2))
    line = _one_error(_sresr("train", "tinysr", "--config", str(cfg), "--init", str(path), "--out",
                             str(tmp_path / "run")), 1)
    assert path.name in line
    assert not marker.exists(), "code from the file ran"
    assert not (tmp_path / "run" / "checkpoint.pt").exists()


def test_init_reads_the_checkpoint_layouts_that_weights_reads(tmp_path: Path):
    """A BasicSR-style ``{"net_g": {"module.KEY": tensor}}`` file initialises every tensor."""
    cfgfile, run = _train_run(tmp_path, iters=10)
    weights = load_file(str(run / "weights.safetensors"))
    init = tmp_path / "netg.pth"
    torch.save({"net_g": {f"module.{k}": v for k, v in weights.items()}, "iter": 10}, init)
    res = _sresr("train", "tinysr", "--config", str(cfgfile), "--init", str(init), "--iters", "1",
                 "--out", str(tmp_path / "run2"))
    assert res.returncode == 0, res.stderr
    n = len(weights)
    assert f"initialised {n}/{n} tensors from {init}" in res.stdout


def test_init_model_tag(tmp_path: Path):
    res = _sresr("train", "fsrcnn", "-s", "2", "--init", "fsrcnn.x2", "--iters", "2", "--data", str(DATA / "hr"),
                 "--val-data", str(DATA / "val"), "--patch-size", "20", "--batch-size", "4",
                 "--out", str(tmp_path / "run"))
    assert res.returncode == 0, res.stderr
    found = [line for line in res.stdout.splitlines() if line.startswith("initialised ")]
    assert len(found) == 1 and found[0].endswith("tensors from fsrcnn.x2"), res.stdout
    loaded, total = found[0].split()[1].split("/")
    assert loaded == total and int(total) > 0


# -- 3b. torchrun's variables ---------------------------------------------------------------------------


@pytest.mark.parametrize("command,var", [("train", "RANK"), ("train", "WORLD_SIZE"), ("train", "LOCAL_RANK"),
                                         ("upscale", "RANK")])
def test_non_integer_rank_variable_is_a_usage_error_naming_it(tmp_path: Path, command: str, var: str):
    if command == "train":
        cfg = tmp_path / "cfg.toml"
        cfg.write_text(CONFIG.format(iters=2))
        args = ["train", "tinysr", "--config", str(cfg), "--out", str(tmp_path / "run"), "-q"]
    else:
        args = ["upscale", str(DATA / "val" / "bird.png"), "-o", str(tmp_path / "out"), "-m", "bicubic", "-s", "2"]
    line = _one_error(_sresr(*args, **{var: "x"}), 2)
    assert f"{var}='x'" in line and "integer" in line
    assert not (tmp_path / "run").exists() or not any((tmp_path / "run").glob("*.pt"))
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


# -- 3c. model kwargs ---------------------------------------------------------------------------------


def test_unknown_model_kwarg_in_training_config_is_a_usage_error(tmp_path: Path):
    """Needs the central check in ModelSpec.build (sresr.spec)."""
    cfg = tmp_path / "cfg.toml"
    cfg.write_text('[model_kwargs]\nnorm = "bn"\n')
    line = _one_error(_sresr("train", "fsrcnn", "-s", "2", "--config", str(cfg), "--iters", "1", "--data",
                             str(DATA / "hr"), "--val-data", str(DATA / "val"), "--patch-size", "20",
                             "--out", str(tmp_path / "run")), 2)
    assert "'norm'" in line
