"""Compiled draw-and-price of mapspace candidates, over the *live* dimensions only.

Same streams, decisions and costs as ``_explore_kernel.explore_kernel`` (the previous
implementation, kept for comparison), with less work per candidate:

- dimensions whose table rows are all 1 (size-1 dimensions) are never decoded, multiplied or
  compared: their factors stay 1, as every factor table of a size-1 dimension says;
- validity stops at the first failed rule (``explore`` needs the flag, not the reasons), and
  the order rule is skipped when every initial order is a permutation (Fisher-Yates keeps
  it one; the caller checks);
- the per-level extents and tile sizes computed for the capacity check are reused by the
  nest analysis;
- for a tensor with no sliding axis, the refetch multipliers (rule N4) of every level and
  tensor come from one outer-to-inner pass over the loops instead of one pass per level and
  tensor: the same integer products, in another order.

Tensors with a sliding axis use ``_nest_kernel._deltas`` unchanged, and pricing is
``_pricing_kernel.price_one`` unchanged, so the floating-point operations are the same.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from cost_models._nest_kernel import _deltas, _distinct, nest_work
from cost_models._pricing_kernel import price_one  # inlined: numba's cache misses edits there
from mapspace.kernels import tile_size
from mapspace.sampler_kernels import CHUNK, chunk_state, sample_one


@njit(cache=True, inline="always")
def _valid_live(i, live, tm, sp, ext, tiles, sizes, fan_x, fan_y, capacity, bits, datawidth,
                tdim, tcoef, spatial_x, keep):
    """True when candidate ``i`` (factors ``tm``/``sp`` already decoded) is valid; fills
    ``ext[L + 1, D]`` (extents below each level) and ``tiles[L, T]`` on the way."""
    L = tm.shape[0]
    T = keep.shape[2]
    for l in range(L - 1, -1, -1):
        sx = 1
        sy = 1
        for j in range(live.shape[0]):
            d = live[j]
            tf = tm[l, d]
            sf = sp[l, d]
            if tf < 1 or sf < 1:
                return False
            ext[l, d] = ext[l + 1, d] * tf * sf
            if spatial_x[i, l, d]:
                sx *= sf
            else:
                sy *= sf
        if sx > fan_x[l] or sy > fan_y[l]:
            return False
        used = 0
        for t in range(T):
            n = tile_size(tdim, tcoef, t, ext[l])
            tiles[l, t] = n
            if keep[i, l, t]:
                if bits[t] > 0:
                    n = -(-n * bits[t] // datawidth[l])
                used += n
        if capacity[l] >= 0 and used > capacity[l]:
            return False
    for j in range(live.shape[0]):
        d = live[j]
        if ext[0, d] != sizes[d]:
            return False
    for t in range(T):
        any_keep = False
        for l in range(L):
            any_keep |= keep[i, l, t]
        if not any_keep:
            return False
    return True


@njit(cache=True, inline="always")
def _nest_live(i, live, tm, sp, order, keep, ext, tiles, tdim, tcoef, dense, read_write,
               relevant, sliding, mult, upto, pos, act, reads, fills, updates, inst_o, macs_o,
               cinst_o, work):
    """``_nest_kernel._one`` for a valid candidate, over the live dimensions (see module doc);
    writes mapping 0 of ``reads``/``fills``/``updates``/``inst_o``/``macs_o``/``cinst_o``."""
    L = tm.shape[0]
    T = keep.shape[2]
    _, union, deltas, content, part, G, _, fans, scratch = work
    inst = 1
    macs = 1
    for l in range(L):
        inst_o[0, l] = inst
        fan = 1
        for j in range(live.shape[0]):
            d = live[j]
            fan *= sp[l, d]
            macs *= tm[l, d]
        fans[l] = fan
        inst *= fan
    macs_o[0] = macs
    cinst_o[0] = inst
    # mult[l, t]: product of the loops above level l from the outermost one down to the
    # innermost loop that moves tensor t (1 when none does), for every tensor in one pass
    every = 1
    for t in range(T):
        upto[t] = 1
    for l in range(L):
        for t in range(T):
            mult[l, t] = upto[t]
        for k in range(order.shape[2]):
            pos[order[i, l, k]] = k
        m = 0                                   # live loops of the level, outermost first
        for j in range(live.shape[0]):
            d = live[j]
            if tm[l, d] <= 1:
                continue
            q = m
            while q > 0 and pos[act[q - 1]] < pos[d]:
                act[q] = act[q - 1]
                q -= 1
            act[q] = d
            m += 1
        for q in range(m):
            d = act[q]
            every *= tm[l, d]
            for t in range(T):
                if relevant[t, d]:
                    upto[t] = every
    for t in range(T):
        for l in range(L):
            G[l] = _distinct(tdim, tcoef, t, sp[l], ext[l + 1]) if fans[l] > 1 else 1
        part[0] = tiles[0, t]
        for l in range(1, L):
            if fans[l - 1] > 1:
                for j in range(live.shape[0]):
                    d = live[j]
                    union[d] = ext[l, d] * sp[l - 1, d]
                part[l] = part[l - 1] * tiles[l, t] // tile_size(tdim, tcoef, t, union)
            else:
                part[l] = part[l - 1]
        if sliding[t]:
            for l in range(L):
                deltas[l] = 0
                if keep[i, l, t]:
                    deltas[l] = _deltas(tdim, tcoef, dense, t, tm, sp, order[i], ext, l,
                                        tiles[l, t], scratch)
        else:
            for l in range(L):
                deltas[l] = tiles[l, t] * mult[l, t] if keep[i, l, t] else 0
        content[L - 1] = G[L - 1] * macs
        for l in range(L - 2, -1, -1):
            below = deltas[l + 1] if keep[i, l + 1, t] else content[l + 1]
            content[l] = G[l] * below
        outermost = True
        for l in range(L):
            if not keep[i, l, t]:
                reads[0, l, t] = 0
                updates[0, l, t] = 0
                fills[0, l, t] = 0
                continue
            if read_write[t]:
                reads[0, l, t] = content[l] - part[l]
                updates[0, l, t] = content[l]
                fills[0, l, t] = 0 if outermost else deltas[l] - part[l]
            else:
                reads[0, l, t] = content[l]
                updates[0, l, t] = 0
                fills[0, l, t] = 0 if outermost else deltas[l]
            outermost = False


@njit(cache=True, parallel=True)
def explore_live_kernel(seed, first_chunk,
                        table_sizes, prefix_len, order_init, free_len, xy_free, x_fixed,
                        keep_free, keep_value,
                        flat, offsets, slot_level, slot_spatial,
                        sizes, fan_x, fan_y, capacity, bits, datawidth,
                        tdim, tcoef, dense, read_write,
                        block, e_read, e_write, e_update, e_leak, clusters, read_bw, write_bw,
                        shared_bw, e_mac, live, relevant, sliding,
                        factor_o, order_o, spatial_x_o, keep_o,
                        valid_o, cycles_o, energy_o, util_o):
    n = factor_o.shape[0]
    D = table_sizes.shape[0]
    L = prefix_len.shape[0]
    T = keep_free.shape[1]
    S = slot_level.shape[0]
    nchunks = (n + CHUNK - 1) // CHUNK
    for c in prange(nchunks):
        lo = c * CHUNK
        hi = min(n, lo + CHUNK)
        tm = np.ones((L, D), np.int64)           # dead dimensions keep factor 1 throughout
        sp = np.ones((L, D), np.int64)
        ext = np.ones((L + 1, D), np.int64)
        tiles = np.zeros((L, T), np.int64)
        mult = np.ones((L, T), np.int64)
        upto = np.ones(T, np.int64)
        pos = np.zeros(D, np.int64)
        act = np.zeros(D, np.int64)
        reads = np.zeros((1, L, T), np.int64)
        fills = np.zeros((1, L, T), np.int64)
        updates = np.zeros((1, L, T), np.int64)
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
        work[1][:] = 1                           # union: dead dimensions stay 1
        state = chunk_state(seed, first_chunk + c)
        for i in range(lo, hi):
            state = sample_one(state, i, table_sizes, prefix_len, order_init, free_len,
                               xy_free, x_fixed, keep_free, keep_value, factor_o, order_o,
                               spatial_x_o, keep_o)
            for j in range(live.shape[0]):       # decode (sampler_kernels.decode_one)
                d = live[j]
                base = offsets[d] + factor_o[i, d] * S
                for s in range(S):
                    if slot_spatial[s]:
                        sp[slot_level[s], d] = flat[base + s]
                    else:
                        tm[slot_level[s], d] = flat[base + s]
            ok = _valid_live(i, live, tm, sp, ext, tiles, sizes, fan_x, fan_y, capacity, bits,
                             datawidth, tdim, tcoef, spatial_x_o, keep_o)
            valid_o[i] = ok
            if not ok:
                cycles_o[i] = 0
                energy_o[i] = np.nan
                util_o[i] = np.nan
                continue
            _nest_live(i, live, tm, sp, order_o, keep_o, ext, tiles, tdim, tcoef, dense,
                       read_write, relevant, sliding, mult, upto, pos, act, reads, fills,
                       updates, inst, macs, cinst, work)
            price_one(0, reads, fills, updates, inst, macs, cinst, block, e_read, e_write,
                      e_update, e_leak, clusters, read_bw, write_bw, shared_bw, e_mac, cyc,
                      energy, mac_e, leak, level_cycles, breakdown)
            cycles_o[i] = cyc[0]
            energy_o[i] = energy[0]
            util_o[i] = macs[0] * cinst[0] / (cyc[0] * 1.0)
