"""Compiled (numba) expectation of fixed-structured tiles, for the batched sparse pricing
(``cost_models/sparseloop_fast.py``'s ``_tile``): ``expected_tile`` and ``tile_metadata``
of ``cost_models/sparseloop_analysis.py`` (rules SL1-SL3: Timeloop's fixed-structured
density model, ``GetMetaDataTileOccupancyGivenDataTile`` and the format models'
``GetOccupancy``) for many distinct tiles of one tensor at one level, in the same
floating-point operations and order as the Python reference, so the results are equal
(``tests/test_sparseloop_fast.py``).  Hypergeometric densities stay in Python.

Format codes: :data:`CODES`.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

#: rank format -> code of ``fmt`` below
CODES = {"UB": 0, "UOP": 1, "RLE": 2, "B": 3, "CP": 4}


@njit(cache=True)
def _prob(size, occ, dens):
    """``DensityModel.prob`` of a fixed-structured density ``dens`` (``d`` or the
    constraint's occupancy / shape)."""
    exact = size * dens
    lo = math.floor(exact)
    hi = math.ceil(exact)
    frac = exact - lo
    if lo == occ:
        return 1 - frac
    if hi == occ:
        return frac
    return 0.0


@njit(cache=True)
def _max_occupancy(size, d):
    exact = size * d
    lo = math.floor(exact)
    if exact - lo == 0:
        return lo
    return math.ceil(exact)


@njit(cache=True)
def _metadata(shape, occ, nr, i2o, fmt, mb, pb, fiber, subtile, out):
    """``tile_metadata``: ``out[r] = (metadata units, payload units, md bits, pl bits)``."""
    cons = occ / shape
    max_fibers = 1
    cur = shape
    for r in range(nr - 1, -1, -1):
        fs = fiber[r]
        nxt = subtile[r]
        top = r == 0 if i2o else r == nr - 1
        if fs == 1 and not top:
            out[r, 0], out[r, 1], out[r, 2], out[r, 3] = 0.0, 0.0, 0, 0
        else:
            out[r, 2], out[r, 3] = mb[r], pb[r]
            f = fmt[r]
            if f == 0:
                out[r, 0] = float(max_fibers * fs)
                out[r, 1] = float(max_fibers * fs)
            else:
                fibers = max_fibers * (1 - _prob(cur, 0, cons))
                if f == 1:
                    out[r, 0], out[r, 1] = 0.0, fibers * (fs + 1)
                else:
                    empty = _prob(nxt, 0, cons)
                    if f == 2:
                        nnz = fs * (1 - empty)
                        out[r, 0], out[r, 1] = nnz * fibers, nnz * fibers
                    else:
                        nz = math.ceil(fs * (1 - empty))
                        if f == 3:
                            out[r, 0], out[r, 1] = fibers * fs, fibers * nz
                        else:
                            out[r, 0], out[r, 1] = nz * fibers, nz * fibers
        max_fibers *= fs
        cur = nxt
    for r in range(nr):
        if out[r, 0] != 0 or out[r, 1] != 0:
            out[r, 1] = 0.0
            break


@njit(cache=True)
def structured_tiles(keys, d, has_md, nr, i2o, compressed, fmt, mb, pb, block, vw_row,
                     ed_o, scale_o, ratio_o, words_o, bits_o, md_o):
    """Per distinct tile ``keys[u] = (shape, parent has metadata, fiber shapes...,
    subtile shapes...)``: expected density, utilized-instance factor, vector-width ratio,
    capacity words and metadata bits, expected metadata per rank (``md_o[u, r]``)."""
    occ = np.zeros((max(nr, 1), 4))
    for u in range(keys.shape[0]):
        shape = keys[u, 0]
        par = keys[u, 1] != 0
        fiber = keys[u, 2:2 + nr]
        subtile = keys[u, 2 + nr:3 + 2 * nr]
        hi = _max_occupancy(shape, d)
        lo = 0 if shape == 0 else math.floor(math.floor(shape * d) / shape * shape)
        ks = np.zeros(hi - lo + 1, np.int64)
        qs = np.zeros(hi - lo + 1)
        nl = 0
        for k in range(lo, hi + 1):
            q = _prob(shape, k, d)
            if q != 0:
                ks[nl] = k
                qs[nl] = q
                nl += 1
        scale = 1.0
        if par and lo == 0 and nl > 0 and qs[0] < 1.0:
            first = qs[0]
            scale = 1.0 - first
            for i in range(nl):
                qs[i] = qs[i] / (1 - first)
            qs[0] = 0.0
        total = 0.0
        for i in range(nl):
            k, q = ks[i], qs[i]
            total += q * k
            if has_md:
                _metadata(shape, k, nr, i2o, fmt, mb, pb, fiber, subtile, occ)
                for r in range(nr):
                    if i == 0:
                        md_o[u, r, 0] = occ[r, 0] * q
                        md_o[u, r, 1] = occ[r, 1] * q
                        md_o[u, r, 2] = occ[r, 2]
                        md_o[u, r, 3] = occ[r, 3]
                    else:
                        md_o[u, r, 0] += occ[r, 0] * q
                        md_o[u, r, 1] += occ[r, 1] * q
        de = total / shape
        ratio = 1.0
        if compressed and block > 1 and de < 1.0:
            idx = math.floor(de / 0.1) - 1 if de >= 0.1 else 0
            if vw_row[idx] > shape // block:
                tot = 0.0                # the nonzero terms of sum over k = 1..shape
                for i in range(2):
                    k = math.floor(shape * d) + i
                    if 1 <= k <= shape:
                        p = _prob(shape, k, d)
                        if p != 0:
                            tot += math.ceil(k / block) * p
                ratio = tot / (shape * d / block)
        words = shape
        nbits = 0
        if has_md:
            words = _max_occupancy(shape, d)
            _metadata(shape, words, nr, i2o, fmt, mb, pb, fiber, subtile, occ)
            for r in range(nr):
                nbits += (math.ceil(occ[r, 0]) * np.int64(occ[r, 2])
                          + math.ceil(occ[r, 1]) * np.int64(occ[r, 3]))
        ed_o[u], scale_o[u], ratio_o[u] = de, scale, ratio
        words_o[u], bits_o[u] = words, nbits
