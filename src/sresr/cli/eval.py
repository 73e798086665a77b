"""``sresr eval``: PSNR/SSIM of a model on a dataset, or of another tool's images, under the protocol."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from ..errors import UsageError
from .common import (
    BackendOpt,
    JsonOpt,
    ProviderOpt,
    WeightsOpt,
    console,
    err_console,
    print_json,
    print_warnings,
)


def eval_cmd(
    model: Annotated[str | None, typer.Argument(help="Model name, MODEL.TAG or an ONNX file (omit with --pred/--gt).")] = None,
    data: Annotated[
        str | None, typer.Option("--data", "-d", help="Named dataset (set5, set14, b100, ...) or a folder.")
    ] = None,
    scale: Annotated[int | None, typer.Option("--scale", "-s", min=1, help="Upscaling factor.")] = None,
    weights: WeightsOpt = None,
    save: Annotated[
        Path | None, typer.Option("--save", help="Write the SR images (NAME_xS.png) here; never over an input.")
    ] = None,
    pred: Annotated[
        Path | None, typer.Option("--pred", help="Folder of SR images made by another tool: NAME.png, NAME_x4.png, "
                                  "NAME_RCAN_x4.png, NAMEx4_SR.png, NAME_out.png ... for the GT NAME.png, "
                                  "NAME_HR_x4.png ...")
    ] = None,
    gt: Annotated[Path | None, typer.Option("--gt", help="Folder of ground-truth HR images (with --pred).")] = None,
    rgb: Annotated[bool, typer.Option("--rgb", help="Score RGB channels instead of BT.601 Y.")] = False,
    crop: Annotated[
        int | None, typer.Option("--crop", min=0, help="Border pixels to ignore (default: the scale).")
    ] = None,
    no_quantize: Annotated[
        bool, typer.Option("--no-quantize", help="Do not round the SR output to uint8 before scoring.")
    ] = False,
    lpips: Annotated[bool, typer.Option("--lpips", help="Also compute LPIPS (needs the 'lpips' package).")] = False,
    sha256: Annotated[
        str | None, typer.Option("--sha256", help="Checksum you vouch for, for a dataset archive sresr has none for.")
    ] = None,
    device: Annotated[
        str, typer.Option("--device", help="auto (a CUDA or MPS GPU when there is one, else the CPU), cpu, cuda, "
                          "cuda:N or mps. The scores stay fp32 numbers (see --precision).")
    ] = "auto",
    precision: Annotated[
        str, typer.Option("--precision", help="fp32 (the default: the protocol's numbers are fp32 numbers; on a "
                          "GPU without TF32), auto, fp16 or bf16.")
    ] = "fp32",
    tile: Annotated[
        int | None, typer.Option("--tile", min=0, help="Tile size in LR pixels (0 = whole image; exact either way).")
    ] = None,
    backend: BackendOpt = "torch",
    provider: ProviderOpt = "auto",
    list_sets: Annotated[bool, typer.Option("--list", help="List the named datasets and exit.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Evaluate a model on a dataset (PSNR/SSIM, standard SR protocol), or score --pred against --gt."""
    if list_sets:
        _list(as_json)
        return
    from ..evaluate import evaluate, evaluate_dirs
    from ..metrics import Protocol

    protocol = Protocol(y_only=not rgb, crop=crop, quantize=not no_quantize)
    on_image = None if as_json else _progress_line
    if pred is not None or gt is not None:
        if pred is None or gt is None:
            raise UsageError("--pred and --gt go together", hint="sresr eval --pred SR_DIR --gt HR_DIR -s 4")
        if model is not None or data is not None or weights is not None or save is not None:
            raise UsageError("--pred/--gt score existing images: do not give a MODEL, --data, --weights or --save")
        if scale is None:
            raise UsageError("--scale is required with --pred/--gt", hint="add -s 4 (the scale the images were made at)")
        report = evaluate_dirs(pred, gt, scale, protocol=protocol, lpips=lpips, device=device, on_image=on_image)
    else:
        if model is None:
            raise UsageError("give a MODEL, or --pred DIR --gt DIR", hint="sresr eval bicubic --data set5 -s 4")
        if data is None:
            raise UsageError("--data is required", hint="a named dataset (sresr eval --list) or a folder of HR images")
        report = evaluate(model, data, scale, protocol=protocol, weights=weights, save_dir=save, device=device,
                          precision=precision, tile=tile, lpips=lpips, sha256=sha256, progress=not as_json,
                          on_image=on_image, backend=backend, provider=provider)
    print_warnings(report.warnings)
    if as_json:
        print_json(report.to_dict())
    else:
        _table(report)
    if report.failures:
        raise typer.Exit(1)


def _progress_line(result: Any) -> None:
    from ..evaluate import Failure

    if isinstance(result, Failure):
        err_console.print(f"[red]failed[/red] {result.name}: {result.error}", highlight=False, soft_wrap=True)


def _table(report: Any) -> None:
    from rich.table import Table

    from ..evaluate import format_number

    has_lpips = report.mean_lpips is not None
    weights = f" ({report.weights})" if report.weights and report.weights != report.model else ""
    table = Table(title=f"{report.model}{weights} on {report.dataset}, x{report.scale}")
    table.add_column("image")
    table.add_column("PSNR (dB)", justify="right")
    table.add_column("SSIM", justify="right")
    if has_lpips:
        table.add_column("LPIPS", justify="right")
    for r in report.images:
        row = [r.name, format_number(r.psnr, 2), format_number(r.ssim, 4)]
        if has_lpips:
            row.append(format_number(r.lpips, 4) if r.lpips is not None else "-")
        table.add_row(*row)
    mean = report.mean
    row = [f"mean ({len(report.images)})", format_number(mean.psnr, 2), format_number(mean.ssim, 4)]
    if has_lpips:
        row.append(format_number(report.mean_lpips, 4))
    table.add_row(*row, style="bold", end_section=True)
    if report.paper:
        prow = ["published", format_number(report.paper.get("psnr", float("nan")), 2),
                format_number(report.paper.get("ssim", float("nan")), 4)]
        table.add_row(*(prow + (["-"] if has_lpips else [])), style="dim")
    console.print(table)
    console.print(report.protocol.describe(report.scale), highlight=False, soft_wrap=True, markup=False)
    if report.failures:
        console.print(f"[red]{len(report.failures)} image(s) failed[/red]", highlight=False)


def _list(as_json: bool) -> None:
    from ..datasets import list_datasets

    infos = list_datasets()
    if as_json:
        print_json([{"name": i.name, "images": i.count, "description": i.description, "source": i.source,
                     "note": i.note, "license": i.license} for i in infos])
        return
    from rich.table import Table

    table = Table(title="datasets")
    for col in ("name", "images", "source", "description"):
        table.add_column(col)
    for i in infos:
        table.add_row(i.name, str(i.count), i.source, i.description)
    console.print(table)
