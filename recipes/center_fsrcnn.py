"""Move a trained FSRCNN to the centred transposed-convolution padding:

    python recipes/center_fsrcnn.py runs/fsrcnn-x4-aug3

reads RUN/weights.safetensors (padding 4 unless its metadata says otherwise) and writes
RUN/weights-centered.safetensors (``sresr.models.fsrcnn.centered_padding`` for its scale), the
kernel moved so every output pixel keeps its place (``sresr.models.fsrcnn.arch.center_init``). The
taps moved off the kernel's edge are lost, so the result is worse until fine-tuned. Chains do this
themselves with ``init_transform = "sresr.models.fsrcnn.arch:center_init"`` on a stage.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from safetensors.torch import load_file, save_file

from sresr.models.fsrcnn.arch import center_init
from sresr.weights import read_metadata

CENTERED = "weights-centered.safetensors"


def main(runs: list[str]) -> None:
    for run in map(Path, runs):
        src = run / "weights.safetensors"
        meta = dict(read_metadata(src))
        kwargs = json.loads(meta.get("sresr.kwargs", "{}") or "{}")
        old = int(kwargs.get("deconv_padding", 4))
        state, kwargs = center_init(load_file(str(src)), kwargs, int(meta["sresr.scale"]))
        meta["sresr.kwargs"] = json.dumps(kwargs, sort_keys=True)
        meta.pop("sresr.digest", None)  # the tensors changed
        dest = run / CENTERED
        save_file(state, str(dest), metadata=meta)
        print(f"{dest}: transposed-conv padding {old} -> {kwargs['deconv_padding']}")


if __name__ == "__main__":
    main(sys.argv[1:])
