"""Atomic file writes: a temp file in the target folder, fsync, then ``os.replace``.

A reader (or a run resumed after a crash) sees either the previous file or the new one, never a
half-written file. Temp files are named ``.NAME.<host>.<pid>-<random>.sresr-tmp`` next to the
target: a crashed writer's leftovers are recognisable, and :func:`stale_temps` finds only those of
writers that are gone (a dead process of this host), never the in-flight files of another run
writing into the same folder. Torch-free.
"""

from __future__ import annotations

import glob
import hashlib
import os
import socket
import tempfile
import time
from pathlib import Path
from typing import Callable, Iterator

TEMP_SUFFIX = ".sresr-tmp"


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


#: mkstemp creates 0600 files; finished files get the usual permissions
FILE_MODE = 0o666 & ~_umask()


#: this host, shortened: a temp file's writer is known to be gone only when it ran here
HOST = hashlib.sha256(socket.gethostname().encode()).hexdigest()[:6]
#: files of writers on other hosts (a shared folder) count as stale only after this long
FOREIGN_STALE_S = 24 * 3600.0
_STARTED = time.time()


def temp_prefix(path: Path) -> str:
    """``.NAME.`` : what every temp file of ``path`` starts with."""
    return f".{Path(path).name}."


def owned_prefix(path: Path) -> str:
    """``.NAME.<host>.<pid>-`` : the start of this process's temp files for ``path``."""
    return f"{temp_prefix(path)}{HOST}.{os.getpid()}-"


def make_temp(path: Path, suffix: str = TEMP_SUFFIX) -> Path:
    """A new empty temp file for ``path`` in its folder, named after this host and process."""
    fd, tmp = tempfile.mkstemp(prefix=owned_prefix(path), suffix=suffix, dir=Path(path).parent)
    os.close(fd)
    return Path(tmp)


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    except OSError:
        return True
    return True


def is_stale(temp: Path, path: Path, suffix: str = TEMP_SUFFIX) -> bool:
    """Whether ``temp`` (a temp file of ``path``) was left by a writer that is gone: a process of
    this host that no longer runs; for a file of another host or an older unnamed one, only when it
    is older than :data:`FOREIGN_STALE_S` (unnamed: older than this process)."""
    middle = temp.name[len(temp_prefix(path)) : len(temp.name) - len(suffix)]
    host, _, rest = middle.partition(".")
    pid, dash, _ = rest.partition("-")
    try:
        mtime = temp.stat().st_mtime
    except OSError:
        return False
    if dash and pid.isdigit() and len(host) == len(HOST):
        if host == HOST:
            return not _pid_alive(int(pid))
        return time.time() - mtime > FOREIGN_STALE_S
    return mtime < _STARTED  # a file of an older sresr: never one of a live run of this one


def stale_temps(path: Path, suffix: str = TEMP_SUFFIX) -> Iterator[Path]:
    """Temp files of ``path`` whose writer is gone (see :func:`is_stale`)."""
    path = Path(path)
    for p in path.parent.glob(glob.escape(temp_prefix(path)) + "*" + suffix):
        if is_stale(p, path, suffix):
            yield p


def remove_stale_temps(path: Path, suffix: str = TEMP_SUFFIX) -> None:
    """Delete the temp files of ``path`` left by writers that are gone; never another live run's."""
    try:
        for p in stale_temps(path, suffix):
            p.unlink(missing_ok=True)
    except OSError:
        pass


def atomic_write(path: Path, write: Callable[[Path], None]) -> Path:
    """Call ``write(tmp_path)`` then rename the temp file over ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp_path = make_temp(path)
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
