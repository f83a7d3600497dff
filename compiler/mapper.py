"""Find a good mapping: a search strategy over the mapspace, priced by the analytical model."""

from __future__ import annotations

import numpy as np

from compiler.explore import valid_mask
from cost_models import evaluate
from mapspace.arch import Arch
from mapspace.constraints import Constraints
from mapspace.errors import MapspaceError
from mapspace.mapping import MappingBatch
from mapspace.problem import Problem
from mapspace.search import SearchResult, run
from mapspace.space import Mapspace

OBJECTIVES = ("edp", "energy", "latency")
DEFAULT_STRATEGY = "anneal"


def cost_function(space: Mapspace, objective: str):
    """``mappings -> (objective, valid)`` for the search driver."""
    if objective not in OBJECTIVES:
        raise MapspaceError(f"unknown objective {objective!r} (known: {', '.join(OBJECTIVES)})",
                            where="map")
    field = {"edp": "edp", "energy": "energy", "latency": "cycles"}[objective]

    def cost(m: MappingBatch) -> tuple[np.ndarray, np.ndarray]:
        ev = evaluate(space.problem, space.arch, m)
        ok = valid_mask(space, m)
        return getattr(ev.cost, field).astype(np.float64), ok

    return cost


def check_limits(budget: int | None, time_limit: float | None, *, where: str,
                 keys: tuple[str, str] = ("budget", "time")) -> None:
    """Raise naming ``where`` and the key unless ``budget >= 1`` and ``time_limit > 0``
    (``None`` means unlimited); the one check behind every command that searches."""
    if budget is not None and budget < 1:
        raise MapspaceError(f"must be a positive integer, found {budget}", where=where,
                            key=keys[0])
    if time_limit is not None and time_limit <= 0:
        raise MapspaceError(f"must be positive, found {time_limit}", where=where,
                            key=keys[1])


def find_mapping(problem: Problem, arch: Arch, constraints: Constraints, *,
                 strategy: str = DEFAULT_STRATEGY, objective: str = "edp", seed: int = 0,
                 budget: int | None = None, time_limit: float | None = None,
                 victory: int | None = None, **options) -> SearchResult:
    """Run ``strategy`` (see ``mapspace.search.STRATEGIES``) until its budget or time."""
    from mapspace.search import make_strategy

    space = Mapspace(problem, arch, constraints)
    _ = space.tables
    if budget is None and time_limit is None and strategy != "exhaustive":
        budget = 100_000
    strat = make_strategy(strategy, space, seed, **options)
    result = run(space, strat, cost_function(space, objective), budget=budget,
                 time_limit=time_limit, victory=victory)
    if result.best is None:
        raise MapspaceError(f"{strategy} found no valid mapping in {result.evaluations:,} "
                            "evaluations", where="map")
    return result
