"""ESPCN spec (torch-free). The network is in :mod:`sresr.models.espcn.arch`."""

from sresr.spec import ModelSpec, WeightsSpec

SPEC = ModelSpec(
    name="espcn",
    factory="sresr.models.espcn.arch:espcn",
    geometry="sresr.models.espcn.arch:geometry",
    scales=(2, 3, 4),
    description="ESPCN 5-3-3 sub-pixel CNN on luma (activation='tanh' as in the paper, or 'relu')",
    colorspace="y",
    input="lr",
    size_multiple=1,
    receptive_field=4,
    supports_fp16=True,
    supports_bf16=True,
    loader="sresr.models.espcn.arch:load_state_dict",
    weights=(
        WeightsSpec(tag="x2", scale=2, file="espcn_x2.safetensors", default=True, license="Apache-2.0",
            metrics={'set5/psnr': 36.3, 'set5/ssim': 0.9519, 'set14/psnr': 32.12, 'set14/ssim': 0.9033},
            recipe="recipes/chains/espcn-x2.toml",
            description="trained by sresr on T91: 24000 iterations, 5 min on one CPU thread"),
        WeightsSpec(tag="x3", scale=3, file="espcn_x3.safetensors", default=True, license="Apache-2.0",
            metrics={'set5/psnr': 32.55, 'set5/ssim': 0.9057, 'set14/psnr': 29.09, 'set14/ssim': 0.8169},
            recipe="recipes/chains/espcn-x3.toml",
            description="trained by sresr on T91: 120000 + 20000 iterations, 32 min on one CPU thread"),
        WeightsSpec(tag="x4", scale=4, file="espcn_x4.safetensors", default=True, license="Apache-2.0",
            metrics={'set5/psnr': 30.15, 'set5/ssim': 0.8523, 'set14/psnr': 27.15, 'set14/ssim': 0.7428},
            recipe="recipes/chains/espcn-x4.toml",
            description="trained by sresr on T91: 24000 iterations, 6 min on one CPU thread"),
    ),
    num_params={2: 21284, 3: 22729, 4: 24752},
    paper="Shi et al.: Real-Time Single Image and Video Super-Resolution Using an Efficient Sub-Pixel "
    "Convolutional Neural Network, CVPR 2016 (arXiv:1609.05158)",
    license="Apache-2.0",
    # ImageNet-trained numbers (91-image training gives Set5 x3 32.55 dB)
    paper_metrics={"set5/x3/psnr": 33.13, "set14/x3/psnr": 29.49, "set5/x4/psnr": 30.90, "set14/x4/psnr": 27.73},
)
