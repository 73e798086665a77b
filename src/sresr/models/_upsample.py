"""Pixel-shuffle upsampling shared by the architectures that end in one (EDSR, SRResNet, RCAN,
SwinIR, HAT, DAT): the scale is reached by a x3 stage or by x2 stages, never otherwise, so one
function says which stages a scale takes and which scales a family can have."""

from __future__ import annotations


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
