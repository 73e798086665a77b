"""What Real-ESRGAN users type: -o results/ by default, -n with the published names, -s as a final
scale, -t/-g/--fp32/-f/--ext/-j, progress lines in logs, --json errors, and the tile-pad warning.
Through the real CLI in subprocesses (not a terminal), outputs read back with Pillow."""

from __future__ import annotations

import json
import shutil

import pytest
from PIL import Image

from conftest import ROOT, run_sresr  # type: ignore[import-not-found]
from sresr.errors import UsageError
from sresr.pipeline import UpscaleOptions, parse_threads, resolve_scale
from sresr.registry import parse_ref, resolve_name
from sresr.resolve import load_model

BIRD = ROOT / "examples" / "bird.png"  # 72 x 72


def _size(path):
    with Image.open(path) as im:
        return im.size


def test_output_defaults_to_results_and_progress_is_one_line_per_file(tmp_path):
    for name in ("bird.png", "head.png"):
        shutil.copy(ROOT / "examples" / name, tmp_path / name)
    proc = run_sresr("upscale", "bird.png", "head.png", "-s", "2", cwd=tmp_path, check=True)
    assert _size(tmp_path / "results" / "bird.png") == (144, 144)
    lines = proc.stderr.splitlines()
    assert "[1/2] ok bird.png" in lines[1] and "[2/2] ok head.png" in lines[2], proc.stderr


def test_a_scale_without_weights_is_reached_by_resampling():
    # fsrcnn has x2, x3, x4: -s 2.5 runs x3 and resamples; -s 8 runs x4 and resamples
    assert resolve_scale(UpscaleOptions(model="fsrcnn", scale=2.5)) == UpscaleOptions(model="fsrcnn", scale=3, outscale=2.5)
    assert resolve_scale(UpscaleOptions(model="fsrcnn", scale=8)).scale == 4
    assert resolve_scale(UpscaleOptions(model="fsrcnn", scale=2.0)) == UpscaleOptions(model="fsrcnn", scale=2)
    # a tagged variant has one scale: -s 2 with RealESRGAN_x4plus is x4 resampled to x2, as in Real-ESRGAN
    assert resolve_scale(UpscaleOptions(model="RealESRGAN_x4plus", scale=2)) == \
        UpscaleOptions(model="RealESRGAN_x4plus", scale=4, outscale=2.0)
    with pytest.raises(UsageError, match="--outscale is given too"):
        resolve_scale(UpscaleOptions(model="fsrcnn", scale=2.5, outscale=3))


def test_cli_final_scale(tmp_path):
    proc = run_sresr("upscale", str(BIRD), "-o", str(tmp_path), "-m", "fsrcnn", "-s", "2.5", check=True)
    assert _size(tmp_path / "bird.png") == (180, 180)
    assert "fsrcnn.x3 x3" in proc.stdout and "resampled to x2.5" in proc.stdout


def test_published_names_resolve_to_their_variants():
    assert parse_ref("realesr-general-X4V3") == ("realesrgan-compact", "general-x4v3")  # any case
    spec, variant = resolve_name("RealESRGAN_x4plus_anime_6B")
    assert (spec.name, variant.tag, variant.scale) == ("esrgan", "realesrgan-x4plus-anime-6b", 4)
    loaded = load_model("RealESRGAN_x4plus_anime_6B", pretrained=False)
    assert loaded.kwargs["blocks"] == 6 and loaded.scale == 4  # the variant's own architecture


def test_real_esrgan_flags(tmp_path):
    ok = run_sresr("upscale", str(BIRD), "-o", str(tmp_path / "a"), "-s", "2", "-t", "32", "--fp32", "-f", "jpg",
                   "-j", "1:1:1", check=True)
    assert _size(tmp_path / "a" / "bird.jpg") == (144, 144) and "tile 32" in ok.stdout
    run_sresr("upscale", str(BIRD), "-o", str(tmp_path / "b"), "-s", "2", "--ext", "auto", check=True)
    assert (tmp_path / "b" / "bird.png").is_file()
    clash = run_sresr("upscale", str(BIRD), "-o", str(tmp_path / "c"), "--fp32", "--precision", "bf16")
    assert clash.returncode == 2 and "--fp32 and --precision bf16 disagree" in clash.stderr
    bad = run_sresr("upscale", str(BIRD), "-o", str(tmp_path / "c"), "-j", "2:x")
    assert bad.returncode == 2 and "invalid -j" in bad.stderr
    assert parse_threads("2::4") == {"decode_threads": 2, "encode_threads": 4}


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="on a machine without CUDA")
def test_gpu_flag_names_a_cuda_device(tmp_path):
    proc = run_sresr("upscale", str(BIRD), "-o", str(tmp_path), "-g", "0")
    assert proc.returncode == 2 and "device 'cuda:0' is not available" in proc.stderr


def test_json_errors_are_json_too(tmp_path):
    proc = run_sresr("upscale", str(BIRD), "-o", str(tmp_path), "-m", "no-such-model", "--json")
    assert proc.returncode == 2
    report = json.loads(proc.stdout)
    assert report["error"] == "unknown model 'no-such-model'" and report["exit_code"] == 2
    assert "error: unknown model" in proc.stderr


def test_tile_pad_below_the_receptive_field_warns(tmp_path):
    proc = run_sresr("upscale", str(BIRD), "-o", str(tmp_path), "-s", "2", "-t", "16", "--tile-pad", "2", "-q",
                     check=True)
    assert "warning: tile pad 2 is below the receptive field of fsrcnn" in proc.stderr
    quiet = run_sresr("upscale", str(BIRD), "-o", str(tmp_path / "b"), "-s", "2", "-t", "16", "-q", check=True)
    assert "warning" not in quiet.stderr
