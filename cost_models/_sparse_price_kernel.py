"""Compiled (numba) per-level, per-tensor part of the batched sparse pricing
(``cost_models/sparseloop_fast.py``'s ``_price``; the rules are ``sparseloop.py``'s
``combine`` without storage gating/skipping and ``_price``): format impact on data
accesses, metadata accesses, (de)compression counts, vector accesses, energy, bandwidth,
level cycles and leakage.  The floating-point operations are those of the per-mapping
reference, in the same order, so the results are equal, not close
(``tests/test_sparseloop_fast.py``).

Energy table columns (``E[level, k]``): random read, fill, update, decompression count,
compression count, random metadata read, fill, update.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from cost_models._pricing_kernel import slowdown  # inlined: numba's cache misses edits there


@njit(cache=True, parallel=True)
def price_rows(rows, reads, fills, upds, tile, keep, hasmd, compressed, rw, tid, ted, tscale,
               tvw, tmd, nranks, cc, instances, clusters, block, word, width, E, read_bw,
               write_bw, shared_bw, leak_w, acc_o, fmt_o, breakdown_o, utilized_o,
               level_cycles_o, cycles_o, dyn_o, leak_o):
    """Rows ``j`` (batch row ``rows[j]`` of the movement arrays ``reads``...``instances``):
    ``acc_o[k, j, l, t]`` (random read, fill, update, decompression, compression counts),
    ``fmt_o[k, j, l, t]`` (metadata + payload units read, filled, updated), energies,
    utilized instances, level cycles, cycles, dynamic and leakage energy.  A tile's
    expected density, utilized-instance factor, vector-width ratio and expected metadata
    (``tmd[u, r]``: metadata units, payload units, metadata bits, payload bits) are row
    ``tid[j, l, t]`` of the tile table.  Rows run in chunks, in parallel."""
    n = rows.shape[0]
    chunk = 256
    for c in prange((n + chunk - 1) // chunk):
        _price_rows(c * chunk, min(n, (c + 1) * chunk), rows, reads, fills, upds, tile,
                    keep, hasmd, compressed, rw, tid, ted, tscale, tvw, tmd, nranks, cc,
                    instances, clusters, block, word, width, E, read_bw, write_bw,
                    shared_bw, leak_w, acc_o, fmt_o, breakdown_o, utilized_o,
                    level_cycles_o, cycles_o, dyn_o, leak_o)


@njit(cache=True)
def _price_rows(lo, hi, rows, reads, fills, upds, tile, keep, hasmd, compressed, rw, tid,
                ted, tscale, tvw, tmd, nranks, cc, instances, clusters, block, word, width,
                E, read_bw, write_bw, shared_bw, leak_w, acc_o, fmt_o, breakdown_o,
                utilized_o, level_cycles_o, cycles_o, dyn_o, leak_o):
    """:func:`price_rows` of rows ``lo..hi - 1``."""
    L, T = keep.shape[1], keep.shape[2]
    R = tmd.shape[1]
    bits = np.zeros((3, L, T), np.int64)
    for j in range(lo, hi):
        b = rows[j]
        for l in range(L):
            for t in range(T):
                kp = keep[j, l, t]
                u = tid[j, l, t]
                r0 = reads[b, l, t] if kp else 0
                f0 = fills[b, l, t] if kp else 0
                u0 = upds[b, l, t] if kp else 0
                shape = tile[b, l, t] if kp else 1
                r, f, w = r0, f0, u0
                if hasmd[j, l, t]:
                    sp = 1 - ted[u]
                    r = r - np.int64(math.floor(r * sp))
                    f = f - np.int64(math.floor(f * sp))
                    if rw[t]:
                        w = w - np.int64(math.floor(w * sp))
                acc_o[0, j, l, t], acc_o[1, j, l, t], acc_o[2, j, l, t] = r, f, w
                for k in range(3):
                    a = r0 if k == 0 else (f0 if k == 1 else u0)
                    ratio = a / shape
                    units = 0
                    nb = 0
                    if hasmd[j, l, t]:
                        for q in range(min(R, nranks[l, t])):
                            a0 = np.int64(math.ceil(tmd[u, q, 0] * ratio))
                            a1 = np.int64(math.ceil(tmd[u, q, 1] * ratio))
                            units += a0 + a1
                            nb += (np.int64(tmd[u, q, 2]) * a0
                                   + np.int64(tmd[u, q, 3]) * a1)
                    fmt_o[k, j, l, t] = units
                    bits[k, l, t] = nb
        for t in range(T):
            par_c = False
            par_u = np.int64(0)
            for l in range(L):
                k = keep[j, l, t]
                m = k and not compressed[j, l, t] and par_c
                acc_o[3, j, l, t] = acc_o[1, j, l, t] if m else 0
                if rw[t]:
                    acc_o[4, j, l, t] = par_u if m else 0
                if k:
                    par_c = compressed[j, l, t]
                    par_u = acc_o[2, j, l, t]
        c = cc[j]
        cyc = c
        dyn = 0.0
        leak = 0.0
        for l in range(L):
            cl = min(instances[b, l], clusters[l])
            rd = 0.0
            wr = 0.0
            for t in range(T):
                kt = keep[j, l, t]
                e = 0.0
                vr = tvw[tid[j, l, t]]
                for k in range(3):
                    v = acc_o[k, j, l, t]
                    e = e + ((-(-v // block[l])) * vr * E[l, k] if v != 0 else 0.0)
                e = e + acc_o[3, j, l, t] * E[l, 3]
                e = e + acc_o[4, j, l, t] * E[l, 4]
                if width[l]:
                    for k in range(3):
                        e = e + math.ceil(bits[k, l, t] / width[l]) * E[l, 5 + k]
                sc = tscale[tid[j, l, t]]
                e_tot = e * cl * sc
                breakdown_o[j, l, t] = e_tot if kt else 0.0
                utilized_o[j, l, t] = instances[b, l] * sc if kt else 0.0
                dyn = dyn + (e_tot if kt else 0.0)
                r_acc = acc_o[0, j, l, t] + bits[0, l, t] // word[l]
                w_acc = (acc_o[1, j, l, t] + acc_o[2, j, l, t]
                         + (bits[1, l, t] + bits[2, l, t]) // word[l])
                rd = rd + (math.ceil(r_acc * sc) / c if kt and c > 0 else 0.0)
                wr = wr + (math.ceil(w_acc * sc) / c if kt and c > 0 else 0.0)
            slow = slowdown(read_bw[l], write_bw[l], shared_bw[l], rd, wr)
            lc = np.int64(math.ceil(c / slow))
            level_cycles_o[j, l] = lc
            cyc = max(cyc, lc)
            leak = leak + leak_w[l] * max(instances[b, l], 1)
        cycles_o[j] = cyc
        dyn_o[j] = dyn
        leak_o[j] = leak * cyc
