"""Regenerate recipes/*.toml (the CPU-sized recipes of the bundled weights): python recipes/_generate.py"""
from sresr.train.recipes import get_recipe
from sresr.train.config import override, save_toml
from pathlib import Path

from sresr.models.fsrcnn import centered_padding
T91 = "t91"; BSD = "bsds200"
common = {"threads": 1, "data.workers": 0, "val.data": "set5", "checkpoint_every": 1000, "log_every": 50}
AUG = [1.0, 0.9, 0.8, 0.7, 0.6]  # the paper's scale augmentation: every image also at 0.9..0.6 size


def cycle(recipe, scale, init, iters, lr, patch, batch=32, val_every=5000, init_file="weights.safetensors",
          train=(T91, BSD), **extra):
    """One augmented cosine cycle of FSRCNN continuing runs/INIT (``extra``: more overrides)."""
    if recipe == "fsrcnn-finetune":
        extra = {"trainable": [], **extra}
    return (recipe, scale, {"data.train": list(train), "iters": iters, "data.batch_size": batch, "data.patch_size": patch,
        "init_weights": f"runs/{init}/{init_file}", **extra, "data.resize_factors": AUG, "optim.lr": lr,
        "schedule.name": "cosine", "schedule.eta_min": 1e-6, "val.every": val_every})


def centered(recipe, scale, init, iters, lr, patch, batch=8, init_file="weights.safetensors", train=(T91, BSD)):
    """A cycle with the transposed convolution centred on the HR grid (padding 3 at x3 and x4 instead
    of 4), at the full learning rate for it."""
    return cycle(recipe, scale, init, iters, lr, patch, batch, init_file=init_file, train=train,
                 **{"model_kwargs": {"deconv_padding": centered_padding(scale)}, "optim.lr_scale": {}})


runs = {
 "fsrcnn-x2": ("fsrcnn", 2, {"data.resize_factors": [], "data.train": [T91, BSD], "iters": 100000, "data.batch_size": 32, "data.patch_size": 40,
     "optim.lr": 1e-3, "schedule.name": "cosine", "schedule.eta_min": 1e-6, "val.every": 5000}),
 # then 40k more iterations with scale augmentation
 "fsrcnn-x2-aug": cycle("fsrcnn", 2, "fsrcnn-x2", 40000, 3e-4, 40, val_every=4000),
 # x4 from scratch: fine-tuning the x2 network (30k iterations) reached 30.14 dB, this 30.18
 "fsrcnn-x4": ("fsrcnn", 4, {"data.resize_factors": [], "data.train": [T91, BSD], "iters": 60000, "data.batch_size": 32, "data.patch_size": 64,
     "optim.lr": 1e-3, "schedule.name": "cosine", "schedule.eta_min": 1e-6, "val.every": 5000}),
 # then another 50k iterations with augmentation at a lower rate (a second cosine cycle)
 "fsrcnn-x2-aug2": cycle("fsrcnn", 2, "fsrcnn-x2-aug", 50000, 2e-4, 40),
 # x3 fine-tuned from the augmented x2 network (a 30k fine-tune of the first x2 network reached
 # 32.46 dB), x4 continued from its from-scratch run, both with scale augmentation
 "fsrcnn-x3-aug": cycle("fsrcnn-finetune", 3, "fsrcnn-x2-aug", 100000, 5e-4, 48),
 "fsrcnn-x4-aug": cycle("fsrcnn", 4, "fsrcnn-x4", 100000, 3e-4, 64),
 # then a cycle on 4x larger patches at a quarter of the batch (same pixels per step, fewer outputs
 # beside the zero padding; it gained as much as a cycle on the smaller patches: BENCHMARKS.md)
 "fsrcnn-x2-aug3": cycle("fsrcnn", 2, "fsrcnn-x2-aug2", 40000, 2e-4, 80, batch=8),
 "fsrcnn-x4-aug2": cycle("fsrcnn", 4, "fsrcnn-x4-aug", 40000, 2e-4, 128, batch=8),
 "fsrcnn-x3-aug2": cycle("fsrcnn-finetune", 3, "fsrcnn-x3-aug", 40000, 2e-4, 96, batch=8),
 # and one more cycle of each at half that rate
 "fsrcnn-x2-aug4": cycle("fsrcnn", 2, "fsrcnn-x2-aug3", 60000, 1e-4, 80, batch=8),
 "fsrcnn-x4-aug3": cycle("fsrcnn", 4, "fsrcnn-x4-aug2", 60000, 1e-4, 128, batch=8),
 "fsrcnn-x3-aug3": cycle("fsrcnn-finetune", 3, "fsrcnn-x3-aug2", 60000, 1e-4, 96, batch=8),
 # x2 (already centred as near as a 9-tap kernel gets at an even scale): a third such cycle
 "fsrcnn-x2-aug5": cycle("fsrcnn", 2, "fsrcnn-x2-aug4", 60000, 1e-4, 80, batch=8),
 # then the transposed convolution moved to the padding that centres it on the HR grid (x3 and x4;
 # `python recipes/center_fsrcnn.py runs/fsrcnn-x3-aug3 runs/fsrcnn-x4-aug3` first), fine-tuned
 "fsrcnn-x3-center": centered("fsrcnn-finetune", 3, "fsrcnn-x3-aug3", 40000, 2e-4, 96, init_file="weights-centered.safetensors"),
 "fsrcnn-x4-center": centered("fsrcnn", 4, "fsrcnn-x4-aug3", 40000, 2e-4, 128, init_file="weights-centered.safetensors"),
 # and one more cycle of each at half that rate
 "fsrcnn-x3-center2": centered("fsrcnn-finetune", 3, "fsrcnn-x3-center", 60000, 1e-4, 96),
 "fsrcnn-x4-center2": centered("fsrcnn", 4, "fsrcnn-x4-center", 60000, 1e-4, 128),
 "fsrcnn-x4-center3": centered("fsrcnn", 4, "fsrcnn-x4-center2", 60000, 1e-4, 128),
 # the first stages of the x4 and x3 chains with the centred padding from the start, to compare with
 # fsrcnn-x4 / fsrcnn-x3-aug (they end within noise of them: BENCHMARKS.md)
 "fsrcnn-x4c": ("fsrcnn", 4, {"data.resize_factors": [], "data.train": [T91, BSD], "iters": 60000, "data.batch_size": 32, "data.patch_size": 64,
     "optim.lr": 1e-3, "schedule.name": "cosine", "schedule.eta_min": 1e-6, "val.every": 5000, "model_kwargs": {"deconv_padding": 3}}),
 "fsrcnn-x3c-aug": cycle("fsrcnn-finetune", 3, "fsrcnn-x2-aug", 100000, 5e-4, 48, model_kwargs={"deconv_padding": 3}),
 "srcnn-x3": ("srcnn", 3, {"data.train": [T91], "iters": 40000, "data.batch_size": 16, "data.patch_size": 33,
     "optim.lr": 5e-4, "schedule.name": "multistep", "schedule.milestones": [28000, 36000], "schedule.gamma": 0.2,
     "val.every": 1000}),
}
# then 60k cycles on T91 alone, each from the last: BSDS200 is most of the pixels (31M of 36M), and
# T91's objects and faces are closer to Set5 (and to the paper's T91 + General100): BENCHMARKS.md.
# One learning rate per cycle (with its length where it is not 60k): later cycles restart higher
# (x2's third at 2e-4 gained 0.038 dB where its second, at 1e-4, had gained 0.024)
for make, recipe, s, init, patch, rates in (
        (cycle, "fsrcnn", 2, "fsrcnn-x2-aug5", 40, (1e-4, 1e-4, 2e-4, 3e-4, 4e-4, (5e-4, 45000), (5e-4, 45000))),
        (centered, "fsrcnn-finetune", 3, "fsrcnn-x3-center2", 48, (1e-4, 1e-4, 1e-4, 2e-4, 3e-4, 4e-4, 5e-4, 5e-4)),
        (centered, "fsrcnn", 4, "fsrcnn-x4-center3", 64, (1e-4, 1e-4, 1e-4, 1e-4))):
    for k, rate in enumerate(rates, 1):
        lr, iters = rate if isinstance(rate, tuple) else (rate, 60000)
        name = f"fsrcnn-x{s}-t91" + (f"-{k}" if k > 1 else "")
        runs[name] = make(recipe, s, init, iters, lr, patch, batch=32, train=[T91])
        init = name
# x3 trains longer: it is the scale with a paper target (32.55 dB on Set5 with 91 images)
for s, iters, milestones in ((2, 24000, [15000, 20000]), (3, 120000, [75000, 105000]), (4, 24000, [15000, 20000])):
    runs[f"espcn-x{s}"] = ("espcn", s, {"data.train": [T91], "iters": iters, "data.batch_size": 32,
        "data.patch_size": 17 * s, "optim.lr": 1e-3, "schedule.name": "multistep",
        "schedule.milestones": milestones, "schedule.gamma": 0.1, "val.every": 2000})
# then a short low-rate polish of the x3 network, which ended 0.004 dB short of the paper
runs["espcn-x3-polish"] = ("espcn", 3, {"data.train": [T91], "iters": 20000, "data.batch_size": 32, "data.patch_size": 51,
    "init_weights": "runs/espcn-x3/weights.safetensors", "optim.lr": 2e-5, "schedule.name": "cosine",
    "schedule.eta_min": 1e-7, "val.every": 2000})
for name, (recipe, scale, ov) in runs.items():
    if recipe.startswith("fsrcnn") and "model_kwargs" not in ov:
        # trained before the centred padding became the recipe's default
        ov = {**ov, "model_kwargs": {"deconv_padding": 4}}
    cfg = override(get_recipe(recipe, scale), {**common, **ov})
    cfg.validate()
    data_flags = "".join(" \\\n         --data ../shared/datasets/" + ("T91" if d == "t91" else "BSDS200") for d in cfg.data.train)
    header = (f"{name}: CPU-sized recipe for the bundled weights (recipe '{recipe}'; 1 torch thread: fastest on a shared 2-core CPU).\n"
              f"Train:  sresr train {cfg.model} --config recipes/{name}.toml --out runs/{name}{data_flags}\n"
              "t91/bsds200 are downloaded by name; offline, pass local copies with --data as above.")
    save_toml(cfg, Path("recipes") / f"{name}.toml", header=header)
    print(name)
