"""Compiled (numba) per-mapping kernels shared by the mapspace and the cost models.

Projections arrive as padded term tables ``tdim, tcoef: int64[T, A, K]`` (coefficient 0 =
padding); see :func:`term_tables`.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import numba
import numpy as np
from numba import njit, prange


@contextmanager
def kernel_threads(n: int | None) -> Iterator[None]:
    """Inside the block, compiled kernels run on at most ``n`` threads of numba's pool
    (``None``: unchanged).  Results never depend on it (every kernel splits work in fixed
    chunks); only speed does.  Numba's setting is per calling thread and restored on exit."""
    if n is None:
        yield
        return
    old = numba.get_num_threads()
    numba.set_num_threads(max(1, min(int(n), numba.config.NUMBA_NUM_THREADS)))
    try:
        yield
    finally:
        numba.set_num_threads(old)


def term_tables(projections: tuple[np.ndarray, ...], sizes: tuple[int, ...]
                ) -> tuple[np.ndarray, np.ndarray]:
    """Projections (``int64[A, D]`` per tensor) as padded term tables of *live* terms.

    A term over a dimension of size 1 never moves a tile, so it is dropped: an axis slides
    (can overlap its neighbour tile) only when two or more live terms remain.
    """
    T = len(projections)
    A = max(p.shape[0] for p in projections)
    K = max(1, max(int(np.count_nonzero(p, axis=1).max()) for p in projections))
    tdim = np.zeros((T, A, K), np.int64)
    tcoef = np.zeros((T, A, K), np.int64)
    for t, proj in enumerate(projections):
        for a in range(proj.shape[0]):
            k = 0
            for d in np.nonzero(proj[a])[0]:
                if sizes[d] > 1:
                    tdim[t, a, k], tcoef[t, a, k] = d, proj[a, d]
                    k += 1
    return tdim, tcoef


def projection_tables(projections: tuple[np.ndarray, ...], sizes: tuple[int, ...]
                      ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`term_tables` plus ``dense: int64[T, A, D]``, the coefficient of each dimension
    in each axis with dead (size-1) dimensions zeroed."""
    tdim, tcoef = term_tables(projections, sizes)
    dense = np.zeros((len(projections), tdim.shape[1], len(sizes)), np.int64)
    live = np.array(sizes) > 1
    for t, proj in enumerate(projections):
        dense[t, :proj.shape[0]] = proj * live
    return tdim, tcoef, dense


@njit(cache=True, inline="always")
def tile_size(tdim, tcoef, t, ext):
    """Elements of tensor ``t`` in a box of extents ``ext[D]`` (axis-aligned hull)."""
    size = 1
    for a in range(tdim.shape[1]):
        span = 1
        for k in range(tdim.shape[2]):
            c = tcoef[t, a, k]
            if c != 0:
                span += c * (ext[tdim[t, a, k]] - 1)
        size *= span
    return size


# Reason bits (mirrors mapspace.validity.Reason).
_FACTORS, _NONPOS, _ORDER, _FANOUT, _CAPACITY, _UNKEPT = 1, 2, 4, 8, 16, 32


@njit(cache=True, inline="always")
def validate_one(b, temporal, spatial, order, spatial_x, keep, sizes, fan_x, fan_y, capacity,
                 bits, datawidth, tdim, tcoef, reasons_o, bad_dims_o, over_o, usage_o,
                 unkept_o, ext, seen):
    """Reason bits and detail rows of mapping ``b`` (``ext``, ``seen``: scratch ``[D]``)."""
    L, D = temporal.shape[1], temporal.shape[2]
    T = keep.shape[2]
    r = 0
    for d in range(D):
        ext[d] = 1
    for l in range(L - 1, -1, -1):
        sx = 1
        sy = 1
        for d in range(D):
            tf = temporal[b, l, d]
            sf = spatial[b, l, d]
            if tf < 1 or sf < 1:
                r |= _NONPOS
                tf = max(tf, 1)
                sf = max(sf, 1)
            ext[d] *= tf * sf
            if spatial_x[b, l, d]:
                sx *= sf
            else:
                sy *= sf
        over = sx > fan_x[l] or sy > fan_y[l]
        over_o[b, l] = over
        if over:
            r |= _FANOUT
        for d in range(D):
            seen[d] = False
        for d in range(D):
            o = order[b, l, d]
            if o < 0 or o >= D or seen[o]:
                r |= _ORDER
            else:
                seen[o] = True
        used = 0
        for t in range(T):
            if keep[b, l, t]:
                n = tile_size(tdim, tcoef, t, ext)
                if bits[t] > 0:
                    n = -(-n * bits[t] // datawidth[l])
                used += n
        usage_o[b, l] = used
        if capacity[l] >= 0 and used > capacity[l]:
            r |= _CAPACITY
    for d in range(D):
        bad = ext[d] != sizes[d]
        bad_dims_o[b, d] = bad
        if bad:
            r |= _FACTORS
    for t in range(T):
        any_keep = False
        for l in range(L):
            any_keep |= keep[b, l, t]
        unkept_o[b, t] = not any_keep
        if not any_keep:
            r |= _UNKEPT
    reasons_o[b] = r
    return r


@njit(cache=True, parallel=True)
def validity_kernel(temporal, spatial, order, spatial_x, keep, sizes, fan_x, fan_y, capacity,
                    bits, datawidth, tdim, tcoef, reasons_o, bad_dims_o, over_o, usage_o,
                    unkept_o):
    """Per mapping: reason bits and the detail arrays of :class:`mapspace.validity.Validity`."""
    B, L, D = temporal.shape
    nchunks = min(B, 64)
    for c in prange(nchunks):
        ext = np.ones(D, np.int64)
        seen = np.zeros(D, np.bool_)
        for b in range(c * B // nchunks, (c + 1) * B // nchunks):
            validate_one(b, temporal, spatial, order, spatial_x, keep, sizes, fan_x, fan_y,
                         capacity, bits, datawidth, tdim, tcoef, reasons_o, bad_dims_o, over_o,
                         usage_o, unkept_o, ext, seen)
