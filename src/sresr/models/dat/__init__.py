"""DAT spec (torch-free). The network is in :mod:`sresr.models.dat.arch`.

Published weights: the authors share DAT, DAT-S, DAT-2 and DAT-light on Google Drive, which has no
stable download URL. DAT x2/x3/x4 are declared from the Hugging Face mirror ``w-e-w/DAT`` (a copy
of the authors' files that AUTOMATIC1111's stable-diffusion-webui downloads), each with the full
sha256 that project pins; the other files load as published with ``--weights FILE`` or
``sresr weights import FILE``.
"""

from sresr.spec import ModelSpec, WeightsSpec

_MIRROR = "https://huggingface.co/w-e-w/DAT/resolve/main/experiments/pretrained_models/DAT"
_SHA256 = {2: "7760aa96e4ee77e29d4f89c3a4486200042e019461fdb8aa286f49aa00b89b51",
           3: "581973e02c06f90d4eb90acf743ec9604f56f3c2c6f9e1e2c2b38ded1f80d197",
           4: "391a6ce69899dff5ea3214557e9d585608254579217169faf3d4c353caff049e"}

# DAT paper Table 2 (BI degradation), Set5 | Set14 | B100 | Urban100. Cross-checked (2026-12-06): x4 Urban100
# with the authors' README (zhengchen1999/DAT), x4 Set14 with paperswithcode, the x2 PSNRs with an aggregator;
# the rest is the paper's table as transcribed, not re-verified from a text source here
_PAPER = {2: (38.58, .9629, 34.81, .9272, 32.61, .9051, 34.37, .9458),
          3: (35.16, .9331, 31.11, .8550, 29.55, .8169, 30.18, .8886),
          4: (33.08, .9055, 29.23, .7973, 28.00, .7515, 27.87, .8343)}


def _metrics(only: int | None = None) -> dict[str, float]:
    out: dict[str, float] = {}
    for scale, values in _PAPER.items():
        if only is not None and scale != only:
            continue
        keys = [f"{d}/x{scale}/{m}" for d in ("set5", "set14", "b100", "urban100") for m in ("psnr", "ssim")]
        out.update(zip(keys, values))
    return out


SPEC = ModelSpec(
    name="dat",
    factory="sresr.models.dat.arch:dat",
    geometry="sresr.models.dat.arch:geometry",
    scales=(2, 3, 4),
    description="DAT (180 dims, 6x6 blocks alternating 8x32 window and channel self-attention); DAT-S: "
    "split_size=(8,16), expansion=2; DAT-2: expansion=2; DAT-light: embed_dim=60, depths=(18,), num_heads=(6,), "
    "expansion=2, resi_connection='3conv', upsampler='pixelshuffledirect'. Tiling is close, not exact",
    colorspace="rgb",
    input="lr",
    size_multiple=32,  # the window grid (8x32 and 32x8 windows); 16 for DAT-S
    receptive_field=320,  # windows and convolutions, every scale (arch.geometry); DAT-S 160, DAT-light 192
    supports_fp16=False,  # spandrel marks DAT not half-safe; fp16 unmeasured with trained weights (needs a GPU)
    supports_bf16=True,
    loader="sresr.models.dat.arch:load_state_dict",
    num_params={2: 14654339, 3: 14838979, 4: 14802051},
    paper="Chen, Zhang, Gu, Kong, Yang, Yu: Dual Aggregation Transformer for Image Super-Resolution, ICCV 2023 "
    "(arXiv:2308.03364)",
    license="Apache-2.0",  # this implementation; the weights come under their authors' terms
    paper_metrics=_metrics(),
    weights=tuple(
        WeightsSpec(
            tag=f"x{scale}", scale=scale, default=True, license="Apache-2.0",
            aliases=(f"DAT_x{scale}",),
            url=f"{_MIRROR}/DAT_x{scale}.pth",
            sha256=_SHA256[scale],
            metrics=_metrics(scale),
            description=f"DAT x{scale} trained on DF2K, the authors' file (Google Drive) from the Hugging Face "
            "mirror w-e-w/DAT",
        )
        for scale in (2, 3, 4)
    ),
    weights_hint="DAT x2/x3/x4 download by name (dat.x4); the authors' other files (DAT_S_*, DAT_2_*, "
    "DAT_light_*) are on Google Drive only: download them from github.com/zhengchen1999/DAT and pass "
    "--weights FILE, or 'sresr weights import FILE'",
)
