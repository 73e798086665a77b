"""Tiny SR networks registered as a third-party plugin, for fast training tests."""

from sresr.spec import ModelSpec

TINY = ModelSpec(name="tinysr", factory="tinysr_train.arch:tiny", scales=(2, 3, 4), colorspace="y")
TINY_RGB = ModelSpec(name="tinysr-rgb", factory="tinysr_train.arch:tiny_rgb", scales=(2, 3, 4), colorspace="rgb")
TINY_UP = ModelSpec(name="tinysr-up", factory="tinysr_train.arch:tiny_up", scales=(2, 3, 4), colorspace="y",
                    input="upsampled")
