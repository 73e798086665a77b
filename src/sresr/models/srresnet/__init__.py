"""SRResNet spec (torch-free). The network is in :mod:`sresr.models.srresnet.arch`."""

from sresr.spec import ModelSpec

SPEC = ModelSpec(
    name="srresnet",
    factory="sresr.models.srresnet.arch:srresnet",
    scales=(2, 3, 4),
    description="SRResNet (SRGAN paper generator, BN, 16 blocks); kwargs blocks, norm=bn|in|none, "
    "global_skip, upsampler=pixelshuffle|bicubic; variant='msrresnet' for BasicSR MSRResNet",
    colorspace="rgb",
    input="lr",
    size_multiple=1,
    receptive_field=40,
    supports_fp16=True,
    supports_bf16=True,
    loader="sresr.models.srresnet.arch:load_state_dict",
    num_params={2: 1401749, 3: 1586389, 4: 1549462},
    paper="Ledig et al.: Photo-Realistic Single Image Super-Resolution Using a Generative Adversarial "
    "Network, CVPR 2017 (arXiv:1609.04802)",
    license="Apache-2.0",
    paper_metrics={
        "set5/x4/psnr": 32.05, "set5/x4/ssim": 0.9019, "set14/x4/psnr": 28.49, "set14/x4/ssim": 0.8184,
        "b100/x4/psnr": 27.58, "b100/x4/ssim": 0.7620,
    },
    weights_hint="sresr ships no SRResNet weights yet: "
    "train them with 'sresr train srresnet' or pass --weights FILE (e.g. BasicSR's MSRResNet_x4 .pth)",
)
