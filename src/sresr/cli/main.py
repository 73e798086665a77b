"""Root of the CLI: wires the commands and is the error boundary.

Every :class:`sresr.errors.SresrError` becomes one line on stderr (plus a hint) and its exit
code; other exceptions show a traceback only with ``--debug``.
"""

from __future__ import annotations

import inspect
import sys
import warnings
from typing import Annotated

import typer
from rich.markup import escape

from .. import __version__
from ..errors import SresrError
from . import bench, models, train, upscale
from . import export as export_cli
from . import eval as eval_cli
from . import weights as weights_cli
from .common import err_console, print_json

app = typer.Typer(
    name="sresr",
    help="Super-resolution: upscale images, evaluate, benchmark and train SR models.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
app.command("upscale")(upscale.upscale)
app.command("eval")(eval_cli.eval_cmd)
app.command("bench")(bench.bench_cmd)
app.command("train")(train.train_cmd)
app.command("export")(export_cli.export_cmd)
app.add_typer(models.app, name="models")
app.add_typer(weights_cli.app, name="weights")

_state = {"debug": False}


def _reflow(doc: str) -> str:
    """A docstring's paragraphs as single lines: this typer keeps the line breaks inside a
    paragraph, so the source's wrapping would show through the terminal's."""
    paragraphs = inspect.cleandoc(doc).partition("\f")[0].split("\n\n")
    return "\n\n".join(" ".join(line.strip() for line in p.splitlines()) for p in paragraphs)


def _reflow_help(t: typer.Typer) -> None:
    for info in t.registered_commands:
        doc = info.help or (info.callback.__doc__ if info.callback else None)
        if doc:
            info.help = _reflow(doc)
    for group in t.registered_groups:
        if group.typer_instance is not None:
            _reflow_help(group.typer_instance)


_reflow_help(app)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"sresr {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    debug: Annotated[bool, typer.Option("--debug", help="Show full tracebacks on errors.")] = False,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """sresr: super-resolution toolkit."""
    _state["debug"] = _state["debug"] or debug


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``sresr`` script. Click reports its own usage errors (exit 2).

    ``--debug`` works anywhere on the command line (``sresr upscale ... --debug`` too): it is taken
    out of the arguments here, before the commands parse theirs."""
    # Pillow warns (UserWarning, to stderr) about damaged metadata it skips; sresr reports what
    # matters about a file in its own one line
    warnings.filterwarnings("ignore", category=UserWarning, module=r"PIL\.")
    args = list(argv if argv is not None else sys.argv[1:])
    cut = args.index("--") if "--" in args else len(args)
    _state["debug"] = "--debug" in args[:cut]
    as_json = "--json" in args[:cut]
    args = [a for i, a in enumerate(args) if a != "--debug" or i > cut]
    try:
        app(args=args, prog_name="sresr")
    except SystemExit as exc:
        if exc.code == 130:  # typer turns Ctrl-C into a silent exit 130
            err_console.print("interrupted (finished outputs are kept: rerun the same command to continue)",
                              highlight=False)
        raise
    except SresrError as exc:
        if _state["debug"]:
            raise
        err_console.print(f"[bold red]error:[/bold red] {escape(exc.message)}", highlight=False, soft_wrap=True)
        if exc.hint:
            err_console.print(f"[dim]hint:[/dim] {escape(exc.hint)}", highlight=False, soft_wrap=True)
        if as_json:  # a script reading --json output gets the error there too
            print_json({"error": exc.message, "hint": exc.hint or None, "exit_code": exc.exit_code})
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        err_console.print("interrupted (finished outputs are kept: rerun the same command to continue)",
                          highlight=False)
        sys.exit(130)
    except Exception as exc:  # a bug: one line unless --debug
        if _state["debug"]:
            raise
        err_console.print(
            f"[bold red]internal error:[/bold red] {type(exc).__name__}: {escape(str(exc))}", highlight=False, soft_wrap=True
        )
        err_console.print("[dim]hint:[/dim] rerun with --debug for the traceback and report it", highlight=False)
        sys.exit(3)
