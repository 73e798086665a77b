"""Where a training runs: torchrun's processes (DDP), the device and the autocast precision.

One place for the training's device/precision policy: ``auto`` takes ``cuda:LOCAL_RANK`` when
there is a GPU (one GPU per process: more processes than GPUs is a usage error, NCCL refuses two
ranks on one device), else the CPU; autocast is bf16 on a GPU that has it (and a model that allows
it), fp32 elsewhere.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..errors import UsageError
from ..ranks import env_int
from ..spec import ModelSpec


@dataclass(frozen=True)
class Dist:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world > 1


def init_distributed(device_kind: str) -> tuple[Dist, bool]:
    """From torchrun's env vars (WORLD_SIZE, RANK, LOCAL_RANK); gloo on CPU, nccl on CUDA.
    Returns (dist, whether we created the process group). A variable that is set but not an
    integer is a usage error naming it, even when WORLD_SIZE says one process."""
    world = env_int("WORLD_SIZE", 1)
    rank = env_int("RANK", 0)
    local = env_int("LOCAL_RANK", 0)
    if world <= 1:
        return Dist(), False
    if not 0 <= rank < world or local < 0:
        raise UsageError(f"invalid RANK={rank} / WORLD_SIZE={world} / LOCAL_RANK={local}",
                         hint="run under torchrun, which sets them, or unset them to train in one process")
    import torch.distributed as tdist

    created = False
    if not tdist.is_initialized():
        backend = "nccl" if device_kind == "cuda" else "gloo"
        tdist.init_process_group(backend=backend)
        created = True
    return Dist(rank, world, local), created


def all_true(flag: bool, dist: Dist, device: torch.device | None = None) -> bool:
    """Whether any rank raised ``flag`` (a stop request must stop every rank at the same iteration).
    ``device``: where the collective runs (NCCL takes CUDA tensors only)."""
    if not dist.enabled:
        return flag
    import torch.distributed as tdist

    t = torch.tensor([1.0 if flag else 0.0], device=device)
    tdist.all_reduce(t, op=tdist.ReduceOp.MAX)
    return bool(t.item() > 0)


def barrier(dist: Dist) -> None:
    if dist.enabled:
        import torch.distributed as tdist

        tdist.barrier()


def resolve_device(name: str, dist: Dist) -> torch.device:
    """``auto`` (``cuda:LOCAL_RANK`` when there is a GPU, else the CPU), ``cpu``, ``cuda``, ``cuda:N``, ``mps``."""
    if name == "auto" and not torch.cuda.is_available():
        return torch.device("cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise UsageError(f"device '{name}' requested but CUDA is not available", hint="use --device cpu")
    if name in ("auto", "cuda") and dist.enabled:
        count = torch.cuda.device_count()
        if dist.local_rank >= count:
            raise UsageError(f"process {dist.local_rank} of this node has no GPU of its own ({count} GPU(s)): NCCL "
                             "cannot put two ranks on one device",
                             hint=f"run at most {count} process(es) per node (torchrun --nproc_per_node {count}), "
                             "or --device cpu")
        return torch.device("cuda", dist.local_rank)
    if name == "auto":
        return torch.device("cuda", 0)
    try:
        return torch.device(name)
    except RuntimeError:
        raise UsageError(f"unknown device '{name}'", hint="auto, cpu, cuda, cuda:N or mps") from None


def resolve_precision(precision: str, device: torch.device, spec: ModelSpec | None) -> torch.dtype | None:
    """The autocast dtype, or None for fp32."""
    if precision == "fp32":
        return None
    if precision == "auto":
        if device.type != "cuda":
            return None
        if spec is not None and not spec.supports_bf16:
            return None
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else None
    if precision == "fp16":
        if device.type != "cuda":
            raise UsageError("fp16 training needs a CUDA device", hint="use --precision fp32 (or bf16) on CPU")
        return torch.float16
    if precision == "bf16":
        return torch.bfloat16
    raise UsageError(f"unknown precision '{precision}'", hint="auto, fp32, bf16 or fp16")
