"""Videos and animated images through the image engine: the library behind ``sresr upscale clip.mp4``.

- :func:`upscale_video`: a video file (mp4, mkv, webm, mov, avi...) in, a video file out. Frames
  are decoded with PyAV (FFmpeg inside the wheel: no system ffmpeg), upscaled by the image path's
  engine (:meth:`sresr.engine.Upscaler.upscale_batch`: several frames a forward pass where the
  device gains from it, :meth:`~sresr.engine.Upscaler.frames_per_pass`), and encoded again;
  decoding, upscaling and encoding run in three threads joined by small bounded queues, so memory
  holds a few frames whatever the length of the video. The output keeps every frame's timestamp
  (so the frame rate, variable or not, the frame count and the duration), the colour range and
  matrix, the pixel format where the encoder takes it, the rotation, and the audio, subtitle and
  data streams, whose packets are copied untouched (a QuickTime timecode track is rebuilt by the
  muxer from its timecode), and attachments (Matroska's fonts); a data stream or attachment the
  output container cannot hold is named in the record.
- :func:`upscale_animation`: an animated GIF, WebP or APNG in, the same format out, with every
  frame's duration and the loop count kept (Pillow).

The invariant, as :mod:`sresr.tiling` states its own: **the output path holds either nothing (or
what was there before) or a complete video whose frames are, in order, the upscales of every
decoded input frame at the input's timestamps.** It is enforced by construction: frames are
encoded in *segments* of :attr:`VideoOptions.segment_frames` frames, each by a fresh encoder (so
each starts with a key frame and no GOP crosses a boundary), into files of a hidden work folder
next to the output (``.NAME.sresr-work``); a finished segment is renamed into place and recorded
in the folder's manifest with its frame and packet counts and its sha256. Only when every
segment exists are their packets copied, without re-encoding and with their own timestamps,
into one file (with the input's other streams), which is renamed over the output. A killed run
leaves the work folder; the same command run again reuses every segment whose file still has its
recorded sha256 (and was made from the same input bytes with the same model and options: the
manifest's key), so at most one segment is computed twice. Encoders are deterministic and the
muxer is asked for bit-exact output, so with a lossless codec a resumed run writes the same
bytes as an uninterrupted one (``tests/test_video.py`` kills a run and compares).

PyAV is an optional dependency (``pip install 'sresr[video]'``); this module imports neither
torch nor av at import time.
"""

from __future__ import annotations

import hashlib
import heapq
import io
import json
import os
import queue
import shutil
import struct
import threading
import time
from dataclasses import asdict, dataclass
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator

from .atomic import atomic_write, atomic_write_text
from .download import sha256_file
from .errors import ImageError, SresrError, UsageError, shown, write_error

if TYPE_CHECKING:  # pragma: no cover
    from .engine import Upscaler

__all__ = [
    "VideoOptions",
    "VideoRecord",
    "VideoError",
    "VIDEO_EXTENSIONS",
    "ANIMATION_FORMATS",
    "is_video_path",
    "is_animated",
    "upscale_video",
    "upscale_animation",
    "read_media_record",
    "format_key",
    "available",
]

#: Files that are videos (by extension, case-insensitive); folder scans include them.
VIDEO_EXTENSIONS = frozenset({".mp4", ".m4v", ".mkv", ".webm", ".mov", ".avi"})
#: Pillow formats of animated images written back in their own format.
ANIMATION_FORMATS = {"GIF": "gif", "WEBP": "webp", "PNG": "png"}
#: Containers ``--container`` names, by extension; ``same`` keeps the input's.
CONTAINERS = {"mp4": "mp4", "m4v": "mp4", "mkv": "matroska", "webm": "webm", "mov": "mov", "avi": "avi"}
#: Decoders -> the encoder that writes the same codec (the default codec is the input's where one exists).
_SAME_CODEC = {
    "h264": "libx264", "hevc": "libx265", "vp9": "libvpx-vp9", "vp8": "libvpx", "av1": "libsvtav1",
    "mpeg4": "mpeg4", "ffv1": "ffv1", "png": "png", "mjpeg": "mjpeg", "prores": "prores_ks",
    "utvideo": "utvideo", "huffyuv": "huffyuv", "ffvhuff": "ffvhuff", "mpeg2video": "mpeg2video",
}
#: What ``--codec`` accepts besides an FFmpeg encoder name.
CODEC_ALIASES = {"h264": "libx264", "x264": "libx264", "avc": "libx264", "h265": "libx265", "hevc": "libx265",
                 "x265": "libx265", "vp9": "libvpx-vp9", "vp8": "libvpx", "av1": "libsvtav1"}
#: Encoders that take ``crf`` (and ``preset``, all but VP8/VP9) as private options.
_CRF_CODECS = {"libx264", "libx265", "libvpx-vp9", "libvpx", "libsvtav1"}
_PRESET_CODECS = {"libx264", "libx265", "libsvtav1"}
#: Encoders whose output decodes to exactly the frames they were given (in an RGB pixel format).
LOSSLESS_CODECS = frozenset({"ffv1", "png", "utvideo", "huffyuv", "ffvhuff"})
DEFAULT_CODEC = "libx264"
INSTALL_HINT = "pip install 'sresr[video]'"
_WORK_SUFFIX = ".sresr-work"
_MANIFEST = "manifest.json"


class VideoError(ImageError):
    """A video that cannot be decoded, or that sresr cannot write as asked (one line, naming the file)."""


@dataclass(frozen=True)
class VideoOptions:
    """How videos are written (images ignore these).

    codec: an FFmpeg encoder (``libx264``, ``libx265``, ``libvpx-vp9``, ``libsvtav1``, ``mpeg4``,
        ``ffv1``, ``png``...) or an alias (``h264``, ``hevc``, ``vp9``, ``av1``); None = the input's
        codec when this PyAV build can encode it into the output container, else H.264 (libx264).
    crf: constant rate factor of the encoders that have one (x264/x265/VP9/SVT-AV1); 18 is close
        to visually lossless for H.264.
    preset: the encoder's speed preset (x264/x265: ``ultrafast`` ... ``veryslow``); None = its default.
    pix_fmt: the output pixel format; None = the input's when the encoder takes it, else the
        encoder's first. For a lossless codec give an RGB format (``bgr0`` for ffv1; png writes
        ``rgb24``) to keep the exact upscaled pixels; a YUV format subsamples the colour again.
    container: ``same`` (the input's extension) or mp4, mkv, webm, mov, avi.
    segment_frames: frames per segment (a killed run recomputes at most one segment).
    skip_bad_frames: a frame that cannot be decoded is replaced by the previous one (counted in
        the record) instead of failing the file.
    """

    codec: str | None = None
    crf: int = 18
    preset: str | None = None
    pix_fmt: str | None = None
    container: str = "same"
    segment_frames: int = 240
    skip_bad_frames: bool = False
    queue_frames: int = 4  # frames waiting between decoder, engine and encoder (each way)

    def __post_init__(self) -> None:
        if not 0 <= int(self.crf) <= 63:
            raise UsageError(f"--crf must be 0-63, got {self.crf}")
        if int(self.segment_frames) < 1:
            raise UsageError(f"--segment-frames must be >= 1, got {self.segment_frames}")
        c = self.container.lower().lstrip(".")
        if c != "same" and c not in CONTAINERS:
            raise UsageError(f"unknown container {self.container!r}", hint=f"use same, {', '.join(CONTAINERS)}")


@dataclass(frozen=True)
class VideoRecord:
    """What :func:`upscale_video` / :func:`upscale_animation` made."""

    source: str
    output: str
    frames: int  # frames written (repeated ones included)
    repeated_frames: int  # bad input frames replaced by the previous one (--skip-bad-frames)
    width: int
    height: int
    codec: str
    pix_fmt: str
    fps: float | None  # the input's average frame rate
    duration: float | None  # seconds, as the output container reports it
    copied_streams: tuple[str, ...] = ()  # "audio aac", "subtitle subrip", "data bin_data", "attachment font.ttf"...
    #: streams the output container cannot hold ("data #2 (bin_data): ..."), reported as a warning
    dropped_streams: tuple[str, ...] = ()
    segments: int = 0
    reused_segments: int = 0
    seconds: float = 0.0
    input_pixels: int = 0  # the input's pixels, all frames
    missing: str = ""  # with --skip-bad-frames: how the input ends early ("truncated: 9 of 30 frames decoded")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# -- what a file is ---------------------------------------------------------------------------


def available() -> bool:
    """Whether PyAV is installed."""
    try:
        import av  # noqa: F401
    except ImportError:
        return False
    return True


def _av() -> Any:
    try:
        import av
    except ImportError:
        raise VideoError(f"videos need PyAV, which is not installed: {INSTALL_HINT}", hint=INSTALL_HINT) from None
    return av


def is_video_path(path: str | os.PathLike[str]) -> bool:
    return Path(path).suffix.lower() in VIDEO_EXTENSIONS


def is_animated(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` is a GIF, WebP or PNG of more than one frame (reads only its start)."""
    from PIL import Image as PILImage

    try:
        with PILImage.open(path) as im:
            return im.format in ANIMATION_FORMATS and bool(getattr(im, "is_animated", False))
    except Exception:
        return False


def output_suffix(source: Path, options: VideoOptions) -> str:
    c = options.container.lower().lstrip(".")
    return source.suffix.lower() if c == "same" else f".{c}"


def _codec_name(name: str) -> str:
    return CODEC_ALIASES.get(name.lower(), name)


def _has_encoder(name: str) -> bool:
    av = _av()
    try:
        av.codec.Codec(name, "w")
    except Exception:
        return False
    return True


def _container_codecs(fmt: str) -> set[str]:
    av = _av()
    with av.open(io.BytesIO(), "w", format=fmt) as probe:
        return set(probe.supported_codecs)


@dataclass(frozen=True)
class _Plan:
    """The encoder settings of one input: resolved codec, pixel format, private options."""

    container: str  # FFmpeg muxer name
    codec: str
    pix_fmt: str
    codec_options: dict[str, str]
    depth: int  # 8 or 16: the bits per channel of the frames the engine sees

    def key(self) -> str:
        opts = " ".join(f"{k}={v}" for k, v in sorted(self.codec_options.items()))
        return f"{self.container}/{self.codec} {self.pix_fmt}{' ' + opts if opts else ''}"


def _plan(source: Path, dest_suffix: str, options: VideoOptions, stream: Any) -> _Plan:
    """Resolve codec, pixel format and options for ``stream`` (the input's video stream)."""
    av = _av()
    container = CONTAINERS.get(dest_suffix.lstrip("."), "matroska")
    fits = _container_codecs(container)
    decoded = stream.codec_context.name
    if options.codec is not None:
        codec = _codec_name(options.codec)
        if not _has_encoder(codec):
            raise VideoError(f"{shown(source)}: this PyAV build has no {codec!r} encoder",
                             hint="choose another --codec (libx264, libx265, libvpx-vp9, mpeg4, ffv1, png...)")
    else:
        same = _SAME_CODEC.get(decoded)
        codec = same if same is not None and _has_encoder(same) else DEFAULT_CODEC
        if _codec_id_name(codec) not in fits:
            codec = DEFAULT_CODEC
    if _codec_id_name(codec) not in fits:
        raise VideoError(f"{shown(source)}: the {dest_suffix.lstrip('.')} container cannot hold {codec} video",
                         hint="choose another --codec, or --container mkv (which holds most codecs)")
    enc = av.codec.Codec(codec, "w")
    formats = [f.name for f in (enc.video_formats or ())]
    in_fmt = stream.codec_context.format.name if stream.codec_context.format is not None else None
    if options.pix_fmt is not None:
        pix_fmt = options.pix_fmt
        if formats and pix_fmt not in formats:
            raise VideoError(f"{shown(source)}: {codec} cannot write pixel format {pix_fmt}",
                             hint=f"use one of {', '.join(formats[:12])}")
    elif in_fmt in formats:
        pix_fmt = in_fmt
    elif "yuv420p" in formats:
        pix_fmt = "yuv420p"
    else:
        pix_fmt = formats[0] if formats else "yuv420p"
    opts: dict[str, str] = {}
    if codec in _CRF_CODECS:
        opts["crf"] = str(int(options.crf))
        if codec in ("libvpx-vp9", "libvpx"):
            opts["b"] = "0"  # constant quality
    if options.preset is not None:
        if codec not in _PRESET_CODECS:
            raise UsageError(f"--preset is for {', '.join(sorted(_PRESET_CODECS))}, not {codec}")
        opts["preset"] = options.preset
    if codec == "libx264":
        opts.setdefault("preset", "medium")
    depth = 16 if _bits(in_fmt) > 8 and _bits(pix_fmt) > 8 else 8
    return _Plan(container, codec, pix_fmt, opts, depth)


def _check_size(source: Path, plan: _Plan, size: tuple[int, int]) -> None:
    """A VideoError (before any encoding) when ``plan``'s pixel format subsamples its chroma by
    more than ``size`` divides: yuv420p needs even sides, yuv411p a width that is a multiple of 4."""
    av = _av()
    try:
        fmt = av.VideoFormat(plan.pix_fmt)
        mw, mh = 256 // fmt.chroma_width(256), 256 // fmt.chroma_height(256)
    except Exception:
        return
    w, h = size
    if w % mw or h % mh:
        raise VideoError(f"{shown(source)}: the output would be {w}x{h}, which {plan.pix_fmt} cannot hold (its "
                         f"sides must be multiples of {mw} and {mh}): pass --pix-fmt yuv444p, or another scale")


def _write_error(exc: OSError, where: Path) -> SresrError:
    """An OSError while writing the work folder or the output (:func:`sresr.errors.write_error`)."""
    return write_error(exc, where, VideoError)


def _thread_error(exc: BaseException, source: Path, dest: Path, plan: _Plan) -> BaseException:
    """What the encoder thread raised, as the caller should see it: FFmpeg refusing to encode as
    a VideoError naming the encoder, a failed write of the work folder as :func:`_write_error`."""
    av = _av()
    if isinstance(exc, av.error.FFmpegError):
        return VideoError(f"{shown(source)}: {plan.codec} cannot encode this video ({_reason(exc)})",
                          hint="try another --codec or --pix-fmt")
    if isinstance(exc, OSError):
        return _write_error(exc, work_dir(dest))
    return exc


def _codec_id_name(encoder: str) -> str:
    """The codec an encoder writes (``libx264`` -> ``h264``)."""
    av = _av()
    try:
        return str(av.codec.Codec(encoder, "w").canonical_name)
    except Exception:
        return encoder


def _bits(pix_fmt: str | None) -> int:
    if not pix_fmt:
        return 8
    av = _av()
    try:
        return max(c.bits for c in av.VideoFormat(pix_fmt).components)
    except Exception:
        return 8


def _open_input(source: Path) -> Any:
    av = _av()
    try:
        st = source.stat()
    except OSError as exc:
        raise VideoError(f"{shown(source)}: cannot read: {exc.strerror or exc}") from None
    if st.st_size == 0:
        raise VideoError(f"{shown(source)}: empty file (0 bytes)")
    if not source.is_file():
        raise VideoError(f"{shown(source)}: not a regular file", hint="give video files; sresr does not read from pipes or devices")
    try:
        container = av.open(str(source), "r")
    except av.error.FFmpegError as exc:
        raise VideoError(f"{shown(source)}: not a readable video ({_reason(exc)})") from None
    if not container.streams.video:
        container.close()
        raise VideoError(f"{shown(source)}: has no video stream")
    return container


def _reason(exc: BaseException) -> str:
    text = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
    return " ".join(str(text).split())


def format_key(source: Path, dest: Path, options: VideoOptions) -> str:
    """What the output's format part of its :class:`sresr.pipeline.OutputRecord` says: container,
    encoder, pixel format and encoder options, as resolved for this input."""
    with _open_input(source) as c:
        return _plan(source, dest.suffix.lower(), options, c.streams.video[0]).key()


# -- the record inside an output --------------------------------------------------------------


def read_media_record(path: str | os.PathLike[str]) -> str | None:
    """The record sresr stored in a video (its ``comment`` tag) or an image or animation
    (:func:`sresr.imaging.io.read_record`); None when there is none."""
    path = Path(path)
    if not is_video_path(path):
        from .imaging.io import read_record

        return read_record(path)
    try:
        import av

        with av.open(str(path)) as c:
            return {k.lower(): v for k, v in c.metadata.items()}.get("comment")
    except Exception:
        return None


# -- decoding ---------------------------------------------------------------------------------


@dataclass
class _Frame:
    index: int
    pts: int | None
    duration: int
    pixels: Any  # H x W x 3 uint8 / uint16, or None (a reused segment's frame)
    repeated: bool = False


def _to_array(frame: Any, depth: int) -> Any:
    """RGB pixels of a decoded frame (its own colour matrix and range)."""
    kw: dict[str, Any] = {}
    if int(frame.color_range or 0):
        kw["src_color_range"] = frame.color_range
    return frame.to_ndarray(format="rgb48le" if depth == 16 else "rgb24", **kw)


def _decode(source: Path, container: Any, depth: int, skip_bad: bool, skip: Callable[[int], bool],
            stop: threading.Event, notes: dict[str, str] | None = None) -> Iterator[_Frame]:
    """Every frame of the first video stream, in presentation order. A packet that fails to
    decode raises :class:`VideoError`, or with ``skip_bad`` becomes a repeat of the previous
    frame at that packet's timestamp. ``skip(i)``: frame ``i`` is not needed (no pixels made)."""
    av = _av()
    stream = container.streams.video[0]
    stream.thread_type = "AUTO"
    # strict, as the image reader is: a damaged packet is an error, not a silently concealed frame
    stream.codec_context.options = {"err_detect": "crccheck+bitstream+buffer+explode"}
    index = 0
    end = [0.0]  # where the last decoded frame ends, in seconds
    last: Any = None
    # with --skip-bad-frames: the timestamps of every packet demuxed, so that a frame the decoder
    # never gave back (its packet, or one it depends on, was damaged) is found by its missing
    # timestamp, whichever packet the error was reported on (frame threads report it later)
    wanted: list[int] = []
    failed = [0]

    def emit(frame: Any) -> Iterator[_Frame]:
        nonlocal index, last
        if skip_bad and frame.pts is not None:
            while wanted and wanted[0] <= frame.pts:
                pts = heapq.heappop(wanted)
                if pts < frame.pts and last is not None and failed[0]:
                    yield _repeat(pts)
        reuse = skip(index)
        dur = int(frame.duration or 0)
        if notes is not None and "rotation" not in notes:  # the display rotation, from the first frame
            notes["rotation"] = str(int(round(frame.rotation or 0)))
        if frame.is_corrupt:
            if not skip_bad:
                raise VideoError(f"{shown(source)}: corrupt frame {index} (at {_seconds(frame)})",
                                 hint="pass --skip-bad-frames to repeat the previous frame instead")
            if last is not None:
                yield _repeat(frame.pts, dur)
                return
        if frame.pts is not None and frame.time_base is not None:
            end[0] = max(end[0], float((frame.pts + dur) * frame.time_base))
        pixels = None if reuse else _to_array(frame, depth)
        if skip_bad:  # a later bad frame repeats this one
            last = pixels if pixels is not None else _to_array(frame, depth)
        yield _Frame(index, frame.pts, dur, pixels)
        index += 1

    def _repeat(pts: int | None, dur: int = 0) -> _Frame:
        nonlocal index
        fr = _Frame(index, pts, dur, None if skip(index) else last, repeated=True)
        index += 1
        return fr

    try:
        for packet in container.demux(stream):
            if stop.is_set():
                return
            if skip_bad and packet.pts is not None and packet.size:
                heapq.heappush(wanted, packet.pts)
            try:
                frames = packet.decode()
            except av.error.FFmpegError as exc:
                if not skip_bad:
                    raise VideoError(f"{shown(source)}: corrupt video after {index} frames ({_reason(exc)})",
                                     hint="pass --skip-bad-frames to repeat the previous frame instead") from None
                failed[0] += 1
                continue
            for frame in frames:
                yield from emit(frame)
    except av.error.FFmpegError as exc:  # demuxing itself failed: a truncated or damaged file
        if not skip_bad:
            raise VideoError(f"{shown(source)}: truncated or corrupt video after {index} frames ({_reason(exc)})") from None
    while wanted and last is not None and failed[0]:  # frames lost at the very end
        yield _repeat(heapq.heappop(wanted))
    # a truncated file: an error, or with --skip-bad-frames a note (the record's ``missing``)
    expected = int(stream.frames or 0)
    short = ""
    if expected and index < expected:
        short = f"{index} of {expected} frames decoded"
    length = _stated_length(stream)
    if not expected and length is not None and index:
        start = float(stream.start_time * stream.time_base) if stream.start_time is not None else 0.0
        rate = float(stream.average_rate or stream.guessed_rate or 25)
        if end[0] - start < length - max(1.5 / rate, 0.05):  # more than a frame's time missing at the end
            short = f"its frames end at {end[0] - start:.3f} s of the {length:.3f} s its header states"
    if short and not skip_bad:
        raise VideoError(f"{shown(source)}: truncated video: {short}",
                         hint="pass --skip-bad-frames to keep the frames that decode")
    if short and notes is not None:
        notes["missing"] = f"truncated: {short}"


def _stated_length(stream: Any) -> float | None:
    """The video stream's length in seconds as its container states it (mp4: the stream's duration,
    Matroska: its DURATION tag), or None."""
    if stream.duration and stream.time_base:
        return float(stream.duration * stream.time_base)
    tag = {k.upper(): v for k, v in stream.metadata.items()}.get("DURATION")
    try:
        h, m, sec = str(tag).split(":")
        return int(h) * 3600 + int(m) * 60 + float(sec)
    except (ValueError, AttributeError):
        return None


def _seconds(frame: Any) -> str:
    return f"{float(frame.time):.3f} s" if frame.time is not None else "an unknown time"


# -- the work folder: segments and their manifest ---------------------------------------------


def work_dir(dest: Path) -> Path:
    """The hidden folder next to ``dest`` that holds its segments while it is made."""
    return dest.parent / f".{dest.name}{_WORK_SUFFIX}"


class _Work:
    """Segments of one output and the manifest that vouches for them."""

    def __init__(self, dest: Path, key: str):
        self.root = work_dir(dest)
        self.key = key
        self.segments: dict[int, dict[str, Any]] = {}
        manifest = self.root / _MANIFEST
        data: dict[str, Any] = {}
        try:
            data = json.loads(manifest.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            pass
        if data.get("key") != key:  # another input, model or option: start afresh
            shutil.rmtree(self.root, ignore_errors=True)
            data = {}
        self.root.mkdir(parents=True, exist_ok=True)
        for k, seg in dict(data.get("segments", {})).items():
            path = self.path(int(k))
            if path.is_file() and sha256_file(path) == seg.get("sha256"):
                self.segments[int(k)] = seg
        self.reusable = frozenset(self.segments)

    def path(self, k: int) -> Path:
        return self.root / f"seg-{k:06d}.pkt"

    def finished(self, k: int, frames: int, packets: int, first_pts: int | None) -> None:
        path = self.path(k)
        self.segments[k] = {"frames": frames, "packets": packets, "first_pts": first_pts, "sha256": sha256_file(path)}
        atomic_write_text(self.root / _MANIFEST, json.dumps(
            {"key": self.key, "segments": {str(i): s for i, s in sorted(self.segments.items())}}, indent=1))

    def remove(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)


# -- encoding ---------------------------------------------------------------------------------


#: a segment file: this magic, a u32-length JSON header (codec, size, time base, extradata), then
#: each packet as (pts, dts, duration: i64, key frame: u8, size: u32) and its bytes. Packets keep
#: exactly the timestamps the encoder gave them: no container shifts or rounds them.
_SEGMENT_MAGIC = b"SRESRPK1"
_PACKET = struct.Struct("<qqqBI")
_NONE_TS = -(1 << 63)


class _SegmentWriter:
    """Encodes upscaled frames into segment files, a fresh encoder for each segment (so each
    starts with a key frame and no GOP crosses into the next)."""

    def __init__(self, work: _Work, plan: _Plan, options: VideoOptions, time_base: Fraction, rate: Fraction | None,
                 colour: dict[str, Any], size: tuple[int, int]):
        self.work, self.plan, self.n = work, plan, int(options.segment_frames)
        self.time_base, self.rate, self.colour, self.size = time_base, rate, colour, size
        self.file: Any = None
        self.ctx: Any = None
        self.k = -1
        self.frames = self.packets = 0
        self.first_pts: int | None = None

    def _open(self, k: int) -> None:
        self.k, self.frames, self.packets, self.first_pts = k, 0, 0, None
        self.durations: dict[int, int] = {}  # pts -> the input frame's duration (encoders drop it)
        self.ctx = _encoder(self.plan, self.time_base, self.rate, self.colour, self.size)
        header = json.dumps({
            "codec": self.plan.codec, "width": self.size[0], "height": self.size[1], "pix_fmt": self.plan.pix_fmt,
            "time_base": [self.time_base.numerator, self.time_base.denominator],
            "extradata": (self.ctx.extradata or b"").hex(),
        }, sort_keys=True).encode()
        self.file = open(self.work.path(k).with_suffix(".partial"), "wb")
        self.file.write(_SEGMENT_MAGIC + struct.pack("<I", len(header)) + header)

    def add(self, frame: _Frame, pixels: Any) -> None:
        av = _av()
        k = frame.index // self.n
        if k != self.k:
            self._close()
            self._open(k)
        vf = av.VideoFrame.from_ndarray(pixels, format="rgb48le" if pixels.dtype.itemsize == 2 else "rgb24")
        kw: dict[str, Any] = {"format": self.plan.pix_fmt}
        if not self.plan.pix_fmt.startswith(("rgb", "bgr", "gbr")):  # the input's matrix and range
            if self.colour.get("colorspace"):
                kw["dst_colorspace"] = self.colour["colorspace"]
            if self.colour.get("color_range"):
                kw["dst_color_range"] = self.colour["color_range"]
        vf = vf.reformat(**kw)
        vf.pts = frame.pts if frame.pts is not None else frame.index
        vf.time_base = self.time_base
        if frame.duration:
            vf.duration = frame.duration
            self.durations[vf.pts] = frame.duration
        if self.first_pts is None:
            self.first_pts = vf.pts
        self._write(self.ctx.encode(vf))
        self.frames += 1

    def _write(self, packets: Any) -> None:
        for p in packets:
            data = bytes(p)
            duration = self.durations.pop(p.pts, None) if p.pts is not None else None
            ts = [_NONE_TS if v is None else int(v) for v in (p.pts, p.dts, duration or p.duration or None)]
            self.file.write(_PACKET.pack(*ts, int(bool(p.is_keyframe)), len(data)) + data)
            self.packets += 1

    def _close(self) -> None:
        if self.file is None:
            return
        self._write(self.ctx.encode(None))
        self.file.flush()
        os.fsync(self.file.fileno())
        self.file.close()
        self.file = None
        os.replace(self.work.path(self.k).with_suffix(".partial"), self.work.path(self.k))
        self.work.finished(self.k, self.frames, self.packets, self.first_pts)

    def close(self) -> None:
        self._close()

    def abort(self) -> None:
        if self.file is not None:
            self.file.close()
            self.work.path(self.k).with_suffix(".partial").unlink(missing_ok=True)
            self.file = None


def _encoder(plan: _Plan, time_base: Fraction, rate: Fraction | None, colour: dict[str, Any],
             size: tuple[int, int], ctx: Any = None) -> Any:
    """An opened encoder (or ``ctx``, configured) with the plan's settings and global headers."""
    av = _av()
    own = ctx is None
    if own:
        ctx = av.CodecContext.create(plan.codec, "w")
    ctx.width, ctx.height = size
    ctx.pix_fmt = plan.pix_fmt
    ctx.time_base = time_base
    if rate:
        ctx.framerate = rate
    for name, value in colour.items():
        try:
            setattr(ctx, name, value)
        except Exception:
            pass
    ctx.options = dict(plan.codec_options)
    ctx.flags |= av.codec.context.Flags.global_header  # headers out of band, as mp4 / mkv want them
    if own:
        ctx.open()
    return ctx


def _segment_header(path: Path) -> dict[str, Any]:
    with open(path, "rb") as f:
        if f.read(len(_SEGMENT_MAGIC)) != _SEGMENT_MAGIC:
            raise SresrError(f"{shown(path)}: not a segment file")
        (n,) = struct.unpack("<I", f.read(4))
        return json.loads(f.read(n))


def _read_segment(path: Path) -> tuple[dict[str, Any], Iterator[tuple[int, int, int, int, bytes]]]:
    """A segment file's header and its packets as (pts, dts, duration, key frame, bytes)."""
    f = open(path, "rb")
    if f.read(len(_SEGMENT_MAGIC)) != _SEGMENT_MAGIC:
        f.close()
        raise SresrError(f"{shown(path)}: not a segment file")
    (n,) = struct.unpack("<I", f.read(4))
    header = json.loads(f.read(n))

    def records() -> Iterator[tuple[int, int, int, int, bytes]]:
        with f:
            while True:
                head = f.read(_PACKET.size)
                if not head:
                    return
                pts, dts, duration, key, size = _PACKET.unpack(head)
                yield pts, dts, duration, key, f.read(size)

    return header, records()


def _segment_pts(path: Path) -> list[int | None]:
    """A segment's packet pts in decoding order (None where a packet has none)."""
    _, records = _read_segment(path)
    return [None if pts == _NONE_TS else pts for pts, _, _, _, _ in records]


def _packets(paths: list[Path]) -> Iterator[Any]:
    """The packets of the segments, in order, ready to be muxed as one stream.

    Each segment came from its own encoder, whose decoding timestamps trail its presentation
    timestamps by its own reordering (B-frames; a short last segment may have none), so
    concatenated as they are the dts could step back at a boundary. They are rewritten over the
    whole stream: the packet decoded ``g``-th gets the pts of the frame presented ``D`` places
    earlier, ``D`` the largest reordering depth (decode position minus presentation position) of
    any packet, the first ``D`` counting back from the first pts. That is strictly increasing,
    never after the packet's own pts, at any frame rate, variable too; at a constant rate it is
    what the encoder wrote. A stream with packets without pts keeps the encoder's dts."""
    av = _av()
    decode_order = [pts for p in paths for pts in _segment_pts(p)]
    shown_order = sorted(t for t in decode_order if t is not None)
    new_dts: list[int] | None = None
    if len(shown_order) == len(decode_order) and len(set(shown_order)) == len(shown_order) and shown_order:
        place = {t: i for i, t in enumerate(shown_order)}
        depth = max(g - place[t] for g, t in enumerate(decode_order))  # type: ignore[index]
        gaps = [b - a for a, b in zip(shown_order, shown_order[1:])]
        step = min(gaps) if gaps else 1
        new_dts = [shown_order[g - depth] if g >= depth else shown_order[0] - (depth - g) * step
                   for g in range(len(decode_order))]
    g = 0
    for path in paths:
        header, records = _read_segment(path)
        tb = Fraction(*header["time_base"])
        for pts, dts, duration, key, data in records:
            p = av.Packet(data)
            p.pts = None if pts == _NONE_TS else pts
            p.dts = new_dts[g] if new_dts is not None else (None if dts == _NONE_TS else dts)
            if duration != _NONE_TS:
                p.duration = duration
            p.time_base = tb
            p.is_keyframe = bool(key)
            g += 1
            yield p


def _mux_final(source: Path, dest: Path, work: _Work, plan: _Plan, segments: int, rotation: int,
               record: str | None, time_base: Fraction, rate: Fraction | None,
               colour: dict[str, Any]) -> tuple[tuple[str, ...], tuple[str, ...], float | None]:
    """Copy the segments' packets and the input's other streams into ``dest``, atomically: audio and
    subtitles (an output container that cannot hold one is an error naming it), data streams
    (timecode, telemetry) and attachments (Matroska fonts), which are dropped and named where the
    output container cannot hold them. Returns (copied, dropped, duration)."""
    av = _av()
    copied: list[str] = []
    dropped: list[str] = []
    fits = _container_codecs(plan.container)
    duration: list[float | None] = [None]

    def write(tmp: Path) -> None:
        header = _segment_header(work.path(0))
        with av.open(str(source)) as inp:
            out = av.open(str(tmp), "w", format=plan.container, container_options={"fflags": "+bitexact"})
            try:
                meta = {k: v for k, v in inp.metadata.items() if k.lower() not in ("encoder", "comment", "creation_time")}
                if record is not None:
                    meta["comment"] = record
                out.metadata.update(meta)
                vin = inp.streams.video[0]
                # the same encoder settings make the same stream headers (checked below), which
                # the packets of every segment were encoded against
                vs = out.add_stream(plan.codec, rate=rate)
                _encoder(plan, time_base, rate, colour, (header["width"], header["height"]), vs.codec_context)
                vs.time_base = time_base
                vs.metadata.update({k: v for k, v in vin.metadata.items() if k.lower() not in ("encoder", "handler_name", "duration")})
                if rotation:
                    vs.set_display_rotation(rotation)
                others = []
                for s in inp.streams:
                    if s.index == vin.index or s.type == "video":
                        continue
                    if s.type == "data" and "timecode" in s.metadata:
                        # a QuickTime timecode track: mov/mp4 muxers rebuild it from the video's
                        # timecode tag (copying its packets fails at the trailer), Matroska keeps the tag
                        vs.metadata.setdefault("timecode", s.metadata["timecode"])
                        copied.append(f"data timecode {s.metadata['timecode']}")
                        continue
                    if s.type in ("data", "attachment"):  # kept where the container holds them, else named
                        if not _container_holds(plan.container, s):
                            dropped.append(f"{s.type} #{s.index} ({_stream_name(s)}): a {dest.suffix.lstrip('.')} "
                                           "file cannot hold it")
                            continue
                        o = out.add_stream_from_template(s)
                        o.metadata.update(s.metadata)
                        if s.type == "data":
                            others.append((s, o))
                        copied.append(f"{s.type} {_stream_name(s)}")
                        continue
                    if s.type not in ("audio", "subtitle"):
                        dropped.append(f"{s.type} #{s.index}: not a kind of stream sresr copies")
                        continue
                    name = s.codec_context.name if s.codec_context is not None else "unknown"
                    if name not in fits:
                        raise VideoError(f"{shown(source)}: its {s.type} stream #{s.index} ({name}) cannot be copied "
                                         f"into a {dest.suffix.lstrip('.')} file",
                                         hint="choose another --container (mkv holds most streams)")
                    o = out.add_stream_from_template(s)
                    o.metadata.update(s.metadata)
                    others.append((s, o))
                    copied.append(f"{s.type} {name}")
                vstreams = [work.path(k) for k in range(segments)]

                def video_packets() -> Iterator[tuple[float, int, Any]]:
                    for p in _packets(vstreams):
                        yield (float(p.dts * p.time_base) if p.dts is not None else 0.0), 0, p

                def other_packets() -> Iterator[tuple[float, int, Any]]:
                    if not others:
                        return
                    by_index = {s.index: o for s, o in others}
                    for p in inp.demux(*[s for s, _ in others]):
                        if p.dts is None and p.pts is None or not p.size:
                            continue
                        t = p.dts if p.dts is not None else p.pts
                        yield float(t * p.time_base), 1 + p.stream.index, (p, by_index[p.stream.index])

                out.start_encoding()
                if (vs.codec_context.extradata or b"").hex() != header["extradata"]:
                    raise SresrError(f"{shown(dest)}: internal error: the {plan.codec} encoder made other stream "
                                     "headers than for the segments")
                # interleaved by decoding time, as the muxer wants them (memory: one packet per stream)
                for t, order, item in heapq.merge(video_packets(), other_packets(), key=lambda e: (e[0], e[1])):
                    if order == 0:
                        item.stream = vs
                        out.mux(item)
                    else:
                        p, o = item
                        p.stream = o
                        out.mux(p)
            finally:
                out.close()
        with av.open(str(tmp)) as check:
            duration[0] = float(check.duration / 1e6) if check.duration else None

    try:
        atomic_write(dest, write)
    except OSError as exc:
        raise _write_error(exc, dest) from None
    return tuple(copied), tuple(dropped), duration[0]


def _container_holds(fmt: str, stream: Any) -> bool:
    """Whether a ``fmt`` file can hold a copy of ``stream`` (a data stream or an attachment): tried on
    an empty file in memory, as FFmpeg's muxers say so only when they write the header."""
    av = _av()
    try:
        with av.open(io.BytesIO(), "w", format=fmt) as probe:
            probe.add_stream_from_template(stream)
            probe.start_encoding()
    except (ValueError, NotImplementedError, av.error.FFmpegError):
        return False
    return True


def _stream_name(stream: Any) -> str:
    """A data stream's codec (``bin_data``, ``timed_id3``...) or an attachment's file name."""
    if stream.type == "attachment":
        return str(getattr(stream, "name", None) or stream.metadata.get("filename") or "unnamed")
    return str(getattr(stream, "name", None) or "unknown")


# -- the whole video --------------------------------------------------------------------------


class _OutputLock:
    """One run at a time per video output: an exclusive lock on ``.NAME.sresr-lock`` next to it
    (``flock``; a byte lock on Windows), which the operating system drops when the process dies, so
    a killed run never blocks the next one. The file is removed when the run ends; a run that
    locked a file just removed by a finishing one locks the new file instead."""

    def __init__(self, dest: Path):
        self.dest = dest
        self.path = dest.parent / f".{dest.name}.sresr-lock"
        self.fd: int | None = None

    def __enter__(self) -> "_OutputLock":
        for _ in range(5):
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            except OSError as exc:
                raise _write_error(exc, self.path) from None
            if not _try_lock(fd):
                os.close(fd)
                raise VideoError(f"{shown(self.dest)}: another sresr run is writing this video now "
                                 f"({shown(self.path)} is locked)",
                                 hint="wait for it to finish, or write to another -o folder")
            try:
                same = os.path.samestat(os.fstat(fd), os.stat(self.path))
            except OSError:
                same = False
            if same:
                self.fd = fd
                return self
            os.close(fd)
        raise VideoError(f"{shown(self.dest)}: other sresr runs keep replacing its lock file {shown(self.path)}",
                         hint="write to another -o folder")

    def __exit__(self, *exc: Any) -> None:
        if self.fd is None:
            return
        fd, self.fd = self.fd, None
        if os.name == "nt":  # an open file cannot be removed there: close first
            os.close(fd)
        try:
            self.path.unlink()
        except OSError:
            pass
        if os.name != "nt":
            os.close(fd)


def _try_lock(fd: int) -> bool:
    """Lock ``fd`` without waiting; False when another process holds it. A file system without
    locks (some network mounts) runs unlocked rather than not at all."""
    if os.name == "nt":
        import msvcrt

        try:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
        except OSError:
            return False
        return True
    import fcntl

    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    except OSError:
        return True
    return True


_DONE = object()


def upscale_video(
    upscaler: "Upscaler",
    source: str | os.PathLike[str],
    dest: str | os.PathLike[str],
    options: VideoOptions | None = None,
    *,
    outscale: float | None = None,
    record: str | None = None,
    source_sha256: str | None = None,
    on_frames: Callable[[int, int, float], None] | None = None,
) -> VideoRecord:
    """Upscale every frame of the video ``source`` into ``dest`` (see the module docstring).

    record: text stored in the output's ``comment`` tag (the pipeline's :class:`OutputRecord`).
    A killed run's segments are reused when the input's sha256, the upscaler
    (:meth:`~sresr.engine.Upscaler.describe`), ``outscale``, the encoder plan and ``record`` match (``source_sha256``: the input's, when the caller has
    it already; else the file is read once for it). on_frames(done, total, fps): progress, from
    the calling thread (total 0 when the input does not say). Raises :class:`VideoError` (one line).

    One run at a time writes a given ``dest``: a second one started meanwhile fails at once with
    one line (:class:`_OutputLock`) instead of sharing the first one's segments.
    """
    dest = Path(dest)
    with _OutputLock(dest):
        return _upscale_video(upscaler, source, dest, options, outscale=outscale, record=record,
                              source_sha256=source_sha256, on_frames=on_frames)


def _upscale_video(
    upscaler: "Upscaler",
    source: str | os.PathLike[str],
    dest: str | os.PathLike[str],
    options: VideoOptions | None = None,
    *,
    outscale: float | None = None,
    record: str | None = None,
    source_sha256: str | None = None,
    on_frames: Callable[[int, int, float], None] | None = None,
) -> VideoRecord:
    """:func:`upscale_video` once the output is locked."""
    from .imaging.io import Image

    options = options or VideoOptions()
    source, dest = Path(source), Path(dest)
    t0 = time.perf_counter()
    container = _open_input(source)
    try:
        vin = container.streams.video[0]
        plan = _plan(source, dest.suffix.lower(), options, vin)
        rate = vin.average_rate or vin.guessed_rate
        time_base = vin.time_base or (Fraction(1, rate) if rate else Fraction(1, 25))
        total = int(vin.frames or 0)
        if not total and container.duration and rate:
            total = int(round(container.duration / 1e6 * float(rate)))
        if outscale is None:  # the output size is known: a pixel format it does not fit fails now
            _check_size(source, plan, (vin.codec_context.width * upscaler.scale, vin.codec_context.height * upscaler.scale))
        key = hashlib.sha256("\n".join((str(record), source_sha256 or sha256_file(source), upscaler.describe(), repr(outscale),
                                        plan.key(), str(options.segment_frames))).encode()).hexdigest()
        try:
            work = _Work(dest, key)
        except OSError as exc:
            raise _write_error(exc, work_dir(dest)) from None
        n = int(options.segment_frames)
        stop = threading.Event()
        decoded: queue.Queue[Any] = queue.Queue(maxsize=max(1, options.queue_frames))
        upscaled: queue.Queue[Any] = queue.Queue(maxsize=max(1, options.queue_frames))
        state = {"frames": 0, "repeated": 0}
        notes: dict[str, str] = {}
        colour = _colour_of(vin)

        def put(q: queue.Queue[Any], item: Any) -> bool:
            while not stop.is_set():
                try:
                    q.put(item, timeout=0.1)
                    return True
                except queue.Full:
                    continue
            return False

        def decoder() -> None:
            try:
                for fr in _decode(source, container, plan.depth, options.skip_bad_frames,
                                  lambda i: i // n in work.reusable, stop, notes):
                    if not put(decoded, fr):
                        return
                put(decoded, _DONE)
            except BaseException as exc:  # noqa: BLE001 - handed to the calling thread
                put(decoded, exc)

        writer: list[_SegmentWriter] = []

        def encoder() -> None:
            try:
                while True:
                    try:
                        item = upscaled.get(timeout=0.1)
                    except queue.Empty:
                        item = None
                    if stop.is_set():  # failed or interrupted: the open segment is dropped, never recorded
                        if writer:
                            writer[0].abort()
                        return
                    if item is None:
                        continue
                    if item is _DONE:  # the end of the video: the last segment is complete
                        if writer:
                            writer[0].close()
                        return
                    fr, pixels, colour = item
                    if fr.index // n in work.reusable:
                        continue
                    if not writer:
                        writer.append(_SegmentWriter(work, plan, options, time_base, rate, colour,
                                                     (pixels.shape[1], pixels.shape[0])))
                    writer[0].add(fr, pixels)
            except BaseException as exc:  # noqa: BLE001
                errors.append(exc)
                stop.set()
                if writer:
                    writer[0].abort()

        errors: list[BaseException] = []
        threads = [threading.Thread(target=decoder, name="sresr-video-decode", daemon=True),
                   threading.Thread(target=encoder, name="sresr-video-encode", daemon=True)]
        for th in threads:
            th.start()
        in_size = (vin.codec_context.width, vin.codec_context.height)
        out_size: tuple[int, int] | None = None
        tick = time.perf_counter()
        reused_frames: dict[int, int] = {}
        failed = False
        # frames go through the engine several at a time where the device gains from it (a GPU
        # running small frames whole: Upscaler.frames_per_pass), one at a time elsewhere
        per_pass = upscaler.frames_per_pass(in_size[1], in_size[0]) if outscale is None else 1
        pending: list[_Frame] = []

        def emit(fr: _Frame, pixels: Any) -> bool:
            """Hand one frame (in order) to the encoder; False when the run stops."""
            state["frames"] += 1
            state["repeated"] += int(fr.repeated)
            if not put(upscaled, (fr, pixels, colour)):
                return False
            if on_frames is not None:
                elapsed = time.perf_counter() - tick
                on_frames(state["frames"], max(total, state["frames"]), state["frames"] / elapsed if elapsed > 0 else 0.0)
            return True

        def flush() -> bool:
            """Upscale the waiting frames together and hand them on; False when the run stops."""
            nonlocal out_size, per_pass
            if not pending:
                return True
            frames = list(pending)
            pending.clear()
            outs = upscaler.upscale_batch([Image(pixels=fr.pixels, bit_depth=plan.depth) for fr in frames],
                                          outscale=outscale, depth=plan.depth)
            if outscale is None:  # an out-of-memory error lowers it for the frames to come
                per_pass = min(per_pass, upscaler.frames_per_pass(in_size[1], in_size[0]))
            for fr, out in zip(frames, outs):
                pixels = out.pixels
                if out_size is None:
                    _check_size(source, plan, (pixels.shape[1], pixels.shape[0]))
                out_size = (pixels.shape[1], pixels.shape[0])
                if not emit(fr, pixels):
                    return False
            return True

        try:
            while True:
                try:
                    item = decoded.get(timeout=0.1)
                except queue.Empty:
                    if errors:
                        raise _thread_error(errors[0], source, dest, plan)
                    continue
                if item is _DONE:
                    flush()
                    break
                if isinstance(item, BaseException):
                    raise item
                if errors:
                    raise _thread_error(errors[0], source, dest, plan)
                fr: _Frame = item
                if fr.pixels is not None:
                    if fr.index % n == 0 and not flush():  # no batch spans segments: a resumed run makes the same ones
                        break
                    pending.append(fr)
                    if len(pending) >= per_pass and not flush():
                        break
                    continue
                # a frame of a segment a killed run finished: the frames before it go first
                if not flush():
                    break
                reused_frames[fr.index // n] = reused_frames.get(fr.index // n, 0) + 1
                if not emit(fr, None):
                    break
            put(upscaled, _DONE)
        except BaseException:
            stop.set()
            failed = True
            raise
        finally:
            for th in threads:
                th.join()
            if (failed or errors) and not work.segments:  # nothing a rerun could reuse: no empty work folder
                work.remove()
        if errors:
            raise _thread_error(errors[0], source, dest, plan)
        frames = state["frames"]
        if frames == 0:
            work.remove()
            raise VideoError(f"{shown(source)}: no frame could be decoded")
        fps = float(rate) if rate else None
    finally:
        container.close()
    segments = -(-frames // n)
    missing = [k for k in range(segments) if k not in work.segments]
    wrong = [k for k, count in reused_frames.items() if work.segments[k].get("frames") != count]
    if missing or wrong:  # the same input, model and options decode to the same frames: a bug
        work.remove()
        raise SresrError(f"{shown(source)}: internal error: segments {(missing or wrong)[:5]} do not hold the frames "
                         "they should; their work folder was removed, run the command again")
    if out_size is None:  # every segment reused: the size from the first one
        header = _segment_header(work.path(0))
        out_size = (header["width"], header["height"])
    rotation = int(notes.get("rotation", "0"))  # counter-clockwise degrees, as FFmpeg reports it
    copied, dropped, duration = _mux_final(source, dest, work, plan, segments, rotation, record, time_base, rate, colour)
    work.remove()
    return VideoRecord(
        source=str(source), output=str(dest), frames=frames, repeated_frames=state["repeated"],
        width=out_size[0], height=out_size[1], codec=plan.codec, pix_fmt=plan.pix_fmt, fps=fps,
        duration=duration, copied_streams=copied, dropped_streams=dropped, segments=segments, reused_segments=len(work.reusable & set(range(segments))),
        seconds=time.perf_counter() - t0, input_pixels=frames * in_size[0] * in_size[1],
        missing=notes.get("missing", ""),
    )


def _colour_of(stream: Any) -> dict[str, Any]:
    """The colour description the encoder is given: the input stream's, where it says one."""
    ctx = stream.codec_context
    out: dict[str, Any] = {}
    for name, unspecified in (("color_range", 0), ("colorspace", 2), ("color_primaries", 2), ("color_trc", 2)):
        value = getattr(ctx, name, None)
        if value is not None and int(value) not in (unspecified, 0):
            out[name] = value
    return out


# -- animated GIF / WebP / APNG ---------------------------------------------------------------


def upscale_animation(
    upscaler: "Upscaler",
    source: str | os.PathLike[str],
    dest: str | os.PathLike[str],
    *,
    outscale: float | None = None,
    quality: int = 95,
    png_compression: int = 3,
    record: str | None = None,
    on_frames: Callable[[int, int, float], None] | None = None,
) -> VideoRecord:
    """Upscale every frame of an animated GIF, WebP or APNG into the same format, keeping each
    frame's duration, the loop count and transparency (alpha is upscaled as the image path does).
    ``record`` is stored as the file's comment (GIF), XMP (WebP) or text chunk (APNG)."""
    from PIL import Image as PILImage
    from PIL import ImageSequence

    from .imaging.io import Image, record_kwargs

    source, dest = Path(source), Path(dest)
    t0 = time.perf_counter()
    src = None
    try:
        src = PILImage.open(source)
        fmt = src.format
        if fmt not in ANIMATION_FORMATS:
            raise VideoError(f"{shown(source)}: not an animated GIF, WebP or PNG")
        total = int(getattr(src, "n_frames", 1))
        loop = src.info.get("loop", None)
        frames_out: list[Any] = []
        durations: list[int] = []
        pixels_in = 0
        tick = time.perf_counter()
        for i, frame in enumerate(ImageSequence.Iterator(src)):
            rgba = frame.convert("RGBA")  # decodes the frame: WebP's duration is known only then
            durations.append(int(frame.info.get("duration", src.info.get("duration", 100)) or 0))
            import numpy as np

            arr = np.asarray(rgba)
            alpha = arr[:, :, 3]
            image = Image(pixels=np.ascontiguousarray(arr[:, :, :3]), alpha=None if (alpha == 255).all() else alpha)
            out = upscaler.upscale_image(image, outscale=outscale, depth=8)
            mode = "RGBA" if out.alpha is not None else "RGB"
            data = out.pixels if out.alpha is None else np.concatenate([out.pixels, out.alpha[:, :, None]], axis=2)
            frames_out.append(PILImage.fromarray(data, mode=mode))
            pixels_in += arr.shape[0] * arr.shape[1]
            if on_frames is not None:
                elapsed = time.perf_counter() - tick
                on_frames(i + 1, total, (i + 1) / elapsed if elapsed > 0 else 0.0)
    except SresrError:
        raise
    except Exception as exc:
        raise VideoError(f"{shown(source)}: cannot decode: {_reason(exc)}") from None
    finally:
        if src is not None:
            src.close()
    if any(f.mode == "RGBA" for f in frames_out):
        frames_out = [f.convert("RGBA") for f in frames_out]
    kwargs: dict[str, Any] = {"save_all": True, "append_images": frames_out[1:], "duration": durations}
    if loop is not None:
        kwargs["loop"] = loop
    out_fmt = ANIMATION_FORMATS[fmt]
    if out_fmt == "gif":
        kwargs.update(disposal=2, optimize=False)
    elif out_fmt == "webp":
        kwargs.update(quality=int(quality), lossless=quality >= 100, method=4)
    else:
        kwargs.update(default_image=False, disposal=1 if frames_out[0].mode == "RGBA" else 0,
                      compress_level=int(png_compression))
    if record is not None:
        kwargs.update(record_kwargs(out_fmt, record))

    def write(tmp: Path) -> None:
        frames_out[0].save(tmp, format=fmt, **kwargs)

    try:
        atomic_write(dest, write)
    except OSError as exc:
        raise _write_error(exc, dest) from None
    w, h = frames_out[0].size
    return VideoRecord(
        source=str(source), output=str(dest), frames=len(frames_out), repeated_frames=0, width=w, height=h,
        codec=out_fmt, pix_fmt=frames_out[0].mode.lower(), fps=None, duration=sum(durations) / 1000.0,
        seconds=time.perf_counter() - t0, input_pixels=pixels_in,
    )
