"""Weights: the cache of safetensors files sresr loads, and how they get there.

Sources, all ending as a ``.safetensors`` file that this module reads plainly:

- ``MODEL.TAG`` variants declared in a :class:`~sresr.spec.ModelSpec`: bundled (``file``, inside
  the package) or published (``url`` + ``sha256``: downloaded once, verified, converted and kept
  in the cache as ``weights/pulled/MODEL.TAG.safetensors``).
- ``--weights PATH``: ``.safetensors`` as is; ``.pth``/``.pt``/``.ckpt``/``.bin`` read only with
  ``torch.load(map_location="cpu", weights_only=True)`` and converted once into
  ``weights/converted/<sha256 of the file>.safetensors`` (so the second load is a plain
  safetensors read).
- ``--weights URL`` (http/https): downloaded into ``weights/downloads/`` then converted as above.
- names imported with ``sresr weights import FILE --name NAME``
  (``weights/imported/NAME.safetensors``), usable as ``--model NAME`` or ``--weights NAME``.

Files written by sresr carry metadata (``sresr.model``, ``sresr.scale``, ``sresr.kwargs`` as
JSON, ``sresr.colorspace``, ``sresr.source``, ``sresr.source_sha256``), so the file alone
rebuilds the right network, and ``sresr.digest``: a sha256 over the tensors and the other
metadata (:func:`content_digest`), checked at every load. A cached file that fails it is damaged:
a pulled variant or a conversion is rebuilt from its source (downloaded again, or converted again
when the original file is given again); any other file fails with an error that names its id.
Downloads whose sha256 is unknown (``--weights URL``) are kept only once they load as the
weights file they claim to be; a cached one that no longer loads is fetched again, once.

A foreign checkpoint's architecture is found by the model's published-layout ``loader``
(``--model``), or by trying every registered model's loader.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import struct
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Mapping

from . import cache
from .atomic import atomic_write_bytes, make_temp
from .download import download, hash_prefix, sha256_file
from .errors import (
    DamagedWeightsError,
    LayoutError,
    ScaleUnknownError,
    SresrError,
    UsageError,
    WeightsError,
    shown,
)
from .registry import entries, get_spec, parse_ref, resolve_name
from .spec import Colorspace, ModelSpec, WeightsSpec, resolve

CHECKPOINT_SUFFIXES = (".pth", ".pt", ".ckpt", ".bin")
META_PREFIX = "sresr."
FORMAT_VERSION = "1"
_IMPORT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_\-]*")  # fullmatch only (``$`` admits a final newline)
DIGEST_KEY = META_PREFIX + "digest"


@dataclass(frozen=True)
class WeightsFile:
    """A ``.safetensors`` file that sresr can load, and what it holds."""

    path: Path
    model: str
    scale: int
    kwargs: Mapping[str, Any]
    colorspace: Colorspace | None
    id: str  # how the user named it
    source: str = ""
    source_sha256: str = ""


@dataclass(frozen=True)
class CachedEntry:
    """One item of ``sresr weights list``."""

    id: str
    kind: str  # "bundled", "pulled", "imported", "converted" or "download"
    path: Path
    size: int
    model: str
    scale: int | None
    source: str
    sha256: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": self.kind,
            "model": self.model,
            "scale": self.scale,
            "size": self.size,
            "source": self.source,
            "sha256": self.sha256,
            "path": str(self.path),
        }


# -- cache layout -------------------------------------------------------------------------


def pulled_dir() -> Path:
    return cache.weights_dir() / "pulled"


def imported_dir() -> Path:
    return cache.weights_dir() / "imported"


def converted_dir() -> Path:
    return cache.weights_dir() / "converted"


def downloads_dir() -> Path:
    return cache.weights_dir() / "downloads"


def find_imported(name: str) -> Path | None:
    """The file of a name made by ``sresr weights import``, or None."""
    if not _IMPORT_NAME.fullmatch(name):
        return None
    path = imported_dir() / f"{name}.safetensors"
    return path if path.is_file() else None


def variant_path(spec: ModelSpec, variant: WeightsSpec) -> Path:
    """Where a variant lives: inside the package (bundled) or in the cache (pulled)."""
    if variant.file:
        return _bundled_path(variant)
    return pulled_dir() / f"{spec.name}.{variant.tag}.safetensors"


def variant_status(spec: ModelSpec, variant: WeightsSpec) -> str:
    """``bundled`` (inside the package), ``cached`` (pulled before) or ``download`` (fetched on first use)."""
    if variant.file:
        return "bundled"
    return "cached" if variant_path(spec, variant).is_file() else "download"


def declared_sha256(variant: WeightsSpec) -> str:
    """How a variant's file is verified, in words: its sha256, or the prefix its name carries."""
    if variant.file or variant.sha256:
        return variant.sha256 or "bundled"
    if hash_prefix(variant.url or "") is None:
        return "none published: the first download is trusted (it must load as this network) and its sha256 pinned"
    return f"{hash_prefix(variant.url or '')}... (from the file name; the full sha256 is pinned on first download)"


# -- metadata -----------------------------------------------------------------------------


def read_metadata(path: str | Path) -> dict[str, str]:
    """The ``__metadata__`` of a safetensors file (read from its header, no torch)."""
    path = Path(path)
    try:
        with open(path, "rb") as f:
            head = f.read(8)
            if len(head) != 8:
                raise ValueError("file too short")
            (n,) = struct.unpack("<Q", head)
            if n > 100_000_000:
                raise ValueError("header too large")
            header = json.loads(f.read(n))
    except OSError as exc:
        raise WeightsError(f"cannot read {path}: {exc.strerror or exc}") from None
    except (ValueError, struct.error) as exc:
        raise WeightsError(f"{path} is not a valid safetensors file ({exc})") from None
    meta = header.get("__metadata__") or {}
    return {str(k): str(v) for k, v in meta.items()}


def _weights_file(path: Path, ident: str) -> WeightsFile | None:
    """The WeightsFile of a safetensors written by sresr, or None for a foreign one."""
    meta = read_metadata(path)
    model = meta.get(META_PREFIX + "model")
    if not model:
        return None
    try:
        scale = int(meta.get(META_PREFIX + "scale", ""))
        kwargs = json.loads(meta.get(META_PREFIX + "kwargs", "{}") or "{}")
    except ValueError:
        raise WeightsError(f"{path} has broken sresr metadata (scale/kwargs)") from None
    cs = meta.get(META_PREFIX + "colorspace") or None
    return WeightsFile(
        path=path,
        model=model,
        scale=scale,
        kwargs=kwargs,
        colorspace=cs if cs in ("rgb", "y") else None,  # type: ignore[arg-type]
        id=ident,
        source=meta.get(META_PREFIX + "source", ""),
        source_sha256=meta.get(META_PREFIX + "source_sha256", ""),
    )


# -- conversion ---------------------------------------------------------------------------


def convert_checkpoint(
    path: str | Path,
    model: str | None = None,
    scale: int | None = None,
    source: str | None = None,
    kwargs: Mapping[str, Any] | None = None,
) -> WeightsFile:
    """Turn a checkpoint (``.pth``/``.pt``/``.ckpt``/``.bin`` or a foreign ``.safetensors``) into
    a cached sresr ``.safetensors``, keyed by the file's sha256; converted at most once.

    ``model`` names the architecture (its layout loader reads the tensors); without it every
    registered model's loader is tried. Nothing in the file is executed.
    """
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"weights file {path} does not exist" if not path.exists() else f"{path} is not a file")
    digest = sha256_file(path)
    out = converted_dir() / f"{digest}.safetensors"
    wanted = get_spec(model).name if model else None
    if out.is_file():
        try:
            check_weights_file(out, f"the conversion of {path}")
            cached = _weights_file(out, str(path))
        except WeightsError:
            out.unlink(missing_ok=True)  # damaged: the source is here, so convert it again
            cached = None
        if cached is not None and (wanted is None or cached.model == wanted) and (
            scale is None or cached.scale == scale
        ):
            return cached
    from .models._layouts import read_checkpoint, unwrap_state_dict

    state = unwrap_state_dict(read_checkpoint(path))
    what = str(path)
    try:
        spec, module, found_scale, found_kwargs = _build_from_state(state, wanted, scale, kwargs or {}, what)
    except ScaleUnknownError as exc:
        named = scale_from_name(source or path.name)
        if named is None:
            raise ScaleUnknownError(f"{what}: {exc.message}", hint="pass --scale S; the file name does not say "
                                    "it either (like NAME_x3.pth)") from None
        spec, module, found_scale, found_kwargs = _build_from_state(state, wanted, named, kwargs or {}, what)
    _save(
        module,
        out,
        spec,
        found_scale,
        found_kwargs,
        colorspace=spec.colorspace,
        source=source or str(path.resolve()),
        source_sha256=digest,
    )
    result = _weights_file(out, str(path))
    assert result is not None
    return result


def scale_from_name(name: str) -> int | None:
    """The scale a weights file's name states (``fsrcnn_x3.pth``, ``FSRCNN-x4``, ``x2_model``,
    ``edsr_3x.pt``), or None when it states none or several."""
    stem = str(name).split("?", 1)[0].rstrip("/").rsplit("/", 1)[-1].lower()
    words = re.finditer(r"(?<![a-z0-9])(?:x(\d{1,2})|(\d{1,2})x)(?![a-z0-9])", stem)
    found = {int(m.group(1) or m.group(2)) for m in words}
    return found.pop() if len(found) == 1 else None


def detect(state_dict: Mapping[str, Any]) -> tuple[ModelSpec, Any, int, dict[str, Any]]:
    """Find the registered architecture whose published-layout loader accepts ``state_dict``."""
    return _build_from_state(dict(state_dict), None, None, {}, "the state dict")


def _build_from_state(
    state: dict[str, Any], model: str | None, scale: int | None, kwargs: Mapping[str, Any], what: str
) -> tuple[ModelSpec, Any, int, dict[str, Any]]:
    if model is not None:
        spec = get_spec(model)
        return (spec, *_load_with_spec(spec, state, scale, kwargs, what))
    from .models._layouts import detecting

    failures: list[str] = []
    matches: list[tuple[ModelSpec, Any, int, dict[str, Any]]] = []
    unknown_scale: ScaleUnknownError | None = None
    for entry in entries().values():
        spec = entry.spec
        if spec is None or spec.loader is None:
            continue
        try:
            with detecting():
                matches.append((spec, *_load_with_spec(spec, state, scale, kwargs, what, loader_only=True)))
        except ScaleUnknownError as exc:  # this layout, but the scale must be given
            unknown_scale = unknown_scale or exc
        except Exception as exc:  # a loader that does not recognise the layout
            failures.append(f"{spec.name}: {_short(exc)}")
    if not matches and unknown_scale is not None:
        raise unknown_scale
    if matches:
        # Several models may accept the same tensors (srgan's generator is an srresnet): prefer the
        # one whose own code defines the network class, then registry order.
        def owns(match: tuple[ModelSpec, Any, int, dict[str, Any]]) -> bool:
            spec, module = match[0], match[1]
            home = (spec.factory if isinstance(spec.factory, str) else spec.factory.__module__).split(":")[0]
            return type(module).__module__ == home
        return next((m for m in matches if owns(m)), matches[0])
    if scale is not None:
        # maybe a known layout for another scale: say so rather than "unknown architecture"
        for entry in entries().values():
            spec = entry.spec
            if spec is None or spec.loader is None:
                continue
            try:
                with detecting():
                    _, found, _ = _call_loader(spec, state, None, {})
            except Exception:
                continue
            raise WeightsError(f"{what} holds a x{found} {spec.name}, not x{scale}", hint=f"use --scale {found}")
    keys = ", ".join(list(state)[:4])
    raise LayoutError(
        f"cannot tell which architecture {what} is: no registered model's loader recognises its keys "
        f"({keys}{', ...' if len(state) > 4 else ''})",
        hint="name it with --model NAME (see 'sresr models')"
        + (f"; loaders tried: {'; '.join(failures)[:400]}" if failures else "; no model with a layout loader is installed"),
    )


def _short(exc: BaseException) -> str:
    text = exc.message if isinstance(exc, SresrError) else str(exc)
    text = text.splitlines()[0] if text else type(exc).__name__
    return text[:160]


def _call_loader(
    spec: ModelSpec, state: dict[str, Any], scale: int | None, kwargs: Mapping[str, Any]
) -> tuple[Any, int, dict[str, Any]]:
    """Call ``spec.loader``: ``loader(sd)``, or ``loader(sd, scale=..., **overrides)`` when it takes
    them (the scale matters where shapes cannot tell it, e.g. FSRCNN's transposed-conv stride)."""
    import inspect

    fn = resolve(spec.loader)
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        params = []  # type: ignore[assignment]
    names = {p.name for p in params}
    var_kw = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params)
    extra: dict[str, Any] = {}
    if scale is not None and ("scale" in names or var_kw):
        extra["scale"] = scale
    if var_kw:
        extra.update(kwargs)
    module, found_scale, found_kwargs = fn(state, **extra)
    return module, int(found_scale), dict(found_kwargs or {})


def _load_with_spec(
    spec: ModelSpec,
    state: dict[str, Any],
    scale: int | None,
    kwargs: Mapping[str, Any],
    what: str,
    loader_only: bool = False,
) -> tuple[Any, int, dict[str, Any]]:
    """(module, scale, kwargs) from ``state`` for ``spec``: its layout loader, else the factory."""
    loader_error: BaseException | None = None
    if spec.loader is not None:
        try:
            module, found_scale, found_kwargs = _call_loader(spec, state, scale, kwargs)
        except ScaleUnknownError:
            raise
        except Exception as exc:  # not this architecture's layout (or not a layout it knows)
            loader_error = exc
        else:
            if scale is not None and found_scale != scale:
                if spec.input != "upsampled":
                    raise WeightsError(f"{what} holds a x{found_scale} {spec.name}, not x{scale}",
                                       hint=f"use --scale {found_scale}")
                found_scale = scale  # pre-upsampling networks work at any scale
            return module, found_scale, found_kwargs
        if loader_only:
            raise loader_error
    s = scale if scale is not None else spec.default_scale()
    try:
        module = spec.build(s, **kwargs)
        module.load_state_dict(state, strict=True)
    except Exception as exc:
        if loader_error is None and isinstance(exc, SresrError):
            raise
        cause = loader_error if loader_error is not None else exc
        cls = type(cause) if isinstance(cause, WeightsError) else LayoutError
        hint = cause.hint if isinstance(cause, SresrError) and cause.hint else (
            "check --model and --scale, or let sresr detect the architecture by leaving out --model"
        )
        where = f"model '{spec.name}'" + (f" (x{scale})" if scale is not None else "")
        raise cls(f"{what} does not match {where}: {_short(cause)}", hint=hint) from None
    return module, s, dict(kwargs)


def _save(
    module: Any,
    out: Path,
    spec: ModelSpec,
    scale: int,
    kwargs: Mapping[str, Any],
    colorspace: str,
    source: str,
    source_sha256: str,
) -> None:
    """Write ``module``'s state dict with sresr metadata, atomically (a cache file)."""
    meta = {META_PREFIX + "source": source, META_PREFIX + "source_sha256": source_sha256}
    with cache.writing(f"weights {out.name}", out.parent, WeightsError):
        write_weights(module.state_dict(), out, spec.name, scale, kwargs, colorspace, meta)


def write_weights(state: Mapping[str, Any], out: Path, model: str, scale: int, kwargs: Mapping[str, Any],
                  colorspace: str, extra: Mapping[str, str] | None = None) -> Path:
    """The one writer of sresr weights files: ``state`` as safetensors with the metadata that
    rebuilds the network (``sresr.model``, ``sresr.scale``, ``sresr.kwargs``, ``sresr.colorspace``),
    any ``extra`` entries, and ``sresr.digest`` (:func:`content_digest`), written atomically by
    plain file I/O (a full disk is an OSError). Used for the cache and for training runs' weights."""
    from safetensors.torch import save

    tensors = {k: v.detach().to("cpu").contiguous().clone() for k, v in state.items()}
    meta = {
        "format": "pt",
        META_PREFIX + "format": FORMAT_VERSION,
        META_PREFIX + "model": model,
        META_PREFIX + "scale": str(int(scale)),
        META_PREFIX + "kwargs": json.dumps(dict(kwargs), sort_keys=True, default=str),
        META_PREFIX + "colorspace": colorspace,
        **dict(extra or {}),
    }
    meta[DIGEST_KEY] = content_digest(tensors, meta)
    return atomic_write_bytes(Path(out), save(tensors, metadata=meta))


def content_digest(state: Mapping[str, Any], metadata: Mapping[str, str]) -> str:
    """sha256 over every tensor (name, dtype, shape, bytes, in name order) and the metadata other
    than the digest itself: what :func:`check_weights_file` recomputes to find damage."""
    import torch

    h = hashlib.sha256()
    for key in sorted(metadata):
        if key != DIGEST_KEY:
            h.update(f"{key}={metadata[key]}\n".encode())
    for name in sorted(state):
        t = state[name].detach().to("cpu").contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}\n".encode())
        if t.numel():
            h.update(t.reshape(-1).view(torch.uint8).numpy())  # the buffer itself: no copy
    return h.hexdigest()


def _read_checked(path: Path, ident: str) -> tuple[dict[str, Any], str]:
    """The tensors of a safetensors file and the file's sha256, after checking the recorded digest
    (files without one, made by older sresr or other tools, are read as they are)."""
    from safetensors.torch import load

    try:
        data = path.read_bytes()
    except OSError as exc:
        raise WeightsError(f"cannot read weights {ident} ({path}): {exc.strerror or exc}") from None
    try:
        state = load(data)
        n = int.from_bytes(data[:8], "little")
        meta = json.loads(data[8 : 8 + n]).get("__metadata__") or {}
    except Exception as exc:
        raise DamagedWeightsError(f"weights {ident} ({path}) are not a readable safetensors file: "
                                  f"{' '.join(str(exc).split())[:200]}", hint=_damage_hint(path, ident)) from None
    recorded = meta.get(DIGEST_KEY)
    if recorded and content_digest(state, meta) != recorded:
        raise DamagedWeightsError(f"weights {ident} ({path}) are damaged: their content no longer matches the "
                                  "digest recorded when they were written", hint=_damage_hint(path, ident))
    return state, hashlib.sha256(data).hexdigest()


def check_weights_file(path: Path, ident: str) -> None:
    """Raise :class:`DamagedWeightsError` when ``path`` is unreadable or fails its recorded digest."""
    _read_checked(path, ident)


def _damage_hint(path: Path, ident: str) -> str:
    folder = path.parent
    if folder == imported_dir():
        return f"remove it with 'sresr weights rm {path.stem}' and import the original file again"
    if folder == pulled_dir():
        return f"remove it with 'sresr weights rm {path.stem}'; it is downloaded again on next use"
    if folder == converted_dir():
        return f"pass the original file again (it is converted anew), or remove it: 'sresr weights rm {path.stem[:16]}'"
    if cache.weights_dir() not in path.parents:
        return "the file is truncated or damaged; fetch or export it again"
    return "remove it from the cache ('sresr weights list' shows its id) and fetch it again"


# -- resolving names ------------------------------------------------------------------------


def is_url(text: str) -> bool:
    return text.lower().startswith(("http://", "https://"))


def pull(ref: str, scale: int | None = None, progress: bool = True) -> WeightsFile:
    """Make a ``MODEL.TAG`` (or ``MODEL``: its default variant) available locally and return it.

    Published variants are downloaded into the cache, verified against the declared sha256,
    converted to ``.safetensors`` with metadata, and the raw download is removed.
    """
    spec, variant = resolve_name(ref, scale)
    if variant is None:
        raise WeightsError(
            f"model '{spec.name}' declares no weights"
            + (f" for x{scale}" if scale else ""),
            hint=f"see 'sresr models info {spec.name}', or pass --weights FILE",
        )
    ident = f"{spec.name}.{variant.tag}"
    colorspace = spec.colorspace_for(variant)
    if variant.file:
        path = _bundled_path(variant)
        if not path.is_file():
            raise WeightsError(f"bundled weights {ident} are missing from the installation ({path})",
                               hint="reinstall sresr")
        meta = _weights_file(path, ident)
        if meta is not None:
            return meta
        return WeightsFile(path, spec.name, variant.scale, dict(variant.kwargs), colorspace, ident, "bundled")
    out = variant_path(spec, variant)
    if out.is_file():
        try:
            check_weights_file(out, ident)
            cached = _weights_file(out, ident)
        except WeightsError:
            out.unlink(missing_ok=True)  # damaged: fetched and converted again from its URL below
            cached = None
        if cached is not None and _pinned_ok(cached.source_sha256, variant):
            return cached
    assert variant.url is not None
    raw_name = variant.url.rstrip("/").rsplit("/", 1)[-1] or "weights"
    raw = downloads_dir() / ident / raw_name
    prefix = None if variant.sha256 else hash_prefix(variant.url)

    def check_prefix(path: Path) -> None:  # only the first hex digits are published: check them
        got = sha256_file(path)
        if prefix is not None and not got.startswith(prefix):
            raise WeightsError(f"its sha256 {got} does not start with {prefix}, as its name promises")
        _check_download(path)

    download(
        variant.url,
        raw,
        sha256=variant.sha256,
        validate=check_prefix if prefix else None,
        progress=progress,
        what="weights",
        offline_hint=(
            f"download {variant.url} elsewhere, then run 'sresr weights import FILE --model {spec.name} "
            f"--name NAME' and use --model NAME (or unset SRESR_OFFLINE)"
        ),
    )
    from .models._layouts import read_checkpoint, unwrap_state_dict

    state = unwrap_state_dict(read_checkpoint(raw))
    module, found_scale, found_kwargs = _load_with_spec(
        spec, state, variant.scale, variant.kwargs, f"{ident} ({variant.url})"
    )
    # the full sha256 of a prefix-named file is pinned here, on first download
    _save(module, out, spec, found_scale, found_kwargs, colorspace, variant.url, variant.sha256 or sha256_file(raw))
    shutil.rmtree(raw.parent, ignore_errors=True)
    result = _weights_file(out, ident)
    assert result is not None
    return result


def _pinned_ok(source_sha256: str, variant: WeightsSpec) -> bool:
    """Whether a cached conversion came from the file ``variant`` declares: its sha256, or for a
    prefix-named file (:func:`sresr.download.hash_prefix`) one that starts with the prefix, or for
    a variant with no published hash (``trust_first_download``) the file pinned when first fetched."""
    if variant.sha256:
        return source_sha256 == variant.sha256
    if variant.trust_first_download and hash_prefix(variant.url or "") is None:
        return len(source_sha256) == 64
    prefix = hash_prefix(variant.url or "")
    return bool(prefix) and len(source_sha256) == 64 and source_sha256.startswith(prefix)


def resolve_weights(ref: str | Path, model: str | None = None, scale: int | None = None) -> WeightsFile:
    """What ``--weights REF`` names, as a loadable sresr safetensors (converting if needed).

    REF: an existing file (``.safetensors``, ``.pth``/``.pt``/``.ckpt``/``.bin``), an http(s) URL,
    a name made by ``sresr weights import``, or a registered ``MODEL.TAG``.
    """
    text = str(ref)
    path = Path(text).expanduser()
    if is_url(text):
        name = text.split("?", 1)[0].rstrip("/").rsplit("/", 1)[-1] or "weights"
        raw = downloads_dir() / f"{hashlib.sha256(text.encode()).hexdigest()[:16]}-{name}"
        # no sha256 is known for a URL: a body is kept only once it loads as weights, and a cached
        # one that no longer does (cut short, an error page, damaged since) is fetched again, once
        download(text, raw, progress=True, what="weights", validate=_check_download)
        return _from_file(raw, text, model, scale)
    # a name made by `sresr weights import` first (sresr.resolve's rules table): a bare name, so
    # ./NAME is still the file or folder of that name in the working directory
    imported = find_imported(text) if not isinstance(ref, Path) else None
    if imported is not None:
        wf = _weights_file(imported, text)
        if wf is not None:
            return wf
    if path.exists():
        return _from_file(path, text, model, scale)
    if not isinstance(ref, Path):
        model_name, tag = parse_ref(text)  # a published name (RealESRGAN_x4plus) is its MODEL.TAG
        if tag and model_name in entries() and not text.lower().endswith(CHECKPOINT_SUFFIXES + (".safetensors",)):
            return pull(f"{model_name}.{tag}", scale)
    raise WeightsError(
        f"weights '{text}' not found: no such file, URL, imported name or MODEL.TAG",
        hint="pass a .safetensors/.pth file, an http(s) URL, a name from 'sresr weights list', "
        "or a variant from 'sresr models info MODEL'",
    )


def _from_file(path: Path, ident: str, model: str | None, scale: int | None) -> WeightsFile:
    if path.is_dir():
        raise WeightsError(f"weights {path} is a directory, not a file")
    if path.suffix.lower() == ".safetensors" or _looks_like_safetensors(path):
        own = _weights_file(path, ident)
        if own is not None:
            return own
    converted = convert_checkpoint(path, model=model, scale=scale, source=ident if is_url(ident) else None)
    return replace(converted, id=ident)  # named as the user named it (a URL, not its download path)


def _looks_like_safetensors(path: Path) -> bool:
    from .models._layouts import looks_like_safetensors

    try:
        with open(path, "rb") as f:
            return looks_like_safetensors(f.read(9))
    except OSError:
        return False


def _check_download(path: Path) -> None:
    """Raise :class:`WeightsError` unless ``path`` reads as the weights file it claims to be (a
    complete safetensors file, or a checkpoint ``torch.load(weights_only=True)`` reads whole)."""
    from .models._layouts import read_checkpoint

    read_checkpoint(path)


# -- import, list, remove -----------------------------------------------------------------


def import_weights(
    file: str | Path, model: str | None = None, name: str | None = None, scale: int | None = None
) -> CachedEntry:
    """Convert a checkpoint (file or URL) and keep it as ``imported/NAME.safetensors``.

    The name (default: the file's stem) then works as ``--model NAME`` and ``--weights NAME``.
    ``scale`` is needed only where the tensors cannot tell it (FSRCNN's transposed conv).
    """
    text = str(file)
    if name is None:
        stem = text.split("?", 1)[0].rstrip("/").rsplit("/", 1)[-1]
        stem = stem.rsplit(".", 1)[0] if "." in stem else stem
        name = re.sub(r"[^A-Za-z0-9_\-]+", "-", stem).strip("-_") or "weights"
    _check_import_name(name)
    if not is_url(text) and not Path(text).expanduser().exists():
        raise WeightsError(f"weights file {text} does not exist")
    wf = resolve_weights(Path(text).expanduser() if not is_url(text) else text, model=model, scale=scale)
    if scale is not None and wf.scale != scale and get_spec(wf.model).input != "upsampled":
        raise WeightsError(f"{text} holds a x{wf.scale} {wf.model}, not x{scale}", hint=f"use --scale {wf.scale}")
    return _keep_imported(name, wf.path, wf.source_sha256, text)


def _check_import_name(name: str) -> None:
    if not _IMPORT_NAME.fullmatch(name) or len(name) > 100:
        raise UsageError(f"invalid name {shown(name)}: use up to 100 letters, digits, '-' and '_' (no dots)")
    if name in entries():
        raise UsageError(f"'{name}' is already a registered model name", hint="choose another --name")


def _keep_imported(name: str, source: Path, source_sha256: str, text: str) -> CachedEntry:
    """Copy the sresr weights file ``source`` to ``imported/NAME.safetensors``, never replacing
    another file of that name."""
    dest = imported_dir() / f"{name}.safetensors"
    # create-if-absent in one step: a complete temp file hard-linked to the name, which fails when
    # the name exists, so of two concurrent imports under one name exactly one wins and the other
    # is told which (an exists-check before writing would let the second silently replace the first)
    with cache.writing(f"imported weights '{name}'", dest.parent, WeightsError):
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = make_temp(dest)
    try:
        with cache.writing(f"imported weights '{name}'", dest.parent, WeightsError):
            shutil.copyfile(source, tmp)
        try:
            _create_from(tmp, dest)
        except FileExistsError:
            old = _weights_file(dest, name) if dest.is_file() else None
            if old is None or old.source_sha256 != source_sha256:
                raise UsageError(
                    f"an imported weights file named '{name}' already exists (from "
                    f"{old.source if old else dest}); {text} was not imported",
                    hint=f"pick another --name, or remove it first with 'sresr weights rm {name}'",
                ) from None
    finally:
        tmp.unlink(missing_ok=True)
    entry = _entry(dest, "imported", name)
    return entry


def _interpolate(sa: Mapping[str, Any], sb: Mapping[str, Any], alpha: float, what: str) -> dict[str, Any]:
    """``(1 - alpha) * A + alpha * B`` tensor by tensor, in float64, stored in A's dtype."""
    odd = sorted(k for k in set(sa) | set(sb) if k not in sa or k not in sb or sa[k].shape != sb[k].shape)
    if odd:
        raise WeightsError(f"cannot interpolate {what}: tensors differ ({', '.join(odd[:3])})")
    return {k: ((1 - alpha) * sa[k].double() + alpha * sb[k].double()).to(sa[k].dtype)
            if sa[k].is_floating_point() else sa[k] for k in sa}




def denoise_mix(a: WeightsFile, b: WeightsFile, strength: float) -> tuple[dict[str, Any], str]:
    """Real-ESRGAN's denoise strength: ``strength * A + (1 - strength) * B`` (A a variant, B its
    ``denoise_companion``), and a sha256 naming the mix (of both sources and the strength)."""
    if isinstance(strength, bool) or not isinstance(strength, (int, float)) or not 0.0 <= float(strength) <= 1.0:
        raise UsageError(f"--denoise-strength must be between 0 and 1, got {strength!r}",
                         hint="1 keeps the model as it is, 0 removes the most noise")
    # each named by its source's sha256, or where it records none (a file written by hand) its own
    # bytes' (never "", which would make two mixes look alike)
    sa, da = _read_checked(a.path, a.id)
    sb, db = _read_checked(b.path, b.id)
    mixed = _interpolate(sa, sb, 1.0 - float(strength), f"{a.id} with {b.id}")
    digest = hashlib.sha256(f"{a.source_sha256 or da}|{b.source_sha256 or db}|denoise={float(strength)!r}".encode()).hexdigest()
    return mixed, digest


def interpolate_weights(a: str, b: str, alpha: float, name: str) -> CachedEntry:
    """Network interpolation (ESRGAN, Wang et al. 2018; Real-ESRGAN's denoise strength): every
    tensor ``(1 - alpha) * A + alpha * B``, computed in float64 and stored in A's dtype, kept as
    ``imported/NAME.safetensors`` (then ``--model NAME`` / ``--weights NAME``). A and B are any
    ``--weights`` references of one architecture, scale and configuration."""
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not 0.0 <= float(alpha) <= 1.0:
        raise UsageError(f"--alpha must be between 0 and 1, got {alpha!r}", hint="0 gives A, 1 gives B")
    _check_import_name(name)
    wa, wb = resolve_weights(a), resolve_weights(b)
    what_a, what_b = (wa.model, wa.scale, dict(wa.kwargs)), (wb.model, wb.scale, dict(wb.kwargs))
    if what_a != what_b:
        raise WeightsError(f"cannot interpolate {wa.id} ({wa.model} x{wa.scale} {dict(wa.kwargs)}) with {wb.id} "
                           f"({wb.model} x{wb.scale} {dict(wb.kwargs)}): they are different networks",
                           hint="interpolate two weights of one architecture, scale and configuration")
    sa, da = _read_checked(wa.path, wa.id)
    sb, db = _read_checked(wb.path, wb.id)
    mixed = _interpolate(sa, sb, float(alpha), f"{wa.id} with {wb.id}")
    source = f"interpolate({wa.id}, {wb.id}, alpha={float(alpha):g})"
    digest = hashlib.sha256(f"{wa.source_sha256 or da}|{wb.source_sha256 or db}|{float(alpha)!r}".encode()).hexdigest()
    what = f"interpolated weights '{name}'"
    with cache.writing(what, cache.weights_dir(), WeightsError):
        cache.weights_dir().mkdir(parents=True, exist_ok=True)
        tmpdir = tempfile.TemporaryDirectory(dir=cache.weights_dir())
    with tmpdir as tmp:
        out = Path(tmp) / f"{name}.safetensors"
        with cache.writing(what, cache.weights_dir(), WeightsError):  # a full disk: one line, no traceback
            write_weights(mixed, out, wa.model, wa.scale, wa.kwargs, wa.colorspace,
                          {META_PREFIX + "source": source, META_PREFIX + "source_sha256": digest})
        return _keep_imported(name, out, digest, source)


def _create_from(tmp: Path, dest: Path) -> None:
    """Give the complete file ``tmp`` the name ``dest``, failing with FileExistsError when ``dest``
    exists: a hard link, or where links are not supported, an exclusive create then a rename."""
    try:
        os.link(tmp, dest)
        return
    except FileExistsError:
        raise
    except OSError:
        pass  # no hard links here (some network and FAT file systems)
    try:
        os.close(os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644))
        os.replace(tmp, dest)
    except FileExistsError:
        raise
    except OSError as exc:
        raise WeightsError(f"cannot write weights {dest.name} to {dest.parent}: {exc.strerror or exc}",
                           hint=cache.folder_hint()) from None


def _entry(path: Path, kind: str, ident: str) -> CachedEntry:
    model, scale, source, sha = "", None, "", ""
    if path.suffix == ".safetensors":
        try:
            meta = read_metadata(path)
        except WeightsError:
            meta = {}
        model = meta.get(META_PREFIX + "model", "")
        scale = int(meta[META_PREFIX + "scale"]) if meta.get(META_PREFIX + "scale", "").isdigit() else None
        source = meta.get(META_PREFIX + "source", "")
        sha = meta.get(META_PREFIX + "source_sha256", "")
    if not sha:
        sha = sha256_file(path)
    return CachedEntry(ident, kind, path, path.stat().st_size, model, scale, source, sha)


def list_cached(include_bundled: bool = True) -> list[CachedEntry]:
    """Everything in the weights cache (and, by default, the bundled variants)."""
    out: list[CachedEntry] = []
    if include_bundled:
        for entry in entries().values():
            spec = entry.spec
            if spec is None:
                continue
            for w in spec.weights:
                if w.file:
                    p = _bundled_path(w)
                    if p.is_file():
                        e = _entry(p, "bundled", f"{spec.name}.{w.tag}")
                        out.append(CachedEntry(e.id, e.kind, e.path, e.size, e.model or spec.name,
                                               e.scale or w.scale, e.source or "bundled", e.sha256))
    for kind, folder in (("pulled", pulled_dir()), ("imported", imported_dir()), ("converted", converted_dir())):
        if folder.is_dir():
            for p in sorted(folder.glob("*.safetensors")):
                ident = p.stem if kind != "converted" else p.stem[:16]
                out.append(_entry(p, kind, ident))
    if downloads_dir().is_dir():
        for p in sorted(downloads_dir().rglob("*")):
            if p.is_file() and not p.name.startswith(".") and not p.name.endswith(".lock"):
                out.append(_entry(p, "download", str(p.relative_to(downloads_dir()))))
    return out


def find_cached(ident: str) -> CachedEntry:
    """The cache entry with this id (``MODEL.TAG``, an imported name, a converted hash prefix)."""
    matches = [e for e in list_cached() if e.id == ident]
    if not matches and re.fullmatch(r"[0-9a-f]{6,64}", ident):
        matches = [e for e in list_cached(include_bundled=False) if e.kind == "converted" and e.path.stem.startswith(ident)]
    if not matches:
        raise WeightsError(f"no cached weights with id '{ident}'", hint="see 'sresr weights list'")
    if len(matches) > 1:
        raise UsageError(f"'{ident}' matches {len(matches)} entries", hint="give more of the hash")
    return matches[0]


def remove(ident: str) -> list[Path]:
    """Delete a cached entry; bundled weights cannot be removed. Returns the removed paths."""
    entry = find_cached(ident)
    if entry.kind == "bundled":
        raise UsageError(f"{ident} is bundled with sresr and cannot be removed")
    entry.path.unlink(missing_ok=True)
    removed = [entry.path]
    if entry.kind == "download" and entry.path.parent != downloads_dir():
        try:
            entry.path.parent.rmdir()
        except OSError:
            pass
    return removed


# -- plain loading --------------------------------------------------------------------------


def _bundled_path(variant: WeightsSpec) -> Path:
    from importlib import resources

    assert variant.file is not None
    return Path(str(resources.files(variant.package).joinpath(variant.file)))


def load_safetensors(module: Any, path: Path, ident: str | None = None) -> str:
    """Load ``path`` into ``module`` (strictly), after its digest check; return the file's sha256."""
    state, digest = _read_checked(path, ident or str(path))
    try:
        module.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        first = str(exc).splitlines()
        raise LayoutError(
            f"weights {ident or path} do not fit the network: {' '.join(first[:3])[:300]}",
            hint="check --model/--scale, or re-import the file",
        ) from None
    return digest


def __getattr__(name: str) -> Any:
    """``LoadedModel``, ``load_model`` and ``create_model`` moved to :mod:`sresr.resolve` (the one
    resolver); plugins written against ``sresr.weights`` keep working."""
    if name in ("LoadedModel", "load_model", "create_model"):
        from . import resolve as _resolve

        return getattr(_resolve, name)
    raise AttributeError(f"module 'sresr.weights' has no attribute {name!r}")
