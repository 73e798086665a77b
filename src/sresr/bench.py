"""Quality and speed tables against bicubic: the library behind ``sresr bench``.

>>> from sresr.bench import BenchOptions, run_bench
>>> result = run_bench(BenchOptions(dataset="set5", scales=(4,)))
>>> print(result.to_markdown())

Every row is measured the same way: PSNR/SSIM under the standard protocol
(:mod:`sresr.evaluate`), speed through the same :class:`sresr.engine.Upscaler` (tiling,
precision, device) a user runs, after a warm-up, as the median of repeats with the device
synchronised. GFLOPs are counted with forward hooks on the real network; the roofline is a
64->64 3x3 convolution measured in the same run on the same device.
"""

from __future__ import annotations

import csv
import io
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

from .errors import SresrError, UsageError, WeightsError

#: columns of the table, in order: (key, header, format)
COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("model", "model", "{}"),
    ("scale", "scale", "x{}"),
    ("psnr", "PSNR", "{:.2f}"),
    ("ssim", "SSIM", "{:.4f}"),
    ("delta_psnr", "vs bicubic", "{:+.2f}"),
    ("paper_psnr", "paper", "{:.2f}"),
    ("paper_diff", "vs paper", "{:+.2f}"),
    ("params", "params", "{:,}"),
    ("gflops_per_mpix", "GFLOP/MPix", "{:.1f}"),
    ("ms_per_image", "ms/image", "{:.1f}"),
    ("mpix_per_s", "MPix/s", "{:.3f}"),
    ("gflop_per_s", "GFLOP/s", "{:.1f}"),
    ("roofline_share", "roofline", "{:.0%}"),
    ("peak_mem_mb", "peak MiB", "{:.0f}"),
)


@dataclass(frozen=True)
class BenchOptions:
    dataset: str = "set5"
    models: tuple[str, ...] = ()  # empty: every model with local weights for the scale, plus bicubic
    scales: tuple[int, ...] = (2, 3, 4)
    device: str = "auto"
    precision: str = "auto"
    tile: int | None = None  # None: the engine's default tiling, 0: whole image
    repeats: int = 3
    warmup: int = 1
    weights: str | None = None  # weights for the one model named in ``models`` (a file, URL or MODEL.TAG)
    backend: str = "torch"  # what runs the networks (sresr.backends): torch or onnxruntime (their ONNX exports)
    provider: str = "auto"  # onnxruntime's execution provider


@dataclass
class BenchRow:
    model: str
    scale: int
    weights: str
    psnr: float
    ssim: float
    params: int
    delta_psnr: float | None = None
    paper_psnr: float | None = None
    paper_ssim: float | None = None
    paper_diff: float | None = None
    gflops_per_mpix: float = 0.0
    ms_per_image: float = 0.0
    mpix_per_s: float = 0.0
    gflop_per_s: float = 0.0
    roofline_share: float | None = None
    peak_mem_mb: float | None = None
    images: dict[str, float] = field(default_factory=dict)  # per-image PSNR


@dataclass
class BenchResult:
    dataset: str
    device: str
    precision: str
    torch_version: str
    protocol: str
    protocol_dict: dict[str, Any]
    roofline_gflops: float
    rows: list[BenchRow]
    skipped: list[str] = field(default_factory=list)
    backend: str = "torch"  # what ran the networks: "torch", or "onnxruntime X.Y (ItsExecutionProvider)"
    warnings: list[str] = field(default_factory=list)  # what the models' loads said (ONNX files' notes), once each

    def footer(self) -> str:
        return (
            f"dataset {self.dataset}; device {self.device}; backend {self.backend}; precision {self.precision}; "
            f"torch {self.torch_version}; "
            f"roofline (64->64 3x3 conv, this run) {self.roofline_gflops:.1f} GFLOP/s\n{self.protocol}"
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "dataset": self.dataset,
            "device": self.device,
            "precision": self.precision,
            "torch": self.torch_version,
            "backend": self.backend,
            "protocol": self.protocol_dict,
            "roofline_gflops": round(self.roofline_gflops, 2),
            "rows": [_json_row(r) for r in self.rows],
            "skipped": self.skipped,
            "warnings": self.warnings,
        }

    def cells(self, row: BenchRow) -> list[str]:
        out = []
        for key, _, fmt in COLUMNS:
            value = getattr(row, key)
            if value is None or (isinstance(value, float) and math.isnan(value)):
                out.append("-")
            elif isinstance(value, float) and math.isinf(value):
                out.append("inf")
            else:
                out.append(fmt.format(value))
        return out

    def to_markdown(self) -> str:
        lines = ["| " + " | ".join(h for _, h, _ in COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
        lines += ["| " + " | ".join(self.cells(r)) + " |" for r in self.rows]
        lines += ["", self.footer().replace("\n", "  \n")]
        if self.skipped:
            lines += ["", "Skipped: " + "; ".join(self.skipped)]
        return "\n".join(lines) + "\n"

    def to_csv(self) -> str:
        buf = io.StringIO()
        keys = [k for k in asdict(self.rows[0]) if k != "images"] if self.rows else []
        writer = csv.DictWriter(buf, fieldnames=keys, extrasaction="ignore", lineterminator="\n")
        writer.writeheader()
        for r in self.rows:
            writer.writerow({k: v for k, v in asdict(r).items() if k in keys})
        return buf.getvalue()


def _json_row(row: BenchRow) -> dict[str, Any]:
    from .metrics import json_number

    out = asdict(row)
    for key, value in out.items():
        if isinstance(value, float):
            out[key] = json_number(value)
    out["images"] = {k: json_number(v) for k, v in row.images.items()}
    return out


# -- choosing what to run ----------------------------------------------------------------------
def _locally_available(spec: Any, variant: Any) -> bool:
    """Bundled weights, or downloaded weights already in the cache (no network)."""
    from .weights import variant_path

    return bool(variant.file) or variant_path(spec, variant).is_file()


def select_models(options: BenchOptions) -> tuple[list[tuple[str, int]], list[str]]:
    """(model id, scale) pairs to run, and why others were skipped. Bicubic always comes first."""
    from .backends import is_onnx_ref
    from .registry import entries
    from .resolve import resolve

    pairs: list[tuple[str, int]] = []
    skipped: list[str] = []
    named = [m for m in options.models if m.split(".")[0] != "bicubic"]
    if options.weights is not None and len(named) != 1:
        raise UsageError("--weights needs exactly one model (-m MODEL)",
                         hint="benchmark one checkpoint at a time: sresr bench set5 -m MODEL --weights FILE")
    for scale in options.scales:
        pairs.append(("bicubic", scale))
        if options.models:
            for name in options.models:
                if name.split(".")[0] == "bicubic":
                    continue
                if is_onnx_ref(name):  # an exported file: its scale is known once loaded (bench_one)
                    pairs.append((name, scale))
                    continue
                request = resolve(name)  # the one resolver: names, aliases, MODEL.TAG, imported names
                spec = request.spec
                # a model named alone: the architecture's scales (bench_one says which have no weights);
                # a variant or an imported file: the scales its weights are for
                if scale not in (spec.scales if request.rule in ("default", "factory") else request.scales):
                    skipped.append(f"{name} has no x{scale}")
                    continue
                if options.weights is not None:
                    pairs.append((spec.name, scale))
                elif request.variant is not None:
                    pairs.append((f"{spec.name}.{request.variant.tag}", scale))
                elif request.rule == "default" and spec.weights_for(scale) is not None:
                    pairs.append((f"{spec.name}.{spec.weights_for(scale).tag}", scale))  # type: ignore[union-attr]
                else:
                    pairs.append((name, scale))
            continue
        for entry in entries().values():
            spec = entry.spec
            if spec is None or spec.name == "bicubic" or scale not in spec.scales:
                continue
            variant = spec.default_weights(scale)
            if variant is None:
                continue
            if _locally_available(spec, variant):
                pairs.append((f"{spec.name}.{variant.tag}", scale))
            else:
                skipped.append(f"{spec.name}.{variant.tag} (not downloaded: sresr weights pull {spec.name}.{variant.tag})")
    return pairs, skipped


# -- measuring ---------------------------------------------------------------------------------
def gflops_per_output_mpix(loaded: Any, side: int = 64) -> float:
    """Convolution GFLOPs per output megapixel (one forward on a side x side input)."""
    import torch

    from .profiling import count_flops

    channels = 1 if loaded.colorspace == "y" else 3
    in_side = side * loaded.scale if loaded.spec.input == "upsampled" else side
    example = torch.rand(1, channels, in_side, in_side)
    flops = count_flops(loaded.module.float().cpu().eval(), example)
    out_pixels = (side * loaded.scale) ** 2
    return flops / out_pixels * 1e6 / 1e9


def _lr_tensor(lr: Any) -> Any:
    import numpy as np
    import torch

    x = torch.from_numpy(np.ascontiguousarray(lr)).float() / 255.0
    if x.dim() == 2:
        x = x[None].expand(3, *x.shape)
    else:
        x = x.permute(2, 0, 1)
    return x.unsqueeze(0).contiguous()


def _load(model_id: str, scale: int, options: BenchOptions) -> Any:
    """``model_id`` as :func:`sresr.backends.load` gives it: ``network`` (for parameters and FLOPs),
    ``model``, what the backend runs (for quality and speed), and ``notes``, what its load said. A
    file is refused (a WeightsError: its row is skipped, with the reason) at another scale than its own."""
    from .backends import is_onnx_ref, load

    onnx_file = is_onnx_ref(model_id)  # a file made by sresr export (or elsewhere), run by onnxruntime
    got = load(model_id, scale, weights=options.weights if model_id != "bicubic" else None, backend=options.backend,
               provider=options.provider, device=options.device,
               # a file runs at the precision it was exported in: --precision is the other models'
               precision="auto" if onnx_file else options.precision)
    if onnx_file and got.model.scale != scale:
        raise WeightsError(f"{model_id} is a x{got.model.scale} network, not x{scale}",
                           hint=f"bench it with -s {got.model.scale}")
    return got


def bench_one(
    model_id: str,
    scale: int,
    dataset: Any,
    options: BenchOptions,
    roofline: float,
    warnings: list[str] | None = None,
) -> BenchRow:
    """One row of the table. ``warnings``: gets what the model's load said (an ONNX file's notes)."""
    from .engine import Upscaler
    from .evaluate import evaluate
    from .metrics import Protocol
    from .profiling import PeakMemory, time_call

    got = _load(model_id, scale, options)
    loaded, run = got.network, got.model
    if warnings is not None:
        warnings.extend(got.notes)
    report = evaluate(run, dataset, scale, protocol=Protocol(), device=options.device, progress=False)
    if report.failures:
        names = ", ".join(f.name for f in report.failures)
        raise SresrError(f"{model_id} x{scale}: {len(report.failures)} image(s) failed: {names}")
    up = Upscaler(run, device=options.device, precision=options.precision, tile=options.tile)
    samples = list(dataset.samples(scale))
    seconds = 0.0
    out_pixels = 0
    peak = 0.0
    for i, sample in enumerate(samples):
        x = _lr_tensor(sample.lr)
        if i == 0:
            with PeakMemory(up.device) as pm:
                up.upscale_rgb(x)
            peak = pm.peak_mb or 0.0
        timing = time_call(lambda: up.upscale_rgb(x), up.device, warmup=options.warmup, repeats=options.repeats)
        seconds += timing.median_s
        out_pixels += x.shape[-1] * x.shape[-2] * scale * scale
    n_params = sum(p.numel() for p in loaded.module.parameters())  # 0 for an ONNX file (no torch network)
    gpm = gflops_per_output_mpix(loaded) if n_params else 0.0
    mpix_per_s = out_pixels / 1e6 / seconds if seconds > 0 else float("nan")
    gflop_per_s = gpm * mpix_per_s
    reference = loaded.reference_metrics  # a published variant's own numbers, else the paper's
    paper_psnr = reference.get(f"{dataset.name.lower()}/x{scale}/psnr")
    paper_ssim = reference.get(f"{dataset.name.lower()}/x{scale}/ssim")
    mean = report.mean
    return BenchRow(
        model=model_id,
        scale=scale,
        weights=loaded.weights_id,
        psnr=mean.psnr,
        ssim=mean.ssim,
        params=n_params,
        paper_psnr=paper_psnr,
        paper_ssim=paper_ssim,
        paper_diff=(mean.psnr - paper_psnr) if paper_psnr is not None else None,
        gflops_per_mpix=gpm,
        ms_per_image=seconds / max(1, len(samples)) * 1e3,
        mpix_per_s=mpix_per_s,
        gflop_per_s=gflop_per_s,
        roofline_share=(gflop_per_s / roofline) if n_params and roofline > 0 else None,
        peak_mem_mb=peak,
        images={r.name: r.psnr for r in report.images},
    )


def run_bench(options: BenchOptions, on_row: Callable[[BenchRow], None] | None = None) -> BenchResult:
    """Benchmark the selected models on ``options.dataset``; bicubic is always measured."""
    import torch

    from .backends import is_onnx_ref
    from .datasets import load_dataset
    from .engine import resolve_device, resolve_precision
    from .metrics import Protocol
    from .profiling import conv_roofline
    from .resolve import resolve

    if not options.scales:
        raise UsageError("no scale given", hint="pass -s 2, -s 3 and/or -s 4")
    dataset = load_dataset(options.dataset, progress=False)
    device = resolve_device(options.device)
    pairs, skipped = select_models(options)
    rows: list[BenchRow] = []
    roof = conv_roofline(device, channels_last=True).gflops
    bicubic_psnr: dict[int, float] = {}
    precisions: set[str] = set()
    warnings: list[str] = []
    for model_id, scale in pairs:
        try:
            row = bench_one(model_id, scale, dataset, options, roof, warnings)
        except WeightsError as exc:
            skipped.append(f"{model_id} x{scale}: {exc.message}")
            continue
        if model_id == "bicubic":
            bicubic_psnr[scale] = row.psnr
        if scale in bicubic_psnr:
            row.delta_psnr = row.psnr - bicubic_psnr[scale]
        if not is_onnx_ref(model_id):  # a file runs at the precision it was exported in
            spec = resolve(model_id).spec
            precisions.add(str(resolve_precision(options.precision, device, spec)).replace("torch.", ""))
        rows.append(row)
        if on_row is not None:
            on_row(row)
    protocol = Protocol()
    return BenchResult(
        dataset=dataset.name,
        device=_device_name(device),
        precision="/".join(sorted(precisions)) or options.precision,
        torch_version=torch.__version__,
        protocol=protocol.describe(),
        protocol_dict=protocol.to_dict(),
        roofline_gflops=roof,
        rows=rows,
        skipped=skipped,
        backend=_backend_name(options),
        warnings=list(dict.fromkeys(warnings)),  # once each (a file benched at several scales says it once)
    )


def _backend_name(options: BenchOptions) -> str:
    """``torch``, or onnxruntime's version and the execution provider it runs first."""
    from .backends import check_backend, is_onnx_ref

    files = [m for m in options.models if is_onnx_ref(m)]
    torch_runs = check_backend(options.backend) == "torch"  # bicubic at least
    if not files and torch_runs:
        return "torch"
    from .backends.onnxruntime import _ort, choose_providers

    first = choose_providers(options.provider, options.device)[0]
    ort = f"onnxruntime {_ort().__version__} ({first if isinstance(first, str) else first[0]})"
    return f"torch, and {ort} for the ONNX files" if torch_runs else ort


def _device_name(device: Any) -> str:
    import os

    import torch

    if device.type == "cuda":
        return f"{device} ({torch.cuda.get_device_name(device)})"
    return f"cpu ({os.cpu_count()} cores, {torch.get_num_threads()} threads)"


# -- comparison grid ---------------------------------------------------------------------------
def write_grid(path: str | Path, result: BenchResult, options: BenchOptions, crop: int = 96, zoom: int = 2) -> Path:
    """A PNG like the figures of SR papers: per image and scale, a crop of LR (nearest), each
    model (bicubic first) and HR, side by side, labelled with the image's PSNR."""
    import numpy as np
    from PIL import Image, ImageDraw, ImageFont

    from .datasets import load_dataset, write_png
    from .evaluate import super_resolve
    from .metrics import quantize

    dataset = load_dataset(options.dataset, progress=False)
    label_h = 14
    font = ImageFont.load_default()
    scales = sorted({r.scale for r in result.rows})
    rows_img: list[np.ndarray] = []
    for scale in scales:
        models = [r for r in result.rows if r.scale == scale]
        loaded = {r.model: _load(r.model, scale, options).model for r in models}
        for sample in dataset.samples(scale):
            hr = sample.hr if sample.hr.ndim == 3 else np.repeat(sample.hr[..., None], 3, axis=2)
            h, w = hr.shape[:2]
            c = min(crop, h, w) // scale * scale
            top, left = ((h - c) // 2) // scale * scale, ((w - c) // 2) // scale * scale
            lr = sample.lr if sample.lr.ndim == 3 else np.repeat(sample.lr[..., None], 3, axis=2)
            lr_crop = lr[top // scale:(top + c) // scale, left // scale:(left + c) // scale]
            panels = [("LR (nearest)", np.repeat(np.repeat(lr_crop, scale, 0), scale, 1))]
            for r in models:
                sr, _ = super_resolve(loaded[r.model], sample.lr, options.device)
                sr = quantize(sr).astype(np.uint8)
                sr = sr if sr.ndim == 3 else np.repeat(sr[..., None], 3, axis=2)
                short = Path(r.model).stem if r.model.lower().endswith(".onnx") else r.model.split(".")[0]
                label = f"{short} {r.images.get(sample.name, float('nan')):.2f}dB"
                panels.append((label, sr[top:top + c, left:left + c]))
            panels.append(("HR", hr[top:top + c, left:left + c]))
            tiles = []
            for label, arr in panels:
                im = Image.fromarray(np.ascontiguousarray(arr).astype(np.uint8)).resize((c * zoom, c * zoom), Image.NEAREST)
                canvas = Image.new("RGB", (c * zoom, c * zoom + label_h), "white")
                canvas.paste(im, (0, label_h))
                ImageDraw.Draw(canvas).text((2, 1), f"{label} x{scale}" if label == "HR" else label, fill="black", font=font)
                tiles.append(np.asarray(canvas))
            rows_img.append(np.concatenate(tiles, axis=1))
    if not rows_img:
        raise UsageError("nothing to draw: no rows were measured")
    width = max(r.shape[1] for r in rows_img)
    padded = [np.pad(r, ((0, 2), (0, width - r.shape[1]), (0, 0)), constant_values=255) for r in rows_img]
    grid = np.concatenate(padded, axis=0)
    out = Path(path)
    write_png(out, grid)
    return out


def write_text(path: str | Path, text: str) -> None:
    """Atomic write of a report file."""
    from .atomic import atomic_write_text

    atomic_write_text(Path(path), text)

