"""Errors that sresr raises on purpose.

The CLI turns every :class:`SresrError` into one line (plus an optional hint) and an exit
code; anything else is a bug and shows a traceback only with ``--debug``.
"""

from __future__ import annotations


class SresrError(Exception):
    """Base class. ``hint`` tells the user how to fix the input."""

    exit_code = 1

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:  # pragma: no cover - trivial
        return self.message


class UsageError(SresrError):
    """Bad arguments: exit code 2."""

    exit_code = 2


class UnknownModelError(UsageError):
    """A model name that no distribution registers."""


class BrokenModelError(SresrError):
    """A registered model whose plugin failed to import or is invalid."""


class DuplicateModelError(SresrError):
    """Two distributions register the same model name."""


class InvalidSpecError(SresrError):
    """A ModelSpec that breaks the plugin contract."""


class WeightsError(SresrError):
    """Weights that cannot be found, downloaded, verified or loaded."""


class LayoutError(WeightsError):
    """A state dict that matches no known key layout of an architecture."""


class UnsafeCheckpointError(WeightsError):
    """A checkpoint that needs arbitrary unpickling (and would run code)."""


class ScaleUnknownError(LayoutError):
    """Weights of a known layout whose tensors cannot tell the scale (FSRCNN's transposed conv)."""


class DamagedWeightsError(WeightsError):
    """A weights file whose content no longer matches the digest recorded when it was written."""


class ImageError(SresrError):
    """An input image that cannot be decoded, or is too large; an output that cannot be written."""


class NoSpaceError(ImageError):
    """An output that cannot be written because its device (or quota) is full."""


class DatasetError(SresrError):
    """A dataset that cannot be found, downloaded or verified."""


class MissingDependencyError(SresrError):
    """An optional package a command needs is not installed (the hint says how to get it)."""


class ExportError(SresrError):
    """A network that cannot be exported (to ONNX), or whose export does not match it."""


def shown(path: object) -> str:
    """A path (or name) as messages show it: as is when printable, else quoted with escapes
    (``'a\\nb.png'``), so a newline or a terminal control character in a file name can neither
    split a one-line message nor reach the terminal raw."""
    text = str(path)
    return text if text.isprintable() else ascii(text)


def write_error(exc: OSError, path: object, cls: type[SresrError] = ImageError) -> SresrError:
    """A failed write of ``path`` as one line naming it: :class:`NoSpaceError` for a full disk or a
    quota (a batch then stops instead of computing what cannot be written), else ``cls``."""
    import errno

    kind = NoSpaceError if exc.errno in (errno.ENOSPC, errno.EDQUOT) else cls
    return kind(f"{shown(path)}: cannot write: {exc.strerror or exc}",
                hint="check the output folder (free space, permissions)")
