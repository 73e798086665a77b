"""sresr.download against a real HTTP server on 127.0.0.1, with the cache in a temp dir."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _http import FileServer  # noqa: E402
from conftest import subprocess_env  # noqa: E402

from sresr import cache  # noqa: E402
from sresr.download import download, sha256_file  # noqa: E402
from sresr.errors import DatasetError, SresrError, WeightsError  # noqa: E402

PAYLOAD = bytes(range(256)) * 4096 + b"tail"  # ~1 MiB, not a multiple of the chunk size
SHA = hashlib.sha256(PAYLOAD).hexdigest()


@pytest.fixture
def server():
    with FileServer({"w.bin": PAYLOAD}) as srv:
        yield srv


@pytest.fixture
def online(monkeypatch):
    monkeypatch.setenv("SRESR_OFFLINE", "0")


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def test_home_and_offline_follow_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("SRESR_HOME", str(tmp_path / "h"))
    assert cache.home() == tmp_path / "h"
    assert cache.weights_dir() == tmp_path / "h" / "weights"
    assert cache.datasets_dir(create=True).is_dir()
    monkeypatch.setenv("SRESR_OFFLINE", "1")
    assert cache.offline()
    monkeypatch.setenv("SRESR_OFFLINE", "0")
    assert not cache.offline()
    monkeypatch.delenv("SRESR_HOME")
    assert cache.home().name == "sresr"  # platformdirs user cache dir


def test_correct_hash_downloads_and_verifies(server, online, tmp_path):
    dest = tmp_path / "cache" / "w.bin"
    out = download(server.url("w.bin"), dest, sha256=SHA, progress=False)
    assert out == dest
    assert dest.read_bytes() == PAYLOAD
    assert hashlib.sha256(dest.read_bytes()).hexdigest() == sha256_file(dest) == SHA
    assert _leftovers(dest.parent) == ["w.bin"]  # no .part, no .lock
    # present and valid: returned without touching the server again
    download(server.url("w.bin"), dest, sha256=SHA, progress=False)
    assert server.hits["/w.bin"] == 1


def test_wrong_hash_is_refused_and_leaves_nothing(server, online, tmp_path):
    dest = tmp_path / "cache" / "w.bin"
    wrong = "0" * 64
    with pytest.raises(WeightsError) as info:
        download(server.url("w.bin"), dest, sha256=wrong, progress=False)
    msg = info.value.message
    assert f"expected sha256 {wrong}" in msg and f"got {SHA}" in msg
    assert server.url("w.bin") in msg
    assert _leftovers(dest.parent) == []


def test_connection_dropped_mid_file_keeps_nothing(server, online, tmp_path):
    dest = tmp_path / "cache" / "w.bin"
    url = server.url("drop/w.bin")
    # without a sha256 too: the short body alone must be detected
    with pytest.raises(WeightsError) as info:
        download(url, dest, progress=False)
    assert url in info.value.message and "broke off" in info.value.message
    assert _leftovers(dest.parent) == []


def test_404_names_the_url(server, online, tmp_path):
    dest = tmp_path / "cache" / "missing.bin"
    url = server.url("missing.bin")
    with pytest.raises(WeightsError) as info:
        download(url, dest, sha256=SHA, progress=False)
    assert url in info.value.message and "404" in info.value.message
    assert _leftovers(dest.parent) == []


def test_unreachable_server_is_one_clear_error(online, tmp_path):
    import socket

    with socket.socket() as s:  # a port with nobody listening
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}/x.bin"
    with pytest.raises(WeightsError) as info:
        download(url, tmp_path / "x.bin", progress=False)
    assert url in info.value.message


def test_corrupt_existing_file_is_replaced(server, online, tmp_path):
    dest = tmp_path / "w.bin"
    dest.write_bytes(b"garbage")
    download(server.url("w.bin"), dest, sha256=SHA, progress=False)
    assert dest.read_bytes() == PAYLOAD


def test_datasets_raise_dataset_error(server, online, tmp_path):
    with pytest.raises(DatasetError):
        download(server.url("nope.zip"), tmp_path / "nope.zip", what="dataset", progress=False)
    with pytest.raises(SresrError):
        download(server.url("nope.zip"), tmp_path / "nope.zip", what="file", progress=False)


def test_offline_never_touches_the_network(server, tmp_path):
    assert os.environ["SRESR_OFFLINE"] == "1"
    dest = tmp_path / "cache" / "w.bin"
    url = server.url("w.bin")
    with pytest.raises(WeightsError) as info:
        download(url, dest, sha256=SHA, progress=False)
    assert "w.bin" in info.value.message and url in info.value.message
    assert "SRESR_OFFLINE" in info.value.message
    assert "sresr weights import" in (info.value.hint or "")
    assert server.hits == {}
    assert not dest.exists()
    # a verified file already in place is fine offline
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_bytes(PAYLOAD)
    assert download(url, dest, sha256=SHA, progress=False) == dest
    assert server.hits == {}


def test_two_processes_fetching_at_once_end_with_one_valid_file(server, tmp_path):
    dest = tmp_path / "cache" / "w.bin"
    url = server.url("slow/w.bin")
    code = (
        "import sys; from sresr.download import download; "
        "download(sys.argv[1], sys.argv[2], sha256=sys.argv[3], progress=False); print('ok')"
    )
    env = subprocess_env(SRESR_OFFLINE="0")
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", code, url, str(dest), SHA],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    results = [p.communicate(timeout=120) for p in procs]
    for p, (out, err) in zip(procs, results):
        assert p.returncode == 0, err
        assert out.strip() == "ok"
    assert dest.read_bytes() == PAYLOAD
    assert _leftovers(dest.parent) == ["w.bin"]
    # the lock made the second process wait and reuse the first one's file
    assert server.hits["/slow/w.bin"] == 1
