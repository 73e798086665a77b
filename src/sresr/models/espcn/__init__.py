"""ESPCN spec (torch-free). The network is in :mod:`sresr.models.espcn.arch`."""

from sresr.spec import ModelSpec

SPEC = ModelSpec(
    name="espcn",
    factory="sresr.models.espcn.arch:espcn",
    scales=(2, 3, 4),
    description="ESPCN 5-3-3 sub-pixel CNN on luma (activation='tanh' as in the paper, or 'relu')",
    colorspace="y",
    input="lr",
    size_multiple=1,
    receptive_field=4,
    supports_fp16=True,
    supports_bf16=True,
    loader="sresr.models.espcn.arch:load_state_dict",
    num_params={2: 21284, 3: 22729, 4: 24752},
    paper="Shi et al.: Real-Time Single Image and Video Super-Resolution Using an Efficient Sub-Pixel "
    "Convolutional Neural Network, CVPR 2016 (arXiv:1609.05158)",
    license="Apache-2.0",
    # ImageNet-trained numbers (91-image training gives Set5 x3 32.55 dB)
    paper_metrics={"set5/x3/psnr": 33.13, "set14/x3/psnr": 29.49, "set5/x4/psnr": 30.90, "set14/x4/psnr": 27.73},
)
