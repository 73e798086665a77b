"""Model registry: every model, built-in or third-party, comes from the ``sresr.models``
entry-point group. Loading an entry point imports only the (torch-free) spec module; the
architecture itself is imported when a model is built.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from functools import lru_cache
from importlib import metadata

from .errors import BrokenModelError, DuplicateModelError, UnknownModelError
from .spec import ModelSpec, WeightsSpec, validate_spec

GROUP = "sresr.models"


@dataclass(frozen=True)
class Entry:
    """One registered name: its spec when it loaded, else the reason it is broken."""

    name: str
    source: str  # the distribution (or distributions) that provide it
    value: str  # the entry point's "module:attr"
    spec: ModelSpec | None = None
    error: str | None = None

    @property
    def status(self) -> str:
        return "ok" if self.error is None else "broken"


def _natural_key(name: str) -> list[object]:
    return [int(p) if p.isdigit() else p for p in re.split(r"(\d+)", name)]


def _load(name: str, ep: metadata.EntryPoint, dist: str) -> Entry:
    try:
        spec = ep.load()
    except BaseException as exc:  # a plugin may raise anything on import, even SystemExit
        if isinstance(exc, KeyboardInterrupt):
            raise
        return Entry(name, dist, ep.value, error=f"import failed: {type(exc).__name__}: {exc}")
    problems = validate_spec(spec, name)
    if problems:
        return Entry(name, dist, ep.value, error="invalid spec: " + "; ".join(problems))
    return Entry(name, dist, ep.value, spec=spec)


@lru_cache(maxsize=1)
def entries() -> dict[str, Entry]:
    """All registered names, natural-sorted. Cached; call ``refresh()`` after installing."""
    by_name: dict[str, list[tuple[metadata.EntryPoint, str]]] = {}
    for ep in metadata.entry_points(group=GROUP):
        dist = ep.dist.name if ep.dist is not None else "<unknown distribution>"
        seen = by_name.setdefault(ep.name, [])
        if any(d == dist and e.value == ep.value for e, d in seen):
            continue  # the same distribution found twice on sys.path
        seen.append((ep, dist))
    out: dict[str, Entry] = {}
    for name in sorted(by_name, key=_natural_key):
        claims = by_name[name]
        if len(claims) > 1:
            dists = sorted({d for _, d in claims})
            values = ", ".join(f"{d} ({e.value})" for e, d in claims)
            out[name] = Entry(
                name,
                " + ".join(dists),
                claims[0][0].value,
                error=f"model name '{name}' is registered by more than one distribution: {values}",
            )
        else:
            ep, dist = claims[0]
            out[name] = _load(name, ep, dist)
    return out


def refresh() -> None:
    entries.cache_clear()
    aliases.cache_clear()


@lru_cache(maxsize=1)
def aliases() -> dict[str, str]:
    """Published names of weights (lower case) -> ``MODEL.TAG``, from the variants' ``aliases``.
    A registered model name always wins over an alias; of two variants claiming one alias, the
    first model in name order keeps it."""
    out: dict[str, str] = {}
    names = entries()
    for name, entry in names.items():
        for w in entry.spec.weights if entry.spec is not None else ():
            for alias in w.aliases:
                if alias.lower() not in names:
                    out.setdefault(alias.lower(), f"{name}.{w.tag}")
    return out


def parse_ref(name: str) -> tuple[str, str | None]:
    """The one tag parser: ``MODEL`` -> (MODEL, None), ``MODEL.TAG`` -> (MODEL, TAG), a published
    name (``RealESRGAN_x4plus``, any case) -> its (MODEL, TAG). A registered model name wins over
    an alias; anything else is split at its first dot (to fail where it is used)."""
    model, dot, tag = name.partition(".")
    if model not in entries():
        alias = aliases().get(name.lower())
        if alias is not None:
            model, dot, tag = alias.partition(".")
    return model, (tag if dot else None)


def list_models(pattern: str | None = None, include_broken: bool = False) -> list[str]:
    """Registered model names (natural order), optionally filtered by a shell-style pattern."""
    import fnmatch

    names = [n for n, e in entries().items() if include_broken or e.status == "ok"]
    if pattern:
        names = [n for n in names if fnmatch.fnmatch(n, pattern)]
    return names


def get_entry(name: str) -> Entry:
    all_entries = entries()
    if name not in all_entries:
        close = difflib.get_close_matches(name, list(all_entries), n=3, cutoff=0.5)
        hint = f"did you mean {', '.join(repr(c) for c in close)}?" if close else None
        hint = (hint + " " if hint else "") + "run 'sresr models' to list them"
        raise UnknownModelError(f"unknown model '{name}'", hint=hint)
    return all_entries[name]


def get_spec(name: str) -> ModelSpec:
    """The spec of a model name (``MODEL``, ``MODEL.TAG`` or an alias; the tag is ignored here)."""
    entry = get_entry(parse_ref(name)[0])
    if entry.spec is None:
        if entry.error and "more than one distribution" in entry.error:
            raise DuplicateModelError(entry.error, hint="uninstall one of the distributions")
        raise BrokenModelError(
            f"model '{entry.name}' from {entry.source} is broken: {entry.error}",
            hint=f"reinstall or update {entry.source}",
        )
    return entry.spec


def resolve_name(name: str, scale: int | None = None) -> tuple[ModelSpec, WeightsSpec | None]:
    """``MODEL.TAG`` or an alias -> (spec, that variant); ``MODEL`` -> (spec, default variant for scale)."""
    model, tag = parse_ref(name)
    spec = get_spec(model)
    if tag:
        return spec, spec.variant(tag)
    return spec, spec.weights_for(scale)
