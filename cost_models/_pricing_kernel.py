"""Compiled (numba) per-mapping pricing; the rules are in ``cost_models/pricing.py``."""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange


@njit(cache=True, inline="always")
def slowdown(read_bw, write_bw, shared_bw, rd, wd):
    """The slowdown of a level whose read and write demand per compute cycle are ``rd`` and
    ``wd`` words under its read, write and shared bandwidths (rule P5): 1, or the smallest
    bandwidth / demand below 1."""
    slow = 1.0
    if read_bw < rd:
        slow = min(slow, read_bw / rd)
    if write_bw < wd:
        slow = min(slow, write_bw / wd)
    if shared_bw < rd + wd:
        slow = min(slow, shared_bw / (rd + wd))
    return slow


@njit(cache=True, inline="always")
def price_one(b, reads, fills, updates, instances, macs, cinst, block, e_read, e_write,
              e_update, e_leak, clusters, read_bw, write_bw, shared_bw, e_mac,
              cycles_o, energy_o, mac_o, leak_o, level_cycles_o, breakdown_o):
    """Cycles and energy of mapping ``b`` from its data movement (rules P1-P7)."""
    L, T = reads.shape[1], reads.shape[2]
    cc = float(macs[b])
    cyc = macs[b]
    dyn = 0.0
    for l in range(L):
        uc = min(instances[b, l], clusters[l])
        rd = 0.0
        wd = 0.0
        bs = block[l]
        for t in range(T):
            r = reads[b, l, t]
            f = fills[b, l, t]
            u = updates[b, l, t]
            if bs != 1:                      # whole vector accesses (rule P1)
                r, f, u = -(-r // bs), -(-f // bs), -(-u // bs)
            e = (r * e_read[l] + f * e_write[l] + u * e_update[l]) * uc
            breakdown_o[b, l, t] = e
            dyn += e
            rd += reads[b, l, t] / cc
            wd += (fills[b, l, t] + updates[b, l, t]) / cc
        lc = np.int64(math.ceil(cc / slowdown(read_bw[l], write_bw[l], shared_bw[l], rd,
                                              wd)))
        level_cycles_o[b, l] = lc
        cyc = max(cyc, lc)
    lk = 0.0
    for l in range(L):
        lk += e_leak[l] * max(instances[b, l], 1)
    lk *= cyc
    mac = float(macs[b] * cinst[b]) * e_mac
    cycles_o[b] = cyc
    mac_o[b] = mac
    leak_o[b] = lk
    energy_o[b] = dyn + mac + lk


@njit(cache=True, parallel=True)
def pricing_kernel(reads, fills, updates, instances, macs, cinst, block, e_read, e_write,
                   e_update, e_leak, clusters, read_bw, write_bw, shared_bw, e_mac,
                   cycles_o, energy_o, mac_o, leak_o, level_cycles_o, breakdown_o):
    for b in prange(reads.shape[0]):
        price_one(b, reads, fills, updates, instances, macs, cinst, block, e_read, e_write,
                  e_update, e_leak, clusters, read_bw, write_bw, shared_bw, e_mac,
                  cycles_o, energy_o, mac_o, leak_o, level_cycles_o, breakdown_o)
