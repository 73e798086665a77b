"""EDSR spec (torch-free). The network is in :mod:`sresr.models.edsr.arch`."""

from sresr.spec import ModelSpec, WeightsSpec

# EDSR-PyTorch's published files (torch.hub names: the first hex digits of each file's sha256)
_MODELS = "https://cv.snu.ac.kr/research/EDSR/models"
_LARGE = {"features": 256, "blocks": 32, "res_scale": 0.1}


def _metrics(scale: int, table: dict[int, tuple[float, ...]]) -> dict[str, float]:
    values = table.get(scale)
    if values is None:
        return {}
    keys = [f"{d}/x{scale}/{m}" for d in ("set5", "set14", "b100", "urban100") for m in ("psnr", "ssim")]
    return dict(zip(keys, values))


# EDSR paper Table 3 (../shared/reference/published-results.md)
_BASELINE = {2: (37.99, .9604, 33.57, .9175, 32.16, .8994, 31.98, .9272),
             4: (32.09, .8938, 28.58, .7813, 27.57, .7357, 26.04, .7849)}
_EDSR = {2: (38.11, .9602, 33.92, .9195, 32.32, .9013, 32.93, .9351),
         3: (34.65, .9280, 30.52, .8462, 29.25, .8093, 28.80, .8653),
         4: (32.46, .8968, 28.80, .7876, 27.71, .7420, 26.64, .8033)}
_FILES = {("baseline", 2): "edsr_baseline_x2-1bc95232.pt", ("baseline", 3): "edsr_baseline_x3-abf2a44e.pt",
          ("baseline", 4): "edsr_baseline_x4-6b446fab.pt", ("large", 2): "edsr_x2-0edfb8a3.pt",
          ("large", 3): "edsr_x3-ea3ef2c6.pt", ("large", 4): "edsr_x4-4f62e9ef.pt"}

SPEC = ModelSpec(
    name="edsr",
    factory="sresr.models.edsr.arch:edsr",
    geometry="sresr.models.edsr.arch:geometry",
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
    weights=tuple(
        WeightsSpec(
            tag=f"{size}-x{scale}", scale=scale, default=size == "baseline", license="MIT",
            url=f"{_MODELS}/{_FILES[size, scale]}", kwargs={} if size == "baseline" else _LARGE,
            metrics=_metrics(scale, _BASELINE if size == "baseline" else _EDSR),
            description=("EDSR-baseline" if size == "baseline" else "EDSR (the paper's large model)")
            + f" x{scale}, the authors' release (EDSR-PyTorch)",
        )
        for size in ("baseline", "large") for scale in (2, 3, 4)
    ),
)
