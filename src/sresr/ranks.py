"""Where this process sits under ``torchrun``: ``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK``, read in
one place (torch-free) by ``sresr upscale`` (input sharding), the engine (``cuda:LOCAL_RANK``) and
``sresr train`` (DDP). A variable that is set but not an integer is a usage error naming it, never
a crash or a silent default."""

from __future__ import annotations

import os

from .errors import UsageError


def env_int(name: str, default: int) -> int:
    """The integer in environment variable ``name``, ``default`` when unset or empty."""
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        return int(raw)
    except ValueError:
        raise UsageError(f"environment variable {name}={raw!r} is not an integer",
                         hint="torchrun sets RANK, WORLD_SIZE and LOCAL_RANK; unset them to run one process"
                         ) from None


def rank() -> int:
    return env_int("RANK", 0)


def world_size() -> int:
    return env_int("WORLD_SIZE", 1)


def local_rank() -> int:
    return env_int("LOCAL_RANK", 0)
