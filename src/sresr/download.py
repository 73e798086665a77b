"""Verified, atomic, concurrent-safe downloads (torch-free).

:func:`download` streams a URL into a temporary file next to the destination, checks its
sha256, then renames it into place with ``os.replace``. A file that fails verification, or a
transfer that breaks off, never ends up at ``dest``. An inter-process lock (``flock`` on
``DEST.lock``) makes concurrent fetches of the same file download it once; the others find it
in place and verified. Used for weights and datasets alike (``what`` words the messages and
picks the error class).
"""

from __future__ import annotations

import hashlib
import http.client
import os
import re
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any, BinaryIO, Callable, Iterator

from . import cache
from .atomic import FILE_MODE, make_temp, remove_stale_temps
from .errors import DatasetError, SresrError, WeightsError

CHUNK = 1 << 20
TIMEOUT_S = 60.0

# Error class per kind of file; anything else raises a plain SresrError.
_ERRORS: dict[str, type[SresrError]] = {
    "weights": WeightsError,
    "dataset": DatasetError,
    "datasets": DatasetError,
}


def error_class(what: str) -> type[SresrError]:
    """The SresrError subclass :func:`download` raises for this kind of file."""
    return _ERRORS.get(what, SresrError)


def sha256_file(path: str | Path, chunk: int = CHUNK) -> str:
    """Hex sha256 of a file's content."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def download(
    url: str,
    dest: str | Path,
    sha256: str | None = None,
    progress: bool = True,
    what: str = "weights",
    offline_hint: str | None = None,
    timeout: float = TIMEOUT_S,
    validate: Callable[[Path], None] | None = None,
) -> Path:
    """Fetch ``url`` to ``dest`` and return ``dest``.

    - ``dest`` already present (and matching ``sha256`` when given): returned at once.
    - ``validate(path)`` (for files whose sha256 is unknown) raises :class:`SresrError` unless
      ``path`` parses as what it claims to be: a download is kept only when it passes, and a file
      already at ``dest`` that fails it is removed and fetched again, once.
    - Otherwise the body streams into ``.DEST.*.part`` in the same folder, is verified, and is
      renamed onto ``dest`` atomically. A sha256 mismatch raises (``expected ... got ...``) and
      leaves nothing behind; so does a 404 or a connection that drops mid-file.
    - Offline mode (``SRESR_OFFLINE=1``) never opens a connection: a missing file raises an
      error naming it, the URL, and how to put it in place by hand (``offline_hint``, default:
      ``sresr weights import FILE`` for weights).
    - ``progress``: a rich progress bar on stderr, shown only when stderr is a terminal.
    - ``SRESR_MIRROR`` rewrites the host it is fetched from (:func:`mirrored`).
    """
    dest = Path(dest)
    err = error_class(what)
    sha256 = sha256.lower() if sha256 else None
    if _valid(dest, sha256, validate):
        return dest
    if cache.offline():
        raise err(
            f"{what} file {dest.name} is not in the cache ({dest}) and SRESR_OFFLINE=1 forbids "
            f"downloading it from {url}",
            hint=offline_hint or _default_offline_hint(url, dest, what),
        )
    scheme = url.split(":", 1)[0].lower()
    if scheme not in ("http", "https"):
        raise err(f"cannot download {what} from {url}: only http and https URLs are supported")
    with cache.writing(f"the {what} download", dest.parent, err):
        dest.parent.mkdir(parents=True, exist_ok=True)
    with _locked(dest):
        remove_stale_temps(dest, ".part")  # left by a download that was killed
        if _valid(dest, sha256, validate):  # another process fetched it while we waited
            return dest
        _fetch(mirrored(url), dest, sha256, progress, what, err, timeout, validate)
    return dest


def hash_prefix(name: str) -> str | None:
    """The sha256 prefix a torch.hub-style file name carries (``vgg19-dcbb9e9d.pth`` ->
    ``dcbb9e9d``; BasicSR's and EDSR's files are named the same way), or None."""
    stem = name.split("?", 1)[0].rstrip("/").rsplit("/", 1)[-1]
    found = re.search(r"-([0-9a-f]{8,64})\.[A-Za-z0-9]+$", stem)
    return found.group(1) if found else None


def mirrored(url: str) -> str:
    """Where ``url`` is fetched from: with ``SRESR_MIRROR=BASE`` (a proxy or a local copy of the
    files), ``BASE/HOST/PATH`` (``https://github.com/a/b.pth`` -> ``BASE/github.com/a/b.pth``);
    without it, ``url`` itself. The original URL still names the file everywhere else."""
    base = os.environ.get("SRESR_MIRROR", "").strip()
    if not base:
        return url
    if not base.lower().startswith(("http://", "https://")):
        from .errors import UsageError

        raise UsageError(f"SRESR_MIRROR={base!r} is not an http(s) URL", hint="set it to http(s)://HOST[/PATH], or unset it")
    parts = urllib.parse.urlsplit(url)
    return f"{base.rstrip('/')}/{parts.netloc}{parts.path}" + (f"?{parts.query}" if parts.query else "")


def _default_offline_hint(url: str, dest: Path, what: str) -> str:
    if what == "weights":
        return (
            f"download {url} on a machine with network access, then run 'sresr weights import FILE' "
            "(or unset SRESR_OFFLINE)"
        )
    return f"download {url} by hand and place it at {dest} (or unset SRESR_OFFLINE)"


def temp_path(dest: Path) -> Path:
    """A new empty ``.DEST.<host>.<pid>-*.part`` file next to ``dest``, with the permissions of a
    normal new file (mkstemp's are 0600), for write-then-``os.replace``."""
    tmp = make_temp(dest, ".part")
    # the umask read once at import (atomic.FILE_MODE): reading it here would set it to 0 for a
    # moment, and a file another thread creates in that moment would be world-writable
    os.chmod(tmp, FILE_MODE)
    return tmp


def _valid(dest: Path, sha256: str | None, validate: Callable[[Path], None] | None = None) -> bool:
    if not dest.is_file():
        return False
    if sha256 is not None:
        return sha256_file(dest) == sha256
    if validate is not None:
        try:
            validate(dest)
        except SresrError:
            dest.unlink(missing_ok=True)  # damaged or never whole: fetched again
            return False
    return True


def _fetch(
    url: str,
    dest: Path,
    sha256: str | None,
    progress: bool,
    what: str,
    err: type[SresrError],
    timeout: float,
    validate: Callable[[Path], None] | None = None,
) -> None:
    from . import __version__

    with cache.writing(f"the {what} download", dest.parent, err):
        tmp = temp_path(dest)
    try:
        with open(tmp, "wb") as out:
            request = urllib.request.Request(url, headers={"User-Agent": f"sresr/{__version__}"})
            try:
                with urllib.request.urlopen(request, timeout=timeout) as resp:
                    total = resp.headers.get("Content-Length")
                    total_n = int(total) if total and total.isdigit() else None
                    digest, received = _stream(resp, out, total_n, progress and sys.stderr.isatty(), dest.name,
                                               lambda: cache.writing(f"the {what} download", dest.parent, err))
            except urllib.error.HTTPError as exc:
                raise err(
                    f"could not download {what} from {url}: HTTP {exc.code} {exc.reason}",
                    hint="check the URL, or download the file by hand and import it",
                ) from None
            except urllib.error.URLError as exc:
                raise err(
                    f"could not download {what} from {url}: {exc.reason}",
                    hint="check your network connection (or set SRESR_OFFLINE=1 and import the file by hand)",
                ) from None
            except (OSError, http.client.HTTPException) as exc:  # reset, timeout, IncompleteRead
                raise err(
                    f"could not download {what} from {url}: the connection broke off ({_describe(exc)})",
                    hint="try again; nothing partial was kept",
                ) from None
            if total_n is not None and received != total_n:
                raise err(
                    f"could not download {what} from {url}: the connection broke off after "
                    f"{received} of {total_n} bytes",
                    hint="try again; nothing partial was kept",
                )
            out.flush()
            os.fsync(out.fileno())
        if sha256 is not None and digest != sha256:
            raise err(
                f"{what} downloaded from {url} failed verification: expected sha256 {sha256}, got {digest}",
                hint="the file on the server differs from the one declared; nothing was kept",
            )
        if validate is not None:
            try:
                validate(tmp)
            except SresrError as exc:
                reason = exc.message.replace(f"{tmp}: ", "").replace(str(tmp), "the download")
                raise err(f"{what} downloaded from {url} are not usable: {reason}",
                          hint="nothing was kept; check the URL (an error page or a cut-short transfer?)") from None
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, http.client.IncompleteRead):
        got = len(exc.partial)
        return f"incomplete read: {got} bytes, {exc.expected} more expected"
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _stream(
    resp: BinaryIO, out: BinaryIO, total: int | None, show: bool, label: str,
    writing: Callable[[], Any] = nullcontext,
) -> tuple[str, int]:
    """Copy ``resp`` to ``out``, hashing. A failed local write (a full disk) is raised inside
    ``writing()``, so it is not mistaken for the connection breaking off."""
    h = hashlib.sha256()
    received = 0
    with _progress_bar(show, label, total) as advance:
        while True:
            block = resp.read(CHUNK)
            if not block:
                break
            with writing():
                out.write(block)
            h.update(block)
            received += len(block)
            advance(len(block))
    return h.hexdigest(), received


@contextmanager
def _progress_bar(show: bool, label: str, total: int | None) -> Iterator[Callable[[int], None]]:
    if not show:
        yield lambda n: None
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task(label, total=total)
        yield lambda n: bar.update(task, advance=n)


@contextmanager
def _locked(dest: Path) -> Iterator[None]:
    """Exclusive inter-process lock on ``DEST.lock`` (no-op where ``fcntl`` is missing).

    The lock file is removed on release. A waiter that wakes up holding the lock of an
    already-removed file notices (the inode changed) and locks the new one instead.
    """
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows: write-then-rename still keeps dest valid
        yield
        return
    lock_path = dest.with_name(dest.name + ".lock")
    while True:
        with cache.writing("a download lock", dest.parent, WeightsError):
            fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                same = os.stat(lock_path).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
        except BaseException:
            os.close(fd)
            raise
        if same:
            break
        os.close(fd)
        time.sleep(0.01)
    try:
        yield
    finally:
        try:
            os.unlink(lock_path)
        except FileNotFoundError:
            pass
        os.close(fd)  # closing releases the flock
