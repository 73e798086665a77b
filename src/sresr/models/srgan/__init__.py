"""SRGAN spec (torch-free): the SRResNet generator for inference. The discriminator for training is
``sresr.models.srgan.arch.discriminator()``."""

from sresr.spec import ModelSpec

SPEC = ModelSpec(
    name="srgan",
    factory="sresr.models.srgan.arch:srgan",
    scales=(2, 3, 4),
    description="SRGAN generator (an SRResNet trained adversarially; same kwargs as srresnet)",
    colorspace="rgb",
    input="lr",
    size_multiple=1,
    receptive_field=40,
    supports_fp16=True,
    supports_bf16=True,
    loader="sresr.models.srgan.arch:load_state_dict",
    num_params={2: 1401749, 3: 1586389, 4: 1549462},
    paper="Ledig et al.: Photo-Realistic Single Image Super-Resolution Using a Generative Adversarial "
    "Network, CVPR 2017 (arXiv:1609.04802)",
    license="Apache-2.0",
    # Table 2 of the paper; its SSIM variant differs, so only PSNR is kept. Judge GANs by LPIPS.
    paper_metrics={"set5/x4/psnr": 29.40, "set14/x4/psnr": 26.02, "b100/x4/psnr": 25.16},
    weights_hint="sresr ships no SRGAN weights yet: "
    "train them ('sresr train srgan', after the srgan-pretrain recipe) or pass --weights FILE",
)
