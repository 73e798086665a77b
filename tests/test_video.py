"""Videos and animations (:mod:`sresr.video`): clips made here with PyAV, upscaled through the CLI.

Proves the module's invariant: every decoded input frame comes out, in order, at its timestamp,
as the image path's upscale (exactly with a lossless codec); audio is copied packet for packet;
a run killed in the middle and run again writes the same bytes as an uninterrupted one.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from conftest import run_sresr, subprocess_env  # type: ignore[import-not-found]
from PIL import Image as PILImage

av = pytest.importorskip("av")

MODEL = ["-m", "fsrcnn", "-s", "2"]  # bundled weights, fast
RATE = Fraction(30000, 1001)


def _frame(i: int, h: int, w: int) -> np.ndarray:
    """Smooth moving content (codecs keep it well), different in every frame."""
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    r = 127 + 100 * np.sin((x + 3 * i) / 7.0)
    g = 127 + 100 * np.cos((y - 2 * i) / 5.0)
    b = 127 + 100 * np.sin((x + y + 5 * i) / 9.0)
    return np.clip(np.stack([r, g, b], axis=2), 0, 255).astype(np.uint8)


def make_clip(path: Path, n: int = 8, w: int = 64, h: int = 48, codec: str = "libx264", pix_fmt: str = "yuv420p",
              audio: bool = True) -> Path:
    with av.open(str(path), "w") as out:
        vs = out.add_stream(codec, rate=RATE)
        vs.width, vs.height, vs.pix_fmt = w, h, pix_fmt
        a = out.add_stream("aac", rate=48000) if audio else None
        for i in range(n):
            f = av.VideoFrame.from_ndarray(_frame(i, h, w), format="rgb24")
            f.pts = i
            out.mux(vs.encode(f))
        out.mux(vs.encode(None))
        if a is not None:
            samples = int(48000 * n / float(RATE))
            tone = (0.3 * np.sin(2 * np.pi * 440 * np.arange(samples) / 48000)).astype(np.float32)[None]
            for s in range(0, samples, 1024):
                af = av.AudioFrame.from_ndarray(np.ascontiguousarray(tone[:, s : s + 1024]), format="fltp", layout="mono")
                af.sample_rate, af.pts = 48000, s
                out.mux(a.encode(af))
            out.mux(a.encode(None))
    return path


def decoded(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as c:
        return [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]


def facts(path: Path) -> dict:
    with av.open(str(path)) as c:
        v = c.streams.video[0]
        rate, size = v.average_rate, (v.codec_context.width, v.codec_context.height)
        times = [float(f.pts * f.time_base) for f in c.decode(video=0)]
    with av.open(str(path)) as c:
        audio = [bytes(p) for p in c.demux(audio=0) if p.size] if c.streams.audio else []
        v = c.streams.video[0]
        return {"frames": len(times), "times": times, "rate": rate, "size": size,
                "audio": audio, "audio_codec": c.streams.audio[0].codec_context.name if c.streams.audio else None,
                "codec": v.codec_context.name, "pix_fmt": v.codec_context.format.name}


def image_path_upscale(frames: list[np.ndarray], tmp: Path) -> list[np.ndarray]:
    """The image path: each decoded frame written as a PNG, read by read_image, upscaled in-process."""
    import sresr
    from sresr.engine import Upscaler
    from sresr.imaging.io import read_image

    up = Upscaler(sresr.load_model("fsrcnn", scale=2))
    out = []
    for i, f in enumerate(frames):
        PILImage.fromarray(f).save(tmp / f"f{i}.png")
        out.append(up.upscale_image(read_image(tmp / f"f{i}.png"), depth=8).pixels)
    return out


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)


def test_mp4_keeps_frames_rate_duration_and_audio(tmp_path):
    src = make_clip(tmp_path / "clip.mp4")
    proc = run_sresr("upscale", str(src), "-o", str(tmp_path / "out"), *MODEL, "--segment-frames", "3", "--json")
    assert proc.returncode == 0, proc.stderr
    [record] = json.loads(proc.stdout)
    assert record["status"] == "ok" and record["frames"] == 8 and record["repeated_frames"] == 0
    out = tmp_path / "out" / "clip.mp4"
    a, b = facts(src), facts(out)
    assert b["frames"] == a["frames"] == 8 and b["times"] == a["times"]  # every timestamp kept: rate, VFR, duration
    assert b["rate"] == a["rate"] == RATE and b["size"] == (128, 96)
    assert b["codec"] == "h264" and b["pix_fmt"] == "yuv420p"  # the input's codec and pixel format
    assert b["audio_codec"] == "aac" and b["audio"] == a["audio"]  # copied packet for packet
    with av.open(str(src)) as ci, av.open(str(out)) as co:
        assert abs(co.duration - ci.duration) <= 1e6 / float(RATE)
    # lossy: within the codec's error of the image path's upscale of each decoded input frame
    want = image_path_upscale(decoded(src), tmp_path)
    got = decoded(out)
    assert len(got) == len(want) == 8
    for i, (g, w) in enumerate(zip(got, want)):  # H.264 at crf 18 in yuv420p: about 33 dB on this content
        assert _psnr(g, w) > 28.0, i
        assert _psnr(g, w) > _psnr(g, want[i - 1]) + 3  # this frame's upscale, not a neighbour's
    assert not [p for p in (tmp_path / "out").iterdir() if p.name.startswith(".")]  # no work folder left


@pytest.mark.parametrize("codec, args, out_name", [("ffv1", ["--pix-fmt", "bgr0"], "clip.mkv"),
                                                   ("png", ["--container", "mov"], "clip.mov")])
def test_lossless_output_equals_the_image_path_exactly(tmp_path, codec, args, out_name):
    src = make_clip(tmp_path / "clip.mkv", n=6, codec="ffv1", audio=False)
    proc = run_sresr("upscale", str(src), "-o", str(tmp_path / "out"), *MODEL, "--codec", codec, *args,
                     "--segment-frames", "4", "--quiet")
    assert proc.returncode == 0, proc.stderr
    got = decoded(tmp_path / "out" / out_name)
    want = image_path_upscale(decoded(src), tmp_path)
    assert len(got) == len(want) == 6
    for g, w in zip(got, want):
        assert np.array_equal(g, w)


def _counting_upscaler(sizes: list[int], *args, **kwargs):
    """An Upscaler that appends to ``sizes`` how many images each upscale_batch call gets."""
    from sresr.engine import Upscaler

    class Counting(Upscaler):
        def upscale_batch(self, images, *a, **k):
            sizes.append(len(images))
            return super().upscale_batch(images, *a, **k)

    return Counting(*args, **kwargs)


def test_frames_batched_through_the_engine_equal_the_image_path(tmp_path):
    """--frame-batch N: frames go to the engine N at a time (never across a segment boundary, so a
    resumed run batches alike); an RGB network runs them as one forward pass, within a level of
    8 bits of each frame alone; the CLI option reaches the engine."""
    import sresr
    from sresr.engine import Upscaler
    from sresr.imaging.io import Image
    from sresr.video import VideoOptions, upscale_video

    sizes: list[int] = []
    src = make_clip(tmp_path / "clip.mkv", n=8, codec="ffv1", audio=False)
    loaded = sresr.load_model("realesrgan-compact", scale=2, pretrained=False)
    up = _counting_upscaler(sizes, loaded, device="cpu", frame_batch=3)
    opts = VideoOptions(codec="ffv1", pix_fmt="bgr0", segment_frames=4)
    rec = upscale_video(up, src, tmp_path / "out.mkv", opts)
    assert rec.frames == 8 and sizes == [3, 1, 3, 1]
    alone = Upscaler(loaded, device="cpu")
    got = decoded(tmp_path / "out.mkv")
    for g, f in zip(got, decoded(src)):
        want = alone.upscale_image(Image(f, bit_depth=8), depth=8).pixels
        diff = np.abs(g.astype(int) - want.astype(int))
        assert diff.max() <= 1 and (diff > 0).mean() < 1e-3
    proc = run_sresr("upscale", str(src), "-o", str(tmp_path / "cli"), *MODEL, "--codec", "ffv1", "--pix-fmt", "bgr0",
                     "--frame-batch", "3", "--quiet")
    assert proc.returncode == 0, proc.stderr
    want = image_path_upscale(decoded(src), tmp_path)
    assert all(np.array_equal(g, w) for g, w in zip(decoded(tmp_path / "cli" / "clip.mkv"), want))
    bad = run_sresr("upscale", str(src), "-o", str(tmp_path / "bad"), *MODEL, "--frame-batch", "0")
    assert bad.returncode != 0 and "--frame-batch" in bad.stderr


def test_one_out_of_memory_error_lowers_the_frames_per_pass_for_the_rest_of_the_video(tmp_path):
    """A device that holds two frames a pass: the first batch of four runs out of memory once, and
    every later batch is two frames, never four again."""
    from test_engine import TOYS, OOMAbove

    from sresr.resolve import LoadedModel
    from sresr.video import VideoOptions, upscale_video

    sizes: list[int] = []
    src = make_clip(tmp_path / "clip.mkv", n=12, codec="ffv1", audio=False)
    h, w = decoded(src)[0].shape[:2]
    ref = TOYS["pixelshuffle"]()
    guard = OOMAbove(ref.module, max_pixels=2 * h * w)
    up = _counting_upscaler(sizes, LoadedModel(guard, ref.spec, 2, "rgb", "test"), device="cpu", tile=0, optimize=False,
                            frame_batch=4)
    rec = upscale_video(up, src, tmp_path / "out.mkv", VideoOptions(codec="ffv1", pix_fmt="bgr0", segment_frames=100))
    assert rec.frames == 12 and guard.failures == 1 and up.stats.oom_retries == 1
    assert sizes == [4, 2, 2, 2, 2], sizes


def test_ten_bit_and_rotation_are_kept(tmp_path):
    for name, codec, pix_fmt, rotation in (("deep.mkv", "ffv1", "yuv420p10le", 0), ("turned.mp4", "libx264", "yuv420p", 90)):
        with av.open(str(tmp_path / name), "w") as out:
            vs = out.add_stream(codec, rate=25)
            vs.width, vs.height, vs.pix_fmt = 32, 24, pix_fmt
            if rotation:
                vs.set_display_rotation(rotation)
            for i in range(3):
                f = av.VideoFrame.from_ndarray(_frame(i, 24, 32), format="rgb24")
                f.pts = i
                out.mux(vs.encode(f))
            out.mux(vs.encode(None))
    proc = run_sresr("upscale", str(tmp_path / "deep.mkv"), str(tmp_path / "turned.mp4"), "-o", str(tmp_path / "out"),
                     *MODEL, "--quiet")
    assert proc.returncode == 0, proc.stderr
    for name, pix_fmt, rotation in (("deep.mkv", "yuv420p10le", 0), ("turned.mp4", "yuv420p", 90)):
        with av.open(str(tmp_path / "out" / name)) as c:
            first = next(c.decode(video=0))
            assert (first.format.name, round(first.rotation), first.width, first.height) == (pix_fmt, rotation, 64, 48)


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_sigkill_in_the_middle_then_rerun_writes_the_same_bytes(tmp_path):
    """Byte-equal, not only equal frames: ffv1 and the bit-exact Matroska muxer are deterministic,
    and the reused segments are the very packets an uninterrupted run encodes."""
    src = make_clip(tmp_path / "clip.mkv", n=24, w=96, h=64, codec="ffv1")
    common = [*MODEL, "--codec", "ffv1", "--pix-fmt", "bgr0", "--segment-frames", "4", "--quiet", "--tta"]
    whole = run_sresr("upscale", str(src), "-o", str(tmp_path / "whole"), *common)
    assert whole.returncode == 0, whole.stderr
    out = tmp_path / "out"
    work = out / ".clip.mkv.sresr-work"
    proc = subprocess.Popen([sys.executable, "-m", "sresr", "upscale", str(src), "-o", str(out), *common],
                            env=subprocess_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if len(list(work.glob("seg-*.pkt"))) >= 2:
            break
        time.sleep(0.005)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (out / "clip.mkv").exists(), "the run finished before it could be killed"
    finished = sorted(p.name for p in work.glob("seg-*.pkt"))
    assert finished and json.loads((work / "manifest.json").read_text())["segments"]
    rerun = run_sresr("upscale", str(src), "-o", str(out), *common)
    assert rerun.returncode == 0, rerun.stderr
    assert _sha(out / "clip.mkv") == _sha(tmp_path / "whole" / "clip.mkv")
    assert not work.exists()


def test_a_second_run_on_the_same_output_fails_while_the_first_holds_it(tmp_path):
    """Another process writing the same video (here: holding its lock, as a run does from start to
    end) makes a second run fail at once with one line, without touching the first one's work; once
    it is gone (a killed holder included: the OS drops the lock), the output is written."""
    src = make_clip(tmp_path / "clip.mkv", n=3, codec="ffv1", audio=False)
    out = tmp_path / "out"
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from pathlib import Path; from sresr.video import _OutputLock\n"
         "with _OutputLock(Path(sys.argv[1])):\n    print('held', flush=True); time.sleep(120)", str(out / "clip.mkv")],
        env=subprocess_env(), stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        proc = run_sresr("upscale", str(src), "-o", str(out), *MODEL)
        assert proc.returncode == 1 and "Traceback" not in proc.stderr
        [line] = [x for x in proc.stderr.splitlines() if x.startswith("failed:")]
        assert "clip.mkv" in line and "another sresr run is writing this video now" in line
        assert not (out / "clip.mkv").exists() and not (out / ".clip.mkv.sresr-work").exists()
    finally:
        holder.kill()
        holder.wait()
    assert (out / ".clip.mkv.sresr-lock").exists()  # left by the killed holder; its lock went with it
    proc = run_sresr("upscale", str(src), "-o", str(out), *MODEL)
    assert proc.returncode == 0, proc.stderr
    assert facts(out / "clip.mkv")["frames"] == 3
    assert not [p.name for p in out.iterdir() if p.name.startswith(".")]


def test_interrupted_library_run_reuses_finished_segments(tmp_path):
    import sresr
    from sresr.engine import Upscaler
    from sresr.video import VideoOptions, upscale_video

    src = make_clip(tmp_path / "clip.mp4", n=8)
    up = Upscaler(sresr.load_model("fsrcnn", scale=2))
    opts = VideoOptions(segment_frames=3)
    whole = upscale_video(up, src, tmp_path / "whole.mp4", opts, record="r")

    from sresr.video import work_dir

    def stop_after_a_segment(dest: Path):
        def stop(done: int, total: int, fps: float) -> None:
            if done == 7:  # once the encoder thread has finished a segment
                deadline = time.monotonic() + 30
                while not (work_dir(dest) / "manifest.json").exists() and time.monotonic() < deadline:
                    time.sleep(0.01)
                raise KeyboardInterrupt
        return stop

    with pytest.raises(KeyboardInterrupt):
        upscale_video(up, src, tmp_path / "out.mp4", opts, record="r", on_frames=stop_after_a_segment(tmp_path / "out.mp4"))
    assert not (tmp_path / "out.mp4").exists()
    again = upscale_video(up, src, tmp_path / "out.mp4", opts, record="r")
    assert again.reused_segments >= 1 and again.segments == whole.segments == 3
    assert _sha(tmp_path / "out.mp4") == _sha(tmp_path / "whole.mp4")  # x264 is deterministic too
    # interrupted again, then run on another clip to the same output: nothing of the first is reused
    with pytest.raises(KeyboardInterrupt):
        upscale_video(up, src, tmp_path / "next.mp4", opts, on_frames=stop_after_a_segment(tmp_path / "next.mp4"))
    assert (work_dir(tmp_path / "next.mp4") / "manifest.json").exists()
    other = make_clip(tmp_path / "other.mp4", n=8, w=48, h=64)
    rec = upscale_video(up, other, tmp_path / "next.mp4", opts)
    assert rec.reused_segments == 0 and (rec.width, rec.height) == (96, 128)
    assert facts(tmp_path / "next.mp4")["size"] == (96, 128)


def test_variable_frame_rate_with_b_frames_across_segments(tmp_path):
    """Irregular timestamps, H.264 with B-frames, in one segment and in segments of 3 frames: every
    timestamp comes out, which needs the decoding timestamps rewritten by frame position, not by a
    fixed delay."""
    pts = [0, 1, 2, 5, 6, 10, 11, 30, 31, 33]
    src = tmp_path / "vfr.mkv"
    with av.open(str(src), "w") as out:
        vs = out.add_stream("libx264", rate=25)
        vs.width, vs.height, vs.pix_fmt = 64, 48, "yuv420p"
        vs.codec_context.time_base = Fraction(1, 25)
        vs.codec_context.options = {"bf": "3"}
        for i, t in enumerate(pts):
            f = av.VideoFrame.from_ndarray(_frame(i, 48, 64), format="rgb24")
            f.pts, f.time_base = t, Fraction(1, 25)
            out.mux(vs.encode(f))
        out.mux(vs.encode(None))
    for name, segment in (("vfr.mkv", "240"), ("vfr.mp4", "3")):
        proc = run_sresr("upscale", str(src), "-o", str(tmp_path / "out"), *MODEL, "--segment-frames", segment,
                         "--container", name.rsplit(".", 1)[1], "--json")
        assert proc.returncode == 0, proc.stderr
        assert facts(tmp_path / "out" / name)["times"] == facts(src)["times"] == [t / 25 for t in pts]


def test_odd_output_size_for_a_subsampled_format_fails_before_encoding(tmp_path):
    """yuv420p cannot hold a 99x75 picture: one line naming the size and the fix, and no work
    folder left behind; --pix-fmt yuv444p writes it."""
    src = make_clip(tmp_path / "odd.mkv", n=3, w=33, h=25, codec="ffv1", pix_fmt="yuv444p", audio=False)
    proc = run_sresr("upscale", str(src), "-o", str(tmp_path / "out"), "-m", "bicubic", "-s", "3",
                     "--codec", "libx264", "--pix-fmt", "yuv420p")
    assert proc.returncode == 1 and "99x75" in proc.stderr and "--pix-fmt yuv444p" in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr and not list((tmp_path / "out").glob(".*"))
    proc = run_sresr("upscale", str(src), "-o", str(tmp_path / "out"), "-m", "bicubic", "-s", "3",
                     "--codec", "libx264", "--pix-fmt", "yuv444p")
    assert proc.returncode == 0, proc.stderr
    assert facts(tmp_path / "out" / "odd.mkv")["size"] == (99, 75)


def test_bad_videos_fail_in_one_line_and_skip_bad_frames_repeats(tmp_path):
    src = make_clip(tmp_path / "clip.mp4", n=8)
    data = src.read_bytes()
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "cut.mp4").write_bytes(data[: len(data) // 2])  # the index (moov) is lost
    (tmp_path / "in" / "junk.mkv").write_bytes(b"not a video at all\n" * 10)
    mkv = make_clip(tmp_path / "long.mkv", n=8, codec="ffv1", audio=False).read_bytes()
    (tmp_path / "in" / "cut.mkv").write_bytes(mkv[: int(len(mkv) * 0.6)])
    with av.open(str(src)) as c:  # damage the inside of one frame's packet
        p = [(p.pos, p.size) for p in c.demux(video=0) if p.size][3]
    bad = bytearray(data)
    for i in range(p[0] + 10, p[0] + p[1] - 10):
        bad[i] ^= 0x5A
    (tmp_path / "bad.mp4").write_bytes(bytes(bad))
    proc = run_sresr("upscale", str(tmp_path / "in"), str(tmp_path / "bad.mp4"), "-o", str(tmp_path / "out"), *MODEL)
    assert proc.returncode == 1
    failed = [line for line in proc.stderr.splitlines() if line.startswith("failed:")]
    assert len(failed) == 4, proc.stderr
    for name, why in (("cut.mp4", "not a readable video"), ("junk.mkv", "not a readable video"),
                      ("cut.mkv", "truncated video"), ("bad.mp4", "corrupt video")):
        assert any(name in line and why in line for line in failed), (name, proc.stderr)
    assert "Traceback" not in proc.stderr and not (tmp_path / "out" / "bad.mp4").exists()
    proc = run_sresr("upscale", str(tmp_path / "bad.mp4"), "-o", str(tmp_path / "out"), *MODEL, "--skip-bad-frames",
                     "--json")
    assert proc.returncode == 0, proc.stderr
    [record] = json.loads(proc.stdout)
    assert record["frames"] == 8 and record["repeated_frames"] >= 1 and "repeat" in record["warning"]
    assert facts(tmp_path / "out" / "bad.mp4")["times"] == facts(src)["times"]
    # a truncated file with --skip-bad-frames: its frames are kept, and the record says it ended early
    proc = run_sresr("upscale", str(tmp_path / "in" / "cut.mkv"), "-o", str(tmp_path / "out"), *MODEL,
                     "--skip-bad-frames", "--json")
    assert proc.returncode == 0, proc.stderr
    [record] = json.loads(proc.stdout)
    assert 0 < record["frames"] < 8 and "ends early" in record["warning"], record


def _clip_with_extras(path: Path, n: int = 4) -> Path:
    """A clip with a data stream (telemetry-like packets, mp4) or a font attachment (mkv)."""
    with av.open(str(path), "w") as out:
        vs = out.add_stream("libx264" if path.suffix == ".mp4" else "ffv1", rate=RATE)
        vs.width, vs.height, vs.pix_fmt = 64, 48, "yuv420p"
        ds = out.add_data_stream("bin_data") if path.suffix == ".mp4" else None
        if path.suffix == ".mkv":
            out.add_attachment("subs-font.ttf", "application/x-truetype-font", bytes(range(256)) * 4)
        for i in range(n):
            f = av.VideoFrame.from_ndarray(_frame(i, 48, 64), format="rgb24")
            f.pts = i
            out.mux(vs.encode(f))
            if ds is not None:
                pkt = av.Packet(b"gps fix %d" % i)
                pkt.stream, pkt.pts, pkt.dts, pkt.time_base = ds, i, i, Fraction(1) / RATE
                out.mux(pkt)
        out.mux(vs.encode(None))
    return path


def _extras(path: Path) -> dict:
    with av.open(str(path)) as c:
        packets = [p for p in c.demux() if p.size]
        data = [bytes(p) for p in packets if p.stream.type == "data"]
        subs = [(bytes(p), float(p.pts * p.time_base)) for p in packets if p.stream.type == "subtitle"]
        att = [(s.name, s.mimetype, bytes(s.data)) for s in c.streams if s.type == "attachment"]
    return {"data": data, "attachments": att, "subtitles": subs}


def _clip_with_subtitles(path: Path, tmp: Path) -> Path:
    """A Matroska clip with a SubRip track, muxed from an .srt file read by FFmpeg's own demuxer."""
    srt = tmp / "subs.srt"
    srt.write_text("1\n00:00:00,000 --> 00:00:00,066\nHello\n\n2\n00:00:00,066 --> 00:00:00,133\nWorld\n\n")
    with av.open(str(srt)) as sub, av.open(str(path), "w") as out:
        vs = out.add_stream("ffv1", rate=RATE)
        vs.width, vs.height, vs.pix_fmt = 64, 48, "yuv420p"
        ss = out.add_stream_from_template(sub.streams[0])
        for i in range(4):
            f = av.VideoFrame.from_ndarray(_frame(i, 48, 64), format="rgb24")
            f.pts = i
            out.mux(vs.encode(f))
        out.mux(vs.encode(None))
        for pkt in sub.demux():
            if pkt.dts is not None:
                pkt.stream = ss
                out.mux(pkt)
    return path


def test_subtitles_are_copied_and_a_container_without_them_is_named(tmp_path):
    src = _clip_with_subtitles(tmp_path / "subs.mkv", tmp_path)
    assert [t for t, _ in _extras(src)["subtitles"]] == [b"Hello", b"World"]
    proc = run_sresr("upscale", str(src), "-o", str(tmp_path / "out"), *MODEL, "--json")
    assert proc.returncode == 0, proc.stderr
    assert _extras(tmp_path / "out" / "subs.mkv")["subtitles"] == _extras(src)["subtitles"]  # bytes and times
    proc = run_sresr("upscale", str(src), "-o", str(tmp_path / "mp4"), *MODEL, "--container", "mp4")
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert "subtitle stream #1 (srt) cannot be copied into a mp4 file" in proc.stderr, proc.stderr
    assert not (tmp_path / "mp4" / "subs.mp4").exists()


def test_data_streams_and_attachments_are_kept_or_named(tmp_path):
    """Telemetry/timecode data streams and Matroska font attachments come through untouched; where
    the output container cannot hold one, the file is still written and the record names what was
    left out (a warning line), never silently."""
    mp4 = _clip_with_extras(tmp_path / "tele.mp4")
    mkv = _clip_with_extras(tmp_path / "anime.mkv")
    proc = run_sresr("upscale", str(mp4), str(mkv), "-o", str(tmp_path / "out"), *MODEL, "--json")
    assert proc.returncode == 0, proc.stderr
    records = {Path(r["path"]).name: r for r in json.loads(proc.stdout)}
    assert all(r["status"] == "ok" and not r.get("warning") for r in records.values()), records
    assert _extras(tmp_path / "out" / "tele.mp4")["data"] == _extras(mp4)["data"] == [b"gps fix %d" % i for i in range(4)]
    assert _extras(tmp_path / "out" / "anime.mkv")["attachments"] == _extras(mkv)["attachments"]
    assert _extras(mkv)["attachments"][0][0] == "subs-font.ttf"
    proc = run_sresr("upscale", str(mp4), "-o", str(tmp_path / "moved"), *MODEL, "--container", "mkv", "--json")
    assert proc.returncode == 0, proc.stderr
    [rec] = json.loads(proc.stdout)
    assert "not copied: data #1 (bin_data)" in rec["warning"] and "not copied" in proc.stderr
    assert facts(tmp_path / "moved" / "tele.mkv")["frames"] == 4
    proc = run_sresr("upscale", str(mkv), "-o", str(tmp_path / "moved"), *MODEL, "--container", "mp4", "--json")
    assert proc.returncode == 0, proc.stderr
    [rec] = json.loads(proc.stdout)
    assert "not copied: attachment #1 (subs-font.ttf)" in rec["warning"]


def _timecodes(path: Path) -> list[tuple[str, str]]:
    with av.open(str(path)) as c:
        return [(s.type, v) for s in c.streams for k, v in s.metadata.items() if k.lower() == "timecode"]  # Matroska: TIMECODE


@pytest.mark.parametrize("container", ["mov", "mp4", "mkv"])
def test_a_timecode_track_is_kept(tmp_path, container):
    """A camera's .mov with a QuickTime timecode track (a ``tmcd`` data stream): FFmpeg rebuilds that
    track from the video's timecode tag (mov/mp4) or keeps the tag (Matroska); it is never named as
    lost, and copying its packets (which fails at the trailer) is never tried."""
    src = tmp_path / "cam.mov"
    with av.open(str(src), "w") as out:
        vs = out.add_stream("libx264", rate=RATE)
        vs.width, vs.height, vs.pix_fmt = 64, 48, "yuv420p"
        vs.metadata["timecode"] = "01:02:03:04"
        for i in range(4):
            f = av.VideoFrame.from_ndarray(_frame(i, 48, 64), format="rgb24")
            f.pts = i
            out.mux(vs.encode(f))
        out.mux(vs.encode(None))
    assert _timecodes(src) == [("video", "01:02:03:04"), ("data", "01:02:03:04")]  # FFmpeg wrote a tmcd track
    proc = run_sresr("upscale", str(src), "-o", str(tmp_path / "out"), *MODEL, "--container", container, "--json")
    assert proc.returncode == 0, proc.stderr
    [rec] = json.loads(proc.stdout)
    assert rec["status"] == "ok" and not rec.get("warning"), rec
    got = _timecodes(tmp_path / "out" / f"cam.{container}")
    assert ("video", "01:02:03:04") in got
    if container != "mkv":
        assert ("data", "01:02:03:04") in got
    assert facts(tmp_path / "out" / f"cam.{container}")["frames"] == 4


def test_codec_container_errors_are_named(tmp_path):
    src = make_clip(tmp_path / "clip.mp4", n=3, audio=False)
    proc = run_sresr("upscale", str(src), "-o", str(tmp_path / "out"), *MODEL, "--codec", "nosuchcodec")
    assert proc.returncode == 1 and "no 'nosuchcodec' encoder" in proc.stderr
    proc = run_sresr("upscale", str(src), "-o", str(tmp_path / "out"), *MODEL, "--codec", "libx264", "--container", "webm")
    assert proc.returncode == 1 and "webm container cannot hold libx264" in proc.stderr


@pytest.mark.parametrize("fmt", ["gif", "webp", "png"])
def test_animations_round_trip_with_durations_and_loop(tmp_path, fmt):
    frames = [PILImage.fromarray(_frame(i, 20, 24)) for i in range(4)]
    durations, loop = [40, 80, 120, 200], 3
    src = tmp_path / f"anim.{fmt}"
    extra = {"lossless": True} if fmt == "webp" else {}
    frames[0].save(src, save_all=True, append_images=frames[1:], duration=durations, loop=loop, **extra)
    proc = run_sresr("upscale", str(src), "-o", str(tmp_path / "out"), *MODEL, "--json")
    assert proc.returncode == 0, proc.stderr
    [record] = json.loads(proc.stdout)
    assert record["frames"] == 4 and record["warning"] is None
    with PILImage.open(tmp_path / "out" / f"anim.{fmt}") as im:
        assert im.format == {"gif": "GIF", "webp": "WEBP", "png": "PNG"}[fmt]
        assert im.n_frames == 4 and im.size == (48, 40) and im.info.get("loop") == loop
        got = []
        for i in range(4):
            im.seek(i)
            im.load()
            got.append(int(im.info["duration"]))
    assert got == durations
    rerun = run_sresr("upscale", str(src), "-o", str(tmp_path / "out"), *MODEL, "--json")
    assert json.loads(rerun.stdout)[0]["status"] == "skipped"


def test_help_imports_neither_torch_nor_av():
    code = "import sys, sresr.cli.main as m; sys.argv=['sresr','--help']\ntry: m.main()\nexcept SystemExit: pass\n" \
           "print(sorted(k for k in ('torch', 'av') if k in sys.modules))"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=subprocess_env())
    assert proc.stdout.strip().splitlines()[-1] == "[]", proc.stdout + proc.stderr


def test_without_pyav_a_video_fails_in_one_line(tmp_path):
    src = make_clip(tmp_path / "clip.mp4", n=2, audio=False)
    blocker = tmp_path / "noav"
    blocker.mkdir()
    (blocker / "av.py").write_text("raise ImportError('no PyAV here')\n")
    proc = run_sresr("upscale", str(src), "-o", str(tmp_path / "out"), *MODEL, extra_paths=[blocker])
    assert proc.returncode == 1
    assert "pip install 'sresr[video]'" in proc.stderr and "Traceback" not in proc.stderr
