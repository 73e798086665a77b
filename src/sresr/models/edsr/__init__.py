"""EDSR spec (torch-free). The network is in :mod:`sresr.models.edsr.arch`."""

from sresr.spec import ModelSpec

SPEC = ModelSpec(
    name="edsr",
    factory="sresr.models.edsr.arch:edsr",
    scales=(2, 3, 4),
    description="EDSR-baseline (64 features, 16 blocks); EDSR is features=256, blocks=32, res_scale=0.1",
    colorspace="rgb",
    input="lr",
    size_multiple=1,
    receptive_field=68,  # EDSR (32 blocks); the baseline needs 36
    supports_fp16=True,
    supports_bf16=True,  # the mean shift and 0..255 scaling run in fp32 (see arch.EDSR.forward)
    loader="sresr.models.edsr.arch:load_state_dict",
    num_params={2: 1369859, 3: 1554499, 4: 1517571},
    paper="Lim, Son, Kim, Nah, Lee: Enhanced Deep Residual Networks for Single Image Super-Resolution, "
    "CVPRW 2017 (arXiv:1707.02921)",
    license="Apache-2.0",
    # EDSR-baseline (the default configuration). EDSR x4: Set5 32.46/.8968, Set14 28.80/.7876.
    paper_metrics={
        "set5/x2/psnr": 37.99, "set5/x2/ssim": 0.9604, "set14/x2/psnr": 33.57, "set14/x2/ssim": 0.9175,
        "b100/x2/psnr": 32.16, "b100/x2/ssim": 0.8994, "urban100/x2/psnr": 31.98, "urban100/x2/ssim": 0.9272,
        "set5/x4/psnr": 32.09, "set5/x4/ssim": 0.8938, "set14/x4/psnr": 28.58, "set14/x4/ssim": 0.7813,
        "b100/x4/psnr": 27.57, "b100/x4/ssim": 0.7357, "urban100/x4/psnr": 26.04, "urban100/x4/ssim": 0.7849,
    },
    weights_hint="sresr ships no EDSR weights yet: "
    "pass --weights FILE (the official EDSR .pt files load as they are) or train them with 'sresr train edsr'",
)
