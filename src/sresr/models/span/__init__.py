"""SPAN spec (torch-free). The network is in :mod:`sresr.models.span.arch`."""

from sresr.spec import ModelSpec

SPEC = ModelSpec(
    name="span",
    factory="sresr.models.span.arch:span",
    geometry="sresr.models.span.arch:geometry",
    scales=(2, 3, 4),
    description="SPAN (48 channels, 6 parameter-free-attention blocks of re-parameterisable Conv3XC); "
    "kwargs features (52 in some releases), norm=False for files with 'no_norm'",
    colorspace="rgb",
    input="lr",
    size_multiple=1,
    receptive_field=21,
    supports_fp16=True,  # CPU fp16, random weights: within 1.1e-3 of the output range (benchmarks/bench_arch.py); spandrel allows it too
    supports_bf16=True,
    loader="sresr.models.span.arch:load_state_dict",
    # counted over parameters(), training branches included (what the release files hold); the
    # re-parameterised inference network (sresr.optimize.reparameterize) has 426,288 at x4
    num_params={2: 2221140, 3: 2227635, 4: 2236728},
    paper="Wan, Yu, Wu, Zhong, Huang, Zhang: Swift Parameter-free Attention Network for Efficient "
    "Super-Resolution, CVPRW 2024 (arXiv:2311.12770); NTIRE 2024 efficient SR challenge winner",
    license="Apache-2.0",  # this implementation; the weights come under their authors' terms
    weights_hint="the authors publish SPAN's weights (spanx2_ch48.pth, spanx4_ch48.pth) on Google Drive only, "
    "with no stable URL or checksum: download them from github.com/hongyuanyu/SPAN and pass --weights FILE, "
    "or 'sresr weights import FILE'",
)
