"""The README against the code: its code fences close, every ``MODEL.TAG`` it names exists, and the
help it quotes is what the commands print."""

from __future__ import annotations

import re

from conftest import ROOT, run_sresr  # type: ignore[import-not-found]

from sresr.registry import entries

README = (ROOT / "README.md").read_text(encoding="utf-8")


def test_code_fences_open_and_close():
    fences = [ln.strip() for ln in README.splitlines() if ln.strip().startswith("```")]
    assert len(fences) % 2 == 0, "an odd number of ``` lines: a fence is never closed"
    for opening, closing in zip(fences[::2], fences[1::2]):
        assert closing == "```", f"a fence opened by {opening!r} is closed by {closing!r} (a new fence opens inside it)"


def test_every_model_tag_named_exists():
    variants = {f"{name}.{w.tag}" for name, e in entries().items() if e.spec is not None for w in e.spec.weights}
    models = {name for name, e in entries().items() if e.spec is not None}
    named = set()
    for m in re.finditer(r"(?<![\w./-])([a-z][a-z0-9-]*)\.([A-Za-z0-9][A-Za-z0-9_-]*)(?![\w/-])", README):
        if m.group(1) in models and m.group(2) not in ("py", "toml", "json", "md", "png"):
            named.add(m.group(0))
    assert named, "the README names no MODEL.TAG at all?"
    assert sorted(named - variants) == []


def test_tile_help_states_the_default_rule():
    text = " ".join(run_sresr("upscale", "--help", check=True, COLUMNS="400").stdout.split())
    assert "default 512" not in text
    assert "max(256, 2 x pad)" in text and "free GPU memory" in text  # tiling.default_tile / Upscaler._tile_for
    assert "`max(256, 2 * pad)`" in README and "whole image when it fits the free GPU memory" in README


def test_debug_is_documented_where_it_works():
    assert "sresr --debug COMMAND" not in README
    assert "`--debug` (anywhere on the command line)" in README
