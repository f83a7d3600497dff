"""Which mappings of a batch satisfy a set of constraints (vectorised, no exceptions).

:func:`satisfies` returns ``bool[B]``.  Rules, per directive (after
:func:`~mapspace.constraints_yaml.resolve`, which drops names the problem lacks when the
constraints are not strict):

* **factor bounds**: a ``temporal`` bound applies to ``batch.temporal[:, l, d]``, a
  ``spatial`` bound to ``batch.spatial[:, l, d]`` (the fan-out below level ``l``).
* **temporal permutation** (innermost first, partial): Timeloop's rule, which ignores unit
  loops.  Timeloop's Uber mapspace builds each level's order as
  ``<unit-factor dims><listed non-unit dims, in the listed order><free non-unit dims>``
  (``src/mapspaces/subspaces.cpp`` ``PermutationSpace::InitLevel``, pruned dimensions), and
  ``Constraints::SatisfiedBy`` (``src/mapping/constraints.cpp``) skips the mapping's
  unit-factor loops while matching.  So: among the loops with factor > 1, the listed
  dimensions must come first (innermost), in the listed order; unit loops may sit anywhere.
* **spatial split** ``s`` (with the directive's permutation ``P`` or none): the full
  spatial order is ``P`` followed by the unlisted dimensions, and positions ``< s`` go
  along X.  For each dimension with spatial factor > 1: listed at position ``i`` -> X iff
  ``i < s``; unlisted -> Y when ``s <= len(P)``, else free, but at most ``s - len(P)``
  unlisted non-unit dimensions on X and at most ``D - s`` on Y.  The order *within* X or Y
  is not part of a :class:`~mapspace.mapping.MappingBatch`, so a spatial permutation
  without a split constrains nothing here.
* **keep / bypass**: ``batch.keep[:, l, t]`` is True for each kept and False for each
  bypassed tensor; unnamed tensors are free.
* **min_utilization** at a storage level: ``prod_d spatial[:, l, d] / (fanout_x *
  fanout_y) >= value`` (levels without fan-out always pass); at the compute unit (or a
  level whose name is the compute's): the product of every level's spatial factors divided
  by the number of MACs.  (Timeloop's own ``utilization`` constraint is the chip-wide one,
  given at the innermost storage level; write it with the compute unit as the target.)
"""

from __future__ import annotations

import numpy as np

from mapspace.arch import Arch
from mapspace.constraints import Constraints, Directive
from mapspace.constraints_yaml import resolve
from mapspace.mapping import MappingBatch
from mapspace.problem import Problem


def _bounds(values: np.ndarray, d: Directive, problem: Problem) -> np.ndarray:
    ok = np.ones(values.shape[0], dtype=bool)
    for f in d.factors:
        v = values[:, problem.dims.index(f.dim)]
        ok &= (v == f.value) if f.op == "=" else (v <= f.value) if f.op == "<=" else (
            v >= f.value)
    return ok


def _permutation(batch: MappingBatch, lvl: int, perm: list[int]) -> np.ndarray:
    B, D = len(batch), batch.num_dims
    ok = np.ones(B, dtype=bool)
    if not perm:
        return ok
    order = batch.order[:, lvl, :]
    rank = np.empty_like(order)
    np.put_along_axis(rank, order, np.broadcast_to(np.arange(D), order.shape), axis=1)
    nonunit = batch.temporal[:, lvl, :] > 1
    pos, nu = rank[:, perm], nonunit[:, perm]
    for i in range(len(perm)):
        for j in range(i + 1, len(perm)):
            ok &= ~(nu[:, i] & nu[:, j]) | (pos[:, i] < pos[:, j])
    unlisted = np.ones(D, dtype=bool)
    unlisted[perm] = False
    last_listed = np.where(nu, pos, -1).max(axis=1)
    first_free = np.where(nonunit & unlisted, rank, D).min(axis=1)
    return ok & (last_listed < first_free)


def _split(batch: MappingBatch, lvl: int, perm: list[int], split: int) -> np.ndarray:
    D = batch.num_dims
    nonunit = batch.spatial[:, lvl, :] > 1
    x = batch.spatial_x[:, lvl, :]
    ok = np.ones(len(batch), dtype=bool)
    for i, d in enumerate(perm):
        ok &= ~nonunit[:, d] | (x[:, d] == (i < split))
    free = np.ones(D, dtype=bool)
    free[perm] = False
    fx = (nonunit & x & free).sum(axis=1)
    fy = (nonunit & ~x & free).sum(axis=1)
    return ok & (fx <= max(0, split - len(perm))) & (fy <= max(0, D - max(split, len(perm))))


def _utilization(batch: MappingBatch, arch: Arch, d: Directive) -> np.ndarray:
    assert d.min_utilization is not None
    if d.target in arch.level_names:
        lvl = arch.level_index(d.target)
        fx, fy = arch.fanout(lvl)
        used = batch.spatial[:, lvl, :].prod(axis=1)
        return used >= d.min_utilization * fx * fy - 1e-9
    used = batch.spatial.prod(axis=(1, 2))
    return used >= d.min_utilization * arch.compute.instances - 1e-9


def satisfies(constraints: Constraints, problem: Problem, arch: Arch,
              batch: MappingBatch) -> np.ndarray:
    """``bool[B]``: which mappings of ``batch`` meet every directive (rules above).

    ``constraints`` are resolved against ``problem`` and ``arch`` first, so bad names raise
    :class:`~mapspace.errors.MapspaceError` here, once; the check itself never raises.
    """
    c = resolve(constraints, problem, arch)
    ok = np.ones(len(batch), dtype=bool)
    for d in c.directives:
        if d.kind == "utilization" or (d.kind == "spatial" and d.min_utilization is not None):
            ok &= _utilization(batch, arch, d)
        if d.kind == "utilization":
            continue
        lvl = arch.level_index(d.target)
        if d.kind == "datatype":
            for t in d.keep:
                ok &= batch.keep[:, lvl, problem.tensor_index(t)]
            for t in d.bypass:
                ok &= ~batch.keep[:, lvl, problem.tensor_index(t)]
            continue
        perm = [problem.dims.index(n) for n in d.permutation or ()]
        if d.kind == "temporal":
            ok &= _bounds(batch.temporal[:, lvl, :], d, problem)
            ok &= _permutation(batch, lvl, perm)
        else:
            ok &= _bounds(batch.spatial[:, lvl, :], d, problem)
            if d.split is not None:
                ok &= _split(batch, lvl, perm, d.split)
    return ok
