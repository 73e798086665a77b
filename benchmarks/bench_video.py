"""`sresr upscale clip.mp4` against the network alone: frames per second, 1080p -> 4K (x2).

    python benchmarks/bench_video.py [--frames 8] [--model realesrgan-compact] [--scale 2] [--size 1920x1080] [--device cpu]
        [--frame-batch N]

A clip of ``--frames`` frames (smooth moving content, H.264 at crf 18, with an AAC track) is made
with PyAV in a temporary folder. Two rates are measured in this process, on ``--device`` (the CPU by default):

- *network alone*: :meth:`sresr.engine.Upscaler.upscale_image` on the clip's frames already
  decoded into memory (tiled as the video path tiles them, rounded to 8 bits), nothing else;
- *network alone, N frames a pass*: :meth:`~sresr.engine.Upscaler.upscale_batch` on the same frames, N
  at a time (N: ``--frame-batch``, else :meth:`~sresr.engine.Upscaler.frames_per_pass`: on CUDA
  from free memory, 1 on the CPU, where the row is left out);
- *video*: :func:`sresr.video.upscale_video` on the file with its defaults (decode, upscale,
  encode with the input's codec: libx264 crf 18 preset medium, in segments, remux with the audio).

realesrgan-compact's published weights are a download; the benchmark builds the same
architecture with random initial weights (``pretrained=False``), which costs the same time.
Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))


def make_clip(path: Path, n: int, w: int, h: int) -> None:
    import av
    import numpy as np

    rate = Fraction(30000, 1001)
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    with av.open(str(path), "w") as out:
        vs = out.add_stream("libx264", rate=rate)
        vs.width, vs.height, vs.pix_fmt = w, h, "yuv420p"
        vs.codec_context.options = {"crf": "18"}
        a = out.add_stream("aac", rate=48000)
        for i in range(n):
            rgb = np.stack([127 + 100 * np.sin((x + 9 * i) / 37.0), 127 + 100 * np.cos((y - 5 * i) / 23.0),
                            127 + 100 * np.sin((x + y + 13 * i) / 51.0)], axis=2)
            f = av.VideoFrame.from_ndarray(np.clip(rgb, 0, 255).astype(np.uint8), format="rgb24")
            f.pts = i
            out.mux(vs.encode(f))
        out.mux(vs.encode(None))
        samples = int(48000 * n / float(rate))
        tone = (0.3 * np.sin(2 * np.pi * 440 * np.arange(samples) / 48000)).astype(np.float32)[None]
        for s in range(0, samples, 1024):
            af = av.AudioFrame.from_ndarray(np.ascontiguousarray(tone[:, s : s + 1024]), format="fltp", layout="mono")
            af.sample_rate, af.pts = 48000, s
            out.mux(a.encode(af))
        out.mux(a.encode(None))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=8)
    ap.add_argument("--model", default="realesrgan-compact")
    ap.add_argument("--scale", type=int, default=2, help="2: 1080p -> 4K (UHD)")
    ap.add_argument("--size", default="1920x1080", help="input WIDTHxHEIGHT")
    ap.add_argument("--device", default="cpu", help="cpu (the figure in BENCHMARKS.md), cuda, auto...")
    ap.add_argument("--frame-batch", type=int, default=None, help="frames a pass (default: the engine's choice)")
    args = ap.parse_args()
    import av
    import torch

    from sresr.engine import Upscaler
    from sresr.imaging.io import Image
    from sresr.resolve import load_model
    from sresr.video import VideoOptions, upscale_video

    w, h = (int(v) for v in args.size.lower().split("x"))
    loaded = load_model(args.model, scale=args.scale, pretrained=False)  # random weights, same architecture
    up = Upscaler(loaded, device=args.device, frame_batch=args.frame_batch)
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "clip.mp4"
        make_clip(src, args.frames, w, h)
        with av.open(str(src)) as c:
            frames = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
        # warm-up; on a GPU at full size (the first image measures the model's memory footprint)
        up.upscale_image(Image(pixels=frames[0] if up.device.type != "cpu" else frames[0][:64, :64]), depth=8)
        t0 = time.perf_counter()
        for f in frames:
            up.upscale_image(Image(pixels=f), depth=8)
        net = time.perf_counter() - t0
        per_pass = up.frames_per_pass(h, w)
        batched = None
        if per_pass > 1:
            t0 = time.perf_counter()
            for i in range(0, len(frames), per_pass):
                up.upscale_batch([Image(pixels=f) for f in frames[i : i + per_pass]], depth=8)
            batched = time.perf_counter() - t0
        t0 = time.perf_counter()
        rec = upscale_video(up, src, Path(tmp) / "out" / "clip.mp4", VideoOptions(), record="bench")
        video = time.perf_counter() - t0
    load = os.getloadavg() if hasattr(os, "getloadavg") else (0.0, 0.0, 0.0)
    dev = torch.cuda.get_device_name(up.device) if up.device.type == "cuda" else up.device.type
    print(f"`python benchmarks/bench_video.py --frames {args.frames} --model {args.model} --scale {args.scale}"
          f"{'' if args.device == 'cpu' else ' --device ' + args.device}"
          f"{'' if args.frame_batch is None else f' --frame-batch {args.frame_batch}'}` "
          f"({dev}, {up.precision}; {platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"PyAV {av.__version__} (FFmpeg {av.ffmpeg_version_info}), load average at end "
          f"{load[0]:.1f}/{load[1]:.1f}/{load[2]:.1f}; {time.strftime('%Y-%m-%d %H:%M')}).\n")
    print(f"{args.model} x{args.scale} (random weights, same architecture), {w}x{h} -> {rec.width}x{rec.height}, "
          f"{rec.frames} frames, output {rec.codec} {rec.pix_fmt} with the audio copied\n")
    print("| what | seconds | frames/s | s/frame |")
    print("|---|---|---|---|")
    rows = [("network alone (engine on decoded frames, one a pass)", net)]
    if batched is not None:
        rows.append((f"network alone, {per_pass} frames a pass (upscale_batch)", batched))
    rows.append((f"sresr video (decode + upscale + encode + mux; {per_pass} frame{'s' if per_pass > 1 else ''} a pass)", video))
    for name, s in rows:
        print(f"| {name} | {s:.1f} | {rec.frames / s:.3f} | {s / rec.frames:.2f} |")


if __name__ == "__main__":
    main()
