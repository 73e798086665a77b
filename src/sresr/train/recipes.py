"""Default training recipes, one per built-in model (and per stage for the GAN models), as in
the papers (and the reproductions users run). torch-free.

``get_recipe(name, scale)`` returns a :class:`TrainConfig`; ``recipe_for_model(model)`` names the
recipe ``sresr train MODEL`` uses when no ``--recipe`` is given. Iteration counts are the papers'
(GPU-sized); the chains of CPU-sized stages that produce the bundled weights are in
``recipes/chains/*.toml`` (:mod:`sresr.train.chain`).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Callable

from ..errors import UsageError
from ..models.fsrcnn import centered_padding
from .config import DataConfig, GanConfig, LossConfig, OptimConfig, ScheduleConfig, TrainConfig, ValConfig

Recipe = Callable[[int], TrainConfig]


def _srcnn(scale: int) -> TrainConfig:
    # Dong et al. 2014/2016: 91 images, 33x33 sub-images, MSE, pre-upsampled Y input. Adam instead
    # of the paper's plain SGD (the common PyTorch reproduction), same data and loss.
    return TrainConfig(
        model="srcnn", scale=scale, recipe="srcnn", iters=200_000,
        data=DataConfig(train=("t91",), patch_size=33, batch_size=16),
        optim=OptimConfig(name="adam", lr=1e-4),
        schedule=ScheduleConfig(name="multistep", milestones=(150_000,), gamma=0.1),
        loss=LossConfig(pixel="mse"),
        val=ValConfig(every=2000),
    )


def _fsrcnn(scale: int) -> TrainConfig:
    # Dong et al. 2016: T91 + General100 (not downloadable here: BSDS200 instead), MSE, PReLU,
    # LR sub-images about 10/7/6 px for x2/x3/x4 (we take 16 LR px for fewer border effects);
    # scale augmentation: every image also shrunk by 0.9, 0.8, 0.7 and 0.6. The transposed
    # convolution centred on the HR grid (padding 3 at x3/x4, not the usual 4) learns faster.
    return TrainConfig(
        model="fsrcnn", scale=scale, recipe="fsrcnn", iters=200_000,
        model_kwargs={"deconv_padding": centered_padding(scale)},
        data=DataConfig(train=("t91", "bsds200"), patch_size=16 * scale, batch_size=16,
                        resize_factors=(1.0, 0.9, 0.8, 0.7, 0.6)),
        # the paper: lr 1e-3 for the convolutions, 1e-4 for the deconvolution
        optim=OptimConfig(name="adam", lr=1e-3, lr_scale={"@last": 0.1}),
        schedule=ScheduleConfig(name="multistep", milestones=(100_000, 150_000), gamma=0.1),
        loss=LossConfig(pixel="mse"),
        val=ValConfig(every=2000),
    )


def _fsrcnn_finetune(scale: int) -> TrainConfig:
    # FSRCNN x3/x4 from the x2 network: only the deconvolution (the last layer) is retrained.
    base = _fsrcnn(scale)
    return replace(
        base, recipe="fsrcnn-finetune", iters=50_000,
        init_weights="runs/fsrcnn-x2/weights.safetensors", trainable=("@last",),
        schedule=ScheduleConfig(name="multistep", milestones=(30_000,), gamma=0.1),
    )


def _espcn(scale: int) -> TrainConfig:
    # Shi et al. 2016: 91 images, 17r x 17r HR sub-images, MSE, lr 1e-2 -> 1e-4 (Adam 1e-3 here).
    return TrainConfig(
        model="espcn", scale=scale, recipe="espcn", iters=200_000,
        data=DataConfig(train=("t91",), patch_size=17 * scale, batch_size=16),
        optim=OptimConfig(name="adam", lr=1e-3),
        schedule=ScheduleConfig(name="multistep", milestones=(100_000, 150_000), gamma=0.1),
        loss=LossConfig(pixel="mse"),
        val=ValConfig(every=2000),
    )


def _vdsr(scale: int) -> TrainConfig:
    # Kim et al. 2016: 291 images, 41x41 patches, batch 64, SGD momentum 0.9, weight decay 1e-4,
    # lr 0.1 divided by 10 every 20 of 80 epochs, gradient clipping, one network trained on x2, x3
    # and x4 at once. lr 0.1 is meant for the paper's Euclidean loss, 1/2 of the squared error
    # summed over the patch (pixel_reduction "sum", pixel_weight 0.5): with the mean over the
    # patch's 1681 pixels instead, the gradients are ~840x smaller and 200 CPU iterations gained
    # 0.25 dB on T91 where the summed loss gained 1.8 dB. Clipping as twtygqyy/pytorch-vdsr (the
    # reproduction that reaches the paper): the gradients' global norm clipped to 0.4, which
    # bounds every early step (the per-element +-theta/lr clipping let lr 0.1 diverge).
    return TrainConfig(
        model="vdsr", scale=scale, recipe="vdsr", iters=80_000,
        data=DataConfig(train=("t91", "bsds200"), patch_size=41, batch_size=64, scales=(2, 3, 4)),
        optim=OptimConfig(name="sgd", lr=0.1, momentum=0.9, weight_decay=1e-4, grad_clip=0.4,
                          grad_clip_mode="norm"),
        schedule=ScheduleConfig(name="step", step_size=20_000, gamma=0.1),
        loss=LossConfig(pixel="mse", pixel_weight=0.5, pixel_reduction="sum"),
        val=ValConfig(every=2000),
    )


def _srresnet(scale: int, model: str = "srresnet", recipe: str = "srresnet") -> TrainConfig:
    # Ledig et al. 2017: 96x96 HR patches (24x24 LR at x4), batch 16, Adam 1e-4, MSE, 16 blocks
    # (ImageNet in the paper; DIV2K is the usual stand-in). --loss l1 gives the L1 variant.
    return TrainConfig(
        model=model, scale=scale, recipe=recipe, iters=1_000_000,
        data=DataConfig(train=("div2k-train",), patch_size=24 * scale, batch_size=16, workers=4),
        optim=OptimConfig(name="adam", lr=1e-4),
        loss=LossConfig(pixel="mse"),
        val=ValConfig(every=5000),
        checkpoint_every=5000,
    )


def _edsr(scale: int) -> TrainConfig:
    # Lim et al. 2017: DIV2K, 48x48 LR patches, batch 16, L1, Adam 1e-4 halved every 2e5 updates.
    return TrainConfig(
        model="edsr", scale=scale, recipe="edsr", iters=300_000,
        data=DataConfig(train=("div2k-train",), patch_size=48 * scale, batch_size=16, workers=4),
        optim=OptimConfig(name="adam", lr=1e-4),
        schedule=ScheduleConfig(name="step", step_size=200_000, gamma=0.5),
        loss=LossConfig(pixel="l1"),
        val=ValConfig(every=5000),
        checkpoint_every=5000,
    )


def _srgan_pretrain(scale: int) -> TrainConfig:
    # SRGAN stage 1: the generator trained as SRResNet (MSE).
    return _srresnet(scale, model="srgan", recipe="srgan-pretrain")


def _srgan(scale: int) -> TrainConfig:
    # SRGAN stage 2: from the stage-1 generator (runs/srgan-pretrain-xS), 96x96 HR patches, VGG54
    # content loss (features after the ReLU, rescaled by 1/12.75 -> weight 1/12.75^2) + 1e-3
    # adversarial with the paper's discriminator; lr 1e-4 then 1e-5, 1e5 iterations each.
    base = _srresnet(scale, model="srgan", recipe="srgan")
    return replace(
        base, iters=200_000, init_weights=f"{run_folder('srgan-pretrain', 'srgan', scale)}/weights.safetensors",
        data=replace(base.data, patch_size=96),
        schedule=ScheduleConfig(name="multistep", milestones=(100_000,), gamma=0.1),
        loss=LossConfig(pixel="mse", pixel_weight=0.0, perceptual_weight=1 / 12.75**2,
                        perceptual_layer="conv5_4", perceptual_before_activation=False),
        gan=GanConfig(weight=1e-3, kind="vanilla", lr=1e-4,
                      discriminator="sresr.models.discriminators:SRGANDiscriminator"),
    )


def _srgan_l1(scale: int) -> TrainConfig:
    # The pixel-loss SRGAN variant (no VGG): L1 + 1e-3 adversarial, from the stage-1 generator.
    base = _srgan(scale)
    return replace(base, recipe="srgan-l1", loss=LossConfig(pixel="l1", pixel_weight=1.0, perceptual_weight=0.0))


def _esrgan_pretrain(scale: int) -> TrainConfig:
    # ESRGAN stage 1 (PSNR-oriented RRDBNet): 128x128 HR patches, batch 16, L1, Adam 2e-4
    # halved every 2e5 iterations.
    return TrainConfig(
        model="esrgan", scale=scale, recipe="esrgan-pretrain", iters=1_000_000,
        data=DataConfig(train=("div2k-train",), patch_size=128, batch_size=16, workers=4),
        optim=OptimConfig(name="adam", lr=2e-4),
        schedule=ScheduleConfig(name="step", step_size=200_000, gamma=0.5),
        loss=LossConfig(pixel="l1"),
        val=ValConfig(every=5000),
        checkpoint_every=5000,
    )


def _esrgan(scale: int) -> TrainConfig:
    # ESRGAN stage 2: from the stage-1 RRDBNet, relativistic average GAN (5e-3) + VGG54 features
    # before activation (L1, weight 1) + L1 pixel (1e-2); lr 1e-4 halved at 50k, 100k, 200k, 300k.
    base = _esrgan_pretrain(scale)
    return replace(
        base, recipe="esrgan", iters=400_000,
        init_weights=f"{run_folder('esrgan-pretrain', 'esrgan', scale)}/weights.safetensors",
        optim=OptimConfig(name="adam", lr=1e-4),
        schedule=ScheduleConfig(name="multistep", milestones=(50_000, 100_000, 200_000, 300_000), gamma=0.5),
        loss=LossConfig(pixel="l1", pixel_weight=1e-2, perceptual_weight=1.0, perceptual_layer="conv5_4",
                        perceptual_before_activation=True, perceptual_criterion="l1"),
        gan=GanConfig(weight=5e-3, kind="ragan", lr=1e-4,
                      discriminator="sresr.models.discriminators:VGGStyleDiscriminator"),
        ema=0.999,
    )


def _generic(scale: int) -> TrainConfig:
    # Any other model (plugins, realesrgan-compact): L1, Adam 2e-4 halved every 1e5, 128 px patches.
    return TrainConfig(
        model="", scale=scale, recipe="generic", iters=200_000,
        data=DataConfig(train=("div2k-train",), patch_size=32 * scale, batch_size=16),
        optim=OptimConfig(name="adam", lr=2e-4),
        schedule=ScheduleConfig(name="step", step_size=100_000, gamma=0.5),
        loss=LossConfig(pixel="l1"),
        val=ValConfig(every=2000),
    )


RECIPES: dict[str, tuple[Recipe, int, str]] = {
    # name: (builder, default scale, description)
    "srcnn": (_srcnn, 3, "SRCNN 9-5-5: T91, MSE, pre-upsampled Y input"),
    "fsrcnn": (_fsrcnn, 2, "FSRCNN: T91 + BSDS200, MSE, PReLU"),
    "fsrcnn-finetune": (_fsrcnn_finetune, 3, "FSRCNN x3/x4 from x2: retrain only the deconvolution"),
    "espcn": (_espcn, 3, "ESPCN: T91, MSE, sub-pixel convolution"),
    "vdsr": (_vdsr, 2, "VDSR: 291 images, 41x41, SGD lr 0.1 on the summed loss, norm clipping, x2/x3/x4"),
    "srresnet": (_srresnet, 4, "SRResNet: Adam 1e-4, MSE (or --loss l1), 96x96 HR patches"),
    "edsr": (_edsr, 4, "EDSR: DIV2K, L1, 48x48 LR patches, lr halved every 2e5"),
    "srgan-pretrain": (_srgan_pretrain, 4, "SRGAN stage 1: SRResNet generator with MSE"),
    "srgan": (_srgan, 4, "SRGAN stage 2: VGG54 content + 1e-3 adversarial, from stage 1"),
    "srgan-l1": (_srgan_l1, 4, "SRGAN stage 2, pixel-loss variant: L1 + 1e-3 adversarial, from stage 1"),
    "esrgan-pretrain": (_esrgan_pretrain, 4, "ESRGAN stage 1: RRDBNet with L1"),
    "esrgan": (_esrgan, 4, "ESRGAN stage 2: RaGAN + VGG54 before activation + L1, lr halving"),
    "generic": (_generic, 4, "any other model: L1, Adam 2e-4"),
}


def run_folder(recipe: str, model: str, scale: int) -> str:
    """The default run folder: ``runs/RECIPE-xS`` (``runs/MODEL-xS`` for the generic recipe), so a
    chain's stages never share a folder and a stage finds the one before it (SRGAN's stage 2 reads
    ``runs/srgan-pretrain-x4``, which stage 1 writes)."""
    name = recipe if recipe and recipe != "generic" else model
    return f"runs/{name}-x{scale}"


def list_recipes() -> dict[str, str]:
    return {name: desc for name, (_, _, desc) in RECIPES.items()}


def recipe_for_model(model: str) -> str:
    from ..registry import parse_ref

    base = parse_ref(model)[0]
    return base if base in RECIPES else "generic"


def get_recipe(name: str, scale: int | None = None, model: str | None = None) -> TrainConfig:
    """The recipe ``name`` for ``scale`` (default: the recipe's scale), for ``model`` if given."""
    if name not in RECIPES:
        import difflib

        close = difflib.get_close_matches(name, list(RECIPES), n=3, cutoff=0.5)
        raise UsageError(
            f"unknown recipe '{name}'",
            hint=("did you mean " + ", ".join(repr(c) for c in close) + "? " if close else "")
            + "recipes: " + ", ".join(RECIPES),
        )
    builder, default_scale, _ = RECIPES[name]
    cfg = builder(int(scale) if scale is not None else default_scale)
    if model is not None:
        cfg = replace(cfg, model=model)
    return cfg
