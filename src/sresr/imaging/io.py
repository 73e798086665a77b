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
"""

from __future__ import annotations

import io
import os
import struct
import zlib
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

import numpy as np

from ..atomic import TEMP_SUFFIX, atomic_write_bytes, stale_temps
from ..errors import ImageError

__all__ = [
    "Image",
    "read_image",
    "write_image",
    "encode_image",
    "DEFAULT_MAX_PIXELS",
    "FORMATS",
    "format_for_path",
    "TEMP_SUFFIX",
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
    path = Path(path)
    try:
        data = path.read_bytes()
    except IsADirectoryError:
        raise ImageError(f"{path}: is a folder, not an image") from None
    except OSError as exc:
        raise ImageError(f"{path}: cannot read: {exc.strerror or exc}") from None
    if not data:
        raise ImageError(f"{path}: empty file (0 bytes)", hint="the file is not an image; remove it or re-export it")
    return decode_image(data, name=str(path), max_pixels=max_pixels)


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
    try:
        frames = max(1, int(getattr(pil, "n_frames", 1)))
    except Exception:  # counting frames reads the whole file; a broken tail is reported below
        frames = 1
    icc = pil.info.get("icc_profile") or None
    try:
        exif_obj = pil.getexif()
        orientation = int(exif_obj.get(0x0112, 1) or 1)
    except Exception:
        orientation = 1
    exif = pil.info.get("exif") or None
    if isinstance(exif, str):  # some plugins give text
        exif = None
    try:
        if _is_16bit_color(pil, data):
            pixels, alpha, depth = _decode_cv2(data, name)
        else:
            pixels, alpha, depth, icc = _decode_pil(pil, icc)
    except ImageError:
        raise
    except Exception as exc:
        raise ImageError(f"{name}: cannot decode: {_reason(exc)}") from None
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
    image: Image, format: str, quality: int = 95, png_compression: int = DEFAULT_PNG_COMPRESSION
) -> bytes:
    """Encode to bytes in ``format`` (png, jpg, webp, tiff). ``quality``: JPEG/WebP (1-100);
    ``png_compression``: PNG zlib level (0 = none, fastest ... 9 = smallest, slowest)."""
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
        return _encode_16(pixels, alpha, fmt, image.icc_profile, image.exif, int(png_compression))
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
    out = io.BytesIO()
    pil.save(out, format={"jpg": "JPEG", "png": "PNG", "webp": "WEBP", "tiff": "TIFF"}[fmt], **kwargs)
    return out.getvalue()


def _icc_is_gray(icc: bytes) -> bool:
    return len(icc) >= 20 and icc[16:20] == b"GRAY"


def _encode_16(
    pixels: np.ndarray, alpha: np.ndarray | None, fmt: str, icc: bytes | None, exif: bytes | None,
    png_compression: int = DEFAULT_PNG_COMPRESSION,
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
        data = _png_add_chunks(data, icc, exif)
    return data


def _png_chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload) & 0xFFFFFFFF)


def _png_add_chunks(png: bytes, icc: bytes | None, exif: bytes | None) -> bytes:
    """Insert iCCP / eXIf chunks after IHDR (OpenCV does not write them)."""
    if not icc and not exif:
        return png
    ihdr_end = 8 + 8 + struct.unpack(">I", png[8:12])[0] + 4
    extra = b""
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
    data = encode_image(image, fmt, quality, png_compression)
    try:
        atomic_write_bytes(path, data)
    except OSError as exc:  # full disk, no permission, a file where a folder should be...
        raise ImageError(f"{path}: cannot write: {exc.strerror or exc}",
                         hint="check the output folder (free space, permissions)") from None
    return path


def remove_stale_temps(path: Path) -> None:
    """Delete temporary files a killed run left for ``path`` (only that output's own ones)."""
    try:
        for p in stale_temps(path):
            try:
                p.unlink()
            except OSError:
                pass
    except OSError:
        pass
