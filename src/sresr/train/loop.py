"""The training loop: resumable bit-exactly, DDP through torchrun's environment, AMP, EMA.

Layout of a run folder (RUNDIR):
  config.toml         the full typed config of the run
  checkpoint.pt       model, optimiser(s), scheduler(s), EMA, GradScaler, RNG states, iteration, config
                      (written atomically, with a sha256 of its content: see sresr.train.checkpoint)
  checkpoint.prev.pt  the checkpoint before it, resumed from when checkpoint.pt is damaged
  metrics.csv         one row per log interval and per validation
  loss.png, val_psnr.png   plots
  weights.safetensors the final weights (the EMA's when EMA is on), usable as --weights

The jobs live in their own modules: where it runs (:mod:`.dist`), what it trains with
(:mod:`.setup`), the batches (:mod:`.data`, made on the training device), one optimisation step
per kind of training (:mod:`.steps`), the checkpoint (:mod:`.checkpoint`), validation
(:mod:`.validation`) and what the run leaves (:mod:`.runlog`). :func:`_train` reads top to bottom.

The loop never waits for the device between logs: batches are gathered on the device, the loss
parts are summed there and read every ``log_every`` iterations (a non-finite loss is caught then,
and always before a checkpoint is written).
"""

from __future__ import annotations

import random
import signal
import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
from torch import nn

from ..devices import ieee_fp32, tf32_allowed
from ..errors import SresrError, UsageError
from ..spec import ModelSpec
from .checkpoint import CHECKPOINT, PREVIOUS, TrainState, clean_stale_temps, load_resume_checkpoint, save_checkpoint
from .config import TrainConfig, save_toml, to_dict
from .data import DeviceBatcher, PatchDataset, load_paired, load_pairs, pair_files, resolve_sources
from .dist import Dist, all_true, barrier, init_distributed, resolve_device, resolve_precision
from .losses import VGGPerceptualLoss, pixel_loss
from .runlog import CONFIG, METRICS, WEIGHTS, MetricsLog, Progress, save_weights, write_plots, hms
from .setup import (
    EMA,
    apply_init,
    apply_trainable,
    build_discriminator,
    build_model,
    make_optimizer,
    make_scheduler,
    parameter_groups,
)
from .steps import GanStep, PixelStep
from .validation import load_val_images, validate


class TrainingInterrupted(SresrError):
    """Stopped by SIGINT/SIGTERM after writing a checkpoint."""

    exit_code = 130


@dataclass
class TrainResult:
    rundir: Path
    weights: Path | None
    iterations: int
    seconds: float
    val: dict[str, float] = field(default_factory=dict)
    module: Any = None  # the trained nn.Module (the EMA's when EMA is on), on its device


class _StopFlag:
    def __init__(self) -> None:
        self.requested = False
        self._old: dict[int, Any] = {}

    def __enter__(self) -> _StopFlag:
        import threading

        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._old[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        if self.requested:  # second Ctrl-C: stop now
            raise KeyboardInterrupt
        self.requested = True

    def __exit__(self, *exc: Any) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old)


def _default_log(msg: str) -> None:
    print(msg, flush=True)


def train(cfg: TrainConfig, out: str | Path, resume: bool = False, spec: ModelSpec | None = None,
          progress: bool = True, log: Callable[[str], None] | None = None,
          warn: Callable[[str], None] | None = None) -> TrainResult:
    """Train ``cfg`` into the run folder ``out``; continue from its checkpoint when ``resume``.
    ``warn`` gets one-line warnings (a damaged checkpoint resumed from the previous one, say;
    default: ``log`` with a ``warning:`` prefix)."""
    cfg.validate()
    log = log or _default_log
    warn = warn or (lambda msg: log(f"warning: {msg}"))
    rundir = Path(out)
    device_kind = "cuda" if (cfg.device.startswith("cuda") or (cfg.device == "auto" and torch.cuda.is_available())) \
        else "cpu"
    dist, created_group = init_distributed(device_kind)
    # the run folder and the parents this run creates (runs/ for runs/vdsr-x2): removed again when
    # the start fails, so a mistyped command leaves nothing behind
    created = [d for d in (rundir, *rundir.parents) if not d.exists()] if dist.main else []
    try:
        quiet = lambda m: None  # noqa: E731
        return _train(cfg, rundir, resume, spec, progress, log if dist.main else quiet, dist,
                      warn if dist.main else quiet)
    except BaseException:
        if created:
            _remove_if_untrained(rundir, created[1:])
        raise
    finally:
        if created_group:
            import gc

            import torch.distributed as tdist

            # The DDP wrapper sits in reference cycles; collect it while the process group still
            # exists, otherwise its reducer is torn down later against a destroyed group and the
            # process aborts at exit ("terminate called without an active exception").
            gc.collect()
            tdist.destroy_process_group()


def _remove_if_untrained(rundir: Path, parents: Sequence[Path] = ()) -> None:
    """A run folder this run created and that holds nothing of a training (no checkpoint, weights
    or metrics: a start that failed on its data, model or options) is removed, not left empty,
    and so are the ``parents`` this run created, when nothing else is in them."""
    if any((rundir / name).exists() for name in (CHECKPOINT, PREVIOUS, WEIGHTS, METRICS)):
        return
    import shutil

    shutil.rmtree(rundir, ignore_errors=True)
    for parent in parents:  # nearest first
        try:
            parent.rmdir()
        except OSError:
            break  # not empty (or not ours to remove)


def _long_run_warning(cfg: TrainConfig, it: int, start: int, seconds: float, device: torch.device) -> str | None:
    """One line when the iterations left would take more than a day at the speed measured so far."""
    rate = (it - start) / max(seconds, 1e-9)
    left = (cfg.iters - it) / max(rate, 1e-9)
    if left <= 24 * 3600:
        return None
    hour = max(1, int(rate * 3600))
    gpu = " or train on a GPU" if device.type == "cpu" else ""
    return (f"at {rate:.3g} iterations/s on {device.type} the {cfg.iters - it} iterations left take about "
            f"{left / 86400:.1f} days; for a shorter run pass --iters {hour} (about an hour here){gpu}")


# -- the parts of a run, in the order it builds them ------------------------------------------------


def _prepare_folder(rundir: Path, resume: bool, dist: Dist) -> None:
    if dist.main:
        rundir.mkdir(parents=True, exist_ok=True)
        held = [name for name in (CHECKPOINT, PREVIOUS) if (rundir / name).exists()]
        if held and not resume:
            raise UsageError(f"{rundir} already holds a training run ({held[0]})",
                             hint="pass --resume to continue it, or choose another --out")
        # only once the folder is ours: a refused run must not delete the temp file of a run
        # still writing a checkpoint there
        clean_stale_temps(rundir)
    barrier(dist)


@dataclass
class _Network:
    """The network being trained, where and how it runs."""

    module: nn.Module
    spec: ModelSpec
    colorspace: str
    upsampled: bool
    amp_dtype: torch.dtype | None
    memory_format: torch.memory_format


def _build_network(cfg: TrainConfig, spec: ModelSpec | None, device: torch.device,
                   log: Callable[[str], None]) -> _Network:
    module, spec = build_model(cfg, spec)
    colorspace = spec.colorspace if cfg.data.colorspace == "auto" else cfg.data.colorspace
    loaded = apply_init(module, cfg, log, spec)
    trainable = apply_trainable(module, cfg.trainable, loaded)
    if cfg.trainable:
        log(f"training {len(trainable)} parameter tensor(s): {', '.join(trainable[:6])}"
            + (" ..." if len(trainable) > 6 else ""))
    module.to(device)
    amp_dtype = resolve_precision(cfg.precision, device, spec)
    memory_format = torch.contiguous_format
    if device.type == "cpu" and not cfg.compile:
        # channels_last: oneDNN's faster layout (more samples/s for every built-in model measured here);
        # in fp32, layers in faster forms with the same function and gradients (sresr.train.fast)
        from .fast import training_forms

        forms = training_forms(module) if amp_dtype is None else []
        memory_format = torch.channels_last
        module.to(memory_format=memory_format)
        log("CPU training in channels_last" + (", with " + ", ".join(forms) if forms else ""))
    return _Network(module, spec, colorspace, spec.input == "upsampled", amp_dtype, memory_format)


def _build_batches(cfg: TrainConfig, net: _Network, device: torch.device, dist: Dist,
                   log: Callable[[str], None]) -> DeviceBatcher:
    scales = tuple(cfg.data.scales) if cfg.data.scales else (cfg.scale,)
    if not net.upsampled and len(scales) > 1:
        raise UsageError(f"multi-scale training needs a pre-upsampled model; '{net.spec.name}' takes LR input",
                         hint="set data.scales = [] (train one scale)")
    if not net.upsampled and any(cfg.data.patch_size % s for s in scales):
        raise UsageError(f"patch size {cfg.data.patch_size} is not a multiple of the scale {cfg.scale}",
                         hint=f"use --patch-size {cfg.data.patch_size // cfg.scale * cfg.scale or cfg.scale}")
    t_load = time.perf_counter()
    hr_files = resolve_sources(cfg.data.train)
    if cfg.data.train_lr:  # the user's own LR/HR pairs
        if len(scales) > 1 or cfg.data.resize_factors:
            log(f"note: paired LR data: training x{cfg.scale} alone, without the recipe's multi-scale or resize "
                "augmentation (they would unpair the images)")
            scales = (cfg.scale,)
        pairs = load_paired(pair_files(hr_files, cfg.data.train_lr, cfg.scale, log), cfg.scale, net.colorspace,
                            net.upsampled, min_hr=cfg.data.patch_size, log=log)
    else:
        pairs = load_pairs(hr_files, scales, net.colorspace, net.upsampled, min_hr=cfg.data.patch_size, log=log,
                           resize_factors=cfg.data.resize_factors)
    resized = (f" (resized by {', '.join(f'{f:g}' for f in cfg.data.resize_factors)})"
               if cfg.data.resize_factors and not cfg.data.train_lr else "")
    paired = " (paired with the given LR images)" if cfg.data.train_lr else ""
    log(f"training data: {len(pairs[scales[0]])} images{resized}{paired} x{'/x'.join(map(str, scales))} "
        f"({time.perf_counter() - t_load:.1f} s to prepare)")
    dataset = PatchDataset(pairs, cfg.data.patch_size, cfg.data.batch_size, cfg.seed, cfg.data.augment, net.upsampled)
    batcher = DeviceBatcher(dataset, device, dist.rank, dist.world)
    dataset.release_images()  # the batcher holds them now (on the device); the draws need only sizes
    return batcher


def _build_state(cfg: TrainConfig, net: _Network, device: torch.device, log: Callable[[str], None]
                 ) -> tuple[TrainState, list[nn.Parameter]]:
    groups = parameter_groups(net.module, cfg.optim.lr, cfg.optim.lr_scale)
    if len(groups) > 1 or cfg.optim.lr_scale:
        log("learning rates: " + ", ".join(f"{len(g['params'])} tensor(s) at {g['lr']:g}" for g in groups))
    opt = make_optimizer(groups, cfg.optim.name, cfg.optim.lr, cfg.optim.betas, cfg.optim.eps, cfg.optim.momentum,
                         cfg.optim.weight_decay)
    scaler = torch.amp.GradScaler(device.type, enabled=net.amp_dtype == torch.float16)
    ema = EMA(net.module, cfg.ema) if cfg.ema > 0 else None
    disc = d_opt = d_sched = None
    if cfg.gan.weight:
        disc = build_discriminator(cfg).to(device)
        d_opt = make_optimizer(list(disc.parameters()), "adam", cfg.gan.lr, cfg.gan.betas)
        d_sched = make_scheduler(d_opt, cfg)
    state = TrainState(net.module, opt, make_scheduler(opt, cfg), scaler, ema, disc, d_opt, d_sched)
    return state, [p for p in net.module.parameters() if p.requires_grad]


def _build_step(cfg: TrainConfig, net: _Network, state: TrainState, params: list[nn.Parameter],
                device: torch.device, dist: Dist) -> PixelStep:
    forward: Callable[[torch.Tensor], torch.Tensor] = net.module
    if dist.enabled:
        from torch.nn.parallel import DistributedDataParallel as DDP

        forward = DDP(net.module, device_ids=[device.index] if device.type == "cuda" else None)
    if cfg.compile:
        forward = torch.compile(forward)  # type: ignore[assignment]
    amp = net.amp_dtype
    autocast = (lambda: torch.autocast(device.type, dtype=amp)) if amp is not None else nullcontext
    crit_pixel = (pixel_loss(cfg.loss.pixel, cfg.loss.charbonnier_eps, cfg.loss.pixel_reduction).to(device)
                  if cfg.loss.pixel_weight else None)
    crit_vgg = None
    if cfg.loss.perceptual_weight:
        crit_vgg = VGGPerceptualLoss(cfg.loss.perceptual_layer, cfg.loss.perceptual_before_activation,
                                     cfg.loss.perceptual_criterion, cfg.loss.vgg_weights).to(device)
    tf32 = tf32_allowed(cfg.precision)
    exact = (lambda: ieee_fp32(device, torch.float32, tf32)) if amp is None else nullcontext  # fp32 means fp32
    common = dict(cfg=cfg, forward=forward, opt=state.opt, scaler=state.scaler, params=params, autocast=autocast,
                  crit_pixel=crit_pixel, crit_vgg=crit_vgg, exact=exact)
    if state.disc is not None:
        return GanStep(**common, disc=state.disc, d_opt=state.d_opt, d_sched=state.d_sched)  # type: ignore[arg-type]
    return PixelStep(**common)  # type: ignore[arg-type]


class _LossTally:
    """Loss parts summed on the device between logs; read (one sync) only when a row is written."""

    def __init__(self) -> None:
        self.sums: dict[str, torch.Tensor] = {}
        self.count = 0
        self.first = 0  # the first iteration of the current tally

    def add(self, it: int, parts: dict[str, torch.Tensor]) -> None:
        if not self.count:
            self.first = it
        for k, v in parts.items():
            self.sums[k] = self.sums[k] + v if k in self.sums else v.clone()
        self.count += 1

    def check(self, upto: int) -> None:
        """A non-finite loss since the last read stops the run before anything is saved from it."""
        if "loss" in self.sums and not bool(torch.isfinite(self.sums["loss"])):
            value = float(self.sums["loss"])
            raise SresrError(f"the loss became {value} between iterations {self.first} and {upto}",
                             hint="lower --lr, enable gradient clipping, or use --precision fp32")

    def means(self, upto: int) -> dict[str, float]:
        self.check(upto)
        out = {k: float(v) / self.count for k, v in self.sums.items()}
        self.sums, self.count = {}, 0
        return out


class _Recorder:
    """After each iteration: a metrics row every ``log_every`` iterations (the one read of the
    loss tally), validation every ``val.every`` and at the end, plots after each validation."""

    def __init__(self, cfg: TrainConfig, rundir: Path, metrics: MetricsLog | None, tally: _LossTally,
                 val_images: list[Any], module: nn.Module, colorspace: str, device: torch.device):
        self.cfg, self.rundir, self.metrics, self.tally = cfg, rundir, metrics, tally
        self.val_images, self.module, self.colorspace, self.device = val_images, module, colorspace, device
        self.last_val: dict[str, float] = {}

    def after(self, it: int, seconds: float, lr: float) -> tuple[float | None, float | None]:
        """(mean loss since the last row, validation PSNR) of this iteration, None where there is none."""
        cfg = self.cfg
        do_val = bool(self.val_images) and ((cfg.val.every and it % cfg.val.every == 0) or it == cfg.iters)
        if not (it % max(1, cfg.log_every) == 0 or it == cfg.iters or do_val):
            return None, None
        row: dict[str, Any] = {"iteration": it, "seconds": round(seconds, 3), "lr": lr, **self.tally.means(it)}
        if do_val:
            self.last_val = validate(self.module, self.val_images, cfg.scale, self.colorspace, self.device)
            row.update(val_psnr=self.last_val["psnr"], val_ssim=self.last_val["ssim"])
        if self.metrics is not None:
            self.metrics.append(row)
            if do_val:
                write_plots(self.rundir)
        return row.get("loss"), self.last_val.get("psnr") if do_val else None


# -- the run ---------------------------------------------------------------------------------------


def _train(cfg: TrainConfig, rundir: Path, resume: bool, spec: ModelSpec | None, progress: bool,
           log: Callable[[str], None], dist: Dist, warn: Callable[[str], None]) -> TrainResult:
    _prepare_folder(rundir, resume, dist)
    if cfg.threads > 0:
        torch.set_num_threads(cfg.threads)
    device = resolve_device(cfg.device, dist)
    random.seed(cfg.seed)
    np.random.seed(cfg.seed % 2**32)
    torch.manual_seed(cfg.seed)

    net = _build_network(cfg, spec, device, log)
    batches = _build_batches(cfg, net, device, dist, log)
    val_images = (load_val_images(cfg, cfg.scale, net.colorspace, net.upsampled)
                  if dist.main and cfg.val.data and cfg.val.every >= 0 else [])
    state, params = _build_state(cfg, net, device, log)
    step = _build_step(cfg, net, state, params, device, dist)

    ckpt_path = rundir / CHECKPOINT
    start, elapsed0, keep_previous = 0, 0.0, True
    found = load_resume_checkpoint(ckpt_path, warn) if resume else None
    if found is not None:
        payload, resumed_from, fell_back = found
        start, elapsed0 = state.restore(payload)
        keep_previous = not fell_back  # a damaged checkpoint.pt must not become checkpoint.prev.pt
        log(f"resumed from {resumed_from} at iteration {start}")
    elif resume:
        log(f"nothing to resume in {rundir}: starting from iteration 0")
    if dist.main:
        save_toml(cfg, rundir / CONFIG, header=f"sresr train config (recipe {cfg.recipe or 'custom'})")
    metrics = MetricsLog(rundir / METRICS, start if (resume and start) else None) if dist.main else None
    eval_module = state.ema.module if state.ema is not None else net.module
    tally = _LossTally()
    record = _Recorder(cfg, rundir, metrics, tally, val_images, eval_module, net.colorspace, device)

    def checkpoint(it: int, seconds: float) -> None:
        nonlocal keep_previous
        tally.check(it)
        if dist.main:
            save_checkpoint(ckpt_path, state.payload(it, seconds, it * cfg.data.batch_size, to_dict(cfg)),
                            keep_previous=keep_previous)
            keep_previous = True
        barrier(dist)

    bar = Progress(cfg.iters, start, progress and dist.main, log)
    t0, it, eta_said = time.perf_counter(), start, False
    net.module.train()
    with _StopFlag() as stop:
        try:
            while it < cfg.iters:
                inp, hr = batches.batch(it)
                parts = step(inp.contiguous(memory_format=net.memory_format),
                             hr.contiguous(memory_format=net.memory_format))
                lr_now = state.opt.param_groups[0]["lr"]
                state.sched.step()
                if state.ema is not None:
                    state.ema.update(net.module)
                it += 1
                tally.add(it, parts)
                seconds = elapsed0 + time.perf_counter() - t0
                if not eta_said and (it - start >= 20 or time.perf_counter() - t0 > 30):
                    eta_said = True
                    long_run = _long_run_warning(cfg, it, start, time.perf_counter() - t0, device)
                    if long_run:
                        warn(long_run)
                loss_now, psnr_now = record.after(it, seconds, lr_now)
                bar.update(it, loss=loss_now, psnr=psnr_now)
                if cfg.checkpoint_every and it % cfg.checkpoint_every == 0 and it < cfg.iters:
                    checkpoint(it, seconds)
                # under DDP every rank must stop at the same iteration: agree every 10 (one collective)
                if (stop.requested if not dist.enabled else it % 10 == 0 and all_true(stop.requested, dist, device)):
                    checkpoint(it, seconds)
                    raise TrainingInterrupted(
                        f"training interrupted at iteration {it}/{cfg.iters}; checkpoint saved in {ckpt_path}",
                        hint=f"continue with: sresr train {cfg.model} --out {rundir} --resume",
                    )
        finally:
            bar.close()

    seconds = elapsed0 + time.perf_counter() - t0
    weights = rundir / WEIGHTS if dist.main else None
    if it == start and (rundir / WEIGHTS).exists():  # resumed a finished run: nothing to do
        log(f"{rundir} is already trained to iteration {it}; weights: {rundir / WEIGHTS}")
        return TrainResult(rundir, weights, it, seconds, {}, eval_module)
    checkpoint(it, seconds)
    last_val = record.last_val
    if dist.main:
        weights = save_weights(eval_module, rundir / WEIGHTS, cfg, net.spec, net.colorspace, it, seconds, last_val)
        write_plots(rundir)
        log(f"done: {it} iterations in {hms(seconds)}"
            + (f", {cfg.val.data} x{cfg.scale} PSNR {last_val['psnr']:.2f} dB" if "psnr" in last_val else "")
            + f"; weights: {weights}")
    barrier(dist)
    return TrainResult(rundir, weights, it, seconds, last_val, eval_module)
