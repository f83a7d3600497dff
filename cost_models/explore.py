"""Draw mapspace candidates and price the valid ones in one compiled pass.

:class:`SampleAndPrice` wraps the compiled kernel (``cost_models/_explore_kernel.py``):
chunk ``c`` of a draw seeded ``seed`` is drawn from the same random stream as
:meth:`Mapspace.draw <mapspace.space.Mapspace.draw>`, decoded, validated, and the valid
candidates priced with the analytical model, so its costs equal ``draw`` + ``evaluate``.
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

    def __init__(self, space: Mapspace):
        self.space = space
        self.prices = Prices.of(space.arch)
        self.args = (*space.sampler_args, *space.flat_tables,
                     *kernel_arrays(space.problem, space.arch, self.prices))

    def __call__(self, n: int, seed: int, first: int = 0
                 ) -> tuple[Decisions, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        from cost_models._explore_kernel import explore_kernel

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
        explore_kernel(np.uint64(seed % (1 << 64)), first, *self.args,
                       factor, order, spatial_x, keep, ok, cycles, energy, util)
        util /= self.prices.mac_instances
        return Decisions(factor, order, spatial_x, keep), ok, cycles, energy, util


def sample_and_price(space: Mapspace, n: int, seed: int, first: int = 0
                     ) -> tuple[Decisions, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """One-off :class:`SampleAndPrice` call (build the class once to draw several rounds)."""
    return SampleAndPrice(space)(n, seed, first)
