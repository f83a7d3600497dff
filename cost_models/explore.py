"""Draw mapspace candidates and price the valid ones in one compiled pass.

:class:`SampleAndPrice` wraps the compiled kernel (``cost_models/_explore_live_kernel.py``):
chunk ``c`` of a draw seeded ``seed`` is drawn from the same random stream as
:meth:`Mapspace.draw <mapspace.space.Mapspace.draw>`, decoded, validated, and the valid
candidates priced with the analytical model, so its costs equal ``draw`` + ``evaluate``.
``legacy=True`` runs the previous kernel (``cost_models/_explore_kernel.py``), which gives
the same decisions and costs more slowly (kept for ``benchmarks/bench_explore.py``).
"""

from __future__ import annotations

import numpy as np

from cost_models.model import kernel_arrays
from cost_models.pricing import Prices
from mapspace.space import Decisions, Mapspace

# cost_models._explore_kernel is imported in SampleAndPrice.__call__: numba takes ~0.15 s
# to import and `import cost_models` stays light

__all__ = ["SampleAndPrice", "sample_and_price"]


class SampleAndPrice:
    """Draw ``n`` candidates from chunk ``first`` on and price the valid ones (compiled).

    The constant kernel inputs (sampler tables, problem and arch arrays, prices) are built
    once per space; each call returns ``(decisions, valid bool[n], cycles int64[n],
    energy_pJ float[n], utilization float[n])`` in draw order (costs of invalid candidates
    are unspecified).
    """

    def __init__(self, space: Mapspace, legacy: bool = False):
        self.space = space
        self.prices = Prices.of(space.arch)
        self.args = (*space.sampler_args, *space.flat_tables,
                     *kernel_arrays(space.problem, space.arch, self.prices))
        order_init = space.sampler_args[2]
        D = space.problem.num_dims
        # the live kernel skips the order rule: every initial order must be a permutation
        perm = all(sorted(row) == list(range(D)) for row in order_init.tolist())
        self.legacy = legacy or not perm
        if not self.legacy:
            # tdim, tcoef, dense: after the sampler and decoder arrays and the 6 validity
            # arrays of kernel_arrays
            terms = len(space.sampler_args) + len(space.flat_tables) + 6
            self.args = (*self.args[:terms], *_compact_terms(*self.args[terms:terms + 3]),
                         *self.args[terms + 3:], *_live_arrays(space))

    def __call__(self, n: int, seed: int, first: int = 0
                 ) -> tuple[Decisions, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        from cost_models._explore_kernel import explore_kernel
        from cost_models._explore_live_kernel import explore_live_kernel

        p, a = self.space.problem, self.space.arch
        L, D, T = a.num_levels, p.num_dims, p.num_tensors
        factor = np.empty((n, D), np.int64)
        order = np.empty((n, L, D), np.int64)
        spatial_x = np.empty((n, L, D), bool)
        keep = np.empty((n, L, T), bool)
        ok = np.empty(n, bool)
        cycles = np.empty(n, np.int64)
        energy = np.empty(n)
        util = np.empty(n)
        kernel = explore_kernel if self.legacy else explore_live_kernel
        kernel(np.uint64(seed % (1 << 64)), first, *self.args,
               factor, order, spatial_x, keep, ok, cycles, energy, util)
        util /= self.prices.mac_instances
        return Decisions(factor, order, spatial_x, keep), ok, cycles, energy, util


def _live_arrays(space: Mapspace) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(live dims, relevant[T, D], sliding[T])`` for the live kernel: a dimension is dead
    when its size is 1 and every factor in its table is 1 (the kernel never touches it);
    ``relevant[t, d]``: dimension ``d`` moves tensor ``t``; ``sliding[t]``: some axis of
    ``t`` has two or more live terms."""
    from mapspace.kernels import projection_tables

    p = space.problem
    flat, offsets, _, _ = space.flat_tables
    S = len(space.slots)
    ends = [int(offsets[d]) + len(space.tables[d]) * S for d in range(p.num_dims)]
    live = np.array([d for d in range(p.num_dims)
                     if p.sizes[d] != 1 or (flat[offsets[d]:ends[d]] != 1).any()], np.int64)
    tdim, tcoef, dense = projection_tables(p.projections, p.sizes)
    relevant = (dense != 0).any(axis=1)
    sliding = ((tcoef != 0).sum(axis=2) > 1).any(axis=1)
    return live, relevant, sliding


def _compact_terms(tdim: np.ndarray, tcoef: np.ndarray, dense: np.ndarray
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The projection tables without the axes that have no live term and without unused
    term columns (for the live kernel).  Such an axis spans 1 whatever the mapping, never
    moves a tile and never slides: dropping it leaves every tile size, distinct-tile count
    and delta the same, with fewer iterations (BERT FFN1: 2 axes of 1 term instead of 4 of
    2)."""
    T = tdim.shape[0]
    axes = [np.nonzero((tcoef[t] != 0).any(axis=1))[0] for t in range(T)]
    A = max(1, max(len(a) for a in axes))
    K = max(1, int((tcoef != 0).sum(axis=2).max()))
    td = np.zeros((T, A, K), np.int64)
    tc = np.zeros((T, A, K), np.int64)
    dn = np.zeros((T, A, dense.shape[2]), np.int64)
    for t in range(T):
        for j, a in enumerate(axes[t]):
            live = np.nonzero(tcoef[t, a])[0]       # term_tables packs live terms first
            td[t, j, :len(live)] = tdim[t, a, live]
            tc[t, j, :len(live)] = tcoef[t, a, live]
            dn[t, j] = dense[t, a]
    return td, tc, dn


def sample_and_price(space: Mapspace, n: int, seed: int, first: int = 0
                     ) -> tuple[Decisions, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """One-off :class:`SampleAndPrice` call (build the class once to draw several rounds)."""
    return SampleAndPrice(space)(n, seed, first)
