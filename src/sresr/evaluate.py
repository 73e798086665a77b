"""Evaluate a model (or images made by any other tool) under the standard protocol.

>>> from sresr.evaluate import evaluate, evaluate_dirs
>>> report = evaluate("bicubic", "set5", scale=4)          # or a LoadedModel, or a folder
>>> report.mean.psnr, report.mean.ssim                      # 28.43, 0.8113
>>> report.to_dict()                                        # the JSON of 'sresr eval --json'
>>> evaluate_dirs("results/", "Set14/HR", scale=4)          # score another tool's output

The protocol (:class:`sresr.metrics.Protocol`) is part of every report. RGB models get the LR
image in [0, 1] (a grayscale image is given as three equal channels); Y models (``colorspace ==
"y"``) get BT.601 Y/255 of the LR image and their output Y is scored directly; ``input ==
"upsampled"`` models get the LR image enlarged with MATLAB bicubic first. Models run through
:class:`sresr.engine.Upscaler` (fp32 by default, tiled with exact stitching).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from .datasets import IMAGE_EXTENSIONS, Dataset, load_dataset, read_image, write_png
from .errors import ImageError, SresrError, UsageError
from .metrics import Protocol, Score, json_number, mean_scores, modcrop, prepare, psnr, quantize, ssim

__all__ = [
    "ImageResult", "Failure", "EvalReport", "evaluate", "evaluate_dirs", "make_upscaler", "super_resolve",
    "match_predictions",
]


@dataclass(frozen=True)
class ImageResult:
    name: str
    psnr: float
    ssim: float
    lpips: float | None = None


@dataclass(frozen=True)
class Failure:
    name: str
    error: str


@dataclass(frozen=True)
class EvalReport:
    """Per-image and mean scores plus everything needed to reproduce them."""

    model: str
    dataset: str
    scale: int
    protocol: Protocol
    images: tuple[ImageResult, ...]
    weights: str | None = None
    failures: tuple[Failure, ...] = ()
    paper: dict[str, float] = field(default_factory=dict)  # published psnr/ssim for this set, if known

    @property
    def mean(self) -> Score:
        return mean_scores([Score(r.psnr, r.ssim) for r in self.images])

    @property
    def mean_lpips(self) -> float | None:
        vals = [r.lpips for r in self.images if r.lpips is not None]
        return float(np.mean(vals)) if vals else None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready; PSNR of identical images is the string ``"inf"``."""
        images = []
        for r in self.images:
            rec: dict[str, Any] = {"name": r.name, "psnr": json_number(r.psnr), "ssim": json_number(r.ssim)}
            if r.lpips is not None:
                rec["lpips"] = r.lpips
            images.append(rec)
        mean: dict[str, Any] = {"psnr": json_number(self.mean.psnr), "ssim": json_number(self.mean.ssim)}
        if self.mean_lpips is not None:
            mean["lpips"] = self.mean_lpips
        out: dict[str, Any] = {
            "model": self.model,
            "weights": self.weights,
            "dataset": self.dataset,
            "scale": self.scale,
            "protocol": self.protocol.to_dict(self.scale),
            "images": images,
            "mean": mean,
            "failures": [{"name": f.name, "error": f.error} for f in self.failures],
        }
        if self.paper:
            out["paper"] = dict(self.paper)
        return out


# -- running a model ------------------------------------------------------------------------------
def make_upscaler(loaded: Any, device: str = "cpu", precision: str = "fp32", tile: int | None = None) -> Any:
    """The engine that runs ``loaded`` for evaluation: fp32 by default (the protocol's numbers are
    fp32 numbers), tiled with exact stitching so large images fit in memory. Tunes the process's
    allocator for tiled work as ``sresr upscale`` does, so ``sresr bench`` times the same engine."""
    from .engine import Upscaler, tune_cpu_allocator

    tune_cpu_allocator()
    return Upscaler(loaded, device=device, precision=precision, tile=tile)


_UPSCALER_CACHE: dict[str, Any] = {}


def _as_upscaler(model: Any, device: str) -> Any:
    """An Upscaler as given, or one made (and kept for the next call) for a LoadedModel."""
    from .engine import Upscaler

    if isinstance(model, Upscaler):
        return model
    cached = _UPSCALER_CACHE.get("last")
    if cached is not None and cached[0] is model and cached[1] == device:
        return cached[2]
    upscaler = make_upscaler(model, device)
    _UPSCALER_CACHE["last"] = (model, device, upscaler)
    return upscaler


def super_resolve(model: Any, lr: np.ndarray, device: str = "cpu") -> tuple[np.ndarray, np.ndarray | None]:
    """Run an :class:`sresr.engine.Upscaler` (or a LoadedModel, fp32 on ``device``) on a uint8 LR image.

    Returns ``(rgb, y)`` on the 0-255 scale, unrounded: ``rgb`` is ``(H, W, 3)`` (for Y models the
    chroma is MATLAB-bicubic upsampled), ``y`` is the Y model's own output ``(H, W)`` or None.
    A grayscale LR image yields a grayscale ``rgb`` ``(H, W)`` (for RGB models: the mean of the
    output channels of the three-equal-channel input; for Y models: their output on the gray value).
    """
    import torch

    from .imaging.color import rgb_to_ycbcr, ycbcr_to_rgb
    from .imaging.resize import imresize

    upscaler = _as_upscaler(model, device)
    scale = int(upscaler.scale)
    gray = lr.ndim == 2
    x = torch.from_numpy(np.ascontiguousarray(lr)).to(torch.float64) / 255.0
    x = (x.unsqueeze(0) if gray else x.permute(2, 0, 1)).unsqueeze(0)  # 1xCxHxW
    if upscaler.colorspace == "y":
        if gray:
            y_in, cbcr = x, None
        else:
            ycc = rgb_to_ycbcr(x)
            y_in, cbcr = ycc[:, :1].contiguous(), ycc[:, 1:].contiguous()
        y_out = upscaler.run(y_in).to(torch.float64)
        _check_size(y_out, lr, scale)
        y255 = (y_out[0, 0] * 255.0).numpy()
        if gray or cbcr is None:
            return y255, y255
        rgb = ycbcr_to_rgb(torch.cat([y_out, imresize(cbcr, scale)], dim=1))
        return (rgb[0].permute(1, 2, 0) * 255.0).numpy(), y255
    xin = x.expand(1, 3, *x.shape[-2:]).contiguous() if gray else x
    out = upscaler.run(xin).to(torch.float64)
    _check_size(out, lr, scale)
    rgb = (out[0].permute(1, 2, 0) * 255.0).numpy()
    return (rgb.mean(axis=2), None) if gray else (rgb, None)


def _check_size(out: Any, lr: np.ndarray, scale: int) -> None:
    want = (lr.shape[0] * scale, lr.shape[1] * scale)
    if tuple(out.shape[-2:]) != want:
        raise ImageError(
            f"model output is {out.shape[-1]}x{out.shape[-2]}, expected {want[1]}x{want[0]} (scale {scale})",
            hint="the model does not upscale by the requested scale",
        )


# -- LPIPS ----------------------------------------------------------------------------------------
class _Lpips:
    def __init__(self, device: str):
        try:
            import lpips  # type: ignore[import-not-found]
        except Exception as exc:
            raise UsageError(
                f"LPIPS needs the 'lpips' package, which cannot be imported ({type(exc).__name__}: {exc})",
                hint="pip install lpips (it also needs a working torchvision), or drop --lpips",
            ) from None
        from .engine import resolve_device

        self.device = resolve_device(device)
        try:
            self.net = lpips.LPIPS(net="alex", verbose=False).to(self.device).eval()
        except Exception as exc:
            raise UsageError(f"LPIPS could not be set up: {type(exc).__name__}: {exc}",
                             hint="LPIPS downloads AlexNet weights on first use; check torchvision and the network") from None

    def __call__(self, sr: np.ndarray, hr: np.ndarray, crop: int) -> float:
        import torch

        def t(a: np.ndarray) -> Any:
            a = a if a.ndim == 3 else np.repeat(a[..., None], 3, axis=2)
            if crop:
                a = a[crop:-crop, crop:-crop]
            return (torch.from_numpy(np.ascontiguousarray(a)).float().permute(2, 0, 1)[None] / 127.5 - 1).to(self.device)

        with torch.inference_mode():
            return float(self.net(t(sr), t(hr)).item())


# -- evaluation -----------------------------------------------------------------------------------
def _score(sr_rgb: np.ndarray, sr_y: np.ndarray | None, hr: np.ndarray, scale: int, protocol: Protocol) -> Score:
    if sr_y is not None and protocol.y_only:
        a, b = prepare(sr_y, hr, scale, protocol, sr_is_y=True)
    else:
        a, b = prepare(sr_rgb, hr, scale, protocol)
    return Score(psnr(a, b), ssim(a, b))


def evaluate(
    model: Any,
    data: str | Path | Dataset,
    scale: int | None = None,
    *,
    protocol: Protocol = Protocol(),
    weights: str | Path | None = None,
    save_dir: str | Path | None = None,
    device: str = "cpu",
    precision: str = "fp32",
    tile: int | None = None,
    lpips: bool = False,
    sha256: str | None = None,
    progress: bool = True,
    on_image: Callable[[ImageResult | Failure], None] | None = None,
) -> EvalReport:
    """Score ``model`` (name, ``MODEL.TAG`` or a LoadedModel) on ``data`` (name, folder or Dataset).

    A bad image becomes a :class:`Failure` (one line) and the rest go on; ``--save`` writes the SR
    images as ``NAME_xS.png`` (atomically).
    """
    ds = data if isinstance(data, Dataset) else load_dataset(data, sha256=sha256, progress=progress)
    if isinstance(model, str):
        from .weights import load_model

        loaded = load_model(model, scale, weights=weights)
    else:
        loaded = model
    scale = int(loaded.scale if scale is None else scale)
    if scale != loaded.scale:
        raise UsageError(f"model is built for x{loaded.scale}, not x{scale}", hint=f"pass -s {loaded.scale}")
    upscaler = make_upscaler(loaded, device, precision, tile)
    metric = _Lpips(device) if lpips else None
    out_dir = Path(save_dir) if save_dir is not None else None
    results: list[ImageResult] = []
    failures: list[Failure] = []
    for hr_file in ds.hr_files:
        try:
            sample = ds.sample(hr_file, scale)
            sr_rgb, sr_y = super_resolve(upscaler, sample.lr)
            s = _score(sr_rgb, sr_y, sample.hr, scale, protocol)
            lp = metric(quantize(sr_rgb), sample.hr.astype(np.float64), protocol.border(scale)) if metric else None
            result: ImageResult | Failure = ImageResult(sample.name, s.psnr, s.ssim, lp)
            results.append(result)  # type: ignore[arg-type]
            if out_dir is not None:
                write_png(out_dir / f"{sample.name}_x{scale}.png", quantize(sr_rgb).astype(np.uint8))
        except SresrError as exc:
            result = Failure(hr_file.stem, exc.message)
            failures.append(result)
        if on_image is not None:
            on_image(result)
    paper = {}
    for key in ("psnr", "ssim"):
        value = loaded.spec.paper_metrics.get(f"{ds.name.lower()}/x{scale}/{key}")
        if value is not None:
            paper[key] = value
    return EvalReport(loaded.name, ds.name, scale, protocol, tuple(results), loaded.weights_id,
                      tuple(failures), paper if protocol.is_standard() else {})


def _images(folder: Path) -> list[Path]:
    if not folder.is_dir():
        raise UsageError(f"{folder} is not a folder")
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS
                  and not p.name.startswith("."))


def match_predictions(pred: list[Path], gt: list[Path], scale: int) -> tuple[dict[Path, Path], list[Path]]:
    """Map each GT file to its prediction by stem, tolerating suffixes such as ``_x4``, ``x4``,
    ``_RCAN_x4`` or ``_SR``. The longest matching GT stem wins. Returns (matches, unmatched preds)."""
    suffix = re.compile(rf"(?:[_\-. ][A-Za-z0-9]+)*?(?:[_\-. ]?[xX]{scale})?")

    def best_gt(p: Path) -> Path | None:
        for g in gt:
            if g.stem == p.stem:
                return g
        cands = [g for g in gt if p.stem.lower().startswith(g.stem.lower()) and suffix.fullmatch(p.stem[len(g.stem):])]
        return max(cands, key=lambda g: len(g.stem)) if cands else None

    by_gt: dict[Path, Path] = {}
    unmatched: list[Path] = []
    for p in pred:
        g = best_gt(p)
        if g is None:
            unmatched.append(p)
            continue
        current = by_gt.get(g)
        if current is None:
            by_gt[g] = p
        elif p.stem == g.stem and current.stem != g.stem:  # an exact name beats a suffixed one
            unmatched.append(current)
            by_gt[g] = p
        else:
            unmatched.append(p)
    return by_gt, unmatched


def evaluate_dirs(
    pred_dir: str | Path,
    gt_dir: str | Path,
    scale: int,
    *,
    protocol: Protocol = Protocol(),
    lpips: bool = False,
    device: str = "cpu",
    on_image: Callable[[ImageResult | Failure], None] | None = None,
) -> EvalReport:
    """Score SR images made by any tool against ground truth; both are modcropped by ``scale``."""
    pred_dir, gt_dir = Path(pred_dir), Path(gt_dir)
    gt_root = gt_dir / "HR" if (gt_dir / "HR").is_dir() else gt_dir
    gts = _images(gt_root)
    preds = _images(pred_dir)
    if not gts:
        raise UsageError(f"no images in {gt_root}")
    matches, _extra = match_predictions(preds, gts, scale)
    metric = _Lpips(device) if lpips else None
    results: list[ImageResult] = []
    failures: list[Failure] = []
    for g in gts:
        result: ImageResult | Failure
        p = matches.get(g)
        if p is None:
            result = Failure(g.stem, f"no prediction in {pred_dir} for {g.name}")
            failures.append(result)
        else:
            try:
                hr = modcrop(read_image(g), scale)
                sr = modcrop(read_image(p), scale)
                s = _score(sr.astype(np.float64), None, hr, scale, protocol)
                lp = metric(quantize(sr), hr.astype(np.float64), protocol.border(scale)) if metric else None
                result = ImageResult(g.stem, s.psnr, s.ssim, lp)
                results.append(result)
            except SresrError as exc:
                result = Failure(g.stem, f"{p.name}: {exc.message}")
                failures.append(result)
        if on_image is not None:
            on_image(result)
    return EvalReport(str(pred_dir), str(gt_dir), scale, protocol, tuple(results), None, tuple(failures))


def format_number(value: float, digits: int) -> str:
    if math.isinf(value):
        return "inf"
    if math.isnan(value):
        return "-"
    return f"{value:.{digits}f}"
