"""Reading and writing images without losing what the user cares about.

:func:`read_image` decodes any file Pillow (or, for 16-bit colour, OpenCV) understands into an
:class:`Image`: float32 pixels in [0, 1] (``H x W x 1`` for grey, ``H x W x 3`` for colour), the
alpha channel kept apart, the bit depth (8 or 16), the ICC profile and the EXIF block. EXIF
orientation is applied to the pixels and reset to 1 in the kept EXIF, so viewers do not rotate
the result a second time. Palette images become RGB (RGBA with transparency), CMYK becomes RGB
(through its ICC profile when it has one), LA becomes grey plus alpha.

:func:`write_image` encodes an :class:`Image` at its bit depth where the format allows it (PNG
and TIFF keep 16 bits, JPEG and WebP are 8-bit), keeps grey as grey, re-attaches alpha, embeds
ICC and EXIF, and writes atomically: a temporary file in the target folder, then ``os.replace``.

Every decoding problem (zero bytes, truncated file, not an image, more pixels than
``max_pixels``) raises :class:`sresr.errors.ImageError` with a one-line message naming the file.

The invariant: an image is returned only when its decoder finished without an error. Pixels are
decoded first, strictly (Pillow's ``load()`` without ``LOAD_TRUNCATED_IMAGES``; every PNG chunk's
CRC is checked too, which catches flipped bytes that zlib lets through), and only then are EXIF,
frame count and other metadata read, each on its own, so that no metadata lookup can trigger (and
swallow) the decoder's error. Only regular files are read, and no more bytes than a file of
``max_pixels`` can need (:func:`read_file`), so a FIFO, a device or a huge file never hangs the
reader or fills its memory.
"""

from __future__ import annotations

import hashlib
import io
import os
import stat
import struct
import zlib
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np

from ..atomic import TEMP_SUFFIX, atomic_write_bytes, remove_stale_temps
from ..errors import ImageError, shown, write_error

__all__ = [
    "Image",
    "read_image",
    "write_image",
    "encode_image",
    "DEFAULT_MAX_PIXELS",
    "FORMATS",
    "format_for_path",
    "TEMP_SUFFIX",
    "remove_stale_temps",
]

#: Inputs larger than this many pixels are refused (decompression-bomb guard); ``--max-pixels``.
DEFAULT_MAX_PIXELS = 200_000_000

#: Formats :func:`write_image` can write, by canonical name -> file extension.
FORMATS = {"png": ".png", "jpg": ".jpg", "webp": ".webp", "tiff": ".tif"}
_EXT_TO_FORMAT = {
    ".png": "png",
    ".jpg": "jpg",
    ".jpeg": "jpg",
    ".jpe": "jpg",
    ".webp": "webp",
    ".tif": "tiff",
    ".tiff": "tiff",
}

#: PNG zlib level written by default: about 2x faster than level 6 (Pillow's and libpng's
#: default) for files about a quarter larger; encoding is most of the time of a fast model on a
#: large image (benchmarks/bench_cli.py).
DEFAULT_PNG_COMPRESSION = 3

Mode = Literal["gray", "rgb"]


@dataclass(frozen=True)
class Image:
    """A decoded image.

    pixels: float32 ``H x W x C`` in [0, 1], ``C`` = 1 (grey) or 3 (RGB), without alpha; or
        uint8 / uint16 already rounded to ``bit_depth`` (``Upscaler.upscale_image(depth=...)``).
    alpha: ``H x W``, of the same kind as ``pixels``, or None.
    bit_depth: 8 or 16 (bits per channel of the source; what :func:`write_image` keeps).
    icc_profile, exif: raw bytes to embed on write (EXIF orientation already reset to 1).
    source_format: Pillow's format name of the source (``PNG``, ``JPEG``...), or "".
    source_sha256: sha256 of the file's bytes (:func:`read_image`), or "" for decoded bytes.
    frames: frames (or pages) in the file; only the first is decoded (animated GIF/WebP/PNG,
        multi-page TIFF).
    """

    pixels: np.ndarray
    alpha: np.ndarray | None = None
    bit_depth: int = 8
    icc_profile: bytes | None = None
    exif: bytes | None = None
    source_format: str = ""
    frames: int = 1
    source_sha256: str = ""

    @property
    def mode(self) -> Mode:
        return "gray" if self.pixels.shape[2] == 1 else "rgb"

    @property
    def height(self) -> int:
        return int(self.pixels.shape[0])

    @property
    def width(self) -> int:
        return int(self.pixels.shape[1])

    @property
    def size(self) -> tuple[int, int]:
        """(width, height), as Pillow reports it."""
        return self.width, self.height

    def with_pixels(self, pixels: np.ndarray, alpha: np.ndarray | None) -> "Image":
        return replace(self, pixels=pixels, alpha=alpha)


# -- reading --------------------------------------------------------------------------------


def read_image(path: str | os.PathLike[str], max_pixels: int | None = DEFAULT_MAX_PIXELS) -> Image:
    """Decode ``path``; raise :class:`ImageError` (one line, naming the file) when it cannot."""
    data = read_file(path, max_bytes=max_file_bytes(max_pixels))
    image = decode_image(data, name=shown(path), max_pixels=max_pixels)
    return replace(image, source_sha256=hashlib.sha256(data).hexdigest())


def max_file_bytes(max_pixels: int | None) -> int | None:
    """The largest file an image of ``max_pixels`` pixels can need: 8 bytes a pixel (16-bit RGBA,
    uncompressed) plus 64 MiB of metadata. None: no limit."""
    return None if max_pixels is None else int(max_pixels) * 8 + (64 << 20)


def read_file(path: str | os.PathLike[str], max_bytes: int | None = None) -> bytes:
    """The bytes of a regular file, at most ``max_bytes`` of them.

    A folder, a FIFO, a socket or a device is refused before anything is read (opening a FIFO
    for reading would wait for a writer; a device can be endless), and so is a file larger than
    ``max_bytes``: :class:`ImageError`, one line naming the file."""
    name = shown(path)
    try:
        # O_NONBLOCK: opening a FIFO returns at once instead of waiting for a writer (no effect on
        # regular files); what was opened is checked with fstat, so a swap after a stat cannot fool it
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except IsADirectoryError:
        raise ImageError(f"{name}: is a folder, not an image") from None
    except FileNotFoundError:
        raise ImageError(f"{name}: cannot read: no such file") from None
    except OSError as exc:
        raise ImageError(f"{name}: cannot read: {exc.strerror or exc}") from None
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(fd)
        if stat.S_ISDIR(st.st_mode):
            raise ImageError(f"{name}: is a folder, not an image")
        if not stat.S_ISREG(st.st_mode):
            raise ImageError(f"{name}: not a regular file ({_file_kind(st.st_mode)})",
                             hint="give image files; sresr does not read from pipes or devices")
        if max_bytes is not None and st.st_size > max_bytes:
            raise ImageError(f"{name}: {st.st_size / 1e6:.1f} MB is more than an image within the pixel limit needs",
                             hint="raise --max-pixels if the file is trusted")
        try:
            data = f.read(-1 if max_bytes is None else max_bytes + 1)  # a buffered read: every byte, or the cap
        except OSError as exc:
            raise ImageError(f"{name}: cannot read: {exc.strerror or exc}") from None
    if max_bytes is not None and len(data) > max_bytes:  # the file grew while it was read
        raise ImageError(f"{name}: more than {max_bytes / 1e6:.1f} MB", hint="raise --max-pixels if the file is trusted")
    if not data:
        raise ImageError(f"{name}: empty file (0 bytes)", hint="the file is not an image; remove it or re-export it")
    return data


def _file_kind(mode: int) -> str:
    for test, kind in ((stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return kind
    return "not a file"


_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def check_png(data: bytes, name: str) -> None:
    """Walk a PNG's chunks and check each one's CRC up to IEND; raise :class:`ImageError` on a
    mismatch, a chunk cut short or a missing IEND. zlib checks IDAT data only at the end of the
    stream, which decoders stop short of once they have every row, so a flipped byte inside image
    data would otherwise decode to wrong pixels without an error."""
    view = memoryview(data)
    pos, n = 8, len(data)
    while True:
        if pos + 12 > n:
            raise ImageError(f"{name}: truncated file (the PNG ends at byte {n}, before its IEND chunk)")
        length = int.from_bytes(view[pos : pos + 4], "big")
        kind = bytes(view[pos + 4 : pos + 8])
        end = pos + 12 + length
        if length > 0x7FFFFFFF or end > n:
            raise ImageError(f"{name}: truncated file (a {_chunk_name(kind)} chunk at byte {pos} runs past the end)")
        if zlib.crc32(view[pos + 4 : end - 4]) != int.from_bytes(view[end - 4 : end], "big"):
            raise ImageError(f"{name}: corrupt PNG (the {_chunk_name(kind)} chunk at byte {pos} fails its CRC check)")
        if kind == b"IEND":
            return
        pos = end


def _chunk_name(kind: bytes) -> str:
    text = kind.decode("latin-1")
    return text if text.isalpha() else repr(kind)


def decode_image(data: bytes, name: str = "<bytes>", max_pixels: int | None = DEFAULT_MAX_PIXELS) -> Image:
    """:func:`read_image` for bytes already in memory."""
    from PIL import Image as PILImage
    from PIL import UnidentifiedImageError

    limit = getattr(PILImage, "MAX_IMAGE_PIXELS", None)
    if limit is not None and (max_pixels is None or max_pixels > limit):
        # Pillow refuses images over 2x its own limit; sresr's max_pixels is the guard here.
        PILImage.MAX_IMAGE_PIXELS = None if max_pixels is None else int(max_pixels)
    try:
        pil = PILImage.open(io.BytesIO(data))
    except UnidentifiedImageError:
        raise ImageError(f"{name}: not an image (unrecognised format)") from None
    except PILImage.DecompressionBombError as exc:
        raise ImageError(f"{name}: too many pixels ({exc})", hint="raise --max-pixels if the file is trusted") from None
    except Exception as exc:
        raise ImageError(f"{name}: cannot decode: {_reason(exc)}") from None
    w, h = pil.size
    if max_pixels is not None and w * h > max_pixels:
        raise ImageError(
            f"{name}: {w}x{h} = {w * h / 1e6:.1f} MPix is more than the {max_pixels / 1e6:.1f} MPix limit",
            hint="raise --max-pixels if the file is trusted",
        )
    fmt = pil.format or ""
    icc = pil.info.get("icc_profile") or None
    try:
        # the pixels first, strictly: no metadata lookup may run the decoder before this and
        # swallow its error (Pillow's getexif() loads a PNG, for one)
        if fmt == "PNG" and data[:8] == _PNG_SIGNATURE:
            check_png(data, name)
        if _is_16bit_color(pil, data):
            pixels, alpha, depth = _decode_cv2(data, name)
        else:
            pixels, alpha, depth, icc = _decode_pil(pil, icc)
    except ImageError:
        raise
    except Exception as exc:
        raise ImageError(f"{name}: cannot decode: {_reason(exc)}") from None
    try:
        frames = max(1, int(getattr(pil, "n_frames", 1)))
    except Exception:  # a broken later frame: the first one decoded
        frames = 1
    try:
        exif_obj = pil.getexif()
        orientation = int(exif_obj.get(0x0112, 1) or 1)
    except Exception:  # unreadable EXIF is metadata lost, not pixels
        orientation = 1
    exif = pil.info.get("exif") or None
    if isinstance(exif, str):  # some plugins give text
        exif = None
    if orientation != 1:
        pixels = _orient(pixels, orientation)
        alpha = _orient(alpha, orientation) if alpha is not None else None
        if exif:
            exif = _reset_orientation(exif)
    return Image(
        pixels=np.ascontiguousarray(pixels, dtype=np.float32),
        alpha=None if alpha is None else np.ascontiguousarray(alpha, dtype=np.float32),
        bit_depth=depth,
        icc_profile=icc,
        exif=exif,
        source_format=fmt,
        frames=frames,
    )


def _reason(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    msg = text[0] if text else type(exc).__name__
    low = msg.lower()
    if "truncated" in low or "broken data stream" in low or "premature end" in low or "unexpected end" in low:
        return f"truncated file ({msg})"
    return msg


def _is_16bit_color(pil: "object", data: bytes) -> bool:
    """16-bit RGB(A) files, which Pillow would reduce to 8 bits: decode those with OpenCV."""
    fmt = getattr(pil, "format", None)
    if fmt == "PNG" and len(data) > 26 and data[12:16] == b"IHDR":
        depth, color_type = data[24], data[25]
        return depth == 16 and color_type in (2, 6)
    if fmt == "TIFF":
        try:
            bits = pil.tag_v2.get(258)  # type: ignore[attr-defined]
            samples = int(pil.tag_v2.get(277, 1))  # type: ignore[attr-defined]
        except Exception:
            return False
        if bits is None:
            return False
        bits_t = bits if isinstance(bits, tuple) else (bits,)
        return max(int(b) for b in bits_t) == 16 and samples >= 3
    return False


def _decode_cv2(data: bytes, name: str) -> tuple[np.ndarray, np.ndarray | None, int]:
    import cv2

    _quiet_cv2(cv2)
    arr = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_UNCHANGED)
    if arr is None:
        raise ImageError(f"{name}: cannot decode: truncated or corrupt 16-bit image")
    if arr.dtype == np.uint16:
        scale, depth = 65535.0, 16
    elif arr.dtype == np.uint8:
        scale, depth = 255.0, 8
    else:
        raise ImageError(f"{name}: unsupported sample type {arr.dtype}")
    f = arr.astype(np.float32) / scale
    if f.ndim == 2:
        return f[:, :, None], None, depth
    if f.shape[2] == 4:
        return f[:, :, 2::-1], f[:, :, 3], depth
    if f.shape[2] == 3:
        return f[:, :, ::-1], None, depth
    if f.shape[2] == 2:
        return f[:, :, :1], f[:, :, 1], depth
    raise ImageError(f"{name}: unsupported channel count {f.shape[2]}")


def _quiet_cv2(cv2: object) -> None:
    """OpenCV prints decoder warnings to stderr; the ImageError already says what went wrong."""
    try:
        cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)  # type: ignore[attr-defined]
    except Exception:
        pass


def _decode_pil(pil: "object", icc: bytes | None) -> tuple[np.ndarray, np.ndarray | None, int, bytes | None]:
    from PIL import Image as PILImage

    im: PILImage.Image = pil  # type: ignore[assignment]
    im.load()  # raises on truncated data
    mode = im.mode
    if mode in ("I;16", "I;16L", "I;16B", "I;16N"):
        a = np.asarray(im).astype(np.float32) / 65535.0
        return a[:, :, None], None, 16, icc
    if mode == "I":
        a = np.asarray(im).astype(np.float64)
        depth = 16 if a.max(initial=0) > 255 else 8
        a = np.clip(a / (65535.0 if depth == 16 else 255.0), 0, 1).astype(np.float32)
        return a[:, :, None], None, depth, icc
    if mode == "F":
        a = np.asarray(im).astype(np.float32)
        if a.max(initial=0) > 1.0:
            a = a / (65535.0 if a.max() > 255 else 255.0)
        return np.clip(a, 0, 1)[:, :, None], None, 16, icc
    if mode == "1":
        im = im.convert("L")
        mode = "L"
    if mode == "P":
        if "transparency" not in im.info and _palette_is_gray(im):
            im = im.convert("L")  # grey stays grey
        else:
            im = im.convert("RGBA" if "transparency" in im.info else "RGB")
        mode = im.mode
    elif mode == "PA":
        im = im.convert("RGBA")
        mode = "RGBA"
    elif mode == "CMYK":
        im, icc = _cmyk_to_rgb(im, icc)
        mode = "RGB"
    elif mode == "La":
        im = im.convert("LA")
        mode = "LA"
    elif mode not in ("L", "LA", "RGB", "RGBA"):
        im = im.convert("RGBA" if "A" in mode or "a" in mode or "transparency" in im.info else "RGB")
        if mode in ("YCbCr", "LAB", "HSV"):
            icc = None  # a profile for another colour space would be wrong on RGB
        mode = im.mode
    if mode == "L" and "transparency" in im.info:
        im = im.convert("LA")
        mode = "LA"
    if mode == "RGB" and "transparency" in im.info:
        im = im.convert("RGBA")
        mode = "RGBA"
    a = np.asarray(im).astype(np.float32) / 255.0
    if mode == "L":
        return a[:, :, None], None, 8, icc
    if mode == "LA":
        return a[:, :, :1], a[:, :, 1], 8, icc
    if mode == "RGB":
        return a, None, 8, icc
    return a[:, :, :3], a[:, :, 3], 8, icc  # RGBA


def _palette_is_gray(im: "object") -> bool:
    """True when every colour of a palette image's palette is a grey (R = G = B)."""
    try:
        palette = im.getpalette()  # type: ignore[attr-defined]
    except Exception:
        return False
    if not palette:
        return False
    rgb = np.asarray(palette[: len(palette) // 3 * 3], dtype=np.int32).reshape(-1, 3)
    used = np.unique(np.asarray(im))  # only the entries the pixels use
    used = used[used < len(rgb)]
    return bool(len(used)) and bool((rgb[used, 0] == rgb[used, 1]).all() and (rgb[used, 1] == rgb[used, 2]).all())


def _cmyk_to_rgb(im: "object", icc: bytes | None) -> tuple["object", bytes | None]:
    """CMYK -> sRGB through the embedded profile when there is one, else Pillow's formula."""
    from PIL import Image as PILImage

    assert isinstance(im, PILImage.Image)
    if icc:
        try:
            from PIL import ImageCms

            src = ImageCms.ImageCmsProfile(io.BytesIO(icc))
            dst = ImageCms.createProfile("sRGB")
            out = ImageCms.profileToProfile(im, src, dst, outputMode="RGB")
            if out is not None:
                return out, None
        except Exception:
            pass
    return im.convert("RGB"), None  # the CMYK profile does not describe the RGB result


def _orient(a: np.ndarray, orientation: int) -> np.ndarray:
    """Apply EXIF orientation (1-8) to an ``H x W [x C]`` array, as viewers display it."""
    if orientation == 2:
        return a[:, ::-1]
    if orientation == 3:
        return a[::-1, ::-1]
    if orientation == 4:
        return a[::-1]
    if orientation == 5:
        return np.swapaxes(a, 0, 1)
    if orientation == 6:
        return np.rot90(a, k=-1)
    if orientation == 7:
        return np.swapaxes(a[::-1, ::-1], 0, 1)
    if orientation == 8:
        return np.rot90(a, k=1)
    return a


def _reset_orientation(exif: bytes) -> bytes:
    """Set the Orientation tag (0x0112) of IFD0 to 1 in raw EXIF bytes, touching nothing else."""
    buf = bytearray(exif)
    base = 6 if buf[:6] == b"Exif\x00\x00" else 0
    try:
        order = bytes(buf[base : base + 2])
        if order == b"II":
            e = "<"
        elif order == b"MM":
            e = ">"
        else:
            return exif
        (ifd,) = struct.unpack_from(e + "I", buf, base + 4)
        (count,) = struct.unpack_from(e + "H", buf, base + ifd)
        for i in range(count):
            off = base + ifd + 2 + 12 * i
            tag, typ = struct.unpack_from(e + "HH", buf, off)
            if tag == 0x0112 and typ == 3:
                struct.pack_into(e + "H", buf, off + 8, 1)
                return bytes(buf)
    except struct.error:
        return exif
    return exif


# -- writing --------------------------------------------------------------------------------


def format_for_path(path: str | os.PathLike[str]) -> str | None:
    """Canonical format name for a file extension (``.jpeg`` -> ``jpg``), or None."""
    return _EXT_TO_FORMAT.get(Path(path).suffix.lower())


def quantize(a: np.ndarray, depth: int) -> np.ndarray:
    """Round [0, 1] floats to 8/16-bit integers (clamped, scaled by 255 / 65535 in float32, rounded
    half to even), a band of rows at a time (bounded extra memory). Integers already at that depth
    pass through; those at the other depth are rescaled."""
    want = np.uint16 if depth == 16 else np.uint8
    if a.dtype == want:
        return np.ascontiguousarray(a)
    peak = np.float32(65535.0 if depth == 16 else 255.0)
    source_peak = {np.dtype(np.uint8): 255.0, np.dtype(np.uint16): 65535.0}.get(a.dtype)
    out = np.empty(a.shape, dtype=want)
    rows = max(1, (1 << 22) // max(1, a[0].size))
    for r in range(0, a.shape[0], rows):
        band = a[r : r + rows]
        if source_peak is not None:
            band = band.astype(np.float32) / np.float32(source_peak)
        band = np.clip(band, 0.0, 1.0).astype(np.float32, copy=False) * peak
        out[r : r + rows] = np.rint(band, out=band)
    return out


def as_float(a: np.ndarray) -> np.ndarray:
    """[0, 1] float32 view of pixels that may be uint8 / uint16 (as ``upscale_image(depth=...)`` gives)."""
    if a.dtype == np.uint8:
        return a.astype(np.float32) / np.float32(255.0)
    if a.dtype == np.uint16:
        return a.astype(np.float32) / np.float32(65535.0)
    return a


def output_depth(image: Image, format: str) -> int:
    """Bits per channel :func:`encode_image` writes ``image`` with in ``format``: 16 for a 16-bit
    image to PNG or TIFF, else 8."""
    fmt = _EXT_TO_FORMAT.get("." + format.lower().lstrip("."), format.lower())
    return 16 if fmt in ("png", "tiff") and image.bit_depth == 16 else 8


def encode_image(
    image: Image, format: str, quality: int = 95, png_compression: int = DEFAULT_PNG_COMPRESSION,
    record: str | None = None,
) -> bytes:
    """Encode to bytes in ``format`` (png, jpg, webp, tiff). ``quality``: JPEG/WebP (1-100);
    ``png_compression``: PNG zlib level (0 = none, fastest ... 9 = smallest, slowest).
    ``record``: ASCII text stored in the file where :func:`read_record` finds it (a PNG ``tEXt``
    chunk before the image data, a TIFF ImageDescription, a JPEG comment, WebP XMP)."""
    if record is not None and not (record.isascii() and record.isprintable()):
        raise ValueError("record must be printable ASCII")
    fmt = _EXT_TO_FORMAT.get("." + format.lower().lstrip("."), format.lower())
    if fmt not in FORMATS:
        raise ImageError(f"cannot write format '{format}'", hint=f"choose one of {', '.join(FORMATS)}")
    if not 0 <= int(png_compression) <= 9:
        raise ValueError(f"png_compression must be 0-9, got {png_compression}")
    pixels, alpha = image.pixels, image.alpha
    if fmt == "jpg" and alpha is not None:
        # JPEG has no alpha: composite onto white rather than dropping to black.
        a = as_float(alpha)[:, :, None]
        pixels = as_float(pixels) * a + (1.0 - a)
        alpha = None
    depth = output_depth(image, fmt)
    if depth == 16:
        return _encode_16(pixels, alpha, fmt, image.icc_profile, image.exif, int(png_compression), record)
    from PIL import Image as PILImage

    gray = pixels.shape[2] == 1
    planes = [pixels[:, :, :1] if gray else pixels]
    if alpha is not None:
        planes.append(alpha[:, :, None])
    planes = [quantize(q, 8) for q in planes]  # each plane on its own: pixels and alpha may differ in type
    arr = np.concatenate(planes, axis=2) if len(planes) > 1 else planes[0]
    mode = ("LA" if gray else "RGBA") if alpha is not None else ("L" if gray else "RGB")
    if fmt == "webp" and gray:  # WebP stores colour only
        arr = np.concatenate([arr[:, :, :1]] * 3 + ([arr[:, :, 1:]] if alpha is not None else []), axis=2)
        mode = "RGBA" if alpha is not None else "RGB"
    pil = PILImage.fromarray(arr[:, :, 0] if mode == "L" else arr, mode=mode)
    kwargs: dict[str, object] = {}
    if image.icc_profile:
        kwargs["icc_profile"] = image.icc_profile
    if image.exif:
        kwargs["exif"] = image.exif
    if fmt == "jpg":
        kwargs.update(quality=int(quality), subsampling=0 if quality >= 90 else 2)
        if gray and image.icc_profile and not _icc_is_gray(image.icc_profile):
            kwargs.pop("icc_profile")
    elif fmt == "webp":
        kwargs.update(quality=int(quality), method=4)
        if quality >= 100:
            kwargs["lossless"] = True
    elif fmt == "png":
        kwargs.update(compress_level=int(png_compression))
    elif fmt == "tiff":
        kwargs.update(compression="tiff_deflate")
    if record is not None:
        kwargs.update(record_kwargs(fmt, record))
    out = io.BytesIO()
    pil.save(out, format={"jpg": "JPEG", "png": "PNG", "webp": "WEBP", "tiff": "TIFF"}[fmt], **kwargs)
    return out.getvalue()


def record_kwargs(fmt: str, record: str) -> dict[str, Any]:
    """Pillow ``save`` arguments that store ``record`` where :func:`read_record` finds it, for the
    format ``fmt`` (png, jpg, webp, tiff, gif): a PNG text chunk, a JPEG/GIF comment, WebP XMP, a
    TIFF ImageDescription."""
    if fmt == "png":
        from PIL.PngImagePlugin import PngInfo

        info = PngInfo()
        info.add_text(RECORD_KEY, record)
        return {"pnginfo": info}
    if fmt in ("jpg", "gif"):
        return {"comment": record}
    if fmt == "webp":
        return {"xmp": _xmp_packet(record)}
    return {"description": record}


def _icc_is_gray(icc: bytes) -> bool:
    return len(icc) >= 20 and icc[16:20] == b"GRAY"


def _encode_16(
    pixels: np.ndarray, alpha: np.ndarray | None, fmt: str, icc: bytes | None, exif: bytes | None,
    png_compression: int = DEFAULT_PNG_COMPRESSION, record: str | None = None,
) -> bytes:
    import cv2

    gray = pixels.shape[2] == 1
    if gray:
        planes = [pixels[:, :, 0:1]]
    else:
        planes = [pixels[:, :, ::-1]]  # OpenCV wants BGR
    if alpha is not None:
        if gray:  # OpenCV writes 2-channel as BGRA poorly: use colour + alpha
            planes = [np.repeat(pixels[:, :, 0:1], 3, axis=2)]
        planes.append(alpha[:, :, None])
    planes = [quantize(q, 16) for q in planes]  # each plane on its own: pixels and alpha may differ in type
    arr = np.concatenate(planes, axis=2) if len(planes) > 1 else planes[0]
    if arr.shape[2] == 1:
        arr = arr[:, :, 0]
    params = [cv2.IMWRITE_PNG_COMPRESSION, png_compression] if fmt == "png" else []
    ok, buf = cv2.imencode(".png" if fmt == "png" else ".tif", arr, params)
    if not ok:
        raise ImageError(f"OpenCV could not encode a 16-bit {fmt}")
    data = buf.tobytes()
    if fmt == "png":
        data = _png_add_chunks(data, icc, exif, record)
    elif record is not None:
        data = _tiff_add_description(data, record)
    return data


def _png_chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload) & 0xFFFFFFFF)


def _png_add_chunks(png: bytes, icc: bytes | None, exif: bytes | None, record: str | None = None) -> bytes:
    """Insert iCCP / eXIf / tEXt chunks after IHDR (OpenCV does not write them)."""
    if not icc and not exif and record is None:
        return png
    ihdr_end = 8 + 8 + struct.unpack(">I", png[8:12])[0] + 4
    extra = b""
    if record is not None:
        extra += _png_chunk(b"tEXt", RECORD_KEY.encode("latin-1") + b"\x00" + record.encode("ascii"))
    if icc:
        extra += _png_chunk(b"iCCP", b"ICC Profile\x00\x00" + zlib.compress(icc))
    if exif:
        raw = exif[6:] if exif[:6] == b"Exif\x00\x00" else exif
        extra += _png_chunk(b"eXIf", raw)
    return png[:ihdr_end] + extra + png[ihdr_end:]


def write_image(
    path: str | os.PathLike[str],
    image: Image,
    format: str | None = None,
    quality: int = 95,
    png_compression: int = DEFAULT_PNG_COMPRESSION,
    record: str | None = None,
) -> Path:
    """Encode ``image`` and write it to ``path`` atomically; returns ``path``.

    ``format`` defaults to the extension of ``path``. The bytes go to a hidden temporary file in
    the same folder which is then renamed over ``path``, so ``path`` is either absent, the old
    file, or the complete new one, even if the process is killed.
    """
    path = Path(path)
    fmt = format or format_for_path(path)
    if fmt is None:
        raise ImageError(f"{path}: unknown image extension", hint=f"use one of {', '.join(_EXT_TO_FORMAT)}")
    data = encode_image(image, fmt, quality, png_compression, record)
    try:
        atomic_write_bytes(path, data)
    except OSError as exc:  # full disk, no permission, a file where a folder should be...
        raise write_error(exc, path) from None
    return path


# -- the record of what made a file -------------------------------------------------------

#: PNG text keyword of the record (:func:`encode_image`)
RECORD_KEY = "sresr"
_XMP_NS = "https://github.com/sresr/sresr/ns/record/1.0/"


def _xmp_packet(record: str) -> bytes:
    from xml.sax.saxutils import escape

    value = escape(record, {'"': "&quot;"})
    return (
        '<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
        f'<rdf:Description rdf:about="" xmlns:sresr="{_XMP_NS}" sresr:record="{value}"/>'
        "</rdf:RDF></x:xmpmeta>"
    ).encode("utf-8")


def _from_xmp(xmp: bytes | str) -> str | None:
    import re
    from xml.sax.saxutils import unescape

    text = xmp.decode("utf-8", "replace") if isinstance(xmp, bytes) else xmp
    found = re.search(r'sresr:record="([^"]*)"', text)
    return unescape(found.group(1), {"&quot;": '"'}) if found else None


def read_record(path: str | os.PathLike[str]) -> str | None:
    """The record :func:`write_image` stored in ``path``, or None (no record, or not an image).
    Reads only the file's header (the record sits before the image data)."""
    from PIL import Image as PILImage

    try:
        with PILImage.open(path) as im:
            fmt = im.format
            if fmt == "PNG":
                value = im.info.get(RECORD_KEY)
            elif fmt in ("JPEG", "GIF"):  # GIF: an animation written by sresr.video
                value = im.info.get("comment")
            elif fmt == "WEBP":
                xmp = im.info.get("xmp")
                value = _from_xmp(xmp) if xmp else None
            elif fmt == "TIFF":
                value = im.tag_v2.get(270)  # type: ignore[attr-defined]
            else:
                value = None
    except Exception:
        return None
    if isinstance(value, bytes):
        value = value.decode("latin-1")
    return value if isinstance(value, str) else None


def _tiff_add_description(data: bytes, text: str) -> bytes:
    """A classic TIFF with ImageDescription (tag 270) set in its first IFD: the IFD is rewritten
    at the end of the file (the old one stays, unreferenced), so no image data moves."""
    order = data[:2]
    e = "<" if order == b"II" else ">" if order == b"MM" else None
    if e is None or struct.unpack_from(e + "H", data, 2)[0] != 42:
        return data  # BigTIFF or not a TIFF: left as it is
    (ifd,) = struct.unpack_from(e + "I", data, 4)
    (count,) = struct.unpack_from(e + "H", data, ifd)
    entries = [bytes(data[ifd + 2 + 12 * i : ifd + 14 + 12 * i]) for i in range(count)]
    (next_ifd,) = struct.unpack_from(e + "I", data, ifd + 2 + 12 * count)
    out = bytearray(data)
    if len(out) % 2:
        out += b"\x00"
    value = text.encode("ascii") + b"\x00"
    value_at = len(out)
    out += value + (b"\x00" if len(value) % 2 else b"")
    entries = [en for en in entries if struct.unpack_from(e + "H", en)[0] != 270]
    entries.append(struct.pack(e + "HHII", 270, 2, len(value), value_at))
    entries.sort(key=lambda en: struct.unpack_from(e + "H", en)[0])
    new_ifd = len(out)
    out += struct.pack(e + "H", len(entries)) + b"".join(entries) + struct.pack(e + "I", next_ifd)
    struct.pack_into(e + "I", out, 4, new_ifd)
    return bytes(out)
