"""Uniform random search (Timeloop's ``random`` search): sample, evaluate, keep the best."""

from __future__ import annotations

import numpy as np

from mapspace.space import Decisions, Mapspace


class RandomSearch:
    """Asks ``batch`` decisions drawn uniformly from every axis of the space, forever.

    Algorithm: each :meth:`ask` returns ``space.random_decisions(batch, rng)``; :meth:`tell`
    ignores the costs (the driver keeps the best).  It never finishes by itself: the
    driver's budget, time limit or victory condition stops it, as in Timeloop.  Invalid
    samples are wasted evaluations, so uniform sampling of the raw space is uniform sampling
    of the valid mappings.
    """

    name = "random"

    def __init__(self, space: Mapspace, seed: int = 0, batch: int = 4096):
        self.space = space
        self.seed = seed
        self.batch = batch
        self._rng: np.random.Generator | None = None

    def ask(self) -> Decisions:
        if self._rng is None:
            self._rng = np.random.default_rng(self.seed)
        return self.space.random_decisions(self.batch, self._rng)

    def tell(self, decisions: Decisions, objective: np.ndarray, valid: np.ndarray) -> None:
        """Nothing to learn: uniform sampling ignores the costs."""
