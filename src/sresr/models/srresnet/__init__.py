"""SRResNet spec (torch-free). The network is in :mod:`sresr.models.srresnet.arch`."""

from sresr.spec import ModelSpec, WeightsSpec

SPEC = ModelSpec(
    name="srresnet",
    factory="sresr.models.srresnet.arch:srresnet",
    geometry="sresr.models.srresnet.arch:geometry",
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
    weights=(
        WeightsSpec(
            # OpenMMLab names its files with the first 8 hex digits of their sha256: pinned on first download
            tag="mmediting-x4", scale=4, default=True, license="Apache-2.0",
            kwargs={"variant": "msrresnet", "upsample_act": False},
            aliases=("msrresnet_x4c64b16_1x16_300k_div2k",),
            url="https://download.openmmlab.com/mmediting/restorers/srresnet_srgan/msrresnet_x4c64b16_1x16_300k_div2k_20200521-61556be5.pth",
            description="OpenMMLab's MSRResNet x4 (mmediting, DIV2K, 300k iterations; 6 MB). mmediting reports "
            "Set5 30.23 dB on RGB with a 4-pixel crop, not the Y-channel protocol sresr's tables use",
        ),
    ),
    num_params={2: 1401749, 3: 1586389, 4: 1549462},
    paper="Ledig et al.: Photo-Realistic Single Image Super-Resolution Using a Generative Adversarial "
    "Network, CVPR 2017 (arXiv:1609.04802)",
    license="Apache-2.0",
    paper_metrics={
        "set5/x4/psnr": 32.05, "set5/x4/ssim": 0.9019, "set14/x4/psnr": 28.49, "set14/x4/ssim": 0.8184,
        "b100/x4/psnr": 27.58, "b100/x4/ssim": 0.7620,
    },
    weights_hint="x2/x3: train them with 'sresr train srresnet' or pass --weights FILE (e.g. BasicSR's MSRResNet .pth)",
)
