"""The batched fast path of Timeloop's sparse model (``cost_models/sparseloop.py``) for
specifications without gating/skipping of storage accesses (formats, densities and compute
optimizations only: what ``compile``'s pruned weights and most searches price).

The per-mapping reference (:class:`~cost_models.sparseloop_analysis.MappingAnalysis`, then
``combine``/``computes``/``_price``/``_capacity`` of ``sparseloop.py``) walks every mapping
in Python.  Here only what depends on a mapping's loop nest stays per mapping, and only for
tensors with a format: the rank-to-loop assignment (``define_formats``) and, memoised per
distinct (tensor, level, tile shape, fiber shapes, subtile shapes, parent with metadata), the
expected occupancy and metadata of a tile.  Everything else (format impact on accesses,
metadata accesses, (de)compression counts, the compute state table, vector accesses,
energy, bandwidth, cycles and the capacity check) runs on ``[B, L, T]`` numpy arrays, in
the same floating-point operations, in the same order, as the reference: the results are
equal, not close (``tests/test_sparseloop_fast.py`` compares both on thousands of random
mappings).  Rows the fast path cannot finish (a format that does not fit the loop nest, a
capacity overflow) are returned to the caller, which runs the reference on them for its
message.
"""

from __future__ import annotations

import math

import numpy as np

from cost_models.sparseloop_analysis import (
    DATA_OPS,
    FORMAT_OPS,
    VECTOR_WIDTH,
    AnalysisFailed,
    MappingAnalysis,
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
    ed = np.ones((n, L, T))
    scale = np.ones((n, L, T))
    vw = np.ones((n, L, T))
    md = np.zeros((4, n, L, T, R))            # md units, payload units, md bits, pl bits
    cap_words = np.where(keep, dm.tile[rows], 0).astype(np.int64)
    cap_bits = np.zeros((n, L, T))
    failed = np.zeros(n, bool)
    fmt_tensors = [t for t in range(T) if fmt[:, t].any()]
    if fmt_tensors:
        memo: dict = {}
        for j, i in enumerate(rows.tolist()):
            an = MappingAnalysis(ctx, mappings, i, dm, mappings.keep[i], fmt_tensors)
            try:
                an.define_formats(fmt_tensors)
            except AnalysisFailed:
                failed[j] = True
                continue
            for t in fmt_tensors:
                for s in range(S):
                    tl = an.tiles[t][s]
                    if not tl.shape:
                        continue
                    par = tl.parent is not None and an.tiles[t][tl.parent].has_metadata
                    key = (t, s, tl.shape, tuple(tl.fiber), tuple(tl.md_subtile), par)
                    got = memo.get(key)
                    if got is None:
                        got = memo[key] = _tile(an, ctx, t, s)
                    lv = S - 1 - s
                    ed[j, lv, t], scale[j, lv, t], vw[j, lv, t] = got[0], got[1], got[2]
                    cap_words[j, lv, t], cap_bits[j, lv, t] = got[3], got[4]
                    for r, x in enumerate(got[5]):
                        md[:, j, lv, t, r] = x
    # capacity (``_capacity``): rows over it go to the reference for the message
    words = np.zeros((n, L), np.int64)
    bits = np.zeros((n, L))
    for t in range(T):
        words += np.where(keep[:, :, t], cap_words[:, :, t], 0)
        bits += np.where(keep[:, :, t], cap_bits[:, :, t], 0.0)
    for lv, level in enumerate(arch.levels):
        if level.capacity is not None:
            failed |= words[:, lv] > level.capacity
        attrs = ctx.sparse_arch.levels[lv]
        md_cap = attrs.metadata_storage_depth * attrs.metadata_storage_width
        if md_cap:
            failed |= bits[:, lv] > md_cap / level.multiple_buffering
    ok = ~failed
    if ok.any():
        sel = np.nonzero(ok)[0]
        _price(ctx, dm, rows[sel], keep[sel], hasmd[sel], compressed[sel], nranks, ed[sel],
               scale[sel], vw[sel], md[:, sel], p, out)
    return rows[failed]


def _tile(an: MappingAnalysis, ctx, t: int, s: int) -> tuple:
    """(expected density, utilized-instance factor, vector-width ratio, capacity words,
    capacity metadata bits, expected metadata per rank) of one tile."""
    tl = an.tiles[t][s]
    total, md, sc = an.tile_expectation(t, s)
    d = total / tl.shape
    dens = ctx.density[t]
    lv = an.S - 1 - s
    block = ctx.arch.levels[lv].block_size
    ratio = 1.0
    if tl.compressed and block > 1 and d < 1.0:
        idx = math.floor(d / 0.1) - 1 if d >= 0.1 else 0
        if VECTOR_WIDTH[block][int(idx)] > tl.shape // block:
            tot = sum(math.ceil(k / block) * dens.prob(tl.shape, k)
                      for k in range(1, tl.shape + 1))
            ratio = tot / (tl.shape * d / block)
    words, bits = tl.shape, 0
    if tl.has_metadata:
        words = dens.max_occupancy(tl.shape)
        occ = an.metadata_given(t, tl, words)
        bits = sum(math.ceil(x[0]) * x[2] + math.ceil(x[1]) * x[3] for x in occ)
    return d, sc, ratio, words, bits, [tuple(x) for x in (md or [])]


def _ceil_div(a: np.ndarray, b: int) -> np.ndarray:
    return -(-a // b)


def _price(ctx, dm, rows, keep, hasmd, compressed, nranks, ed, scale, vw, md, p,
           out: dict) -> None:
    """``combine`` (no storage gating/skipping), ``computes`` and ``_price`` of
    ``sparseloop.py`` on arrays, operation for operation."""
    prob, arch, sa = ctx.problem, ctx.arch, ctx.sparse_arch
    n, L, T = keep.shape
    R = md.shape[-1]
    rw = np.array([tt.read_write for tt in prob.tensors])
    reads = np.where(keep, dm.reads[rows], 0).astype(np.int64)
    fills = np.where(keep, dm.fills[rows], 0).astype(np.int64)
    upds = np.where(keep, dm.updates[rows], 0).astype(np.int64)
    shape = np.where(keep, dm.tile[rows], 1).astype(np.int64)
    # ProcessDataReprImpactOnStorageAccesses
    sp = 1 - ed
    rr = np.where(hasmd, reads - np.floor(reads * sp).astype(np.int64), reads)
    rf = np.where(hasmd, fills - np.floor(fills * sp).astype(np.int64), fills)
    ru = np.where(hasmd & rw, upds - np.floor(upds * sp).astype(np.int64), upds)
    # per-rank metadata accesses: ceil(expected units x accesses / tile)
    rmask = np.arange(R) < nranks[:, :, None]                     # [L, T, R]
    live = hasmd[..., None] & rmask                               # [n, L, T, R]
    fmt = {}
    for op, acc in (("random_metadata_read", reads), ("random_metadata_fill", fills),
                    ("random_metadata_update", upds)):
        ratio = (acc / shape)[..., None]
        a0 = np.where(live, np.ceil(md[0] * ratio), 0).astype(np.int64)
        a1 = np.where(live, np.ceil(md[1] * ratio), 0).astype(np.int64)
        fmt[op] = (a0, a1)
    # (de)compression counts: a tile kept uncompressed under a compressed parent
    dec = np.zeros((n, L, T), np.int64)
    cmp_ = np.zeros((n, L, T), np.int64)
    for t in range(T):
        par_c = np.zeros(n, bool)                # is the nearest keeper above compressed
        par_u = np.zeros(n, np.int64)            # and its random updates
        for lv in range(L):
            k = keep[:, lv, t]
            m = k & ~compressed[:, lv, t] & par_c
            dec[:, lv, t] = np.where(m, rf[:, lv, t], 0)
            if rw[t]:
                cmp_[:, lv, t] = np.where(m, par_u, 0)
            par_c = np.where(k, compressed[:, lv, t], par_c)
            par_u = np.where(k, ru[:, lv, t], par_u)
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
    # outputs per level and tensor
    data = {"random_read": rr, "random_fill": rf, "random_update": ru}
    for op, a in data.items():
        out[op][rows] = a
    out["decompression_count"][rows] = dec
    out["compression_count"][rows] = cmp_
    bits = {}
    for op, (a0, a1) in fmt.items():
        out[op][rows] = (a0 + a1).sum(-1)
        bits[op] = (md[2].astype(np.int64) * a0 + md[3].astype(np.int64) * a1).sum(-1)
    cyc = cc.copy()
    dyn = np.zeros(n)
    leak = np.zeros(n)
    inst_l = dm.instances[rows].astype(np.int64)                   # [n, L]
    for lv in range(L):
        energy = ctx.energies[lv]
        block = arch.levels[lv].block_size
        word = arch.levels[lv].datawidth
        width = sa.levels[lv].metadata_storage_width
        clusters = np.minimum(inst_l[:, lv], int(p.clusters[lv]))
        rd_bw = np.zeros(n)
        wr_bw = np.zeros(n)
        for t in range(T):
            kt = keep[:, lv, t]
            e = np.zeros(n)
            for op in DATA_OPS:
                if op in data:
                    v = data[op][:, lv, t]
                    e = e + np.where(v != 0, _ceil_div(v, block) * vw[:, lv, t]
                                     * energy.get(op, 0.0), 0.0)
            e = e + dec[:, lv, t] * energy.get("decompression_count", 0.0)
            e = e + cmp_[:, lv, t] * energy.get("compression_count", 0.0)
            if width:
                for op in FORMAT_OPS:
                    if op in bits:
                        e = e + np.ceil(bits[op][:, lv, t] / width) * energy.get(op, 0.0)
            sc = scale[:, lv, t]
            e_tot = e * clusters * sc
            out["energy_breakdown"][rows, lv, t] = np.where(kt, e_tot, 0.0)
            out["utilized_instances"][rows, lv, t] = np.where(kt, inst_l[:, lv] * sc, 0.0)
            dyn = dyn + np.where(kt, e_tot, 0.0)
            r_acc = rr[:, lv, t] + bits["random_metadata_read"][:, lv, t] // word
            w_acc = (rf[:, lv, t] + ru[:, lv, t]
                     + (bits["random_metadata_fill"][:, lv, t]
                        + bits["random_metadata_update"][:, lv, t]) // word)
            with np.errstate(divide="ignore", invalid="ignore"):
                rd_bw = rd_bw + np.where(kt & (cc > 0), np.ceil(r_acc * sc) / cc, 0.0)
                wr_bw = wr_bw + np.where(kt & (cc > 0), np.ceil(w_acc * sc) / cc, 0.0)
        slow = np.ones(n)
        with np.errstate(divide="ignore", invalid="ignore"):
            for bw, used in ((p.read_bw[lv], rd_bw), (p.write_bw[lv], wr_bw),
                             (p.shared_bw[lv], rd_bw + wr_bw)):
                slow = np.where(bw < used, np.minimum(slow, bw / used), slow)
            lc = np.ceil(cc / slow).astype(np.int64)
        out["level_cycles"][rows, lv] = lc
        cyc = np.maximum(cyc, lc)
        leak = leak + p.leak[lv] * np.maximum(inst_l[:, lv], 1)
    leak = leak * cyc
    out["cycles"][rows] = cyc
    out["computes"][rows], out["gated_computes"][rows] = rnd, gated
    out["skipped_computes"][rows] = skipped
    out["mac_energy"][rows], out["leak_energy"][rows] = mac_e, leak
    out["energy"][rows] = dyn + mac_e + leak


__all__ = ["fast_rows"]
