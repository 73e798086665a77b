"""A third-party plugin exactly as a user would write one: torch-free spec, lazy factory."""

from sresr import ModelSpec

SPEC = ModelSpec(
    name="mynet",
    factory="sresr_mynet.net:build",
    scales=(2, 3),
    description="A tiny conv + pixel-shuffle net (test plugin).",
    receptive_field=1,
    num_params={2: 3 * 12 * 9 + 12, 3: 3 * 27 * 9 + 27},
)
