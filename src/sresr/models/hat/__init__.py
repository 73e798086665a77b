"""HAT spec (torch-free). The network is in :mod:`sresr.models.hat.arch`.

Published weights: the authors share HAT, HAT-S and HAT-L (x2/x3/x4, DF2K, with and without
ImageNet pre-training, and the Real_HAT_GAN models) on Google Drive, which has no stable download
URL. ``HAT_SRx4_ImageNet-pretrain.pth`` is declared from the Hugging Face mirror ``Acly/hat`` (a
copy of the authors' file that Krita's AI Diffusion plug-in downloads) with the full sha256 and
size that projects pinning it record; the other files load as published with ``--weights FILE``
or ``sresr weights import FILE`` (``params_ema`` wrapper recognised; every hyperparameter comes
from the shapes).

Tiling is approximate (``geometry(...).exact`` is False): the channel attention of every block
pools over the whole map it runs on. See :mod:`sresr.models.hat.arch` for the measured bound.
"""

from sresr.spec import ModelSpec, WeightsSpec

SPEC = ModelSpec(
    name="hat",
    factory="sresr.models.hat.arch:hat",
    scales=(2, 3, 4),
    description="HAT (embed 180, 6 groups x 6 hybrid attention blocks, window 16, overlapping cross-attention); "
    "variant=hat-s, hat-l",
    colorspace="rgb",
    input="lr",
    size_multiple=16,  # the window: inputs padded to it, tiles aligned to its grid
    receptive_field=773,  # HAT-L; HAT and HAT-S need 389 (arch.geometry); tiling is approximate
    supports_fp16=False,  # not measured with the published weights; the engine falls back to fp32 on inf/NaN
    supports_bf16=True,
    loader="sresr.models.hat.arch:load_state_dict",
    geometry="sresr.models.hat.arch:geometry",
    num_params={2: 20624795, 3: 20809435, 4: 20772507},
    paper="Chen, Wang, Zhou, Qiao, Dong: Activating More Pixels in Image Super-Resolution Transformer, CVPR 2023 "
    "(arXiv:2205.04437)",
    license="Apache-2.0",
    # HAT (DF2K, no ImageNet pre-training), the paper's Table 6. Cross-checked (2026-12-06): x4 PSNRs with the
    # authors' README (XPixelGroup/HAT), x2 and x4 PSNR/SSIM with the paper's row quoted in its issue #113;
    # x3 not found in a text source here (taken from the paper, unverified)
    paper_metrics={
        "set5/x2/psnr": 38.63, "set5/x2/ssim": 0.9630, "set14/x2/psnr": 34.86, "set14/x2/ssim": 0.9274,
        "b100/x2/psnr": 32.62, "b100/x2/ssim": 0.9053, "urban100/x2/psnr": 34.45, "urban100/x2/ssim": 0.9466,
        "set5/x3/psnr": 35.07, "set5/x3/ssim": 0.9329, "set14/x3/psnr": 31.08, "set14/x3/ssim": 0.8555,
        "b100/x3/psnr": 29.54, "b100/x3/ssim": 0.8167, "urban100/x3/psnr": 30.23, "urban100/x3/ssim": 0.8896,
        "set5/x4/psnr": 33.04, "set5/x4/ssim": 0.9056, "set14/x4/psnr": 29.23, "set14/x4/ssim": 0.7973,
        "b100/x4/psnr": 28.00, "b100/x4/ssim": 0.7517, "urban100/x4/psnr": 27.97, "urban100/x4/ssim": 0.8368,
    },
    weights=(
        WeightsSpec(
            tag="x4-imagenet", scale=4, default=True, license="Apache-2.0",
            aliases=("HAT_SRx4_ImageNet-pretrain",),
            url="https://huggingface.co/Acly/hat/resolve/main/HAT_SRx4_ImageNet-pretrain.pth",
            sha256="4ee053c42461187846dc0e93aa5abd34591c0725a8e044a59000e92ee215e833",
            # the paper's Table 6, HAT with ImageNet pre-training (HAT-dagger), x4 (no text source found to cross-check)
            metrics={"set5/x4/psnr": 33.18, "set5/x4/ssim": 0.9073, "set14/x4/psnr": 29.38, "set14/x4/ssim": 0.8001},
            description="HAT x4 pre-trained on ImageNet, fine-tuned on DF2K: the authors' file (Google Drive, "
            "85 MB) from the Hugging Face mirror Acly/hat",
        ),
    ),
    weights_hint="HAT x4 (ImageNet pre-trained) downloads by name (hat.x4-imagenet); the authors' other files "
    "are on Google Drive (github.com/XPixelGroup/HAT): download HAT_SRx2.pth, HAT-S or HAT-L and pass it with "
    "--weights FILE, or keep it with 'sresr weights import FILE'",
)
