"""``bicubic``: MATLAB-exact bicubic interpolation, the baseline every SR paper reports.

It has no parameters; ``sresr eval bicubic --data set5 -s 4`` reproduces the published baseline.
"""

from sresr.spec import ModelSpec

_SCALES = (2, 3, 4, 8)

SPEC = ModelSpec(
    name="bicubic",
    factory="sresr.models.bicubic.arch:Bicubic",
    scales=_SCALES,
    description="MATLAB-exact bicubic interpolation (a=-0.5), the baseline of the SR literature",
    colorspace="rgb",
    input="lr",
    size_multiple=1,
    receptive_field=2,  # the cubic kernel reads 2 input pixels on each side when enlarging
    supports_fp16=True,
    supports_bf16=True,
    num_params={s: 0 for s in _SCALES},
    paper="MATLAB imresize; numbers from the RCAN/EDSR paper tables",
    license="Apache-2.0",
    paper_metrics={
        "set5/x2/psnr": 33.66, "set5/x2/ssim": 0.9299,
        "set14/x2/psnr": 30.24, "set14/x2/ssim": 0.8688,
        "b100/x2/psnr": 29.56, "b100/x2/ssim": 0.8431,
        "urban100/x2/psnr": 26.88, "urban100/x2/ssim": 0.8403,
        "set5/x3/psnr": 30.39, "set5/x3/ssim": 0.8682,
        "set14/x3/psnr": 27.55, "set14/x3/ssim": 0.7742,
        "b100/x3/psnr": 27.21, "b100/x3/ssim": 0.7385,
        "urban100/x3/psnr": 24.46, "urban100/x3/ssim": 0.7349,
        "set5/x4/psnr": 28.42, "set5/x4/ssim": 0.8104,
        "set14/x4/psnr": 26.00, "set14/x4/ssim": 0.7027,
        "b100/x4/psnr": 25.96, "b100/x4/ssim": 0.6675,
        "urban100/x4/psnr": 23.14, "urban100/x4/ssim": 0.6577,
    },
)
