"""The plugin contract: :class:`ModelSpec` and :class:`WeightsSpec`.

This module imports nothing heavy (no torch), so listing models stays instant. A spec is plain
data plus a *factory*: a callable, or a ``"module:attr"`` string that is imported only when the
model is built. ``factory(scale=s, **kwargs)`` returns a ``torch.nn.Module`` mapping float NCHW
input in [0, 1] to an output ``s`` times larger (see ``input`` for pre-upsampling networks).
"""

from __future__ import annotations

import importlib
import re
from dataclasses import dataclass, field
from typing import Any, Callable, Literal, Mapping

Colorspace = Literal["rgb", "y"]
InputKind = Literal["lr", "upsampled"]

_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_NAME = re.compile(r"^[a-z0-9][a-z0-9_\-]*$")
_TAG = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_\-]*$")


@dataclass(frozen=True)
class Geometry:
    """What the tiler needs to know about one built configuration (scale and options) of a model.

    receptive_field: radius in input pixels that one output pixel depends on (the default tile
      padding); 0 means unknown (the engine then pads generously).
    size_multiple: input height and width must be multiples of this (the engine pads, and tiles
      start on this grid: for window-attention networks, the window size).
    exact: whether a tile padded by ``receptive_field`` reproduces the whole-image output up to
      float rounding. False for networks with a global operation (channel attention pools over the
      whole image): the tiled output then approximates the whole-image one (the family documents
      the measured bound).
    any_size: the network itself takes any height and width and pads inside as its authors'
      code does (DAT zero-pads after its qkv projection): an image run whole in one window is then
      given to it unpadded, which reproduces the authors' output at the bottom and right edges
      (the engine's own padding to ``size_multiple`` is for tiles on the window grid).
    """

    receptive_field: int
    size_multiple: int = 1
    exact: bool = True
    any_size: bool = False


@dataclass(frozen=True)
class WeightsSpec:
    """One named set of weights for a model, addressed as ``MODEL.TAG`` (``fsrcnn.x2``).

    Exactly one source: ``file`` (bundled inside the distribution, a path relative to the
    package given by ``package``) or ``url`` (downloaded on first use, verified with ``sha256``;
    where the publisher gives only the first hex digits in the file name, as torch.hub-style
    names do (``edsr_x4-4f62e9ef.pt``), ``sha256`` is left out: the download is checked against
    that prefix and its full sha256 pinned in the cache on first download; where no hash is
    published at all, ``trust_first_download=True`` says so: the first download must load as this
    architecture and its sha256 is pinned, labelled as such in ``sresr models info``).

    ``denoise_companion``: the tag of a variant of the same network trained to remove more noise
    (Real-ESRGAN's ``realesr-general-wdn-x4v3`` for ``realesr-general-x4v3``): ``--denoise-strength
    D`` runs ``D * this + (1 - D) * companion``, tensor by tensor, as Real-ESRGAN does.
    """

    tag: str
    scale: int
    url: str | None = None
    sha256: str | None = None
    file: str | None = None
    package: str = "sresr.weights_data"
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    colorspace: Colorspace | None = None
    default: bool = False
    license: str = ""
    description: str = ""
    metrics: Mapping[str, float] = field(default_factory=dict)
    recipe: str = ""
    #: the names its publisher gives it (``RealESRGAN_x4plus``): they work wherever ``MODEL.TAG``
    #: does, matched without regard to case (:func:`sresr.registry.parse_ref`)
    aliases: tuple[str, ...] = ()
    trust_first_download: bool = False
    denoise_companion: str = ""


@dataclass(frozen=True)
class ModelSpec:
    """Everything sresr needs to list, build, tile and benchmark a model.

    Fields:
      name: registry name, equal to the entry-point name (lower case, digits, ``-``, ``_``).
      factory: callable or ``"module:attr"``; called as ``factory(scale=s, **kwargs)``.
      scales: the integer scales the factory accepts.
      colorspace: ``"rgb"`` (3 channels in and out) or ``"y"`` (BT.601 luma, 1 channel; the
        engine upscales chroma with bicubic).
      input: ``"lr"`` (the module takes the low-resolution image) or ``"upsampled"`` (SRCNN/VDSR
        style: the module takes the image already upsampled by MATLAB bicubic and returns the
        same size; the engine does the upsampling).
      size_multiple: input height and width must be multiples of this (the engine pads).
      receptive_field: radius in input pixels that one output pixel depends on; the default
        tile padding. 0 means unknown (the engine then pads generously).
      supports_fp16 / supports_bf16: whether half precision gives sane output on GPU.
      weights: named weight variants.
      loader: optional callable or ``"module:attr"``: ``loader(state_dict)`` recognises the
        published key layouts of this architecture and returns ``(module, scale, kwargs)`` with
        the weights loaded strictly, where ``factory(scale=scale, **kwargs)`` rebuilds it.
      num_params: parameters of ``factory(scale=s)`` per scale, for listings without torch.
      paper_metrics: published numbers, keys ``"DATASET/xS/psnr"`` or ``".../ssim"``.
      geometry: optional callable or ``"module:attr"``: ``geometry(scale=s, **kwargs)`` returns the
        :class:`Geometry` of that exact configuration (``receptive_field``/``size_multiple`` above
        are then the worst case over scales and options, for listings).
      weights_hint: for a model that declares no ``weights``: where its weights come from. When
        set, asking for the model without ``--weights`` is an error showing this text (a built-in
        family that is useless untrained); when empty, the factory's module runs as built (a
        plugin whose factory loads its own weights).
    """

    name: str
    factory: Callable[..., Any] | str
    scales: tuple[int, ...]
    description: str = ""
    colorspace: Colorspace = "rgb"
    input: InputKind = "lr"
    size_multiple: int = 1
    receptive_field: int = 0
    supports_fp16: bool = True
    supports_bf16: bool = True
    weights: tuple[WeightsSpec, ...] = ()
    loader: Callable[..., Any] | str | None = None
    num_params: Mapping[int, int] = field(default_factory=dict)
    paper: str = ""
    license: str = ""
    paper_metrics: Mapping[str, float] = field(default_factory=dict)
    weights_hint: str = ""
    geometry: Callable[..., Geometry] | str | None = None

    # -- helpers -------------------------------------------------------------------------
    def build(self, scale: int | None = None, **kwargs: Any) -> Any:
        """Call the factory. ``scale`` defaults to the largest supported scale."""
        scale = self.default_scale() if scale is None else int(scale)
        if scale not in self.scales:
            from .errors import UsageError

            raise UsageError(
                f"model '{self.name}' does not support scale {scale}",
                hint=f"supported scales: {', '.join(str(s) for s in self.scales)}",
            )
        factory = resolve(self.factory)
        _check_kwargs(self.name, factory, kwargs)
        try:
            return factory(scale=scale, **kwargs)
        except (ValueError, TypeError) as exc:  # a factory refusing its arguments (blocks=-1, ...)
            from .errors import UsageError

            raise UsageError(f"model '{self.name}' cannot be built with {_kwargs_text(kwargs)}: {exc}",
                             hint=f"see 'sresr models info {self.name}'") from None

    def geometry_for(self, scale: int, kwargs: Mapping[str, Any]) -> Geometry:
        """The :class:`Geometry` of ``factory(scale=scale, **kwargs)``: the ``geometry`` hook's
        answer when the spec declares one, else the spec's worst-case fields."""
        if self.geometry is None:
            return Geometry(int(self.receptive_field), max(1, int(self.size_multiple)))
        geo = resolve(self.geometry)(scale=int(scale), **dict(kwargs))
        if not isinstance(geo, Geometry) or geo.receptive_field < 0 or geo.size_multiple < 1:
            raise TypeError(f"model '{self.name}': geometry hook returned {geo!r}, expected a sresr.spec.Geometry")
        return geo

    def default_scale(self) -> int:
        return 4 if 4 in self.scales else max(self.scales)

    def variant(self, tag: str) -> WeightsSpec:
        for w in self.weights:
            if w.tag == tag:
                return w
        from .errors import UsageError

        tags = ", ".join(f"{self.name}.{w.tag}" for w in self.weights) or "none"
        raise UsageError(f"model '{self.name}' has no weights '{tag}'", hint=f"available: {tags}")

    def reference_metrics(self, tag: str | None = None) -> Mapping[str, float]:
        """The published numbers a run is compared with (keys ``set5/x4/psnr``): for the weights of a
        published variant, that variant's own (its authors' numbers for those weights; none for
        GAN weights, which are judged by eye or LPIPS), else the architecture's paper numbers (for
        weights sresr trained, bundled or your own)."""
        for w in self.weights:
            if tag is not None and w.tag == tag and w.url:
                return w.metrics
        return self.paper_metrics

    def default_weights(self, scale: int) -> WeightsSpec | None:
        """The variant used when the user names the model alone for ``scale``."""
        candidates = [w for w in self.weights if w.scale == scale]
        for w in candidates:
            if w.default:
                return w
        return candidates[0] if candidates else None

    def weights_for(self, scale: int | None) -> WeightsSpec | None:
        """The one rule for what ``MODEL`` alone means: the default variant for ``scale``; with no
        scale, the default variant for the default scale, else the model's first default variant.
        A scale no variant is for gets none, even for a pre-upsampling network that could run
        other weights there (SRCNN's x3 at x2): naming ``MODEL.TAG`` says so explicitly, and
        bench/eval then do not hold x3 weights against the x2 paper numbers."""
        variant = self.default_weights(scale if scale is not None else self.default_scale())
        if variant is None and self.weights and scale is None:
            variant = next((w for w in self.weights if w.default), self.weights[0])
        return variant

    def colorspace_for(self, weights: WeightsSpec | None) -> Colorspace:
        return weights.colorspace if weights is not None and weights.colorspace else self.colorspace


def _kwargs_text(kwargs: Mapping[str, Any]) -> str:
    return ", ".join(f"{k}={v!r}" for k, v in kwargs.items()) or "its defaults"


def _check_kwargs(name: str, factory: Any, kwargs: Mapping[str, Any]) -> None:
    """A usage error naming an argument the factory does not take, and the ones it does."""
    import inspect

    try:
        params = inspect.signature(factory).parameters.values()
    except (TypeError, ValueError):
        return
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
        return
    accepted = [p.name for p in params if p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD,
                                                      inspect.Parameter.KEYWORD_ONLY) and p.name != "scale"]
    unknown = [k for k in kwargs if k not in accepted]
    if unknown:
        from .errors import UsageError

        raise UsageError(f"model '{name}' has no option {', '.join(repr(k) for k in unknown)}",
                         hint=f"its options: {', '.join(accepted) or 'none'}")


def resolve(obj: Any) -> Any:
    """Import a ``"module:attr"`` string; return anything else unchanged."""
    if isinstance(obj, str):
        module_name, _, attr = obj.partition(":")
        if not module_name or not attr:
            raise ValueError(f"expected 'module:attr', got {obj!r}")
        value: Any = importlib.import_module(module_name)
        for part in attr.split("."):
            value = getattr(value, part)
        return value
    return obj


def validate_spec(spec: Any, name: str | None = None) -> list[str]:
    """Problems with a spec as a list of sentences (empty when it is valid)."""
    if not isinstance(spec, ModelSpec):
        return [f"expected a sresr.ModelSpec, got {type(spec).__module__}.{type(spec).__qualname__}"]
    problems: list[str] = []
    if name is not None and spec.name != name:
        problems.append(f"spec.name is '{spec.name}' but the entry point is named '{name}'")
    if not isinstance(spec.name, str) or not _NAME.fullmatch(spec.name):
        problems.append(f"invalid name {spec.name!r}: use lower case letters, digits, '-' and '_'")
    if not isinstance(spec.factory, str) and not callable(spec.factory):
        problems.append("factory must be a callable or a 'module:attr' string")
    if isinstance(spec.factory, str) and ":" not in spec.factory:
        problems.append(f"factory string {spec.factory!r} must look like 'module:attr'")
    if not spec.scales or not all(isinstance(s, int) and s >= 1 for s in spec.scales):
        problems.append("scales must be a non-empty tuple of integers >= 1")
    if spec.colorspace not in ("rgb", "y"):
        problems.append(f"colorspace must be 'rgb' or 'y', got {spec.colorspace!r}")
    if spec.input not in ("lr", "upsampled"):
        problems.append(f"input must be 'lr' or 'upsampled', got {spec.input!r}")
    if not isinstance(spec.size_multiple, int) or spec.size_multiple < 1:
        problems.append("size_multiple must be an integer >= 1")
    if not isinstance(spec.receptive_field, int) or spec.receptive_field < 0:
        problems.append("receptive_field must be an integer >= 0")
    if spec.geometry is not None and not isinstance(spec.geometry, str) and not callable(spec.geometry):
        problems.append("geometry must be a callable or a 'module:attr' string")
    if not isinstance(spec.weights_hint, str):
        problems.append("weights_hint must be a string")
    tags = [w.tag for w in spec.weights]
    if len(tags) != len(set(tags)):
        problems.append(f"duplicate weights tags: {sorted(t for t in set(tags) if tags.count(t) > 1)}")
    for w in spec.weights:
        where = f"weights '{w.tag}'"
        if not isinstance(w, WeightsSpec):
            problems.append(f"{where}: expected a sresr.WeightsSpec")
            continue
        if not isinstance(w.tag, str) or not _TAG.fullmatch(w.tag):
            problems.append(f"{where}: invalid tag")
        if w.scale not in spec.scales:
            problems.append(f"{where}: scale {w.scale} is not among the model's scales")
        if bool(w.url) == bool(w.file):
            problems.append(f"{where}: give exactly one of url (download) or file (bundled)")
        if w.url and not (isinstance(w.sha256, str) and _SHA256.fullmatch(w.sha256)):
            from .download import hash_prefix

            if w.sha256 is not None or (hash_prefix(w.url) is None and not w.trust_first_download):
                problems.append(f"{where}: a url needs a sha256 of 64 lower-case hex digits, or a file name "
                                "carrying its first hex digits (torch.hub's NAME-1a2b3c4d.pth), or "
                                "trust_first_download=True where no hash is published")
        if w.denoise_companion:
            mate = next((m for m in spec.weights if m.tag == w.denoise_companion), None)
            if mate is None or mate.scale != w.scale or dict(mate.kwargs) != dict(w.kwargs):
                problems.append(f"{where}: denoise_companion '{w.denoise_companion}' must be a variant of the same "
                                "scale and options")
        if w.colorspace not in (None, "rgb", "y"):
            problems.append(f"{where}: colorspace must be 'rgb' or 'y'")
        if not isinstance(w.aliases, tuple) or not all(isinstance(a, str) and _TAG.fullmatch(a) for a in w.aliases):
            problems.append(f"{where}: aliases must be a tuple of names (letters, digits, '-', '_')")
    for scale in spec.scales:
        if len([w for w in spec.weights if w.scale == scale and w.default]) > 1:
            problems.append(f"more than one default weights for scale {scale}")
    return problems
