"""RCAN spec (torch-free). The network is in :mod:`sresr.models.rcan.arch`."""

from sresr.spec import ModelSpec

# RCAN paper Table 3 (BI degradation; ../shared/reference/published-results.md), Set5|Set14|B100|Urban100
_PAPER = {2: (38.27, .9614, 34.12, .9216, 32.41, .9027, 33.34, .9384),
          3: (34.74, .9299, 30.65, .8482, 29.32, .8111, 29.09, .8702),
          4: (32.63, .9002, 28.87, .7889, 27.77, .7436, 26.82, .8087)}


def _metrics() -> dict[str, float]:
    out: dict[str, float] = {}
    for scale, values in _PAPER.items():
        keys = [f"{d}/x{scale}/{m}" for d in ("set5", "set14", "b100", "urban100") for m in ("psnr", "ssim")]
        out.update(zip(keys, values))
    return out


SPEC = ModelSpec(
    name="rcan",
    factory="sresr.models.rcan.arch:rcan",
    geometry="sresr.models.rcan.arch:geometry",
    scales=(2, 3, 4, 8),
    description="RCAN (10 residual groups x 20 channel-attention blocks, 64 features); kwargs groups, blocks, "
    "features, reduction. Channel attention pools globally: tiled output is approximate (--tile 0 for exact)",
    colorspace="rgb",
    input="lr",
    size_multiple=1,
    receptive_field=414,  # of the convolutions, every scale (arch.receptive_field)
    supports_fp16=True,  # mean shift and 0..255 scaling in fp32 as in EDSR; CPU fp16 with random weights within 6e-4 of
    # the range (benchmarks/bench_arch.py); overflow with the released weights unmeasured (needs them and a GPU)
    supports_bf16=True,
    loader="sresr.models.rcan.arch:load_state_dict",
    num_params={2: 15444643, 3: 15629283, 4: 15592355, 8: 15740067},
    paper="Zhang, Li, Li, Wang, Zhong, Fu: Image Super-Resolution Using Very Deep Residual Channel Attention "
    "Networks, ECCV 2018 (arXiv:1807.02758)",
    license="Apache-2.0",  # this implementation; the weights come under their authors' terms
    paper_metrics=_metrics(),
    weights_hint="the authors publish RCAN's weights (RCAN_BIX2/3/4/8.pt) on Dropbox/Google Drive only, with "
    "no stable URL or checksum: download them from github.com/yulunzhang/RCAN (or BasicSR's RCAN_BIX4 "
    "conversion) and pass --weights FILE, or 'sresr weights import FILE'",
)
