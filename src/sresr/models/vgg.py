"""VGG19's ``features`` (16 plain 3x3 convolutions, ReLUs and max pools) for perceptual losses,
without torchvision.

The module has torchvision's layout (``features.N.weight`` / ``features.N.bias`` at the same
indices), so torchvision's published ImageNet file, ``vgg19-dcbb9e9d.pth``, loads into it as is
(its ``classifier.*`` tensors are not needed and dropped). :func:`vgg19_state` finds those weights:

- ``""``: the published file (:data:`VGG19_URL`), downloaded once through sresr's downloader,
  verified, cut to the ``features`` tensors and kept in the weights cache as a small safetensors
  file (``weights/vgg/vgg19-dcbb9e9d-features.safetensors``; the 548 MB download is removed);
- an http(s) URL: the same, for a mirror or another copy;
- a local ``.pth`` / ``.safetensors`` file with those keys (``loss.vgg_weights``).

Verification follows the torch.hub convention of torchvision's file names: the hex digits after
the last ``-`` of the name are the start of the file's sha256 (``dcbb9e9d`` for VGG19), checked
before the file is kept; a download whose name carries no such digits is kept only once it loads.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import torch
from torch import nn

from ..errors import WeightsError

#: torchvision's ImageNet VGG19 (IMAGENET1K_V1); the name carries the start of its sha256
VGG19_URL = "https://download.pytorch.org/models/vgg19-dcbb9e9d.pth"
VGG19_LICENSE = "CC-BY-4.0 (torchvision model weights; the VGG authors' weights are CC-BY)"
#: ImageNet normalisation the weights expect (RGB in [0, 1])
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

#: convolutions per block; a 2x2 max pool follows each block
_BLOCKS = (2, 2, 4, 4, 4)


def _layer_indices() -> dict[str, int]:
    """``conv{block}_{n}`` -> its index in ``features`` (its ReLU is the index + 1)."""
    out, i = {}, 0
    for block, n in enumerate(_BLOCKS, start=1):
        for c in range(1, n + 1):
            out[f"conv{block}_{c}"] = i
            i += 2
        i += 1  # the max pool
    return out


LAYERS: dict[str, int] = _layer_indices()


class VGG19Features(nn.Module):
    """``features`` of torchvision's ``vgg19()``, up to (and including) index ``end - 1``."""

    def __init__(self, end: int | None = None):
        super().__init__()
        layers: list[nn.Module] = []
        channels = 3
        for block, n in enumerate(_BLOCKS):
            width = 64 * 2 ** min(block, 3)
            for _ in range(n):
                layers += [nn.Conv2d(channels, width, 3, padding=1), nn.ReLU(inplace=True)]
                channels = width
            layers.append(nn.MaxPool2d(2, 2))
        self.features = nn.Sequential(*layers[: end if end is not None else len(layers)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)


def features_up_to(layer: str, before_activation: bool) -> int:
    """How many modules of ``features`` compute ``layer`` (``conv5_4``), before or after its ReLU."""
    if layer not in LAYERS:
        from ..errors import UsageError

        raise UsageError(f"unknown VGG19 layer '{layer}'", hint="layers: " + ", ".join(LAYERS))
    return LAYERS[layer] + (1 if before_activation else 2)


def features_state(state: Mapping[str, Any], what: str) -> dict[str, torch.Tensor]:
    """The ``features.*`` tensors of a VGG19 state dict, checked against the layout."""
    from ._layouts import unwrap_state_dict

    flat = unwrap_state_dict(dict(state))
    feats = {k: v for k, v in flat.items() if k.startswith("features.")}
    expected = VGG19Features().state_dict()
    missing = [k for k in expected if k not in feats]
    wrong = [k for k in expected if k in feats and tuple(feats[k].shape) != tuple(expected[k].shape)]
    if missing or wrong:
        detail = f"missing {', '.join(missing[:3])}" if missing else f"wrong shape: {', '.join(wrong[:3])}"
        raise WeightsError(f"{what} is not a torchvision VGG19 state dict ({detail})",
                           hint=f"give torchvision's vgg19 file ({VGG19_URL.rsplit('/', 1)[-1]}) or leave "
                           "loss.vgg_weights empty to download it")
    return {k: feats[k].float().contiguous() for k in expected}


def vgg19_state(source: str | Path = "", progress: bool = True) -> dict[str, torch.Tensor]:
    """VGG19 ``features`` weights from ``source`` ("": the published file; a URL; a local file)."""
    text = str(source)
    if not text:
        text = VGG19_URL
    if text.lower().startswith(("http://", "https://")):
        return _from_url(text, progress)
    path = Path(text).expanduser()
    if not path.is_file():
        raise WeightsError(f"VGG19 weights file not found: {path}",
                           hint="give a local vgg19 .pth/.safetensors file, a URL, or leave loss.vgg_weights empty")
    from ._layouts import read_checkpoint

    return features_state(read_checkpoint(path), str(path))


def _from_url(url: str, progress: bool) -> dict[str, torch.Tensor]:
    """Download once, verify, keep the ``features`` tensors as a cached safetensors file."""
    from .. import cache
    from ..download import download, sha256_file
    from ..weights import _read_checked, content_digest

    name = url.split("?", 1)[0].rstrip("/").rsplit("/", 1)[-1] or "vgg19.pth"
    stem = name.rsplit(".", 1)[0]
    folder = cache.weights_dir() / "vgg"
    kept = folder / f"{stem}-features.safetensors"
    if kept.is_file():
        try:
            state, _ = _read_checked(kept, f"the VGG19 features of {url}")
            return features_state(state, str(kept))
        except WeightsError:
            kept.unlink(missing_ok=True)  # damaged: fetched again below
    from ..download import hash_prefix

    prefix = hash_prefix(name)

    def verify(path: Path) -> None:
        if prefix is not None:
            got = sha256_file(path)
            if not got.startswith(prefix):
                raise WeightsError(f"{url} failed verification: its name promises a sha256 starting with {prefix}, "
                                   f"the file's is {got}")
        from ._layouts import read_checkpoint

        features_state(read_checkpoint(path), url)

    raw = download(url, folder / name, progress=progress, what="weights", validate=verify,
                   offline_hint=f"download {url} elsewhere and set loss.vgg_weights to the file (or unset SRESR_OFFLINE)")
    from ._layouts import read_checkpoint

    state = features_state(read_checkpoint(raw), url)
    meta = {"sresr.source": url, "sresr.source_sha256": sha256_file(raw), "sresr.license": VGG19_LICENSE}
    meta["sresr.digest"] = content_digest(state, meta)
    from safetensors.torch import save

    from ..atomic import atomic_write_bytes

    with cache.writing("the VGG19 features", folder, WeightsError):
        atomic_write_bytes(kept, save(state, metadata=meta))
    raw.unlink(missing_ok=True)  # 548 MB, of which the loss needs the 80 MB kept
    return state
