"""Option types and output helpers shared by the commands (no torch here)."""

from __future__ import annotations

import json
import sys
from typing import Annotated, Any, Sequence

import typer
from rich.console import Console

console = Console()
err_console = Console(stderr=True)

JsonOpt = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON instead of a table.")]
ScaleOpt = Annotated[int, typer.Option("--scale", "-s", min=1, help="Upscaling factor.")]
ModelOpt = Annotated[str, typer.Option("--model", "-m", help="Model name or MODEL.TAG (see 'sresr models').")]
WeightsOpt = Annotated[
    str | None,
    typer.Option("--weights", "-w", help="Weights: MODEL.TAG, a .safetensors/.pth file, or an http(s) URL."),
]
DeviceOpt = Annotated[str, typer.Option("--device", help="auto, cpu, cuda, cuda:N or mps.")]
PrecisionOpt = Annotated[str, typer.Option("--precision", help="auto, fp32 (IEEE: TF32 off on CUDA), tf32, fp16 or bf16.")]
BackendOpt = Annotated[
    str,
    typer.Option("--backend", help="What runs the network: torch, or onnxruntime (the model's ONNX export, made once "
                 "into the cache; needs pip install 'sresr\\[onnx]'). A -m FILE.onnx always runs on onnxruntime."),
]
ProviderOpt = Annotated[
    str,
    typer.Option("--provider", help="onnxruntime execution provider: auto (from --device: the first of CUDA, DirectML, "
                 "CoreML, OpenVINO, CPU that onnxruntime offers), cuda, directml, coreml, openvino or cpu."),
]


def print_table(title: str, header: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    """A rich table when it fits the terminal; on a narrower one, aligned plain columns (the last
    one ragged), so that no cell (a name or an id to copy) is cut or wrapped. Cells may hold rich
    markup."""
    from rich.measure import Measurement
    from rich.table import Table
    from rich.text import Text

    table = Table(title=title)
    for col in header:
        table.add_column(col)
    for row in rows:
        table.add_row(*row)
    needed = Measurement.get(console, console.options.update(max_width=1000), table).maximum
    if needed <= console.width:
        console.print(table)
        return
    plain = [list(header)] + [[Text.from_markup(c).plain for c in row] for row in rows]
    widths = [max(len(r[i]) for r in plain) for i in range(len(header) - 1)]
    console.print(title, highlight=False, markup=False, soft_wrap=True)
    for cells in plain:
        line = "  ".join(c.ljust(w) for c, w in zip(cells, widths)) + "  " + cells[-1]
        console.print(line, highlight=False, markup=False, soft_wrap=True)


def print_warnings(messages: Sequence[str]) -> None:
    """One ``warning:`` line on stderr for each message (with --json too: stdout stays JSON)."""
    from rich.markup import escape

    for message in messages:
        err_console.print(f"[yellow]warning:[/yellow] {escape(message)}", highlight=False, soft_wrap=True)


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")
    sys.stdout.flush()
