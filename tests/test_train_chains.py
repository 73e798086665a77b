"""Chains of training stages (recipes/chains/*.toml): every shipped chain expands, the bundled
weights are the last stage of the chain their spec names (checked against what the bundled files
recorded when they were made), and a small chain runs, continues and skips end to end."""

from __future__ import annotations

import json

import pytest

from conftest import ROOT, run_sresr  # type: ignore[import-not-found]

from sresr.errors import UsageError
from sresr.registry import entries
from sresr.train.chain import load_chain
from sresr.weights import _bundled_path, read_metadata

CHAINS = sorted((ROOT / "recipes" / "chains").glob("*.toml"))
DATA = ROOT / "tests" / "data" / "train"


def _bundled():
    for name, e in entries().items():
        for w in (e.spec.weights if e.spec else ()):
            if w.file and name in ("fsrcnn", "espcn", "srcnn"):
                yield name, w


@pytest.mark.parametrize("path", CHAINS, ids=[p.stem for p in CHAINS])
def test_every_chain_file_expands(path):
    chain = load_chain(path)
    assert chain.stages and len({st.name for st in chain.stages}) == len(chain.stages)
    for k, st in enumerate(chain.stages):
        assert st.config.model == chain.model
        if k == 0:
            assert st.init_run is None and st.config.init_weights == ""
        else:  # each stage starts from the stage before, through its weights file
            assert st.init_run == chain.stages[k - 1].name
            assert st.config.init_weights == f"runs/{st.init_run}/weights.safetensors"
        assert st.config.recipe != "fsrcnn-finetune" or st.config.trainable == ("@last",)  # names say what trains


@pytest.mark.parametrize("model,variant", list(_bundled()), ids=[f"{m}.{w.tag}" for m, w in _bundled()])
def test_bundled_weights_come_from_their_chain(model, variant):
    """The spec names the chain; the bundled file's own record (written by recipes/bundle.py from
    the real runs) lists the same stages with the same iterations, and the last stage's config is
    the bundled network's (model kwargs, scale)."""
    chain = load_chain(ROOT / variant.recipe)
    meta = read_metadata(_bundled_path(variant))
    assert meta["sresr.recipe_file"] == variant.recipe
    last = chain.stages[-1].config
    assert last.scale == variant.scale and int(meta["sresr.iterations"]) == last.iters
    assert json.loads(meta["sresr.kwargs"]) == dict(last.model_kwargs) or not last.model_kwargs
    recorded = json.loads(meta.get("sresr.stages", "[]"))
    if recorded:  # the FSRCNN and the polished ESPCN chains recorded every stage
        assert [(r["run"], r["iterations"]) for r in recorded] == [(st.name, st.config.iters) for st in chain.stages]
        data = {d.lower() for r in recorded for d in r.get("data") or []}
        assert data <= {d for st in chain.stages for d in st.config.data.train}
    else:
        assert len(chain.stages) == 1


def test_stage_errors_name_the_file_and_the_stage(tmp_path):
    bad = tmp_path / "c.toml"
    bad.write_text('model = "fsrcnn"\nscale = 2\nrecipe = "fsrcnn"\n[[stage]]\nname = "a"\noptim.nope = 1\n')
    with pytest.raises(UsageError, match=r"c.toml, stage 'a': unknown config key 'optim.nope'"):
        load_chain(bad)
    bad.write_text('model = "fsrcnn"\nscale = 2\n[[stage]]\nname = "a"\n[[stage]]\nname = "b"\ninit = "zz"\n')
    with pytest.raises(UsageError, match="starts from 'zz', which no earlier stage makes"):
        load_chain(bad)
    bad.write_text('model = "fsrcnn"\nscale = 2\n[[stage]]\nname = "a"\ninit_weights = "x.pth"\n')
    with pytest.raises(UsageError, match="sets init_weights"):
        load_chain(bad)


CHAIN = f"""
model = "fsrcnn"
scale = 3
recipe = "fsrcnn"
description = "a test chain"

[defaults]
threads = 1
iters = 4
log_every = 1
checkpoint_every = 2
val.data = "{DATA / 'val'}"
val.every = 4
data.train = ["{DATA / 'hr'}"]
data.patch_size = 24
data.batch_size = 2
data.resize_factors = []
model_kwargs = {{deconv_padding = 4}}

[[stage]]
name = "a"
scale = 2

[[stage]]
name = "b"
init_transform = "sresr.models.fsrcnn.arch:center_init"
model_kwargs = {{deconv_padding = 3}}
"""


def test_a_chain_runs_continues_and_skips(tmp_path):
    chain = tmp_path / "chain.toml"
    chain.write_text(CHAIN)
    runs = tmp_path / "runs"
    printed = run_sresr("train", "--chain", str(chain), "--out", str(runs), "--print-config", "--stage", "b",
                        check=True).stdout
    assert f'init_weights = "{runs}/a/weights.safetensors"' in printed and "deconv_padding = 3" in printed
    first = run_sresr("train", "--chain", str(chain), "--out", str(runs), "--device", "cpu", check=True)
    assert "stage 1/2 a: training 4 iterations" in first.stdout
    assert "stage 2/2 b: training 4 iterations from a" in first.stdout
    assert f"initialised 23/23 tensors from {runs}/a/weights.safetensors" in first.stdout
    assert "transformed by sresr.models.fsrcnn.arch:center_init" in first.stdout
    b = read_metadata(runs / "b" / "weights.safetensors")
    assert b["sresr.scale"] == "3" and json.loads(b["sresr.kwargs"]) == {"deconv_padding": 3}
    again = run_sresr("train", "--chain", str(chain), "--out", str(runs), "--device", "cpu", check=True)
    assert "stage 1/2 a: done" in again.stdout and "stage 2/2 b: done" in again.stdout
    # a longer last stage continues from its own checkpoint
    chain.write_text(CHAIN + "iters = 6\n")
    longer = run_sresr("train", "--chain", str(chain), "--out", str(runs), "--device", "cpu", check=True)
    assert "stage 1/2 a: done" in longer.stdout and "stage 2/2 b: resuming 6 iterations" in longer.stdout
    assert read_metadata(runs / "b" / "weights.safetensors")["sresr.iterations"] == "6"
    wrong = run_sresr("train", "--chain", str(chain), "--out", str(runs), "--iters", "9")
    assert wrong.returncode == 2 and "--iters does not go with --chain" in wrong.stderr


@pytest.mark.parametrize("name", ["..", ".", ".hidden", "a/b", "a\\\\b", "", "x" * 101])
def test_a_stage_name_that_leaves_the_runs_folder_is_refused(tmp_path, name):
    """A stage's name is its run folder under the runs folder: "..", a path or a hidden name would
    train (and later resume, or skip as done) somewhere else."""
    chain = tmp_path / "chain.toml"
    chain.write_text(f'model = "fsrcnn"\nscale = 2\nrecipe = "fsrcnn"\n\n[[stage]]\nname = "{name}"\n')
    with pytest.raises(UsageError, match="has no valid name"):
        load_chain(chain, runs=tmp_path / "runs")
    chain.write_text('model = "fsrcnn"\nscale = 2\nrecipe = "fsrcnn"\n\n[[stage]]\nname = "x2_run-1.b"\n')
    assert load_chain(chain, runs=tmp_path / "runs").stages[0].name == "x2_run-1.b"
