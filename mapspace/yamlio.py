"""YAML at the edge: loading/dumping files and small typed getters for the loaders.

Every failure is a :class:`~mapspace.errors.MapspaceError` whose ``where`` is the file and
whose ``key`` is the YAML key path (``architecture.subtree[0].local[2].attributes.depth``),
so the message reads as one sentence: file, key, what was expected, what was found.

Timeloop treats ``-`` and ``_`` in attribute names alike (``read-write`` = ``read_write``,
``multiple-buffering`` = ``multiple_buffering``); :func:`lookup` does the same.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

import yaml

from mapspace.errors import MapspaceError

T = TypeVar("T")

_TYPE_NAMES = {dict: "a mapping", list: "a list", str: "a string", int: "an integer",
               float: "a number", bool: "true/false"}


def load_yaml(path: str | Path) -> Any:
    """Parse one YAML file; missing/unreadable files and bad YAML raise MapspaceError."""
    p = Path(path)
    where = str(p)
    if not p.is_file():
        raise MapspaceError("file not found" if not p.exists() else "not a regular file",
                            where=where)
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise MapspaceError(f"cannot read the file ({e})", where=where) from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        pos = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "unknown position"
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise MapspaceError(f"malformed YAML at {pos}: {problem}", where=where) from None


def dump_yaml(obj: Any, path: str | Path) -> None:
    """Write ``obj`` as block-style YAML, keys in insertion order."""
    p = Path(path)
    try:
        p.write_text(yaml.safe_dump(obj, sort_keys=False, default_flow_style=False),
                     encoding="utf-8")
    except OSError as e:
        raise MapspaceError(f"cannot write the file ({e})", where=str(p)) from None


def describe(value: Any) -> str:
    """Short description of a found value for error messages."""
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _norm(key: str) -> str:
    return key.replace("-", "_")


def lookup(d: Mapping[str, Any], *names: str) -> tuple[str, Any] | None:
    """First of ``names`` present in ``d`` (``-``/``_`` equivalent): ``(actual key, value)``."""
    normed = {_norm(str(k)): k for k in d}
    for n in names:
        k = normed.get(_norm(n))
        if k is not None:
            return k, d[k]
    return None


def expect(value: Any, typ: type[T], where: str, keypath: str) -> T:
    """``value`` as ``typ`` (``float`` accepts ints and numeric strings such as ``1e-9``;
    ``int`` accepts integral floats), else MapspaceError."""
    if typ is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)  # type: ignore[return-value]
        if isinstance(value, str):
            try:
                return float(value)  # type: ignore[return-value]
            except ValueError:
                pass
    elif typ is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value  # type: ignore[return-value]
        if isinstance(value, float) and value.is_integer():
            return int(value)  # type: ignore[return-value]
    elif typ is dict:
        if isinstance(value, Mapping):
            return value  # type: ignore[return-value]
    elif isinstance(value, typ):
        return value
    raise MapspaceError(
        f"expected {_TYPE_NAMES.get(typ, typ.__name__)}, found {describe(value)}",
        where=where, key=keypath,
    )


def require(d: Mapping[str, Any], key: str, typ: type[T], where: str, keypath: str,
            *aliases: str) -> T:
    """``d[key]`` (or one of ``aliases``) checked to be ``typ``; missing key is an error."""
    hit = lookup(d, key, *aliases)
    if hit is None:
        raise MapspaceError(f"missing required key {key!r}", where=where, key=keypath or None)
    k, v = hit
    return expect(v, typ, where, f"{keypath}.{k}" if keypath else str(k))


def optional(d: Mapping[str, Any], key: str, typ: type[T], default: T, where: str,
             keypath: str, *aliases: str) -> T:
    """Like :func:`require` but returns ``default`` when the key is absent (or null)."""
    hit = lookup(d, key, *aliases)
    if hit is None or hit[1] is None:
        return default
    k, v = hit
    return expect(v, typ, where, f"{keypath}.{k}" if keypath else str(k))


def relocate(err: MapspaceError, where: str, keypath: str) -> MapspaceError:
    """Re-anchor an error raised by a core-type constructor at a file and key path."""
    key = f"{keypath}.{err.key}" if err.key else keypath
    return MapspaceError(err.detail, where=where, key=key)
