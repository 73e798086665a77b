"""SRCNN spec (torch-free). The network is in :mod:`sresr.models.srcnn.arch`."""

from sresr.spec import ModelSpec, WeightsSpec

SPEC = ModelSpec(
    name="srcnn",
    factory="sresr.models.srcnn.arch:srcnn",
    geometry="sresr.models.srcnn.arch:geometry",
    scales=(2, 3, 4),
    description="SRCNN 9-5-5 (f2=1: 9-1-5) on the bicubic-upsampled luma; channels=3 for RGB",
    colorspace="y",
    input="upsampled",
    size_multiple=1,
    receptive_field=8,  # 4 + 2 + 2 pixels of the upsampled input
    supports_fp16=True,
    supports_bf16=True,
    loader="sresr.models.srcnn.arch:load_state_dict",
    weights=(
        WeightsSpec(tag="x3", scale=3, file="srcnn_x3.safetensors", default=True, license="Apache-2.0",
            metrics={'set5/psnr': 32.59, 'set5/ssim': 0.9066, 'set14/psnr': 29.1, 'set14/ssim': 0.8165},
            recipe="recipes/chains/srcnn-x3.toml",
            description="trained by sresr on T91: 40000 iterations, 33 min on one CPU thread"),
    ),
    num_params={2: 57281, 3: 57281, 4: 57281},
    paper="Dong, Loy, He, Tang: Image Super-Resolution Using Deep Convolutional Networks, TPAMI 2016 "
    "(arXiv:1501.00092)",
    license="Apache-2.0",
    paper_metrics={
        "set5/x2/psnr": 36.66, "set5/x2/ssim": 0.9542, "set14/x2/psnr": 32.45, "set14/x2/ssim": 0.9067,
        "b100/x2/psnr": 31.36, "b100/x2/ssim": 0.8879, "urban100/x2/psnr": 29.50, "urban100/x2/ssim": 0.8946,
        "set5/x3/psnr": 32.75, "set5/x3/ssim": 0.9090, "set14/x3/psnr": 29.30, "set14/x3/ssim": 0.8215,
        "b100/x3/psnr": 28.41, "b100/x3/ssim": 0.7863, "urban100/x3/psnr": 26.24, "urban100/x3/ssim": 0.7989,
        "set5/x4/psnr": 30.48, "set5/x4/ssim": 0.8628, "set14/x4/psnr": 27.50, "set14/x4/ssim": 0.7513,
        "b100/x4/psnr": 26.90, "b100/x4/ssim": 0.7101, "urban100/x4/psnr": 24.52, "urban100/x4/ssim": 0.7221,
    },
)
