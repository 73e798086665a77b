from sresr import ModelSpec

SPEC = ModelSpec(name="mynet", factory="sresr_dup:build", scales=(2,))
