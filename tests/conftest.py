"""Shared fixtures. Tests run against the source tree they live in (see ``pythonpath``)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src"
DATA = Path(__file__).resolve().parent / "data"
#: the tiny training set (HR and validation images) and the ``tinysr`` training plugin of the train tests
TRAIN_DATA = DATA / "train"
TRAIN_PLUGIN = DATA / "train_plugin"


def subprocess_env(extra_paths: list[Path] | None = None, **env: str) -> dict[str, str]:
    """Environment for a child Python that imports this tree's ``src`` first."""
    out = dict(os.environ)
    paths = [str(p) for p in (extra_paths or [])] + [str(SRC)]
    if out.get("PYTHONPATH"):
        paths.append(out["PYTHONPATH"])
    out["PYTHONPATH"] = os.pathsep.join(paths)
    out.setdefault("SRESR_OFFLINE", "1")
    out["NO_COLOR"] = "1"
    out["COLUMNS"] = "200"
    out.update(env)
    return out


def run_sresr(*args: str, extra_paths: list[Path] | None = None, check: bool = False, timeout: float = 600,
              cwd: Path | None = None, **env: str) -> subprocess.CompletedProcess[str]:
    """Run ``python -m sresr ARGS`` in a real subprocess."""
    proc = subprocess.run(
        [sys.executable, "-m", "sresr", *args],
        capture_output=True,
        text=True,
        env=subprocess_env(extra_paths, **env),
        timeout=timeout,
        cwd=cwd,
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"sresr {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test gets its own cache dir and never touches the network by default."""
    home = tmp_path_factory.mktemp("sresr_home")
    monkeypatch.setenv("SRESR_HOME", str(home))
    monkeypatch.setenv("SRESR_OFFLINE", "1")
    return home


@pytest.fixture
def sresr_home(_isolated_home: Path) -> Path:
    return _isolated_home


@pytest.fixture(autouse=True, scope="session")
def _few_threads() -> None:
    """Two cores here: keep torch from oversubscribing when tests run in parallel helpers."""
    try:
        import torch
    except Exception:  # pragma: no cover
        return
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1") or 1)  # pytest -n N: the cores shared out
    torch.set_num_threads(max(1, min(2, (os.cpu_count() or 1) // workers)))


@pytest.fixture
def plugin(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch):
    """The tiny third-party distribution of ``_plugin.py``, written to a temp dir and put on
    sys.path (without its published variant: set TINYSR_URL / TINYSR_SHA256, then
    ``forget_plugin()``, to declare one)."""
    from _plugin import forget_plugin, make_plugin

    root = make_plugin(tmp_path_factory.mktemp("plugin"))
    monkeypatch.syspath_prepend(str(root))
    monkeypatch.delenv("TINYSR_URL", raising=False)
    monkeypatch.delenv("TINYSR_SHA256", raising=False)
    forget_plugin()
    yield root
    forget_plugin()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests that use CUDA (they say "needs CUDA" when skipped) run on one xdist worker, one at a
    time: they measure the GPU's free memory and time it, which a neighbour would disturb."""
    for item in items:
        if any("needs CUDA" in str(m.kwargs.get("reason", "")) for m in item.iter_markers("skipif")) \
                or "cuda" in item.name.lower():
            item.add_marker(pytest.mark.xdist_group("cuda"))
