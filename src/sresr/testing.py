"""Conformance checks for plugin authors: ``sresr.testing.check_spec(SPEC)``.

Call it from your own test suite::

    from sresr.testing import check_spec
    from sresr_mynet.spec import SPEC

    def test_conforms():
        check_spec(SPEC)

It raises ``AssertionError`` with every problem it found.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from .spec import ModelSpec, validate_spec


def check_spec(spec: ModelSpec, scales: tuple[int, ...] | None = None, size: int = 16) -> None:
    """Validate the fields, then for each scale: build, check the module type, the output shape
    and range contract on a random input, the declared parameter count, and that a safetensors
    round trip reproduces the output bit for bit."""
    problems = validate_spec(spec)
    if problems:
        raise AssertionError("invalid spec: " + "; ".join(problems))

    import torch
    from safetensors.torch import load_file, save_file

    channels = 1 if spec.colorspace == "y" else 3
    side = size * spec.size_multiple
    for scale in scales or spec.scales:
        model = spec.build(scale)
        if not isinstance(model, torch.nn.Module):
            raise AssertionError(
                f"factory(scale={scale}) returned {type(model).__qualname__}, expected a torch.nn.Module"
            )
        model.eval()
        in_side = side * scale if spec.input == "upsampled" else side
        out_side = side * scale
        gen = torch.Generator().manual_seed(0)
        x = torch.rand(1, channels, in_side, in_side, generator=gen)
        with torch.no_grad():
            y = model(x)
        if tuple(y.shape) != (1, channels, out_side, out_side):
            raise AssertionError(
                f"x{scale}: input {tuple(x.shape)} gave output {tuple(y.shape)}, "
                f"expected {(1, channels, out_side, out_side)}"
            )
        if not torch.isfinite(y).all():
            raise AssertionError(f"x{scale}: output has NaN or Inf")
        n_params = sum(p.numel() for p in model.parameters())
        declared = spec.num_params.get(scale)
        if declared is not None and declared != n_params:
            raise AssertionError(f"x{scale}: num_params declares {declared}, the module has {n_params}")
        state = {k: v.contiguous() for k, v in model.state_dict().items()}
        if not state:
            continue
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "w.safetensors"
            save_file(state, str(path))
            clone = spec.build(scale)
            clone.load_state_dict(load_file(str(path)), strict=True)
            clone.eval()
            with torch.no_grad():
                y2 = clone(x)
        if not torch.equal(y, y2):
            raise AssertionError(f"x{scale}: output differs after a safetensors round trip")
