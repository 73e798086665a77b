"""``sresr bench``: quality and speed against bicubic, as a table people can act on."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from .common import (
    BackendOpt,
    DeviceOpt,
    JsonOpt,
    PrecisionOpt,
    ProviderOpt,
    WeightsOpt,
    console,
    err_console,
    print_json,
    print_warnings,
)


def bench_cmd(
    dataset: Annotated[str, typer.Argument(help="Dataset name (set5 is bundled) or a folder of HR images.")] = "set5",
    models: Annotated[
        list[str] | None,
        typer.Option("--model", "-m", help="Model, MODEL.TAG or an exported FILE.onnx; repeat for several. "
                      "Default: every model with local weights for the scale."),
    ] = None,
    scales: Annotated[list[int] | None, typer.Option("--scale", "-s", min=1, help="Scale; repeat for several.")] = None,
    weights: WeightsOpt = None,
    device: DeviceOpt = "auto",
    precision: PrecisionOpt = "auto",
    backend: BackendOpt = "torch",
    provider: ProviderOpt = "auto",
    tile: Annotated[int | None, typer.Option("--tile", min=0, help="Tile size (0 = whole image).")] = None,
    repeats: Annotated[int, typer.Option("--repeats", min=1, help="Timed repeats per image (median).")] = 3,
    markdown: Annotated[Path | None, typer.Option("--markdown", help="Also write the table as Markdown.")] = None,
    csv_file: Annotated[Path | None, typer.Option("--csv", help="Also write the rows as CSV.")] = None,
    grid: Annotated[Path | None, typer.Option("--grid", help="Write a PNG comparison grid of crops.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Benchmark models against bicubic: PSNR/SSIM, speed, memory, the published numbers.

    PSNR/SSIM by the standard protocol next to the published number, then parameters, GFLOPs,
    speed, roofline share and peak memory."""
    from rich.measure import Measurement
    from rich.table import Table

    from ..bench import COLUMNS, BenchOptions, run_bench, write_grid, write_text

    options = BenchOptions(
        dataset=dataset,
        models=tuple(models or ()),
        scales=tuple(scales or (2, 3, 4)),
        device=device,
        precision=precision,
        tile=tile,
        repeats=repeats,
        weights=weights,
        backend=backend,
        provider=provider,
    )

    def progress(row) -> None:  # type: ignore[no-untyped-def]
        if not as_json:
            err_console.print(f"measured {row.model} x{row.scale}: {row.psnr:.2f} dB", highlight=False)

    result = run_bench(options, on_row=progress)
    print_warnings(result.warnings)
    if markdown:
        write_text(markdown, result.to_markdown())
    if csv_file:
        write_text(csv_file, result.to_csv())
    if grid:
        write_grid(grid, result, options)
    if as_json:
        print_json(result.to_dict())
        return
    table = Table(title=f"sresr bench {result.dataset}")
    for _, header, _ in COLUMNS:
        table.add_column(header, justify="left" if header == "model" else "right")
    for row in result.rows:
        table.add_row(*result.cells(row))
    # 14 numeric columns: a terminal too narrow for them gets the plain Markdown table instead of
    # a rich table with truncated numbers
    needed = Measurement.get(console, console.options.update(max_width=1000), table).maximum
    if needed > console.width:
        console.print(result.to_markdown(), highlight=False, soft_wrap=True, markup=False)
        return
    console.print(table)
    console.print(result.footer(), highlight=False, markup=False)
    for note in result.skipped:
        console.print(f"skipped: {note}", highlight=False, markup=False)
