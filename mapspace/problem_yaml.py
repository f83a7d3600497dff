"""Timeloop problem YAML <-> :class:`~mapspace.problem.Problem`.

Accepted forms (Timeloop ``src/workload/shape-models/problem-shape.cpp`` and timeloopfe v0.4):

* ``{problem: {version: 0.4, shape: {...}, instance: {...}}}`` (also inside a processed input);
* v0.3 ``{problem: {shape: {..., data-spaces: [{name, projection, read-write}]}, instance}}``;
* a bare ``{shape, instance}``.

``shape`` has ``name``, ``dimensions`` (list of names), optional ``coefficients``
(``[{name, default}]``, the default overridden by an instance value) and ``data_spaces`` /
``data-spaces``.  A projection is either a flat list of dimension names (one axis each) or a
list of axes, each a list of terms, each term ``[dim]`` or ``[dim, coefficient-name]``.
Instance keys that are neither dimensions nor coefficients (``H``, ``W``, pads) are kept in
``Problem.extras``; ``instance.densities`` (``{tensor: d}`` or ``{tensor: {density: d}}``)
sets ``Tensor.density``.  A non-Timeloop ``bits`` key on a data space sets ``Tensor.bits``.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mapspace.errors import MapspaceError
from mapspace.problem import BITS_LIMIT, COUNT_LIMIT, Problem, Tensor, Term
from mapspace.yamlio import describe, expect, load_yaml, lookup, optional, relocate, require


def _unwrap(d: Any, where: str) -> tuple[Mapping[str, Any], str]:
    d = expect(d, dict, where, "")
    if "problem" in d:
        return expect(d["problem"], dict, where, "problem"), "problem"
    return d, ""


def _join(a: str, b: str) -> str:
    return f"{a}.{b}" if a else b


def _term(raw: Any, dims: list[str], coefs: dict[str, int], where: str, key: str) -> Term:
    items = raw if isinstance(raw, list) else [raw]
    if not 1 <= len(items) <= 2 or not all(isinstance(x, str | int) for x in items):
        raise MapspaceError(
            f"expected a projection term [dim] or [dim, coefficient], found {describe(raw)}",
            where=where, key=key)
    dim = items[0]
    if dim not in dims:
        raise MapspaceError(f"unknown dimension {dim!r} (dimensions are {', '.join(dims)})",
                            where=where, key=key)
    if len(items) == 1:
        return Term(dim)
    coef = items[1]
    if isinstance(coef, str) and coef not in coefs:
        raise MapspaceError(f"unknown coefficient {coef!r} (known: {', '.join(coefs) or 'none'})",
                            where=where, key=key)
    return Term(dim, coef)


def _projection(raw: Any, dims: list[str], coefs: dict[str, int], where: str,
                key: str) -> tuple[tuple[Term, ...], ...]:
    raw = expect(raw, list, where, key)
    axes = []
    for a, axis in enumerate(raw):
        k = f"{key}[{a}]"
        if isinstance(axis, str):  # flat form: one dimension per axis
            axes.append((_term(axis, dims, coefs, where, k),))
            continue
        axis = expect(axis, list, where, k)
        if not axis:
            raise MapspaceError("expected at least one term, found an empty list", where=where,
                                key=k)
        axes.append(tuple(_term(t, dims, coefs, where, f"{k}[{i}]") for i, t in enumerate(axis)))
    return tuple(axes)


def _positive_int(v: Any, where: str, key: str, limit: int = COUNT_LIMIT) -> int:
    """A positive integer (an integral float is accepted) at most ``limit`` (the 64-bit
    kernels' bound on a size, :data:`mapspace.problem.COUNT_LIMIT`)."""
    if isinstance(v, bool) or not isinstance(v, int | float) or (
            isinstance(v, float) and not v.is_integer()) or v < 1:
        raise MapspaceError(f"expected a positive integer, found {describe(v)}", where=where,
                            key=key)
    if v > limit:
        raise MapspaceError(f"{int(v):,} is larger than the supported maximum of "
                            f"{limit:,}", where=where, key=key)
    return int(v)


def problem_from_dict(d: Any, where: str) -> Problem:
    """Validate a Timeloop problem mapping (any accepted form) into a :class:`Problem`."""
    p, base = _unwrap(d, where)
    shape = require(p, "shape", dict, where, base)
    skey = _join(base, "shape")
    inst = require(p, "instance", dict, where, base)
    ikey = _join(base, "instance")
    name = optional(shape, "name", str, "problem", where, skey)
    raw_dims = require(shape, "dimensions", list, where, skey)
    dims = [expect(x, str, where, f"{skey}.dimensions[{i}]") for i, x in enumerate(raw_dims)]
    if len(set(dims)) != len(dims):
        raise MapspaceError(f"duplicate dimension names in {dims}", where=where,
                            key=f"{skey}.dimensions")
    coefs: dict[str, int] = {}
    for i, c in enumerate(optional(shape, "coefficients", list, [], where, skey)):
        ck = f"{skey}.coefficients[{i}]"
        c = expect(c, dict, where, ck)
        cname = require(c, "name", str, where, ck)
        if cname in coefs:
            raise MapspaceError(f"coefficient {cname!r} is given twice", where=where, key=ck)
        coefs[cname] = _positive_int(require(c, "default", int, where, ck), where,
                                     f"{ck}.default")
    # Instance: dimension sizes, coefficient overrides, densities, extras.
    sizes: list[int] = []
    for dim in dims:
        if dim not in inst:
            raise MapspaceError(f"missing a size for dimension {dim!r}", where=where, key=ikey)
        sizes.append(_positive_int(inst[dim], where, f"{ikey}.{dim}"))
    densities: dict[str, Any] = {}
    extras: dict[str, int] = {}
    for k, v in inst.items():
        if k in dims:
            continue
        if k == "densities":
            densities = dict(expect(v, dict, where, f"{ikey}.densities") or {})
        elif k in coefs:
            coefs[k] = _positive_int(expect(v, int, where, f"{ikey}.{k}"), where, f"{ikey}.{k}")
        else:
            extras[str(k)] = expect(v, int, where, f"{ikey}.{k}")
    # Data spaces.
    hit = lookup(shape, "data_spaces")
    if hit is None:
        raise MapspaceError("missing required key 'data_spaces'", where=where, key=skey)
    dkey = _join(skey, hit[0])
    tensors = []
    for i, ds in enumerate(expect(hit[1], list, where, dkey)):
        tk = f"{dkey}[{i}]"
        ds = expect(ds, dict, where, tk)
        tname = require(ds, "name", str, where, tk)
        proj = _projection(require(ds, "projection", list, where, tk), dims, coefs, where,
                           f"{tk}.projection")
        rw = optional(ds, "read_write", bool, False, where, tk)
        bits = optional(ds, "bits", int, None, where, tk)  # type: ignore[arg-type]
        if bits is not None:
            bits = _positive_int(bits, where, f"{tk}.bits", BITS_LIMIT)
        tensors.append(Tensor(tname, proj, read_write=rw, bits=bits))
    names = [t.name for t in tensors]
    for tname, dv in densities.items():
        k = f"{ikey}.densities.{tname}"
        if tname not in names:
            raise MapspaceError(f"unknown tensor {tname!r} (tensors are {', '.join(names)})",
                                where=where, key=k)
        if isinstance(dv, Mapping):
            hit = lookup(dv, "density")
            dv = require(dv, "density", float, where, k)
            k = f"{k}.{hit[0]}" if hit else k
        dv = expect(dv, float, where, k)
        if not 0.0 < dv <= 1.0:
            raise MapspaceError(f"a density must be in (0, 1], found {describe(dv)}",
                                where=where, key=k)
        tensors[names.index(tname)] = Tensor(
            tname, tensors[names.index(tname)].projection,
            tensors[names.index(tname)].read_write, tensors[names.index(tname)].bits, dv)
    try:
        return Problem(name=name, dims=tuple(dims), sizes=tuple(sizes), tensors=tuple(tensors),
                       coefficients=tuple(coefs.items()), extras=tuple(sorted(extras.items())))
    except MapspaceError as e:
        if e.key == "sizes":  # the 64-bit bounds: a property of the instance's sizes
            raise MapspaceError(e.detail, where=where, key=ikey) from None
        raise relocate(e, where, _join(base, "shape")) from None


def load_problem(path: str | Path) -> Problem:
    """Read a Timeloop problem file (or a processed input containing ``problem:``)."""
    return problem_from_dict(load_yaml(path), str(path))


def problem_to_dict(problem: Problem) -> dict[str, Any]:
    """The v0.4 ``{problem: {version, shape, instance}}`` form; reloads to an equal Problem."""
    data_spaces = []
    for t in problem.tensors:
        ds: dict[str, Any] = {
            "name": t.name,
            "projection": [[[term.dim] if term.coef == 1 and isinstance(term.coef, int)
                            else [term.dim, term.coef] for term in axis]
                           for axis in t.projection],
            "read_write": t.read_write,
        }
        if t.bits is not None:
            ds["bits"] = t.bits
        data_spaces.append(ds)
    instance: dict[str, Any] = dict(zip(problem.dims, problem.sizes, strict=True))
    instance.update(problem.coefficients)
    instance.update(problem.extras)
    dens = {t.name: t.density for t in problem.tensors if t.density != 1.0}
    if dens:
        instance["densities"] = dens
    return {"problem": {
        "version": "0.4",
        "shape": {
            "name": problem.name,
            "dimensions": list(problem.dims),
            "coefficients": [{"name": n, "default": v} for n, v in problem.coefficients],
            "data_spaces": data_spaces,
        },
        "instance": instance,
    }}
