"""sresr.resolve: the rules table of its docstring, one row at a time, their order, and the
runtime facts a LoadedModel carries (compared with the spec's geometry hook and with a
measurement of the network's reach)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _http import FileServer  # noqa: E402
from _plugin import forget_plugin, tinysr_state  # noqa: E402

from sresr.errors import UnknownModelError, UsageError, WeightsError  # noqa: E402
from sresr.registry import get_spec, list_models, parse_ref  # noqa: E402
from sresr.resolve import LoadedModel, load, load_model, resolve  # noqa: E402
from sresr.spec import Geometry, ModelSpec  # noqa: E402
from sresr.weights import import_weights  # noqa: E402


def test_parse_ref_is_the_one_tag_parser(plugin, monkeypatch):
    assert parse_ref("fsrcnn") == ("fsrcnn", None)
    assert parse_ref("fsrcnn.x2") == ("fsrcnn", "x2")
    assert parse_ref("RealESRGAN_x4plus") == ("esrgan", "realesrgan-x4plus")
    assert parse_ref("realesrgan_X4PLUS") == ("esrgan", "realesrgan-x4plus")  # any case
    assert parse_ref("nonsense.tag") == ("nonsense", "tag")  # fails where it is used
    assert parse_ref("weights.pth") == ("weights", "pth")


def test_rules_in_their_order(plugin, tmp_path, monkeypatch):
    # variant: MODEL.TAG names a declared variant; nothing is read or built yet
    req = resolve("tinysr.x2")
    assert (req.rule, req.spec.name, req.variant.tag, req.scales, req.file) == ("variant", "tinysr", "x2", (2,), None)
    # default: MODEL alone lists the scales it has weights for; the variant is chosen at load
    req = resolve("tinysr")
    assert (req.rule, req.variant, req.scales) == ("default", None, (2,))
    assert load(req).weights_id == "tinysr.x2"
    # factory: a model that declares no weights (tinyy) builds at any of its scales
    assert resolve("tinyy").rule == "factory" and resolve("tinyy").scales == (2, 3, 4)
    # file: -w PATH, converted once; the file's scale is the only one
    pth = tmp_path / "tiny.pth"
    torch.save(tinysr_state(nf=5, scale=3), pth)
    req = resolve(None, pth)
    assert (req.rule, req.spec.name, req.scales, req.file.scale) == ("file", "tinysr", (3,), 3)
    # imported: -m NAME made by `sresr weights import`, ahead of any alias of that spelling
    import_weights(pth, name="TinySR_x4plus")
    monkeypatch.setenv("TINYSR_URL", "http://127.0.0.1:9/never/tinysr-00000000.pth")
    forget_plugin()
    assert parse_ref("TinySR_x4plus") == ("tinysr", "x4")  # the alias exists ...
    req = resolve("TinySR_x4plus")
    assert (req.rule, req.file.scale, req.ident) == ("imported", 3, "TinySR_x4plus")  # ... the import wins
    # a registered variant whose file is not downloaded is resolved without a download (the URL
    # above answers nothing): fetching waits for load
    req = resolve("tinysr.x4")
    assert (req.rule, req.scales, req.file) == ("variant", (4,), None)
    # unknown names fail with the registry's error
    with pytest.raises(UnknownModelError):
        resolve("no-such-model")
    with pytest.raises(UsageError):
        resolve(None)


def test_url_rule_and_one_read(plugin, tmp_path, monkeypatch):
    monkeypatch.setenv("SRESR_OFFLINE", "0")
    pth = tmp_path / "served.pth"
    torch.save(tinysr_state(nf=4, scale=2), pth)
    with FileServer({"served.pth": pth.read_bytes()}) as srv:
        url = srv.url("served.pth")
        req = resolve(None, url)
        assert (req.rule, req.scales) == ("url", (2,))
        asked = sum(srv.hits.values())
        loaded = load(req)  # builds from the request: the server is not asked again
        assert sum(srv.hits.values()) == asked == 1
    assert loaded.weights_id == url and loaded.scale == 2


def test_scale_rules(plugin, tmp_path):
    pth = tmp_path / "x3.pth"
    torch.save(tinysr_state(nf=4, scale=3), pth)
    req = resolve(None, pth)
    with pytest.raises(WeightsError, match="are for x3, not x2"):
        load(req, 2)
    with pytest.raises(WeightsError, match="are for x2, not x4"):
        load_model("tinysr.x2", 4)
    with pytest.raises(UsageError, match="whole number"):
        resolve("tinysr", scale=0)
    # a pre-upsampling model runs its weights at any scale of its spec
    vdsr = resolve("vdsr")
    assert vdsr.scales == tuple(get_spec("vdsr").scales)


def test_pretrained_false_with_a_variant_takes_its_architecture_only(plugin):
    loaded = load_model("tinysr", 2, weights="tinysr.x2", pretrained=False)
    assert loaded.weights_id == "random-init" and loaded.kwargs == {"nf": 8}


@pytest.mark.parametrize("name", list_models())
def test_loaded_model_carries_the_geometry_of_its_spec_hook(name):
    spec = get_spec(name)
    for scale in spec.scales:
        loaded = load_model(name, scale, pretrained=False)
        assert loaded.geometry == spec.geometry_for(scale, loaded.kwargs)
        assert loaded.geometry.receptive_field <= spec.receptive_field  # the spec's field is the worst case
        assert spec.size_multiple % loaded.geometry.size_multiple == 0
        assert loaded.in_channels == (1 if loaded.colorspace == "y" else 3)


def test_geometry_hook_is_checked():
    bad = ModelSpec(name="bad", factory="torch.nn:Identity", scales=(2,), geometry=lambda scale: (3, 1))
    with pytest.raises(TypeError, match="expected a sresr.spec.Geometry"):
        bad.geometry_for(2, {})
    plain = ModelSpec(name="plain", factory="torch.nn:Identity", scales=(2,), receptive_field=5, size_multiple=2)
    assert plain.geometry_for(2, {}) == Geometry(5, 2)
    assert LoadedModel(torch.nn.Identity(), plain, 2, "rgb", "test").geometry == Geometry(5, 2)


def test_weights_module_forwards_the_moved_names():
    import sresr
    import sresr.weights as w

    assert w.load_model is load_model and w.LoadedModel is LoadedModel and sresr.load_model is load_model


# -- --denoise-strength: a variant mixed with its denoising companion -----------------------------


def test_denoise_strength_mixes_a_variant_with_its_companion(plugin, tmp_path, monkeypatch):
    import hashlib

    from _plugin import tinysr_reference

    from sresr.weights import declared_sha256, read_metadata, variant_path

    monkeypatch.setenv("SRESR_OFFLINE", "0")
    general, wdn = tinysr_state(4, 6, seed=3), tinysr_state(4, 6, seed=4)
    files = {}
    for name, state in (("general.pth", general), ("wdn.pth", wdn)):
        torch.save({"params_ema": state}, tmp_path / name)
        files[name] = (tmp_path / name).read_bytes()
    files["page.pth"] = b"<html>rate limited</html>"
    x = torch.rand(1, 3, 6, 7, generator=torch.Generator().manual_seed(1))
    with FileServer(files) as srv:
        monkeypatch.setenv("TINYSR_URL", srv.url("general.pth"))
        monkeypatch.setenv("TINYSR_SHA256", hashlib.sha256(files["general.pth"]).hexdigest())
        monkeypatch.setenv("TINYSR_WDN_URL", srv.url("page.pth"))
        forget_plugin()
        # a companion with no published hash is still checked: an error page is not kept
        with pytest.raises(WeightsError):
            load_model("tinysr.x4", denoise=0.3)
        spec = get_spec("tinysr")
        assert not variant_path(spec, spec.variant("x4-wdn")).exists()
        monkeypatch.setenv("TINYSR_WDN_URL", srv.url("wdn.pth"))
        forget_plugin()
        spec = get_spec("tinysr")
        assert declared_sha256(spec.variant("x4-wdn")).startswith("none published")
        loaded = load_model("TinySR_x4plus", denoise=0.3)
        # Real-ESRGAN's dni: strength * the variant + (1 - strength) * the companion
        mixed = {k: 0.3 * general[k].double() + 0.7 * wdn[k].double() for k in general}
        torch.testing.assert_close(loaded.module(x), tinysr_reference({k: v.float() for k, v in mixed.items()}, x))
        assert loaded.weights_id.startswith("tinysr.x4 (denoise 0.3") and len(loaded.weights_sha256) == 64
        # pinned on first download, then read from the cache: no more requests
        pinned = read_metadata(variant_path(spec, spec.variant("x4-wdn")))["sresr.source_sha256"]
        assert pinned == hashlib.sha256(files["wdn.pth"]).hexdigest()
        asked = sum(srv.hits.values())
        again = load_model("tinysr.x4", denoise=0.3)
        assert sum(srv.hits.values()) == asked and again.weights_sha256 == loaded.weights_sha256
        assert load_model("tinysr.x4", denoise=0.6).weights_sha256 != loaded.weights_sha256
        plain = load_model("tinysr.x4", denoise=1.0)  # 1: the variant as published
        torch.testing.assert_close(plain.module(x), tinysr_reference(general, x))
        # the variant given as --weights (its published name) is the same request as --model
        by_weights = load_model("tinysr", weights="TinySR_x4plus", denoise=0.3)
        assert by_weights.weights_sha256 == loaded.weights_sha256
    with pytest.raises(UsageError, match="denoising companion"):
        load_model("tinysr.x2", denoise=0.5)
    with pytest.raises(UsageError, match="between 0 and 1"):
        load_model("tinysr.x4", denoise=1.5)


def test_denoise_strength_on_the_command_line():
    from conftest import ROOT, run_sresr

    image = next(p for p in sorted((ROOT / "examples").iterdir()) if p.suffix.lower() in (".png", ".jpg"))
    proc = run_sresr("upscale", str(image), "-m", "fsrcnn", "-s", "2", "-dn", "0.5", "-o", str(ROOT / "nowhere"))
    assert proc.returncode == 2, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert "needs weights with a denoising companion" in lines[0] and "realesrgan-compact.general-x4v3" in proc.stderr
    assert not (ROOT / "nowhere").exists()


def test_a_model_named_alone_without_a_scale_is_its_first_default_variant(sresr_home):
    """`sresr weights pull/path srcnn` and `-m srcnn` mean srcnn.x3 (its only weights), by one rule
    (ModelSpec.weights_for); at a scale no variant is for, the name alone is refused with the
    variants named, while `-m srcnn.x3 -s 2` runs them there explicitly."""
    from sresr.registry import resolve_name
    from sresr.weights import pull

    assert load_model("srcnn").weights_id == "srcnn.x3" and resolve_name("srcnn")[1].tag == "x3"
    assert pull("srcnn").id == "srcnn.x3"
    with pytest.raises(WeightsError, match="no weights for x2"):
        load_model("srcnn", scale=2)
    assert load_model("srcnn.x3", scale=2).scale == 2


def test_an_imported_name_comes_before_a_file_of_that_name_and_works_everywhere(sresr_home, tmp_path, monkeypatch):
    """The rules table puts imported names first: a folder or file of the same name in the working
    directory does not shadow it (./NAME still means the path); `weights path`, `bench` and a
    network without its tensors (pretrained=False) take the name too."""
    from conftest import ROOT, run_sresr  # type: ignore[import-not-found]

    from sresr.bench import BenchOptions, run_bench
    from sresr.weights import import_weights

    import_weights(ROOT / "src" / "sresr" / "weights_data" / "fsrcnn_x2.safetensors", name="examples")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "examples").mkdir()
    loaded = load_model("examples")
    assert (loaded.name, loaded.scale, loaded.weights_id) == ("fsrcnn", 2, "examples")
    assert load_model("fsrcnn", weights="examples").weights_sha256 == loaded.weights_sha256
    bare = load_model("examples", pretrained=False)
    assert (bare.name, bare.scale, bare.weights_id) == ("fsrcnn", 4, "random-init")
    path = run_sresr("weights", "path", "examples", check=True).stdout.strip()
    assert path.endswith("imported/examples.safetensors")
    result = run_bench(BenchOptions(models=("examples",), scales=(2, 3), repeats=1, device="cpu"))
    assert [(r.model, r.scale) for r in result.rows] == [("bicubic", 2), ("examples", 2), ("bicubic", 3)]
    assert result.skipped == ["examples has no x3"]
