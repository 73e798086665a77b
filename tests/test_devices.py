"""The one device/precision policy (sresr.devices), as inference and training use it."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from sresr.devices import inference_dtype, resolve_device, tf32_allowed, training_autocast
from sresr.errors import UsageError
from sresr.registry import get_spec

CPU = torch.device("cpu")


def test_inference_and_training_share_names_and_checks():
    fsrcnn, edsr = get_spec("fsrcnn"), get_spec("edsr")
    assert inference_dtype("auto", CPU, fsrcnn) == torch.float32
    assert inference_dtype("bf16", CPU, fsrcnn) == torch.bfloat16
    assert training_autocast("auto", CPU, fsrcnn) is None and training_autocast("bf16", CPU, fsrcnn) == torch.bfloat16
    for bad in ("fp64", "half"):
        with pytest.raises(UsageError, match="unknown precision"):
            inference_dtype(bad, CPU, fsrcnn)
        with pytest.raises(UsageError, match="unknown precision"):
            training_autocast(bad, CPU, fsrcnn)
    with pytest.raises(UsageError, match="for GPUs"):
        inference_dtype("fp16", CPU, fsrcnn)
    with pytest.raises(UsageError, match="needs a CUDA device"):
        training_autocast("fp16", CPU, fsrcnn)
    no_bf16 = dataclasses.replace(edsr, name="no-bf16", supports_bf16=False)
    with pytest.raises(UsageError, match="does not support bf16"):
        inference_dtype("bf16", CPU, no_bf16)
    assert inference_dtype("bf16", CPU, edsr) == torch.bfloat16
    assert tf32_allowed("tf32") and not tf32_allowed("fp32") and not tf32_allowed("auto")


@pytest.mark.skipif(torch.cuda.is_available(), reason="on a machine without CUDA")
def test_cuda_only_modes_are_usage_errors_without_cuda():
    with pytest.raises(UsageError, match="not available"):
        resolve_device("cuda")
    with pytest.raises(UsageError, match="tf32 is a CUDA mode"):
        inference_dtype("tf32", CPU, get_spec("fsrcnn"))
    with pytest.raises(UsageError, match="tf32 is a CUDA mode"):
        training_autocast("tf32", CPU, None)
    assert resolve_device("auto").type in ("cpu", "mps")


def test_engine_and_training_resolve_through_the_same_module():
    from sresr import engine
    from sresr.train import dist

    assert engine.resolve_device is resolve_device
    assert engine.resolve_precision is inference_dtype
    assert dist.resolve_precision("auto", CPU, None) is None and dist.resolve_device("cpu", dist.Dist()) == CPU


def test_edsr_in_bf16_is_within_a_level_of_fp32():
    """EDSR runs on a 0..255 scale inside; its mean shift and scaling stay in fp32, so bf16 (whose
    relative precision does not depend on the range) is as close to fp32 as for any model: the
    8-bit outputs differ by at most one level, on average by far less (with the mean added in
    bf16 the average was 0.29 level on this image)."""
    from sresr.engine import LoadedModel, Upscaler
    from sresr.imaging.io import read_image
    from sresr.models.edsr.arch import edsr

    from conftest import ROOT

    torch.manual_seed(0)
    loaded = LoadedModel(edsr(scale=4).eval(), get_spec("edsr"), 4, "rgb", "test")
    x = torch.from_numpy(read_image(ROOT / "examples" / "butterfly.png").pixels).permute(2, 0, 1)[None].contiguous()
    ref = Upscaler(loaded, device="cpu", precision="fp32", tile=0).run(x)
    half = Upscaler(loaded, device="cpu", precision="bf16", tile=0).run(x)
    levels = ((half * 255).round() - (ref * 255).round()).abs()
    assert ref.std() > 0.03  # the output varies: a test of rounding, not of a constant
    assert levels.max() <= 1 and levels.mean() < 0.15


def test_tf32_off_works_with_the_legacy_and_the_new_api():
    """A program that already chose TF32 through PyTorch's new fp32_precision API (reading the
    legacy flag then raises) still gets IEEE fp32 inside sresr's calls, and its choice back after.
    In a child process: these are process-wide switches."""
    import subprocess
    import sys

    from conftest import subprocess_env

    code = """
import torch
from sresr.devices import tf32_off
torch.backends.cuda.matmul.fp32_precision = "tf32"
torch.backends.cudnn.allow_tf32 = True
with tf32_off():
    inside = (torch.backends.cuda.matmul.fp32_precision, torch.backends.cudnn.allow_tf32)
print(inside, (torch.backends.cuda.matmul.fp32_precision, torch.backends.cudnn.allow_tf32))
"""
    proc = subprocess.run([sys.executable, "-c", code], env=subprocess_env(), capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["('ieee',", "False)", "('tf32',", "True)"]
