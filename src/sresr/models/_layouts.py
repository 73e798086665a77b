"""Reading published checkpoints safely and taking their wrappers off.

(Minimal version written by the weights helper; the models helper owns this file and may
extend it. Names used elsewhere: :func:`read_checkpoint`, :func:`unwrap_state_dict`,
:func:`strip_prefixes`.)

Nothing from a checkpoint is ever executed: ``.pth``/``.pt``/``.ckpt`` files are read with
``torch.load(map_location="cpu", weights_only=True)`` only, and a file that would need
arbitrary unpickling is refused with :class:`sresr.errors.UnsafeCheckpointError`.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Mapping

from ..errors import UnsafeCheckpointError, WeightsError

# Wrappers seen around state dicts, in order of preference (BasicSR: params_ema over params).
WRAPPER_KEYS = ("params_ema", "params", "state_dict", "model", "net", "generator", "netG", "g_ema")
# Prefixes added by DataParallel / DistributedDataParallel and torch.compile.
PREFIXES = ("module.", "_orig_mod.")


def read_checkpoint(path: str | Path) -> Any:
    """The object stored in a checkpoint file, tensors on the CPU.

    ``.safetensors`` files are read with safetensors; anything else with
    ``torch.load(..., map_location="cpu", weights_only=True)`` (zip and legacy formats).
    """
    import torch

    path = Path(path)
    if path.suffix.lower() == ".safetensors":
        from safetensors.torch import load_file

        try:
            return load_file(str(path), device="cpu")
        except Exception as exc:
            raise WeightsError(
                f"cannot read {path}: not a valid safetensors file ({exc})",
                hint="the file may be truncated; download or export it again",
            ) from None
    try:
        return torch.load(str(path), map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise WeightsError(f"checkpoint {path} does not exist") from None
    except IsADirectoryError:
        raise WeightsError(f"checkpoint {path} is a directory, not a file") from None
    except Exception as exc:
        text = str(exc)
        found = re.search(r"Unsupported global: GLOBAL (\S+)", text)
        if found:
            raise UnsafeCheckpointError(
                f"refusing to load {path}: it contains pickled Python objects ({found.group(1)}), and "
                "unpickling them could run arbitrary code",
                hint="only plain state dicts (tensors, numbers, strings, dicts) are read; re-save the "
                "file as a state dict or .safetensors in an environment you trust",
            ) from None
        reason = text.splitlines()[-1] if text.strip() else type(exc).__name__
        if "WeightsUnpickler error" in text:
            m = re.search(r"WeightsUnpickler error:\s*(.+?)\n\n", text, re.S)
            reason = m.group(1).strip() if m else "unsupported pickle content"
        raise WeightsError(
            f"cannot read checkpoint {path}: {reason[:300]}",
            hint="the file may be truncated or not a PyTorch checkpoint",
        ) from None


def _is_tensor_dict(obj: Any) -> bool:
    import torch

    return isinstance(obj, Mapping) and bool(obj) and all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items()
    )


def strip_prefixes(state_dict: Mapping[str, Any], prefixes: tuple[str, ...] = PREFIXES) -> dict[str, Any]:
    """Remove ``module.`` / ``_orig_mod.`` (repeatedly) when every key carries the prefix."""
    out = dict(state_dict)
    changed = True
    while changed and out:
        changed = False
        for prefix in prefixes:
            if all(k.startswith(prefix) for k in out):
                out = {k[len(prefix) :]: v for k, v in out.items()}
                changed = True
    return out


def unwrap_state_dict(obj: Any) -> dict[str, Any]:
    """The flat ``{name: tensor}`` dict inside a checkpoint, wrappers and prefixes removed.

    Non-tensor entries next to the tensors (``num_batches_tracked`` counters stored as ints,
    version numbers) are dropped.
    """
    import torch

    seen = 0
    while isinstance(obj, Mapping) and not _is_tensor_dict(obj) and seen < 4:
        seen += 1
        for key in WRAPPER_KEYS:
            if isinstance(obj.get(key), Mapping):
                obj = obj[key]
                break
        else:
            tensors = {k: v for k, v in obj.items() if isinstance(k, str) and isinstance(v, torch.Tensor)}
            if tensors:
                obj = tensors
            break
    if not _is_tensor_dict(obj):
        raise WeightsError(
            "the checkpoint holds no state dict (no mapping of parameter names to tensors)",
            hint="expected a state dict, possibly wrapped as {'params_ema': ...}, {'params': ...}, "
            "{'state_dict': ...} or {'model': ...}",
        )
    return strip_prefixes(obj)
