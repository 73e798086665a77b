"""``sresr weights ...`` in real subprocesses, with a tiny plugin distribution on the path."""

from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _http import FileServer  # noqa: E402
from _plugin import make_plugin, tinysr_reference, tinysr_state  # noqa: E402
from conftest import run_sresr  # noqa: E402


@pytest.fixture
def plugin(tmp_path_factory):
    return make_plugin(tmp_path_factory.mktemp("plugin"))


def sresr(plugin: Path, *args: str, **env: str):
    return run_sresr(*args, extra_paths=[plugin], **env)


class Evil:
    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_weights_cli_does_not_import_torch():
    code = "import sys, sresr.cli.main, sresr.cli.weights, sresr.weights, sresr.download; print('torch' in sys.modules)"
    proc = run_sresr("--version")
    assert proc.returncode == 0
    import subprocess

    from conftest import subprocess_env

    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=subprocess_env())
    assert out.stdout.strip() == "False", out.stderr


def test_import_then_list_path_use_and_rm(plugin, tmp_path, sresr_home):
    state = tinysr_state(4, 5, seed=21)
    pth = tmp_path / "RealTiny_x4plus.pth"
    # published layout: params_ema + params, DataParallel prefixes
    torch.save(
        {
            "params_ema": {f"module.{k}": v for k, v in state.items()},
            "params": {f"module.{k}": v * 0 for k, v in state.items()},
        },
        pth,
    )
    digest = hashlib.sha256(pth.read_bytes()).hexdigest()
    proc = sresr(plugin, "weights", "import", str(pth), "--name", "mytiny", "--json")
    assert proc.returncode == 0, proc.stderr
    rec = json.loads(proc.stdout)
    assert (rec["id"], rec["kind"], rec["model"], rec["scale"]) == ("mytiny", "imported", "tinysr", 4)
    assert rec["sha256"] == digest
    imported = Path(rec["path"])
    assert imported.is_file() and sresr_home in imported.parents

    listed = json.loads(sresr(plugin, "weights", "list", "--json", check=True).stdout)
    by_id = {r["id"]: r for r in listed}
    assert by_id["mytiny"]["sha256"] == digest and by_id["mytiny"]["source"] == str(pth.resolve())
    assert by_id["tinysr.x2"]["kind"] == "bundled"
    assert "mytiny" in sresr(plugin, "weights", "list", check=True).stdout
    # on a narrow terminal every id and source is still whole (plain columns instead of the table)
    narrow = sresr(plugin, "weights", "list", COLUMNS="60", check=True).stdout
    for r in listed:
        assert any(line.split()[:1] == [r["id"]] and r["source"] in line for line in narrow.splitlines()), narrow
    assert "…" not in narrow

    path = sresr(plugin, "weights", "path", "mytiny", check=True).stdout.strip()
    assert Path(path) == imported
    assert Path(sresr(plugin, "weights", "path", check=True).stdout.strip()) == sresr_home / "weights"

    # the imported name rebuilds the network by itself, in a fresh process
    code = (
        "import sys, torch; from sresr.resolve import load_model; "
        "m = load_model(sys.argv[1]); x = torch.load(sys.argv[2]); "
        "print(m.name, m.scale, m.weights_id); torch.save(m.module(x).detach(), sys.argv[3])"
    )
    x = torch.rand(1, 3, 5, 6)
    torch.save(x, tmp_path / "x.pt")
    import subprocess

    from conftest import subprocess_env

    out = subprocess.run(
        [sys.executable, "-c", code, "mytiny", str(tmp_path / "x.pt"), str(tmp_path / "y.pt")],
        capture_output=True, text=True, env=subprocess_env([plugin]),
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["tinysr", "4", "mytiny"]
    torch.testing.assert_close(torch.load(tmp_path / "y.pt"), tinysr_reference(state, x))

    if run_sresr("upscale", "--help").returncode == 0:  # the engine's command, once it has landed
        from PIL import Image

        Image.new("RGB", (6, 5), (120, 30, 200)).save(tmp_path / "in.png")
        up = sresr(plugin, "upscale", str(tmp_path / "in.png"), "-m", "mytiny", "-o", str(tmp_path / "out"))
        assert up.returncode == 0, up.stderr
        outs = list((tmp_path / "out").glob("*.png"))
        assert len(outs) == 1 and Image.open(outs[0]).size == (24, 20)

    rm = sresr(plugin, "weights", "rm", "mytiny", "--json")
    assert rm.returncode == 0, rm.stderr
    assert json.loads(rm.stdout)["removed"] == [str(imported)]
    assert not imported.exists()
    gone = sresr(plugin, "weights", "path", "mytiny")
    assert gone.returncode == 1 and "mytiny" in gone.stderr and "Traceback" not in gone.stderr


def test_import_detects_the_architecture_and_names_it_after_the_file(plugin, tmp_path):
    pth = tmp_path / "tiny-net.ckpt"
    torch.save({"state_dict": tinysr_state(2, 3)}, pth)
    proc = sresr(plugin, "weights", "import", str(pth))
    assert proc.returncode == 0, proc.stderr
    assert "tiny-net" in proc.stdout and "tinysr" in proc.stdout
    listed = json.loads(sresr(plugin, "weights", "list", "--cached", "--json", check=True).stdout)
    assert {(r["id"], r["kind"]) for r in listed} == {
        ("tiny-net", "imported"),
        (hashlib.sha256(pth.read_bytes()).hexdigest()[:16], "converted"),
    }


def test_malicious_pickle_is_refused_from_the_cli(plugin, tmp_path):
    marker = tmp_path / "pwned"
    pth = tmp_path / "evil.pth"
    torch.save({"params_ema": tinysr_state(2, 3), "x": Evil(marker)}, pth)
    proc = sresr(plugin, "weights", "import", str(pth), "--name", "evil")
    assert proc.returncode == 1
    assert "refus" in proc.stderr and "evil.pth" in proc.stderr and "Traceback" not in proc.stderr
    assert not marker.exists()
    listed = json.loads(sresr(plugin, "weights", "list", "--cached", "--json", check=True).stdout)
    assert listed == []


def test_pull_with_progress_and_offline_message(plugin, tmp_path):
    state = tinysr_state(4, 6, seed=5)
    pth = tmp_path / "tiny_x4.pth"
    torch.save({"params": state}, pth)
    digest = hashlib.sha256(pth.read_bytes()).hexdigest()
    with FileServer({"tiny_x4.pth": pth.read_bytes()}) as srv:
        env = {"TINYSR_URL": srv.url("tiny_x4.pth"), "TINYSR_SHA256": digest}
        off = sresr(plugin, "weights", "pull", "tinysr.x4", **env)
        assert off.returncode == 1 and srv.hits == {}
        assert "tiny_x4.pth" in off.stderr and "SRESR_OFFLINE" in off.stderr
        assert "sresr weights import" in off.stderr
        on = sresr(plugin, "weights", "pull", "tinysr.x4", "--json", SRESR_OFFLINE="0", **env)
        assert on.returncode == 0, on.stderr
        rec = json.loads(on.stdout)
        assert rec["id"] == "tinysr.x4" and rec["sha256"] == digest and rec["scale"] == 4
        assert Path(rec["path"]).is_file()
        path = sresr(plugin, "weights", "path", "tinysr.x4", **env)
        assert Path(path.stdout.strip()) == Path(rec["path"])
        listed = json.loads(sresr(plugin, "weights", "list", "--cached", "--json", **env).stdout)
        assert [(r["id"], r["kind"], r["source"]) for r in listed] == [
            ("tinysr.x4", "pulled", srv.url("tiny_x4.pth"))
        ]
        assert srv.hits["/tiny_x4.pth"] == 1
    assert os.environ["SRESR_OFFLINE"] == "1"


def test_pull_wrong_hash_and_404_are_one_line_errors(plugin, tmp_path):
    pth = tmp_path / "tiny_x4.pth"
    torch.save(tinysr_state(4, 6), pth)
    with FileServer({"tiny_x4.pth": pth.read_bytes()}) as srv:
        bad = sresr(plugin, "weights", "pull", "tinysr.x4", SRESR_OFFLINE="0",
                    TINYSR_URL=srv.url("tiny_x4.pth"), TINYSR_SHA256="cd" * 32)
        assert bad.returncode == 1 and "expected sha256 " + "cd" * 32 in bad.stderr
        missing = sresr(plugin, "weights", "pull", "tinysr.x4", SRESR_OFFLINE="0",
                        TINYSR_URL=srv.url("gone.pth"), TINYSR_SHA256="cd" * 32)
        assert missing.returncode == 1 and "404" in missing.stderr and srv.url("gone.pth") in missing.stderr
    for proc in (bad, missing):
        assert "Traceback" not in proc.stderr
    assert json.loads(sresr(plugin, "weights", "list", "--cached", "--json", check=True).stdout) == []


def test_unknown_ids_and_bundled_rm(plugin):
    proc = sresr(plugin, "weights", "rm", "nothing-here")
    assert proc.returncode == 1 and "nothing-here" in proc.stderr
    proc = sresr(plugin, "weights", "rm", "tinysr.x2")
    assert proc.returncode == 2 and "bundled" in proc.stderr
    proc = sresr(plugin, "weights", "path", "tinysr.x2")
    assert proc.returncode == 0 and proc.stdout.strip().endswith("tiny_x2.safetensors")
