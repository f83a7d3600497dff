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

#: Deepest nesting of lists and mappings a file may have (Timeloop files nest about 10
#: deep).  Deeper files are refused before they are built: libyaml's composer recurses in C
#: and crashes the interpreter near 100,000 levels, the pure-Python one raises
#: RecursionError near 1,000.
MAX_DEPTH = 100
#: Most nodes a file may expand to, aliases (``*name``) counted at every use, so that a
#: few lines of nested aliases ("billion laughs") cannot make a loader walk 10**9 items.
MAX_NODES = 10_000_000
#: Largest file read (bytes); bigger ones are refused before reading.
MAX_BYTES = 256 * 2**20

#: libyaml's C parser when installed (a 10 MB file in seconds), else the Python one.
_BASE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_MERGE = "tag:yaml.org,2002:merge"


#: implicit tags of plain scalars already resolved (the resolver has no path resolvers, so
#: a scalar's tag depends on its text and quoting alone); bounded
_RESOLVED: dict[tuple[Any, Any], str] = {}
_RESOLVED_MAX = 200_000


class _Loader(_BASE_LOADER):  # type: ignore[misc, valid-type]
    """The safe loader that also refuses a key given twice in one mapping (PyYAML would keep
    the last silently)."""

    def resolve(self, kind: Any, value: Any, implicit: Any) -> Any:
        """The implicit tag of a node, remembered per (kind, text) for scalars: most files
        repeat a few values (``1``, ``DRAM``, key names) and PyYAML's resolver tries its
        regular expressions on every one (two thirds of a 10 MB file's load time)."""
        if kind is not yaml.ScalarNode or len(_RESOLVED) >= _RESOLVED_MAX:
            return super().resolve(kind, value, implicit)
        key = (value, implicit)
        tag = _RESOLVED.get(key)
        if tag is None:
            tag = _RESOLVED[key] = super().resolve(kind, value, implicit)
        return tag

    def construct_mapping(self, node: Any, deep: bool = False) -> Any:
        if isinstance(node, yaml.MappingNode):
            seen: dict[Any, Any] = {}
            for knode, _ in node.value:
                if knode.tag == _MERGE or not isinstance(knode, yaml.ScalarNode):
                    continue
                key = self.construct_object(knode)
                try:
                    first = seen.get(key)
                except TypeError:           # an unhashable key: construction reports it
                    continue
                if first is not None:
                    raise MapspaceError(f"key {describe(key)} is given twice in one mapping "
                                        f"(lines {first.start_mark.line + 1} and "
                                        f"{knode.start_mark.line + 1})")
                seen[key] = knode
        return super().construct_mapping(node, deep=deep)


def _check_shape(text: str, where: str) -> None:
    """Refuse nesting deeper than :data:`MAX_DEPTH`, more than :data:`MAX_NODES` nodes once
    aliases are expanded, and an alias used inside its own anchor (a cyclic structure), by
    one pass over libyaml's event stream (iterative, so deep input cannot crash it).

    Skipped when the text cannot nest that deep (fewer ``[{-:?`` indicators than the limit,
    each level needs one) and has no alias."""
    if "*" not in text and sum(text.count(c) for c in "[{-:?") < MAX_DEPTH:
        return
    sizes: dict[str, tuple[int, int]] = {}     # anchor -> (nodes, depth of its subtree)
    stack: list[list[Any]] = []                # open collections: [anchor, count at start,
    count = 0                                  #   depth of the deepest child so far]
    start, end = yaml.CollectionStartEvent, yaml.CollectionEndEvent
    for ev in yaml.parse(text, Loader=_BASE_LOADER):
        kind = type(ev)
        if issubclass(kind, start):
            count += 1
            stack.append([ev.anchor, count, 0])
            if len(stack) > MAX_DEPTH:
                raise MapspaceError(f"nested more than {MAX_DEPTH} levels deep at line "
                                    f"{ev.start_mark.line + 1}", where=where)
            continue
        if issubclass(kind, end):
            anchor, first, below = stack.pop()
            depth = below + 1
            if anchor is not None:
                sizes[anchor] = (count - first + 1, depth)
        elif kind is yaml.ScalarEvent:
            count += 1
            depth = 0
            if ev.anchor is not None:
                sizes[ev.anchor] = (1, 0)
        elif kind is yaml.AliasEvent:
            if ev.anchor not in sizes:
                if any(f[0] == ev.anchor for f in stack):
                    raise MapspaceError(f"alias *{ev.anchor} at line {ev.start_mark.line + 1} "
                                        "is used inside its own anchor (a cyclic structure)",
                                        where=where)
                continue                        # undefined: the loader reports it
            n, depth = sizes[ev.anchor]
            count += n
            if len(stack) + depth > MAX_DEPTH:
                raise MapspaceError(f"nested more than {MAX_DEPTH} levels deep through alias "
                                    f"*{ev.anchor} at line {ev.start_mark.line + 1}",
                                    where=where)
        else:
            continue
        if count > MAX_NODES:
            raise MapspaceError(f"more than {MAX_NODES:,} values (aliases counted at each use)",
                                where=where)
        if stack and depth > stack[-1][2]:
            stack[-1][2] = depth


def load_yaml(path: str | Path) -> Any:
    """Parse one YAML file; missing/unreadable files and bad YAML raise MapspaceError, as do
    files over :data:`MAX_BYTES`, nested deeper than :data:`MAX_DEPTH`, expanding through
    aliases to more than :data:`MAX_NODES` values, or giving a key twice in one mapping."""
    p = Path(path)
    where = str(p)
    if not p.is_file():
        raise MapspaceError("file not found" if not p.exists() else "not a regular file",
                            where=where)
    try:
        if p.stat().st_size > MAX_BYTES:
            raise MapspaceError(f"larger than {MAX_BYTES // 2**20} MB", where=where)
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise MapspaceError(f"cannot read the file ({e})", where=where) from None
    try:
        _check_shape(text, where)
        return yaml.load(text, Loader=_Loader)  # noqa: S506 (a safe loader)
    except RecursionError:
        raise MapspaceError(f"nested too deeply (at most {MAX_DEPTH} levels)",
                            where=where) from None
    except MapspaceError as e:
        raise e.at(where) from None
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
