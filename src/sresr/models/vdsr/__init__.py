"""VDSR spec (torch-free). The network is in :mod:`sresr.models.vdsr.arch`."""

from sresr.spec import ModelSpec

SPEC = ModelSpec(
    name="vdsr",
    factory="sresr.models.vdsr.arch:vdsr",
    geometry="sresr.models.vdsr.arch:geometry",
    scales=(2, 3, 4),
    description="VDSR: 20 bias-free 3x3 convs with a global residual, on the bicubic-upsampled luma",
    colorspace="y",
    input="upsampled",
    size_multiple=1,
    receptive_field=20,  # pixels of the upsampled input
    supports_fp16=True,
    supports_bf16=True,
    loader="sresr.models.vdsr.arch:load_state_dict",
    num_params={2: 664704, 3: 664704, 4: 664704},
    paper="Kim, Lee, Lee: Accurate Image Super-Resolution Using Very Deep Convolutional Networks, CVPR 2016 "
    "(arXiv:1511.04587)",
    license="Apache-2.0",
    paper_metrics={
        "set5/x2/psnr": 37.53, "set5/x2/ssim": 0.9587, "set14/x2/psnr": 33.03, "set14/x2/ssim": 0.9124,
        "b100/x2/psnr": 31.90, "b100/x2/ssim": 0.8960, "urban100/x2/psnr": 30.76, "urban100/x2/ssim": 0.9140,
        "set5/x3/psnr": 33.66, "set5/x3/ssim": 0.9213, "set14/x3/psnr": 29.77, "set14/x3/ssim": 0.8314,
        "b100/x3/psnr": 28.82, "b100/x3/ssim": 0.7976, "urban100/x3/psnr": 27.14, "urban100/x3/ssim": 0.8279,
        "set5/x4/psnr": 31.35, "set5/x4/ssim": 0.8838, "set14/x4/psnr": 28.01, "set14/x4/ssim": 0.7674,
        "b100/x4/psnr": 27.29, "b100/x4/ssim": 0.7251, "urban100/x4/psnr": 25.18, "urban100/x4/ssim": 0.7524,
    },
    weights_hint="sresr ships no VDSR weights yet: "
    "train them with 'sresr train vdsr' or pass --weights FILE (a published VDSR checkpoint)",
)
