"""Compiled evaluation of a batch in one pass: validity, data movement, pricing per mapping.

The three stages are the same per-mapping functions the separate kernels use
(``mapspace.kernels.validate_one``, ``_nest_kernel._one``, ``_pricing_kernel.price_one``);
this driver only chains them, skipping analysis and pricing of invalid mappings.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from cost_models._nest_kernel import _one, nest_work
from cost_models._pricing_kernel import price_one  # inlined: numba's cache misses edits there
from mapspace.kernels import validate_one


@njit(cache=True, parallel=True)
def evaluate_kernel(temporal, spatial, order, spatial_x, keep,
                    sizes, fan_x, fan_y, capacity, bits, datawidth,
                    tdim, tcoef, dense, read_write,
                    block, e_read, e_write, e_update, e_leak, clusters, read_bw, write_bw,
                    shared_bw, e_mac,
                    reasons_o, bad_dims_o, over_o, usage_o, unkept_o,
                    tile_o, reads_o, fills_o, updates_o, part_o, inst_o, macs_o, cinst_o,
                    cycles_o, energy_o, mac_o, leak_o, level_cycles_o, breakdown_o):
    B, L, D = temporal.shape
    T = keep.shape[2]
    nchunks = min(B, 64)
    for c in prange(nchunks):
        work = nest_work(L, D, tdim.shape[1])
        ext1 = np.ones(D, np.int64)
        seen = np.zeros(D, np.bool_)
        for b in range(c * B // nchunks, (c + 1) * B // nchunks):
            r = validate_one(b, temporal, spatial, order, spatial_x, keep, sizes, fan_x, fan_y,
                             capacity, bits, datawidth, tdim, tcoef, reasons_o, bad_dims_o,
                             over_o, usage_o, unkept_o, ext1, seen)
            if r == 0:
                _one(b, temporal, spatial, order, keep, tdim, tcoef, dense, read_write, tile_o,
                     reads_o, fills_o, updates_o, part_o, inst_o, macs_o, cinst_o, work)
                price_one(b, reads_o, fills_o, updates_o, inst_o, macs_o, cinst_o, block,
                          e_read, e_write, e_update, e_leak, clusters, read_bw, write_bw,
                          shared_bw, e_mac, cycles_o, energy_o, mac_o, leak_o, level_cycles_o,
                          breakdown_o)
                continue
            for l in range(L):
                inst_o[b, l] = 0
                level_cycles_o[b, l] = 0
                for t in range(T):
                    tile_o[b, l, t] = 0
                    reads_o[b, l, t] = 0
                    fills_o[b, l, t] = 0
                    updates_o[b, l, t] = 0
                    part_o[b, l, t] = 0
                    breakdown_o[b, l, t] = np.nan
            macs_o[b] = 0
            cinst_o[b] = 0
            cycles_o[b] = 0
            energy_o[b] = np.nan
            mac_o[b] = np.nan
            leak_o[b] = np.nan
