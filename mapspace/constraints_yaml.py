"""Timeloop constraint YAML <-> :class:`~mapspace.constraints.Constraints`, and ``resolve``.

Rules adopted from NVlabs/timeloop ``src/mapping/constraints.cpp`` (``Parse``,
``ParseList``, ``ParseSingleConstraint``, ``ParseFactors``/``ParseMaxFactors``,
``ParsePermutations``, ``ParseDatatypeBypassSettings``) and timeloopfe ``v4/constraints.py``:

* Where the list is: a bare list; ``mapspace_constraints:`` (v0.3 list, or v0.4
  ``{targets: [...]}`` / ``{constraints: [...]}``); ``architecture_constraints:``;
  ``mapspace:`` (``{constraints | targets: [...]}``; ``{template: uber}`` alone holds none);
  ``constraints:``; ``targets:``.  A processed input may hold several: all are read, in
  the order architecture, mapspace_constraints, mapspace, constraints.
* A list entry is a directive, or (old Timeloop form) ``{target, constraints: [...]}``;
  the directive's own keys may sit under ``attributes:``.
* ``type``: ``temporal`` | ``spatial`` | ``datatype`` (= ``bypass``, ``bypassing``,
  timeloopfe's ``dataspace``) | ``utilization`` (= ``parallelism``).  Anything else
  (``max_overbooked_proportion``, ``no_multicast``...) is an error: it is not modelled.
* ``factors``: ``"C=1 M<=16"``, ``"C=1,M=16"``, ``"C1 M16"`` or a list of such strings;
  ops ``=``, ``<=``, ``>=`` (Timeloop's C++ parser knows ``=`` and ``<=``; timeloopfe adds
  ``>=``).  Values must be positive integers (Timeloop reads ``=0`` as the whole dimension;
  here it is an error).  A dimension may not be bounded twice with the same operator, nor
  with ``=`` and another operator, in one directive (``C>=2 C<=8`` is a range and is fine).
  In :func:`resolve`, ``=`` above the dimension's size is clamped to the size (Timeloop's
  warning + clamp).
* ``permutation``: a string of one-letter dimensions (``"MCRSNPQ"``), space- or
  comma-separated names, or a list; innermost first; may be partial.
* ``keep`` / ``bypass``: tensor lists; a tensor both kept and bypassed at one level
  (within a directive or across directives of one list) is an error, as Timeloop's
  "re-specification of dataspace keep flag".
* ``utilization``: ``min`` (Timeloop/timeloopfe), ``min_utilization`` or ``utilization``;
  a number in [0, 1].  Unknown extra keys (``no_reuse``, ``version``...) are ignored.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from mapspace.arch import Arch
from mapspace.constraints import Constraints, Directive, FactorBound, Kind
from mapspace.errors import MapspaceError
from mapspace.problem import Problem
from mapspace.yamlio import describe, expect, load_yaml

_KINDS: dict[str, Kind] = {
    "temporal": "temporal", "spatial": "spatial", "datatype": "datatype",
    "bypass": "datatype", "bypassing": "datatype", "dataspace": "datatype",
    "utilization": "utilization", "parallelism": "utilization",
}
_SECTIONS = ("architecture_constraints", "mapspace_constraints", "mapspace", "constraints")
_TERM = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)(<=|>=|=)?(-?\d+(?:\.\d*)?(?:[eE][+-]?\d+)?)")
_UTIL_KEYS = ("min_utilization", "utilization", "min")


def _err(msg: str, where: str, key: str) -> MapspaceError:
    return MapspaceError(msg, where=where, key=key or None)


# ------------------------------------------------------------------ parsing pieces
def _factor_terms(raw: Any, where: str, key: str) -> tuple[FactorBound, ...]:
    items = raw if isinstance(raw, list) else [raw]
    out: list[FactorBound] = []
    seen: dict[str, set[str]] = {}
    for i, item in enumerate(items):
        k = f"{key}[{i}]" if isinstance(raw, list) else key
        if isinstance(item, bool) or not isinstance(item, str):
            raise _err(f"expected factors like 'C=1 M<=16', found {describe(item)}", where, k)
        text = re.sub(r"\s*(<=|>=|=)\s*", r"\1", item.split("#", 1)[0]).strip()
        text = re.sub(r"(?<=[A-Za-z_])\s+(?=-?\d)", "", text)      # "C 4" as Timeloop reads it
        for tok in (t for t in re.split(r"[\s,]+", text) if t):
            m = _TERM.fullmatch(tok)
            if not m:
                raise _err(f"malformed factor term {tok!r} (expected DIM=N, DIM<=N or "
                           "DIM>=N)", where, k)
            dim, op, num = m.group(1), m.group(2) or "=", m.group(3)
            if not re.fullmatch(r"-?\d+", num):
                raise _err(f"factor {tok!r} is not an integer", where, k)
            if int(num) < 1:
                raise _err(f"factor {tok!r} must be a positive integer", where, k)
            ops = seen.setdefault(dim, set())
            if op in ops or (ops and (op == "=" or "=" in ops)):
                raise _err(f"dimension {dim!r} is bounded twice in one directive "
                           f"({tok!r})", where, k)
            ops.add(op)
            out.append(FactorBound(dim, op, int(num)))  # type: ignore[arg-type]
    return tuple(out)


def _names(raw: Any, where: str, key: str, what: str) -> tuple[str, ...]:
    if raw is None:
        return ()
    if isinstance(raw, str):
        s = raw.split("#", 1)[0].strip()
        toks = re.split(r"[\s,]+", s) if re.search(r"[\s,]", s) else list(s)
        names = [t for t in toks if t]
    else:
        lst = expect(raw, list, where, key)
        names = [expect(n, str, where, f"{key}[{i}]").strip() for i, n in enumerate(lst)]
    if len(set(names)) != len(names):
        dup = next(n for n in names if names.count(n) > 1)
        raise _err(f"{what} {dup!r} appears twice", where, key)
    return tuple(names)


def _split(raw: Any, where: str, key: str) -> int | None:
    if raw is None:
        return None
    if isinstance(raw, bool) or not isinstance(raw, int) or raw < 0:
        raise _err(f"expected a non-negative integer split, found {describe(raw)}", where, key)
    return raw


def _utilization(raw: Any, where: str, key: str) -> float:
    v = expect(raw, float, where, key)
    if not 0.0 <= v <= 1.0:
        raise _err(f"expected a utilization between 0 and 1, found {describe(raw)}", where, key)
    return v


def _directive(d: Mapping[str, Any], target_node: Mapping[str, Any], where: str,
               key: str) -> Directive:
    attrs = d.get("attributes")
    if attrs is not None:
        attrs = expect(attrs, dict, where, f"{key}.attributes")
        d = {**d, **attrs}
    target = target_node.get("target", target_node.get("name"))
    tkey = f"{key}.target"
    if not isinstance(target, str) or not target:
        raise _err(f"expected a level name as target, found {describe(target)}", where, tkey)
    typ = d.get("type")
    if typ not in _KINDS:
        raise _err(f"unknown constraint type {describe(typ)} (expected temporal, spatial, "
                   "bypass/datatype or utilization)", where, f"{key}.type")
    kind = _KINDS[typ]
    source = f"{where}: {key}"
    if kind == "datatype":
        keep = _names(d.get("keep"), where, f"{key}.keep", "tensor")
        byp = _names(d.get("bypass"), where, f"{key}.bypass", "tensor")
        both = [t for t in keep if t in byp]
        if both:
            raise _err(f"tensor {both[0]!r} is both kept and bypassed", where, f"{key}.bypass")
        return Directive(target, kind, keep=keep, bypass=byp, source=source)
    util_key = next((k for k in _UTIL_KEYS if d.get(k) is not None), None)
    util = _utilization(d[util_key], where, f"{key}.{util_key}") if util_key else None
    if kind == "utilization":
        if util is None:
            raise _err("missing required key 'min' (the minimum utilization)", where, key)
        return Directive(target, kind, min_utilization=util, source=source)
    if util is not None and kind == "temporal":
        raise _err("a minimum utilization applies to spatial or utilization directives, "
                   "not temporal ones", where, f"{key}.{util_key}")
    factors = _factor_terms(d["factors"], where, f"{key}.factors") if d.get(
        "factors") is not None else ()
    perm = _names(d.get("permutation"), where, f"{key}.permutation", "dimension") if d.get(
        "permutation") is not None else None
    split = _split(d.get("split"), where, f"{key}.split") if kind == "spatial" else None
    return Directive(target, kind, factors=factors, permutation=perm, split=split,
                     min_utilization=util, source=source)


def _section(node: Any, where: str, key: str) -> tuple[list[Any], str]:
    """The directive list inside one section (a list, ``{targets}`` or ``{constraints}``)."""
    if node is None:
        return [], key
    if isinstance(node, list):
        return node, key
    node = expect(node, dict, where, key)
    for k in ("targets", "constraints"):
        if node.get(k) is not None:
            return expect(node[k], list, where, f"{key}.{k}" if key else k), (
                f"{key}.{k}" if key else k)
    return [], key


def constraints_from_list(lst: Any, where: str, strict: bool = True) -> Constraints:
    """Validate Timeloop constraints (any of the forms in the module docstring).

    Names are not checked against a problem or arch here; see :func:`resolve`.
    """
    sections: list[tuple[list[Any], str]] = []
    if isinstance(lst, list):
        sections.append((lst, ""))
    elif isinstance(lst, Mapping):
        found = [k for k in _SECTIONS if k in lst]
        if not found and "targets" in lst:
            sections.append(_section(lst, where, ""))
        elif not found:
            raise _err("no constraints found (expected 'mapspace_constraints', "
                       "'architecture_constraints', 'mapspace', 'constraints' or a list)",
                       where, "")
        sections += [_section(lst[k], where, k) for k in found]
    else:
        raise _err(f"expected a list of constraints, found {describe(lst)}", where, "")
    out: list[Directive] = []
    for items, base in sections:
        for i, entry in enumerate(items):
            k = f"{base}[{i}]"
            entry = expect(entry, dict, where, k)
            if entry.get("constraints") is not None and "type" not in entry:
                inner = expect(entry["constraints"], list, where, f"{k}.constraints")
                for j, c in enumerate(inner):
                    ck = f"{k}.constraints[{j}]"
                    out.append(_directive(expect(c, dict, where, ck), entry, where, ck))
            else:
                out.append(_directive(entry, entry, where, k))
    _check_keep_conflicts(out)
    return Constraints(tuple(out), strict=strict, source=where)


def _where_key(d: Directive) -> tuple[str, str]:
    where, _, key = d.source.rpartition(": ")
    return (where, key) if where else (d.source or "constraints", "")


def _check_keep_conflicts(directives: list[Directive]) -> None:
    state: dict[tuple[str, str], bool] = {}
    for d in directives:
        if d.kind != "datatype":
            continue
        for names, flag in ((d.keep, True), (d.bypass, False)):
            for t in names:
                prev = state.setdefault((d.target, t), flag)
                if prev != flag:
                    where, key = _where_key(d)
                    raise _err(f"tensor {t!r} is both kept and bypassed at level "
                               f"{d.target!r}", where, f"{key}.{'keep' if flag else 'bypass'}")


def load_constraints(path: str | Path, strict: bool = True) -> Constraints:
    """Read a constraints file (or the constraints inside an arch / processed input)."""
    return constraints_from_list(load_yaml(path), str(path), strict)


def _perm_text(names: tuple[str, ...]) -> str:
    return "".join(names) if all(len(n) == 1 for n in names) else " ".join(names)


def constraints_to_list(c: Constraints) -> list[dict[str, Any]]:
    """Timeloop list form (``constraints_from_list(constraints_to_list(c))`` gives ``c``
    back, up to ``source``)."""
    out: list[dict[str, Any]] = []
    for d in c.directives:
        e: dict[str, Any] = {"target": d.target, "type": d.kind}
        if d.kind == "datatype":
            e.update(keep=list(d.keep), bypass=list(d.bypass))
        elif d.kind == "utilization":
            e["min"] = d.min_utilization
        else:
            if d.factors:
                e["factors"] = " ".join(f"{f.dim}{f.op}{f.value}" for f in d.factors)
            if d.permutation is not None:
                e["permutation"] = _perm_text(d.permutation)
            if d.split is not None:
                e["split"] = d.split
            if d.min_utilization is not None:
                e["min_utilization"] = d.min_utilization
        out.append(e)
    return out


# ------------------------------------------------------------------------ resolve
def resolve(constraints: Constraints, problem: Problem, arch: Arch) -> Constraints:
    """Check the constraints against a problem and an arch; the usable subset.

    * every target names a level of ``arch`` (a ``utilization`` directive may also name the
      compute unit: utilization of all MACs);
    * every dimension / tensor exists in ``problem``: an error when ``constraints.strict``,
      else that bound / name is dropped (a permutation keeps its other names);
    * ``=`` bounds above the dimension's size are clamped to it (Timeloop);
    * a spatial directive whose factors demand more than 1 on a level without fan-out is an
      error.
    """
    out = [_resolve_one(d, constraints.strict if d.strict is None else d.strict, problem, arch)
           for d in constraints.directives]
    return Constraints(tuple(out), strict=constraints.strict, source=constraints.source)


def _resolve_one(d: Directive, strict: bool, problem: Problem, arch: Arch) -> Directive:
    where, key = _where_key(d)

    def sub(name: str) -> str:
        return f"{key}.{name}" if key else name

    names = arch.level_names
    if d.target not in names and not (d.kind == "utilization" and d.target == arch.compute.name):
        raise _err(f"unknown target level {d.target!r} (levels of {arch.name!r} are "
                   f"{', '.join(names)})", where, sub("target"))

    def unknown(name: str, what: str, known: tuple[str, ...], field: str) -> bool:
        if name in known:
            return False
        if strict:
            raise _err(f"unknown {what} {name!r} (the problem's {what}s are "
                       f"{', '.join(known)})", where, sub(field))
        return True

    if d.kind == "datatype":
        tn = problem.tensor_names
        return replace(d, keep=tuple(t for t in d.keep if not unknown(t, "tensor", tn, "keep")),
                       bypass=tuple(t for t in d.bypass
                                    if not unknown(t, "tensor", tn, "bypass")))
    if d.kind == "utilization":
        return d
    dims = problem.dims
    factors = tuple(
        replace(f, value=min(f.value, problem.size(f.dim))) if f.op == "=" else f
        for f in d.factors if not unknown(f.dim, "dimension", dims, "factors"))
    perm = None if d.permutation is None else tuple(
        n for n in d.permutation if not unknown(n, "dimension", dims, "permutation"))
    d = replace(d, factors=factors, permutation=perm)
    if d.kind == "spatial":
        fx, fy = arch.fanout(arch.level_index(d.target))
        big = [f for f in d.factors if f.op in ("=", ">=") and f.value > 1]
        if fx * fy == 1 and big:
            f = big[0]
            raise _err(f"level {d.target!r} has no spatial fan-out, so the spatial factor "
                       f"{f.dim}{f.op}{f.value} cannot be met", where, sub("factors"))
    return d
