"""``sresr eval`` hardening: --save never writes over an input of the run; --pred pairs the namings
of other tools with the GT namings of benchmark packs, never with another scale's images, and says
when two files claim one GT; --device defaults to auto (scores stay fp32).

Images are made here with PIL and numpy; the CLI runs as a real subprocess; expected PSNRs are
computed here with numpy alone."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import run_sresr
from sresr.errors import UsageError
from sresr.evaluate import evaluate, match_predictions
from sresr.spec import ModelSpec
from sresr.resolve import LoadedModel


def _smooth(h: int, w: int, f: float) -> np.ndarray:
    """Smooth RGB content: bicubic scores it well, and each ``f`` gives another image."""
    yy, xx = np.mgrid[0:h, 0:w]
    img = np.stack([127 + 90 * np.sin(xx / f + c) * np.cos(yy / (f + 3)) for c in range(3)], -1)
    return img.astype(np.uint8)


def _y(img: np.ndarray) -> np.ndarray:
    f = img.astype(np.float64) / 255
    return 16 + 65.481 * f[..., 0] + 128.553 * f[..., 1] + 24.966 * f[..., 2]


def _psnr_y(sr: np.ndarray, hr: np.ndarray, border: int) -> float:
    a, b = _y(sr)[border:-border, border:-border], _y(hr)[border:-border, border:-border]
    return 10 * math.log10(255**2 / np.mean((a - b) ** 2))


def _noisy(hr: np.ndarray, seed: int) -> np.ndarray:
    noise = np.random.default_rng(seed).integers(-5, 6, hr.shape)
    return np.clip(hr.astype(int) + noise, 0, 255).astype(np.uint8)


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


# -- 1. --save never overwrites an input ---------------------------------------------------------
def lines_0(stderr: str) -> str:
    return stderr.strip().splitlines()[0]


@pytest.mark.parametrize("save", ["ABS", "d", "./d", "d/../d", "link"])
def test_save_into_the_data_folder_never_overwrites_its_ground_truth(tmp_path: Path, save: str) -> None:
    d = tmp_path / "d"
    d.mkdir()
    Image.fromarray(_smooth(40, 44, 7.0)).save(d / "baby.png")
    Image.fromarray(_smooth(36, 40, 11.0)).save(d / "baby_x2.png")  # GT named like baby.png's output
    (tmp_path / "link").symlink_to(d, target_is_directory=True)
    before = _snapshot(d)
    save_arg = str(d) if save == "ABS" else save
    proc = run_sresr("eval", "bicubic", "--data", "d", "-s", "2", "--save", save_arg, "--json", cwd=tmp_path)
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    # refused before any image was scored: --json's stdout holds the error alone
    assert json.loads(proc.stdout) == {"error": lines_0(proc.stderr).removeprefix("error: "), "hint": None, "exit_code": 2}
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: --save would overwrite"), proc.stderr
    assert "baby_x2.png" in lines[0] and "an HR image of the dataset" in lines[0]
    assert "pick another --save folder" in lines[0]
    assert _snapshot(d) == before  # nothing written, nothing replaced


def test_save_elsewhere_still_writes_every_image(tmp_path: Path) -> None:
    d = tmp_path / "d"
    d.mkdir()
    hr = {"baby": _smooth(40, 44, 7.0), "baby_x2": _smooth(36, 40, 11.0)}
    for name, img in hr.items():
        Image.fromarray(img).save(d / f"{name}.png")
    out_dir = tmp_path / "out"
    proc = run_sresr("eval", "bicubic", "--data", str(d), "-s", "2", "--save", str(out_dir), "--json")
    assert proc.returncode == 0, proc.stderr
    assert [im["name"] for im in json.loads(proc.stdout)["images"]] == ["baby", "baby_x2"]
    out = {p.name: np.asarray(Image.open(p)) for p in out_dir.iterdir()}
    assert set(out) == {"baby_x2.png", "baby_x2_x2.png"}
    assert out["baby_x2.png"].shape == hr["baby"].shape and out["baby_x2_x2.png"].shape == hr["baby_x2"].shape
    # the SR of each image is close to its own HR image, not to the other one's
    assert _psnr_y(out["baby_x2.png"], hr["baby"], 2) > 30


def test_save_never_overwrites_a_given_lr_image(tmp_path: Path) -> None:
    # EDSR layout: HR/ and LR_bicubic/X2/, where the LR of HR/a_x2.png is LR_bicubic/X2/a_x2.png
    hr_dir, lr_dir = tmp_path / "d" / "HR", tmp_path / "d" / "LR_bicubic" / "X2"
    hr_dir.mkdir(parents=True)
    lr_dir.mkdir(parents=True)
    for name, f in (("a", 7.0), ("a_x2", 11.0)):
        img = _smooth(40, 44, f)
        Image.fromarray(img).save(hr_dir / f"{name}.png")
        Image.fromarray(img[::2, ::2]).save(lr_dir / ("ax2.png" if name == "a" else "a_x2.png"))
    before = _snapshot(tmp_path / "d")
    proc = run_sresr("eval", "bicubic", "--data", str(tmp_path / "d"), "-s", "2", "--save", str(lr_dir))
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    line = proc.stderr.strip()
    assert "\n" not in line and str(lr_dir / "a_x2.png") in line
    assert "the LR image the dataset gives for a_x2.png" in line and "pick another --save folder" in line
    assert _snapshot(tmp_path / "d") == before


def test_save_check_uses_the_models_scale_when_none_is_given(tmp_path: Path) -> None:
    # The library path where the scale comes from the model (checked after loading it).
    spec = ModelSpec(name="ident", factory="torch.nn:Identity", scales=(2,), colorspace="y",
                     input="upsampled")
    loaded = LoadedModel(torch.nn.Identity(), spec, 2, "y", "none")
    Image.fromarray(_smooth(32, 30, 5.0)).save(tmp_path / "r.png")
    Image.fromarray(_smooth(32, 30, 9.0)).save(tmp_path / "r_x2.png")
    before = _snapshot(tmp_path)
    with pytest.raises(UsageError, match=r"--save would overwrite .*r_x2\.png, an HR image"):
        evaluate(loaded, tmp_path, save_dir=tmp_path)
    assert _snapshot(tmp_path) == before


# -- 2. --pred pairs other tools' namings with benchmark packs' GT namings -----------------------
def test_pred_namings_of_other_tools_pair_with_decorated_gt_names(tmp_path: Path) -> None:
    gt_dir, pred_dir = tmp_path / "gt", tmp_path / "pred"
    gt_dir.mkdir()
    pred_dir.mkdir()
    # GT file -> prediction file: RCAN-style, EDSR, Real-ESRGAN, the bare name, SelfExSR's pack
    pairs = {
        "baby_HR_x4.png": "baby_RCAN_x4.png",
        "bird_HR_x4.png": "birdx4_SR.png",
        "butterfly_HR_x4.png": "butterfly_out.png",
        "head_HR_x4.png": "head.png",
        "woman_GT.png": "woman_SwinIR.png",
        "img_001_SRF_4_HR.png": "img_001_SRF_4_A+.png",
    }
    expected = {}
    for i, (g, p) in enumerate(pairs.items()):
        hr = _smooth(32 + 4 * i, 36, 5.0 + i)
        sr = _noisy(hr, i)
        Image.fromarray(hr).save(gt_dir / g)
        Image.fromarray(sr).save(pred_dir / p)
        expected[Path(g).stem] = _psnr_y(sr, hr, 4)
    proc = run_sresr("eval", "--pred", str(pred_dir), "--gt", str(gt_dir), "-s", "4", "--json")
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["failures"] == []
    scores = {im["name"]: im["psnr"] for im in data["images"]}
    assert set(scores) == set(expected)
    for name, value in expected.items():
        assert scores[name] == pytest.approx(value, abs=1e-9), name


def test_two_predictions_for_one_gt_is_a_failure_naming_both(tmp_path: Path) -> None:
    gt_dir, pred_dir = tmp_path / "gt", tmp_path / "pred"
    gt_dir.mkdir()
    pred_dir.mkdir()
    baby, bird = _smooth(32, 32, 5.0), _smooth(32, 32, 8.0)
    Image.fromarray(baby).save(gt_dir / "baby.png")
    Image.fromarray(bird).save(gt_dir / "bird.png")
    Image.fromarray(_noisy(baby, 1)).save(pred_dir / "baby_EDSR_x4.png")
    Image.fromarray(_noisy(baby, 2)).save(pred_dir / "baby_RCAN_x4.png")
    Image.fromarray(_noisy(bird, 3)).save(pred_dir / "bird_x4.png")
    proc = run_sresr("eval", "--pred", str(pred_dir), "--gt", str(gt_dir), "-s", "4", "--json")
    assert proc.returncode == 1, proc.stderr
    data = json.loads(proc.stdout)
    assert [im["name"] for im in data["images"]] == ["bird"]
    assert data["images"][0]["psnr"] == pytest.approx(_psnr_y(_noisy(bird, 3), bird, 4), abs=1e-9)
    [failure] = data["failures"]
    assert failure["name"] == "baby"
    assert "baby_EDSR_x4.png and baby_RCAN_x4.png" in failure["error"] and "baby.png" in failure["error"]
    table = run_sresr("eval", "--pred", str(pred_dir), "--gt", str(gt_dir), "-s", "4")
    assert table.returncode == 1 and "baby_EDSR_x4.png and baby_RCAN_x4.png" in table.stderr


def test_match_predictions_rules(tmp_path: Path) -> None:
    g = {n: tmp_path / "gt" / f"{n}.png" for n in ("img", "img_a", "zebra_HR_x4", "lenna", "face", "face_x4")}
    g["man_HR"], g["man_GT"] = tmp_path / "gt" / "man_HR.png", tmp_path / "gt" / "man_GT.png"
    unpaired = ("zebra_2", "zebra_LR_x4", "zebrafish_x4", "lenna_x2", "lennax4plus")
    paired = ("img_a_x4", "img_b_x4", "ZEBRA_x4", "face_x4_SR", "face_out", "man_x4")
    p = {n: tmp_path / "sr" / f"{n}.png" for n in (*paired, *unpaired)}
    found = match_predictions(sorted(p.values()), sorted(g.values()), 4)
    # the longest name wins: img_a_x4 is img_a's (img_b_x4 is img's, with the method "b"), and
    # face_x4_SR is the GT face_x4's; at equal length a GT's stem beats another's image name:
    # face_out is face's, not face_x4's (both name "face" at x4)
    assert found.pairs == {g["img_a"]: p["img_a_x4"], g["img"]: p["img_b_x4"],
                           g["zebra_HR_x4"]: p["ZEBRA_x4"], g["face"]: p["face_out"],
                           g["face_x4"]: p["face_x4_SR"]}
    # two GT files of one image: its prediction pairs with neither
    assert found.ambiguous == {g["man_HR"]: (p["man_x4"],), g["man_GT"]: (p["man_x4"],)}
    assert found.other_scale == {g["lenna"]: ((p["lenna_x2"], 2),)}
    # a number word is another image, an LR word an input, "zebrafish" another name; x4plus
    # does not follow "lenna" after a separator
    assert set(found.unmatched) == {p[n] for n in unpaired}


# -- 3. a prediction for another scale never pairs -----------------------------------------------
def test_prediction_for_another_scale_does_not_pair_and_the_failure_says_so(tmp_path: Path) -> None:
    gt_dir, pred_dir = tmp_path / "gt", tmp_path / "pred"
    gt_dir.mkdir()
    pred_dir.mkdir()
    imgs = {name: _smooth(32, 32, 5.0 + i) for i, name in enumerate(("baby", "bird", "head"))}
    for name, img in imgs.items():
        Image.fromarray(img).save(gt_dir / f"{name}.png")
    # same size as the GT, so that only the name can keep them apart
    Image.fromarray(_noisy(imgs["baby"], 1)).save(pred_dir / "baby_x4.png")
    Image.fromarray(_noisy(imgs["bird"], 2)).save(pred_dir / "birdx4.png")
    Image.fromarray(_noisy(imgs["head"], 3)).save(pred_dir / "head_x2.png")
    proc = run_sresr("eval", "--pred", str(pred_dir), "--gt", str(gt_dir), "-s", "2", "--json")
    assert proc.returncode == 1, proc.stderr
    data = json.loads(proc.stdout)
    assert [im["name"] for im in data["images"]] == ["head"]
    expected = _psnr_y(_noisy(imgs["head"], 3), imgs["head"], 2)
    assert data["images"][0]["psnr"] == pytest.approx(expected, abs=1e-9)
    assert data["failures"] == [
        {"name": "baby", "error": f"no prediction in {pred_dir} for baby.png: baby_x4.png is for x4, not x2"},
        {"name": "bird", "error": f"no prediction in {pred_dir} for bird.png: birdx4.png is for x4, not x2"},
    ]


# -- --device auto ---------------------------------------------------------------------------------
def test_eval_device_defaults_to_auto_and_precision_to_fp32() -> None:
    proc = run_sresr("eval", "--help")
    assert proc.returncode == 0, proc.stderr
    text = " ".join(proc.stdout.split())
    tile = text.index("--tile")
    precision_at = text.rindex("--precision", 0, tile)  # the option, not "(see --precision)"
    device, precision = text[text.index("--device"):precision_at], text[precision_at:tile]
    assert "[default: auto]" in device and "fp32" in device
    assert "[default: fp32]" in precision


def test_symlinked_gt_is_an_input_too(tmp_path: Path) -> None:
    # The HR file in the data folder is a symlink to a file elsewhere; --save there is refused
    # as well, and the file it points to is left alone.
    real = tmp_path / "real"
    real.mkdir()
    Image.fromarray(_smooth(36, 40, 11.0)).save(real / "other.png")
    d = tmp_path / "d"
    d.mkdir()
    Image.fromarray(_smooth(40, 44, 7.0)).save(d / "baby.png")
    os.symlink(real / "other.png", d / "baby_x2.png")
    before = _snapshot(real)
    proc = run_sresr("eval", "bicubic", "--data", str(d), "-s", "2", "--save", str(d))
    assert proc.returncode == 2 and "baby_x2.png" in proc.stderr, proc.stderr
    assert (d / "baby_x2.png").is_symlink() and _snapshot(real) == before


def test_one_prediction_for_two_gt_files_of_one_image_pairs_with_neither(tmp_path: Path) -> None:
    from sresr.evaluate import evaluate_dirs

    (tmp_path / "gt").mkdir()
    (tmp_path / "sr").mkdir()
    man = _smooth(32, 32, 6.0)
    Image.fromarray(man).save(tmp_path / "gt" / "man_HR.png")
    Image.fromarray(man).save(tmp_path / "gt" / "man_GT.png")
    Image.fromarray(_noisy(man, 4)).save(tmp_path / "sr" / "man_x4.png")
    report = evaluate_dirs(tmp_path / "sr", tmp_path / "gt", 4)
    assert report.images == ()
    expected = f"man_x4.png in {tmp_path / 'sr'} looks like the prediction for {{}} and {{}}; rename it"
    assert [(f.name, f.error) for f in report.failures] == [
        ("man_GT", expected.format("man_GT.png", "man_HR.png")),
        ("man_HR", expected.format("man_HR.png", "man_GT.png")),
    ]
