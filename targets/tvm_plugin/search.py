"""Find a mapping for a recognised op with our search and analytical model (no TVM here).

The plug-in reads the target's record (:mod:`targets.registry`) for the arch and the
constraints, and searches through the one entry point, :func:`cost_models.search.
find_mapping` (the same driver and cost function as ``compile`` and ``map``).  Results are
cached by shape in a :class:`MappingCache`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from cost_models.interface import OBJECTIVES
from cost_models.search import find_mapping
from mapspace.arch import Arch
from mapspace.constraints import Constraints
from mapspace.mapping import MappingBatch
from mapspace.problem import Problem
from targets.registry import get_target

#: evaluations per distinct op shape (measured on BERT-Base FFN1, 2 AVX-512 cores: 2,000
#: found a 90-140 ms kernel, 20,000 a 10 ms one, for ~2 s of search)
DEFAULT_BUDGET = 20_000


def cpu_target(word_bits: int = 32, problem: Problem | None = None,
               vector_dim: str | None = None) -> tuple[Arch, Constraints]:
    """The host CPU's :class:`Arch` and constraints for ``problem`` at ``word_bits``
    (``vector_dim``: the dim the vector lanes span, see :func:`targets.cpu.cpu_constraints`),
    from the ``cpu`` target record."""
    t = get_target("cpu")
    return (t.arch(word_bits=word_bits),
            t.constraints(problem, word_bits=word_bits, vector_dim=vector_dim))


def search_mapping(problem: Problem, arch: Arch, constraints: Constraints, *,
                   strategy: str = "anneal", budget: int = DEFAULT_BUDGET, seed: int = 0,
                   objective: str = "edp", target: str = "cpu") -> tuple[MappingBatch, float]:
    """The best mapping ``strategy`` finds in ``budget`` evaluations in ``target``'s space
    for ``problem`` (on ``arch`` under ``constraints``) and its objective."""
    space = get_target(target).space(problem, arch=arch, constraints=constraints)
    result = find_mapping(space, strategy=strategy, objective=objective, seed=seed,
                          budget=budget, where="mapspace_pipeline")
    return result.best_mapping, float(result.best_objective)


@dataclass
class MappingCache:
    """Mappings found so far, keyed by ``(shape key, strategy, budget, seed, objective)``."""

    entries: dict[tuple, tuple[MappingBatch, float]] = field(default_factory=dict)
    hits: int = 0
    misses: int = 0

    def get(self, key: tuple, make) -> tuple[MappingBatch, float]:
        if key in self.entries:
            self.hits += 1
        else:
            self.misses += 1
            self.entries[key] = make()
        return self.entries[key]


__all__ = ["DEFAULT_BUDGET", "OBJECTIVES", "MappingCache", "cpu_target", "search_mapping"]
