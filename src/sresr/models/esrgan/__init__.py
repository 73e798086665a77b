"""ESRGAN / Real-ESRGAN RRDBNet spec (torch-free). The network is in :mod:`sresr.models.esrgan.arch`."""

from sresr.spec import ModelSpec, WeightsSpec

_RELEASES = "https://github.com/xinntao/Real-ESRGAN/releases/download"
_GAN_NOTE = "GAN-trained for real-world degradations: judge it by eye or LPIPS, not by bicubic-protocol PSNR"

SPEC = ModelSpec(
    name="esrgan",
    factory="sresr.models.esrgan.arch:rrdbnet",
    geometry="sresr.models.esrgan.arch:geometry",
    scales=(1, 2, 4),
    description="RRDBNet (nf=64, nb=23, gc=32) of ESRGAN / Real-ESRGAN; x2 and x1 pixel-unshuffle "
    "the input (x2plus); blocks=6 is anime_6B",
    colorspace="rgb",
    input="lr",
    size_multiple=4,  # x1 unshuffles by 4, x2 by 2, x4 needs 1 (see arch.size_multiple(scale))
    # exact theoretical radius at x1; x2 needs 698 and x4 349 (arch.receptive_field(scale))
    receptive_field=1396,
    supports_fp16=True,
    supports_bf16=True,
    loader="sresr.models.esrgan.arch:load_state_dict",
    weights=(
        WeightsSpec(
            tag="realesrgan-x4plus", scale=4, aliases=("RealESRGAN_x4plus",), default=True, license="BSD-3-Clause",
            url=f"{_RELEASES}/v0.1.0/RealESRGAN_x4plus.pth",
            sha256="4fa0d38905f75ac06eb49a7951b426670021be3018265fd191d2125df9d682f1",
            description="Real-ESRGAN x4plus (official release v0.1.0, 64 MB). " + _GAN_NOTE,
        ),
        WeightsSpec(
            tag="realesrgan-x2plus", scale=2, aliases=("RealESRGAN_x2plus",), default=True, license="BSD-3-Clause",
            url=f"{_RELEASES}/v0.2.1/RealESRGAN_x2plus.pth",
            sha256="49fafd45f8fd7aa8d31ab2a22d14d91b536c34494a5cfe31eb5d89c2fa266abb",
            description="Real-ESRGAN x2plus (official release v0.2.1, 64 MB). " + _GAN_NOTE,
        ),
        WeightsSpec(
            tag="realesrgan-x4plus-anime-6b", scale=4, aliases=("RealESRGAN_x4plus_anime_6B",), kwargs={"blocks": 6}, license="BSD-3-Clause",
            url=f"{_RELEASES}/v0.2.2.4/RealESRGAN_x4plus_anime_6B.pth",
            sha256="f872d837d3c90ed2e05227bed711af5671a6fd1c9f7d7e91c911a61f155e99da",
            description="Real-ESRGAN x4plus anime (6 RRDB blocks, official release v0.2.2.4, 17 MB)",
        ),
        WeightsSpec(
            # only the first hex digits of its sha256 are published (in its name): pinned on first download
            tag="esrgan-x4", scale=4, license="Apache-2.0", aliases=("ESRGAN_SRx4_DF2KOST_official", "esrgan-x4"),
            url=f"{_RELEASES}/v0.1.1/ESRGAN_SRx4_DF2KOST_official-ff704c30.pth",
            metrics={"set5/x4/psnr": 30.45, "set5/x4/lpips": 0.0748},
            description="The original ESRGAN x4 (DF2K+OST, GAN-trained; BasicSR's conversion of the official "
            "release, republished with Real-ESRGAN v0.1.1, 64 MB). " + _GAN_NOTE,
        ),
        WeightsSpec(
            # OpenMMLab names its files with the first 8 hex digits of their sha256: pinned on first download
            tag="mmediting-psnr-x4", scale=4, license="Apache-2.0", aliases=("esrgan_psnr_x4c64b23g32_1x16_1000k_div2k",),
            url="https://download.openmmlab.com/mmediting/restorers/esrgan/esrgan_psnr_x4c64b23g32_1x16_1000k_div2k_20200420-bf5c993c.pth",
            description="OpenMMLab's RRDBNet x4 trained for PSNR (ESRGAN's first stage; mmediting, DIV2K, 1000k "
            "iterations). mmediting reports Set5 30.64 dB on RGB with a 4-pixel crop, not sresr's Y protocol",
        ),
        WeightsSpec(
            tag="mmediting-x4", scale=4, license="Apache-2.0", aliases=("esrgan_x4c64b23g32_1x16_400k_div2k",),
            url="https://download.openmmlab.com/mmediting/restorers/esrgan/esrgan_x4c64b23g32_1x16_400k_div2k_20200508-f8ccaf3b.pth",
            description="OpenMMLab's ESRGAN x4 (GAN stage from its PSNR model; mmediting, DIV2K, 400k iterations). "
            + _GAN_NOTE,
        ),
    ),
    num_params={1: 16723907, 2: 16703171, 4: 16697987},
    paper="Wang et al.: ESRGAN: Enhanced Super-Resolution Generative Adversarial Networks, ECCVW 2018 "
    "(arXiv:1809.00219); Real-ESRGAN, ICCVW 2021 (arXiv:2107.10833)",
    license="Apache-2.0",
    # RRDB trained for PSNR (ESRGAN paper). The GAN model scores Set5 30.45 dB (LPIPS 0.0748).
    paper_metrics={
        "set5/x4/psnr": 32.73, "set5/x4/ssim": 0.9011, "set14/x4/psnr": 28.99, "set14/x4/ssim": 0.7917,
        "b100/x4/psnr": 27.85, "b100/x4/ssim": 0.7455, "urban100/x4/psnr": 27.03, "urban100/x4/ssim": 0.8153,
    },
)
