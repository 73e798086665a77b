"""The CLI root: help on every level, version, error boundary and exit codes."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from conftest import run_sresr
from sresr import __version__
from sresr.cli.main import app

runner = CliRunner()


def test_version_in_process_and_as_installed_script() -> None:
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.output.strip() == f"sresr {__version__}"
    proc = run_sresr("--version", check=True)
    assert proc.stdout.strip() == f"sresr {__version__}"


def test_help_lists_the_commands() -> None:
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    assert "models" in result.output
    for sub in (["models", "--help"], ["models", "info", "--help"]):
        assert runner.invoke(app, sub).exit_code == 0


def test_help_paragraphs_wrap_to_the_terminal_not_to_the_source() -> None:
    import inspect

    from sresr.cli import upscale

    doc = inspect.cleandoc(upscale.upscale.__doc__ or "")
    second = doc.split("\n\n")[1]
    assert "\n" in second  # wrapped in the source...
    proc = run_sresr("upscale", "--help", COLUMNS="400")
    assert proc.returncode == 0, proc.stderr
    # ...and on one line of a 400-column terminal, not broken where the source breaks it
    assert any(" ".join(second.split()) in line for line in proc.stdout.splitlines()), proc.stdout


def test_models_json_has_the_documented_fields() -> None:
    result = runner.invoke(app, ["models", "--json"])
    assert result.exit_code == 0, result.output
    records = json.loads(result.output)
    assert records, "no models registered"
    for rec in records:
        assert {"name", "scales", "source", "status", "error"} <= set(rec)
        assert rec["status"] in ("ok", "broken")


def test_usage_error_exit_code_and_no_traceback() -> None:
    proc = run_sresr("models", "info")  # missing argument
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    proc = run_sresr("no-such-command")
    assert proc.returncode == 2


def test_error_messages_keep_square_brackets() -> None:
    # rich markup must not eat text like "sresr[vgg]" in messages and hints
    from sresr.errors import UsageError

    code = (
        "import sys\n"
        "from sresr.cli import main as m\n"
        "from sresr.errors import UsageError\n"
        "def boom():\n"
        "    raise UsageError('needs [extra] here', hint='pip install sresr[vgg]')\n"
        "m.app.command('boom')(boom)\n"
        "m.main(['boom'])\n"
    )
    import subprocess
    import sys

    from conftest import subprocess_env

    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=subprocess_env())
    assert proc.returncode == UsageError.exit_code == 2
    assert "needs [extra] here" in proc.stderr
    assert "pip install sresr[vgg]" in proc.stderr


def test_public_api_names_resolve_lazily() -> None:
    import sresr

    for name in sresr.__all__:
        assert getattr(sresr, name) is not None, name


def test_models_listing_never_cuts_names_on_a_narrow_terminal() -> None:
    proc = run_sresr("models", COLUMNS="80", check=True)
    assert "realesrgan-compact" in proc.stdout
    assert "…" not in proc.stdout
