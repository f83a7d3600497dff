"""Compiled uniform sampler of mapspace decisions (numba, parallel over fixed-size chunks).

Chunk ``c`` of a draw seeded ``seed`` always produces the same decisions, whatever the
number of threads: each chunk owns a SplitMix64 stream started from ``(seed, c)``.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

CHUNK = 4096
_MASK = (1 << 64) - 1


@njit(cache=True, inline="always")
def _next(state):
    state = state + np.uint64(0x9E3779B97F4A7C15)
    z = state
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    z = z ^ (z >> np.uint64(31))
    return state, z


@njit(cache=True, inline="always")
def _below(state, n):
    """Uniform integer in ``[0, n)`` (53-bit float scaling; bias below 2**-40 for n < 2**13).

    The 53-bit integer goes to float through int64: the same exact value as the unsigned
    conversion, which x86-64 has no single instruction for (issue 13 item 4: ~9% of
    explore's time per valid FFN1 mapping)."""
    state, z = _next(state)
    u = np.int64(z >> np.uint64(11)) * (1.0 / 9007199254740992.0)
    return state, np.int64(u * n)


@njit(cache=True, inline="always")
def chunk_state(seed, chunk):
    """The random stream of one chunk."""
    state = np.uint64(seed) ^ (np.uint64(chunk) * np.uint64(0xD1B54A32D192ED03))
    state, _ = _next(state)
    return state


@njit(cache=True, inline="always")
def sample_one(state, i, table_sizes, prefix_len, order_init, free_len, xy_free, x_fixed,
               keep_free, keep_value, factor_o, order_o, spatial_x_o, keep_o):
    """Draw candidate ``i`` (all axes uniform); returns the advanced stream state."""
    D = table_sizes.shape[0]
    L = prefix_len.shape[0]
    T = keep_free.shape[1]
    for d in range(D):
        state, r = _below(state, table_sizes[d])
        factor_o[i, d] = r
    for l in range(L):
        for d in range(D):
            order_o[i, l, d] = order_init[l, d]
        p = prefix_len[l]
        m = free_len[l]
        for k in range(m - 1, 0, -1):             # Fisher-Yates on the free part
            state, j = _below(state, k + 1)
            tmp = order_o[i, l, p + k]
            order_o[i, l, p + k] = order_o[i, l, p + j]
            order_o[i, l, p + j] = tmp
        for d in range(D):
            if xy_free[l]:
                state, r = _below(state, 2)
                spatial_x_o[i, l, d] = r == 1
            else:
                spatial_x_o[i, l, d] = x_fixed[l, d]
        for t in range(T):
            if keep_free[l, t]:
                state, r = _below(state, 2)
                keep_o[i, l, t] = r == 1
            else:
                keep_o[i, l, t] = keep_value[l, t]
    return state


@njit(cache=True, inline="always")
def decode_one(i, factor, flat, offsets, slot_level, slot_spatial, temporal_o, spatial_o):
    """Write the loop factors of candidate ``i`` from its table rows."""
    D = factor.shape[1]
    S = slot_level.shape[0]
    L = temporal_o.shape[1]
    for l in range(L):
        for d in range(D):
            temporal_o[i, l, d] = 1
            spatial_o[i, l, d] = 1
    for d in range(D):
        base = offsets[d] + factor[i, d] * S
        for s in range(S):
            if slot_spatial[s]:
                spatial_o[i, slot_level[s], d] = flat[base + s]
            else:
                temporal_o[i, slot_level[s], d] = flat[base + s]


@njit(cache=True, parallel=True)
def sample_kernel(seed, first_chunk, table_sizes, prefix_len, order_init, free_len,
                  xy_free, x_fixed, keep_free, keep_value,
                  factor_o, order_o, spatial_x_o, keep_o):
    n = factor_o.shape[0]
    nchunks = (n + CHUNK - 1) // CHUNK
    for c in prange(nchunks):
        state = chunk_state(seed, first_chunk + c)
        for i in range(c * CHUNK, min(n, (c + 1) * CHUNK)):
            state = sample_one(state, i, table_sizes, prefix_len, order_init, free_len,
                               xy_free, x_fixed, keep_free, keep_value, factor_o, order_o,
                               spatial_x_o, keep_o)


@njit(cache=True, parallel=True)
def decode_kernel(factor, flat, offsets, slot_level, slot_spatial, temporal_o, spatial_o):
    """Write the loop factors chosen by ``factor`` (rows of the per-dimension tables)."""
    for i in prange(factor.shape[0]):
        decode_one(i, factor, flat, offsets, slot_level, slot_spatial, temporal_o, spatial_o)
