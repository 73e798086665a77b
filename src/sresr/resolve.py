"""The one resolver: what ``-m MODEL -w WEIGHTS -s SCALE`` names, and the model it loads.

Every front door (``sresr upscale``, ``eval``, ``bench``, ``export``, ``train --init`` and the
library's :func:`load_model`) goes through :func:`resolve` (names -> a :class:`Request`, without
building anything) and :func:`load` (a request and a scale -> a :class:`LoadedModel`).

The rules, in order; the first that applies wins:

=========  ================================================  =============================================
rule       the reference                                     what it names
=========  ================================================  =============================================
imported   ``-m NAME`` or ``-w NAME`` made by                that cached file (its metadata names the
           ``sresr weights import`` (before any alias)       architecture, scale and options)
file       ``-w PATH``, an existing file                     that file (.safetensors as is; a checkpoint
                                                             converted once, by its model's layout loader)
url        ``-w http(s)://...``                              downloaded once, kept when it loads, converted
variant    ``MODEL.TAG`` or a published name                 that declared variant: bundled, or pulled
           (``RealESRGAN_x4plus``, any case), in -m or -w    and verified on first use
default    ``MODEL`` (with ``-s S``)                          MODEL's default variant for S; without S, the
                                                             one at its default scale, else its first
                                                             default variant
factory    ``MODEL`` declaring no weights                    the factory's module as built (a plugin that
                                                             loads its own), or the spec's ``weights_hint``
                                                             as an error
=========  ================================================  =============================================

A registered model name always wins over an alias (:func:`sresr.registry.parse_ref` is the one
place a name is split into ``MODEL`` and ``TAG``). With ``pretrained=False`` the weights are not
read: a ``MODEL.TAG`` given as ``-w`` still picks that variant's architecture and options, and a
bare ``MODEL`` builds its default variant's network (random-init and pretrained runs of one name are
the same network; pass the factory's options, e.g. ``variant="paper"``, to build another).

Invariants (tests/test_resolve.py): resolving does not build a network and reads each weights file
at most once; a weights file is never loaded at a scale it was not made for, except by a
pre-upsampling model (``input="upsampled"``), which runs at any scale of its spec; and the
:class:`LoadedModel` carries its runtime facts (geometry from the spec's hook, channels, input
kind, precision support), computed once when it is built.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Mapping

from .errors import UsageError, WeightsError
from .registry import get_spec, parse_ref
from .spec import Colorspace, Geometry, ModelSpec, WeightsSpec

__all__ = ["Request", "LoadedModel", "resolve", "load", "load_model", "create_model"]

Rule = Literal["imported", "file", "url", "variant", "default", "factory"]


@dataclass(frozen=True)
class Request:
    """What a (model, weights) reference names, before anything is built.

    ``variant`` is set for the ``variant`` rule; ``file`` for ``imported``/``file``/``url``; for
    ``default`` the variant is chosen by :func:`load` once the scale is known. ``scales`` are the
    scales this request can be built at (what ``-s`` may choose from)."""

    spec: ModelSpec
    rule: Rule
    scales: tuple[int, ...]
    variant: WeightsSpec | None = None
    file: Any = None  # sresr.weights.WeightsFile

    @property
    def ident(self) -> str:
        if self.file is not None:
            return self.file.id
        if self.variant is not None:
            return f"{self.spec.name}.{self.variant.tag}"
        return self.spec.name


@dataclass
class LoadedModel:
    """A ready-to-run network plus the runtime facts the engine, eval, bench and export need.

    ``geometry`` (receptive field, size multiple, whether tiling is exact) is computed once from
    the spec's ``geometry`` hook for this scale and these options when not given."""

    module: Any  # torch.nn.Module, in eval mode, on the CPU
    spec: ModelSpec
    scale: int
    colorspace: Colorspace
    weights_id: str  # "fsrcnn.x2", an imported name, a file path, a URL, or "random-init"
    kwargs: dict[str, Any] = field(default_factory=dict)
    weights_sha256: str = ""  # of the .safetensors file loaded ("" when none was)
    geometry: Geometry | None = None

    def __post_init__(self) -> None:
        if self.geometry is None:
            self.geometry = self.spec.geometry_for(self.scale, self.kwargs)

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def in_channels(self) -> int:
        return 1 if self.colorspace == "y" else 3

    @property
    def reference_metrics(self) -> Mapping[str, float]:
        """The published numbers these weights are compared with (:meth:`ModelSpec.reference_metrics`)."""
        model, tag = parse_ref(self.weights_id)
        return self.spec.reference_metrics(tag if model == self.spec.name and tag else None)


def _check_scale(scale: int | None) -> None:
    if scale is not None and (isinstance(scale, bool) or not isinstance(scale, int) or scale < 1):
        raise UsageError(f"scale must be a whole number >= 1, got {scale!r}")


def _spec_scales(spec: ModelSpec, weights_scale: int) -> tuple[int, ...]:
    return tuple(spec.scales) if spec.input == "upsampled" else (weights_scale,)


def resolve(model: str | None, weights: str | Path | None = None, scale: int | None = None,
            pretrained: bool = True) -> Request:
    """Apply the rules of the module docstring. ``scale`` (a whole scale or None) is needed only
    to read a foreign checkpoint whose scale its tensors do not tell; it does not pick a variant
    (that is :func:`load`'s job). Raises :class:`UsageError`/:class:`WeightsError` naming the input."""
    from . import weights as store

    _check_scale(scale)
    if model is not None and weights is None and model not in _registered():
        imported = store.find_imported(model)
        if imported is not None and pretrained:
            model, weights = None, model  # rule "imported" via -m NAME
        elif imported is not None:  # its network without its tensors: the architecture its header names
            meta = store.read_metadata(imported)
            model = meta.get(store.META_PREFIX + "model") or model
    base = parse_ref(model)[0] if model is not None else None
    variant_ref = _as_variant(weights) if weights is not None else None
    if variant_ref is not None:  # -w MODEL.TAG or a published name: the same request as -m would make
        spec, variant = variant_ref
        _same_model(base, spec, f"{spec.name}.{variant.tag}")
        return Request(spec, "variant", _spec_scales(spec, variant.scale), variant=variant)
    if weights is not None and pretrained:
        text = str(weights)  # the rules in resolve_weights' order: URL, imported name, path
        rule: Rule = "url" if store.is_url(text) else "imported" if (
            not isinstance(weights, Path) and store.find_imported(text) is not None) else "file"
        wf = store.resolve_weights(weights, model=base, scale=scale)
        spec = get_spec(wf.model)
        _same_model(base, spec, wf.id)
        return Request(spec, rule, _spec_scales(spec, wf.scale), file=wf)
    if model is None:
        raise UsageError("no model given", hint="pass --model NAME or --weights FILE")
    name, tag = parse_ref(model)
    spec = get_spec(name)
    if tag:
        variant = spec.variant(tag)
        return Request(spec, "variant", _spec_scales(spec, variant.scale), variant=variant)
    if spec.input == "upsampled" or not spec.weights:
        return Request(spec, "default" if spec.weights else "factory", tuple(spec.scales))
    return Request(spec, "default", tuple(sorted({w.scale for w in spec.weights})))


def _same_model(base: str | None, spec: ModelSpec, what: str) -> None:
    """--model and the weights must name one architecture (either may be left out)."""
    if base is not None and get_spec(base).name != spec.name:
        raise WeightsError(f"weights {what} are for model '{spec.name}', not '{get_spec(base).name}'",
                           hint=f"use --model {spec.name}, or leave out --model")


def _as_variant(weights: str | Path) -> tuple[ModelSpec, WeightsSpec] | None:
    """``-w MODEL.TAG`` (or a published name) as (spec, variant), when it is neither a URL, an
    imported name nor an existing path (the rules before it in the table)."""
    from . import weights as store

    if isinstance(weights, Path):
        return None
    text = str(weights)
    if store.is_url(text) or store.find_imported(text) is not None or Path(text).expanduser().exists():
        return None
    if text.lower().endswith(store.CHECKPOINT_SUFFIXES + (".safetensors",)):
        return None  # a file name (missing): resolve_weights says it is not found
    name, tag = parse_ref(text)
    if not tag or name not in _registered():
        return None
    spec = get_spec(name)
    return spec, spec.variant(tag)


def _registered() -> Mapping[str, Any]:
    from .registry import entries

    return entries()


def _companion(spec: ModelSpec, variant: WeightsSpec | None, ident: str) -> WeightsSpec:
    """The ``denoise_companion`` variant of ``variant``, or a usage error naming the models that have one."""
    if variant is not None and variant.denoise_companion:
        return spec.variant(variant.denoise_companion)
    from .registry import entries

    have = [f"{n}.{w.tag}" for n, e in entries().items() if e.spec is not None for w in e.spec.weights
            if w.denoise_companion]
    raise UsageError(f"--denoise-strength needs weights with a denoising companion; {ident} has none",
                     hint=f"use it with {', '.join(have) or 'a model that declares one'}")


def load(request: Request, scale: int | None = None, pretrained: bool = True, denoise: float | None = None,
         **kwargs: Any) -> LoadedModel:
    """Build the request's network for ``scale`` (default: what its weights are for, else the
    spec's default scale) and load its weights (none when ``pretrained=False``).

    ``denoise`` (0..1, Real-ESRGAN's ``--denoise-strength``): for a variant that declares a
    ``denoise_companion``, load ``denoise * variant + (1 - denoise) * companion``; 1 is the variant
    alone."""
    from . import weights as store

    _check_scale(scale)
    if denoise is not None and (isinstance(denoise, bool) or not isinstance(denoise, (int, float))
                                or not 0.0 <= float(denoise) <= 1.0):
        raise UsageError(f"--denoise-strength must be between 0 and 1, got {denoise!r}",
                         hint="1 keeps the model as it is, 0 removes the most noise")
    spec = request.spec
    wf = request.file if pretrained else None
    if denoise is not None and request.file is not None:
        _companion(spec, None, request.ident)
    if wf is not None:
        if scale is not None and scale != wf.scale and spec.input != "upsampled":
            raise WeightsError(f"weights {wf.id} are for x{wf.scale}, not x{scale}", hint=f"use --scale {wf.scale}")
        s = scale if scale is not None else wf.scale
        build_kwargs = {**dict(wf.kwargs), **kwargs}
        module = spec.build(s, **build_kwargs)
        digest = store.load_safetensors(module, wf.path, wf.id)
        module.eval()
        return LoadedModel(module, spec, s, wf.colorspace or spec.colorspace, wf.id, build_kwargs, digest)

    variant = request.variant
    if variant is None and request.rule == "default":
        variant = spec.weights_for(scale)
    companion = _companion(spec, variant, request.ident) if denoise is not None else None
    if variant is not None and scale is not None and variant.scale != scale and spec.input != "upsampled":
        raise WeightsError(f"weights {spec.name}.{variant.tag} are for x{variant.scale}, not x{scale}",
                           hint=f"use --scale {variant.scale}, or name another variant")
    scale = scale if scale is not None else (variant.scale if variant else spec.default_scale())
    pulled = store.pull(f"{spec.name}.{variant.tag}") if pretrained and variant is not None else None
    # the file records how its tensors were built (FSRCNN's deconv_padding), as when loaded by path
    build_kwargs = {**(dict(variant.kwargs) if variant else {}), **(dict(pulled.kwargs) if pulled else {}), **kwargs}
    module = spec.build(scale, **build_kwargs)
    n_params = sum(p.numel() for p in module.parameters())
    weights_id = "random-init" if n_params else spec.name
    digest = ""
    if pretrained and n_params > 0:
        if pulled is not None and companion is not None and float(denoise) != 1.0:
            mate = store.pull(f"{spec.name}.{companion.tag}")
            state, digest = store.denoise_mix(pulled, mate, float(denoise))
            module.load_state_dict(state, strict=True)
            weights_id = f"{pulled.id} (denoise {float(denoise):g} with {mate.id})"
        elif pulled is not None:
            digest = store.load_safetensors(module, pulled.path, pulled.id)
            weights_id = pulled.id
        elif spec.weights:
            have = ", ".join(f"{spec.name}.{w.tag} (x{w.scale})" for w in spec.weights)
            raise WeightsError(f"model '{spec.name}' has no weights for x{scale}",
                               hint=f"its weights: {have}; for x{scale} pass --weights FILE")
        elif spec.weights_hint:
            raise WeightsError(f"model '{spec.name}' has no weights", hint=spec.weights_hint)
        else:
            weights_id = f"{spec.name} (factory weights)"  # the plugin's factory owns its weights
    module.eval()
    return LoadedModel(module, spec, scale, spec.colorspace_for(variant), weights_id, build_kwargs, digest)


def load_model(
    model: str | None,
    scale: int | None = None,
    weights: str | Path | None = None,
    pretrained: bool = True,
    denoise: float | None = None,
    **kwargs: Any,
) -> LoadedModel:
    """Build ``model`` for ``scale`` and load its weights: ``load(resolve(model, weights, scale), scale)``.

    ``model``: a registered ``NAME`` (its default weights for ``scale``), ``NAME.TAG``, a published
    name, a name made by ``sresr weights import``, or None when ``weights`` alone tells the
    architecture. ``weights`` overrides the variant: ``MODEL.TAG``, an imported name, a
    ``.safetensors`` / ``.pth`` / ``.pt`` / ``.ckpt`` file, or an http(s) URL. ``pretrained=False``
    leaves the network randomly initialised (for training and tests). ``denoise``: see :func:`load`.
    See the module docstring.
    """
    return load(resolve(model, weights, scale, pretrained=pretrained), scale, pretrained=pretrained,
                denoise=denoise, **kwargs)


def create_model(model: str, scale: int | None = None, pretrained: bool = True, **kwargs: Any) -> Any:
    """The ``nn.Module`` alone (see :func:`load_model`)."""
    return load_model(model, scale, pretrained=pretrained, **kwargs).module
