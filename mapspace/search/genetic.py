"""Genetic search over the genes of a decision (see :mod:`mapspace.search.operators`)."""

from __future__ import annotations

import numpy as np

from mapspace.search.operators import crossover, mutate
from mapspace.space import Decisions, Mapspace


class Genetic:
    """Generational genetic algorithm with tournament selection and elitism.

    Algorithm:

    1. The first :meth:`ask` returns ``population`` uniform random decisions.
    2. Each later :meth:`ask` breeds ``population - elite`` children: two parents per child,
       each the best of ``tournament`` members drawn uniformly (with replacement) from the
       population; uniform crossover per gene, then every gene re-drawn with probability
       ``mutation``.
    3. :meth:`tell` forms the next population from the ``elite`` best of the previous one
       (already priced, so never re-evaluated) plus the children.
    4. Invalid individuals carry an ``inf`` objective and so lose every tournament; a
       population with no valid member is replaced by fresh random decisions.

    It never finishes by itself; the driver's budget, time limit or victory condition stops
    it.  Objective arrays are ``float64[B]``, lower is better.
    """

    name = "genetic"

    def __init__(self, space: Mapspace, seed: int = 0, population: int = 256, elite: int = 16,
                 mutation: float = 0.1, tournament: int = 4):
        self.space = space
        self.seed = seed
        self.population = population
        self.elite = elite
        self.mutation = mutation
        self.tournament = tournament
        self._rng: np.random.Generator | None = None
        self._pop: Decisions | None = None
        self._obj = np.zeros(0)
        self._fresh = True

    def ask(self) -> Decisions:
        if self._rng is None:
            self._rng = np.random.default_rng(self.seed)
        rng = self._rng
        self._fresh = self._pop is None or not np.isfinite(self._obj).any()
        if self._fresh:
            return self.space.random_decisions(self.population, rng)
        n = max(1, self.population - self.elite)
        picks = rng.integers(0, len(self._pop), (2 * n, self.tournament))
        winners = picks[np.arange(2 * n), np.argmin(self._obj[picks], axis=1)]
        pop = self._pop
        children = crossover(pop.take(winners[:n]), pop.take(winners[n:]), rng)
        return mutate(self.space, children, rng, self.mutation)

    def tell(self, decisions: Decisions, objective: np.ndarray, valid: np.ndarray) -> None:
        obj = np.where(valid, objective, np.inf).astype(np.float64)
        if self._fresh or self._pop is None:
            self._pop, self._obj = decisions, obj
            return
        keep = np.argsort(self._obj, kind="stable")[:self.elite]
        self._pop = Decisions.concat([self._pop.take(keep), decisions])
        self._obj = np.concatenate([self._obj[keep], obj])
