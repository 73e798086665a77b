"""A tiny third-party model distribution, written into a temp dir for weights tests.

Two architectures registered through real entry points (a ``.dist-info`` folder):

- ``tinysr``: RGB, conv-PReLU-conv + pixel shuffle, keys ``net.{0,1,2}.*``; a bundled x2
  variant (``tinysr.x2``) and, when ``TINYSR_URL`` (and ``TINYSR_SHA256``, unless the URL's file
  name carries a sha256 prefix) is set in the environment, a published x4 variant ``tinysr.x4``
  (alias ``TinySR_x4plus``) downloaded from that URL; with ``TINYSR_WDN_URL`` also its denoising
  companion ``tinysr.x4-wdn`` (no hash published: trusted on first download).
- ``tinyy``: Y channel, conv-conv + pixel shuffle, keys ``head.*``/``tail.*``.

Each has a published-layout loader ``load_state_dict(sd) -> (module, scale, kwargs)`` that reads
``nf`` and the scale from tensor shapes and loads strictly.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

INIT = '''
import os
from sresr.spec import ModelSpec, WeightsSpec

_weights = [WeightsSpec(tag="x2", scale=2, file="tiny_x2.safetensors", package="tinysr_plugin",
                        kwargs={"nf": 8}, default=True, license="CC0")]
if os.environ.get("TINYSR_URL"):  # without TINYSR_SHA256: a torch.hub-style name carries a sha256 prefix
    _weights.append(WeightsSpec(tag="x4", scale=4, url=os.environ["TINYSR_URL"],
                                sha256=os.environ.get("TINYSR_SHA256") or None, kwargs={"nf": 6}, default=True,
                                aliases=("TinySR_x4plus",),
                                denoise_companion="x4-wdn" if os.environ.get("TINYSR_WDN_URL") else ""))
if os.environ.get("TINYSR_WDN_URL"):  # no hash published: trusted on first download, then pinned
    _weights.append(WeightsSpec(tag="x4-wdn", scale=4, url=os.environ["TINYSR_WDN_URL"], kwargs={"nf": 6},
                                trust_first_download=True))

SPEC = ModelSpec(
    name="tinysr",
    factory="tinysr_plugin.arch:TinySR",
    scales=(2, 3, 4),
    description="test model",
    weights=tuple(_weights),
    loader="tinysr_plugin.arch:load_state_dict",
)

YSPEC = ModelSpec(
    name="tinyy",
    factory="tinysr_plugin.arch:TinyY",
    scales=(2, 3, 4),
    colorspace="y",
    loader="tinysr_plugin.arch:load_tinyy",
)
'''

ARCH = '''
import torch
from torch import nn
from torch.nn import functional as F
from sresr.errors import LayoutError


class TinySR(nn.Module):
    def __init__(self, scale=2, nf=8):
        super().__init__()
        self.scale = scale
        self.net = nn.Sequential(
            nn.Conv2d(3, nf, 3, padding=1), nn.PReLU(nf), nn.Conv2d(nf, 3 * scale * scale, 3, padding=1)
        )

    def forward(self, x):
        return F.pixel_shuffle(self.net(x), self.scale)


class TinyY(nn.Module):
    def __init__(self, scale=2, nf=4):
        super().__init__()
        self.scale = scale
        self.head = nn.Conv2d(1, nf, 3, padding=1)
        self.tail = nn.Conv2d(nf, scale * scale, 3, padding=1)

    def forward(self, x):
        return F.pixel_shuffle(self.tail(torch.relu(self.head(x))), self.scale)


def _check(sd, keys, name):
    if set(sd) != set(keys):
        missing = sorted(set(keys) - set(sd))[:3]
        raise LayoutError(f"not a {name} layout (missing {missing})")


def load_state_dict(sd):
    _check(sd, ["net.0.weight", "net.0.bias", "net.1.weight", "net.2.weight", "net.2.bias"], "TinySR")
    nf = sd["net.0.weight"].shape[0]
    scale = int(round((sd["net.2.weight"].shape[0] / 3) ** 0.5))
    module = TinySR(scale, nf)
    module.load_state_dict(sd, strict=True)
    return module, scale, {"nf": nf}


def load_tinyy(sd):
    _check(sd, ["head.weight", "head.bias", "tail.weight", "tail.bias"], "TinyY")
    nf = sd["head.weight"].shape[0]
    scale = int(round(sd["tail.weight"].shape[0] ** 0.5))
    module = TinyY(scale, nf)
    module.load_state_dict(sd, strict=True)
    return module, scale, {"nf": nf}
'''


def make_plugin(root: Path) -> Path:
    """Write the distribution under ``root`` (put ``root`` on sys.path / PYTHONPATH)."""
    from safetensors.torch import save_file

    pkg = root / "tinysr_plugin"
    pkg.mkdir(parents=True, exist_ok=True)
    (pkg / "__init__.py").write_text(textwrap.dedent(INIT))
    (pkg / "arch.py").write_text(textwrap.dedent(ARCH))
    dist = root / "tinysr_plugin-0.1.dist-info"
    dist.mkdir(exist_ok=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: tinysr-plugin\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text(
        "[sresr.models]\ntinysr = tinysr_plugin:SPEC\ntinyy = tinysr_plugin:YSPEC\n"
    )
    save_file(tinysr_state(2, 8, seed=1), str(pkg / "tiny_x2.safetensors"))
    return root


def tinysr_state(scale: int, nf: int, seed: int = 0) -> dict:
    """A TinySR state dict with exactly the layout's key names and shapes."""
    import torch

    g = torch.Generator().manual_seed(seed)
    return {
        "net.0.weight": torch.randn(nf, 3, 3, 3, generator=g) * 0.2,
        "net.0.bias": torch.randn(nf, generator=g) * 0.1,
        "net.1.weight": torch.rand(nf, generator=g) * 0.3,
        "net.2.weight": torch.randn(3 * scale * scale, nf, 3, 3, generator=g) * 0.2,
        "net.2.bias": torch.randn(3 * scale * scale, generator=g) * 0.1,
    }


def tinyy_state(scale: int, nf: int, seed: int = 0) -> dict:
    import torch

    g = torch.Generator().manual_seed(seed)
    return {
        "head.weight": torch.randn(nf, 1, 3, 3, generator=g) * 0.2,
        "head.bias": torch.randn(nf, generator=g) * 0.1,
        "tail.weight": torch.randn(scale * scale, nf, 3, 3, generator=g) * 0.2,
        "tail.bias": torch.randn(scale * scale, generator=g) * 0.1,
    }


def tinysr_reference(state: dict, x):
    """TinySR forward written out with torch.nn.functional, independent of the plugin module."""
    import torch.nn.functional as F

    scale = int(round((state["net.2.weight"].shape[0] / 3) ** 0.5))
    h = F.conv2d(x, state["net.0.weight"], state["net.0.bias"], padding=1)
    h = F.prelu(h, state["net.1.weight"])
    h = F.conv2d(h, state["net.2.weight"], state["net.2.bias"], padding=1)
    return F.pixel_shuffle(h, scale)


def forget_plugin() -> None:
    """Drop the imported plugin and the registry's cache, so the next lookup reads the spec anew
    (after the environment that the spec reads, or the plugin's files, changed)."""
    import sys

    from sresr import registry

    for name in [m for m in sys.modules if m == "tinysr_plugin" or m.startswith("tinysr_plugin.")]:
        del sys.modules[name]
    registry.refresh()
