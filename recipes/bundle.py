"""Copy the last run of each chain into the package as bundled default weights and measure them.

    python recipes/bundle.py recipes/chains/fsrcnn-x2.toml ...   [--runs runs]

For each chain file (trained with `sresr train --chain FILE`): evaluates the last stage's
`weights.safetensors` on Set5 (bundled) and Set14 (tests/data/set14) with the standard protocol,
writes it to src/sresr/weights_data/MODEL_xS.safetensors with its training metadata (every
stage's run, iterations, time and data), and prints the WeightsSpec to declare in the model's
spec (the numbers a test then checks against).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from safetensors.torch import load_file, save_file

from sresr.evaluate import evaluate
from sresr.train.chain import load_chain
from sresr.weights import read_metadata

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "src" / "sresr" / "weights_data"
SET14 = ROOT / "tests" / "data" / "set14"
KEEP = ("sresr.model", "sresr.scale", "sresr.kwargs", "sresr.colorspace", "sresr.recipe", "sresr.iterations",
        "sresr.train_seconds", "sresr.seed", "sresr.train_data")


def main(chains: list[str], runs: Path) -> None:
    for path in map(Path, chains):
        chain = load_chain(path, runs)
        stages = []
        for st in chain.stages:  # what each stage's run recorded
            meta = read_metadata(runs / st.name / "weights.safetensors")
            stages.append({"run": st.name, "iterations": int(meta.get("sresr.iterations", 0)),
                           "seconds": round(float(meta.get("sresr.train_seconds", "nan")), 1),
                           "data": [Path(p).name for p in json.loads(meta.get("sresr.train_data", "[]"))]})
        src = runs / chain.stages[-1].name / "weights.safetensors"
        meta = read_metadata(src)
        model, scale = meta["sresr.model"], int(meta["sresr.scale"])
        name = f"{model}_x{scale}.safetensors"
        kept = {k: meta[k] for k in KEEP if k in meta}
        rel = path.resolve().relative_to(ROOT) if path.resolve().is_relative_to(ROOT) else path
        kept["sresr.recipe_file"] = str(rel)
        # every stage's data, in order of first use (a last cycle on T91 alone still learnt from BSDS200 before)
        kept["sresr.train_data"] = json.dumps(list(dict.fromkeys(d for st in stages for d in st["data"])))
        kept["sresr.stages"] = json.dumps(stages)
        dest = OUT / name
        save_file(load_file(str(src)), str(dest), metadata=kept)
        metrics = {}
        for label, data in (("set5", "set5"), ("set14", str(SET14))):
            report = evaluate(model, data, scale, weights=str(dest), progress=False)
            metrics[f"{label}/psnr"] = round(report.mean.psnr, 2)
            metrics[f"{label}/ssim"] = round(report.mean.ssim, 4)
        iters = " + ".join(str(st["iterations"]) for st in stages)
        minutes = sum(st["seconds"] for st in stages) / 60
        print(f"# {path}: {dest.relative_to(ROOT)} ({dest.stat().st_size / 1024:.0f} KiB)")
        print(
            f'WeightsSpec(tag="x{scale}", scale={scale}, file="{name}", default=True, license="Apache-2.0",\n'
            f"    metrics={metrics},\n"
            f'    recipe="{rel}",\n'
            f'    description="trained by sresr on {", ".join(json.loads(kept["sresr.train_data"]))}: '
            f'{iters} iterations, {minutes:.0f} min on one CPU thread"),\n',
            flush=True,
        )


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("chains", nargs="+")
    ap.add_argument("--runs", type=Path, default=Path("runs"))
    a = ap.parse_args()
    main(a.chains, a.runs)
