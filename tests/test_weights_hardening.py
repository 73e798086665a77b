"""The weights cache as an attacker and a careless user would meet it: URLs that serve error pages
or bodies cut short, damaged cached files, imports racing for one name, names with newlines,
weights whose tensors cannot tell their scale, models without weights, a cache folder that cannot
be written. A real HTTP server on 127.0.0.1, real files, real subprocesses."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image as PILImage

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _http import FileServer  # noqa: E402
from _plugin import forget_plugin, tinysr_reference, tinysr_state  # noqa: E402
from conftest import run_sresr, subprocess_env  # noqa: E402

from sresr.errors import DamagedWeightsError, ScaleUnknownError, UsageError, WeightsError  # noqa: E402
from sresr.models._layouts import read_checkpoint  # noqa: E402
from sresr.resolve import load_model  # noqa: E402
from sresr.weights import (  # noqa: E402
    converted_dir,
    downloads_dir,
    import_weights,
    imported_dir,
    pulled_dir,
    read_metadata,
)

X = torch.rand(1, 3, 7, 9, generator=torch.Generator().manual_seed(0))
GOOD = Path(__file__).resolve().parent / "plugins" / "good"


_forget_plugin = forget_plugin


@pytest.fixture
def online(monkeypatch):
    monkeypatch.setenv("SRESR_OFFLINE", "0")


def _pth(path: Path, scale: int = 4, nf: int = 6, seed: int = 5) -> tuple[Path, dict]:
    state = tinysr_state(scale, nf, seed=seed)
    torch.save({"params_ema": state}, path)
    return path, state


def _flip_tensor_byte(path: Path, at: int = 10) -> None:
    """Flip one byte inside the tensor data of a safetensors file (after its header)."""
    data = bytearray(path.read_bytes())
    start = 8 + int.from_bytes(data[:8], "little")
    data[start + at] ^= 0x40
    path.write_bytes(bytes(data))


def _files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.rglob("*") if p.is_file()) if folder.exists() else []


# -- --weights URL: nothing unusable is ever kept ------------------------------------------------------


@pytest.mark.parametrize("bad", ["html", "cut-short"])
def test_url_weights_keep_only_a_body_that_loads(plugin, online, tmp_path, bad):
    pth, state = _pth(tmp_path / "w_x4.pth")
    good = pth.read_bytes()
    html = b"<!DOCTYPE html><html><body>Rate limit exceeded</body></html>" * 3
    with FileServer({"w_x4.pth": html if bad == "html" else good}) as srv:
        url = srv.url("w_x4.pth" if bad == "html" else "nolen-drop/w_x4.pth")
        with pytest.raises(WeightsError) as info:
            load_model("tinysr", weights=url)
        msg = info.value.message
        assert url in msg and "\n" not in msg
        assert ("HTML" in msg) if bad == "html" else ("checkpoint" in msg)
        assert "weights_only" not in msg + (info.value.hint or "")
        assert [n for n in _files(downloads_dir()) if not n.endswith(".lock")] == []  # nothing kept
        # the server is asked again next time, and a good body is kept
        srv.files["w_x4.pth"] = good
        url_ok = srv.url("w_x4.pth" if bad == "html" else "nolen/w_x4.pth")
        loaded = load_model("tinysr", weights=url_ok)
        torch.testing.assert_close(loaded.module(X), tinysr_reference(state, X))


def test_cached_url_download_that_no_longer_loads_is_fetched_again_once(plugin, online, tmp_path):
    pth, state = _pth(tmp_path / "w_x4.pth")
    with FileServer({"w_x4.pth": pth.read_bytes()}) as srv:
        url = srv.url("w_x4.pth")
        load_model("tinysr", weights=url)
        assert srv.hits["/w_x4.pth"] == 1
        load_model("tinysr", weights=url)
        assert srv.hits["/w_x4.pth"] == 1  # a good cached file is reused
        (raw,) = [p for p in downloads_dir().iterdir() if p.name.endswith("w_x4.pth")]
        raw.write_bytes(raw.read_bytes()[:200])  # damaged since (a disk error, a killed copy)
        loaded = load_model("tinysr", weights=url)
        assert srv.hits["/w_x4.pth"] == 2
        torch.testing.assert_close(loaded.module(X), tinysr_reference(state, X))
        raw.write_bytes(b"garbage")
        srv.files["w_x4.pth"] = b"<html>gone</html>"
        with pytest.raises(WeightsError, match="w_x4.pth"):
            load_model("tinysr", weights=url)
        assert srv.hits["/w_x4.pth"] == 3  # re-fetched once, not in a loop


def test_checkpoint_errors_never_advise_unpickling(tmp_path):
    import pickle

    (tmp_path / "legacy.pth").write_bytes(pickle.dumps({"a": 1}, protocol=2))
    (tmp_path / "page.pth").write_bytes(b"<html>404</html>")
    torch.save({"a": torch.zeros(2)}, tmp_path / "ok.pth")
    (tmp_path / "cut.pth").write_bytes((tmp_path / "ok.pth").read_bytes()[:300])
    for name in ("legacy.pth", "page.pth", "cut.pth"):
        with pytest.raises(WeightsError) as info:
            read_checkpoint(tmp_path / name)
        text = info.value.message + " " + (info.value.hint or "")
        assert name in text and "\n" not in text
        assert "weights_only" not in text and "trusted source" not in text.lower()


# -- damaged files in the cache ---------------------------------------------------------------------


def test_damaged_imported_weights_name_their_id(plugin, tmp_path):
    pth, _ = _pth(tmp_path / "w_x4.pth")
    import_weights(pth, name="mine")
    _flip_tensor_byte(imported_dir() / "mine.safetensors")
    with pytest.raises(DamagedWeightsError) as info:
        load_model("mine")
    assert "mine" in info.value.message and "sresr weights rm mine" in info.value.hint


def test_damaged_conversion_is_rebuilt_from_the_file_given_again(plugin, tmp_path):
    pth, state = _pth(tmp_path / "w_x4.pth")
    load_model("tinysr", weights=str(pth))
    (conv,) = converted_dir().glob("*.safetensors")
    _flip_tensor_byte(conv)
    loaded = load_model("tinysr", weights=str(pth))
    torch.testing.assert_close(loaded.module(X), tinysr_reference(state, X))
    assert read_metadata(conv).get("sresr.digest")


def test_damaged_pulled_variant_is_downloaded_again(plugin, online, tmp_path, monkeypatch):
    import hashlib

    pth, state = _pth(tmp_path / "tiny_x4.pth", seed=11)
    with FileServer({"tiny_x4.pth": pth.read_bytes()}) as srv:
        monkeypatch.setenv("TINYSR_URL", srv.url("tiny_x4.pth"))
        monkeypatch.setenv("TINYSR_SHA256", hashlib.sha256(pth.read_bytes()).hexdigest())
        _forget_plugin()
        load_model("tinysr.x4")
        _flip_tensor_byte(pulled_dir() / "tinysr.x4.safetensors")
        loaded = load_model("tinysr.x4")
        assert srv.hits["/tiny_x4.pth"] == 2
        torch.testing.assert_close(loaded.module(X), tinysr_reference(state, X))


def test_damaged_imported_weights_fail_upscale_in_one_line(plugin, tmp_path):
    pth, _ = _pth(tmp_path / "w_x4.pth")
    env = {"PYTHONPATH": f"{plugin}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    import_weights(pth, name="mine")
    _flip_tensor_byte(imported_dir() / "mine.safetensors")
    PILImage.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "a.png")
    proc = run_sresr("upscale", str(tmp_path / "a.png"), "-o", str(tmp_path / "out"), "-m", "mine", **env)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert proc.stderr.startswith("error: weights mine") and "sresr weights rm mine" in proc.stderr


# -- imports -------------------------------------------------------------------------------------


def test_concurrent_imports_under_one_name_one_wins_the_other_is_told(plugin, tmp_path):
    files = [_pth(tmp_path / f"w{i}_x4.pth", seed=20 + i)[0] for i in range(3)]
    env = subprocess_env([plugin])
    procs = [subprocess.Popen([sys.executable, "-m", "sresr", "weights", "import", str(f), "--name", "same"],
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for f in files]
    outs = [p.communicate(timeout=300) for p in procs]
    codes = [p.returncode for p in procs]
    assert codes.count(0) == 1, (codes, outs)
    winner = files[codes.index(0)]
    for code, (_, err) in zip(codes, outs):
        if code:
            assert code == 2 and "already exists" in err and str(winner) in err, err
    meta = read_metadata(imported_dir() / "same.safetensors")
    assert meta["sresr.source"] == str(winner.resolve())


@pytest.mark.parametrize("name", ["x\n", "a" * 300, "../up", "has space"])
def test_import_names_are_checked_whole(plugin, tmp_path, name):
    pth, _ = _pth(tmp_path / "w_x4.pth")
    with pytest.raises(UsageError, match="invalid name"):
        import_weights(pth, name=name)
    assert _files(imported_dir()) == []


# -- weights whose tensors cannot tell the scale ---------------------------------------------------


def _fsrcnn_file(path: Path, scale: int) -> Path:
    from sresr.models.fsrcnn.arch import fsrcnn

    torch.manual_seed(scale)
    torch.save(fsrcnn(scale).state_dict(), path)
    return path


def test_fsrcnn_scale_comes_from_scale_then_file_name_never_a_guess(tmp_path):
    named = _fsrcnn_file(tmp_path / "fsrcnn_x3.pth", 3)
    assert import_weights(named, model="fsrcnn").scale == 3
    plain = _fsrcnn_file(tmp_path / "weights.pth", 2)  # its name says nothing
    with pytest.raises(ScaleUnknownError, match="do not tell their scale") as info:
        import_weights(plain, model="fsrcnn", name="plain")
    assert "--scale" in info.value.hint
    assert import_weights(plain, model="fsrcnn", name="plain4", scale=4).scale == 4
    # detected without --model too, and the scale -s gives is used
    assert load_model(None, scale=3, weights=str(plain)).scale == 3
    assert load_model(None, weights=str(named)).scale == 3


def test_fsrcnn_import_then_upscale_at_that_scale(tmp_path):
    from sresr.pipeline import UpscaleOptions, upscale_paths
    from sresr.weights import list_cached

    named = _fsrcnn_file(tmp_path / "FSRCNN-x4.pth", 4)
    import_weights(named, model="fsrcnn", name="f4")
    assert {e.id: e.scale for e in list_cached(include_bundled=False)}["f4"] == 4
    PILImage.fromarray(np.full((10, 12, 3), 128, np.uint8)).save(tmp_path / "a.png")
    (res,) = upscale_paths([tmp_path / "a.png"], tmp_path / "o1", UpscaleOptions(scale=4, weights=str(named)))
    assert res.status == "ok" and PILImage.open(tmp_path / "o1" / "a.png").size == (48, 40)


# -- models without weights -----------------------------------------------------------------------


def test_plugin_without_weights_runs_its_factory(tmp_path):
    PILImage.fromarray(np.full((10, 12, 3), 100, np.uint8)).save(tmp_path / "a.png")
    proc = run_sresr("upscale", str(tmp_path / "a.png"), "-o", str(tmp_path / "out"), "-m", "mynet", "-s", "2",
                     extra_paths=[GOOD])
    assert proc.returncode == 0, proc.stderr
    assert PILImage.open(tmp_path / "out" / "a.png").size == (24, 20)
    listing = run_sresr("models", extra_paths=[GOOD], check=True).stdout
    (row,) = [ln for ln in listing.splitlines() if "mynet" in ln]
    assert "factory's own" in row


def test_builtin_family_without_weights_says_where_they_come_from(tmp_path):
    PILImage.fromarray(np.full((10, 12, 3), 100, np.uint8)).save(tmp_path / "a.png")
    proc = run_sresr("upscale", str(tmp_path / "a.png"), "-o", str(tmp_path / "out"), "-m", "vdsr", "-s", "2")
    assert proc.returncode == 1
    assert "has no weights" in proc.stderr and "sresr train vdsr" in proc.stderr
    assert "pick a scale" not in proc.stderr
    with pytest.raises(WeightsError, match="no weights for x2") as info:
        load_model("srcnn", scale=2)  # some scale has weights: they are named
    assert "srcnn.x3 (x3)" in info.value.hint


# -- a cache folder that cannot be written ----------------------------------------------------------


def test_cache_home_that_is_a_file_is_one_line(tmp_path, monkeypatch):
    home = tmp_path / "home"
    home.write_text("not a folder")
    pth = _fsrcnn_file(tmp_path / "fsrcnn_x2.pth", 2)
    PILImage.fromarray(np.full((10, 12, 3), 100, np.uint8)).save(tmp_path / "a.png")
    proc = run_sresr("upscale", str(tmp_path / "a.png"), "-o", str(tmp_path / "out"), "--weights", str(pth),
                     SRESR_HOME=str(home))
    assert proc.returncode == 1 and "Traceback" not in proc.stderr and "internal error" not in proc.stderr
    assert "cannot write" in proc.stderr and "SRESR_HOME" in proc.stderr
    monkeypatch.setenv("SRESR_HOME", str(home))
    with pytest.raises(WeightsError, match="cannot write") as info:
        import_weights(pth, name="x")
    assert "SRESR_HOME" in info.value.hint


@pytest.mark.skipif(not shutil.which("unshare"), reason="needs unshare")
def test_full_cache_folder_is_one_line(tmp_path):
    probe = subprocess.run(["unshare", "-rm", "sh", "-c", "mount -t tmpfs -o size=8k tmpfs /mnt"], capture_output=True)
    if probe.returncode:
        pytest.skip("cannot mount a tmpfs here")
    home = tmp_path / "home"
    home.mkdir()
    pth = _fsrcnn_file(tmp_path / "fsrcnn_x2.pth", 2)
    script = (f"mount -t tmpfs -o size=8k tmpfs {home} && exec {sys.executable} -m sresr weights import {pth} "
              "--name big")
    proc = subprocess.run(["unshare", "-rm", "sh", "-c", script], env=subprocess_env(SRESR_HOME=str(home)),
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1, proc.stderr
    assert "No space left on device" in proc.stderr and "Traceback" not in proc.stderr


# -- a download killed mid-way leaves nothing behind ---------------------------------------------------


def test_killed_download_leaves_no_part_or_lock_after_the_next_one(plugin, tmp_path, online):
    pth, _ = _pth(tmp_path / "w_x4.pth")
    body = pth.read_bytes()
    with FileServer({"w_x4.pth": body}) as srv:
        env = subprocess_env([plugin], SRESR_OFFLINE="0")
        code = (f"from sresr.download import download; download({srv.url('stall/w_x4.pth')!r}, "
                f"__import__('pathlib').Path({str(tmp_path / 'cache' / 'w_x4.pth')!r}), progress=False)")
        proc = subprocess.Popen([sys.executable, "-c", code], env=env)
        deadline = time.monotonic() + 60
        while not list((tmp_path / "cache").glob(".w_x4.pth.*.part")) and time.monotonic() < deadline:
            time.sleep(0.05)
        proc.kill()
        proc.wait()
        assert list((tmp_path / "cache").glob(".w_x4.pth.*.part"))  # what a killed download leaves
        from sresr.download import download

        download(srv.url("w_x4.pth"), tmp_path / "cache" / "w_x4.pth", progress=False)
    assert _files(tmp_path / "cache") == ["w_x4.pth"]
