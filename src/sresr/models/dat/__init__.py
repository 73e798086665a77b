"""DAT spec (torch-free). The network is in :mod:`sresr.models.dat.arch`."""

from sresr.spec import ModelSpec

# DAT paper Table 2 (BI degradation), Set5 | Set14 | B100 | Urban100
_PAPER = {2: (38.58, .9629, 34.81, .9272, 32.61, .9051, 34.37, .9458),
          3: (35.16, .9331, 31.11, .8550, 29.55, .8169, 30.18, .8886),
          4: (33.08, .9055, 29.23, .7973, 28.00, .7515, 27.87, .8343)}


def _metrics() -> dict[str, float]:
    out: dict[str, float] = {}
    for scale, values in _PAPER.items():
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
    weights_hint="the authors publish DAT's weights (DAT_x2/3/4.pth, DAT_S_*, DAT_2_*, DAT_light_*) on Google "
    "Drive only, with no stable URL or checksum: download them from github.com/zhengchen1999/DAT and pass "
    "--weights FILE, or 'sresr weights import FILE'",
)
