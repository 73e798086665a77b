"""The one device and precision policy of sresr: inference (``sresr upscale``, ``eval``, ``bench``)
and training choose and check their device and number format here.

Device, ``--device``:
  ``auto``  the GPU of this process (``cuda:LOCAL_RANK`` under torchrun), else Apple's MPS, else the CPU;
  ``cpu``, ``cuda``, ``cuda:N``, ``mps``: that device, a usage error when it is not there.

Precision, ``--precision``:
  ``auto``  inference: fp32 on the CPU; on a GPU fp16 where the model allows it, else bf16, else fp32.
            training: fp32 on the CPU; bf16 autocast on a GPU that has it (and a model that allows it).
  ``fp32``  IEEE fp32: on CUDA, TF32 (PyTorch's default for convolutions) is turned off around
            sresr's own work (:func:`ieee_fp32`), so fp32 results do not depend on the card.
  ``tf32``  fp32 with TF32 allowed (CUDA): faster convolutions, 10-bit mantissa inputs.
  ``fp16``, ``bf16``: half precision (inference: the weights; training: autocast). fp16 needs a GPU.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Iterator

import torch

from .errors import UsageError
from .ranks import local_rank

PRECISIONS = ("auto", "fp32", "tf32", "fp16", "bf16")
_DTYPES = {"fp32": torch.float32, "tf32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


def mps_available() -> bool:
    try:
        return bool(torch.backends.mps.is_available())
    except Exception:
        return False


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """The device ``--device`` names (see the module docstring)."""
    if isinstance(device, torch.device):
        return device
    name = (device or "auto").strip().lower()
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", local_rank() % torch.cuda.device_count())
        if mps_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name == "cpu":
        return torch.device("cpu")
    if name == "mps":
        if not mps_available():
            raise UsageError("device 'mps' is not available on this machine", hint="use --device cpu or auto")
        return torch.device("mps")
    if name == "cuda" or name.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise UsageError(f"device '{device}' is not available: torch sees no CUDA GPU", hint="use --device cpu or auto")
        if name == "cuda":
            return torch.device("cuda", local_rank() % torch.cuda.device_count())
        try:
            index = int(name.split(":", 1)[1])
        except ValueError:
            raise UsageError(f"invalid device '{device}'", hint="write cuda:N with N a number") from None
        if not 0 <= index < torch.cuda.device_count():
            raise UsageError(
                f"device '{device}' does not exist", hint=f"this machine has {torch.cuda.device_count()} CUDA device(s)"
            )
        return torch.device("cuda", index)
    raise UsageError(f"unknown device '{device}'", hint="use auto, cpu, cuda, cuda:N or mps")


def _check_name(precision: str) -> str:
    p = (precision or "auto").strip().lower()
    if p not in PRECISIONS:
        raise UsageError(f"unknown precision '{precision}'", hint="use " + ", ".join(PRECISIONS))
    return p


def inference_dtype(precision: str, device: torch.device, spec: Any) -> torch.dtype:
    """The dtype a model's weights and activations run in for inference.

    An explicit fp16/bf16 the spec does not allow is a :class:`UsageError`; so is fp16 on CPU
    (bf16 on CPU is allowed: fast on CPUs with AMX), and tf32 off CUDA."""
    p = _check_name(precision)
    if p == "auto":
        if device.type == "cpu":
            return torch.float32
        if spec.supports_fp16:
            return torch.float16
        if spec.supports_bf16 and device.type == "cuda" and torch.cuda.is_bf16_supported():
            return torch.bfloat16
        return torch.float32
    if p == "tf32" and device.type != "cuda":
        raise UsageError("precision tf32 is a CUDA mode", hint="use --precision fp32 or auto")
    if device.type == "cpu" and p == "fp16":
        raise UsageError("precision fp16 is for GPUs; the CPU runs in fp32 (or bf16)", hint="use --precision fp32 or auto")
    if (p == "fp16" and not spec.supports_fp16) or (p == "bf16" and not spec.supports_bf16):
        raise UsageError(f"model '{spec.name}' does not support {p}", hint="use --precision fp32 or auto")
    return _DTYPES[p]


def training_autocast(precision: str, device: torch.device, spec: Any | None) -> torch.dtype | None:
    """The autocast dtype of a training step, or None for fp32 (tf32 too: see :func:`tf32_allowed`)."""
    p = _check_name(precision)
    if p in ("fp32", "tf32"):
        if p == "tf32" and device.type != "cuda":
            raise UsageError("precision tf32 is a CUDA mode", hint="use --precision fp32 or auto")
        return None
    if p == "auto":
        if device.type != "cuda":
            return None
        if spec is not None and not spec.supports_bf16:
            return None
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else None
    if p == "fp16" and device.type != "cuda":
        raise UsageError("fp16 training needs a CUDA device", hint="use --precision fp32 (or bf16) on CPU")
    return _DTYPES[p]


def tf32_allowed(precision: str) -> bool:
    """Whether fp32 work may use TF32 (only when asked for by name)."""
    return (precision or "").strip().lower() == "tf32"


@contextmanager
def ieee_fp32(device: torch.device, dtype: torch.dtype | None, allow_tf32: bool = False) -> Iterator[None]:
    """fp32 means fp32: on CUDA, PyTorch lets cuDNN convolutions (and, when asked, matmuls) round
    their inputs to TF32's 10-bit mantissa, which would make fp32 results (the protocol's numbers,
    the exact-tiling guarantee) depend on the card. Turned off for sresr's own fp32 work (unless
    ``allow_tf32``: ``--precision tf32``), and restored after."""
    if device.type != "cuda" or dtype not in (torch.float32, None) or allow_tf32:
        yield
        return
    with tf32_off():
        yield


@contextmanager
def tf32_off() -> Iterator[None]:
    """TF32 off for cuDNN convolutions and CUDA matmuls, each restored after. Each knob is set
    through the API the process already uses for it: the legacy ``allow_tf32`` flags, or, once
    a program set ``fp32_precision`` (PyTorch >= 2.9; reading the legacy flag then raises), that."""
    knobs = [(torch.backends.cudnn, getattr(torch.backends.cudnn, "conv", None)),
             (torch.backends.cuda.matmul, torch.backends.cuda.matmul)]
    restore = []
    for legacy, new in knobs:
        try:
            restore.append((legacy, "allow_tf32", legacy.allow_tf32))
            legacy.allow_tf32 = False
        except RuntimeError:  # "mix of the legacy and new APIs": this process set fp32_precision
            restore.append((new, "fp32_precision", new.fp32_precision))
            new.fp32_precision = "ieee"
    try:
        yield
    finally:
        for obj, name, value in reversed(restore):
            setattr(obj, name, value)


@contextmanager
def cudnn_benchmark(enabled: bool) -> Iterator[None]:
    """cuDNN's autotuner on (and restored after) while ``enabled``: for tiled work, where every
    window has one shape and the first one's search pays for all; off for whole images of
    varying sizes, where each new size would be searched again."""
    if not enabled:
        yield
        return
    saved = torch.backends.cudnn.benchmark
    torch.backends.cudnn.benchmark = True
    try:
        yield
    finally:
        torch.backends.cudnn.benchmark = saved
