"""Compiled draw-and-price of mapspace candidates in one pass (for ``compiler.explore``).

Each chunk of 4096 candidates is drawn from its own random stream (exactly as
``Mapspace.draw``), decoded, validated, and the valid ones analysed and priced, all with
the same per-mapping functions the separate kernels use; only the decisions, a validity
flag and the costs leave the kernel.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from cost_models._nest_kernel import _one, nest_work
from cost_models._pricing_kernel import price_one  # inlined: numba's cache misses edits there
from mapspace.kernels import validate_one
from mapspace.sampler_kernels import CHUNK, chunk_state, decode_one, sample_one


@njit(cache=True, parallel=True)
def explore_kernel(seed, first_chunk,
                   table_sizes, prefix_len, order_init, free_len, xy_free, x_fixed,
                   keep_free, keep_value,
                   flat, offsets, slot_level, slot_spatial,
                   sizes, fan_x, fan_y, capacity, bits, datawidth,
                   tdim, tcoef, dense, read_write,
                   block, e_read, e_write, e_update, e_leak, clusters, read_bw, write_bw,
                   shared_bw, e_mac,
                   factor_o, order_o, spatial_x_o, keep_o,
                   valid_o, cycles_o, energy_o, util_o):
    n = factor_o.shape[0]
    D = table_sizes.shape[0]
    L = prefix_len.shape[0]
    T = keep_free.shape[1]
    nchunks = (n + CHUNK - 1) // CHUNK
    for c in prange(nchunks):
        lo = c * CHUNK
        hi = min(n, lo + CHUNK)
        # one-mapping scratch (index 0) for the per-mapping stage functions
        tm = np.ones((1, L, D), np.int64)
        sp = np.ones((1, L, D), np.int64)
        od = np.zeros((1, L, D), np.int64)
        sx = np.ones((1, L, D), np.bool_)
        kp = np.zeros((1, L, T), np.bool_)
        fac = np.zeros((1, D), np.int64)
        reasons = np.zeros(1, np.int64)
        bad_dims = np.zeros((1, D), np.bool_)
        over = np.zeros((1, L), np.bool_)
        usage = np.zeros((1, L), np.int64)
        unkept = np.zeros((1, T), np.bool_)
        tile = np.zeros((1, L, T), np.int64)
        reads = np.zeros((1, L, T), np.int64)
        fills = np.zeros((1, L, T), np.int64)
        updates = np.zeros((1, L, T), np.int64)
        part_o = np.zeros((1, L, T), np.int64)
        inst = np.zeros((1, L), np.int64)
        macs = np.zeros(1, np.int64)
        cinst = np.zeros(1, np.int64)
        cyc = np.zeros(1, np.int64)
        energy = np.zeros(1)
        mac_e = np.zeros(1)
        leak = np.zeros(1)
        level_cycles = np.zeros((1, L), np.int64)
        breakdown = np.zeros((1, L, T))
        work = nest_work(L, D, tdim.shape[1])
        ext1 = np.ones(D, np.int64)
        seen = np.zeros(D, np.bool_)
        state = chunk_state(seed, first_chunk + c)
        for i in range(lo, hi):
            state = sample_one(state, i, table_sizes, prefix_len, order_init, free_len,
                               xy_free, x_fixed, keep_free, keep_value, factor_o, order_o,
                               spatial_x_o, keep_o)
            for d in range(D):
                fac[0, d] = factor_o[i, d]
            for l in range(L):
                for d in range(D):
                    od[0, l, d] = order_o[i, l, d]
                    sx[0, l, d] = spatial_x_o[i, l, d]
                for t in range(T):
                    kp[0, l, t] = keep_o[i, l, t]
            decode_one(0, fac, flat, offsets, slot_level, slot_spatial, tm, sp)
            r = validate_one(0, tm, sp, od, sx, kp, sizes, fan_x, fan_y, capacity, bits,
                             datawidth, tdim, tcoef, reasons, bad_dims, over, usage, unkept,
                             ext1, seen)
            valid_o[i] = r == 0
            if r != 0:
                cycles_o[i] = 0
                energy_o[i] = np.nan
                util_o[i] = np.nan
                continue
            _one(0, tm, sp, od, kp, tdim, tcoef, dense, read_write, tile, reads, fills,
                 updates, part_o, inst, macs, cinst, work)
            price_one(0, reads, fills, updates, inst, macs, cinst, block, e_read, e_write,
                      e_update, e_leak, clusters, read_bw, write_bw, shared_bw, e_mac, cyc,
                      energy, mac_e, leak, level_cycles, breakdown)
            cycles_o[i] = cyc[0]
            energy_o[i] = energy[0]
            util_o[i] = macs[0] * cinst[0] / (cyc[0] * 1.0)
