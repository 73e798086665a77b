"""Real-ESRGAN compact (SRVGGNetCompact) spec (torch-free). The network is in
:mod:`sresr.models.srvgg.arch`."""

from sresr.spec import ModelSpec

SPEC = ModelSpec(
    name="realesrgan-compact",
    factory="sresr.models.srvgg.arch:srvgg",
    scales=(2, 3, 4),
    description="SRVGGNetCompact: num_conv=16 (realesr-animevideov3) or 32 (realesr-general-x4v3)",
    colorspace="rgb",
    input="lr",
    size_multiple=1,
    receptive_field=34,  # num_conv=32; num_conv=16 needs 18
    supports_fp16=True,
    supports_bf16=True,
    loader="sresr.models.srvgg.arch:load_state_dict",
    num_params={2: 600652, 3: 609307, 4: 621424},
    paper="Wang, Xie, Dong, Shan: Real-ESRGAN: Training Real-World Blind Super-Resolution with Pure "
    "Synthetic Data, ICCVW 2021 (arXiv:2107.10833)",
    license="Apache-2.0",
)
