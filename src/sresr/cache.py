"""Where sresr keeps downloaded and converted files (torch-free).

The root is ``$SRESR_HOME`` when set, else the per-user cache directory from platformdirs
(``~/.cache/sresr`` on Linux). Below it: ``weights/`` (verified downloads and converted
``.safetensors``) and ``datasets/``. ``SRESR_OFFLINE=1`` forbids every network access.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

ENV_HOME = "SRESR_HOME"
ENV_OFFLINE = "SRESR_OFFLINE"


def home() -> Path:
    """The cache root (not created here)."""
    env = os.environ.get(ENV_HOME)
    if env:
        return Path(env).expanduser()
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("sresr", appauthor=False))


def weights_dir(create: bool = False) -> Path:
    """``home()/weights``: downloaded, imported and converted weights."""
    return _sub("weights", create)


def datasets_dir(create: bool = False) -> Path:
    """``home()/datasets``: downloaded evaluation and training datasets."""
    return _sub("datasets", create)


def offline() -> bool:
    """True when ``SRESR_OFFLINE`` is set to a true value (``1``, ``true``, ``yes``, ``on``)."""
    return os.environ.get(ENV_OFFLINE, "").strip().lower() in {"1", "true", "yes", "on"}


def _sub(name: str, create: bool) -> Path:
    path = home() / name
    if create:
        path.mkdir(parents=True, exist_ok=True)
    return path


def folder_hint() -> str:
    """How to fix a cache folder that cannot be written."""
    return (f"sresr keeps downloads and conversions in {home()} (set {ENV_HOME} to use another folder); "
            "it must be a writable folder with free space")


@contextmanager
def writing(what: str, where: Path, error: type[Exception] | None = None) -> Iterator[None]:
    """Turn an OSError raised while writing ``what`` into the cache (a full disk, no permission,
    ``SRESR_HOME`` naming a file) into one line naming the place and how to fix it."""
    from .errors import SresrError

    try:
        yield
    except OSError as exc:
        cls = error or SresrError
        raise cls(f"cannot write {what} to {where}: {exc.strerror or exc}", hint=folder_hint()) from None  # type: ignore[call-arg]
