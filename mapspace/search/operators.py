"""Gene operators on :class:`~mapspace.space.Decisions`, shared by the genetic and annealing
strategies.

A decision is a set of independent *genes*: each dimension's factorization-table row, each
level's loop order, each level's X/Y split row (``spatial_x``) and each level's keep row.
Any combination of valid gene values is a point of the space, so genes can be exchanged
between two decisions (:func:`crossover`) or re-drawn one at a time (:func:`mutate`,
:func:`neighbour`) without repair.  Re-draws come from
:meth:`Mapspace.random_decisions`, so fixed prefixes, fixed splits and fixed keeps stay fixed.
All operators work on whole batches (``B`` rows) and draw only from the ``rng`` given.
"""

from __future__ import annotations

import numpy as np

from mapspace.naive_random import prime_factors
from mapspace.space import Decisions, Mapspace

#: gene kinds, in the order of :func:`gene_table`
FACTOR, ORDER, SPATIAL_X, KEEP = 0, 1, 2, 3


def gene_table(space: Mapspace) -> np.ndarray:
    """``int64[G, 2]``: ``(kind, index)`` of every gene that has more than one value
    (a dimension with several factorizations, a level with at least two free loops, a level
    with a free 2-D split, a level with a free keep choice)."""
    L, D = space.arch.num_levels, space.problem.num_dims
    fixed_keep, _ = space.keep_fixed
    genes = [(FACTOR, d) for d, t in enumerate(space.tables) if len(t) > 1]
    genes += [(ORDER, l) for l, p in enumerate(space.order_prefix) if D - len(p) >= 2]
    genes += [(SPATIAL_X, l) for l in range(L) if space.split(l) is None]
    genes += [(KEEP, l) for l in range(L) if not fixed_keep[l].all()]
    return np.array(genes, np.int64).reshape(len(genes), 2)


def local_moves(space: Mapspace) -> tuple[np.ndarray, ...]:
    """Per dimension ``d``, ``int64[F_d, K_d]``: for each row of ``space.tables[d]``, the
    rows reached by moving one prime factor from one slot to another (the smallest change
    of a factorization; CoSA's and the ``cpsat`` polish's move), valid ones first, ``-1``
    padded.  Rows are matched through an exact key: each slot's prime exponents in mixed
    radix.  A dimension whose key would not fit in 63 bits gets no moves (``K_d = 0``)."""
    out = []
    for d, table in enumerate(space.tables):
        R, S = table.shape
        primes = sorted(set(prime_factors(int(space.problem.sizes[d]))))
        if R < 2 or not primes:
            out.append(np.full((R, 0), -1, np.int64))
            continue
        exps = np.zeros((R, S, len(primes)), np.int64)
        for i, p in enumerate(primes):
            x = table.copy()
            while (hit := (x % p == 0) & (x > 0)).any():
                exps[:, :, i] += hit
                x = np.where(hit, x // p, x)
        radix = np.broadcast_to(exps.max(axis=(0, 1)) + 1, (S, len(primes))).ravel()
        if np.log2(radix.astype(np.float64)).sum() >= 62:
            out.append(np.full((R, 0), -1, np.int64))
            continue
        weight = np.concatenate([[1], np.cumprod(radix)[:-1]]).reshape(S, len(primes))
        key = (exps * weight).sum(axis=(1, 2))
        order = np.argsort(key, kind="stable")
        skey = key[order]
        moves = []
        for i in range(len(primes)):
            for a in range(S):
                for b in range(S):
                    if a == b:
                        continue
                    nk = key - weight[a, i] + weight[b, i]
                    pos = np.minimum(np.searchsorted(skey, nk), R - 1)
                    hit = (exps[:, a, i] > 0) & (skey[pos] == nk)
                    moves.append(np.where(hit, order[pos], -1))
        m = -np.sort(-np.stack(moves, axis=1), axis=1)        # valid rows first
        out.append(np.ascontiguousarray(m[:, :max(1, int((m >= 0).sum(1).max()))]))
    return tuple(out)


def _swap_free(space: Mapspace, order: np.ndarray, rows: np.ndarray, levels: np.ndarray,
               rng: np.random.Generator) -> None:
    """In place: swap two distinct free (non-prefix) positions of ``order[rows, levels]``."""
    D = order.shape[2]
    start = np.array([len(p) for p in space.order_prefix], np.int64)[levels]
    width = D - start
    ok = width >= 2
    rows, levels, start, width = rows[ok], levels[ok], start[ok], width[ok]
    i = rng.integers(0, np.maximum(width, 1))
    j = (i + 1 + rng.integers(0, np.maximum(width - 1, 1))) % np.maximum(width, 1)
    a, b = start + i, start + j
    va, vb = order[rows, levels, a], order[rows, levels, b]
    order[rows, levels, a], order[rows, levels, b] = vb, va


def mutate(space: Mapspace, dec: Decisions, rng: np.random.Generator,
           rate: float) -> Decisions:
    """Re-draw every gene independently with probability ``rate``.

    A factor, X/Y or keep gene is re-drawn uniformly; an order gene is, with equal chance,
    re-drawn uniformly or changed by swapping two free positions.  Shapes as ``dec``.
    """
    B, L = dec.order.shape[:2]
    D = dec.factor.shape[1]
    fresh = space.random_decisions(B, rng)
    factor = np.where(rng.random((B, D)) < rate, fresh.factor, dec.factor)
    m_order = rng.random((B, L)) < rate
    swap = rng.random((B, L)) < 0.5
    order = np.where((m_order & ~swap)[:, :, None], fresh.order, dec.order)
    rows, levels = np.nonzero(m_order & swap)
    _swap_free(space, order, rows, levels, rng)
    m_x = (rng.random((B, L)) < rate)[:, :, None]
    m_k = (rng.random((B, L)) < rate)[:, :, None]
    return Decisions(factor, order, np.where(m_x, fresh.spatial_x, dec.spatial_x),
                     np.where(m_k, fresh.keep, dec.keep))


def crossover(a: Decisions, b: Decisions, rng: np.random.Generator) -> Decisions:
    """Uniform crossover per gene: each gene of each child comes from ``a`` or ``b`` with
    equal chance.  ``a`` and ``b`` have the same length ``B``; so does the result."""
    B, L = a.order.shape[:2]
    D = a.factor.shape[1]
    f = rng.random((B, D)) < 0.5
    o, x, k = ((rng.random((B, L)) < 0.5)[:, :, None] for _ in range(3))
    return Decisions(np.where(f, a.factor, b.factor), np.where(o, a.order, b.order),
                     np.where(x, a.spatial_x, b.spatial_x), np.where(k, a.keep, b.keep))


def neighbour(space: Mapspace, dec: Decisions, rng: np.random.Generator,
              moves: tuple[np.ndarray, ...] | None = None) -> Decisions:
    """Change exactly one gene of each row, chosen uniformly among the genes with more than
    one value: a factor gene moves to a different table row, an order gene swaps two free
    positions or is re-drawn, an X/Y or keep gene is re-drawn.  Rows are unchanged when the
    space has a single point.  With ``moves`` (:func:`local_moves`), half of the factor
    changes (drawn with equal chance) move one prime factor between two slots instead of
    jumping to a uniformly drawn row, where the row has such a move."""
    genes = gene_table(space)
    B = len(dec)
    factor, order = dec.factor.copy(), dec.order.copy()
    spatial_x, keep = dec.spatial_x.copy(), dec.keep.copy()
    if len(genes) == 0 or B == 0:
        return Decisions(factor, order, spatial_x, keep)
    pick = genes[rng.integers(0, len(genes), B)]
    fresh = space.random_decisions(B, rng)
    sizes = np.array([len(t) for t in space.tables], np.int64)
    rows = np.nonzero(pick[:, 0] == FACTOR)[0]
    d = pick[rows, 1]
    factor[rows, d] = (factor[rows, d] + 1 + rng.integers(0, sizes[d] - 1)) % sizes[d]
    if moves is not None and len(rows):
        local = rng.random(len(rows)) < 0.5
        draw = rng.random(len(rows))
        for j in np.flatnonzero(local):   # a few dozen rows per batch
            row, dd = rows[j], d[j]
            nb = moves[dd][dec.factor[row, dd]]
            k = int((nb >= 0).sum())
            if k:
                factor[row, dd] = nb[int(draw[j] * k)]
    rows = np.nonzero(pick[:, 0] == ORDER)[0]
    swap = rng.random(len(rows)) < 0.5
    _swap_free(space, order, rows[swap], pick[rows[swap], 1], rng)
    order[rows[~swap], pick[rows[~swap], 1]] = fresh.order[rows[~swap], pick[rows[~swap], 1]]
    for kind, dst, src in ((SPATIAL_X, spatial_x, fresh.spatial_x), (KEEP, keep, fresh.keep)):
        rows = np.nonzero(pick[:, 0] == kind)[0]
        dst[rows, pick[rows, 1]] = src[rows, pick[rows, 1]]
    return Decisions(factor, order, spatial_x, keep)
