"""A simple seeded generator of random mappings (factorizations x orders x splits).

Each prime factor of each dimension goes to a uniformly chosen slot (a level's temporal
loop, or a level's spatial fan-out where the arch has one); loop orders are uniform
permutations and each spatial factor goes along X or Y at random.  The result is
structurally sound (factors multiply out) but may overflow a buffer or a fan-out: filter
with :func:`mapspace.validity.check`, or use :func:`random_valid`.  The constrained,
uniform sampler of the mapspace is ``mapspace.space`` (not this module).
"""

from __future__ import annotations

import numpy as np

from mapspace.arch import Arch
from mapspace.errors import MapspaceError
from mapspace.mapping import MappingBatch
from mapspace.problem import Problem
from mapspace.validity import check


def prime_factors(n: int) -> list[int]:
    """Prime factors of ``n`` with multiplicity, ascending."""
    out, p = [], 2
    while p * p <= n:
        while n % p == 0:
            out.append(p)
            n //= p
        p += 1
    if n > 1:
        out.append(n)
    return out


def random_mappings(problem: Problem, arch: Arch, n: int, rng: np.random.Generator,
                    keep: np.ndarray | None = None) -> MappingBatch:
    """``n`` random structurally sound mappings.

    ``keep: bool[L, T]`` is shared by all of them (default: every real level keeps every
    tensor, dummy levels keep nothing).
    """
    L, D, T = arch.num_levels, problem.num_dims, problem.num_tensors
    fan = np.array([arch.fanout(l) for l in range(L)], np.int64).reshape(L, 2)
    fx, fy = fan[:, 0], fan[:, 1]
    spatial_ok = fan.prod(axis=1) > 1
    slots = np.array([*range(L), *(L + np.nonzero(spatial_ok)[0])])   # temporal, spatial
    both = ((fx > 1) & (fy > 1))[None, :, None]
    only_y = ((fx == 1) & (fy > 1))[None, :, None]       # else X, as the YAML loader does
    spatial_x = np.where(both, rng.random((n, L, D)) < 0.5, ~only_y)
    temporal = np.ones((n, L, D), np.int64)
    spatial = np.ones((n, L, D), np.int64)
    used = np.ones((n, L, 2), np.int64)          # spatial product so far along X, Y
    rows = np.arange(n)
    for d, size in enumerate(problem.sizes):
        for p in prime_factors(size):
            pick = slots[rng.integers(0, len(slots), n)]
            lvl = np.where(pick < L, pick, pick - L)
            axis = np.where(spatial_x[rows, lvl, d], 0, 1)
            limit = fan[lvl, axis]
            # A prime that would overflow the fan-out goes to that level's temporal loop.
            fits = (pick >= L) & (used[rows, lvl, axis] * p <= limit)
            s_rows = np.nonzero(fits)[0]
            spatial[s_rows, lvl[s_rows], d] *= p
            used[s_rows, lvl[s_rows], axis[s_rows]] *= p
            t_rows = np.nonzero(~fits)[0]
            temporal[t_rows, lvl[t_rows], d] *= p
    order = np.argsort(rng.random((n, L, D)), axis=2).astype(np.int64)
    if keep is None:
        keep = np.array([[not lv.is_dummy] * T for lv in arch.levels], bool)
    keep_b = np.broadcast_to(np.asarray(keep, bool)[None], (n, L, T)).copy()
    return MappingBatch(temporal, spatial, order, spatial_x, keep_b)


def random_valid(problem: Problem, arch: Arch, n: int, seed: int,
                 keep: np.ndarray | None = None, chunk: int = 200_000,
                 max_draws: int = 50_000_000) -> tuple[MappingBatch, int]:
    """``n`` random *valid* mappings by rejection, and the number of candidates drawn."""
    rng = np.random.default_rng(seed)
    got: list[MappingBatch] = []
    have = drawn = 0
    while have < n and drawn < max_draws:
        cand = random_mappings(problem, arch, chunk, rng, keep)
        drawn += chunk
        ok = check(problem, arch, cand).valid
        if ok.any():
            got.append(cand[np.nonzero(ok)[0]])
            have += int(ok.sum())
    if not got:
        raise MapspaceError(f"no valid mapping in {drawn} random candidates",
                            where="random_valid")
    return MappingBatch.concat(got)[:n], drawn
