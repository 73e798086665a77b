"""``sresr models``: what is registered, where it comes from and whether it works."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from ..registry import Entry, entries, get_entry, parse_ref
from .common import JsonOpt, console, print_json, print_table

_HEADER = ("name", "scales", "input", "params", "weights", "source", "status")

app = typer.Typer(help="List registered models (built-in and plugins).", no_args_is_help=False)


def _record(entry: Entry) -> dict[str, Any]:
    from ..weights import declared_sha256, variant_status

    spec = entry.spec
    rec: dict[str, Any] = {
        "name": entry.name,
        "status": entry.status,
        "source": entry.source,
        "entry_point": entry.value,
        "error": entry.error,
        "scales": list(spec.scales) if spec else [],
    }
    if spec is not None:
        rec.update(
            description=spec.description,
            colorspace=spec.colorspace,
            input=spec.input,
            size_multiple=spec.size_multiple,
            receptive_field=spec.receptive_field,
            supports_fp16=spec.supports_fp16,
            supports_bf16=spec.supports_bf16,
            params={str(k): v for k, v in spec.num_params.items()},
            paper=spec.paper,
            license=spec.license,
            weights_hint=spec.weights_hint or None,
            weights=[
                {
                    "id": f"{spec.name}.{w.tag}",
                    "scale": w.scale,
                    "source": "bundled" if w.file else w.url,
                    "sha256": declared_sha256(w),
                    "status": variant_status(spec, w),
                    "aliases": list(w.aliases),
                    "default": w.default,
                    "license": w.license,
                    "metrics": dict(w.metrics),
                    "description": w.description,
                }
                for w in spec.weights
            ],
        )
    return rec


def _params(spec_params: dict[str, int]) -> str:
    values = sorted(set(spec_params.values()))
    if not values:
        return "?"
    fmt = [f"{v / 1e6:.2f}M" if v >= 1e5 else f"{v:,}" for v in values]
    return fmt[0] if len(fmt) == 1 else f"{fmt[0]}-{fmt[-1]}"


def _variant_cell(w: dict[str, Any]) -> str:
    """A variant in the list: its tag, and what using it takes when it is not on disk yet."""
    tag = w["id"].split(".", 1)[1]
    return tag if w["status"] != "download" else f"{tag} (download)"


def _no_variants(record: dict[str, Any]) -> str:
    """The weights column of a model that declares no variants."""
    if record.get("weights_hint"):
        return "none yet (see info)"  # a built-in family: train it or pass --weights
    if not any(record.get("params", {}).values()):
        return "-"  # nothing to learn (bicubic)
    return "factory's own"  # a plugin whose factory builds the trained network


@app.callback(invoke_without_command=True)
def list_cmd(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """List every registered model with its scales, input, size and weights."""
    if ctx.invoked_subcommand is not None:
        return
    records = [_record(e) for e in entries().values()]
    if as_json:
        print_json(records)
        return
    rows = []
    for r in records:
        if r["status"] == "ok":
            kind = f"{r['colorspace'].upper()}, {'upsampled' if r['input'] == 'upsampled' else 'LR'}"
            weights = ", ".join(_variant_cell(w) for w in r["weights"]) or _no_variants(r)
            status = "ok"
        else:
            kind, weights = "-", "-"
            status = f"[red]broken[/red]: {escape(r['error'] or '')}"
        scales = ",".join(f"x{s}" for s in r["scales"]) or "-"
        rows.append((r["name"], scales, kind, _params(r.get("params", {})), weights, r["source"], status))
    print_table("sresr models", _HEADER, rows)


@app.command("info")
def info_cmd(name: Annotated[str, typer.Argument(help="Model name (or MODEL.TAG, or a published name).")], as_json: JsonOpt = False) -> None:
    """Show one model in full: contract fields, weights variants and published numbers."""
    entry = get_entry(parse_ref(name)[0])  # MODEL, MODEL.TAG or a published name
    rec = _record(entry)
    if entry.spec is not None:
        rec["paper_metrics"] = dict(entry.spec.paper_metrics)
    if as_json:
        print_json(rec)
        return
    table = Table(title=f"model {entry.name}", show_header=False)
    table.add_column("field", style="bold")
    table.add_column("value")
    for key, value in rec.items():
        if key == "weights":
            continue
        table.add_row(key, str(value))
    console.print(table)
    if rec.get("weights"):
        rows = [(w["id"], f"x{w['scale']}", w["status"], "yes" if w["default"] else "", ", ".join(w["aliases"]),
                 escape(str(w["source"])), w["sha256"], ", ".join(f"{k}={v}" for k, v in w["metrics"].items()))
                for w in rec["weights"]]
        print_table("weights", ("id", "scale", "status", "default", "aliases", "source", "sha256", "metrics"), rows)
