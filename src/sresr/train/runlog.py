"""What a run leaves in its folder besides checkpoints: ``metrics.csv``, the plots, the progress
shown while it runs, and the final ``weights.safetensors`` (written by :mod:`sresr.weights`'
metadata writer, so the file alone rebuilds the network)."""

from __future__ import annotations

import csv
import json
import math
import sys
import time
from pathlib import Path
from typing import Any, Callable

from torch import nn

from ..atomic import atomic_write
from ..spec import ModelSpec
from .config import TrainConfig, to_dict

WEIGHTS = "weights.safetensors"
METRICS = "metrics.csv"
CONFIG = "config.toml"
METRIC_FIELDS = ["iteration", "seconds", "lr", "loss", "loss_pixel", "loss_perceptual", "loss_adv", "loss_d",
                 "val_psnr", "val_ssim"]


class MetricsLog:
    def __init__(self, path: Path, resume_at: int | None):
        self.path = path
        if resume_at is not None and path.exists():
            rows = self.read(path)
            keep = [r for r in rows if int(float(r["iteration"])) <= resume_at]
            self._write_all(keep)
        elif not path.exists() or resume_at is None:
            self._write_all([])

    @staticmethod
    def read(path: Path) -> list[dict[str, str]]:
        if not path.exists():
            return []
        with open(path, newline="") as fh:
            return list(csv.DictReader(fh))

    def _write_all(self, rows: list[dict[str, Any]]) -> None:
        def write(tmp: Path) -> None:
            with open(tmp, "w", newline="") as fh:
                w = csv.DictWriter(fh, fieldnames=METRIC_FIELDS)
                w.writeheader()
                for r in rows:
                    w.writerow({k: r.get(k, "") for k in METRIC_FIELDS})

        atomic_write(self.path, write)

    def append(self, row: dict[str, Any]) -> None:
        with open(self.path, "a", newline="") as fh:
            csv.DictWriter(fh, fieldnames=METRIC_FIELDS).writerow({k: _fmt(row.get(k)) for k in METRIC_FIELDS})


def _fmt(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return f"{v:.8g}"
    return str(v)


def write_plots(rundir: Path) -> None:
    from .plot import line_plot

    rows = MetricsLog.read(rundir / METRICS)
    loss = [(float(r["iteration"]), float(r["loss"])) for r in rows if r.get("loss")]
    val = [(float(r["iteration"]), float(r["val_psnr"])) for r in rows if r.get("val_psnr")]
    if loss:
        line_plot(loss, rundir / "loss.png", title="training loss", ylabel="loss", log_y=True)
    if val:
        line_plot(val, rundir / "val_psnr.png", title="validation PSNR (Y, dB)", ylabel="dB")


class Progress:
    """A rich progress bar on a TTY; otherwise a plain line every ``every`` iterations."""

    def __init__(self, total: int, start: int, enabled: bool, log: Callable[[str], None]):
        self.total, self.start_it, self.log = total, start, log
        self.t0 = time.perf_counter()
        self.bar = None
        self.every = max(1, total // 20)
        self.fields = {"loss": float("nan"), "psnr": float("nan")}
        if enabled and sys.stderr.isatty():
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn, TimeRemainingColumn
            from rich.progress import Progress as RichProgress

            self.bar = RichProgress(
                TextColumn("[bold]train"), BarColumn(), MofNCompleteColumn(),
                TextColumn("{task.fields[status]}"),
                TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(),
                console=Console(stderr=True), transient=False,
            )
            self.bar.start()
            self.task = self.bar.add_task("train", total=total, completed=start, status="")
        self.quiet = not enabled

    def rate(self, it: int) -> float:
        dt = time.perf_counter() - self.t0
        return (it - self.start_it) / dt if dt > 0 else 0.0

    def status(self, rate: float) -> str:
        """``loss L  val P dB  R it/s``, leaving out what is not known yet (no loss before the first log)."""
        loss, psnr = self.fields["loss"], self.fields["psnr"]
        parts = [f"loss {loss:.4g}" if not math.isnan(loss) else "",
                 f"val {psnr:.2f} dB" if not math.isnan(psnr) else "", f"{rate:.1f} it/s"]
        return "  ".join(p for p in parts if p)

    def update(self, it: int, loss: float | None = None, psnr: float | None = None) -> None:
        if loss is not None:
            self.fields["loss"] = loss
        if psnr is not None:
            self.fields["psnr"] = psnr
        rate = self.rate(it)
        if self.bar is not None:
            self.bar.update(self.task, completed=it, status=self.status(rate))
        elif not self.quiet and (it % self.every == 0 or it == self.total or psnr is not None):
            eta = (self.total - it) / rate if rate > 0 else float("nan")
            self.log(f"it {it}/{self.total}  {self.status(rate)}  ETA {hms(eta)}")

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()


def hms(s: float) -> str:
    if not math.isfinite(s):
        return "?"
    s = int(s)
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


# -- final weights ----------------------------------------------------------------------------------


def save_weights(module: nn.Module, path: Path, cfg: TrainConfig, spec: ModelSpec, colorspace: str, iterations: int,
                 seconds: float, val: dict[str, float]) -> Path:
    """The run's final weights, through :func:`sresr.weights.write_weights` (the one metadata
    writer), with what made them: recipe, iterations, time, seed, data, validation, config."""
    from ..weights import write_weights

    val_name = Path(cfg.val.data).name.lower() if cfg.val.data else ""
    extra = {
        "sresr.recipe": cfg.recipe,
        "sresr.iterations": str(iterations),
        "sresr.train_seconds": f"{seconds:.1f}",
        "sresr.seed": str(cfg.seed),
        "sresr.train_data": json.dumps(list(cfg.data.train)),
        "sresr.metrics": json.dumps({f"{val_name}/x{cfg.scale}/{k}": round(v, 4) for k, v in val.items()
                                     if math.isfinite(v)}),
        "sresr.config": json.dumps(to_dict(cfg), sort_keys=True),
    }
    return write_weights(module.state_dict(), path, spec.name, cfg.scale, dict(cfg.model_kwargs), colorspace, extra)