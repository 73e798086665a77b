"""Validation during training: the standard protocol (modcrop, MATLAB bicubic LR rounded to
uint8, PSNR/SSIM on Y with a border of the scale), on the model's own input."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from ..devices import ieee_fp32
from .config import TrainConfig
from .data import prepare_pair, read_rgb, resolve_sources


@dataclass
class ValImage:
    name: str
    inp: torch.Tensor  # 1xCxhxw model input
    hr: np.ndarray  # HxWx3 (or HxW for grayscale) uint8, mod-cropped


def load_val_images(cfg: TrainConfig, scale: int, colorspace: str, upsampled: bool) -> list[ValImage]:
    """The validation set with the standard protocol: modcrop, MATLAB bicubic LR rounded to uint8."""
    from PIL import Image

    paths = resolve_sources([cfg.val.data])
    if cfg.val.max_images:
        paths = paths[: cfg.val.max_images]
    out = []
    for p in paths:
        rgb = read_rgb(p)
        with Image.open(p) as im:
            gray = im.mode in ("L", "I;16", "I;16B", "I;16L", "I")
        hr = rgb[: rgb.shape[0] - rgb.shape[0] % scale, : rgb.shape[1] - rgb.shape[1] % scale]
        if gray and colorspace == "y":  # a gray image is its own luma
            pair = prepare_pair(p.name, rgb, scale, "rgb", upsampled)
            inp = torch.from_numpy(np.ascontiguousarray(pair.inp[:1]))
        else:
            pair = prepare_pair(p.name, rgb, scale, colorspace, upsampled)
            inp = torch.from_numpy(np.ascontiguousarray(pair.inp))
        inp = inp.float() / 255.0 if inp.dtype == torch.uint8 else inp.float()
        out.append(ValImage(p.name, inp.unsqueeze(0), np.ascontiguousarray(hr[..., 0] if gray else hr)))
    return out


@torch.no_grad()
def validate(module: nn.Module, images: list[ValImage], scale: int, colorspace: str, device: torch.device
             ) -> dict[str, float]:
    """Mean PSNR/SSIM with the standard protocol (sresr.metrics: Y, border = scale, SR rounded to uint8)."""
    from ..metrics import Protocol, mean_scores, score

    was_training = module.training
    module.eval()
    scores = []
    try:
        for im in images:
            with ieee_fp32(device, torch.float32):  # the protocol's numbers: no TF32 on CUDA
                sr = module(im.inp.to(device)).float().cpu()
            h, w = im.hr.shape[:2]
            arr = (sr[0, :, :h, :w] * 255.0).permute(1, 2, 0).double().numpy()
            scores.append(score(arr, im.hr, scale, Protocol(), sr_is_y=(colorspace == "y" and im.hr.ndim == 3)))
    finally:
        module.train(was_training)
    m = mean_scores(scores)
    return {"psnr": m.psnr, "ssim": m.ssim}
