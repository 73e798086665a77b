"""sresr.weights: variants, --weights files/URLs, conversion cache, import, safety."""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _http import FileServer  # noqa: E402
from conftest import ROOT, run_sresr  # noqa: E402
from _plugin import forget_plugin, tinysr_reference, tinysr_state, tinyy_state  # noqa: E402

from sresr.errors import LayoutError, UnsafeCheckpointError, UsageError, WeightsError  # noqa: E402
from sresr.models._layouts import read_checkpoint, unwrap_state_dict  # noqa: E402
from sresr.resolve import load_model  # noqa: E402
from sresr.weights import (  # noqa: E402
    converted_dir,
    find_imported,
    import_weights,
    list_cached,
    pull,
    pulled_dir,
    read_metadata,
    remove,
)

X = torch.rand(1, 3, 7, 9, generator=torch.Generator().manual_seed(0))


_forget_plugin = forget_plugin


def published(state: dict, other: dict | None = None) -> dict:
    """BasicSR-style wrapping: params_ema (preferred) and params, with DataParallel prefixes."""
    wrapped = {"params_ema": {f"module.{k}": v for k, v in state.items()}}
    if other is not None:
        wrapped["params"] = {f"module.{k}": v for k, v in other.items()}
    return wrapped


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


class Evil:
    """Unpickling this creates a file: the side effect a checkpoint must never get to run."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


# -- published checkpoints --------------------------------------------------------------


def test_pth_in_published_layout_loads_and_prefers_params_ema(plugin, tmp_path):
    ema, raw = tinysr_state(4, 6, seed=3), tinysr_state(4, 6, seed=4)
    pth = tmp_path / "RealTiny_x4.pth"
    torch.save(published(ema, raw), pth)
    loaded = load_model(None, weights=pth)
    assert loaded.name == "tinysr" and loaded.scale == 4 and loaded.kwargs == {"nf": 6}
    assert loaded.colorspace == "rgb" and loaded.weights_id == str(pth)
    with torch.no_grad():
        out = loaded.module(X)
    torch.testing.assert_close(out, tinysr_reference(ema, X), rtol=0, atol=1e-6)
    assert not torch.allclose(out, tinysr_reference(raw, X))


def test_conversion_is_cached_by_content_hash(plugin, tmp_path):
    pth = tmp_path / "w.pth"
    torch.save(published(tinysr_state(2, 5)), pth)
    converted = converted_dir() / f"{sha(pth)}.safetensors"
    assert not converted.exists()
    load_model(None, weights=pth)
    assert converted.is_file()
    meta = read_metadata(converted)
    assert meta["sresr.model"] == "tinysr" and meta["sresr.scale"] == "2"
    assert json.loads(meta["sresr.kwargs"]) == {"nf": 5}
    assert meta["sresr.source_sha256"] == sha(pth)
    stamp = converted.stat().st_mtime_ns
    # second load (also under another file name with the same content): plain safetensors read
    copy = tmp_path / "copy.pt"
    copy.write_bytes(pth.read_bytes())
    again = load_model("tinysr", weights=copy)
    assert converted.stat().st_mtime_ns == stamp
    assert sorted(p.name for p in converted_dir().iterdir()) == [converted.name]
    torch.testing.assert_close(again.module(X), tinysr_reference(tinysr_state(2, 5), X))


def test_converted_safetensors_alone_rebuilds_the_network(plugin, tmp_path):
    pth = tmp_path / "w.ckpt"
    state = tinysr_state(3, 4, seed=9)
    torch.save({"state_dict": state}, pth)
    first = load_model(None, weights=pth)
    path = converted_dir() / f"{sha(pth)}.safetensors"
    # the file alone, without --model, rebuilds the same network bit for bit
    second = load_model(None, weights=path)
    assert (second.name, second.scale, second.kwargs) == ("tinysr", 3, {"nf": 4})
    with torch.no_grad():
        assert torch.equal(first.module(X), second.module(X))


def test_legacy_torch_format_and_compile_prefix(plugin, tmp_path):
    state = tinysr_state(2, 3, seed=5)
    pth = tmp_path / "legacy.pth"
    torch.save({f"_orig_mod.{k}": v for k, v in state.items()}, pth, _use_new_zipfile_serialization=False)
    loaded = load_model(None, weights=pth)
    torch.testing.assert_close(loaded.module(X), tinysr_reference(state, X))


def test_autodetect_picks_the_architecture_from_the_layout(plugin, tmp_path):
    pth = tmp_path / "y.pth"
    torch.save({"params": tinyy_state(3, 4)}, pth)
    loaded = load_model(None, weights=pth)
    assert (loaded.name, loaded.scale, loaded.colorspace) == ("tinyy", 3, "y")
    # explicit model stays primary: naming the wrong one is an error, not a silent switch
    with pytest.raises(LayoutError) as info:
        load_model("tinysr", weights=pth)
    assert "tinysr" in info.value.message


def test_unknown_layout_asks_for_a_model(plugin, tmp_path):
    pth = tmp_path / "other.pth"
    torch.save({"conv.weight": torch.zeros(2, 2, 1, 1)}, pth)
    with pytest.raises(LayoutError) as info:
        load_model(None, weights=pth)
    assert "--model" in (info.value.hint or "")
    assert not any(converted_dir().glob("*.safetensors")) if converted_dir().exists() else True


def test_scale_mismatch_is_an_error(plugin, tmp_path):
    pth = tmp_path / "w.pth"
    torch.save(tinysr_state(4, 4), pth)
    with pytest.raises(WeightsError) as info:
        load_model(None, scale=2, weights=pth)
    assert "x4" in info.value.message and "x2" in info.value.message


def test_missing_weights_file(plugin, tmp_path):
    with pytest.raises(WeightsError) as info:
        load_model("tinysr", weights=tmp_path / "nope.pth")
    assert "nope.pth" in info.value.message


# -- safety -------------------------------------------------------------------------------


def test_malicious_pickle_is_refused_and_never_runs(plugin, tmp_path):
    marker = tmp_path / "pwned"
    pth = tmp_path / "evil.pth"
    torch.save({"params_ema": tinysr_state(2, 4), "extra": Evil(marker)}, pth)
    # control: the payload is live when unpickled the unsafe way (into another marker)
    control_marker = tmp_path / "control"
    control = tmp_path / "control.pth"
    torch.save(Evil(control_marker), control)
    torch.load(control, weights_only=False)
    assert control_marker.exists()

    with pytest.raises(UnsafeCheckpointError) as info:
        read_checkpoint(pth)
    assert "io.open" in info.value.message or "open" in info.value.message
    with pytest.raises(UnsafeCheckpointError):
        load_model(None, weights=pth)
    with pytest.raises(UnsafeCheckpointError):
        import_weights(pth, name="evil")
    assert not marker.exists()
    assert find_imported("evil") is None


def test_garbage_file_is_a_clear_error(plugin, tmp_path):
    bad = tmp_path / "bad.pth"
    bad.write_bytes(b"definitely not a checkpoint" * 10)
    with pytest.raises(WeightsError) as info:
        load_model(None, weights=bad)
    assert "bad.pth" in info.value.message


def test_unwrap_requires_tensors():
    with pytest.raises(WeightsError):
        unwrap_state_dict({"epoch": 3, "params": {"lr": 0.1}})
    sd = unwrap_state_dict({"model": {"module.a": torch.zeros(1)}, "epoch": 3})
    assert list(sd) == ["a"]


# -- variants ----------------------------------------------------------------------------


def test_bundled_default_variant(plugin):
    from safetensors.torch import load_file

    loaded = load_model("tinysr")
    assert (loaded.weights_id, loaded.scale, loaded.kwargs) == ("tinysr.x2", 2, {"nf": 8})
    bundled = load_file(str(plugin / "tinysr_plugin" / "tiny_x2.safetensors"))
    torch.testing.assert_close(loaded.module(X), tinysr_reference(bundled, X))
    assert load_model("tinysr.x2", scale=2).weights_id == "tinysr.x2"
    random = load_model("tinysr", scale=3, pretrained=False)
    assert random.weights_id == "random-init" and random.scale == 3
    with pytest.raises(WeightsError):
        load_model("tinysr", scale=3)  # no weights for x3


def _serve_variant(monkeypatch, srv: FileServer, name: str, sha256: str) -> None:
    monkeypatch.setenv("TINYSR_URL", srv.url(name))
    monkeypatch.setenv("TINYSR_SHA256", sha256)
    _forget_plugin()


def test_published_variant_is_pulled_verified_and_converted(plugin, tmp_path, monkeypatch):
    state = tinysr_state(4, 6, seed=11)
    pth = tmp_path / "tiny_x4.pth"
    torch.save(published(state), pth)
    with FileServer({"tiny_x4.pth": pth.read_bytes()}) as srv:
        _serve_variant(monkeypatch, srv, "tiny_x4.pth", sha(pth))
        # offline: refused without touching the network, naming the file and the way out
        with pytest.raises(WeightsError) as info:
            load_model("tinysr.x4")
        assert "tiny_x4.pth" in info.value.message and "sresr weights import" in info.value.hint
        assert srv.hits == {}
        monkeypatch.setenv("SRESR_OFFLINE", "0")
        loaded = load_model("tinysr", scale=4)
        assert loaded.weights_id == "tinysr.x4" and loaded.kwargs == {"nf": 6}
        torch.testing.assert_close(loaded.module(X), tinysr_reference(state, X))
        out = pulled_dir() / "tinysr.x4.safetensors"
        meta = read_metadata(out)
        assert meta["sresr.source"] == srv.url("tiny_x4.pth") and meta["sresr.source_sha256"] == sha(pth)
        # the raw download is gone once converted; the second use needs no network
        assert [e.kind for e in list_cached() if e.kind == "download"] == []
        monkeypatch.setenv("SRESR_OFFLINE", "1")
        assert pull("tinysr.x4").path == out
        assert srv.hits["/tiny_x4.pth"] == 1


def test_published_variant_with_wrong_hash_leaves_nothing(plugin, tmp_path, monkeypatch):
    pth = tmp_path / "tiny_x4.pth"
    torch.save(tinysr_state(4, 6), pth)
    monkeypatch.setenv("SRESR_OFFLINE", "0")
    with FileServer({"tiny_x4.pth": pth.read_bytes()}) as srv:
        _serve_variant(monkeypatch, srv, "tiny_x4.pth", "ab" * 32)
        with pytest.raises(WeightsError) as info:
            pull("tinysr.x4")
    assert "ab" * 32 in info.value.message and sha(pth) in info.value.message
    assert [e for e in list_cached(include_bundled=False)] == []


def test_weights_from_url(plugin, tmp_path, monkeypatch):
    state = tinysr_state(2, 4, seed=2)
    pth = tmp_path / "w.pth"
    torch.save({"params": state}, pth)
    monkeypatch.setenv("SRESR_OFFLINE", "0")
    with FileServer({"w.pth": pth.read_bytes()}) as srv:
        loaded = load_model(None, weights=srv.url("w.pth"))
        torch.testing.assert_close(loaded.module(X), tinysr_reference(state, X))
        load_model("tinysr", weights=srv.url("w.pth"))
        assert srv.hits["/w.pth"] == 1
        with pytest.raises(WeightsError) as info:
            load_model(None, weights=srv.url("missing.pth"))
        assert "404" in info.value.message


# -- import, list, remove -----------------------------------------------------------------


def test_import_then_use_by_name(plugin, tmp_path):
    state = tinysr_state(4, 5, seed=7)
    pth = tmp_path / "My Tiny x4.pth"
    torch.save(published(state), pth)
    entry = import_weights(pth)
    assert entry.id == "My-Tiny-x4" and entry.kind == "imported" and entry.model == "tinysr"
    assert entry.sha256 == sha(pth) and entry.source == str(pth.resolve())
    assert find_imported("My-Tiny-x4") == entry.path
    for loaded in (load_model("My-Tiny-x4"), load_model(None, weights="My-Tiny-x4")):
        assert (loaded.name, loaded.scale, loaded.weights_id) == ("tinysr", 4, "My-Tiny-x4")
        torch.testing.assert_close(loaded.module(X), tinysr_reference(state, X))
    # same content again is a no-op; other content under the same name is refused
    assert import_weights(pth, name="My-Tiny-x4").path == entry.path
    other = tmp_path / "other.pth"
    torch.save(tinysr_state(2, 3), other)
    with pytest.raises(UsageError):
        import_weights(other, name="My-Tiny-x4")
    with pytest.raises(UsageError):
        import_weights(other, name="tinysr")  # a registered model name
    ids = {e.id: e.kind for e in list_cached()}
    assert ids["My-Tiny-x4"] == "imported" and ids["tinysr.x2"] == "bundled"
    assert remove("My-Tiny-x4") == [entry.path]
    assert find_imported("My-Tiny-x4") is None
    with pytest.raises(UsageError):
        remove("tinysr.x2")


def test_prefix_named_variant_through_a_mirror_is_verified_and_pinned(plugin, tmp_path, monkeypatch):
    """A publisher that gives only the first hex digits of the sha256 in the file name (torch.hub's
    NAME-1a2b3c4d.pth, as BasicSR and EDSR do): the download is checked against that prefix and its
    full sha256 pinned in the cache. SRESR_MIRROR fetches it from 127.0.0.1 while the declared URL
    keeps naming it; the published name (alias) finds it."""
    state = tinysr_state(4, 6, seed=12)
    pth = tmp_path / "tiny.pth"
    torch.save(published(state), pth)
    digest = sha(pth)
    name = f"tiny_x4-{digest[:8]}.pth"
    declared = f"https://weights.example.org/releases/v1/{name}"
    with FileServer({f"weights.example.org/releases/v1/{name}": pth.read_bytes()}) as srv:
        monkeypatch.setenv("TINYSR_URL", declared)
        monkeypatch.setenv("SRESR_MIRROR", srv.base)
        monkeypatch.setenv("SRESR_OFFLINE", "0")
        _forget_plugin()
        from sresr.registry import get_spec
        from sresr.weights import declared_sha256, variant_status

        variant = get_spec("tinysr").variant("x4")
        assert variant_status(get_spec("tinysr"), variant) == "download"
        assert declared_sha256(variant).startswith(f"{digest[:8]}... (from the file name")
        loaded = load_model("TinySR_x4plus")
        torch.testing.assert_close(loaded.module(X), tinysr_reference(state, X))
        meta = read_metadata(pulled_dir() / "tinysr.x4.safetensors")
        assert meta["sresr.source"] == declared and meta["sresr.source_sha256"] == digest  # pinned
        assert srv.hits == {f"/weights.example.org/releases/v1/{name}": 1}
        assert variant_status(get_spec("tinysr"), variant) == "cached"
        monkeypatch.setenv("SRESR_OFFLINE", "1")
        assert pull("tinysr.x4").source_sha256 == digest  # the pinned file is used as it is


def test_prefix_named_variant_that_does_not_match_its_name_is_not_kept(plugin, tmp_path, monkeypatch):
    pth = tmp_path / "tiny.pth"
    torch.save(published(tinysr_state(4, 6, seed=13)), pth)
    wrong = "0" * 8 if not sha(pth).startswith("0" * 8) else "1" * 8
    name = f"tiny_x4-{wrong}.pth"
    with FileServer({f"h.example/{name}": pth.read_bytes()}) as srv:
        monkeypatch.setenv("TINYSR_URL", f"https://h.example/{name}")
        monkeypatch.setenv("SRESR_MIRROR", srv.base + "/")
        monkeypatch.setenv("SRESR_OFFLINE", "0")
        _forget_plugin()
        with pytest.raises(WeightsError) as info:
            pull("tinysr.x4")
    assert f"does not start with {wrong}" in info.value.message and sha(pth) in info.value.message
    assert [e for e in list_cached(include_bundled=False)] == []


def test_a_mirror_that_is_not_a_url_is_a_usage_error(monkeypatch):
    from sresr.download import mirrored
    from sresr.errors import UsageError

    assert mirrored("https://github.com/a/b.pth?x=1") == "https://github.com/a/b.pth?x=1"
    monkeypatch.setenv("SRESR_MIRROR", "https://mirror.local/sr/")
    assert mirrored("https://github.com/a/b.pth?x=1") == "https://mirror.local/sr/github.com/a/b.pth?x=1"
    monkeypatch.setenv("SRESR_MIRROR", "/srv/mirror")
    with pytest.raises(UsageError, match="not an http"):
        mirrored("https://github.com/a/b.pth")


def test_interpolated_weights_are_the_weighted_sum_and_run_by_name(plugin, tmp_path):
    """sresr weights interpolate A B --alpha X: each tensor (1 - X) A + X B, kept under a name that
    then works as a model; different networks or an alpha outside [0, 1] are refused."""
    a, b = tinysr_state(4, 6, seed=21), tinysr_state(4, 6, seed=22)
    for state, name in ((a, "a"), (b, "b")):
        torch.save(published(state), tmp_path / f"{name}.pth")
    proc = run_sresr("weights", "interpolate", str(tmp_path / "a.pth"), str(tmp_path / "b.pth"), "--alpha", "0.3",
                     "--name", "mix", "--json", extra_paths=[plugin], SRESR_HOME=str(tmp_path / "home"), check=True)
    entry = json.loads(proc.stdout)
    assert (entry["id"], entry["model"], entry["scale"]) == ("mix", "tinysr", 4)
    from safetensors.torch import load_file

    mixed = load_file(entry["path"])
    for k in a:
        torch.testing.assert_close(mixed[k], 0.7 * a[k] + 0.3 * b[k], rtol=0, atol=1e-6)
    run_sresr("upscale", str(ROOT / "examples" / "bird.png"), "-o", str(tmp_path / "out"), "-m", "mix", "-q",
              extra_paths=[plugin], SRESR_HOME=str(tmp_path / "home"), check=True)
    # another network, an alpha outside [0, 1]: one clear line each, nothing made
    torch.save(published(tinysr_state(2, 6, seed=23)), tmp_path / "x2.pth")
    other = run_sresr("weights", "interpolate", str(tmp_path / "a.pth"), str(tmp_path / "x2.pth"), "--alpha", "0.5",
                      "--name", "bad", extra_paths=[plugin], SRESR_HOME=str(tmp_path / "home"))
    assert other.returncode != 0 and "they are different networks" in other.stderr
    far = run_sresr("weights", "interpolate", str(tmp_path / "a.pth"), str(tmp_path / "b.pth"), "--alpha", "1.5",
                    "--name", "bad", extra_paths=[plugin], SRESR_HOME=str(tmp_path / "home"))
    assert far.returncode == 2 and "between 0 and 1" in far.stderr


def test_interpolating_other_files_under_a_taken_name_is_refused_even_without_source_records(plugin, tmp_path):
    """Files written by hand carry no ``sresr.source_sha256``: the mix is then named by the files'
    own bytes, so mixing two other files under a name already taken is refused, not taken for
    the same mix and silently kept."""
    from sresr.weights import write_weights

    for i, seed in enumerate((31, 32, 33, 34)):
        write_weights(tinysr_state(4, 6, seed=seed), tmp_path / f"w{i}.safetensors", "tinysr", 4, {"nf": 6}, "rgb")
    home = str(tmp_path / "home")
    first = run_sresr("weights", "interpolate", str(tmp_path / "w0.safetensors"), str(tmp_path / "w1.safetensors"),
                      "--alpha", "0.5", "--name", "mix", extra_paths=[plugin], SRESR_HOME=home, check=True)
    again = run_sresr("weights", "interpolate", str(tmp_path / "w0.safetensors"), str(tmp_path / "w1.safetensors"),
                      "--alpha", "0.5", "--name", "mix", extra_paths=[plugin], SRESR_HOME=home)
    other = run_sresr("weights", "interpolate", str(tmp_path / "w2.safetensors"), str(tmp_path / "w3.safetensors"),
                      "--alpha", "0.5", "--name", "mix", extra_paths=[plugin], SRESR_HOME=home)
    assert first.returncode == 0 and again.returncode == 0, again.stderr
    assert other.returncode == 2 and "already exists" in other.stderr
