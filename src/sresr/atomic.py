"""Atomic file writes: a temp file in the target folder, fsync, then ``os.replace``.

A reader (or a run resumed after a crash) sees either the previous file or the new one, never a
half-written file. Temp files are named ``.NAME.<random>.sresr-tmp`` next to the target, so a
crashed writer's leftovers are recognisable (see :func:`stale_temps`). Torch-free.
"""

from __future__ import annotations

import glob
import os
import tempfile
from pathlib import Path
from typing import Callable, Iterator

TEMP_SUFFIX = ".sresr-tmp"


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


#: mkstemp creates 0600 files; finished files get the usual permissions
FILE_MODE = 0o666 & ~_umask()


def temp_prefix(path: Path) -> str:
    return f".{Path(path).name}."


def stale_temps(path: Path) -> Iterator[Path]:
    """Temp files a crashed writer of ``path`` left behind."""
    path = Path(path)
    yield from path.parent.glob(glob.escape(temp_prefix(path)) + "*" + TEMP_SUFFIX)


def atomic_write(path: Path, write: Callable[[Path], None]) -> Path:
    """Call ``write(tmp_path)`` then rename the temp file over ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=temp_prefix(path), suffix=TEMP_SUFFIX, dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        write(tmp_path)
        with open(tmp_path, "rb+") as fh:
            os.fsync(fh.fileno())
        os.chmod(tmp_path, FILE_MODE)
        os.replace(tmp_path, path)
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise
    try:  # make the rename itself durable
        dfd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except OSError:
        pass
    return path


def atomic_write_bytes(path: Path, data: bytes) -> Path:
    return atomic_write(path, lambda p: p.write_bytes(data))


def atomic_write_text(path: Path, text: str) -> Path:
    return atomic_write(path, lambda p: p.write_text(text, encoding="utf-8"))
