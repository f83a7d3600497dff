"""The batched fast path of Timeloop's sparse model (``cost_models/sparseloop.py``) for
specifications without gating/skipping of storage accesses (formats, densities and compute
optimizations only: what ``compile``'s pruned weights and most searches price).

The per-mapping reference (:class:`~cost_models.sparseloop_analysis.MappingAnalysis`, then
``combine``/``computes``/``_price``/``_capacity`` of ``sparseloop.py``) walks every mapping
in Python.  Here nothing does: the rank-to-loop assignment of every row is a compiled kernel
(``_formats_kernel.py``); distinct tiles (tensor, level, tile shape, parent with metadata,
fiber and subtile shapes) are grouped by a checked hash and priced once each
(``_tiles_kernel.py``); the per-level pricing of every row is another kernel
(``_sparse_price_kernel.py``) and the compute state table runs on ``[B]`` arrays.  All of it
uses the reference's floating-point operations, in its order: the results are equal, not
close (``tests/test_sparseloop_fast.py`` compares both on thousands of random mappings).
Rows the fast path cannot finish (a format that does not fit the loop nest, a capacity
overflow, a block size without a vector-width row) are returned to the caller, which runs
the reference on them for its message.
"""

from __future__ import annotations

import numpy as np

from cost_models.sparseloop_analysis import (
    VECTOR_WIDTH,
    _fanouts,
)


def fast_rows(ctx, mappings, dm, rows: np.ndarray, p, out: dict) -> np.ndarray:
    """Price ``rows`` of ``mappings`` into ``out`` (the arrays of ``evaluate_sparseloop``);
    return the rows left for the reference path.  ``ctx``: the spec's ``_Context`` (no
    storage gating/skipping groups)."""
    prob, arch = ctx.problem, ctx.arch
    L, T = arch.num_levels, prob.num_tensors
    S = L
    n = len(rows)
    keep = mappings.keep[rows]                                   # [n, L, T]
    fmt = np.zeros((L, T), bool)
    nranks = np.zeros((L, T), np.int64)
    comp = np.zeros((L, T), bool)
    for (lv, t), f in ctx.formats.items():
        fmt[lv, t] = True
        nranks[lv, t] = len(f.ranks)
        comp[lv, t] = any(r.compressed for r in f.ranks)
    R = max(1, int(nranks.max()))
    hasmd = keep & fmt
    compressed = keep & comp
    # distinct tiles of the format tensors, in one table; row 0: a tile without a format
    # tensor (density, factors 1, no metadata; its capacity is its dense size)
    tid = np.zeros((n, L, T), np.int64)
    parts = [((np.ones(1), np.ones(1), np.ones(1), np.full(1, -1, np.int64),
               np.zeros(1, np.int64)), np.zeros((1, R, 4)))]
    base = 1
    failed = np.zeros(n, bool)
    fmt_tensors = [t for t in range(T) if fmt[:, t].any()]
    if fmt_tensors:
        fiber, subtile, status = _fibers(ctx, mappings, dm, rows, fmt_tensors, R)
        failed |= status != 0
        for ti, t in enumerate(fmt_tensors):
            par = np.zeros(n, bool)           # the nearest keeper above has metadata
            for lv in range(L):
                at = keep[:, lv, t] & ~failed
                s = S - 1 - lv
                if at.any():
                    cols = [dm.tile[rows, lv, t], par]
                    if fmt[lv, t]:
                        nr = nranks[lv, t]
                        cols += [fiber[:, ti, s, :nr].T, subtile[:, ti, s, :nr + 1].T]
                    keys = np.vstack([np.atleast_2d(c) for c in cols]).T.astype(np.int64)[at]
                    uniq, inv = _unique_rows(keys)
                    part = _tiles(ctx, t, lv, uniq, R)
                    parts.append(part)
                    tid[at, lv, t] = base + inv
                    failed[at] |= np.isnan(part[0][2])[inv]   # no vector-width row
                    base += len(uniq)
                par = np.where(keep[:, lv, t], fmt[lv, t], par)
    table = tuple(np.concatenate([q[0][f] for q in parts]) for f in range(5)) + (
        np.concatenate([q[1] for q in parts]),)
    # capacity (``_capacity``): rows over it go to the reference for the message
    tw = table[3][tid]
    cap_words = np.where(keep, np.where(tw >= 0, tw, dm.tile[rows]), 0)
    cap_bits = np.where(keep, table[4][tid].astype(np.float64), 0.0)
    words = np.zeros((n, L), np.int64)
    bits = np.zeros((n, L))
    for t in range(T):
        words += cap_words[:, :, t]
        bits += cap_bits[:, :, t]
    for lv, level in enumerate(arch.levels):
        if level.capacity is not None:
            failed |= words[:, lv] > level.capacity
        attrs = ctx.sparse_arch.levels[lv]
        md_cap = attrs.metadata_storage_depth * attrs.metadata_storage_width
        if md_cap:
            failed |= bits[:, lv] > md_cap / level.multiple_buffering
    if failed.all():
        return rows
    if failed.any():
        sel = np.nonzero(~failed)[0]
        _price(ctx, dm, rows[sel], keep[sel], hasmd[sel], compressed[sel], nranks, tid[sel],
               table, p, out)
    else:
        _price(ctx, dm, rows, keep, hasmd, compressed, nranks, tid, table, p, out)
    return rows[failed]


def _unique_rows(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``np.unique(keys, axis=0, return_inverse=True)`` (rows in another order): rows are
    grouped by a 64-bit hash, checked for collisions (then the exact, slower sort)."""
    _, first, inv = np.unique(_row_hash(keys), return_index=True, return_inverse=True)
    uniq = keys[first]
    inv = inv.reshape(-1)
    if not np.array_equal(uniq[inv], keys):
        uniq, inv = np.unique(keys, axis=0, return_inverse=True)
        inv = inv.reshape(-1)
    return uniq, inv


def _row_hash(keys: np.ndarray) -> np.ndarray:
    """A 64-bit hash of each row of ``keys: int64[n, K]`` (FNV-style, column by column)."""
    h = np.zeros(len(keys), np.uint64)
    with np.errstate(over="ignore"):
        for col in keys.T.astype(np.uint64):
            h = (h ^ col) * np.uint64(0x100000001B3)
            h ^= h >> np.uint64(29)
    return h


def _fibers(ctx, mappings, dm, rows: np.ndarray, tensors: list[int], R: int) -> tuple:
    """``define_formats`` of ``rows`` for ``tensors`` (:mod:`cost_models._formats_kernel`):
    fiber shapes ``[n, len(tensors), S, R]``, subtile shapes ``[n, len(tensors), S, R + 1]``
    and a status per row (0: done)."""
    from cost_models._formats_kernel import format_fibers  # numba: loaded on first use

    prob, arch = ctx.problem, ctx.arch
    L, T, D = arch.num_levels, prob.num_tensors, prob.num_dims
    has_md = np.zeros((L, T), bool)
    nranks = np.zeros((L, T), np.int64)
    comp = np.zeros((L, T), bool)
    i2o = np.zeros((L, T), bool)
    rank_fmt = np.full((L, T, R), -1, np.int64)
    rank_flat = np.zeros((L, T, R), bool)
    rule = np.zeros((L, T, R, D, D), bool)
    names: dict[str, int] = {}
    for (lv, t), f in ctx.formats.items():
        ranks = f.ranks[::-1]                                   # innermost first
        has_md[lv, t], nranks[lv, t] = True, len(ranks)
        comp[lv, t] = any(r.compressed for r in ranks)
        i2o[lv, t] = f.inner_to_outer
        for r, rank in enumerate(ranks):
            rank_fmt[lv, t, r] = names.setdefault(rank.format, len(names))
            rank_flat[lv, t, r] = bool(rank.flattened)
            for d in range(D):
                group = next((g for g in rank.flattened if d in g), ())
                rule[lv, t, r, d, list(group)] = True
    projs = prob.projections
    proj = np.zeros((T, max(len(p) for p in projs), D), np.int64)
    for t, p in enumerate(projs):
        proj[t, :len(p)] = p
    n = len(rows)
    nt = len(tensors)
    fiber = np.zeros((n, nt, L, R), np.int64)
    subtile = np.zeros((n, nt, L, R + 1), np.int64)
    status = np.zeros(n, np.int64)
    format_fibers(np.ascontiguousarray(rows, np.int64), mappings.temporal, mappings.spatial,
                  mappings.order, mappings.spatial_x, mappings.keep,
                  np.ascontiguousarray(dm.tile, np.int64), np.array(_fanouts(arch)),
                  np.array(tensors, np.int64), np.ascontiguousarray(prob.relevance, bool),
                  proj, has_md, nranks, comp, i2o, rank_fmt, rank_flat, rule, fiber,
                  subtile, status)
    return fiber, subtile, status


def _tiles(ctx, t: int, lv: int, keys: np.ndarray, R: int) -> tuple:
    """Each distinct tile ``keys[u]`` of tensor ``t`` at level ``lv`` (``expected_tile``,
    ``tile_metadata`` and the vector-width ratio of ``sparseloop.py``): ((expected density,
    utilized-instance factor, vector-width ratio, capacity words, capacity metadata bits)
    as arrays ``[U]``, expected metadata ``[U, R, 4]``), compiled
    (:mod:`cost_models._tiles_kernel`) but for the possible occupancies of each tile shape
    (``DensityModel.occupancy_arrays``)."""
    from cost_models._tiles_kernel import CODES, KINDS, expected_tiles  # numba, on first use

    U = len(keys)
    md = np.zeros((U, R, 4))
    dens = ctx.density[t]
    block = ctx.arch.levels[lv].block_size
    lo, hi = np.zeros(U, np.int64), np.zeros(U, np.int64)
    off = np.zeros(U + 1, np.int64)
    ks, qs = [], []
    seen: dict[int, tuple] = {}
    for u, shape in enumerate(keys[:, 0].tolist()):
        got = seen.get(shape)
        if got is None:
            a, b = dens.min_occupancy(shape), dens.max_occupancy(shape)
            got = seen[shape] = (a, b, *dens.occupancy_arrays(shape, a, b))
        lo[u], hi[u] = got[0], got[1]
        ks.append(got[2])
        qs.append(got[3])
        off[u + 1] = off[u] + len(got[2])
    f = ctx.formats.get((lv, t))
    ranks = f.ranks[::-1] if f is not None else ()
    default = ctx.md_bits[lv]
    cols = (np.zeros(U), np.zeros(U), np.zeros(U), np.zeros(U, np.int64),
            np.zeros(U, np.int64))
    expected_tiles(
        np.ascontiguousarray(keys, np.int64), KINDS.get(dens.kind, 1), float(dens.d), dens.N,
        dens.total, lo, hi, np.concatenate(ks), np.concatenate(qs), off,
        f is not None, len(ranks), bool(f is not None and f.inner_to_outer),
        any(r.compressed for r in ranks), np.array([CODES[r.format] for r in ranks], np.int64),
        np.array([default if r.metadata_word_bits is None else r.metadata_word_bits
                  for r in ranks], np.int64),
        np.array([default if r.payload_word_bits is None else r.payload_word_bits
                  for r in ranks], np.int64),
        block, np.array(VECTOR_WIDTH.get(block, (0,) * 10), np.int64), *cols, md)
    return cols, md


def _price(ctx, dm, rows, keep, hasmd, compressed, nranks, tid, table, p,
           out: dict) -> None:
    """``combine`` (no storage gating/skipping), ``computes`` and ``_price`` of
    ``sparseloop.py`` on arrays, operation for operation; ``tid[n, L, T]``: each tile's row
    in ``table`` (expected density, utilized-instance factor, vector-width ratio, capacity
    words and bits, expected metadata ``[U, R, 4]``)."""
    from cost_models._sparse_price_kernel import price_rows  # numba: loaded on first use

    prob, arch, sa = ctx.problem, ctx.arch, ctx.sparse_arch
    n, L, T = keep.shape
    rw = np.array([tt.read_write for tt in prob.tensors])
    # compute (CalculateFineGrainedComputeAccesses2Operand, no storage SAF)
    macs = (dm.macs[rows].astype(np.int64) * dm.compute_instances[rows].astype(np.int64))
    total = macs.astype(np.float64)
    ops = [t for t in range(T) if not prob.tensors[t].read_write]
    if len(ops) != 2:
        rnd = macs
        gated = skipped = np.zeros(n, np.int64)
    else:
        st = []
        for t in ops:
            inner = np.zeros(n, bool)             # metadata at the innermost keeper
            found = np.zeros(n, bool)
            for lv in range(L - 1, -1, -1):
                k = keep[:, lv, t] & ~found
                inner = np.where(k, hasmd[:, lv, t], inner)
                found |= keep[:, lv, t]
            d = round(1e6 * ctx.density[t].expected(1)) / 1e6
            d = round(d * 1e6) / 1e6
            st.append([np.full(n, min(1.0, max(0.0, d))),
                       np.where(inner, 0.0, min(1.0, max(0.0, 1 - d))),
                       np.where(inner, min(1.0, max(0.0, 1 - d)), 0.0)])
        (a0, a1, a2), (b0, b1, b2) = st
        gate = "gate_on_zero_operand" in ctx.compute_opts
        skip = "skip_on_not_aligned_operands" in ctx.compute_opts
        g = np.zeros(n)
        k = np.zeros(n)
        d = total * (a0 * b1 + a1 * b0)
        if gate:
            g = g + d
        for d in (total * (a0 * b2 + a2 * b0), total * (a1 * b2 + a2 * b1)):
            if skip:
                k = k + d
            elif gate:
                g = g + d
        if gate:
            g = g + total * a1 * b1
        nonexist = 0.0 + total * a2 * b2
        gated = np.floor(g).astype(np.int64)
        skipped = np.floor(k).astype(np.int64)
        rnd = np.trunc(total - skipped - gated - np.floor(nonexist)).astype(np.int64)
    inst = np.maximum(1, dm.compute_instances[rows].astype(np.int64))
    cc = np.ceil((rnd + gated) / inst).astype(np.int64)
    mac_e = (rnd * sa.compute("random_compute") + gated * sa.compute("gated_compute")
             + skipped * sa.compute("skipped_compute"))
    # the rest per level and tensor, compiled (the reference's operations, in its order)
    E = np.array([[ctx.energies[lv].get(op, 0.0) for op in _PRICED_OPS] for lv in range(L)])
    acc = np.zeros((5, n, L, T), np.int64)
    fmt = np.zeros((3, n, L, T), np.int64)
    dyn, leak = np.zeros(n), np.zeros(n)
    cyc = np.zeros(n, np.int64)
    breakdown, utilized = np.zeros((n, L, T)), np.zeros((n, L, T))
    level_cycles = np.zeros((n, L), np.int64)
    price_rows(rows, dm.reads, dm.fills, dm.updates, dm.tile, keep, hasmd, compressed, rw,
               tid, table[0], table[1], table[2], table[5], nranks, cc, dm.instances,
               np.asarray(p.clusters, np.int64),
               np.array([lv.block_size for lv in arch.levels], np.int64),
               np.array([lv.datawidth for lv in arch.levels], np.int64),
               np.array([lv.metadata_storage_width or 0 for lv in sa.levels], np.int64), E,
               np.asarray(p.read_bw, np.float64), np.asarray(p.write_bw, np.float64),
               np.asarray(p.shared_bw, np.float64), np.asarray(p.leak, np.float64),
               acc, fmt, breakdown, utilized, level_cycles, cyc, dyn, leak)
    for k, op in enumerate(("random_read", "random_fill", "random_update",
                            "decompression_count", "compression_count")):
        out[op][rows] = acc[k]
    for k, op in enumerate(("random_metadata_read", "random_metadata_fill",
                            "random_metadata_update")):
        out[op][rows] = fmt[k]
    out["energy_breakdown"][rows], out["utilized_instances"][rows] = breakdown, utilized
    out["level_cycles"][rows] = level_cycles
    out["cycles"][rows] = cyc
    out["computes"][rows], out["gated_computes"][rows] = rnd, gated
    out["skipped_computes"][rows] = skipped
    out["mac_energy"][rows], out["leak_energy"][rows] = mac_e, leak
    out["energy"][rows] = dyn + mac_e + leak


#: the energy table columns of :func:`cost_models._sparse_price_kernel.price_rows`
_PRICED_OPS = ("random_read", "random_fill", "random_update", "decompression_count",
               "compression_count", "random_metadata_read", "random_metadata_fill",
               "random_metadata_update")


__all__ = ["fast_rows"]
