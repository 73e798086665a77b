"""Built-in architectures. Each package ``sresr.models.<pkg>`` holds a torch-free ``SPEC``; the
network and its published-layout loader live in ``sresr.models.<pkg>.arch`` (imported on use).

:func:`find_model` guesses the registered model name from the keys of a checkpoint (torch-free),
so that ``--weights FILE`` works without ``--model``. An explicit model name always wins.
"""

from __future__ import annotations

from typing import Iterable

#: the DIV2K training set's mean RGB, which EDSR, RCAN, SwinIR, HAT and DAT subtract from their input
DIV2K_MEAN = (0.4488, 0.4371, 0.4040)


def check_counts(arch: str, **values: object) -> None:
    """Raise ValueError unless every value is a whole number >= 1 (channels, features, blocks...):
    a factory that accepted ``blocks=-1`` would build an empty network that runs and outputs
    garbage."""
    for name, value in values.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{arch}: {name} must be a whole number >= 1, got {value!r}")

# (model name, keys that must all be present); first match wins, most specific first.
_SIGNATURES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("hat", ("conv_first.weight", "layers.0.residual_group.blocks.0.conv_block.cab.0.weight")),
    ("swinir", ("conv_first.weight", "layers.0.residual_group.blocks.0.attn.qkv.weight")),
    ("dat", ("conv_first.weight", "before_RG.1.weight", "layers.0.blocks.0.ffn.sg.conv.weight")),
    ("rcan", ("conv_first.weight", "body.0.residual_group.0.rcab.3.attention.1.weight")),
    ("rcan", ("head.0.weight", "body.0.body.0.body.3.conv_du.0.weight")),
    ("span", ("conv_1.sk.weight", "block_1.c1_r.sk.weight", "conv_cat.weight", "upsampler.0.weight")),
    ("esrgan", ("conv_first.weight", "body.0.rdb1.conv1.weight")),
    ("esrgan", ("conv_first.weight", "RRDB_trunk.0.RDB1.conv1.weight")),
    ("esrgan", ("model.0.weight", "model.1.sub.0.RDB1.conv1.0.weight")),
    ("edsr", ("conv_first.weight", "body.0.conv1.weight", "conv_after_body.weight")),
    ("edsr", ("head.0.weight", "body.0.body.0.weight", "tail.0.0.weight")),
    ("srresnet", ("conv_first.weight", "body.0.conv1.weight", "upconv1.weight")),
    ("srresnet", ("head.weight", "body.0.conv1.weight", "conv_body.weight")),
    ("realesrgan-compact", ("body.0.weight", "body.1.weight", "body.2.weight", "body.3.weight")),
    ("fsrcnn", ("first_part.0.weight", "mid_part.0.weight", "last_part.weight")),
    ("espcn", ("first_part.0.weight", "first_part.2.weight", "last_part.0.weight")),
    ("vdsr", ("input.weight", "residual_layer.0.conv.weight", "output.weight")),
    ("srcnn", ("conv1.weight", "conv2.weight", "conv3.weight")),
)


def find_model(keys: Iterable[str]) -> str | None:
    """The built-in model whose published layout these state-dict keys look like, or ``None``.

    ``keys`` may still carry ``module.`` / ``_orig_mod.`` prefixes. Wrappers (``params_ema`` ...)
    must be removed first: pass ``sresr.models._layouts.unwrap_state_dict(obj).keys()``.
    """
    from ._layouts import strip_prefixes

    present = {strip_prefixes(k) for k in keys}
    for name, needed in _SIGNATURES:
        if all(k in present for k in needed):
            return name
    return None
