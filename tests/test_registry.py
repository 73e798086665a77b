"""The registry and the plugin contract, exercised through real entry points.

The plugin distributions under tests/plugins are real (package + dist-info); a child Python with
them on sys.path discovers them through importlib.metadata exactly as after `pip install`.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import run_sresr, subprocess_env

PLUGINS = Path(__file__).resolve().parent / "plugins"
GOOD, BROKEN, DUP = PLUGINS / "good", PLUGINS / "broken", PLUGINS / "dup"


def models_json(*paths: Path) -> dict[str, dict]:
    proc = run_sresr("models", "--json", extra_paths=list(paths), check=True)
    return {rec["name"]: rec for rec in json.loads(proc.stdout)}


def run_python(code: str, *paths: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=subprocess_env(list(paths)), timeout=300
    )


def test_third_party_plugin_is_discovered_listed_built_and_run() -> None:
    records = models_json(GOOD)
    rec = records["mynet"]
    assert rec["status"] == "ok", rec
    assert rec["source"] == "sresr-mynet"
    assert rec["scales"] == [2, 3]
    assert rec["error"] is None
    code = (
        "import torch, sresr\n"
        "from sresr.testing import check_spec\n"
        "spec = sresr.get_spec('mynet')\n"
        "check_spec(spec)\n"
        "m = spec.build(3)\n"
        "y = m(torch.rand(1, 3, 5, 7))\n"
        "print(tuple(y.shape))\n"
    )
    proc = run_python(code, GOOD)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "(1, 3, 15, 21)"


def test_broken_and_invalid_plugins_are_listed_as_broken_and_builtins_still_work() -> None:
    records = models_json(BROKEN)
    broken = records["brokennet"]
    assert broken["status"] == "broken"
    assert broken["source"] == "sresr-broken"
    assert "sresr_this_module_does_not_exist" in broken["error"]
    assert "expected a sresr.ModelSpec" in records["wrongtype"]["error"]
    assert "'somethingelse'" in records["mismatch"]["error"] and "'mismatch'" in records["mismatch"]["error"]
    assert "scales" in records["noscales"]["error"]
    builtin_ok = [r for r in records.values() if r["source"] == "sresr" and r["status"] == "ok"]
    assert builtin_ok, "no built-in model listed as ok next to the broken plugins"
    # a built-in still builds and runs in the same environment
    name = builtin_ok[0]["name"]
    proc = run_python(
        "import torch, sresr\n"
        f"spec = sresr.get_spec({name!r})\n"
        "m = spec.build(spec.scales[0]).eval()\n"
        "c = 1 if spec.colorspace == 'y' else 3\n"
        "s = spec.scales[0] if spec.input == 'upsampled' else 1\n"
        "print(tuple(m(torch.rand(1, c, 8 * s, 8 * s)).shape))\n",
        BROKEN,
    )
    assert proc.returncode == 0, proc.stderr
    # asking for a broken model names the distribution and the reason, exit code 1, no traceback
    proc = run_sresr("models", "info", "brokennet", extra_paths=[BROKEN])
    assert proc.returncode == 0  # info shows broken entries too
    assert "broken" in proc.stdout


def test_duplicate_name_is_an_error_naming_both_distributions() -> None:
    records = models_json(GOOD, DUP)
    rec = records["mynet"]
    assert rec["status"] == "broken"
    assert "sresr-mynet" in rec["error"] and "sresr-dup" in rec["error"]
    proc = run_python("import sresr\nsresr.get_spec('mynet')\n", GOOD, DUP)
    assert proc.returncode != 0
    assert "DuplicateModelError" in proc.stderr
    assert "sresr-mynet" in proc.stderr and "sresr-dup" in proc.stderr


def test_unknown_model_suggests_close_matches() -> None:
    proc = run_sresr("models", "info", "mynett", extra_paths=[GOOD])
    assert proc.returncode == 2
    assert "unknown model 'mynett'" in proc.stderr
    assert "did you mean 'mynet'" in proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize("argv", [["--help"], ["models"], ["models", "--json"], ["models", "info", "mynet"]])
def test_listing_does_not_import_torch(argv: list[str]) -> None:
    code = (
        "import sys\n"
        "from sresr.cli.main import main\n"
        "try:\n"
        f"    main({argv!r})\n"
        "except SystemExit as e:\n"
        "    assert not e.code, e.code\n"
        "print('TORCH-IMPORTED' if 'torch' in sys.modules else 'NO-TORCH', file=sys.stderr)\n"
    )
    proc = run_python(code, GOOD)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.strip().endswith("NO-TORCH"), proc.stderr[-500:]


def test_spec_validation_and_check_spec_catch_contract_violations() -> None:
    import torch

    from sresr import ModelSpec, WeightsSpec
    from sresr.spec import validate_spec
    from sresr.testing import check_spec

    good = ModelSpec(name="t", factory=lambda scale: torch.nn.Upsample(scale_factor=scale), scales=(2,))
    check_spec(good)
    assert validate_spec(good) == []
    wrong_shape = ModelSpec(name="t", factory=lambda scale: torch.nn.Identity(), scales=(2,))
    with pytest.raises(AssertionError, match="expected"):
        check_spec(wrong_shape)
    not_module = ModelSpec(name="t", factory=lambda scale: "nope", scales=(2,))
    with pytest.raises(AssertionError, match="torch.nn.Module"):
        check_spec(not_module)
    bad_weights = ModelSpec(
        name="t",
        factory="a:b",
        scales=(2,),
        weights=(WeightsSpec(tag="x4", scale=4, url="http://x/y", sha256="abc"),),
    )
    problems = " ".join(validate_spec(bad_weights))
    assert "scale 4 is not among" in problems and "sha256" in problems
