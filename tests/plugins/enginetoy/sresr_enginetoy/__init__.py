"""Tiny models registered through a real (test) distribution, for the engine and CLI tests."""

from sresr import ModelSpec

SPEC = ModelSpec(
    name="enginetoy",
    factory="sresr_enginetoy.net:ToyNet",
    scales=(2, 4),
    description="conv-BN-ReLU-conv-pixelshuffle (test model)",
    receptive_field=2,
)

SPEC_Y = ModelSpec(
    name="enginetoy-y",
    factory="sresr_enginetoy.net:ToyY",
    scales=(2, 3),
    colorspace="y",
    input="upsampled",
    description="pre-upsampling Y-channel residual net (test model)",
    receptive_field=2,
)
