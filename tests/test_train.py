"""sresr.train: config round trips, recipes, losses, data determinism, short real trainings."""

from __future__ import annotations

import csv
import json
import math
import shutil
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from sresr import registry
from sresr.errors import SresrError, UsageError
from sresr.train.config import TrainConfig, dump_toml, load_toml, loads_toml, override, to_dict
from sresr.train.recipes import RECIPES, get_recipe, list_recipes, recipe_for_model

sys.path.insert(0, str(Path(__file__).resolve().parent))
from conftest import TRAIN_DATA as DATA  # noqa: E402
from conftest import TRAIN_PLUGIN as PLUGIN  # noqa: E402
from conftest import run_sresr  # noqa: E402


@pytest.fixture
def plugin(monkeypatch: pytest.MonkeyPatch):
    """The tiny test networks (tinysr, tinysr-rgb, tinysr-up), registered through real entry points."""
    monkeypatch.syspath_prepend(str(PLUGIN))
    registry.refresh()
    yield
    registry.refresh()


def tiny_config(model: str = "tinysr", scale: int = 2, **changes) -> TrainConfig:
    cfg = get_recipe("generic", scale, model=model)
    base = {"data.train": [str(DATA / "hr")], "val.data": str(DATA / "val"), "iters": 30, "data.patch_size": 24,
            "data.batch_size": 4, "val.every": 10, "checkpoint_every": 10, "optim.lr": 1e-2, "log_every": 1,
            "threads": 1, "device": "cpu"}  # the CPU's numbers; the CUDA tests ask for "cuda"
    base.update(changes)
    return override(cfg, base)


# -- config ------------------------------------------------------------------------------------------


def test_every_recipe_round_trips_through_toml():
    for name in RECIPES:
        for scale in (2, 3, 4):
            cfg = get_recipe(name, scale, model="x")
            text = dump_toml(cfg)
            back = loads_toml(text)
            assert back == cfg, name
            assert dump_toml(back) == text
            import tomllib

            assert tomllib.loads(text)["scale"] == scale


def test_partial_config_file_overrides_only_its_keys(tmp_path: Path):
    base = get_recipe("fsrcnn", 3, model="fsrcnn")
    f = tmp_path / "c.toml"
    f.write_text('iters = 77\n[optim]\nlr = 0.005\n[data]\ntrain = ["a", "b"]\n')
    cfg = load_toml(f, base=base)
    assert cfg.iters == 77 and cfg.optim.lr == 0.005 and cfg.data.train == ("a", "b")
    assert cfg.optim.betas == base.optim.betas and cfg.loss == base.loss and cfg.scale == 3


def test_bad_config_values_are_clear_errors(tmp_path: Path):
    with pytest.raises(UsageError, match="unknown config key 'optim.lrr'"):
        override(TrainConfig(model="m"), {"optim.lrr": 1})
    with pytest.raises(UsageError, match="must be an integer"):
        override(TrainConfig(model="m"), {"iters": "many"})
    with pytest.raises(UsageError, match="loss.pixel"):
        override(TrainConfig(model="m"), {"loss.pixel": "l3"}).validate()
    bad = tmp_path / "bad.toml"
    bad.write_text("iters = = 3")
    with pytest.raises(UsageError, match="not valid TOML"):
        load_toml(bad)


def test_recipes_follow_the_papers():
    vdsr = get_recipe("vdsr")
    assert (vdsr.optim.name, vdsr.optim.lr, vdsr.optim.momentum) == ("sgd", 0.1, 0.9)
    assert (vdsr.optim.grad_clip_mode, vdsr.optim.grad_clip) == ("norm", 0.4)  # pytorch-vdsr's (see recipes.py)
    assert vdsr.data.patch_size == 41 and vdsr.data.scales == (2, 3, 4) and vdsr.schedule.name == "step"
    assert get_recipe("edsr", 4).data.patch_size == 48 * 4 and get_recipe("edsr").loss.pixel == "l1"
    assert get_recipe("srcnn").loss.pixel == "mse" and get_recipe("srcnn").data.train == ("t91",)
    assert get_recipe("fsrcnn-finetune", 3).trainable == ("@last",)
    assert get_recipe("fsrcnn").optim.lr_scale == {"@last": 0.1}  # deconvolution at 1e-4, convolutions at 1e-3
    srgan = get_recipe("srgan")
    assert srgan.gan.weight == 1e-3 and srgan.gan.kind == "vanilla" and srgan.loss.perceptual_layer == "conv5_4"
    esr = get_recipe("esrgan")
    assert esr.gan.kind == "ragan" and esr.loss.perceptual_before_activation and esr.loss.pixel == "l1"
    assert esr.schedule.name == "multistep" and esr.schedule.gamma == 0.5
    assert recipe_for_model("fsrcnn") == "fsrcnn" and recipe_for_model("someplugin") == "generic"
    assert "srgan-pretrain" in list_recipes()
    with pytest.raises(UsageError, match="unknown recipe") as exc:
        get_recipe("fsrcn")
    assert "did you mean 'fsrcnn'" in (exc.value.hint or "")


# -- losses ------------------------------------------------------------------------------------------


def test_pixel_losses_against_direct_formulas():
    from sresr.train.losses import discriminator_loss, generator_adversarial_loss, pixel_loss

    g = torch.Generator().manual_seed(0)
    a, b = torch.rand(2, 1, 5, 5, generator=g), torch.rand(2, 1, 5, 5, generator=g)
    d = (a - b).double()
    assert math.isclose(float(pixel_loss("l1")(a, b)), float(d.abs().mean()), rel_tol=1e-6)
    assert math.isclose(float(pixel_loss("mse")(a, b)), float((d * d).mean()), rel_tol=1e-6)
    assert math.isclose(float(pixel_loss("charbonnier", 1e-3)(a, b)), float(torch.sqrt(d * d + 1e-6).mean()),
                        rel_tol=1e-6)
    real, fake = torch.tensor([2.0, -1.0]), torch.tensor([0.5, -3.0])
    sp = lambda x: math.log1p(math.exp(-x))  # noqa: E731  -log(sigmoid(x))
    assert math.isclose(float(generator_adversarial_loss("vanilla", fake)), (sp(0.5) + sp(-3.0)) / 2, rel_tol=1e-6)
    # relativistic average: D_ra(x, y) = C(x) - mean C(y)
    rm, fm = float(real.mean()), float(fake.mean())
    d_expected = (sum(sp(r - fm) for r in real.tolist()) / 2 + sum(sp(-(f - rm)) for f in fake.tolist()) / 2) / 2
    assert math.isclose(float(discriminator_loss("ragan", real, fake)), d_expected, rel_tol=1e-6)


# -- data --------------------------------------------------------------------------------------------


def test_patches_are_aligned_and_deterministic():
    from sresr.imaging.resize import imresize
    from sresr.train.data import PatchDataset, load_pairs, resolve_sources

    paths = resolve_sources([str(DATA / "hr")])
    pairs = load_pairs(paths, (3,), "rgb", upsampled=False, min_hr=24)
    ds = PatchDataset(pairs, patch_size=24, batch_size=4, seed=5, augment=True, upsampled=False)
    for k in range(12):
        lr, hr = ds[k]
        assert lr.shape == (3, 8, 8) and hr.shape == (3, 24, 24)
        assert torch.equal(lr, ds[k][0]) and torch.equal(hr, ds[k][1])  # a pure function of (seed, k)
        # the LR patch is the MATLAB-bicubic image of the HR patch (up to borders and uint8 rounding)
        ref = imresize((hr * 255).round().to(torch.uint8), scale=1 / 3).float() / 255
        assert float((ref - lr)[:, 2:-2, 2:-2].abs().max()) <= 2 / 255
    other = PatchDataset(pairs, 24, 4, seed=6, augment=True, upsampled=False)
    assert any(not torch.equal(ds[k][1], other[k][1]) for k in range(4))


def test_resize_factors_add_shrunk_copies_of_every_image(tmp_path: Path):
    from PIL import Image

    from sresr.train.data import load_pairs

    rng = np.random.default_rng(3)
    # smooth content, so that MATLAB bicubic and PIL's antialiased bicubic agree inside the image
    yy, xx = np.mgrid[0:120, 0:100]
    base = np.stack([127 + 100 * np.sin(xx / 9.0 + c) * np.cos(yy / 13.0) for c in range(3)], -1)
    Image.fromarray(np.clip(base + rng.normal(0, 1, base.shape), 0, 255).astype(np.uint8)).save(tmp_path / "a.png")
    Image.fromarray(np.zeros((40, 50, 3), np.uint8)).save(tmp_path / "small.png")
    paths = sorted(tmp_path.glob("*.png"))
    pairs = load_pairs(paths, (2,), "rgb", upsampled=False, min_hr=36, cache=False,
                       resize_factors=(1.0, 0.8, 0.5))[2]
    # small.png: 40 -> 32 and 20 are under the 36px patch; a.png: 120x100, 96x80, 60x50
    assert [p.name for p in pairs] == ["a.png", "a.png@0.8", "a.png@0.5", "small.png"]
    assert [p.hr.shape for p in pairs] == [(3, 120, 100), (3, 96, 80), (3, 60, 50), (3, 40, 50)]
    assert [p.inp.shape for p in pairs] == [(3, 60, 50), (3, 48, 40), (3, 30, 25), (3, 20, 25)]
    original = np.asarray(Image.open(tmp_path / "a.png")).astype(np.float64)
    assert np.array_equal(pairs[0].hr.transpose(1, 2, 0), original)
    for pair, f in ((pairs[1], 0.8), (pairs[2], 0.5)):
        h, w = pair.hr.shape[1:]
        ref = np.asarray(Image.open(tmp_path / "a.png").resize((w, h), Image.BICUBIC)).astype(np.float64)
        diff = np.abs(pair.hr.transpose(1, 2, 0).astype(np.float64) - ref)[4:-4, 4:-4]
        assert diff.max() <= 2, (f, diff.max())
    with pytest.raises(SresrError, match="resize_factors"):
        override(get_recipe("fsrcnn", 2), {"data.resize_factors": [1.0, 1.5]}).validate()


def test_y_pairs_match_the_protocol_conversion():
    from sresr.imaging.color import rgb_to_y
    from sresr.train.data import make_lr, modcrop, prepare_pair, read_rgb

    rgb = read_rgb(DATA / "hr" / "t0.png")
    pair = prepare_pair("t0", rgb, 4, "y", upsampled=False)
    hr = torch.from_numpy(modcrop(rgb, 4).copy()).permute(2, 0, 1).double() / 255
    assert np.allclose(pair.hr, rgb_to_y(hr).numpy(), atol=1e-6)
    lr = torch.from_numpy(make_lr(modcrop(rgb, 4), 4).copy()).permute(2, 0, 1).double() / 255
    assert np.allclose(pair.inp, rgb_to_y(lr).numpy(), atol=1e-6)
    up = prepare_pair("t0", rgb, 4, "y", upsampled=True)
    assert up.inp.shape == up.hr.shape


@pytest.mark.parametrize("colorspace,upsampled,scales", [("rgb", False, (2,)), ("y", True, (2, 3, 4)),
                                                        ("y", False, (3,))])
def test_device_batches_equal_the_datasets_samples_and_split_over_ranks(colorspace, upsampled, scales):
    """The batches the loop trains on (gathered on the device) are the PatchDataset's samples,
    bit for bit, and DDP rank r of W takes the r-th slice of each global batch."""
    from sresr.train.data import DeviceBatcher, PatchDataset, load_pairs, resolve_sources

    pairs = load_pairs(resolve_sources([str(DATA / "hr")]), scales, colorspace, upsampled=upsampled, min_hr=24)
    ds = PatchDataset(pairs, patch_size=24, batch_size=6, seed=5, augment=True, upsampled=upsampled)
    single = DeviceBatcher(ds, torch.device("cpu"))
    ranks = [DeviceBatcher(ds, torch.device("cpu"), rank=r, world=2) for r in range(2)]
    for it in range(9):
        inp, hr = single.batch(it)
        ref = [ds[k] for k in range(it * 6, it * 6 + 6)]
        assert torch.equal(inp, torch.stack([r[0] for r in ref])) and torch.equal(hr, torch.stack([r[1] for r in ref]))
        halves = [b.batch(it) for b in ranks]
        assert torch.equal(torch.cat([h[0] for h in halves]), inp) and torch.equal(torch.cat([h[1] for h in halves]), hr)
    with pytest.raises(SresrError, match="divisible"):
        DeviceBatcher(ds, torch.device("cpu"), rank=0, world=4)


# -- training ----------------------------------------------------------------------------------------


def _rows(rundir: Path) -> list[dict[str, str]]:
    with open(rundir / "metrics.csv", newline="") as fh:
        return list(csv.DictReader(fh))


@pytest.mark.parametrize("model", ["tinysr", "tinysr-rgb", "tinysr-up"])
def test_tiny_training_learns_and_writes_usable_weights(plugin, tmp_path: Path, model: str):
    from safetensors import safe_open

    from sresr.train.loop import train
    from sresr.resolve import load_model

    lr = 1e-3 if model == "tinysr-up" else 1e-2  # the residual model starts at bicubic quality
    cfg = tiny_config(model, iters=60, **{"loss.pixel": "mse", "optim.lr": lr})
    result = train(cfg, tmp_path / "run", progress=False, log=lambda m: None)
    rows = _rows(tmp_path / "run")
    losses = [float(r["loss"]) for r in rows]
    assert len(losses) == 60
    assert np.mean(losses[-10:]) < 0.5 * np.mean(losses[:5])
    vals = [float(r["val_psnr"]) for r in rows if r["val_psnr"]]
    assert len(vals) == 6
    if model != "tinysr-up":
        assert vals[-1] > vals[0] + 3
    for name in ("config.toml", "checkpoint.pt", "loss.png", "val_psnr.png", "weights.safetensors"):
        assert (tmp_path / "run" / name).is_file(), name
    assert load_toml(tmp_path / "run" / "config.toml") == cfg
    with safe_open(str(result.weights), "pt") as f:
        meta = f.metadata()
    assert meta["sresr.model"] == model and meta["sresr.scale"] == "2" and json.loads(meta["sresr.kwargs"]) == {}
    assert meta["sresr.iterations"] == "60"
    assert math.isclose(json.loads(meta["sresr.metrics"])["val/x2/psnr"], result.val["psnr"], abs_tol=1e-3)
    loaded = load_model(model, 2, weights=str(result.weights))
    for k, v in loaded.module.state_dict().items():
        assert torch.equal(v, result.module.state_dict()[k])


def test_validation_psnr_is_the_protocol_number(plugin, tmp_path: Path):
    """The logged PSNR equals an independent computation on the saved weights."""
    from PIL import Image

    from sresr.imaging.resize import imresize
    from sresr.train.loop import train

    cfg = tiny_config("tinysr-rgb", scale=2, iters=5)
    res = train(cfg, tmp_path / "run", progress=False, log=lambda m: None)
    scores = []
    for p in sorted((DATA / "val").glob("*.png")):
        hr = np.asarray(Image.open(p).convert("RGB"))
        hr = hr[: hr.shape[0] // 2 * 2, : hr.shape[1] // 2 * 2]
        lr = imresize(torch.from_numpy(hr.copy()).permute(2, 0, 1), scale=0.5)
        with torch.no_grad():
            sr = res.module(lr.float().unsqueeze(0) / 255)[0].clamp(0, 1)
        sr = np.floor(sr.permute(1, 2, 0).double().numpy() * 255 + 0.5)

        def y(a):
            return 16 + (65.481 * a[..., 0] + 128.553 * a[..., 1] + 24.966 * a[..., 2]) / 255

        d = (y(sr) - y(hr.astype(np.float64)))[2:-2, 2:-2]
        scores.append(10 * math.log10(255**2 / np.mean(d * d)))
    # float32 convolutions in another memory layout (training runs channels_last on CPU) can round
    # a pixel of the uint8 output the other way: each such pixel moves the mean by ~1e-5 dB here
    assert math.isclose(res.val["psnr"], float(np.mean(scores)), abs_tol=1e-4)


def test_finetune_only_the_last_layer(plugin, tmp_path: Path):
    from safetensors.torch import load_file

    from sresr.train.loop import train

    first = train(tiny_config("tinysr", 2, iters=5), tmp_path / "x2", progress=False, log=lambda m: None)
    cfg = tiny_config("tinysr", 2, iters=5, init_weights=str(first.weights), trainable=["@last"])
    second = train(cfg, tmp_path / "ft", progress=False, log=lambda m: None)
    a, b = load_file(str(first.weights)), load_file(str(second.weights))
    assert torch.equal(a["body.0.weight"], b["body.0.weight"]) and torch.equal(a["body.1.weight"], b["body.1.weight"])
    assert not torch.equal(a["tail.weight"], b["tail.weight"])


def test_init_weights_built_otherwise_are_noted(tmp_path: Path):
    """FSRCNN weights trained with the usual transposed-conv padding load into a centred network
    tensor for tensor, but every output moves a pixel: the run says so (and not when they agree)."""
    from sresr.train.loop import train

    small = {"d": 8, "s": 4, "m": 1}
    first = train(tiny_config("fsrcnn", 4, iters=2, model_kwargs={**small, "deconv_padding": 4}),
                  tmp_path / "pad4", progress=False, log=lambda m: None)
    for padding, noted in ((3, True), (4, False)):
        lines: list[str] = []
        cfg = tiny_config("fsrcnn", 4, iters=1, init_weights=str(first.weights),
                          model_kwargs={**small, "deconv_padding": padding})
        train(cfg, tmp_path / f"from-pad4-to-{padding}", progress=False, log=lines.append)
        notes = [line for line in lines if "deconv_padding" in line]
        assert bool(notes) == noted, lines
        if noted:
            assert "deconv_padding=4" in notes[0] and "deconv_padding=3" in notes[0]


def test_lr_scale_multiplies_the_step_of_the_matching_parameters(plugin, tmp_path: Path):
    """One plain SGD step: with lr_scale the tail moves by exactly 0.25 of its unscaled step, the body
    by the same step as without it (same seed, same batch, same gradient)."""
    from safetensors.torch import load_file

    from sresr.train.loop import train

    init = train(tiny_config("tinysr", 2, iters=1, **{"optim.lr": 1e-12}), tmp_path / "init", progress=False,
                 log=lambda m: None).weights
    common = {"iters": 1, "init_weights": str(init), "optim.name": "sgd", "optim.momentum": 0.0, "optim.lr": 0.05}
    plain = train(tiny_config("tinysr", 2, **common), tmp_path / "plain", progress=False, log=lambda m: None)
    logs: list[str] = []
    scaled = train(tiny_config("tinysr", 2, **common, **{"optim.lr_scale": {"tail.*": 0.25}}), tmp_path / "scaled",
                   progress=False, log=logs.append)
    w0, a, b = load_file(str(init)), load_file(str(plain.weights)), load_file(str(scaled.weights))
    assert not torch.equal(a["tail.weight"], w0["tail.weight"])
    for name in w0:
        step_plain, step_scaled = a[name] - w0[name], b[name] - w0[name]
        want = step_plain * (0.25 if name.startswith("tail.") else 1.0)
        assert torch.allclose(step_scaled, want, atol=1e-7, rtol=1e-4), name
    assert any("at 0.0125" in m for m in logs)
    with pytest.raises(UsageError, match="lr_scale key 'nothing.*' matches no parameter"):
        train(tiny_config("tinysr", 2, **{"optim.lr_scale": {"nothing.*": 0.1}}), tmp_path / "bad", progress=False,
              log=lambda m: None)
    with pytest.raises(UsageError, match="lr_scale"):
        override(TrainConfig(model="m"), {"optim.lr_scale": {"a": -1}}).validate()


@pytest.mark.slow
def test_compiled_training_equals_eager(plugin, tmp_path: Path):
    """compile = true runs the real torch.compile (inductor, C++ on CPU) and ends with the weights of
    the eager run, to float tolerance."""
    import shutil

    from safetensors.torch import load_file

    from sresr.train.loop import train

    if not (shutil.which("cc") or shutil.which("gcc") or shutil.which("g++")):
        pytest.skip("torch.compile on CPU needs a C++ compiler")
    quiet = {"val.every": 0, "iters": 4}
    eager = train(tiny_config("tinysr", 2, **quiet), tmp_path / "eager", progress=False, log=lambda m: None)
    compiled = train(tiny_config("tinysr", 2, compile=True, **quiet), tmp_path / "compiled", progress=False,
                     log=lambda m: None)
    a, b = load_file(str(eager.weights)), load_file(str(compiled.weights))
    init = load_file(str(train(tiny_config("tinysr", 2, **{**quiet, "iters": 1, "optim.lr": 1e-12}), tmp_path / "i",
                               progress=False, log=lambda m: None).weights))
    for k in a:
        assert not torch.equal(a[k], init[k]) or k.endswith("bias"), k  # the runs did train
        assert torch.allclose(a[k], b[k], atol=1e-6, rtol=1e-5), k


@pytest.mark.gpu
@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_mixed_precision_training_on_cuda_learns(plugin, tmp_path: Path, precision: str):
    if not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    from sresr.train.loop import train

    cfg = tiny_config("tinysr", iters=60, device="cuda", precision=precision, **{"loss.pixel": "mse"})
    result = train(cfg, tmp_path / "run", progress=False, log=lambda m: None)
    losses = [float(r["loss"]) for r in _rows(tmp_path / "run")]
    assert all(math.isfinite(v) for v in losses)
    assert np.mean(losses[-10:]) < 0.5 * np.mean(losses[:5])
    assert all(torch.isfinite(v).all() for v in result.module.state_dict().values())


def test_existing_run_needs_resume(plugin, tmp_path: Path):
    from sresr.train.loop import train

    cfg = tiny_config(iters=3)
    train(cfg, tmp_path / "run", progress=False, log=lambda m: None)
    # the temp file of a run still writing its checkpoint there: a refused run leaves it alone
    from sresr.atomic import TEMP_SUFFIX

    writing = tmp_path / "run" / f".checkpoint.pt.1234{TEMP_SUFFIX}"
    writing.write_bytes(b"half a checkpoint")
    with pytest.raises(UsageError, match="already holds a training run") as exc:
        train(cfg, tmp_path / "run", progress=False, log=lambda m: None)
    assert "--resume" in (exc.value.hint or "")
    assert writing.read_bytes() == b"half a checkpoint"
    longer = replace(cfg, iters=6)
    res = train(longer, tmp_path / "run", resume=True, progress=False, log=lambda m: None)
    assert res.iterations == 6
    assert [int(r["iteration"]) for r in _rows(tmp_path / "run")] == [1, 2, 3, 4, 5, 6]


def test_cli_train_end_to_end(tmp_path: Path):
    out = tmp_path / "run"
    proc = run_sresr("train", "tinysr", "--data", str(DATA / "hr"), "--val-data", str(DATA / "val"), "-s", "3",
                     "--iters", "8", "--batch-size", "2", "--patch-size", "24", "--val-every", "4", "--out", str(out),
                     "--lr", "0.003", "--loss", "charbonnier", "--seed", "3", "--device", "cpu",
                     "--precision", "fp32", extra_paths=[PLUGIN])
    assert proc.returncode == 0, proc.stderr
    cfg = load_toml(out / "config.toml")
    assert (cfg.scale, cfg.iters, cfg.data.batch_size, cfg.optim.lr, cfg.loss.pixel, cfg.seed) == (
        3, 8, 2, 0.003, "charbonnier", 3)
    assert (out / "weights.safetensors").is_file()
    # the weights work at once as --weights
    from sresr.resolve import load_model

    sys.path.insert(0, str(PLUGIN))
    registry.refresh()
    try:
        assert load_model("tinysr", 3, weights=str(out / "weights.safetensors")).scale == 3
    finally:
        sys.path.remove(str(PLUGIN))
        registry.refresh()


def test_cli_print_config_and_errors(tmp_path: Path):
    proc = run_sresr("train", "fsrcnn", "-s", "3", "--print-config", "--iters", "123", "--lr", "0.01")
    assert proc.returncode == 0, proc.stderr
    cfg = loads_toml(proc.stdout)
    assert (cfg.model, cfg.scale, cfg.iters, cfg.optim.lr, cfg.loss.pixel) == ("fsrcnn", 3, 123, 0.01, "mse")
    proc = run_sresr("train", "fsrcnn", "--print-config", "--loss", "l5")
    assert proc.returncode == 2 and "loss.pixel" in proc.stderr and "Traceback" not in proc.stderr
    cfgfile = tmp_path / "c.toml"
    cfgfile.write_text("[optim]\nlr = 0.5\n")
    proc = run_sresr("train", "espcn", "--config", str(cfgfile), "--print-config")
    assert loads_toml(proc.stdout).optim.lr == 0.5
    proc = run_sresr("train", "tinysr", "--data", str(tmp_path / "missing"), "--out", str(tmp_path / "r"),
                     extra_paths=[PLUGIN])
    assert proc.returncode != 0 and "missing" in proc.stderr and "Traceback" not in proc.stderr


def test_cli_does_not_import_torch_for_print_config():
    import subprocess

    from conftest import subprocess_env

    code = ("import sys; from sresr.cli.main import main\n"
            "try:\n    main(['train', 'fsrcnn', '--print-config'])\nexcept SystemExit: pass\n"
            "print('TORCH', 'torch' in sys.modules)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=subprocess_env())
    assert "TORCH False" in proc.stdout, proc.stdout + proc.stderr


def test_to_dict_is_json_serialisable():
    json.dumps(to_dict(get_recipe("esrgan")))


def test_data_folder_with_hr_subfolder(tmp_path: Path):
    from sresr.train.data import resolve_sources

    shutil.copytree(DATA / "hr", tmp_path / "set" / "HR")
    (tmp_path / "set" / "LR_bicubic").mkdir()
    assert len(resolve_sources([str(tmp_path / "set")])) == 4


def test_unreadable_training_images_are_skipped_by_name(tmp_path: Path):
    from sresr.train.data import load_pairs

    data = tmp_path / "hr"
    shutil.copytree(DATA / "hr", data)
    good = sorted(p.name for p in data.iterdir())
    (data / "empty.png").write_bytes(b"")
    whole = (data / good[0]).read_bytes()
    (data / "truncated.png").write_bytes(whole[: len(whole) // 2])
    (data / "text.png").write_text("not an image\n")
    lines: list[str] = []
    paths = sorted(data.iterdir())
    pairs = load_pairs(paths, (2,), "y", upsampled=False, min_hr=24, log=lines.append, cache=False)[2]
    assert sorted(p.name for p in pairs) == good  # every readable image, nothing of the bad ones
    skipped = [line for line in lines if line.startswith("skipped:")]
    assert len(skipped) == 3, lines
    for name, reason in (("empty.png", "empty file"), ("truncated.png", ""), ("text.png", "")):
        assert any(str(data / name) in line and reason in line for line in skipped), lines
    # none readable: one clear error, from the CLI without a traceback
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "empty.png").write_bytes(b"")
    (bad / "text.png").write_text("not an image\n")
    proc = run_sresr("train", "tinysr", "--data", str(bad), "--val-data", str(DATA / "val"), "-s", "2", "--iters", "2",
                     "--out", str(tmp_path / "run"), extra_paths=[PLUGIN])
    assert proc.returncode != 0 and "no training image could be read" in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize("k,s,p", [(9, 2, 4), (9, 3, 3), (9, 3, 4), (9, 4, 3), (9, 4, 4), (4, 2, 1), (3, 2, 1)])
def test_subpixel_transposed_conv_matches_pytorchs(k: int, s: int, p: int):
    import copy

    import torch
    from torch import nn

    from sresr.train.fast import SubPixelConvTranspose2d, subpixel_transposed_convs

    torch.manual_seed(k * 100 + s * 10 + p)
    ref = nn.ConvTranspose2d(6, 2, k, stride=s, padding=p, output_padding=s + 2 * p - k).double()
    fast = copy.deepcopy(ref)
    assert subpixel_transposed_convs(fast) == 1 and isinstance(fast, SubPixelConvTranspose2d)
    x = torch.randn(3, 6, 7, 9, dtype=torch.float64, requires_grad=True)
    x2 = x.detach().clone().requires_grad_()
    g = torch.randn(3, 2, 7 * s, 9 * s, dtype=torch.float64)
    y_ref, y_fast = ref(x), fast(x2)
    y_ref.backward(g)
    y_fast.backward(g)
    assert y_fast.shape == y_ref.shape
    torch.testing.assert_close(y_fast, y_ref, rtol=0, atol=1e-12)
    torch.testing.assert_close(x2.grad, x.grad, rtol=0, atol=1e-12)
    torch.testing.assert_close(fast.weight.grad, ref.weight.grad, rtol=0, atol=1e-12)
    torch.testing.assert_close(fast.bias.grad, ref.bias.grad, rtol=0, atol=1e-12)
    assert list(fast.state_dict()) == list(ref.state_dict())
    # not an exact upsampler: left as it is
    odd = nn.ConvTranspose2d(6, 2, 3, stride=2)
    assert subpixel_transposed_convs(odd) == 0 and type(odd) is nn.ConvTranspose2d


@pytest.mark.parametrize("channels,shape,channels_last", [(5, (3, 5, 6, 7), False), (5, (3, 5, 6, 7), True),
                                                          (1, (2, 4, 5, 5), False), (4, (6, 4), False)])
def test_fast_prelu_matches_pytorchs(channels: int, shape: tuple, channels_last: bool):
    import copy

    import torch
    from torch import nn

    from sresr.train.fast import fast_prelu

    torch.manual_seed(channels)
    ref = nn.PReLU(channels).double()
    ref.weight.data.uniform_(-0.3, 0.6)
    fast = copy.deepcopy(ref)
    assert fast_prelu(fast) == 1
    x = torch.randn(*shape, dtype=torch.float64)
    x[..., 0] = 0.0  # the kink: PyTorch takes the slope there
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    x.requires_grad_()
    x2 = x.detach().clone().requires_grad_()
    g = torch.randn(*shape, dtype=torch.float64)
    ref(x).backward(g)
    fast(x2).backward(g)
    torch.testing.assert_close(fast(x2), ref(x), rtol=0, atol=0)
    torch.testing.assert_close(x2.grad, x.grad, rtol=0, atol=1e-12)
    torch.testing.assert_close(fast.weight.grad, ref.weight.grad, rtol=1e-12, atol=1e-12)


def test_training_forms_keep_fsrcnns_gradients_and_weights_files(tmp_path: Path):
    import copy

    import torch
    from safetensors.torch import load_file, save_file

    from sresr.models.fsrcnn.arch import FSRCNN
    from sresr.train.fast import training_forms

    torch.manual_seed(0)
    ref = FSRCNN(3, deconv_padding=3).double()
    fast = copy.deepcopy(ref)
    assert training_forms(fast) == ["subpixel_transposed_convs (1)", "fast_prelu (7)"]
    x = torch.rand(4, 1, 12, 12, dtype=torch.float64)
    y = torch.rand(4, 1, 36, 36, dtype=torch.float64)
    for net in (ref, fast):
        ((net(x) - y) ** 2).mean().backward()
    for (name, a), (_, b) in zip(ref.named_parameters(), fast.named_parameters()):
        torch.testing.assert_close(b.grad, a.grad, rtol=1e-9, atol=1e-14, msg=name)
    save_file(fast.state_dict(), str(tmp_path / "w.safetensors"))
    plain = FSRCNN(3, deconv_padding=3).double()
    plain.load_state_dict(load_file(str(tmp_path / "w.safetensors")))
    torch.testing.assert_close(plain(x), ref(x), rtol=0, atol=1e-12)


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_fsrcnn_trains_on_cpu_in_fp32_and_bf16(tmp_path: Path, precision: str):
    """The CPU forms (sresr.train.fast) in fp32; under bf16 autocast only channels_last (the forms'
    hand-written backward passes take one dtype)."""
    from sresr.train.loop import train

    cfg = tiny_config("fsrcnn", scale=2, iters=4, precision=precision, device="cpu", **{"data.patch_size": 20})
    lines: list[str] = []
    res = train(cfg, tmp_path / "run", progress=False, log=lines.append)
    assert res.weights is not None and res.weights.is_file()
    assert math.isfinite(res.val["psnr"]) and res.val["psnr"] > 5
    forms = [line for line in lines if line.startswith("CPU training in channels_last")]
    assert len(forms) == 1, lines
    assert ("subpixel_transposed_convs (1)" in forms[0]) == (precision == "fp32"), forms


def test_vdsr_init_keeps_the_residual_branch_alive():
    """He initialisation (the paper's): the residual of 20 bias-free conv + ReLU layers at
    initialisation has a size comparable to the input's. PyTorch's default init left ~1e-9 of it,
    so nothing trained (validation stayed at bicubic to the last digit)."""
    from sresr.models.vdsr.arch import vdsr

    torch.manual_seed(0)
    net = vdsr(2)
    x = torch.rand(2, 1, 32, 32)
    with torch.no_grad():
        residual = net(x) - x
    assert float(residual.std()) > 0.1 * float(x.std())
    for m in net.modules():
        if isinstance(m, torch.nn.Conv2d):  # N(0, 2 / (9 * out_channels))
            expected = (2.0 / (9 * m.out_channels)) ** 0.5
            assert abs(float(m.weight.detach().std()) / expected - 1) < 0.15


@pytest.mark.slow
def test_vdsr_recipe_moves_validation_above_bicubic(tmp_path):
    """The VDSR recipe's own optimisation (SGD lr 0.1, momentum 0.9, weight decay 1e-4, its
    gradient clipping and loss) on four small images, x2 only, for 100 iterations: the validation
    PSNR must leave bicubic (it gains about 0.27 dB here). Before the fix it stayed at bicubic's
    value to the last digit, as on the GPU."""
    from sresr.evaluate import evaluate
    from sresr.train.loop import train

    data = Path(__file__).resolve().parent / "data" / "train"
    cfg = override(get_recipe("vdsr", 2), {
        "data.train": (str(data / "hr"),), "data.scales": (2,), "data.patch_size": 24, "data.batch_size": 8,
        "iters": 100, "val.data": str(data / "val"), "val.every": 100, "precision": "fp32", "device": "cpu",
        "threads": 2, "checkpoint_every": 0,
    })
    result = train(cfg, tmp_path / "run", progress=False, log=lambda m: None)
    bicubic = evaluate("bicubic", data / "val", 2, progress=False).mean.psnr
    assert result.val["psnr"] > bicubic + 0.1, (result.val, bicubic)


@pytest.mark.parametrize("name", ["mse", "l1", "charbonnier"])
def test_summed_pixel_loss_is_the_per_sample_sum_averaged_over_the_batch(name):
    from sresr.train.losses import pixel_loss

    g = torch.Generator().manual_seed(0)
    sr, hr = torch.rand(3, 2, 5, 7, generator=g), torch.rand(3, 2, 5, 7, generator=g)
    d = sr.double() - hr.double()
    per_element = {"mse": d**2, "l1": d.abs(), "charbonnier": torch.sqrt(d**2 + 1e-6)}[name]
    expected = per_element.sum(dim=(1, 2, 3)).mean()
    got = pixel_loss(name, 1e-3, reduction="sum")(sr, hr)
    assert abs(float(got) - float(expected)) < 1e-4 * float(expected)
    assert abs(float(pixel_loss(name, 1e-3)(sr, hr)) - float(per_element.mean())) < 1e-5
