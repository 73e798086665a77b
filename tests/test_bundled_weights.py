"""The weights that ship inside the package: they load, they score what their specs declare on the
bundled Set5 under the standard protocol, and they beat bicubic."""

from __future__ import annotations

import pytest

from sresr.registry import entries

BICUBIC_SET5 = {2: 33.68, 3: 30.40, 4: 28.43}  # published-results.md self-check

BUNDLED = [
    (name, w)
    for name, e in entries().items()
    if e.spec is not None and e.source == "sresr"
    for w in e.spec.weights
    if w.file
]


def test_some_weights_are_bundled_for_each_scale() -> None:
    assert {w.scale for _, w in BUNDLED} >= {2, 3, 4}


@pytest.mark.parametrize(("name", "variant"), BUNDLED, ids=[f"{n}.{w.tag}" for n, w in BUNDLED])
def test_bundled_weights_reproduce_their_declared_set5_numbers(name, variant) -> None:
    from sresr.evaluate import evaluate

    report = evaluate(f"{name}.{variant.tag}", "set5", variant.scale, progress=False)
    assert report.weights == f"{name}.{variant.tag}"
    assert report.mean.psnr == pytest.approx(variant.metrics["set5/psnr"], abs=0.006)
    assert report.mean.ssim == pytest.approx(variant.metrics["set5/ssim"], abs=0.00006)
    assert report.mean.psnr > BICUBIC_SET5[variant.scale] + 0.5


@pytest.mark.parametrize(("name", "variant"), BUNDLED, ids=[f"{n}.{w.tag}" for n, w in BUNDLED])
def test_bundled_weights_build_the_network_their_file_records(name, variant) -> None:
    """Kwargs in a file's sresr.kwargs metadata (FSRCNN's deconv_padding) reach the network built
    for MODEL.TAG, as they do for the file loaded by path."""
    import json

    from sresr.resolve import load_model
    from sresr.weights import _bundled_path, read_metadata

    recorded = json.loads(read_metadata(_bundled_path(variant)).get("sresr.kwargs", "{}") or "{}")
    by_tag = load_model(f"{name}.{variant.tag}")
    by_path = load_model(None, weights=str(_bundled_path(variant)))
    assert recorded.items() <= by_tag.kwargs.items()
    assert by_tag.kwargs == by_path.kwargs
    if name == "fsrcnn":
        assert by_tag.module.last_part.padding[0] == recorded.get("deconv_padding", 4)


def test_upscale_without_model_uses_the_best_bundled_model_for_the_scale(tmp_path) -> None:
    from conftest import run_sresr

    best = max((w for _, w in BUNDLED if w.scale == 4), key=lambda w: w.metrics["set5/psnr"])
    best_id = next(f"{n}.{w.tag}" for n, w in BUNDLED if w is best)
    examples = tmp_path / "in"
    examples.mkdir()
    from PIL import Image

    Image.new("RGB", (20, 12), (200, 100, 50)).save(examples / "a.png")
    proc = run_sresr("upscale", str(examples), "-o", str(tmp_path / "out"), check=True)
    assert f"model: {best_id} x4" in proc.stdout
    with Image.open(tmp_path / "out" / "a.png") as im:
        assert im.size == (80, 48)
