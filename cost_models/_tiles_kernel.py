"""Compiled (numba) expectation of tiles, for the batched sparse pricing
(``cost_models/sparseloop_fast.py``'s ``_tiles``): ``expected_tile`` and ``tile_metadata``
of ``cost_models/sparseloop_analysis.py`` (rules SL1-SL3: Timeloop's fixed-structured and
hypergeometric density models, ``GetMetaDataTileOccupancyGivenDataTile`` and the format
models' ``GetOccupancy``) for many distinct tiles of one tensor at one level, in the same
floating-point operations and order as the Python reference, so the results are equal
(``tests/test_sparseloop_fast.py``).  The occupancies a tile may hold and their
probabilities (``DensityModel.occupancies``) come from the caller.

Hypergeometric probabilities need ``lgamma``: :func:`lgamma` is CPython's own
(``Modules/mathmodule.c``, ``m_lgamma``: Lanczos' approximation with its coefficients), which
``math.lgamma`` runs, so the reference and this module agree to the bit (the C library's
``lgamma``, which numba's ``math.lgamma`` calls, differs in the last place on about 40 % of
arguments); ``tests/test_sparseloop_fast.py`` compares both on a million arguments.

Format codes: :data:`CODES`; density kinds: :data:`KINDS`.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

#: rank format -> code of ``fmt`` below
CODES = {"UB": 0, "UOP": 1, "RLE": 2, "B": 3, "CP": 4}
#: density model -> code of ``kind`` below (``DensityModel``: any other is hypergeometric)
KINDS = {"fixed_structured": 0, "hypergeometric": 1}

_LANCZOS_G = 6.024680040776729583740234375
_LANCZOS_NUM = np.array([
    23531376880.410759688572007674451636754734846804940,
    42919803642.649098768957899047001988850926355848959,
    35711959237.355668049440185451547166705960488635843,
    17921034426.037209699919755754458931112671403265390,
    6039542586.3520280050642916443072979210699388420708,
    1439720407.3117216736632230727949123939715485786772,
    248874557.86205415651146038641322942321632125127801,
    31426415.585400194380614231628318205362874684987640,
    2876370.6289353724412254090516208496135991145378768,
    186056.26539522349504029498971604569928220784236328,
    8071.6720023658162106380029022722506138218516325024,
    210.82427775157934587250973392071336271166969580291,
    2.5066282746310002701649081771338373386264310793408])
_LANCZOS_DEN = np.array([0.0, 39916800.0, 120543840.0, 150917976.0, 105258076.0,
                         45995730.0, 13339535.0, 2637558.0, 357423.0, 32670.0, 1925.0,
                         66.0, 1.0])


@njit(cache=True)
def lgamma(x):
    """``math.lgamma`` of ``x > 0`` (CPython's ``m_lgamma``), bit for bit."""
    if x == math.floor(x) and x <= 2.0:
        return 0.0
    num = 0.0
    den = 0.0
    if x < 5.0:
        for i in range(12, -1, -1):
            num = num * x + _LANCZOS_NUM[i]
            den = den * x + _LANCZOS_DEN[i]
    else:
        for i in range(13):
            num = num / x + _LANCZOS_NUM[i]
            den = den / x + _LANCZOS_DEN[i]
    r = math.log(num / den) - _LANCZOS_G
    r += (x - 0.5) * (math.log(x + _LANCZOS_G - 0.5) - 1)
    return r


@njit(cache=True)
def _lchoose(a, b):
    return lgamma(a + 1.0) - lgamma(b + 1.0) - lgamma(a - b + 1.0)


@njit(cache=True)
def _hypergeom(k, r, n, N):
    """``sparseloop_analysis._hypergeom``."""
    if k > r or k > n or (n + r > N and k < n + r - N) or k < 0:
        return 0.0
    return math.exp(_lchoose(r, k) + _lchoose(N - r, n - k) - _lchoose(N, n))


@njit(cache=True)
def _p(kind, size, occ, cs, co, d, N, total):
    """``DensityModel.prob(size, occ)``, conditioned on ``(cs, co)`` when ``cs > 0``."""
    if kind == 0:
        return _prob(size, occ, co / cs if cs > 0 else d)
    if cs > 0:
        return _hypergeom(occ, co, size, cs)
    return _hypergeom(occ, total, size, N)


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
def _empty(kind, n, j, shape, occ, lg1, lcn):
    """``DensityModel.prob(n, 0, (shape, occ))``: the chance that a subtile of ``n``
    elements of a tile of ``shape`` holding ``occ`` nonzeros is empty.  Hypergeometric:
    ``_hypergeom(0, occ, n, shape)`` with ``lgamma(n + 1)`` and ``lchoose(shape, n)``
    precomputed per tile (``lg1[j]``, ``lcn[j]``); ``lchoose(occ, 0)`` is exactly 0.0, so
    the same value, one ``lgamma`` pair per occupancy instead of nine calls."""
    if kind == 0:
        return _prob(n, 0, occ / shape)
    if n + occ > shape:
        return 0.0
    a = shape - occ
    x = lgamma(a + 1.0) - lg1[j] - lgamma(a - n + 1.0)
    return math.exp(0.0 + x - lcn[j])


@njit(cache=True)
def _vector_sum(kind, shape, block, d, N, total):
    """``sum(ceil(k / block) * prob(shape, k) for k in 1..shape)`` (the vector-width
    correction, SL9).  Hypergeometric: ``_hypergeom(k, total, shape, N)`` with its terms that
    do not depend on ``k`` computed once (the same operations in the same order)."""
    tot = 0.0
    if kind == 0:
        for k in range(1, shape + 1):
            tot += math.ceil(k / block) * _prob(shape, k, d)
        return tot
    r, n = total, shape
    a = lgamma(r + 1.0)
    b = lgamma(N - r + 1.0)
    c = _lchoose(N, n)
    for k in range(1, shape + 1):
        p = 0.0
        if not (k > r or k > n or (n + r > N and k < n + r - N)):
            x = a - lgamma(k + 1.0) - lgamma(r - k + 1.0)
            y = b - lgamma(n - k + 1.0) - lgamma(N - r - (n - k) + 1.0)
            p = math.exp(x + y - c)
        tot += math.ceil(k / block) * p
    return tot


@njit(cache=True)
def _metadata(kind, shape, occ, nr, i2o, fmt, mb, pb, fiber, subtile, lg1, lcn, out):
    """``tile_metadata``: ``out[r] = (metadata units, payload units, md bits, pl bits)``.
    ``lg1``, ``lcn``: per subtile ``j`` (``nr + 1``: the tile itself) ``lgamma(n + 1)`` and
    ``lchoose(shape, n)`` of its size ``n`` (hypergeometric only)."""
    max_fibers = 1
    cur = shape
    jc = nr + 1
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
                fibers = max_fibers * (1 - _empty(kind, cur, jc, shape, occ, lg1, lcn))
                if f == 1:
                    out[r, 0], out[r, 1] = 0.0, fibers * (fs + 1)
                else:
                    empty = _empty(kind, nxt, r, shape, occ, lg1, lcn)
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
        jc = r
    for r in range(nr):
        if out[r, 0] != 0 or out[r, 1] != 0:
            out[r, 1] = 0.0
            break


@njit(cache=True, parallel=True)
def expected_tiles(keys, kind, d, N, total, lo, hi, live_k, live_q, off, has_md, nr, i2o,
                   compressed, fmt, mb, pb, block, vw_row, ed_o, scale_o, ratio_o, words_o,
                   bits_o, md_o):
    """Per distinct tile ``keys[u] = (shape, parent has metadata, fiber shapes...,
    subtile shapes...)``, whose minimum and maximum occupancies are ``lo[u]``, ``hi[u]``
    and whose possible occupancies and their probabilities are ``live_k``, ``live_q``
    ``[off[u]:off[u + 1]]``: expected density, utilized-instance factor, vector-width
    ratio, capacity words and metadata bits, expected metadata per rank (``md_o[u, r]``).
    ``vw_row``: the VectorWidthCoefficientTable row of ``block``, zeros when the table has
    none (a ratio that needs it is then NaN: the caller sends the row to the reference,
    which names the level).
    Tiles run in parallel."""
    qs = np.zeros(live_q.shape[0])
    for u in prange(keys.shape[0]):
        occ = np.zeros((max(nr, 1), 4))
        shape = keys[u, 0]
        par = keys[u, 1] != 0
        fiber = keys[u, 2:2 + nr]
        subtile = keys[u, 2 + nr:3 + 2 * nr]
        lg1 = np.zeros(nr + 2)
        lcn = np.zeros(nr + 2)
        if kind == 1 and has_md:
            for j in range(nr + 2):
                n = shape if j == nr + 1 else subtile[j]
                lg1[j] = lgamma(n + 1.0)
                lcn[j] = _lchoose(shape, n)
        a, b = off[u], off[u + 1]
        for i in range(a, b):
            qs[i] = live_q[i]
        scale = 1.0
        if par and lo[u] == 0 and b > a and qs[a] < 1.0:
            first = qs[a]
            scale = 1.0 - first
            for i in range(a, b):
                qs[i] = qs[i] / (1 - first)
            qs[a] = 0.0
        total_occ = 0.0
        for i in range(a, b):
            k, q = live_k[i], qs[i]
            total_occ += q * k
            if has_md:
                _metadata(kind, shape, k, nr, i2o, fmt, mb, pb, fiber, subtile, lg1, lcn,
                          occ)
                for r in range(nr):
                    if i == a:
                        md_o[u, r, 0] = occ[r, 0] * q
                        md_o[u, r, 1] = occ[r, 1] * q
                        md_o[u, r, 2] = occ[r, 2]
                        md_o[u, r, 3] = occ[r, 3]
                    else:
                        md_o[u, r, 0] += occ[r, 0] * q
                        md_o[u, r, 1] += occ[r, 1] * q
        de = total_occ / shape
        ratio = 1.0
        if compressed and block > 1 and de < 1.0:
            idx = math.floor(de / 0.1) - 1 if de >= 0.1 else 0
            if vw_row[0] == 0:                   # no table row for this block size
                ratio = np.nan
            elif vw_row[idx] > shape // block:
                tot = _vector_sum(kind, shape, block, d, N, total)
                ratio = tot / (shape * de / block)
        words = shape
        nbits = 0
        if has_md:
            words = hi[u]
            _metadata(kind, shape, words, nr, i2o, fmt, mb, pb, fiber, subtile, lg1, lcn,
                      occ)
            for r in range(nr):
                nbits += (math.ceil(occ[r, 0]) * np.int64(occ[r, 2])
                          + math.ceil(occ[r, 1]) * np.int64(occ[r, 3]))
        ed_o[u], scale_o[u], ratio_o[u] = de, scale, ratio
        words_o[u], bits_o[u] = words, nbits
