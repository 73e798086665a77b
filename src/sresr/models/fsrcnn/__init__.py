"""FSRCNN spec (torch-free). The network is in :mod:`sresr.models.fsrcnn.arch`."""

from sresr.spec import ModelSpec, WeightsSpec


def centered_padding(scale: int) -> int:
    """The transposed convolution's padding that centres its 9 taps on where each HR pixel lies
    under MATLAB bicubic downscaling (LR pixel ``i`` sits at HR ``i*s + (s-1)/2``): exact for odd
    scales, half a pixel off for even ones (as close as an odd kernel gets). 4, the layout of
    yjn870/FSRCNN-pytorch and of most published checkpoints, is that at x2, but one HR pixel off at
    x3 and one and a half at x4: networks trained with it from scratch lag 0.1-0.2 dB behind
    after 20k iterations, though long runs end level (BENCHMARKS.md)."""
    return max(0, (10 - scale) // 2)


SPEC = ModelSpec(
    name="fsrcnn",
    factory="sresr.models.fsrcnn.arch:fsrcnn",
    geometry="sresr.models.fsrcnn.arch:geometry",
    scales=(2, 3, 4),
    description="FSRCNN(d=56, s=12, m=4) on luma with the paper's transposed-conv upsampler",
    colorspace="y",
    input="lr",
    size_multiple=1,
    receptive_field=8,  # 6 LR pixels of convolutions + the 9x9 transposed conv (<= 2 LR pixels)
    supports_fp16=True,
    supports_bf16=True,
    loader="sresr.models.fsrcnn.arch:load_state_dict",
    weights=(
        WeightsSpec(tag="x2", scale=2, file="fsrcnn_x2.safetensors", default=True, license="Apache-2.0",
            metrics={'set5/psnr': 36.95, 'set5/ssim': 0.9555, 'set14/psnr': 32.5, 'set14/ssim': 0.9076},
            recipe="recipes/chains/fsrcnn-x2.toml",
            description="trained by sresr on T91, BSDS200: 100000 + 40000 + 50000 + 40000 + 60000 + 60000 + 60000 + 60000 + 60000 + 60000 + 60000 + 45000 + 45000 iterations, 434 min on one CPU thread"),
        WeightsSpec(tag="x3", scale=3, file="fsrcnn_x3.safetensors", default=True, license="Apache-2.0",
            metrics={'set5/psnr': 33.06, 'set5/ssim': 0.9128, 'set14/psnr': 29.37, 'set14/ssim': 0.823},
            recipe="recipes/chains/fsrcnn-x3.toml",
            description="trained by sresr on T91, BSDS200: 100000 + 40000 + 100000 + 40000 + 60000 + 40000 + 60000 + 60000 + 60000 + 60000 + 60000 + 60000 + 60000 + 60000 + 60000 iterations, 416 min on one CPU thread"),
        WeightsSpec(tag="x4", scale=4, file="fsrcnn_x4.safetensors", default=True, license="Apache-2.0",
            metrics={'set5/psnr': 30.57, 'set5/ssim': 0.8638, 'set14/psnr': 27.5, 'set14/ssim': 0.7521},
            recipe="recipes/chains/fsrcnn-x4.toml",
            description="trained by sresr on T91, BSDS200: 60000 + 100000 + 40000 + 60000 + 40000 + 60000 + 60000 + 60000 + 60000 + 60000 + 60000 iterations, 319 min on one CPU thread"),
    ),
    num_params={2: 12809, 3: 12809, 4: 12809},
    paper="Dong, Loy, Tang: Accelerating the Super-Resolution Convolutional Neural Network, ECCV 2016 "
    "(arXiv:1608.00367)",
    license="Apache-2.0",
    paper_metrics={
        "set5/x2/psnr": 37.05, "set5/x2/ssim": 0.9560, "set14/x2/psnr": 32.66, "set14/x2/ssim": 0.9090,
        "b100/x2/psnr": 31.53, "b100/x2/ssim": 0.8920, "urban100/x2/psnr": 29.88, "urban100/x2/ssim": 0.9020,
        "set5/x3/psnr": 33.18, "set5/x3/ssim": 0.9140, "set14/x3/psnr": 29.37, "set14/x3/ssim": 0.8240,
        "b100/x3/psnr": 28.53, "b100/x3/ssim": 0.7910, "urban100/x3/psnr": 26.43, "urban100/x3/ssim": 0.8080,
        "set5/x4/psnr": 30.72, "set5/x4/ssim": 0.8660, "set14/x4/psnr": 27.61, "set14/x4/ssim": 0.7550,
        "b100/x4/psnr": 26.98, "b100/x4/ssim": 0.7150, "urban100/x4/psnr": 24.62, "urban100/x4/ssim": 0.7280,
    },
)
