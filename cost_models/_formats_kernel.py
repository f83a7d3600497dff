"""Compiled (numba) rank-to-loop assignment of Timeloop's sparse model: what
``MappingAnalysis.define_formats`` (``cost_models/sparseloop_analysis.py``, rules SL3/SL4,
Timeloop's ``DefineCompressionFormatModels`` with ``ApplyRanksOuterToInner`` /
``ApplyRanksInnerToOuter``) computes per mapping, for a batch of mappings at once: per
tensor and keeping level, the fiber shape of each rank and the subtile shapes below them.

The loop nest of a mapping is rebuilt exactly as ``MappingAnalysis.__init__`` builds it
(innermost level first; per level its X then Y spatial loops when it fans out, then its
temporal loops in permutation order), a rank's loop list is kept as the product of its
loops' extents per dimension (all a fiber's size needs), and Python's list ``insert(0, x)``
/ ``append(x)`` of the reference are the two ends of a small double-ended buffer, in the
reference's order.  ``tests/test_sparseloop_fast.py`` checks the results against the
reference on thousands of mappings.

Status per row: 0 done; 1 pretiling formats that do not align; 2 more compression ranks
needed than the format has; 3 a rank count that does not match (the reference raises
``AnalysisFailed`` on each, and the caller runs it for the message).
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange


@njit(cache=True)
def _size(proj, t, ext):
    """Elements of tensor ``t`` in a box of extents ``ext`` (``MappingAnalysis.size``)."""
    n = 1
    for a in range(proj.shape[1]):
        s = 1
        for d in range(proj.shape[2]):
            s += proj[t, a, d] * (ext[d] - 1)
        n *= s
    return n


@njit(cache=True)
def _high_size(proj, t, lx, ld, le, at, M, tmp):
    """Size of tensor ``t``'s tile after nest loop ``at`` (level * ``M`` + position): the
    extents at its level's start (``lx``) times its level's loops up to it."""
    l2, k = at // M, at % M
    for d in range(tmp.shape[0]):
        tmp[d] = lx[l2, d]
    for q in range(k + 1):
        tmp[ld[l2, q]] *= le[l2, q]
    return _size(proj, t, tmp)


@njit(cache=True)
def _take(row, k, step, nsub, has, r, rd, rule, sub_dim, sub_end, buf_ext):
    """The loops rank ``r`` covers, from loop ``k`` on in direction ``step``, as extents in
    ``buf_ext[row]``: loop ``k``, then, without a format or within the flattening group of
    ``rd`` (``-1``: none), the following loops of that group and the trivial ones between
    them.  Returns the next loop."""
    for d in range(buf_ext.shape[1]):
        buf_ext[row, d] = 1
    buf_ext[row, sub_dim[k]] *= sub_end[k]
    k += step
    if (not has) or rd >= 0:
        while 0 <= k < nsub:
            trivial = sub_end[k] <= 1
            if not ((not has) or (rd >= 0 and rule[r, rd, sub_dim[k]]) or trivial):
                break
            if not trivial:
                buf_ext[row, sub_dim[k]] *= sub_end[k]
            k += step
    return k


@njit(cache=True)
def _ones(buf_ext, buf_sub, row, sub):
    """An empty rank (no loops) with subtile ``sub`` in row ``row``."""
    for d in range(buf_ext.shape[1]):
        buf_ext[row, d] = 1
    buf_sub[row] = sub


@njit(cache=True)
def _apply(o2i, has, nr, inner_rank, sub_dim, sub_end, sub_at, nsub, rank_flat, rule,
           buf_ext, buf_sub, head0, proj, t, lx, ld, le, tmp):
    """``ApplyRanksOuterToInner`` (``o2i``: from the outermost rank and loop, each rank
    inserted in front) or ``ApplyRanksInnerToOuter`` (from the innermost, appended) into
    the buffer: returns (head, tail, failed).  ``sub_at[k]``: where loop ``k`` sits in the
    nest (level * stride + position); its tile size is computed only where a rank starts.
    A flattened rank whose group does not hold the next loop is appended empty, with the
    first loop's tile size outer to inner and 1 (Timeloop's ``corr``) inner to outer."""
    M = ld.shape[1]
    head = head0
    tail = head0
    scalar0 = _high_size(proj, t, lx, ld, le, sub_at[0], M, tmp) if nsub > 0 else 1
    step = -1 if o2i else 1
    k = nsub - 1 if o2i else 0
    left = nr - inner_rank                          # ranks still to assign
    r = nr if o2i else inner_rank - 1
    while left > 0 and 0 <= k < nsub:
        while 0 <= k < nsub and sub_end[k] <= 1:
            k += step
        if not 0 <= k < nsub:
            break
        r += step
        left -= 1
        rd = -1
        if has and rank_flat[r]:
            if not rule[r, sub_dim[k], sub_dim[k]]:
                _ones(buf_ext, buf_sub, tail, scalar0 if o2i else 1)
                tail += 1
                continue
            rd = sub_dim[k]
        if o2i:
            head -= 1
        row = head if o2i else tail
        buf_sub[row] = _high_size(proj, t, lx, ld, le, sub_at[k], M, tmp)
        k = _take(row, k, step, nsub, has, r, rd, rule, sub_dim, sub_end, buf_ext)
        if not o2i:
            tail += 1
    while left > 0:
        left -= 1
        if o2i:
            head -= 1
            _ones(buf_ext, buf_sub, head, scalar0)
        else:
            _ones(buf_ext, buf_sub, tail, scalar0)
            tail += 1
    lo, hi = (0, k + 1) if o2i else (max(k, 0), nsub)
    for j in range(lo, hi):
        if sub_end[j] > 1:
            return head, tail, True
    return head, tail, False


@njit(cache=True, parallel=True)
def format_fibers(rows, temporal, spatial, order, spatial_x, keep, tile, fans, tensors,
                  relevant, proj, has_md, nranks, compressed, inner_to_outer, rank_fmt,
                  rank_flat, rule, fiber_o, subtile_o, status_o):
    """Per row ``rows[j]``, format tensor ``tensors[ti]`` and storage level ``s`` (0
    innermost) that keeps it: ``fiber_o[j, ti, s, r]`` (fiber shape of rank ``r``, innermost
    first) and ``subtile_o[j, ti, s, 0..nranks]``; ``status_o[j]`` as the module says.
    Format tables are indexed ``[level (outermost 0), tensor]``, ranks innermost first;
    ``rule[lv, t, r, d, e]``: rank ``r``'s flattening group of ``d`` holds ``e``.  Rows
    run in chunks, in parallel."""
    n = rows.shape[0]
    chunk = 256
    for c in prange((n + chunk - 1) // chunk):
        _fibers_rows(c * chunk, min(n, (c + 1) * chunk), rows, temporal, spatial, order,
                     spatial_x, keep, tile, fans, tensors, relevant, proj, has_md, nranks,
                     compressed, inner_to_outer, rank_fmt, rank_flat, rule, fiber_o,
                     subtile_o, status_o)


@njit(cache=True)
def _fibers_rows(lo, hi, rows, temporal, spatial, order, spatial_x, keep, tile, fans,
                 tensors, relevant, proj, has_md, nranks, compressed, inner_to_outer,
                 rank_fmt, rank_flat, rule, fiber_o, subtile_o, status_o):
    """:func:`format_fibers` of rows ``lo..hi - 1``."""
    L, D = temporal.shape[1], temporal.shape[2]
    S = L
    R = fiber_o.shape[3]
    M = 3 * D
    ld = np.zeros((S, M), np.int64)
    le = np.zeros((S, M), np.int64)
    nl = np.zeros(S, np.int64)
    lx = np.ones((S + 1, D), np.int64)             # extents below each level's loops
    tmp = np.zeros(D, np.int64)
    below = np.zeros(D, np.int64)
    sub_dim = np.zeros(S * M, np.int64)
    sub_end = np.zeros(S * M, np.int64)
    sub_at = np.zeros(S * M, np.int64)
    W = 2 * R + 4
    buf_ext = np.zeros((W, D), np.int64)
    buf_sub = np.zeros(W, np.int64)
    md_ext = np.zeros((S, R, D), np.int64)          # per kept level: rank extents
    md_sub = np.zeros((S, R + 1), np.int64)
    md_n = np.zeros(S, np.int64)
    kept = np.zeros(S, np.int64)
    for j in range(lo, hi):
        b = rows[j]
        for s in range(S):
            lv = S - 1 - s
            n = 0
            if fans[lv]:
                for x in range(2):
                    for d in range(D):
                        if spatial_x[b, lv, d] == (x == 0):
                            ld[s, n] = d
                            le[s, n] = spatial[b, lv, d]
                            n += 1
            for q in range(D):
                d = order[b, lv, q]
                ld[s, n] = d
                le[s, n] = temporal[b, lv, d]
                n += 1
            nl[s] = n
            for d in range(D):
                lx[s + 1, d] = lx[s, d]
            for k in range(n):
                lx[s + 1, ld[s, k]] *= le[s, k]
        st = 0
        for ti in range(tensors.shape[0]):
            if st != 0:
                break
            t = tensors[ti]
            nk = 0
            for s in range(S):
                if keep[b, S - 1 - s, t]:
                    kept[nk] = s
                    nk += 1
            first = 0                 # the walk starts at the innermost non-empty tile
            while first < nk and tile[b, S - 1 - kept[first], t] == 0:
                first += 1
            for jk in range(first, nk):
                s = kept[jk]
                lv = S - 1 - s
                has = has_md[lv, t]
                nr = nranks[lv, t] if has else 1
                child = kept[jk - 1] if jk > 0 else -1
                inner_most = child + 1
                ch_r = 0
                pre = False
                if child >= 0:
                    clv = S - 1 - child
                    ch_r = nranks[clv, t] if has_md[clv, t] else 1
                    if compressed[lv, t] and tile[b, clv, t] > 1:
                        pre = True
                        bad = ch_r > nr
                        if not bad and compressed[clv, t]:
                            for r in range(min(ch_r, nr)):
                                if rank_fmt[lv, t, r] != rank_fmt[clv, t, r]:
                                    bad = True
                        if bad:
                            st = 1
                            break
                ns = 0
                for l2 in range(inner_most, s + 1):
                    for k in range(nl[l2]):
                        d = ld[l2, k]
                        if relevant[t, d]:
                            sub_dim[ns] = d
                            sub_end[ns] = le[l2, k]
                            sub_at[ns] = l2 * M + k
                            ns += 1
                if not pre:
                    for d in range(D):
                        below[d] = lx[inner_most, d]
                    for k in range(ns):
                        sub_end[k] *= below[sub_dim[k]]
                        below[sub_dim[k]] = 1
                inner_rank = ch_r if pre else 0
                head0 = R + 2
                head, tail, failed = _apply(not inner_to_outer[lv, t], has, nr, inner_rank,
                                            sub_dim, sub_end, sub_at, ns, rank_flat[lv, t],
                                            rule[lv, t], buf_ext, buf_sub, head0, proj, t,
                                            lx, ld, le, tmp)
                if failed:
                    st = 2
                    break
                cnt = tail - head
                if pre:
                    cn = md_n[child]
                    if cn + cnt != nr:
                        st = 3
                        break
                    for r in range(cn):
                        for d in range(D):
                            md_ext[s, r, d] = md_ext[child, r, d]
                    for r in range(cn + 1):
                        md_sub[s, r] = md_sub[child, r]
                    for q in range(cnt):
                        for d in range(D):
                            md_ext[s, cn + q, d] = buf_ext[head + q, d]
                        md_sub[s, cn + 1 + q] = buf_sub[head + q]
                else:
                    if cnt != nr:
                        st = 3
                        break
                    md_sub[s, 0] = 1
                    for q in range(cnt):
                        for d in range(D):
                            md_ext[s, q, d] = buf_ext[head + q, d]
                        md_sub[s, 1 + q] = buf_sub[head + q]
                md_n[s] = nr
                for r in range(nr):
                    fiber_o[j, ti, s, r] = _size(proj, t, md_ext[s, r])
                for r in range(nr + 1):
                    subtile_o[j, ti, s, r] = md_sub[s, r]
        status_o[j] = st
