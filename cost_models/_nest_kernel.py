"""Compiled per-mapping kernel of :mod:`cost_models.nest` (numba, parallel over the batch).

The rules are documented in ``cost_models/nest.py`` and ``cost_models/README.md``; this file
is their loop-level implementation.  Arrays follow the shapes of
:class:`~mapspace.mapping.MappingBatch`; projections arrive as padded term tables
``tdim, tcoef: int64[T, A, K]`` (coefficient 0 = padding) with only *live* terms (dimensions
of size > 1), so an axis *slides* when it has two or more terms.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from mapspace.kernels import tile_size as _tile


@njit(cache=True, inline="always")
def _distinct(tdim, tcoef, t, spatial, child_ext):
    """Distinct child tiles of tensor ``t`` among a fan-out with factors ``spatial[D]``."""
    total = 1
    for a in range(tdim.shape[1]):
        nterm = 0
        n1 = n2 = s1 = s2 = 1
        prod = 1
        for k in range(tdim.shape[2]):
            c = tcoef[t, a, k]
            if c == 0:
                continue
            d = tdim[t, a, k]
            n = spatial[d]
            if n > 1:
                nterm += 1
                prod *= n
                if nterm == 1:
                    n1, s1 = n, c * child_ext[d]
                else:
                    n2, s2 = n, c * child_ext[d]
        if nterm <= 1:
            total *= prod
        elif nterm == 2:
            g = np.gcd(s1, s2)
            a1, b1 = s1 // g, s2 // g
            total *= n1 * n2 - max(0, n1 - b1) * max(0, n2 - a1)
        else:                                   # three or more spatial terms: enumerate
            vals = np.zeros(prod, np.int64)
            cnt = 1
            for k in range(tdim.shape[2]):
                c = tcoef[t, a, k]
                if c == 0 or spatial[tdim[t, a, k]] <= 1:
                    continue
                n = spatial[tdim[t, a, k]]
                step = c * child_ext[tdim[t, a, k]]
                for j in range(1, n):
                    for i in range(cnt):
                        vals[j * cnt + i] = vals[i] + j * step
                cnt *= n
            total *= np.unique(vals).shape[0]
    return total


@njit(cache=True, inline="always")
def _deltas(tdim, tcoef, dense, t, temporal, spatial, order, ext, level, tile, scratch):
    """Words newly needed by one instance of ``level`` over the run (Timeloop's deltas).

    Dynamic programme over the extrapolated iteration order: every temporal loop above the
    level runs iteration 0 and iteration 1 (weighted ``bound - 1``); a step is charged the
    set difference of consecutive tiles while the tile keeps its translation, and the
    whole tile when the translation changes (Timeloop's
    ``OperationSpace::SaveAndSubtractIfSameStride``: a new translation after a recorded
    one discards the previous tile and forgets the translation; a first translation is
    recorded even when the tiles do not overlap; a zero translation changes nothing).
    States: 0 = no translation recorded, ``1 + 2a + s`` = moving along axis ``a``
    (``s`` = 1 backwards), ``2 + 2A`` - 1 = a translation along several axes.
    ``dense[t, a, d]`` is the coefficient of dimension ``d`` in axis ``a``.
    """
    A = tdim.shape[1]
    D = ext.shape[1]
    spans, sliding, C, out, newC, newout, backU, U = scratch
    any_sliding = False
    for a in range(A):
        span = 1
        nt = 0
        for k in range(tdim.shape[2]):
            c = tcoef[t, a, k]
            if c != 0:
                span += c * (ext[level, tdim[t, a, k]] - 1)
                nt += 1
        spans[a] = span
        sliding[a] = nt > 1
        any_sliding |= nt > 1
        backU[a] = 0                     # axis displacement undone by active inner loops
    if not any_sliding:
        # No window can overlap its neighbour: the tile is refetched whenever the innermost
        # relevant loop above it, or any loop outside that one, advances (rule N4).
        mult = 1
        seen = False
        for lp in range(level - 1, -1, -1):
            for k in range(D):
                d = order[lp, k]
                n = temporal[lp, d]
                if n <= 1:
                    continue
                if not seen:
                    for a in range(A):
                        if dense[t, a, d] != 0:
                            seen = True
                if seen:
                    mult *= n
        return tile * mult
    S = 2 + 2 * A
    other = S - 1
    for s in range(S):
        C[s] = 0
        out[s] = s
    for lp in range(level - 1, -1, -1):
        for k in range(D):
            d = order[lp, k]
            n = temporal[lp, d]
            if n <= 1:
                continue
            stride = ext[lp + 1, d] * spatial[lp, d]
            moved = 0
            apart = False
            axis = 0
            for a in range(A):
                step = dense[t, a, d] * stride
                u = step - backU[a]
                backU[a] += step
                U[a] = u
                if u != 0:
                    moved += 1
                    axis = a
                    if not sliding[a] or abs(u) >= spans[a]:
                        apart = True
            grad = 1 + 2 * axis + (1 if U[axis] < 0 else 0)
            slab = tile if apart else abs(U[axis]) * (tile // spans[axis])
            if moved > 1:
                grad = other
                slab = tile
            for s in range(S):
                s1 = out[s]
                if moved == 0:              # stationary: nothing new, translation kept
                    delta = 0
                    s2 = s1
                elif s1 == 0 or s1 == grad:
                    delta = slab
                    s2 = grad
                else:                       # translation changed: whole tile, forgotten
                    delta = tile
                    s2 = 0
                newC[s] = C[s] + (n - 1) * (delta + C[s2])
                newout[s] = out[s2]
            for s in range(S):
                C[s] = newC[s]
                out[s] = newout[s]
    return tile + C[0]


@njit(cache=True, inline="always")
def _one(b, temporal, spatial, order, keep, tdim, tcoef, dense, read_write, tile_o, reads_o,
         fills_o, updates_o, part_o, inst_o, macs_o, cinst_o, work):
    L, D = temporal.shape[1], temporal.shape[2]
    T = keep.shape[2]
    ext, union, deltas, content, part, G, tiles, fans, scratch = work
    tm = temporal[b]
    sp = spatial[b]
    od = order[b]
    kp = keep[b]
    for d in range(D):
        ext[L, d] = 1
    for l in range(L - 1, -1, -1):
        for d in range(D):
            ext[l, d] = ext[l + 1, d] * tm[l, d] * sp[l, d]
    inst = 1
    macs = 1
    for l in range(L):
        inst_o[b, l] = inst
        fan = 1
        for d in range(D):
            fan *= sp[l, d]
            macs *= tm[l, d]
        fans[l] = fan
        inst *= fan
    macs_o[b] = macs
    cinst_o[b] = inst
    for t in range(T):
        for l in range(L):
            tiles[l] = _tile(tdim, tcoef, t, ext[l])
            G[l] = _distinct(tdim, tcoef, t, sp[l], ext[l + 1]) if fans[l] > 1 else 1
        part[0] = tiles[0]
        for l in range(1, L):
            if fans[l - 1] > 1:
                for d in range(D):
                    union[d] = ext[l, d] * sp[l - 1, d]
                part[l] = part[l - 1] * tiles[l] // _tile(tdim, tcoef, t, union)
            else:
                part[l] = part[l - 1]
        for l in range(L):
            deltas[l] = 0
            if kp[l, t]:
                deltas[l] = _deltas(tdim, tcoef, dense, t, tm, sp, od, ext, l, tiles[l],
                                    scratch)
        content[L - 1] = G[L - 1] * macs
        for l in range(L - 2, -1, -1):
            below = deltas[l + 1] if kp[l + 1, t] else content[l + 1]
            content[l] = G[l] * below
        outermost = True
        for l in range(L):
            if not kp[l, t]:
                tile_o[b, l, t] = 0
                part_o[b, l, t] = 0
                reads_o[b, l, t] = 0
                updates_o[b, l, t] = 0
                fills_o[b, l, t] = 0
                continue
            tile_o[b, l, t] = tiles[l]
            part_o[b, l, t] = part[l]
            if read_write[t]:
                reads_o[b, l, t] = content[l] - part[l]
                updates_o[b, l, t] = content[l]
                fills_o[b, l, t] = 0 if outermost else deltas[l] - part[l]
            else:
                reads_o[b, l, t] = content[l]
                updates_o[b, l, t] = 0
                fills_o[b, l, t] = 0 if outermost else deltas[l]
            outermost = False


@njit(cache=True)
def nest_work(L, D, A):
    """Per-thread scratch arrays for :func:`_one` (``L`` levels, ``D`` dims, ``A`` axes)."""
    S = 2 + 2 * A
    scratch = (np.empty(A, np.int64), np.zeros(A, np.bool_), np.zeros(S, np.int64),
               np.zeros(S, np.int64), np.zeros(S, np.int64), np.zeros(S, np.int64),
               np.zeros(A, np.int64), np.zeros(A, np.int64))
    return (np.ones((L + 1, D), np.int64), np.empty(D, np.int64), np.zeros(L, np.int64),
            np.zeros(L, np.int64), np.zeros(L, np.int64), np.ones(L, np.int64),
            np.zeros(L, np.int64), np.ones(L, np.int64), scratch)


@njit(cache=True, parallel=True)
def nest_kernel(temporal, spatial, order, keep, tdim, tcoef, dense, read_write,
                tile_o, reads_o, fills_o, updates_o, part_o, inst_o, macs_o, cinst_o):
    """Fill the ``*_o`` output arrays for every mapping of the batch (chunked by thread)."""
    B, L, D = temporal.shape
    nchunks = min(B, 64)
    for c in prange(nchunks):
        work = nest_work(L, D, tdim.shape[1])
        for b in range(c * B // nchunks, (c + 1) * B // nchunks):
            _one(b, temporal, spatial, order, keep, tdim, tcoef, dense, read_write, tile_o,
                 reads_o, fills_o, updates_o, part_o, inst_o, macs_o, cinst_o, work)
