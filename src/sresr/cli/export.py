"""``sresr export``: a model as an ONNX file (a thin layer over :func:`sresr.export.export_onnx`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from .common import JsonOpt, WeightsOpt, console, print_json


def export_cmd(
    model: Annotated[Optional[str], typer.Argument(help="Model, MODEL.TAG or a published name (or give -w alone).",
                                                   show_default=False)] = None,
    scale: Annotated[Optional[int], typer.Option("--scale", "-s", min=1, help="Scale (default: the weights').")] = None,
    output: Annotated[
        Optional[Path], typer.Option("--output", "-o", help="The .onnx file to write (default: MODEL.TAG-xS.onnx here).")
    ] = None,
    weights: WeightsOpt = None,
    fp16: Annotated[bool, typer.Option("--fp16", help="Half-precision weights, input and output.")] = False,
    opset: Annotated[Optional[int], typer.Option("--opset", min=7, help="ONNX opset (default 17).")] = None,
    dynamic: Annotated[bool, typer.Option("--dynamic", help="Any height and width (the default).")] = True,
    tile: Annotated[
        Optional[int], typer.Option("--tile", "-t", min=1, help="Instead of --dynamic: a fixed T x T input (for runtimes "
                                    "that need static shapes; sresr then runs it on T x T windows).")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Export a model to ONNX, checked against PyTorch on onnxruntime before it is written.

    Dynamic height and width (or a fixed --tile), sresr's metadata embedded (scale, colour space,
    input kind, receptive field, size multiple, weights id and sha256).

    Run the file with 'sresr upscale -m FILE.onnx', or anywhere onnxruntime runs. Needs
    pip install 'sresr\\[onnx]'.
    """
    from ..backends import require
    from ..errors import UsageError
    from ..export import DEFAULT_OPSET, export_onnx
    from ..resolve import load_model

    require("onnx", "sresr export")
    require("onnxruntime", "sresr export (to check the file)")
    if model is None and weights is None:
        raise UsageError("no model given", hint="sresr export fsrcnn.x2 -o fsrcnn_x2.onnx")
    loaded = load_model(model, scale, weights=weights)
    if output is None:
        named = "." in loaded.weights_id and not any(c in loaded.weights_id for c in "/\\ ")  # a MODEL.TAG
        stem = loaded.weights_id if named else f"{loaded.name}-x{loaded.scale}"
        output = Path(f"{stem}{'-fp16' if fp16 else ''}.onnx")
    report = export_onnx(loaded, output, opset=DEFAULT_OPSET if opset is None else opset, fp16=fp16,
                         dynamic=dynamic and tile is None, tile=tile)
    if as_json:
        print_json(report.to_dict())
        return
    shape = "dynamic height and width" if report.shape == "dynamic" else f"fixed {report.shape} input"
    console.print(f"exported {loaded.weights_id} x{loaded.scale} to {report.path} ({report.size / 1e6:.2f} MB, opset "
                  f"{report.opset}, {'fp16' if report.fp16 else 'fp32'}, {shape}); onnxruntime CPU vs PyTorch: max "
                  f"difference {report.max_diff:.2g} (at most {report.tolerance:.2g} allowed)",
                  highlight=False, markup=False, soft_wrap=True)
