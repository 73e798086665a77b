"""SwinIR spec (torch-free). The network is in :mod:`sresr.models.swinir.arch`.

Published weights: the authors' GitHub release v0.0 (Apache-2.0). Declared below are the files
whose full sha256 is recorded by several independent public projects that pin them; the others
(classical x3/x8, the DIV2K-trained s48 files, lightweight x3/x4, the real-world PSNR files) load
the same way with ``--weights FILE`` or ``sresr weights import FILE``: every hyperparameter comes
from the file's shapes.
"""

from sresr.spec import ModelSpec, WeightsSpec

_RELEASE = "https://github.com/JingyunLiang/SwinIR/releases/download/v0.0"
_GAN_NOTE = "GAN-trained for real-world degradations (BSRGAN): judge it by eye or LPIPS, not by bicubic-protocol PSNR"


def _metrics(scale: int, table: dict[int, tuple[float, ...]]) -> dict[str, float]:
    values = table.get(scale)
    if values is None:
        return {}
    keys = [f"{d}/x{scale}/{m}" for d in ("set5", "set14", "b100", "urban100") for m in ("psnr", "ssim")]
    return dict(zip(keys, values))


# SwinIR paper Table 2 (classical, DF2K-trained; ../shared/reference/published-results.md) and
# Table 3 (lightweight, DIV2K-trained)
_CLASSICAL = {2: (38.42, .9623, 34.46, .9250, 32.53, .9041, 33.81, .9427),
              3: (34.97, .9318, 30.93, .8534, 29.46, .8145, 29.75, .8826),
              4: (32.92, .9044, 29.09, .7950, 27.92, .7489, 27.45, .8254)}
_LIGHTWEIGHT = {2: (38.14, .9611, 33.86, .9206, 32.31, .9012, 32.76, .9340),
                3: (34.62, .9289, 30.54, .8463, 29.20, .8082, 28.66, .8624),
                4: (32.44, .8976, 28.77, .7858, 27.69, .7406, 26.47, .7980)}

SPEC = ModelSpec(
    name="swinir",
    factory="sresr.models.swinir.arch:swinir",
    scales=(2, 3, 4, 8),
    description="SwinIR-M (classical: embed 180, 6x6 Swin blocks, window 8, pixelshuffle); variant=lightweight "
    "(SwinIR-S), real (nearest+conv), real-large (SwinIR-L)",
    colorspace="rgb",
    input="lr",
    size_multiple=8,  # the window: inputs padded to it, tiles aligned to its grid
    receptive_field=227,  # SwinIR-L; SwinIR-M needs 153, SwinIR-S 103 (arch.geometry)
    # fp16: not measured with the published weights (no GPU run yet); the engine falls back to fp32
    # on non-finite half-precision output, bf16 keeps fp32's range
    supports_fp16=False,
    supports_bf16=True,
    loader="sresr.models.swinir.arch:load_state_dict",
    geometry="sresr.models.swinir.arch:geometry",
    num_params={2: 11752487, 3: 11937127, 4: 11900199, 8: 12047911},
    paper="Liang, Cao, Sun, Zhang, Van Gool, Timofte: SwinIR: Image Restoration Using Swin Transformer, "
    "ICCVW 2021 (arXiv:2108.10257)",
    license="Apache-2.0",
    paper_metrics={k: v for s in (2, 3, 4) for k, v in _metrics(s, _CLASSICAL).items()},
    weights=(
        WeightsSpec(
            tag="classical-x2", scale=2, default=True, license="Apache-2.0",
            aliases=("001_classicalSR_DF2K_s64w8_SwinIR-M_x2",),
            url=f"{_RELEASE}/001_classicalSR_DF2K_s64w8_SwinIR-M_x2.pth",
            sha256="2032ebf8f401dd3ce2fae5f3852117cb72101ec6ed8358faa64c2a3fa09ed4ac",
            metrics=_metrics(2, _CLASSICAL),
            description="SwinIR-M x2 trained on DF2K with 64x64 patches, the authors' release (v0.0, 67 MB)",
        ),
        WeightsSpec(
            tag="classical-x4", scale=4, default=True, license="Apache-2.0",
            aliases=("001_classicalSR_DF2K_s64w8_SwinIR-M_x4",),
            url=f"{_RELEASE}/001_classicalSR_DF2K_s64w8_SwinIR-M_x4.pth",
            sha256="4e78e33f22c1aa8a773db0cf4a7381bae97c2362c717f155439ebc690cbd9215",
            metrics=_metrics(4, _CLASSICAL),
            description="SwinIR-M x4 trained on DF2K with 64x64 patches, the authors' release (v0.0, 68 MB)",
        ),
        WeightsSpec(
            tag="lightweight-x2", scale=2, license="Apache-2.0", kwargs={"variant": "lightweight"},
            aliases=("002_lightweightSR_DIV2K_s64w8_SwinIR-S_x2",),
            url=f"{_RELEASE}/002_lightweightSR_DIV2K_s64w8_SwinIR-S_x2.pth",
            sha256="193b229909ca89cd8b55de9c9e7fce146ae759d59dfcd78d8feb9dd1d6fa0fd7",
            metrics=_metrics(2, _LIGHTWEIGHT),
            description="SwinIR-S (lightweight, 0.9M parameters) x2 trained on DIV2K, the authors' release (v0.0, 17 MB)",
        ),
        WeightsSpec(
            tag="real-x2-gan", scale=2, license="Apache-2.0", kwargs={"variant": "real"},
            aliases=("003_realSR_BSRGAN_DFO_s64w8_SwinIR-M_x2_GAN",),
            url=f"{_RELEASE}/003_realSR_BSRGAN_DFO_s64w8_SwinIR-M_x2_GAN.pth",
            sha256="f397408977a3e07eb06afb7238d453a12ef35ebab7328a54241f307860dbe342",
            description="SwinIR-M real-world x2 (nearest+conv), the authors' release (v0.0, 67 MB). " + _GAN_NOTE,
        ),
        WeightsSpec(
            tag="real-x4-gan", scale=4, license="Apache-2.0", kwargs={"variant": "real"},
            aliases=("003_realSR_BSRGAN_DFO_s64w8_SwinIR-M_x4_GAN",),
            url=f"{_RELEASE}/003_realSR_BSRGAN_DFO_s64w8_SwinIR-M_x4_GAN.pth",
            sha256="b9afb61e65e04eb7f8aba5095d070bbe9af28df76acd0c9405aeb33b814bcfc6",
            description="SwinIR-M real-world x4 (nearest+conv), the authors' release (v0.0, 67 MB). " + _GAN_NOTE,
        ),
        WeightsSpec(
            tag="real-large-x4-gan", scale=4, license="Apache-2.0", kwargs={"variant": "real-large"},
            aliases=("003_realSR_BSRGAN_DFOWMFC_s64w8_SwinIR-L_x4_GAN",),
            url=f"{_RELEASE}/003_realSR_BSRGAN_DFOWMFC_s64w8_SwinIR-L_x4_GAN.pth",
            sha256="99adfa91350a84c99e946c1eb3d8fce34bc28f57d807b09dc8fe40a316328c0a",
            description="SwinIR-L real-world x4 (28M parameters, 3conv, nearest+conv), the authors' release "
            "(v0.0, 142 MB). " + _GAN_NOTE,
        ),
    ),
)
