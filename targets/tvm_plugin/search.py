"""Find a mapping for a recognised op with our search and analytical model (no TVM here).

``targets/`` may not import ``compiler/``, so this drives ``mapspace.search`` directly with
the same cost function as ``compiler.mapper`` (validity from ``mapspace.validity``, costs
from ``cost_models.evaluate``).  Results are cached by shape in a :class:`MappingCache`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from cost_models import evaluate
from mapspace.arch import Arch
from mapspace.constraints import Constraints
from mapspace.errors import MapspaceError
from mapspace.mapping import MappingBatch
from mapspace.problem import Problem
from mapspace.search import make_strategy, run
from mapspace.space import Mapspace
from mapspace.validity import check

#: evaluations per distinct op shape (measured on BERT-Base FFN1, 2 AVX-512 cores: 2,000
#: found a 90-140 ms kernel, 20,000 a 10 ms one, for ~2 s of search)
DEFAULT_BUDGET = 20_000
#: objective name -> Cost field
OBJECTIVES = {"latency": "cycles", "energy": "energy", "edp": "edp"}


def cpu_target(word_bits: int = 32, problem: Problem | None = None,
               vector_dim: str | None = None) -> tuple[Arch, Constraints]:
    """The host CPU's :class:`Arch` and constraints for ``problem`` at ``word_bits``
    (``vector_dim``: the dim the vector lanes span, see :func:`targets.cpu.cpu_constraints`)."""
    from targets.cpu import cpu_constraints, host_arch

    return host_arch(word_bits), cpu_constraints(problem, word_bits, vector_dim)


def cost_function(problem: Problem, arch: Arch, objective: str):
    """``mappings -> (objective float64[B], valid bool[B])`` for the search driver."""
    if objective not in OBJECTIVES:
        raise MapspaceError(f"unknown objective {objective!r} (known: "
                            f"{', '.join(OBJECTIVES)})", where="mapspace_pipeline",
                            key="objective")
    fld = OBJECTIVES[objective]

    def cost(m: MappingBatch) -> tuple[np.ndarray, np.ndarray]:
        ev = evaluate(problem, arch, m)
        return getattr(ev.cost, fld).astype(np.float64), check(problem, arch, m).valid

    return cost


def search_mapping(problem: Problem, arch: Arch, constraints: Constraints, *,
                   strategy: str = "anneal", budget: int = DEFAULT_BUDGET, seed: int = 0,
                   objective: str = "edp") -> tuple[MappingBatch, float]:
    """The best mapping ``strategy`` finds in ``budget`` evaluations and its objective."""
    space = Mapspace(problem, arch, constraints)
    kw = {"budget": budget} if strategy == "anneal" else {}
    strat = make_strategy(strategy, space, seed, **kw)
    result = run(space, strat, cost_function(problem, arch, objective), budget=budget)
    if result.best_mapping is None:
        raise MapspaceError(f"{strategy} found no valid mapping for {problem.name!r} in "
                            f"{result.evaluations:,} evaluations", where="mapspace_pipeline")
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
