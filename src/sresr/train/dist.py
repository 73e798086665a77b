"""Where a training runs: torchrun's processes (DDP), the device and the autocast precision.

The policy itself is :mod:`sresr.devices` (shared with inference); training adds one GPU per
process under DDP (more processes than GPUs is a usage error: NCCL refuses two ranks on one
device).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .. import devices
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
    """:func:`sresr.devices.resolve_device`, with one GPU per process under DDP (NCCL refuses two
    ranks on one device)."""
    device = devices.resolve_device(name)
    if device.type == "cuda" and dist.enabled and name in ("auto", "cuda"):
        count = torch.cuda.device_count()
        if dist.local_rank >= count:
            raise UsageError(f"process {dist.local_rank} of this node has no GPU of its own ({count} GPU(s)): NCCL "
                             "cannot put two ranks on one device",
                             hint=f"run at most {count} process(es) per node (torchrun --nproc_per_node {count}), "
                             "or --device cpu")
        device = torch.device("cuda", dist.local_rank)
    return device


def resolve_precision(precision: str, device: torch.device, spec: ModelSpec | None) -> torch.dtype | None:
    """The autocast dtype, or None for fp32 (:func:`sresr.devices.training_autocast`)."""
    return devices.training_autocast(precision, device, spec)
