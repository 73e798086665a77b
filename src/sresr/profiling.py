"""Measurement helpers shared by ``sresr bench`` and the scripts in benchmarks/.

Discipline: warm-up runs are excluded, CUDA is synchronised before a clock is read, and the
median of the repeats is reported.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from typing import Any, Callable


@dataclass(frozen=True)
class Timing:
    median_s: float
    min_s: float
    repeats: int


def sync(device: Any) -> None:
    import torch

    dev = torch.device(device)
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
    elif dev.type == "mps":  # pragma: no cover - no mps here
        torch.mps.synchronize()


def time_call(fn: Callable[[], Any], device: Any = "cpu", warmup: int = 1, repeats: int = 3,
              min_time: float = 0.0) -> Timing:
    """Median wall time of ``fn()``; runs at least ``repeats`` times and at least ``min_time`` s."""
    for _ in range(warmup):
        fn()
    sync(device)
    times: list[float] = []
    start_all = time.perf_counter()
    while len(times) < repeats or time.perf_counter() - start_all < min_time:
        t0 = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - t0)
        if len(times) >= 1000:
            break
    return Timing(statistics.median(times), min(times), len(times))


def count_flops(module: Any, example: Any) -> int:
    """Multiply-adds x 2 of the convolutions and linear layers for one forward of ``example``.

    Counted with forward hooks on the real module, so it follows whatever the network does.
    Elementwise ops, activations and resampling are not counted (they are a few percent).
    """
    import torch
    from torch import nn

    total = 0

    def conv_hook(mod: nn.Module, inputs: tuple[Any, ...], output: Any) -> None:
        nonlocal total
        w = mod.weight
        if isinstance(mod, nn.ConvTranspose2d):
            # every input pixel is multiplied by every kernel tap into out_channels/groups outputs
            x = inputs[0]
            per_pixel = w.shape[0] * w.shape[1] * w.shape[2] * w.shape[3]  # (in, out/g, kh, kw)
            total += 2 * x.shape[0] * x.shape[2] * x.shape[3] * per_pixel
        else:
            out = output
            per_pixel = w.shape[1] * w.shape[2] * w.shape[3]  # (out, in/g, kh, kw)
            total += 2 * out.numel() * per_pixel

    def linear_hook(mod: nn.Module, inputs: tuple[Any, ...], output: Any) -> None:
        nonlocal total
        total += 2 * output.numel() * mod.in_features

    handles = []
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            handles.append(m.register_forward_hook(conv_hook))
        elif isinstance(m, nn.Linear):
            handles.append(m.register_forward_hook(linear_hook))
    try:
        with torch.inference_mode():
            module(example)
    finally:
        for h in handles:
            h.remove()
    return total


@dataclass(frozen=True)
class Roofline:
    gflops: float  # achieved by a 64->64 3x3 convolution, the work every conv-net here is made of
    layout: str
    size: int


def conv_roofline(device: Any = "cpu", channels_last: bool = True, size: int = 128,
                  dtype: Any = None, repeats: int = 5) -> Roofline:
    """Measure the GFLOP/s of a 64->64 3x3 convolution on a size x size map, in this run."""
    import torch
    from torch import nn

    dtype = dtype or torch.float32
    conv = nn.Conv2d(64, 64, 3, padding=1).to(device=device, dtype=dtype).eval()
    x = torch.rand(1, 64, size, size, device=device, dtype=dtype)
    if channels_last:
        conv = conv.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    flops = 2 * 64 * 64 * 9 * size * size

    def run() -> None:
        with torch.inference_mode():
            conv(x)

    timing = time_call(run, device, warmup=2, repeats=repeats, min_time=0.5)
    return Roofline(flops / timing.median_s / 1e9, "channels_last" if channels_last else "NCHW", size)


class PeakMemory:
    """Peak memory of a block of code, in MiB above what was in use when it started.

    On CUDA: ``torch.cuda.max_memory_allocated``. On the CPU: a background thread samples the
    resident set size (Linux ``/proc/self/statm``) every few milliseconds; the allocator's
    returns to the OS make this a lower bound of the true peak, close for large buffers.
    """

    def __init__(self, device: Any = "cpu", interval: float = 0.002):
        import torch

        self.device = torch.device(device)
        self.interval = interval
        self.peak_mb: float | None = None
        self._stop = False
        self._thread: Any = None
        self._base = 0
        self._max = 0

    @staticmethod
    def _rss() -> int:
        import os

        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

    def _poll(self) -> None:
        import time as _time

        while not self._stop:
            self._max = max(self._max, self._rss())
            _time.sleep(self.interval)

    def __enter__(self) -> "PeakMemory":
        import threading

        import torch

        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            self._base = torch.cuda.memory_allocated(self.device)
        else:
            try:
                self._base = self._max = self._rss()
            except OSError:  # pragma: no cover - not Linux
                return self
            self._thread = threading.Thread(target=self._poll, daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        import torch

        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            self.peak_mb = (torch.cuda.max_memory_allocated(self.device) - self._base) / 2**20
        elif self._thread is not None:
            self._stop = True
            self._thread.join()
            self._max = max(self._max, self._rss())
            self.peak_mb = (self._max - self._base) / 2**20
