"""Weights: build a registered model and load its weights.

(First cut: the interface other modules build on. Cache, downloads, published-checkpoint
import and the ``sresr weights`` command are added on top of it.)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import WeightsError
from .registry import resolve_name
from .spec import Colorspace, ModelSpec, WeightsSpec


@dataclass
class LoadedModel:
    """A ready-to-run network plus the runtime facts the engine, eval and bench need."""

    module: Any  # torch.nn.Module, in eval mode, on the CPU
    spec: ModelSpec
    scale: int
    colorspace: Colorspace
    weights_id: str  # "fsrcnn.x2", a file path, or "random-init"
    kwargs: dict[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.spec.name


def load_model(
    model: str,
    scale: int | None = None,
    weights: str | Path | None = None,
    pretrained: bool = True,
    **kwargs: Any,
) -> LoadedModel:
    """Build ``model`` (``NAME`` or ``NAME.TAG``) for ``scale`` and load its weights.

    ``weights`` overrides the variant: ``MODEL.TAG`` or a ``.safetensors`` path.
    ``pretrained=False`` leaves the network randomly initialised (for training and tests).
    """
    spec, variant = resolve_name(model, scale)
    if weights is not None and isinstance(weights, str) and "." in weights and not Path(weights).exists():
        spec, variant = resolve_name(weights, scale)
    if variant is not None and scale is not None and variant.scale != scale:
        raise WeightsError(f"weights {spec.name}.{variant.tag} are for x{variant.scale}, not x{scale}")
    scale = scale if scale is not None else (variant.scale if variant else spec.default_scale())
    build_kwargs = {**(dict(variant.kwargs) if variant else {}), **kwargs}
    module = spec.build(scale, **build_kwargs)
    weights_id = "random-init"
    if pretrained and sum(p.numel() for p in module.parameters()) > 0:
        if weights is not None and Path(weights).exists():
            _load_safetensors(module, Path(weights))
            weights_id = str(weights)
        elif variant is not None and variant.file:
            _load_safetensors(module, _bundled_path(variant))
            weights_id = f"{spec.name}.{variant.tag}"
        else:
            raise WeightsError(
                f"model '{spec.name}' has no weights for x{scale}",
                hint="pass --weights FILE, or pick a scale that has weights (see 'sresr models info')",
            )
    elif sum(p.numel() for p in module.parameters()) == 0:
        weights_id = spec.name
    module.eval()
    return LoadedModel(module, spec, scale, spec.colorspace_for(variant), weights_id, build_kwargs)


def create_model(model: str, scale: int | None = None, pretrained: bool = True, **kwargs: Any) -> Any:
    """The ``nn.Module`` alone (see :func:`load_model`)."""
    return load_model(model, scale, pretrained=pretrained, **kwargs).module


def _bundled_path(variant: WeightsSpec) -> Path:
    from importlib import resources

    assert variant.file is not None
    return Path(str(resources.files(variant.package).joinpath(variant.file)))


def _load_safetensors(module: Any, path: Path) -> None:
    from safetensors.torch import load_file

    state = load_file(str(path))
    module.load_state_dict(state, strict=True)
