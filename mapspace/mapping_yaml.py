"""Timeloop mapping YAML (list of directives) <-> :class:`~mapspace.mapping.MappingBatch`.

Rules adopted from NVlabs/timeloop ``src/mapping/parser.cpp`` (``ParseAndConstruct``):

* Directives: ``{target, type: temporal|spatial|datatype|bypass, factors, permutation,
  split, keep, bypass}``; a key of another kind of directive, or an unknown one, is an
  error.  One temporal and one spatial directive per level (a second is an error, not a
  silent replacement); ``keep``/``bypass`` lists accumulate, but naming a tensor twice at
  one level (kept and bypassed, or twice alike) is an error, as is bypassing a tensor at
  the outermost level, which holds every tensor.
* ``factors``: ``"C1 M16"`` or ``"R=1,P=16,K=16"`` (text after ``#`` ignored); dimensions
  not named get 1; a factor of 0 means the whole dimension; ``P=16,16`` (factor, residual)
  is accepted only when the residual equals the factor (perfect factorisations only).  A
  dimension named twice, or a factor larger than its dimension, is an error.
* ``permutation``: **innermost loop first**.  Dimensions not named are appended after the
  named ones (i.e. outermost), in the problem's dimension order.  Single-character
  dimension names may be run together (``"PQCMRSN"``); otherwise separate them by spaces.
* ``split`` (spatial only): dimensions at positions ``< split`` of the spatial permutation
  go along X, the rest along Y; absent -> the number of dimensions (all X).
* No datatype/bypass directive for a (level, tensor) -> kept (Timeloop's ``X`` = keep),
  except at a ``dummy_storage`` level (:attr:`~mapspace.arch.StorageLevel.is_dummy`),
  which keeps nothing unless a directive says otherwise.  Otherwise dummy levels take
  temporal, spatial and datatype directives like any level.
* Levels without a temporal directive get all-1 factors (and the default order).
* The product of every dimension's factors must equal its size (Timeloop exits otherwise).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from mapspace.arch import Arch
from mapspace.errors import MapspaceError
from mapspace.mapping import MappingBatch, single
from mapspace.problem import Problem
from mapspace.yamlio import describe, expect, load_yaml

_TOKEN = re.compile(r"([A-Za-z_]+)=?(\d+)")
_TYPES = ("temporal", "spatial", "datatype", "bypass")
_KEYS = {"temporal": ("target", "type", "factors", "permutation"),
         "spatial": ("target", "type", "factors", "permutation", "split"),
         "datatype": ("target", "type", "keep", "bypass"),
         "bypass": ("target", "type", "keep", "bypass")}


def _factors(text: str, problem: Problem, where: str, key: str) -> dict[int, int]:
    text = re.sub(r"\s*=\s*", "=", text.split("#", 1)[0]).strip()
    out: dict[int, int] = {}
    last: tuple[str, int] | None = None
    for tok in (t for t in re.split(r"[\s,]+", text) if t):
        if tok.isdigit() and last is not None:
            if int(tok) != last[1]:
                raise MapspaceError(f"residual factor {last[0]}={last[1]},{tok} is not supported "
                                    "(only perfect factorisations)", where=where, key=key)
            last = None
            continue
        m = _TOKEN.fullmatch(tok)
        if not m:
            raise MapspaceError(f"expected factors like 'C4 M16' or 'C=4,M=16', found a "
                                f"non-integer factor {tok!r}", where=where, key=key)
        dim, val = m.group(1), int(m.group(2))
        if dim not in problem.dims:
            raise MapspaceError(f"unknown dimension {dim!r} (dimensions are "
                                f"{', '.join(problem.dims)})", where=where, key=key)
        d = problem.dims.index(dim)
        if d in out:
            raise MapspaceError(f"dimension {dim!r} is given twice", where=where, key=key)
        if val > problem.sizes[d]:
            raise MapspaceError(f"factor {dim}={val:,} is larger than the size of {dim} "
                                f"({problem.sizes[d]:,})", where=where, key=key)
        out[d] = val if val > 0 else problem.sizes[d]
        last = (dim, val)
    return out


def _permutation(text: str, problem: Problem, where: str, key: str) -> list[int]:
    toks = text.split() if re.search(r"[\s,]", text.strip()) else list(text.strip())
    toks = [t for tok in toks for t in tok.split(",") if t]
    order: list[int] = []
    for t in toks:
        if t not in problem.dims:
            raise MapspaceError(f"unknown dimension {t!r} in permutation (dimensions are "
                                f"{', '.join(problem.dims)})", where=where, key=key)
        d = problem.dims.index(t)
        if d in order:
            raise MapspaceError(f"dimension {t!r} appears twice in the permutation",
                                where=where, key=key)
        order.append(d)
    return order + [d for d in range(problem.num_dims) if d not in order]


def _tensors(v: Any, problem: Problem, where: str, key: str) -> list[int]:
    if v is None:
        return []
    items = expect(v, list, where, key)
    out = []
    for i, name in enumerate(items):
        if not isinstance(name, str) or name not in problem.tensor_names:
            raise MapspaceError(f"unknown tensor {describe(name)} (tensors are "
                                f"{', '.join(problem.tensor_names)})", where=where,
                                key=f"{key}[{i}]")
        t = problem.tensor_names.index(name)
        if t in out:
            raise MapspaceError(f"tensor {name!r} is given twice", where=where,
                                key=f"{key}[{i}]")
        out.append(t)
    return out


def mapping_from_list(lst: Any, problem: Problem, arch: Arch, where: str,
                      check_products: bool = True) -> MappingBatch:
    """Validate a Timeloop mapping (list of directives, or ``{mapping: [...]}``) into a
    MappingBatch of one.  Level 0 is the outermost level, as in ``arch.levels``."""
    base = "mapping"
    if isinstance(lst, Mapping):
        if "mapping" not in lst:
            raise MapspaceError("missing required key 'mapping'", where=where)
        lst = lst["mapping"]
    lst = expect(lst, list, where, base)
    L, D, T = arch.num_levels, problem.num_dims, problem.num_tensors
    temporal = np.ones((L, D), dtype=np.int64)
    spatial = np.ones((L, D), dtype=np.int64)
    order = np.tile(np.arange(D, dtype=np.int64), (L, 1))
    sx = np.ones((L, D), dtype=bool)
    keep = np.ones((L, T), dtype=bool)
    keep[[lv.is_dummy for lv in arch.levels]] = False
    said: dict[tuple[int, int], tuple[bool, str]] = {}   # (level, tensor) -> (keep, key)
    loops: dict[tuple[int, str], str] = {}                # (level, kind) -> key
    for i, dv in enumerate(lst):
        k = f"{base}[{i}]"
        dv = expect(dv, dict, where, k)
        target = dv.get("target")
        if not isinstance(target, str) or target not in arch.level_names:
            known = ", ".join(arch.level_names)
            raise MapspaceError(f"unknown target level {describe(target)} (levels are {known})",
                                where=where, key=f"{k}.target")
        kind = dv.get("type")
        if kind not in _TYPES:
            raise MapspaceError(f"expected type temporal, spatial, datatype or bypass, found "
                                f"{describe(kind)}", where=where, key=f"{k}.type")
        lvl = arch.level_index(target)
        extra = [x for x in dv if x not in _KEYS[kind]]
        if extra:
            raise MapspaceError(f"unknown key {describe(extra[0])} in a {kind} directive (keys "
                                f"are {', '.join(_KEYS[kind])})", where=where,
                                key=f"{k}.{extra[0]}")
        if kind in ("datatype", "bypass"):
            kept = _tensors(dv.get("keep"), problem, where, f"{k}.keep")
            dropped = _tensors(dv.get("bypass"), problem, where, f"{k}.bypass")
            for ts, value, name in ((kept, True, "keep"), (dropped, False, "bypass")):
                for t in ts:
                    tk = f"{k}.{name}"
                    before = said.get((lvl, t))
                    if before is not None:
                        raise MapspaceError(
                            f"tensor {problem.tensor_names[t]!r} is already "
                            f"{'kept' if before[0] else 'bypassed'} at {target} by "
                            f"{before[1]}", where=where, key=tk)
                    said[(lvl, t)] = (value, tk)
                    if lvl == 0 and not value:
                        raise MapspaceError(
                            f"the outermost level {target} holds every tensor and cannot "
                            f"bypass {problem.tensor_names[t]!r}", where=where, key=tk)
            keep[lvl, kept] = True
            keep[lvl, dropped] = False
            continue
        if (lvl, kind) in loops:
            raise MapspaceError(f"a second {kind} directive for {target} (the first is "
                                f"{loops[(lvl, kind)]})", where=where, key=k)
        loops[(lvl, kind)] = k
        fac = np.ones(D, dtype=np.int64)
        for d, f in _factors(expect(dv.get("factors", ""), str, where, f"{k}.factors"),
                             problem, where, f"{k}.factors").items():
            fac[d] = f
        perm = _permutation(expect(dv.get("permutation", ""), str, where,
                                   f"{k}.permutation"), problem, where, f"{k}.permutation")
        if kind == "temporal":
            temporal[lvl], order[lvl] = fac, perm
            continue
        split = dv.get("split", D)
        if isinstance(split, bool) or not isinstance(split, int) or split < 0:
            raise MapspaceError(f"expected a non-negative integer split, found "
                                f"{describe(split)}", where=where, key=f"{k}.split")
        x = np.zeros(D, dtype=bool)
        x[perm[:split]] = True
        spatial[lvl], sx[lvl] = fac, x
    if check_products:  # in Python integers: factors up to the sizes cannot wrap
        prod = [math.prod(int(temporal[lv, d]) * int(spatial[lv, d]) for lv in range(L))
                for d in range(D)]
        bad = [f"{d}: {int(p)} != {s}" for d, p, s in zip(problem.dims, prod, problem.sizes,
                                                           strict=True) if p != s]
        if bad:
            raise MapspaceError("the factors of each dimension must multiply to its size, "
                                f"found {'; '.join(bad)}", where=where, key=base)
    return single(temporal, spatial, order, sx, keep)


def load_mapping(path: str | Path, problem: Problem, arch: Arch) -> MappingBatch:
    """Read a mapping file (top-level ``mapping:``, e.g. a processed Timeloop input)."""
    return mapping_from_list(load_yaml(path), problem, arch, str(path))


def _perm_text(dims: list[str]) -> str:
    return "".join(dims) if all(len(d) == 1 for d in dims) else " ".join(dims)


def mapping_to_list(batch: MappingBatch, problem: Problem, arch: Arch) -> list[dict[str, Any]]:
    """The Timeloop list form of a batch of one (innermost level first).

    Every level gets a datatype and a temporal directive; a spatial directive is written
    where the level fans out or any spatial factor is > 1 (so that
    ``mapping_from_list(mapping_to_list(m)) == m``).  Spatial permutations list the X
    dimensions first, ``split`` = their number.
    """
    if len(batch) != 1:
        raise MapspaceError(f"expected a batch of one mapping, found {len(batch)}",
                            where="mapping_to_list")
    out: list[dict[str, Any]] = []
    dims = problem.dims
    for lvl in reversed(range(arch.num_levels)):
        name = arch.levels[lvl].name
        kept = batch.keep[0, lvl]
        out.append({"target": name, "type": "datatype",
                    "keep": [t for t, k in zip(problem.tensor_names, kept, strict=True) if k],
                    "bypass": [t for t, k in zip(problem.tensor_names, kept, strict=True)
                               if not k]})
    for lvl in reversed(range(arch.num_levels)):
        name = arch.levels[lvl].name
        t, s, x = batch.temporal[0, lvl], batch.spatial[0, lvl], batch.spatial_x[0, lvl]
        if arch.fanout(lvl) != (1, 1) or (s > 1).any():
            xs = [d for d in range(len(dims)) if x[d]]
            ys = [d for d in range(len(dims)) if not x[d]]
            out.append({"target": name, "type": "spatial",
                        "factors": " ".join(f"{d}{int(f)}" for d, f in zip(dims, s, strict=True)),
                        "permutation": _perm_text([dims[d] for d in xs + ys]),
                        "split": len(xs)})
        out.append({"target": name, "type": "temporal",
                    "factors": " ".join(f"{d}{int(f)}" for d, f in zip(dims, t, strict=True)),
                    "permutation": _perm_text([dims[int(d)] for d in batch.order[0, lvl]])})
    return out
