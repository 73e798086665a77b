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
:class:`sresr.engine.Upscaler` (fp32 by default, tiled with exact stitching; on a CUDA GPU fp32 is
IEEE fp32: the engine turns TF32 off for its fp32 work).
"""

from __future__ import annotations

import math
import os
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
    "match_predictions", "PredictionMatch",
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
    warnings: tuple[str, ...] = ()  # what the model's load said (an ONNX file's notes), to show once

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
        if self.warnings:
            out["warnings"] = list(self.warnings)
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


def _save_name(name: str, scale: int) -> str:
    """The file name ``--save`` gives the SR image of the HR image ``name`` (its stem)."""
    return f"{name}_x{scale}.png"


def _refuse_overwriting_inputs(ds: Dataset, out_dir: Path, scale: int) -> None:
    """A :class:`UsageError` when an SR image saved to ``out_dir`` would replace an input of the
    run: an HR image of ``ds``, or an LR image it gives for ``scale``. Files are compared as
    ``os.path.samefile`` does (device and inode, symlinks followed), so ``./d``, ``d/../d``, a
    symlink to the folder and a case-insensitive file system all count."""
    if out_dir.exists() and not out_dir.is_dir():
        raise UsageError(f"--save {out_dir} is a file, not a folder; pick another --save folder")

    def identity(path: Path) -> object | None:
        try:
            st = path.stat()
        except OSError:
            return None  # no such file: nothing to overwrite (or to read: a Failure of its own later)
        if st.st_ino:
            return st.st_dev, st.st_ino
        return os.path.normcase(path.resolve())  # file systems without inode numbers (FAT on Windows)

    inputs: dict[object, tuple[Path, str]] = {}
    for hr_file in ds.hr_files:
        given = [(hr_file, "an HR image of the dataset")]
        lr_file = ds.lr_file(hr_file, scale)
        if lr_file is not None:
            given.append((lr_file, f"the LR image the dataset gives for {hr_file.name}"))
        for path, role in given:
            key = identity(path)
            if key is not None:
                inputs.setdefault(key, (path, role))
    for hr_file in ds.hr_files:
        out = out_dir / _save_name(hr_file.stem, scale)
        key = identity(out)
        hit = inputs.get(key) if key is not None else None
        if hit is not None:
            path, role = hit
            which = "" if out == path else f", which is {path}"
            raise UsageError(f"--save would overwrite {out}{which}, {role} (the SR image of {hr_file.name} "
                             "has that name); pick another --save folder")


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
    backend: str = "torch",
    provider: str = "auto",
) -> EvalReport:
    """Score ``model`` (name, ``MODEL.TAG``, a ``.onnx`` file or a LoadedModel) on ``data`` (name, folder or Dataset).

    ``backend``/``provider``: what runs the network (:mod:`sresr.backends`; an ONNX file always
    runs on onnxruntime). A named model is loaded by :func:`sresr.backends.load`, and what its load
    says (an ONNX file's notes) is the report's ``warnings``.

    A bad image becomes a :class:`Failure` (one line) and the rest go on; ``save_dir`` (``--save``)
    gets the SR images as ``NAME_xS.png`` (atomically). A ``save_dir`` where one of them would
    overwrite an input of the run (an HR image, or a given LR image) is a :class:`UsageError`,
    raised before any model is loaded or run.
    """
    ds = data if isinstance(data, Dataset) else load_dataset(data, sha256=sha256, progress=progress)
    out_dir = Path(save_dir) if save_dir is not None else None
    if out_dir is not None and scale is not None:
        _refuse_overwriting_inputs(ds, out_dir, int(scale))
    from .backends import load, to_backend

    notes: tuple[str, ...] = ()
    if isinstance(model, str):  # sresr.backends.load: an ONNX file, or a model on the backend asked for
        got = load(model, scale, weights=weights, backend=backend, provider=provider, device=device,
                   precision=precision)
        loaded, notes = got.model, got.notes
    else:
        loaded = to_backend(model, backend, provider=provider, device=device, precision=precision)
    if out_dir is not None and scale is None:  # the scale is the model's: known only now
        _refuse_overwriting_inputs(ds, out_dir, int(loaded.scale))
    scale = int(loaded.scale if scale is None else scale)
    if scale != loaded.scale:
        raise UsageError(f"model is built for x{loaded.scale}, not x{scale}", hint=f"pass -s {loaded.scale}")
    upscaler = make_upscaler(loaded, device, precision, tile)
    metric = _Lpips(device) if lpips else None
    results: list[ImageResult] = []
    failures: list[Failure] = []
    for hr_file in ds.hr_files:
        try:
            sample = ds.sample(hr_file, scale)
            sr_rgb, sr_y = super_resolve(upscaler, sample.lr)
            s = _score(sr_rgb, sr_y, sample.hr, scale, protocol)
            lp = (metric(quantize(sr_rgb), sample.hr.astype(np.float64), protocol.border(scale))
                  if metric else None)
            result: ImageResult | Failure = ImageResult(sample.name, s.psnr, s.ssim, lp)
            results.append(result)  # type: ignore[arg-type]
            if out_dir is not None:
                write_png(out_dir / _save_name(sample.name, scale), quantize(sr_rgb).astype(np.uint8))
        except SresrError as exc:
            result = Failure(hr_file.stem, exc.message)
            failures.append(result)
        if on_image is not None:
            on_image(result)
    paper = {}
    for key in ("psnr", "ssim"):
        value = loaded.reference_metrics.get(f"{ds.name.lower()}/x{scale}/{key}")
        if value is not None:
            paper[key] = value
    return EvalReport(loaded.name, ds.name, scale, protocol, tuple(results), loaded.weights_id,
                      tuple(failures), paper if protocol.is_standard() else {}, notes)


def _images(folder: Path) -> list[Path]:
    if not folder.is_dir():
        raise UsageError(f"{folder} is not a folder")
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS
                  and not p.name.startswith("."))


_SEP = "_-. "  # what separates the words of a file name


@dataclass(frozen=True)
class PredictionMatch:
    """What :func:`match_predictions` found, per GT file.

    pairs: GT -> its one prediction. ambiguous: GT -> its candidates when there are two or more, or
    when its one candidate is another GT's too (two GT files of one name); none of them is scored.
    other_scale: GT -> ``(prediction, scale)`` of images of it named for another scale (never
    paired). unmatched: predictions that are no GT's candidate (other scales included).
    """

    pairs: dict[Path, Path]
    ambiguous: dict[Path, tuple[Path, ...]]
    other_scale: dict[Path, tuple[tuple[Path, int], ...]]
    unmatched: tuple[Path, ...]


def _image_name(gt_stem: str, scale: int) -> str:
    """The GT stem without the decorations benchmark packs give GT files, lowercased."""
    sep = re.escape(_SEP)
    decorations = rf"(?:[{sep}](?:hr|gt|x{scale}|srf[{sep}]{scale}))*"
    m = re.fullmatch(rf"(.+?){decorations}", gt_stem.lower())
    return m.group(1) if m else gt_stem.lower()


def _decoration_scales(rest: str) -> set[int] | None:
    """The scales named in ``rest``, what follows an image name in a prediction's (lowercased)
    stem, or None when ``rest`` is not made of prediction decorations only."""
    scales: set[int] = set()
    attached = re.match(rf"x(\d+)(?=[{re.escape(_SEP)}]|$)", rest)  # EDSR's babyx4_SR
    if attached:
        scales.add(int(attached.group(1)))
        rest = rest[attached.end():]
    if not rest:
        return scales
    if rest[0] not in _SEP:
        return None  # "babyface" is not "baby" decorated
    tokens = re.split(rf"[{re.escape(_SEP)}]", rest)[1:]
    i = 0
    while i < len(tokens):
        token = tokens[i]
        scale = re.fullmatch(r"x(\d+)|(\d+)x", token)
        if scale:
            scales.add(int(scale.group(1) or scale.group(2)))
        elif token == "srf" and i + 1 < len(tokens) and tokens[i + 1].isdecimal():  # SelfExSR's _SRF_4
            scales.add(int(tokens[i + 1]))
            i += 1
        elif token in ("hr", "lr", "gt"):
            return None  # a ground truth or a low-resolution input, not a prediction
        elif not any(c.isalpha() for c in token):
            return None  # "" (doubled separator), "2" ("img_2" is another image), "(1)"
        i += 1
    return scales


def match_predictions(pred: list[Path], gt: list[Path], scale: int) -> PredictionMatch:
    """Pair each GT file with its prediction, on the image's own name.

    The image name is the GT stem without the decorations benchmark packs give GT files, in any
    order: ``_HR``, ``_GT``, ``_x{s}``, ``_SRF_{s}``. At ``-s 4``, ``baby``, ``baby_HR``,
    ``baby_GT``, ``baby_HR_x4`` all name ``baby``; ``img_001_SRF_4_HR`` names ``img_001``.

    A prediction is a candidate for a GT when its stem is the GT's stem or the image name,
    possibly followed by decorations, each after ``_``, ``-``, ``.`` or a space (``x{s}`` may
    also follow the name directly):

    - the scale: ``x4``, ``X4``, ``4x``, ``SRF_4``;
    - the words other tools add: a method (``RCAN``, ``EDSR``, ``SwinIR``, ``A+``, ``x4plus``),
      ``SR``, ``out``: any word with a letter in it other than ``HR``, ``LR`` and ``GT``.

    So ``baby.png`` (in another folder), ``baby_x4``, ``babyx4``, ``baby_RCAN_x4``,
    ``baby_x4_SR``, ``babyx4_SR`` (EDSR), ``baby_out`` (Real-ESRGAN), ``img_001_SRF_4_A+``
    (SelfExSR) are predictions of ``baby`` / ``img_001`` at ``-s 4``. Not candidates: a name
    carrying another scale (``baby_x2``, ``babyx2`` at ``-s 4``: reported in ``other_scale``),
    a number word (``baby_2`` is another image), ``HR``/``LR``/``GT`` words (``baby_LR_x4``).
    Names compare case-insensitively, and the extension does not count.

    A prediction that starts with several GTs' names (their stems included) belongs to the GT with
    the longest one: ``img_a_x4`` is ``img_a``'s, not ``img``'s with the method ``a``;
    ``baby_x4_SR`` is the GT ``baby_x4``'s, not ``baby``'s. At equal length a GT's stem beats
    another's image name: ``baby_out`` is ``baby``'s, not ``baby_x4``'s (at ``-s 4`` both name
    ``baby``). Two or more candidates for one GT, or one candidate of two GTs (``baby.png`` and
    ``baby.bmp``), are reported in ``ambiguous``.
    """
    names = {g: {g.stem.lower(), _image_name(g.stem, scale)} for g in gt}
    candidates: dict[Path, list[Path]] = {g: [] for g in gt}
    other: dict[Path, list[tuple[Path, int]]] = {g: [] for g in gt}
    unmatched: list[Path] = []
    shared: set[Path] = set()  # candidates of two or more GTs
    for p in pred:
        stem = p.stem.lower()
        best: list[tuple[Path, set[int]]] = []  # the GTs of the best name, with the scales p names
        best_rank = (0, False)
        for g in gt:
            for name in names[g]:
                # the longest name; at equal length a GT's stem beats another's decorated stem
                rank = (len(name), name == g.stem.lower())
                if rank < best_rank or not stem.startswith(name):
                    continue
                scales = _decoration_scales(stem[len(name):])
                if scales is None:
                    continue
                if rank > best_rank:
                    best, best_rank = [], rank
                best.append((g, scales))
        mine = [g for g, scales in best if scales <= {scale}]
        for g, scales in best:
            if not scales <= {scale}:
                other[g].append((p, min(scales - {scale})))
        for g in mine:
            candidates[g].append(p)
        if len(mine) > 1:
            shared.add(p)  # two GT files of one name (baby.png and baby.bmp; baby_HR and baby_GT)
        if not mine:
            unmatched.append(p)
    unsure = {g: tuple(c) for g, c in candidates.items() if len(c) > 1 or (c and c[0] in shared)}
    return PredictionMatch(
        pairs={g: c[0] for g, c in candidates.items() if len(c) == 1 and g not in unsure},
        ambiguous=unsure,
        other_scale={g: tuple(o) for g, o in other.items() if o},
        unmatched=tuple(unmatched),
    )


def _names(paths: Any) -> str:
    names = [p.name for p in paths]
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


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
    """Score SR images made by any tool against ground truth; both are modcropped by ``scale``.

    Predictions pair with GT files as :func:`match_predictions` says. A GT without one, or with
    two or more, is a :class:`Failure` that names the files (and those made for another scale)."""
    pred_dir, gt_dir = Path(pred_dir), Path(gt_dir)
    gt_root = gt_dir / "HR" if (gt_dir / "HR").is_dir() else gt_dir
    gts = _images(gt_root)
    preds = _images(pred_dir)
    if not gts:
        raise UsageError(f"no images in {gt_root}")
    found = match_predictions(preds, gts, scale)
    metric = _Lpips(device) if lpips else None
    results: list[ImageResult] = []
    failures: list[Failure] = []
    for g in gts:
        result: ImageResult | Failure
        p = found.pairs.get(g)
        if g in found.ambiguous:
            # A Failure of this GT, like a missing prediction, not a UsageError: the other images
            # are still scored, every ambiguous GT is listed (not only the first), and the exit
            # status is 1 all the same. Scoring one of them would be a guess.
            claims = found.ambiguous[g]
            if len(claims) > 1:
                each = "both" if len(claims) == 2 else "all"
                error = (f"{_names(claims)} in {pred_dir} {each} look like the prediction for {g.name}; "
                         "keep one (a folder per method)")
            else:  # one prediction, two GT files of one name
                also = [h for h, c in found.ambiguous.items() if h != g and claims[0] in c]
                error = (f"{claims[0].name} in {pred_dir} looks like the prediction for {_names([g, *also])}; "
                         "rename it")
            result = Failure(g.stem, error)
            failures.append(result)
        elif p is None:
            why = ", ".join(f"{q.name} is for x{s}" for q, s in found.other_scale.get(g, ()))
            why = f": {why}, not x{scale}" if why else ""  # a prediction of another scale never pairs
            result = Failure(g.stem, f"no prediction in {pred_dir} for {g.name}{why}")
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
