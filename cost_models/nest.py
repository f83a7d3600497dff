"""Data-movement analysis (Timeloop semantics), batched: how many words each storage level
reads, fills and updates per instance, for every tensor, for ``B`` mappings at once.

This module only *counts*; :mod:`cost_models.pricing` turns counts into cycles and energy.
Every rule below is Timeloop's default (non-ISL) nest analysis as implemented in
``src/loop-analysis/nest-analysis.cpp`` and ``tiling.cpp``; ``cost_models/README.md``
lists them with the test that pins each one.

Vocabulary (level index 0 = outermost, as in :class:`~mapspace.arch.Arch`):

* the *tile* of level ``l`` spans every loop factor (temporal and spatial) of ``l`` and of
  all inner levels; its size per tensor is Timeloop's axis-aligned hyper-rectangle;
* the *deltas* of level ``l`` (``D``) are the words newly needed by one instance of ``l``
  over the whole run: Timeloop walks the temporal loops above ``l`` running iteration 0 and
  iteration 1 of each (iteration 1 stands for all the others), and charges each step the
  set difference between the new tile and the previous one, keeping a sliding window's
  overlap only while the window keeps moving the same way (``_transition``);
* the *distinct children* (``G``) of a level's spatial fan-out for a tensor is the number of
  different tiles its children hold: children holding the same tile are served by one
  multicast read (or one spatially reduced update);
* a level's *content accesses* is what its inner neighbour asks of it: ``G * D(inner)``,
  and through a bypassed inner level ``G * content(inner)``; at the innermost level every
  MAC reads each operand once.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mapspace.arch import Arch
from mapspace.mapping import MappingBatch
from mapspace.problem import Problem


@dataclass(frozen=True)
class DataMovement:
    """Per-instance word counts of ``B`` mappings (``L`` levels, ``T`` tensors).

    ``tile``, ``reads``, ``fills``, ``updates``, ``partition``: ``int64[B, L, T]``
    (zero where the level bypasses the tensor); ``instances``: ``int64[B, L]`` utilized
    instances of each level; ``macs``: ``int64[B]`` MACs per utilized compute instance
    (= compute cycles); ``compute_instances``: ``int64[B]``; ``keep``: ``bool[B, L, T]``.
    """

    tile: np.ndarray
    reads: np.ndarray
    fills: np.ndarray
    updates: np.ndarray
    partition: np.ndarray
    instances: np.ndarray
    macs: np.ndarray
    compute_instances: np.ndarray
    keep: np.ndarray


def analyze(problem: Problem, arch: Arch, m: MappingBatch) -> DataMovement:
    """Count reads, fills and updates per instance for every level and tensor (no pricing).

    The mappings must be structurally sound (factor products equal the problem sizes);
    :func:`mapspace.validity.check` reports those that are not.
    """
    B, L, D = m.temporal.shape
    T = problem.num_tensors
    ext = m.extents()                                       # [B, L+1, D]
    spatial = m.spatial
    sp_prod = spatial.prod(axis=2)                          # [B, L]
    instances = np.concatenate(
        [np.ones((B, 1), np.int64), np.cumprod(sp_prod, axis=1)[:, :-1]], axis=1)
    macs = m.temporal.reshape(B, -1).prod(axis=1)
    compute_instances = sp_prod.prod(axis=1)

    tile = np.zeros((B, L, T), np.int64)
    reads = np.zeros_like(tile)
    fills = np.zeros_like(tile)
    updates = np.zeros_like(tile)
    partition = np.zeros_like(tile)
    keep = m.keep

    for t in range(T):
        proj = problem.projections[t]
        tiles = problem.tile_size(t, ext)                   # [B, L+1]
        tile[:, :, t] = np.where(keep[:, :, t], tiles[:, :L], 0)
        # Distinct children of each level's spatial fan-out (level L-1 fans out to MACs).
        G = np.stack([_distinct_children(proj, spatial[:, l], ext[:, l + 1])
                      for l in range(L)], axis=1)           # [B, L]
        # Partition sizes, outermost first (tiling.cpp ComputePartitionSizes, integer math).
        part = np.empty((B, L), np.int64)
        part[:, 0] = tiles[:, 0]
        for l in range(1, L):
            union = problem.tile_size(t, ext[:, l] * spatial[:, l - 1])
            part[:, l] = part[:, l - 1] * tiles[:, l] // union
        partition[:, :, t] = np.where(keep[:, :, t], part, 0)
        # Deltas for every level that some mapping keeps the tensor at.
        deltas = np.zeros((B, L), np.int64)
        for l in range(L):
            if keep[:, l, t].any():
                deltas[:, l] = _deltas(proj, m, ext, l, tiles[:, l])
        # Content accesses, innermost level first, through bypassed levels.
        content = np.zeros((B, L), np.int64)
        below = G[:, L - 1] * macs
        content[:, L - 1] = below
        for l in range(L - 2, -1, -1):
            kept_below = keep[:, l + 1, t]
            content[:, l] = G[:, l] * np.where(kept_below, deltas[:, l + 1], content[:, l + 1])
        # Outermost kept level: its fills are not charged (backing store).
        kept_above = np.cumsum(keep[:, :, t], axis=1) - keep[:, :, t]   # kept levels outside
        outermost = keep[:, :, t] & (kept_above == 0)
        if problem.tensors[t].read_write:
            r = content - part
            f = np.where(outermost, 0, deltas - part)
            u = content
        else:
            r = content
            f = np.where(outermost, 0, deltas)
            u = np.zeros_like(content)
        k = keep[:, :, t]
        reads[:, :, t] = np.where(k, r, 0)
        fills[:, :, t] = np.where(k, f, 0)
        updates[:, :, t] = np.where(k, u, 0)

    return DataMovement(tile=tile, reads=reads, fills=fills, updates=updates,
                        partition=partition, instances=instances, macs=macs,
                        compute_instances=compute_instances, keep=keep)


# ------------------------------------------------------------------ spatial
def _distinct_children(proj: np.ndarray, spatial: np.ndarray, child_ext: np.ndarray) -> np.ndarray:
    """``int64[B]``: distinct tiles of one tensor among the children of a spatial fan-out.

    Child ``i`` sits at ``i_d * child_ext[d]`` along each dimension; along a tensor axis
    ``sum(coef * dim)`` two children coincide when their offsets agree.  Axes are treated
    as independent (each dimension appears in one axis, as in convolutions and matmuls).
    """
    B = spatial.shape[0]
    out = np.ones(B, np.int64)
    for axis in proj:
        dims = np.nonzero(axis)[0]
        active = [d for d in dims]
        if not active:
            continue
        n = spatial[:, active]                                   # [B, k]
        step = child_ext[:, active] * axis[active]               # [B, k]
        if len(active) == 1:
            out *= n[:, 0]
            continue
        out *= _distinct_sums(n, step)
    return out


def _distinct_sums(n: np.ndarray, step: np.ndarray) -> np.ndarray:
    """Count of distinct ``sum_k i_k * step_k`` for ``i_k < n_k`` (per row)."""
    live = n > 1
    k_live = live.sum(axis=1)
    out = np.where(k_live == 0, 1, n.prod(axis=1))
    two = k_live == 2
    if two.any():
        idx = np.nonzero(two)[0]
        cols = np.argsort(~live[idx], axis=1, kind="stable")[:, :2]
        n1 = np.take_along_axis(n[idx], cols[:, :1], 1)[:, 0]
        n2 = np.take_along_axis(n[idx], cols[:, 1:], 1)[:, 0]
        a = np.take_along_axis(step[idx], cols[:, :1], 1)[:, 0]
        b = np.take_along_axis(step[idx], cols[:, 1:], 1)[:, 0]
        g = np.gcd(a, b)
        a1, b1 = a // g, b // g
        out[idx] = n1 * n2 - np.maximum(0, n1 - b1) * np.maximum(0, n2 - a1)
    many = np.nonzero(k_live > 2)[0]
    for i in many:                       # rare: three or more spatial dims on one axis
        vals = {0}
        for nk, sk in zip(n[i], step[i], strict=True):
            vals = {v + j * int(sk) for v in vals for j in range(int(nk))}
        out[i] = len(vals)
    return out


# ----------------------------------------------------------------- temporal
def _loops_above(m: MappingBatch, ext: np.ndarray, level: int):
    """Temporal loops above ``level``, innermost first: ``(dim, bound, stride)`` as ``[B]``."""
    for lp in range(level - 1, -1, -1):
        order = m.order[:, lp]                                  # [B, D] innermost first
        base = ext[:, lp + 1] * m.spatial[:, lp]                # [B, D] stride of this level
        bound = np.take_along_axis(m.temporal[:, lp], order, axis=1)
        stride = np.take_along_axis(base, order, axis=1)
        for k in range(order.shape[1]):
            yield order[:, k], bound[:, k], stride[:, k]


def _deltas(proj: np.ndarray, m: MappingBatch, ext: np.ndarray, level: int,
            tile: np.ndarray) -> np.ndarray:
    """``int64[B]``: words newly needed by one instance of ``level`` over the run (fills)."""
    sliding = (np.count_nonzero(proj, axis=1) > 1).any()
    if not sliding:
        # Rectangular tensor: a tile is refetched whenever the innermost relevant loop
        # above it (or any loop outside that one) advances.
        relevant = (proj != 0).any(axis=0)
        seen = np.zeros(len(tile), bool)
        mult = np.ones(len(tile), np.int64)
        for dim, n, _ in _loops_above(m, ext, level):
            seen |= (n > 1) & relevant[dim]
            mult *= np.where(seen, n, 1)
        return tile * mult
    return _deltas_sliding(proj, m, ext, level, tile)


def _deltas_sliding(proj, m, ext, level, tile):
    """Dynamic programme over Timeloop's extrapolated iteration order (see module doc).

    States: 0 = no gradient, ``1 + 2a + s`` = moving along axis ``a`` (``s`` 1 = backwards).
    ``C[:, s]`` is the weighted delta sum of the inner block entered in state ``s`` and
    ``out[:, s]`` the state it leaves in; each loop doubles the block (iteration 0, then
    iteration 1 weighted by ``bound - 1``).
    """
    B, _, D = m.temporal.shape
    A = proj.shape[0]
    S = 1 + 2 * A
    spans = 1 + (ext[:, level] - 1) @ proj.T                    # [B, A] tile extents
    rows = np.arange(B)
    C = np.zeros((B, S), np.int64)
    out = np.tile(np.arange(S), (B, 1))
    back = np.zeros((B, D), np.int64)                           # active inner displacement
    for dim, n, stride in _loops_above(m, ext, level):
        active = n > 1
        step = np.zeros((B, D), np.int64)
        step[rows, dim] = stride
        U = (step - back) @ proj.T                              # [B, A] axis displacement
        newC = C.copy()
        newout = out.copy()
        for s in range(S):
            s1 = out[:, s]
            delta, s2 = _transition(U, spans, tile, s1)
            inner = C[rows, s2]
            newC[:, s] = C[:, s] + (n - 1) * (delta + inner)
            newout[:, s] = out[rows, s2]
        C = np.where(active[:, None], newC, C)
        out = np.where(active[:, None], newout, out)
        back += np.where(active, 1, 0)[:, None] * step
    return tile + C[:, 0]


def _transition(U: np.ndarray, spans: np.ndarray, tile: np.ndarray, state: np.ndarray):
    """Timeloop's AAHR subtraction with reset-on-stride-change, for a displacement ``U``.

    Equal tiles: nothing new, gradient cleared.  No overlap, or a move along two axes:
    the whole tile, gradient cleared.  A move along one axis that keeps an overlap: only
    the uncovered slab, provided the previous move went the same way (or there was none);
    otherwise the whole tile and the gradient is cleared.
    """
    moved = U != 0
    count = moved.sum(axis=1)
    apart = (np.abs(U) >= spans).any(axis=1)
    axis = np.argmax(moved, axis=1)
    rows = np.arange(len(U))
    shift = np.abs(U[rows, axis])
    grad = 1 + 2 * axis + (U[rows, axis] < 0)
    single = (count == 1) & ~apart
    compatible = single & ((state == 0) | (state == grad))
    slab = shift * (tile // spans[rows, axis])
    delta = np.where(count == 0, 0, np.where(compatible, slab, tile))
    new_state = np.where(compatible, grad, 0)
    return delta, new_state


__all__ = ["DataMovement", "analyze"]
