"""sresr: super-resolution for the command line and for Python.

Importing :mod:`sresr` does not import torch; the heavy parts of the public API are loaded on
first use.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

from .errors import SresrError
from .registry import get_spec, list_models
from .spec import Geometry, ModelSpec, WeightsSpec

__version__ = "0.1.0"

# name -> "module:attr", imported on first access (PEP 562)
_LAZY = {
    "create_model": "sresr.resolve:create_model",
    "load_model": "sresr.resolve:load_model",
    "LoadedModel": "sresr.resolve:LoadedModel",
    "Upscaler": "sresr.engine:Upscaler",
    "UpscaleOptions": "sresr.pipeline:UpscaleOptions",
    "upscale_file": "sresr.pipeline:upscale_file",
    "upscale_paths": "sresr.pipeline:upscale_paths",
    "evaluate": "sresr.evaluate:evaluate",
    "imresize": "sresr.imaging.resize:imresize",
    "read_image": "sresr.imaging.io:read_image",
    "write_image": "sresr.imaging.io:write_image",
}


def __getattr__(name: str) -> Any:
    target = _LAZY.get(name)
    if target is None:
        raise AttributeError(f"module 'sresr' has no attribute {name!r}")
    module_name, attr = target.split(":")
    value = getattr(import_module(module_name), attr)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


__all__ = ["Geometry", "ModelSpec", "WeightsSpec", "SresrError", "get_spec", "list_models", "__version__", *_LAZY]
