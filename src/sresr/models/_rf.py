"""Exact receptive-field radii by interval propagation (torch-free).

A network is described, in forward order, as a list of 1-D operations on one spatial axis:

* ``("conv", k)`` / ``("conv", k, dilation)``: a stride-1 convolution with ``padding=(k-1)//2*dilation``;
* ``("up", f)``: nearest upsampling or pixel shuffle by ``f`` (output ``y`` reads input ``y // f``);
* ``("bilinear", f)`` / ``("bicubic", f)``: ``F.interpolate(..., align_corners=False)`` by ``f``;
* ``("unshuffle", f)``: pixel unshuffle by ``f`` (output ``u`` reads ``u*f .. u*f+f-1``);
* ``("deconv", k, stride, padding)``: a transposed convolution;
* ``("branch", ops_a, ops_b)``: two paths whose outputs are added (a skip connection);
* ``("window", size, offset, left, right)``: attention inside windows of ``size`` pixels on the
  grid that starts at ``offset`` (Swin's shifted windows: ``offset = size // 2``), each window's
  queries reading ``left`` / ``right`` more pixels on either side (HAT's overlapping cross
  attention; 0 for plain window attention). Positions are absolute: the tiler starts tiles on
  the window grid, so a tile sees the same windows as the whole image.

:func:`radius` walks back from every output pixel ``y`` (one full period of the pattern) to the
interval of input pixels it reads, and returns the largest distance between that interval and the
input pixel ``y // scale`` that "owns" ``y``. That is exactly what a tiler needs: an output tile
``[a*s, b*s)`` depends on input ``[a - r, b + r)``.

:func:`geometry_hook` turns an architecture module's ``receptive_field`` (and, for window
networks, ``size_multiple``) into its ``ModelSpec.geometry`` hook.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Sequence

from ..spec import Geometry

Op = tuple[Any, ...]


def _back(ops: Sequence[Op], lo: int, hi: int) -> tuple[int, int]:
    for op in reversed(ops):
        kind = op[0]
        if kind == "conv":
            r = (op[1] - 1) // 2 * (op[2] if len(op) > 2 else 1)
            lo, hi = lo - r, hi + r
        elif kind == "up":
            lo, hi = lo // op[1], hi // op[1]
        elif kind in ("bilinear", "bicubic"):
            f = op[1]
            reach = (0, 1) if kind == "bilinear" else (-1, 2)
            lo = math.floor((lo + 0.5) / f - 0.5) + reach[0]
            hi = math.floor((hi + 0.5) / f - 0.5) + reach[1]
        elif kind == "unshuffle":
            lo, hi = lo * op[1], hi * op[1] + op[1] - 1
        elif kind == "deconv":
            k, stride, pad = op[1], op[2], op[3]
            lo, hi = -((-(lo + pad - k + 1)) // stride), (hi + pad) // stride
        elif kind == "window":
            size, offset, left, right = op[1], op[2], op[3], op[4]
            lo = (lo - offset) // size * size + offset - left
            hi = (hi - offset) // size * size + offset + size - 1 + right
        elif kind == "branch":
            a = _back(op[1], lo, hi)
            b = _back(op[2], lo, hi)
            lo, hi = min(a[0], b[0]), max(a[1], b[1])
        else:  # pragma: no cover - programming error
            raise ValueError(f"unknown op {op!r}")
    return lo, hi


def radius(ops: Sequence[Op], scale: int) -> int:
    """Receptive-field radius in input pixels of a network with overall upscaling ``scale``."""
    worst = 0
    base = 1000 * scale * 16
    for y in range(base, base + 16 * scale * 4):
        lo, hi = _back(ops, y, y)
        owner = y // scale
        worst = max(worst, owner - lo, hi - owner)
    return worst


def geometry_hook(receptive_field: Callable[..., int], size_multiple: int | Callable[..., int] = 1, *,
                  exact: bool = True) -> Callable[..., Geometry]:
    """The ``ModelSpec.geometry`` hook of an architecture module: ``geometry(scale=4, **kwargs)``
    returns ``Geometry(receptive_field(scale, **kwargs), size_multiple, exact=exact)``, where
    ``size_multiple`` is a constant or, like ``receptive_field``, a function of ``(scale, **kwargs)``
    (the window grid of a transformer, the pixel-unshuffle factor of RRDBNet). Assign the result to
    the module's ``geometry`` (the spec names ``"pkg.arch:geometry"``)."""

    def geometry(scale: int = 4, **kwargs: Any) -> Geometry:
        rf = receptive_field(scale, **kwargs)
        multiple = size_multiple(scale, **kwargs) if callable(size_multiple) else size_multiple
        return Geometry(rf, multiple, exact=exact)

    multiple_text = f":func:`{size_multiple.__name__}`" if callable(size_multiple) else str(size_multiple)
    geometry.__module__ = receptive_field.__module__
    geometry.__qualname__ = geometry.__name__ = "geometry"
    geometry.__doc__ = (f"Tiling facts of this module's network built with ``scale`` and ``kwargs`` "
                        f"(``ModelSpec.geometry``): radius :func:`{receptive_field.__name__}`, size multiple "
                        f"{multiple_text}, exact={exact}.")
    return geometry
