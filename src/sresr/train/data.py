"""Training data: aligned random HR/LR patches whose order is a pure function of (seed, index).

Each image is read once, mod-cropped, and its LR made once per scale with the protocol's MATLAB
bicubic ``imresize`` (rounded to uint8 like the benchmark LR files), then kept in memory in the
model's colorspace. Sample ``k`` (global index ``iteration * batch + position``) draws its image,
crop and flips/rotation from ``numpy.random.default_rng((seed, k))``, so a run resumed at
iteration ``i`` sees exactly the batches an uninterrupted run would, and DDP ranks read disjoint
slices of the same global batch. :class:`DeviceBatcher` keeps the prepared images on the training
device and gathers each batch there (no worker processes, no host copy per batch); ``ds[k]`` of
:class:`PatchDataset` is the reference it equals.
"""

from __future__ import annotations

import functools
import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from ..datasets import IMAGE_EXTENSIONS
from ..errors import DatasetError

IMAGE_EXTS = frozenset(IMAGE_EXTENSIONS)


# -- sources ---------------------------------------------------------------------------------


def _images_in(folder: Path) -> list[Path]:
    if (folder / "HR").is_dir():  # the EDSR/DIV2K layout: HR/ (+ LR_bicubic/, which we regenerate)
        folder = folder / "HR"
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_EXTS)


def _named_dataset_paths(name: str) -> list[Path]:
    """HR files of a named dataset (bundled set5, or downloaded and verified by sresr.datasets)."""
    from ..datasets import load_dataset

    files = [Path(p) for p in load_dataset(name).hr_files]
    if not files:
        raise DatasetError(f"dataset '{name}' gives no image files")
    return files


def resolve_sources(sources: Sequence[str]) -> list[Path]:
    """Image files of every source (a folder, an image file or a dataset name), in order."""
    if not sources:
        raise DatasetError("no training data given", hint="pass --data FOLDER (a folder of HR images) or a dataset name")
    out: list[Path] = []
    for src in sources:
        p = Path(src).expanduser()
        if p.is_dir():
            files = _images_in(p)
            if not files:
                raise DatasetError(f"training data folder {p} holds no images",
                                   hint="supported: " + ", ".join(sorted(IMAGE_EXTS)))
            out.extend(files)
        elif p.is_file():
            out.append(p)
        else:
            out.extend(_named_dataset_paths(src))
    return out


def _short_side(path: Path) -> int:
    """The shorter side of an image file, from its header; DatasetError naming the file if unreadable."""
    from PIL import Image

    try:
        if path.stat().st_size == 0:
            raise DatasetError(f"cannot read training image: {path}: empty file (0 bytes)")
        with Image.open(path) as im:
            return min(im.size)
    except DatasetError:
        raise
    except Exception as exc:
        raise DatasetError(f"cannot read training image: {path}: {type(exc).__name__}: {exc}") from None


def read_rgb(path: Path) -> np.ndarray:
    """HxWx3 uint8 (grayscale is repeated to 3 channels), read like the evaluation data."""
    from ..datasets import read_image
    from ..errors import ImageError

    try:
        arr = read_image(path)
    except ImageError as exc:
        raise DatasetError(f"cannot read training image: {exc.message}") from None
    return np.repeat(arr[..., None], 3, axis=2) if arr.ndim == 2 else arr


# -- per-image preparation ---------------------------------------------------------------------


@dataclass
class Pair:
    """One image in model space. ``hr``: CxHxW; ``inp``: Cxhxw (LR) or CxHxW (pre-upsampled input).
    uint8 arrays hold [0, 255] values; float32 arrays hold [0, 1]."""

    name: str
    hr: np.ndarray
    inp: np.ndarray


def modcrop(img: np.ndarray, scale: int) -> np.ndarray:
    h, w = img.shape[:2]
    return img[: h - h % scale, : w - w % scale]


def _to_y(x: torch.Tensor) -> torch.Tensor:
    from ..imaging.color import rgb_to_y  # noqa: PLC0415

    y = rgb_to_y(x)
    if y.dim() == x.dim() - 1:
        y = y.unsqueeze(-3)
    return y


def make_lr(hr_u8: np.ndarray, scale: int) -> np.ndarray:
    """HxWx3 uint8 -> LR uint8 with MATLAB bicubic, rounded (the benchmark LR files)."""
    return resize_hr(hr_u8, 1.0 / scale)  # uint8 in, MATLAB uint8 semantics out


def resize_hr(rgb: np.ndarray, factor: float) -> np.ndarray:
    """HxWx3 uint8 resized by ``factor`` with MATLAB bicubic (uint8 semantics); 1.0 is a no-op."""
    if factor == 1.0:
        return rgb
    from ..imaging.resize import imresize  # noqa: PLC0415

    x = torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1)
    return imresize(x, scale=factor).permute(1, 2, 0).numpy()


def prepare_pair(name: str, rgb: np.ndarray, scale: int, colorspace: str, upsampled: bool,
                 lr_rgb: np.ndarray | None = None) -> Pair:
    """HR (mod-cropped) and the model input for one image, in the model's colorspace. ``lr_rgb``:
    the user's own LR image (paired data); otherwise the protocol's MATLAB-bicubic LR is made."""
    from ..imaging.resize import imresize  # noqa: PLC0415

    hr_u8 = modcrop(rgb, scale)
    lr_u8 = make_lr(hr_u8, scale) if lr_rgb is None else lr_rgb
    hr_t = torch.from_numpy(hr_u8).permute(2, 0, 1)
    lr_t = torch.from_numpy(lr_u8).permute(2, 0, 1)
    if colorspace == "y":
        hr = _to_y(hr_t.double() / 255.0).float()
        lr = _to_y(lr_t.double() / 255.0)
        if upsampled:
            inp = imresize(lr, scale=scale).float()
            inp = inp[..., : hr.shape[-2], : hr.shape[-1]]
        else:
            inp = lr.float()
        return Pair(name, hr.numpy(), inp.numpy())
    if upsampled:
        inp = imresize(lr_t.double() / 255.0, scale=scale).float()[..., : hr_t.shape[-2], : hr_t.shape[-1]]
        return Pair(name, hr_t.numpy().copy(), inp.numpy())
    return Pair(name, hr_t.numpy().copy(), lr_t.numpy().copy())


def as_float(a: np.ndarray) -> torch.Tensor:
    t = torch.from_numpy(np.ascontiguousarray(a))
    return t.float() / 255.0 if t.dtype == torch.uint8 else t.float()


# -- the patch dataset -----------------------------------------------------------------------


class PatchDataset(torch.utils.data.Dataset):
    """``ds[k]`` -> (input patch, HR patch) for global sample index ``k``; deterministic in (seed, k).

    ``pairs[scale]`` are the prepared images for each training scale; the scale of a batch is
    drawn per iteration from ``(seed, iteration)``.
    """

    def __init__(self, pairs: dict[int, list[Pair]], patch_size: int, batch_size: int, seed: int,
                 augment: bool, upsampled: bool):
        self.pairs = pairs
        self.scales = sorted(pairs)
        self.patch_size = int(patch_size)
        self.batch_size = int(batch_size)
        self.seed = int(seed)
        self.augment = augment
        self.upsampled = upsampled
        self.sizes = {s: [pair.inp.shape[-2:] for pair in ps] for s, ps in pairs.items()}  # input h, w

    def release_images(self) -> None:
        """Drop the images (a :class:`DeviceBatcher` holds them): :meth:`sample` still works,
        ``ds[k]`` no longer does."""
        self.pairs = {}

    def __len__(self) -> int:  # indices are unbounded; the sampler decides
        return 2**62

    def scale_for_iteration(self, it: int) -> int:
        if len(self.scales) == 1:
            return self.scales[0]
        rng = np.random.default_rng((self.seed, 0x5CA1E, it))
        return self.scales[int(rng.integers(len(self.scales)))]

    def input_patch(self, scale: int) -> int:
        """The side of an input patch at ``scale`` (the HR patch's for pre-upsampled models)."""
        return self.patch_size if self.upsampled else self.patch_size // scale

    def sample(self, k: int) -> tuple[int, int, int, int, bool, bool, bool]:
        """What sample ``k`` is: (scale, image index, y, x of the input patch, hflip, vflip,
        transpose), drawn from ``default_rng((seed, k))``: the one definition of a sample, shared by
        ``__getitem__`` and :class:`DeviceBatcher`."""
        scale = self.scale_for_iteration(k // self.batch_size)
        sizes = self.sizes[scale]
        rng = np.random.default_rng((self.seed, k))
        index = int(rng.integers(len(sizes)))
        p = self.input_patch(scale)
        h, w = sizes[index]
        y = int(rng.integers(h - p + 1))
        x = int(rng.integers(w - p + 1))
        flips = (False, False, False)
        if self.augment:
            hflip, vflip, rot = (bool(b) for b in rng.integers(0, 2, size=3))
            flips = (hflip, vflip, rot)
        return scale, index, y, x, *flips

    def __getitem__(self, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        scale, index, y, x, hflip, vflip, rot = self.sample(k)
        pair = self.pairs[scale][index]
        p = self.input_patch(scale)
        f = 1 if self.upsampled else scale  # input pixel -> HR pixels
        inp = pair.inp[:, y : y + p, x : x + p]
        hr = pair.hr[:, y * f : (y + p) * f, x * f : (x + p) * f]
        if hflip:
            inp, hr = inp[:, :, ::-1], hr[:, :, ::-1]
        if vflip:
            inp, hr = inp[:, ::-1, :], hr[:, ::-1, :]
        if rot:
            inp, hr = inp.transpose(0, 2, 1), hr.transpose(0, 2, 1)
        return as_float(inp), as_float(hr)


class DeviceBatcher:
    """The batches of a :class:`PatchDataset`, made where the model trains, without workers.

    Every prepared image of each scale lives in one flat tensor on ``device`` (uint8 or float32,
    as prepared); for an iteration only the samples' draws (``PatchDataset.sample``: 7 numbers
    each) are computed on the host, and the patches, their flips and transposes are one
    ``torch.take`` per tensor with indices built on the device. The batches equal the
    DataLoader's bit for bit (same draws, same values: uint8 / 255 in float32), so a run keeps its
    bit-exact resume whichever made them; there is no per-iteration host sync.
    """

    def __init__(self, dataset: PatchDataset, device: torch.device, rank: int = 0, world: int = 1):
        if dataset.batch_size % world:
            raise DatasetError(f"batch size {dataset.batch_size} is not divisible by the {world} processes",
                               hint="pick a batch size that is a multiple of the number of processes")
        self.ds, self.device = dataset, device
        self.local = dataset.batch_size // world
        self.rank = rank
        self.flat: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}
        self.meta: dict[int, np.ndarray] = {}  # per image: inp offset, hr offset, channels, inp h, inp w
        for scale, pairs in dataset.pairs.items():
            f = 1 if dataset.upsampled else scale
            rows, inp_off, hr_off = [], 0, 0
            for pair in pairs:
                c, h, w = pair.inp.shape
                rows.append((inp_off, hr_off, c, h, w))
                inp_off += pair.inp.size
                hr_off += pair.hr.size
                assert pair.hr.shape == (c, h * f, w * f), (pair.name, pair.hr.shape, pair.inp.shape)
            inp = torch.from_numpy(np.concatenate([np.ascontiguousarray(q.inp).reshape(-1) for q in pairs]))
            hr = torch.from_numpy(np.concatenate([np.ascontiguousarray(q.hr).reshape(-1) for q in pairs]))
            self.flat[scale] = (inp.to(device), hr.to(device))
            self.meta[scale] = np.asarray(rows, dtype=np.int64)

    def batch(self, it: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(input, HR) float32 batches of iteration ``it`` (this rank's slice), on the device."""
        base = it * self.ds.batch_size + self.rank * self.local
        draws = np.asarray([self.ds.sample(k) for k in range(base, base + self.local)], dtype=np.int64)
        scale = int(draws[0, 0])
        meta = self.meta[scale][draws[:, 1]]  # (n, 5): inp offset, hr offset, channels, h, w
        params = torch.from_numpy(np.concatenate([meta, draws[:, 2:]], axis=1)).to(self.device, non_blocking=True)
        p = self.ds.input_patch(scale)
        f = 1 if self.ds.upsampled else scale
        channels = int(meta[0, 2])
        inp, hr = self.flat[scale]
        return (_gather(inp, params, 0, channels, p, 1), _gather(hr, params, 1, channels, p * f, f))


def _gather(flat: torch.Tensor, params: torch.Tensor, which: int, channels: int, p: int, f: int) -> torch.Tensor:
    """``n x C x p x p`` patches of ``flat``: sample ``i``'s image starts at ``params[i, which]``, is
    ``C x (h*f) x (w*f)`` (``params[i, 3:5]`` are its input size), its patch at ``f * (y, x)``
    (``params[i, 5:7]``), flipped / transposed as ``params[i, 7:10]`` say (as PatchDataset does:
    hflip, then vflip, then transpose)."""
    n = params.shape[0]
    dev = params.device
    off, h, w = params[:, which], params[:, 3] * f, params[:, 4] * f
    y0, x0 = params[:, 5] * f, params[:, 6] * f
    hflip, vflip, rot = (params[:, 7 + j].bool().view(n, 1, 1) for j in range(3))
    r = torch.arange(p, device=dev).view(1, p, 1).expand(n, p, p)
    q = torch.arange(p, device=dev).view(1, 1, p).expand(n, p, p)
    a = torch.where(rot, q, r)  # output (r, q) of a transposed patch reads (q, r)
    b = torch.where(rot, r, q)
    row = torch.where(vflip, p - 1 - a, a) + y0.view(n, 1, 1)
    col = torch.where(hflip, p - 1 - b, b) + x0.view(n, 1, 1)
    pix = (row * w.view(n, 1, 1) + col).unsqueeze(1)  # n x 1 x p x p
    plane = (h * w).view(n, 1, 1, 1) * torch.arange(channels, device=dev).view(1, channels, 1, 1)
    idx = off.view(n, 1, 1, 1) + plane + pix
    out = torch.take(flat, idx)
    return out.float() / 255.0 if out.dtype == torch.uint8 else out.float()


_CACHE_VERSION = 1


def _cache_dir() -> Path | None:
    try:
        from ..cache import home  # noqa: PLC0415

        return home() / "train-cache"
    except Exception:
        return None


class _Source:
    """One training image file, hashed and decoded at most once however many scales and resize
    factors are prepared from it (and each resized version made once)."""

    def __init__(self, path: Path):
        self.path = path
        self._resized: dict[float, np.ndarray] = {}

    @functools.cached_property
    def digest(self) -> str:
        return hashlib.sha256(self.path.read_bytes()).hexdigest()[:32]

    def rgb(self, factor: float = 1.0) -> np.ndarray:
        if 1.0 not in self._resized:
            self._resized[1.0] = read_rgb(self.path)
        if factor not in self._resized:
            self._resized[factor] = resize_hr(self._resized[1.0], factor)
        return self._resized[factor]


def cached_pair(src: _Source, scale: int, colorspace: str, upsampled: bool, cache: Path | None,
                factor: float = 1.0) -> Pair:
    """``prepare_pair`` of one image file (resized by ``factor`` first), cached on disk by content
    hash (the MATLAB-bicubic LR is the slow part):
    SRESR_HOME/train-cache/<sha256>-x<s>-<colorspace>[-up][-r<factor>].npz."""
    path = src.path
    name = path.name if factor == 1.0 else f"{path.name}@{factor:g}"
    if cache is None:
        return prepare_pair(name, src.rgb(factor), scale, colorspace, upsampled)
    resized = "" if factor == 1.0 else f"-r{factor:g}"
    f = cache / f"{src.digest}-v{_CACHE_VERSION}-x{scale}-{colorspace}{'-up' if upsampled else ''}{resized}.npz"
    if f.is_file():
        try:
            with np.load(f) as z:
                return Pair(name, z["hr"], z["inp"])
        except Exception:  # a damaged cache entry is rebuilt
            pass
    pair = prepare_pair(name, src.rgb(factor), scale, colorspace, upsampled)
    try:
        from ..atomic import atomic_write  # noqa: PLC0415

        def write(tmp: Path) -> None:
            with open(tmp, "wb") as fh:
                np.savez(fh, hr=pair.hr, inp=pair.inp)

        atomic_write(f, write)
    except OSError:
        pass  # a read-only cache only costs speed
    return pair


_HR_MARKS = re.compile(r"(?:[_\-. ]?(?:hr|gt))+$")


def _lr_marks(scale: int) -> re.Pattern[str]:
    return re.compile(rf"(?:[_\-. ]?(?:lr|x{scale}|lrx{scale}|bicubic))+$")


def pair_files(hr_paths: Sequence[Path], lr_sources: Sequence[str], scale: int,
               log=None) -> list[tuple[Path, Path]]:
    """Pair HR files with the user's LR files (``--data-lr``) on the image's own name: the stem
    without ``_HR`` / ``_GT`` on the HR side and without ``x4`` / ``_x4`` / ``_LR`` / ``_LRx4`` /
    ``_bicubic`` on the LR side (``0001.png`` with DIV2K's ``0001x4.png``). An HR image without an
    LR one, or with several, is named in a ``skipped:`` line; none at all is an error."""
    lr_files: list[Path] = []
    for src in lr_sources:
        p = Path(src).expanduser()
        if not p.is_dir():
            raise DatasetError(f"LR data folder {p} does not exist", hint="--data-lr takes a folder of LR images")
        lr_files.extend(x for x in sorted(p.rglob("*")) if x.is_file() and x.suffix.lower() in IMAGE_EXTS)
    lr_marks = _lr_marks(scale)
    by_name: dict[str, list[Path]] = {}
    for f in lr_files:
        by_name.setdefault(lr_marks.sub("", f.stem.lower()), []).append(f)
    pairs: list[tuple[Path, Path]] = []
    for hr in hr_paths:
        found = by_name.get(_HR_MARKS.sub("", hr.stem.lower()), [])
        if len(found) == 1:
            pairs.append((hr, found[0]))
        elif log is not None:
            why = "no LR image of that name" if not found else "several LR images: " + ", ".join(f.name for f in found)
            log(f"skipped: {hr}: {why} in {', '.join(lr_sources)}")
    if not pairs:
        raise DatasetError(f"no HR image has an LR image of its name in {', '.join(lr_sources)}",
                           hint=f"name them alike: HR 0001.png with LR 0001.png or 0001x{scale}.png")
    return pairs


def _paired(hr: Path, lr: Path, scale: int, colorspace: str, upsampled: bool) -> Pair:
    """One user-made LR/HR pair, sizes checked: HR (mod-cropped) must be ``scale`` x LR."""
    hr_rgb, lr_rgb = read_rgb(hr), read_rgb(lr)
    h, w = lr_rgb.shape[:2]
    cropped = modcrop(hr_rgb, scale)
    if cropped.shape[:2] != (h * scale, w * scale):
        raise DatasetError(f"{lr} ({w}x{h}) is not the x{scale} LR of {hr} ({hr_rgb.shape[1]}x{hr_rgb.shape[0]}): "
                           f"the HR image must be {w * scale}x{h * scale}")
    return prepare_pair(hr.name, cropped, scale, colorspace, upsampled, lr_rgb=lr_rgb)


def load_paired(pairs: Sequence[tuple[Path, Path]], scale: int, colorspace: str, upsampled: bool, min_hr: int,
                log=None) -> dict[int, list[Pair]]:
    """Prepare the user's LR/HR pairs (no LR is made); a pair that cannot be read, whose sizes do
    not match, or smaller than the patch is named in a ``skipped:`` line."""
    out: list[Pair] = []
    for hr, lr in pairs:
        try:
            pair = _paired(hr, lr, scale, colorspace, upsampled)
        except DatasetError as exc:
            if log is not None:
                log(f"skipped: {exc.message}")
            continue
        if min(pair.hr.shape[-2:]) < min_hr:
            if log is not None:
                log(f"skipped: {hr}: smaller than the {min_hr}px patch")
            continue
        out.append(pair)
    if not out:
        raise DatasetError(f"none of the {len(pairs)} LR/HR pairs can be used (see the skipped: lines)")
    return {scale: out}


def load_pairs(paths: Sequence[Path], scales: Sequence[int], colorspace: str, upsampled: bool,
               min_hr: int, log=None, cache: bool = True,
               resize_factors: Sequence[float] = ()) -> dict[int, list[Pair]]:
    """Read every image once and prepare it for every scale, and for every resize factor (scale
    augmentation; empty = the originals only); images (or resized versions) smaller than the patch
    are skipped, and so are files that cannot be read (one ``log`` line each, naming the file)."""
    factors = tuple(resize_factors) or (1.0,)
    out: dict[int, list[Pair]] = {s: [] for s in scales}
    skipped = 0
    unreadable: list[str] = []
    cache_dir = _cache_dir() if cache else None
    for i, path in enumerate(paths):
        try:
            side = _short_side(path)
            src = _Source(path)
            prepared = []
            for factor in factors:
                if int(side * factor) < min_hr:  # imresize's output side is ceil(side * factor) >= this
                    skipped += 1
                    continue
                prepared.extend((s, cached_pair(src, s, colorspace, upsampled, cache_dir, factor)) for s in scales)
        except DatasetError as exc:  # one bad file does not end the run; the log names it
            unreadable.append(exc.message)
            if log is not None:
                log(f"skipped: {exc.message}")
            continue
        for s, pair in prepared:
            out[s].append(pair)
        if log is not None and (i + 1) % 50 == 0:
            log(f"prepared {i + 1}/{len(paths)} training images")
    if unreadable and len(unreadable) == len(paths):
        raise DatasetError(f"no training image could be read ({len(paths)} tried; the first: {unreadable[0]})")
    if not out[scales[0]]:
        raise DatasetError(f"no training image is at least {min_hr}x{min_hr} pixels",
                           hint="use a smaller --patch-size or larger images")
    if skipped and log is not None:
        what = "image(s)" if factors == (1.0,) else "resized version(s)"
        log(f"skipped {skipped} {what} smaller than the {min_hr}px patch")
    return out
