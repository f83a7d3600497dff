"""Parallel simulated annealing over the genes of a decision."""

from __future__ import annotations

import numpy as np

from mapspace.search.operators import local_moves, neighbour
from mapspace.space import Decisions, Mapspace


class Anneal:
    """``chains`` independent simulated-annealing chains on ``log(objective)``.

    Algorithm:

    1. The first :meth:`ask` returns ``chains`` uniform random decisions (the start states).
    2. Each later :meth:`ask` proposes, per chain, a neighbour of its state (one gene
       changed, :func:`mapspace.search.operators.neighbour`); with ``local`` (the default)
       half of the factor changes move one prime factor between two slots
       (:func:`~mapspace.search.operators.local_moves`) instead of jumping to a uniformly
       drawn factorization.  A chain whose state is invalid instead restarts from a fresh
       uniform random decision, taken as soon as one is valid.
    3. :meth:`tell` applies Metropolis acceptance at temperature ``T_k = t0 * cooling**k``
       (``k`` = step): a valid proposal with ``delta = log(new) - log(current)`` is accepted
       when ``delta <= 0`` or with probability ``exp(-delta / T_k)``; invalid proposals are
       rejected.  Working on ``log(objective)`` makes ``t0`` a relative change (``t0 = 0.3``
       accepts a 35% worse proposal with probability 1/e), whatever the objective's scale.
    4. ``cooling=None`` cools geometrically from ``t0`` to ``t0 * 1e-3`` over ``budget``
       evaluations (``budget / chains`` steps); the search then keeps going, greedily, until
       the driver stops it.
    5. ``chains=None``: ``budget // 128`` clamped to 16..256, so a small budget still gets
       128+ steps per chain (measured over the 29 BERT-Base/ResNet-50 layers against
       ``benchmarks/data/best_known.yaml``: with 2K evaluations 18 layers within 1% instead
       of 3 with 256 chains, with 10K 24 instead of 20; 256 from 32K on).
    """

    name = "anneal"

    def __init__(self, space: Mapspace, seed: int = 0, chains: int | None = None,
                 t0: float = 0.3, cooling: float | None = None, budget: int = 100_000,
                 local: bool = True):
        self.space = space
        self.seed = seed
        self.chains = chains if chains is not None else min(256, max(16, budget // 128))
        self.local = local
        self._moves: tuple[np.ndarray, ...] | None = None
        self.t0 = t0
        self.cooling = cooling
        self.budget = budget
        self._rng: np.random.Generator | None = None
        self._state: Decisions | None = None
        self._energy = np.zeros(0)
        self._step = 0

    def _temperature(self) -> float:
        steps = max(1.0, self.budget / self.chains)
        cooling = self.cooling if self.cooling is not None else 1e-3 ** (1.0 / steps)
        return self.t0 * cooling ** self._step

    def ask(self) -> Decisions:
        if self._rng is None:
            self._rng = np.random.default_rng(self.seed)
        if self._state is None:
            return self.space.random_decisions(self.chains, self._rng)
        if self.local and self._moves is None:
            self._moves = local_moves(self.space)
        proposal = neighbour(self.space, self._state, self._rng, self._moves)
        stuck = np.nonzero(~np.isfinite(self._energy))[0]
        if len(stuck):
            restart = self.space.random_decisions(len(stuck), self._rng)
            for f in ("factor", "order", "spatial_x", "keep"):
                getattr(proposal, f)[stuck] = getattr(restart, f)
        return proposal

    def tell(self, decisions: Decisions, objective: np.ndarray, valid: np.ndarray) -> None:
        assert self._rng is not None
        n = len(decisions)
        with np.errstate(divide="ignore"):
            energy = np.where(valid, np.log(np.maximum(objective, 1e-300)), np.inf)
        if self._state is None:
            pad = self.space.random_decisions(self.chains - n, self._rng)
            self._state = Decisions.concat([decisions, pad])
            self._energy = np.concatenate([energy, np.full(self.chains - n, np.inf)])
            return
        cur = self._energy[:n]
        with np.errstate(invalid="ignore", over="ignore"):
            delta = np.where(np.isfinite(cur), energy - cur, -np.inf)
            accept = np.isfinite(energy) & ((delta <= 0) | (
                self._rng.random(n) < np.exp(-delta / self._temperature())))
        idx = np.nonzero(accept)[0]
        for f in ("factor", "order", "spatial_x", "keep"):
            getattr(self._state, f)[idx] = getattr(decisions, f)[idx]
        self._energy[idx] = energy[idx]
        self._step += 1
