"""A few iterations of every built-in recipe with the real built-in models, on tiny data (CPU)."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from sresr.errors import SresrError
from sresr.train.config import override
from sresr.train.loop import train
from sresr.train.recipes import RECIPES, get_recipe

DATA = Path(__file__).resolve().parent / "data" / "train"

# smaller networks of the same architectures, so that every recipe runs in seconds
SMALL = {
    "srresnet": {"blocks": 2}, "srgan": {"blocks": 2}, "edsr": {"blocks": 2}, "esrgan": {"blocks": 1},
    "vdsr": {"depth": 5},
}


@pytest.fixture(scope="module")
def vgg_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A VGG19 state dict in torchvision's layout (random weights, classifier included) for the
    perceptual losses of the GAN recipes: no torchvision and no download needed."""
    import torch

    from sresr.models.vgg import VGG19Features

    torch.manual_seed(0)
    state = dict(VGG19Features().state_dict())
    state["classifier.6.weight"], state["classifier.6.bias"] = torch.zeros(10, 4), torch.zeros(10)
    path = tmp_path_factory.mktemp("vgg") / "vgg19-random.pth"
    torch.save(state, path)
    return path


@pytest.fixture(scope="module")
def big_images(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two 136x136 training images (the GAN recipes take 128x128 HR patches)."""
    d = tmp_path_factory.mktemp("big")
    for p in sorted((DATA / "hr").glob("*.png"))[:2]:
        Image.open(p).resize((136, 136), Image.BICUBIC).save(d / p.name)
    return d


def _quick(name: str, scale: int, data: Path, **changes) -> object:
    cfg = get_recipe(name, scale)
    model = cfg.model or "fsrcnn"
    patch = cfg.data.patch_size if cfg.gan.weight else 24  # the GAN recipes' own: 96 (SRGAN), 128 (ESRGAN)
    base = {
        "model": model, "data.train": [str(data)], "val.data": str(DATA / "val"), "iters": 3,
        "data.patch_size": patch, "data.batch_size": 2, "data.workers": 0, "val.every": 3, "checkpoint_every": 2,
        "init_weights": "", "trainable": [] if cfg.trainable != ("@last",) else ["@last"], "threads": 1,
        "model_kwargs": SMALL.get(model, {}), "log_every": 1,
    }
    base.update(changes)
    return override(cfg, base)


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow) if n in ("srgan", "esrgan") else n
                                  for n in RECIPES if n != "generic"])
def test_every_recipe_runs_a_few_iterations(name: str, tmp_path: Path, big_images: Path, vgg_file: Path):
    cfg0 = get_recipe(name)
    scale = 3 if name in ("srcnn", "espcn", "fsrcnn-finetune") else (2 if cfg0.model in ("vdsr", "fsrcnn") else 4)
    cfg = _quick(name, scale, big_images if cfg0.gan.weight else DATA / "hr")
    if cfg.loss.perceptual_weight:  # the GAN stages run with their VGG loss, without torchvision
        cfg = override(cfg, {"loss.vgg_weights": str(vgg_file)})
    res = train(cfg, tmp_path / "run", progress=False, log=lambda m: None)
    assert res.iterations == 3 and res.weights is not None and res.weights.is_file()
    assert np.isfinite(res.val["psnr"])
    with open(tmp_path / "run" / "metrics.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [int(r["iteration"]) for r in rows] == [1, 2, 3]
    if cfg.gan.weight:
        assert all(r["loss_adv"] and r["loss_d"] for r in rows)
    if cfg.loss.perceptual_weight:
        assert all(float(r["loss_perceptual"]) > 0 for r in rows)


@pytest.mark.parametrize("model,scale", [("fsrcnn", 2), ("espcn", 3), ("srcnn", 3)])
def test_loss_decreases_for_the_simple_models(model: str, scale: int, tmp_path: Path):
    cfg = _quick(model, scale, DATA / "hr", iters=40, **{"data.batch_size": 8, "optim.lr": 3e-3, "val.every": 0})
    train(cfg, tmp_path / "run", progress=False, log=lambda m: None)
    with open(tmp_path / "run" / "metrics.csv", newline="") as fh:
        losses = [float(r["loss"]) for r in csv.DictReader(fh)]
    assert len(losses) == 40
    assert np.mean(losses[-8:]) < 0.7 * np.mean(losses[:4]), losses


def test_fsrcnn_finetune_retrains_only_the_deconvolution(tmp_path: Path):
    from safetensors.torch import load_file

    x2 = train(_quick("fsrcnn", 2, DATA / "hr"), tmp_path / "x2", progress=False, log=lambda m: None)
    cfg = _quick("fsrcnn-finetune", 3, DATA / "hr", init_weights=str(x2.weights))
    x3 = train(cfg, tmp_path / "x3", progress=False, log=lambda m: None)
    a, b = load_file(str(x2.weights)), load_file(str(x3.weights))
    changed = sorted(k for k in a if not np.array_equal(a[k].numpy(), b[k].numpy()))
    assert changed and all(k.startswith("last_part") for k in changed), changed


@pytest.mark.parametrize("model", ["srgan", "esrgan"])
def test_gan_stages_chain_through_their_default_run_folders(model: str):
    """Stage 2 starts from the weights stage 1 writes, with the README's commands (no --out)."""
    from sresr.cli.train import build_config

    cfg1, run1 = build_config(model, 4, f"{model}-pretrain", None, None, False, {})
    cfg2, run2 = build_config(model, 4, None, None, None, False, {})
    assert run1 != run2
    assert Path(cfg2.init_weights) == run1 / "weights.safetensors"
    if model == "srgan":
        cfg3, run3 = build_config(model, 4, "srgan-l1", None, None, False, {})
        assert Path(cfg3.init_weights) == run1 / "weights.safetensors" and run3 not in (run1, run2)
        assert (cfg3.loss.pixel, cfg3.loss.pixel_weight, cfg3.loss.perceptual_weight, cfg3.gan.weight) == \
            ("l1", 1.0, 0.0, 1e-3)


def test_srgan_trains_on_the_papers_96_pixel_patches(tmp_path: Path, big_images: Path):
    """The paper's patch size reaches the discriminator (it used to stop: 'expected 128x128 input')."""
    cfg = _quick("srgan-l1", 4, big_images, **{"data.patch_size": 96})
    res = train(cfg, tmp_path / "run", progress=False, log=lambda m: None)
    assert res.iterations == 3
    with pytest.raises(SresrError, match="discriminator takes 128x128 patches"):
        train(override(cfg, {"gan.discriminator_kwargs": {"input_size": 128}}), tmp_path / "bad", progress=False,
              log=lambda m: None)
