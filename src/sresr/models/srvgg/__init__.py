"""Real-ESRGAN compact (SRVGGNetCompact) spec (torch-free). The network is in
:mod:`sresr.models.srvgg.arch`."""

from sresr.spec import ModelSpec, WeightsSpec

_RELEASES = "https://github.com/xinntao/Real-ESRGAN/releases/download"

SPEC = ModelSpec(
    name="realesrgan-compact",
    factory="sresr.models.srvgg.arch:srvgg",
    geometry="sresr.models.srvgg.arch:geometry",
    scales=(2, 3, 4),
    description="SRVGGNetCompact: num_conv=16 (realesr-animevideov3) or 32 (realesr-general-x4v3)",
    colorspace="rgb",
    input="lr",
    size_multiple=1,
    receptive_field=34,  # num_conv=32; num_conv=16 needs 18
    supports_fp16=True,
    supports_bf16=True,
    loader="sresr.models.srvgg.arch:load_state_dict",
    weights=(
        WeightsSpec(
            tag="general-x4v3", scale=4, aliases=("realesr-general-x4v3",), default=True, kwargs={"num_conv": 32}, license="BSD-3-Clause",
            url=f"{_RELEASES}/v0.2.5.0/realesr-general-x4v3.pth",
            sha256="8dc7edb9ac80ccdc30c3a5dca6616509367f05fbc184ad95b731f05bece96292",
            description="realesr-general-x4v3 (official release v0.2.5.0, 4.9 MB), GAN-trained for real photos",
            denoise_companion="general-wdn-x4v3",
        ),
        WeightsSpec(
            # Real-ESRGAN publishes no hash for this file (nor a prefix in its name): the first
            # download must load as SRVGGNetCompact num_conv=32 x4 and its sha256 is then pinned
            tag="general-wdn-x4v3", scale=4, aliases=("realesr-general-wdn-x4v3",), kwargs={"num_conv": 32},
            license="BSD-3-Clause", url=f"{_RELEASES}/v0.2.5.0/realesr-general-wdn-x4v3.pth", trust_first_download=True,
            description="realesr-general-wdn-x4v3 (official release v0.2.5.0, 4.9 MB): general-x4v3 trained to remove "
            "more noise; --denoise-strength mixes the two",
        ),
        WeightsSpec(
            tag="animevideov3", scale=4, aliases=("realesr-animevideov3",), kwargs={"num_conv": 16}, license="BSD-3-Clause",
            url=f"{_RELEASES}/v0.2.5.0/realesr-animevideov3.pth",
            sha256="b8a8376811077954d82ca3fcf476f1ac3da3e8a68a4f4d71363008000a18b75d",
            description="realesr-animevideov3 (official release v0.2.5.0, 2.5 MB), for anime video frames",
        ),
    ),
    num_params={2: 600652, 3: 609307, 4: 621424},
    paper="Wang, Xie, Dong, Shan: Real-ESRGAN: Training Real-World Blind Super-Resolution with Pure "
    "Synthetic Data, ICCVW 2021 (arXiv:2107.10833)",
    license="Apache-2.0",
)
