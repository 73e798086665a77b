"""DDP with the gloo backend: 2 real processes under torchrun on CPU."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

sys.path.insert(0, str(Path(__file__).resolve().parent))
from conftest import TRAIN_DATA as DATA  # noqa: E402
from conftest import TRAIN_PLUGIN as PLUGIN  # noqa: E402
from conftest import subprocess_env  # noqa: E402

CONFIG = f"""
model = "tinysr"
scale = 2
iters = 25
seed = 3
threads = 1
checkpoint_every = 10
device = "cpu"  # gloo on the CPU: two ranks on one GPU is not what this tests (NCCL refuses it)
[data]
train = ["{DATA / 'hr'}"]
patch_size = 24
batch_size = 8
[optim]
name = "adam"
lr = 0.003
[loss]
pixel = "mse"
[val]
data = "{DATA / 'val'}"
every = 10
"""

SCRIPT = """
import os, sys
from safetensors.torch import save_file
from sresr.train.config import load_toml
from sresr.train.loop import train
cfg = load_toml(sys.argv[1])
result = train(cfg, sys.argv[2], progress=False, log=lambda m: None)
rank = int(os.environ.get("RANK", "0"))
state = {k: v.detach().contiguous() for k, v in result.module.state_dict().items()}
save_file(state, os.path.join(sys.argv[3], f"rank{rank}.safetensors"))
"""


@pytest.mark.slow
def test_two_gloo_processes_match_one_process_with_the_same_global_batch(tmp_path: Path):
    cfg = tmp_path / "cfg.toml"
    cfg.write_text(CONFIG)
    script = tmp_path / "ddp_train.py"
    script.write_text(SCRIPT)
    env = subprocess_env([PLUGIN], OMP_NUM_THREADS="1")
    (tmp_path / "ddp").mkdir()
    (tmp_path / "single").mkdir()
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nnodes=1", "--nproc_per_node=2",
         str(script), str(cfg),
         str(tmp_path / "ddp_run"), str(tmp_path / "ddp")],
        env=env, capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    proc = subprocess.run([sys.executable, str(script), str(cfg), str(tmp_path / "single_run"),
                           str(tmp_path / "single")], env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]

    r0, r1 = load_file(str(tmp_path / "ddp" / "rank0.safetensors")), load_file(str(tmp_path / "ddp" / "rank1.safetensors"))
    single = load_file(str(tmp_path / "single" / "rank0.safetensors"))
    for k in single:
        assert torch.equal(r0[k], r1[k]), f"replicas differ at {k}"
        assert torch.allclose(r0[k], single[k], rtol=1e-4, atol=1e-5), (k, (r0[k] - single[k]).abs().max())
    # rank 0 alone wrote the run folder, and its weights are the replicas'
    written = load_file(str(tmp_path / "ddp_run" / "weights.safetensors"))
    for k in written:
        assert torch.equal(written[k], r0[k])
    assert sorted(p.name for p in (tmp_path / "ddp_run").iterdir()) == sorted(
        p.name for p in (tmp_path / "single_run").iterdir())
    # and training did move the weights away from their initialisation (seed 3), so the comparison means something
    sys.path.insert(0, str(PLUGIN))
    try:
        from tinysr_train.arch import tiny

        torch.manual_seed(3)
        init = tiny(2).state_dict()
    finally:
        sys.path.remove(str(PLUGIN))
    assert all(k in init and init[k].shape == single[k].shape for k in single)
    assert all(float((single[k] - init[k]).abs().max()) > 1e-3 for k in single)
