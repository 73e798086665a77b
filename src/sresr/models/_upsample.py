"""Pixel-shuffle upsampling shared by the architectures that end in one (EDSR, SRResNet, RCAN,
SwinIR, HAT, DAT, SPAN): the scale is reached by a x3 stage or by x2 stages, never otherwise, so
one function says which stages a scale takes and which scales a family can have, and two read the
scale back from a published checkpoint's shapes."""

from __future__ import annotations

from typing import Any, Mapping

from ._layouts import count, isqrt_exact, shape


def shuffle_stages(scale: int, family: str, allow_one: bool = False) -> list[int]:
    """The factors of the pixel-shuffle stages that make ``scale``: ``[3]`` for x3, ``[2] * k`` for
    x2^k, ``[]`` for x1 when ``allow_one``; anything else is a ValueError naming ``family``."""
    if allow_one and scale == 1:
        return []
    if scale == 3:
        return [3]
    if scale >= 2 and scale & (scale - 1) == 0:
        return [2] * (scale.bit_length() - 1)
    ones = "1, " if allow_one else ""
    raise ValueError(f"{family} supports scales {ones}3 and powers of two, not {scale}")


def shuffle_scale(sd: Mapping[str, Any], features: int, first: str, pattern: str) -> int:
    """The scale a staged upsampler makes (``first``: its first conv's weight, ``pattern``: a regex
    whose group counts its convs): one x3 stage (9x features) or x2 stages (4x features each)."""
    factor = shape(sd, first)[0] // features
    stages = count(sd, pattern)
    if factor == 9 and stages == 1:
        return 3
    if factor == 4:
        return 2**stages
    raise ValueError(f"upsampler of {factor}x features in {stages} stages")


def direct_scale(sd: Mapping[str, Any], key: str, channels: int) -> int:
    """The scale of a one-conv upsampler (``channels * scale^2`` outputs, then PixelShuffle)."""
    out = shape(sd, key)[0]
    if out % channels:
        raise ValueError(f"{key} has {out} outputs, not a multiple of {channels} channels")
    return isqrt_exact(out // channels)
