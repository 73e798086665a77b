"""``sresr train`` as the mission's own lines run it: dataset names people use, ablations as one
command line (``--set``), long runs said to be long, failed starts leaving nothing behind."""

from __future__ import annotations

import tomllib

import pytest

from conftest import run_sresr  # type: ignore[import-not-found]

from sresr.errors import UsageError
from sresr.train.config import TrainConfig, apply_settings, parse_setting
from sresr.train.recipes import get_recipe


def test_set_applies_any_key_typed_and_merges_free_tables():
    cfg = apply_settings(get_recipe("srresnet", 4), [
        "model_kwargs.blocks=8", "model_kwargs.norm=none", "model_kwargs.global_skip=false", "optim.lr=5e-4",
        "data.augment=false", "optim.lr_scale.@last=0.1", "schedule.milestones=[10, 20]", "optim.name=sgd",
    ])
    assert dict(cfg.model_kwargs) == {"blocks": 8, "norm": "none", "global_skip": False}
    assert cfg.optim.lr == 5e-4 and cfg.optim.name == "sgd" and cfg.data.augment is False
    assert dict(cfg.optim.lr_scale) == {"@last": 0.1} and cfg.schedule.milestones == (10, 20)
    assert parse_setting("loss.pixel=l1") == ("loss.pixel", "l1")  # a bare word is a string
    assert parse_setting('val.data="set14"') == ("val.data", "set14")
    for bad in ("nothing", "=3", "a..b=1"):
        with pytest.raises(UsageError, match="KEY=VALUE"):
            parse_setting(bad)
    with pytest.raises(UsageError, match="unknown config key 'optim.nope'"):
        apply_settings(TrainConfig(model="m"), ["optim.nope=1"])
    with pytest.raises(UsageError, match="must be a number"):
        apply_settings(TrainConfig(model="m"), ["optim.lr=fast"])


def test_set_on_the_command_line_is_one_ablation_per_line():
    proc = run_sresr("train", "srresnet", "-s", "4", "--set", "model_kwargs.blocks=12", "--set",
                     "model_kwargs.upsampler=bicubic", "--iters", "7", "--set", "iters=9", "--print-config", check=True)
    cfg = tomllib.loads(proc.stdout)
    assert cfg["model_kwargs"] == {"blocks": 12, "upsampler": "bicubic"}
    assert cfg["iters"] == 9  # --set comes after the options
    bad = run_sresr("train", "srresnet", "--set", "optim.nope=1", "--print-config")
    assert bad.returncode == 2 and "unknown config key 'optim.nope'" in bad.stderr


def test_div2k_means_the_training_set_and_offline_says_what_to_do(tmp_path):
    run = tmp_path / "runs" / "v"
    proc = run_sresr("train", "vdsr", "--data", "div2k", "--iters", "5", "--out", str(run))
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert "DIV2K_train_HR.zip" in proc.stderr and "--data FOLDER" in proc.stderr
    assert "unknown dataset" not in proc.stderr
    assert not (tmp_path / "runs").exists()  # neither the run folder nor the runs/ made for it


def test_a_failed_start_leaves_no_run_folder(tmp_path):
    run = tmp_path / "run"
    proc = run_sresr("train", "fsrcnn", "--data", str(tmp_path / "nowhere"), "--iters", "5", "--out", str(run))
    assert proc.returncode in (1, 2) and not run.exists()


def test_a_run_of_days_says_so_and_names_a_shorter_one():
    import torch

    from sresr.train.loop import _long_run_warning

    cfg = get_recipe("vdsr", 2)  # 80k iterations
    slow = _long_run_warning(cfg, it=20, start=0, seconds=30.0, device=torch.device("cpu"))
    assert slow is not None and "1.4 days" in slow and "--iters 2400" in slow and "GPU" in slow
    assert _long_run_warning(cfg, it=20, start=0, seconds=1.0, device=torch.device("cpu")) is None
