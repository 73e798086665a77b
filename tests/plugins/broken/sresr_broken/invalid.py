from sresr import ModelSpec

NOT_A_SPEC = {"name": "wrongtype", "factory": "x:y"}
MISMATCH = ModelSpec(name="somethingelse", factory="x:y", scales=(2,))
NO_SCALES = ModelSpec(name="noscales", factory="x:y", scales=())
