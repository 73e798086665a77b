"""Option types and output helpers shared by the commands (no torch here)."""

from __future__ import annotations

import json
import sys
from typing import Annotated, Any

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
PrecisionOpt = Annotated[str, typer.Option("--precision", help="auto, fp32, fp16 or bf16.")]


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")
    sys.stdout.flush()
