"""``sresr weights``: the weights cache (list, pull, import, path, rm). No torch at import time."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

from .common import JsonOpt, console, print_json, print_table

app = typer.Typer(help="Manage cached weights: list, pull, import, path, rm.", no_args_is_help=True)


def _size(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024  # type: ignore[assignment]
    return str(n)  # pragma: no cover


@app.command("list")
def list_cmd(
    as_json: JsonOpt = False,
    all_: Annotated[bool, typer.Option("--all/--cached", help="Also list weights bundled with sresr.")] = True,
) -> None:
    """List what is cached (and bundled): id, kind, model, scale, size, source and sha256."""
    from ..cache import weights_dir
    from ..weights import list_cached

    records = [e.as_dict() for e in list_cached(include_bundled=all_)]
    if as_json:
        print_json(records)
        return
    rows = [(escape(r["id"]), r["kind"], escape(r["model"] or "-"), f"x{r['scale']}" if r["scale"] else "-",
             _size(r["size"]), r["sha256"][:16], escape(r["source"] or "-")) for r in records]
    print_table(f"sresr weights ({weights_dir()})", ("id", "kind", "model", "scale", "size", "sha256", "source"), rows)
    if not records:
        console.print("nothing cached yet: 'sresr weights pull MODEL.TAG' or 'sresr weights import FILE'")


@app.command("pull")
def pull_cmd(
    ref: Annotated[str, typer.Argument(help="MODEL.TAG (or MODEL: its default weights).")],
    scale: Annotated[int | None, typer.Option("--scale", "-s", min=1, help="Scale, for MODEL alone.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Download published weights, verify their sha256, convert to .safetensors and cache them."""
    from ..weights import pull

    wf = pull(ref, scale=scale, progress=not as_json)
    rec: dict[str, Any] = {
        "id": wf.id,
        "model": wf.model,
        "scale": wf.scale,
        "path": str(wf.path),
        "source": wf.source,
        "sha256": wf.source_sha256,
    }
    if as_json:
        print_json(rec)
    else:
        console.print(f"{wf.id}: {wf.path}", highlight=False, soft_wrap=True)


@app.command("import")
def import_cmd(
    file: Annotated[str, typer.Argument(help="A .pth/.pt/.ckpt/.safetensors checkpoint, or an http(s) URL.")],
    model: Annotated[
        str | None, typer.Option("--model", "-m", help="Architecture (default: detected from the keys).")
    ] = None,
    name: Annotated[
        str | None, typer.Option("--name", help="Name to use with --model/--weights (default: the file stem).")
    ] = None,
    scale: Annotated[
        int | None, typer.Option("--scale", "-s", min=1, help="Only where the tensors cannot tell it (FSRCNN).")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Convert a published checkpoint to .safetensors and keep it in the cache under a name.

    The checkpoint is read with torch.load(weights_only=True): nothing in it is executed.
    Afterwards 'sresr upscale -m NAME' (or '--weights NAME') uses it.
    """
    from ..weights import import_weights

    entry = import_weights(file, model=model, name=name, scale=scale)
    if as_json:
        print_json(entry.as_dict())
        return
    console.print(
        f"imported {file} as '{entry.id}' ({entry.model} x{entry.scale}): {entry.path}\n"
        f"use it with: sresr upscale -m {entry.id} ...",
        highlight=False,
        soft_wrap=True,
    )


@app.command("interpolate")
def interpolate_cmd(
    a: Annotated[str, typer.Argument(help="Weights A: MODEL.TAG, an imported name, a file or a URL.")],
    b: Annotated[str, typer.Argument(help="Weights B, of the same architecture, scale and configuration.")],
    alpha: Annotated[float, typer.Option("--alpha", help="0 gives A, 1 gives B.")],
    name: Annotated[str, typer.Option("--name", help="Name of the new weights (then -m NAME).")],
    as_json: JsonOpt = False,
) -> None:
    """Network interpolation: every tensor (1 - alpha) * A + alpha * B, kept as new weights.

    ESRGAN's way to trade the PSNR model's smoothness for the GAN model's detail, and Real-ESRGAN's
    denoise strength (realesr-general-x4v3 with its wdn variant)."""
    from ..weights import interpolate_weights

    entry = interpolate_weights(a, b, alpha, name)
    if as_json:
        print_json(entry.as_dict())
        return
    console.print(f"made '{entry.id}' ({entry.model} x{entry.scale}) = {1 - alpha:g} x {a} + {alpha:g} x {b}: "
                  f"{entry.path}\nuse it with: sresr upscale -m {entry.id} ...", highlight=False, soft_wrap=True)


@app.command("path")
def path_cmd(
    ref: Annotated[
        str | None,
        typer.Argument(help="MODEL.TAG, an imported name or a cache id; none: the cache folder."),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Print where weights live (the cache folder, or one entry's file)."""
    from ..cache import weights_dir

    if ref is None:
        path: Path = weights_dir()
        exists = path.is_dir()
    else:
        path = _path_of(ref)
        exists = True
    if as_json:
        print_json({"id": ref, "path": str(path), "exists": exists})
    else:
        typer.echo(str(path))


def _path_of(ref: str) -> Path:
    from ..errors import WeightsError
    from ..registry import entries, parse_ref, resolve_name
    from ..weights import find_cached, find_imported, variant_path

    if find_imported(ref) is not None:  # an imported name first, as everywhere (sresr.resolve)
        return find_imported(ref)  # type: ignore[return-value]
    if parse_ref(ref)[0] in entries():
        spec, variant = resolve_name(ref)
        if variant is None:
            raise WeightsError(f"model '{spec.name}' declares no weights", hint="see 'sresr models info'")
        path = variant_path(spec, variant)
        if not path.is_file():
            raise WeightsError(
                f"{spec.name}.{variant.tag} is not in the cache (it would be at {path})",
                hint=f"run 'sresr weights pull {spec.name}.{variant.tag}'",
            )
        return path
    imported = find_imported(ref)
    return imported if imported is not None else find_cached(ref).path


@app.command("rm")
def rm_cmd(
    ident: Annotated[str, typer.Argument(metavar="ID", help="An id from 'sresr weights list'.")],
    as_json: JsonOpt = False,
) -> None:
    """Remove one cached entry (pulled, imported, converted or downloaded)."""
    from ..weights import remove

    removed = remove(ident)
    if as_json:
        print_json({"id": ident, "removed": [str(p) for p in removed]})
    else:
        for p in removed:
            console.print(f"removed {p}", highlight=False, soft_wrap=True)
