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


def _paired_folder(root, n=3, scale=2):
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(4)
    (root / "hr").mkdir(parents=True)
    (root / "lr").mkdir()
    for i in range(n):
        hr = (rng.random((40, 48, 3)) * 255).astype(np.uint8)
        Image.fromarray(hr).save(root / "hr" / f"{i:04d}.png")
        # a degradation of the user's own (nearest neighbour), not the protocol's bicubic
        Image.fromarray(hr[::scale, ::scale].copy()).save(root / "lr" / f"{i:04d}x{scale}.png")
    return root / "hr", root / "lr"


def test_paired_data_trains_on_the_given_lr_images(tmp_path):
    import numpy as np
    import torch
    from PIL import Image

    from sresr.train.data import DeviceBatcher, PatchDataset, load_paired, pair_files, resolve_sources

    hr_dir, lr_dir = _paired_folder(tmp_path)
    (lr_dir / "0000.png").write_bytes((lr_dir / "0000x2.png").read_bytes())  # two LR images for one HR
    Image.fromarray(np.zeros((5, 5, 3), np.uint8)).save(lr_dir / "0002x2.png")  # wrong size
    lines: list[str] = []
    files = pair_files(resolve_sources([str(hr_dir)]), [str(lr_dir)], 2, lines.append)
    assert [(h.name, lr.name) for h, lr in files] == [("0001.png", "0001x2.png"), ("0002.png", "0002x2.png")]
    assert any("0000.png: several LR images: 0000.png, 0000x2.png" in ln for ln in lines)
    pairs = load_paired(files, 2, "rgb", False, min_hr=16, log=lines.append)
    assert [p.name for p in pairs[2]] == ["0001.png"]
    assert any("0002x2.png (5x5) is not the x2 LR of" in ln for ln in lines)
    ds = PatchDataset(pairs, patch_size=16, batch_size=4, seed=1, augment=False, upsampled=False)
    lr_image = np.asarray(Image.open(lr_dir / "0001x2.png")).transpose(2, 0, 1)
    inp, hr = DeviceBatcher(ds, torch.device("cpu")).batch(0)
    for j in range(4):
        _, _, y, x, *_ = ds.sample(j)
        want = torch.from_numpy(lr_image[:, y:y + 8, x:x + 8].copy()).float() / 255
        assert torch.equal(inp[j], want)


def test_paired_data_on_the_command_line(tmp_path):
    hr_dir, lr_dir = _paired_folder(tmp_path)
    proc = run_sresr("train", "fsrcnn", "-s", "2", "--data", str(hr_dir), "--data-lr", str(lr_dir), "--iters", "3",
                     "--patch-size", "16", "--batch-size", "2", "--val-every", "0", "--out", str(tmp_path / "run"),
                     "--device", "cpu")
    assert proc.returncode == 0, proc.stderr
    assert "training data: 3 images (paired with the given LR images) x2" in proc.stdout
    assert "paired LR data: training x2 alone" in proc.stdout  # FSRCNN's resize augmentation is off
    nothing = run_sresr("train", "fsrcnn", "-s", "2", "--data", str(hr_dir), "--data-lr", str(tmp_path),
                        "--iters", "3", "--out", str(tmp_path / "run2"))
    assert nothing.returncode == 1 and "no HR image has an LR image of its name" in nothing.stderr
