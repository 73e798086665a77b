"""Training: typed recipes (:mod:`.config`, :mod:`.recipes`), patches (:mod:`.data`), losses
(:mod:`.losses`) and the resumable, distributed loop (:mod:`.loop`).

Importing this package does not import torch; ``train`` is loaded on first use.
"""

from __future__ import annotations

from typing import Any

from .config import TrainConfig
from .recipes import get_recipe, list_recipes

__all__ = ["TrainConfig", "get_recipe", "list_recipes", "train"]


def train(config: TrainConfig, out: Any, resume: bool = False, **kwargs: Any) -> Any:
    """Run a training (see :func:`sresr.train.loop.train`)."""
    from .loop import train as _train

    return _train(config, out, resume=resume, **kwargs)
