"""SRGAN spec (torch-free): the SRResNet generator for inference. The discriminator for training is
``sresr.models.srgan.arch.discriminator()``."""

from sresr.spec import ModelSpec, WeightsSpec

SPEC = ModelSpec(
    name="srgan",
    factory="sresr.models.srgan.arch:srgan",
    geometry="sresr.models.srgan.arch:geometry",
    scales=(2, 3, 4),
    description="SRGAN generator (an SRResNet trained adversarially; same kwargs as srresnet)",
    colorspace="rgb",
    input="lr",
    size_multiple=1,
    receptive_field=40,
    supports_fp16=True,
    supports_bf16=True,
    loader="sresr.models.srgan.arch:load_state_dict",
    weights=(
        WeightsSpec(
            # OpenMMLab names its files with the first 8 hex digits of their sha256: pinned on first download
            tag="mmediting-x4", scale=4, default=True, license="Apache-2.0",
            kwargs={"variant": "msrresnet", "upsample_act": False},
            aliases=("srgan_x4c64b16_1x16_1000k_div2k",),
            url="https://download.openmmlab.com/mmediting/restorers/srresnet_srgan/srgan_x4c64b16_1x16_1000k_div2k_20200606-a1f0810e.pth",
            description="OpenMMLab's SRGAN x4 (an MSRResNet generator trained adversarially from its MSRResNet; "
            "mmediting, DIV2K, 1000k iterations). GAN-trained: judge it by eye or LPIPS, not by PSNR",
        ),
    ),
    num_params={2: 1401749, 3: 1586389, 4: 1549462},
    paper="Ledig et al.: Photo-Realistic Single Image Super-Resolution Using a Generative Adversarial "
    "Network, CVPR 2017 (arXiv:1609.04802)",
    license="Apache-2.0",
    # Table 2 of the paper; its SSIM variant differs, so only PSNR is kept. Judge GANs by LPIPS.
    paper_metrics={"set5/x4/psnr": 29.40, "set14/x4/psnr": 26.02, "b100/x4/psnr": 25.16},
    weights_hint="x2/x3: train them ('sresr train srgan', after the srgan-pretrain recipe) or pass --weights FILE",
)
