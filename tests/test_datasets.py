"""Datasets: bundled Set5, folders (with and without given LR), downloads from a real local server."""

from __future__ import annotations

import hashlib
import http.server
import threading
import zipfile
from functools import partial
from pathlib import Path
from typing import Iterator

import numpy as np
import pytest
from PIL import Image

from sresr import datasets
from sresr.datasets import DatasetInfo, RemoteFile, load_dataset, make_lr
from sresr.errors import DatasetError

LR_DIR = Path(__file__).resolve().parent / "data" / "set5_lr"


def test_set5_is_bundled_and_lr_matches_matlab(sresr_home: Path) -> None:
    ds = load_dataset("set5")
    assert [f.stem for f in ds.hr_files] == ["baby", "bird", "butterfly", "head", "woman"]
    s = ds.sample(ds.hr_files[4], 3)  # woman: 228x344 -> modcrop 228x342
    assert s.hr.shape == (342, 228, 3) and s.lr.shape == (114, 76, 3) and not s.lr_given
    expected = np.array(Image.open(LR_DIR / "X3" / "womanx3.png").convert("RGB"))
    assert np.array_equal(s.lr, expected)
    # cached under SRESR_HOME, and reused
    cached = list((sresr_home / "datasets" / "_lr" / "set5" / "X3").glob("woman-*.png"))
    assert len(cached) == 1
    assert np.array_equal(ds.sample(ds.hr_files[4], 3).lr, expected)


def _write(path: Path, arr: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path)


def test_folder_of_hr_images_and_given_lr(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    plain = tmp_path / "plain"
    _write(plain / "a.png", rng.integers(0, 256, (26, 30, 3), dtype=np.uint8))
    _write(plain / "g.png", rng.integers(0, 256, (24, 24), dtype=np.uint8))
    (plain / "notes.txt").write_text("not an image")
    ds = load_dataset(str(plain))
    assert [f.name for f in ds.hr_files] == ["a.png", "g.png"]
    a = ds.sample(ds.hr_files[0], 4)
    assert a.hr.shape == (24, 28, 3) and a.lr.shape == (6, 7, 3)
    g = ds.sample(ds.hr_files[1], 4)
    assert g.hr.ndim == 2 and g.lr.shape == (6, 6)

    # EDSR layout: HR/ + LR_bicubic/X2/NAMEx2.png are used as given (here: a constant image)
    edsr = tmp_path / "edsr"
    _write(edsr / "HR" / "img.png", rng.integers(0, 256, (20, 20, 3), dtype=np.uint8))
    _write(edsr / "LR_bicubic" / "X2" / "imgx2.png", np.full((10, 10, 3), 7, np.uint8))
    ds2 = load_dataset(edsr)
    s = ds2.sample(ds2.hr_files[0], 2)
    assert s.lr_given and (s.lr == 7).all()
    # scale without given LR: generated
    assert not ds2.sample(ds2.hr_files[0], 4).lr_given
    # wrong LR size is a clear error
    _write(edsr / "LR_bicubic" / "X2" / "imgx2.png", np.zeros((9, 10, 3), np.uint8))
    with pytest.raises(DatasetError, match="needs 10x10"):
        ds2.sample(ds2.hr_files[0], 2)


def test_unknown_name_and_empty_folder(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="unknown dataset 'set15'") as exc:
        load_dataset("set15")
    assert "set14" in (exc.value.hint or "")
    with pytest.raises(DatasetError, match="no images"):
        load_dataset(tmp_path)


def test_named_entries_are_honest() -> None:
    for info in datasets.list_datasets():
        sources = [bool(info.bundled), bool(info.files), bool(info.url)]
        assert sum(sources) <= 1, info.name
        if info.url and not info.sha256:
            assert "sha256" in info.note
        for f in info.files:
            assert len(f.sha256) == 64
        if info.files:
            assert len(info.files) == info.count
    assert set(datasets.DATASETS) >= {"set5", "set14", "b100", "urban100", "manga109", "div2k-valid",
                                      "div2k-train", "t91", "bsds200"}


# -- downloads from a real HTTP server on 127.0.0.1 ------------------------------------------------
class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    root = tmp_path / "www"
    root.mkdir()
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), partial(_Quiet, directory=str(root)))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", root
    finally:
        httpd.shutdown()
        httpd.server_close()


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _make_zip(root: Path) -> Path:
    rng = np.random.default_rng(1)
    src = root / "src" / "Tiny_HR"
    for i in range(3):
        _write(src / f"{i:04d}.png", rng.integers(0, 256, (16, 20, 3), dtype=np.uint8))
    archive = root / "tiny.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for p in sorted(src.iterdir()):
            zf.write(p, f"Tiny_HR/{p.name}")
    return archive


def test_archive_download_verify_extract(server: tuple[str, Path], sresr_home: Path,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    base, www = server
    archive = _make_zip(www)
    digest = _sha(archive)
    monkeypatch.setenv("SRESR_OFFLINE", "0")

    # checksum mismatch: clear error, nothing extracted, nothing kept
    bad = DatasetInfo("tiny", "test", 3, url=f"{base}/tiny.zip", sha256="0" * 64, hr_dir="Tiny_HR")
    monkeypatch.setitem(datasets.DATASETS, "tiny", bad)
    with pytest.raises(DatasetError, match="failed verification"):
        load_dataset("tiny", progress=False)
    assert not (sresr_home / "datasets" / "tiny").exists()
    assert not (sresr_home / "datasets" / "_downloads" / "tiny.zip").exists()

    # unknown checksum: refused unless the user vouches for one
    unknown = DatasetInfo("tiny", "test", 3, url=f"{base}/tiny.zip", hr_dir="Tiny_HR", note="no sha256")
    monkeypatch.setitem(datasets.DATASETS, "tiny", unknown)
    with pytest.raises(DatasetError, match="no verified sha256"):
        load_dataset("tiny", progress=False)
    ds = load_dataset("tiny", sha256=digest, progress=False)
    assert len(ds) == 3 and (sresr_home / "datasets" / "tiny" / ".complete").is_file()
    assert ds.sample(ds.hr_files[0], 2).lr.shape == (8, 10, 3)

    # a wrong file count is reported
    wrong = DatasetInfo("tiny2", "test", 5, url=f"{base}/tiny.zip", sha256=digest, hr_dir="Tiny_HR")
    monkeypatch.setitem(datasets.DATASETS, "tiny2", wrong)
    with pytest.raises(DatasetError, match="expected 5 HR images"):
        load_dataset("tiny2", progress=False)


def test_per_file_download_and_mismatch(server: tuple[str, Path], sresr_home: Path,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    base, www = server
    rng = np.random.default_rng(2)
    for name in ("x.png", "y.png"):
        _write(www / "files" / name, rng.integers(0, 256, (12, 12, 3), dtype=np.uint8))
    files = tuple(RemoteFile(f"{base}/files/{n}", _sha(www / "files" / n), n) for n in ("x.png", "y.png"))
    monkeypatch.setenv("SRESR_OFFLINE", "0")
    monkeypatch.setitem(datasets.DATASETS, "pf", DatasetInfo("pf", "test", 2, files=files))
    ds = load_dataset("pf", progress=False)
    assert [f.name for f in ds.hr_files] == ["x.png", "y.png"]

    tampered = (files[0], RemoteFile(files[1].url, "f" * 64, "y.png"))
    monkeypatch.setitem(datasets.DATASETS, "pf2", DatasetInfo("pf2", "test", 2, files=tampered))
    with pytest.raises(DatasetError, match="expected sha256 f{64}"):
        load_dataset("pf2", progress=False)
    assert not (sresr_home / "datasets" / "pf2" / "HR" / "y.png").exists()


def test_offline_names_the_url(monkeypatch: pytest.MonkeyPatch) -> None:
    # SRESR_OFFLINE=1 (set by conftest): no connection is attempted
    with pytest.raises(DatasetError, match="SRESR_OFFLINE"):
        load_dataset("set14", progress=False)


def test_make_lr_gray_and_rgb_agree() -> None:
    rng = np.random.default_rng(3)
    g = rng.integers(0, 256, (12, 12), dtype=np.uint8)
    rgb = np.repeat(g[..., None], 3, axis=2)
    assert np.array_equal(make_lr(rgb, 3)[..., 0], make_lr(g, 3))


def test_set14_manifest_matches_the_published_files() -> None:
    folder = Path(__file__).resolve().parent / "data" / "set14"
    if not folder.is_dir():
        pytest.skip("tests/data/set14 not present")
    info = datasets.DATASETS["set14"]
    assert {f.path: f.sha256 for f in info.files} == {p.name: _sha(p) for p in folder.glob("*.png")}
