"""Copy trained runs into the package as bundled default weights and measure them.

    python recipes/bundle.py runs/fsrcnn-x2 runs/espcn-x3 ...

For each run folder (made by `sresr train ... --out runs/NAME`): evaluates `weights.safetensors`
on Set5 (bundled) and Set14 (tests/data/set14) with the standard protocol, writes it to
src/sresr/weights_data/MODEL_xS.safetensors with its training metadata, and prints the
WeightsSpec to declare in the model's spec (the numbers a test then checks against).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import NamedTuple

from safetensors.torch import load_file, save_file

from center_fsrcnn import CENTERED  # recipes/ is on sys.path when this runs as a script
from sresr.evaluate import evaluate
from sresr.weights import read_metadata

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "src" / "sresr" / "weights_data"
SET14 = ROOT / "tests" / "data" / "set14"
KEEP = ("sresr.model", "sresr.scale", "sresr.kwargs", "sresr.colorspace", "sresr.recipe", "sresr.iterations",
        "sresr.train_seconds", "sresr.seed", "sresr.train_data")


class Stage(NamedTuple):
    run: str
    iterations: int
    seconds: float
    init: str  # the init_weights file's name (``CENTERED``: made by recipes/center_fsrcnn.py)
    data: list[str]  # training data folder names


def lineage(run: Path) -> list[Stage]:
    """This run and the runs its init_weights came from, first first."""
    from sresr.train.config import load_toml

    out = []
    seen = set()
    while run not in seen and (run / "weights.safetensors").is_file():
        seen.add(run)
        meta = read_metadata(run / "weights.safetensors")
        init = load_toml(run / "config.toml").init_weights if (run / "config.toml").is_file() else ""
        data = [Path(p).name for p in json.loads(meta.get("sresr.train_data", "[]"))]
        out.append(Stage(run.name, int(meta.get("sresr.iterations", 0)), float(meta.get("sresr.train_seconds", "nan")),
                         Path(init).name, data))
        if Path(init).name not in ("weights.safetensors", CENTERED):
            break
        run = (ROOT / init).parent if not Path(init).is_absolute() else Path(init).parent
    return out[::-1]


def main(runs: list[str]) -> None:
    for run in map(Path, runs):
        src = run / "weights.safetensors"
        meta = read_metadata(src)
        model, scale = meta["sresr.model"], int(meta["sresr.scale"])
        name = f"{model}_x{scale}.safetensors"
        kept = {k: meta[k] for k in KEEP if k in meta}
        kept["sresr.recipe_file"] = f"recipes/{run.name}.toml"
        stages = lineage(run)
        # every stage's data, in order of first use (a last cycle on T91 alone still learnt from BSDS200 before)
        kept["sresr.train_data"] = json.dumps(list(dict.fromkeys(d for st in stages for d in st.data)))
        kept["sresr.stages"] = json.dumps([{"run": st.run, "iterations": st.iterations, "seconds": round(st.seconds, 1),
                                            "data": st.data} for st in stages])
        dest = OUT / name
        save_file(load_file(str(src)), str(dest), metadata=kept)
        metrics = {}
        for label, data in (("set5", "set5"), ("set14", str(SET14))):
            report = evaluate(model, data, scale, weights=str(dest), progress=False)
            metrics[f"{label}/psnr"] = round(report.mean.psnr, 2)
            metrics[f"{label}/ssim"] = round(report.mean.ssim, 4)
        iters = " + ".join(str(st.iterations) for st in stages)
        minutes = sum(st.seconds for st in stages) / 60
        steps = []
        for st in stages:
            if st.init == CENTERED:
                steps.append("recipes/center_fsrcnn.py")
            steps.append(f"recipes/{st.run}.toml")
        recipe = " then ".join(steps)
        print(f"# {run.name}: {dest.relative_to(ROOT)} ({dest.stat().st_size / 1024:.0f} KiB)")
        print(
            f'WeightsSpec(tag="x{scale}", scale={scale}, file="{name}", default=True, license="Apache-2.0",\n'
            f"    metrics={metrics},\n"
            f'    recipe="{recipe}",\n'
            f'    description="trained by sresr on {", ".join(json.loads(kept["sresr.train_data"]))}: '
            f'{iters} iterations, {minutes:.0f} min on one CPU thread"),\n',
            flush=True,
        )


if __name__ == "__main__":
    main(sys.argv[1:])
