"""Tiny line plots drawn with PIL (no matplotlib dependency)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Sequence

from ..atomic import atomic_write


def _ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    if hi <= lo:
        return [lo]
    return [lo + (hi - lo) * i / (n - 1) for i in range(n)]


def line_plot(points: Sequence[tuple[float, float]], path: Path, title: str = "", ylabel: str = "",
              log_y: bool = False, size: tuple[int, int] = (720, 420)) -> Path:
    """Write a PNG line plot of (x, y) points atomically."""
    from PIL import Image, ImageDraw

    pts = [(x, y) for x, y in points if math.isfinite(y) and (not log_y or y > 0)]
    w, h = size
    left, right, top, bottom = 80, 20, 36, 44
    img = Image.new("RGB", (w, h), "white")
    d = ImageDraw.Draw(img)
    d.text((left, 10), title, fill="black")
    d.rectangle([left, top, w - right, h - bottom], outline="black")
    if pts:
        xs = [p[0] for p in pts]
        ys = [math.log10(p[1]) if log_y else p[1] for p in pts]
        x0, x1 = min(xs), max(xs)
        y0, y1 = min(ys), max(ys)
        if x1 == x0:
            x1 = x0 + 1
        if y1 == y0:
            y0, y1 = y0 - 0.5, y1 + 0.5
        pad = (y1 - y0) * 0.05
        y0, y1 = y0 - pad, y1 + pad

        def px(x: float, y: float) -> tuple[float, float]:
            return (left + (x - x0) / (x1 - x0) * (w - left - right),
                    h - bottom - (y - y0) / (y1 - y0) * (h - top - bottom))

        for ty in _ticks(y0, y1):
            _, yy = px(x0, ty)
            d.line([left - 4, yy, left, yy], fill="black")
            label = f"{10 ** ty:.3g}" if log_y else f"{ty:.4g}"
            d.text((4, yy - 6), label, fill="black")
        for tx in _ticks(x0, x1):
            xx, _ = px(tx, y0)
            d.line([xx, h - bottom, xx, h - bottom + 4], fill="black")
            d.text((xx - 12, h - bottom + 8), f"{tx:.0f}", fill="black")
        line = [px(x, y) for x, y in zip(xs, ys)]
        if len(line) == 1:
            cx, cy = line[0]
            d.ellipse([cx - 2, cy - 2, cx + 2, cy + 2], fill=(31, 119, 180))
        else:
            d.line(line, fill=(31, 119, 180), width=2)
    d.text((w // 2 - 30, h - 18), "iteration", fill="black")
    d.text((left + 6, top + 4), ylabel, fill="gray")
    return atomic_write(Path(path), lambda tmp: img.save(tmp, format="PNG"))
