"""Move a trained FSRCNN to the centred transposed-convolution padding, to fine-tune from:

    python recipes/center_fsrcnn.py runs/fsrcnn-x4-aug3

reads RUN/weights.safetensors (padding 4 unless its metadata says otherwise) and writes
RUN/weights-centered.safetensors (sresr.models.fsrcnn.arch.centered_padding for its scale), the
kernel moved so every output pixel keeps its place. The taps moved off the kernel's edge are
lost, so the result is worse until fine-tuned (recipes/fsrcnn-x*-center*.toml do that).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from safetensors.torch import load_file, save_file

from sresr.models.fsrcnn import centered_padding
from sresr.models.fsrcnn.arch import repad_state_dict
from sresr.weights import read_metadata

CENTERED = "weights-centered.safetensors"  # what it writes into the run folder (bundle.py follows it)


def main(runs: list[str]) -> None:
    for run in map(Path, runs):
        src = run / "weights.safetensors"
        meta = dict(read_metadata(src))
        kwargs = json.loads(meta.get("sresr.kwargs", "{}") or "{}")
        old = int(kwargs.get("deconv_padding", 4))
        new = centered_padding(int(meta["sresr.scale"]))
        kwargs["deconv_padding"] = new
        meta["sresr.kwargs"] = json.dumps(kwargs, sort_keys=True)
        dest = run / CENTERED
        save_file(repad_state_dict(load_file(str(src)), old, new), str(dest), metadata=meta)
        print(f"{dest}: transposed-conv padding {old} -> {new}")


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    main(sys.argv[1:])
