"""The one search entry point: a strategy over a :class:`Mapspace`, priced by a CostModel.

Every command that searches (``map``, ``compile``, ``emit``, the Relax pass, the
MetaSchedule adapter) calls :func:`find_mapping`; the search driver reads mappings'
prices only through :func:`cost_function`:

* the objective is the cost model's (:data:`cost_models.interface.OBJECTIVES`);
* a mapping is valid when the cost model says so (``Costs.valid``: structure, fan-out,
  capacity) **and** the space admits it (:meth:`Mapspace.screen`: minimum-utilization
  constraints, the target's extra rules).

It lives below ``targets/`` (in ``cost_models``) so that the plug-in, which may not import
``compiler/``, shares it; ``mapspace.search`` holds the strategies and never imports a cost
model.
"""

from __future__ import annotations

import inspect
import math
from dataclasses import replace

import numpy as np

from cost_models.interface import ANALYTICAL, CostModel, objective_field
from mapspace.errors import MapspaceError
from mapspace.mapping import MappingBatch
from mapspace.search import (
    STRATEGIES,
    CostFn,
    SearchResult,
    check_strategy,
    make_strategy,
    run,
)
from mapspace.space import Mapspace

#: the strategy every searching command uses unless told otherwise
DEFAULT_STRATEGY = "anneal"
#: evaluations when neither a budget nor a time limit is given (per search; ``compile``: per
#: distinct shape).  Development runs of ``anneal`` against ``benchmarks/data/best_known.yaml``
#: on 11 BERT-Base/ResNet-50 layers: 20K missed 1% at 10 of 44 (layer, seed) runs, 40K at 2
#: of 88 (BERT FFN2 at 1.0% and 1.8%), 50K at none of FFN2's 16 seeds; every layer:
#: ``benchmarks/bench_search.py``.  ~0.35 s of one core per shape.
DEFAULT_BUDGET = 50_000
#: how many of the search model's best distinct mappings a ``rerank`` model chooses among
RERANK_K = 64


def cost_function(space: Mapspace, cost_model: CostModel = ANALYTICAL,
                  objective: str = "edp", *, where: str = "map") -> CostFn:
    """``mappings -> (objective float64[B], valid bool[B])`` for the search driver (see
    module docstring); ``where`` names the caller in an unknown-objective error."""
    field = objective_field(objective, where)
    bind = getattr(cost_model, "bind", None)  # a model that prepares per problem (optional)
    price = bind(space.problem, space.arch) if bind is not None else \
        (lambda m: cost_model.cost(space.problem, space.arch, m))

    screens = space.screens

    def cost(m: MappingBatch) -> tuple[np.ndarray, np.ndarray]:
        c = price(m)
        ok = np.array(c.valid, bool)
        if screens and ok.any():  # the space's screen, on the rows the model finds valid
            idx = np.flatnonzero(ok)
            ok[idx] = space.screen(m if len(idx) == len(m) else m[idx])[0]
        return np.asarray(getattr(c, field), np.float64), ok

    return cost


#: most evaluations a search may be given (~50 days at 250K evaluations per second)
MAX_BUDGET = 2**40
#: seeds are 0 .. 2**63 - 1: they seed 64-bit random streams, and a larger or negative one
#: would silently wrap onto another seed's stream
MAX_SEED = 2**63 - 1
#: longest time limit (seconds): a week; ``--time 1e300`` is finite but would never end
MAX_TIME = 7 * 24 * 3600


def check_seed(seed: int, *, where: str, key: str = "seed") -> None:
    """Raise naming ``where`` and ``key`` unless ``0 <= seed <= MAX_SEED`` (an integer)."""
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) \
            or not 0 <= seed <= MAX_SEED:
        raise MapspaceError(f"must be an integer from 0 to 2**63-1 = {MAX_SEED}, found {seed!r}",
                            where=where, key=key)


def check_limits(budget: int | None, time_limit: float | None, *, where: str,
                 keys: tuple[str, str] = ("budget", "time")) -> None:
    """Raise naming ``where`` and the key unless ``1 <= budget <= MAX_BUDGET`` and
    ``0 < time_limit <= MAX_TIME`` (``None`` means unlimited); the one check behind
    every command that searches (NaN would never stop a search: every comparison with it is
    false)."""
    if budget is not None and (isinstance(budget, bool) or not 1 <= budget <= MAX_BUDGET):
        raise MapspaceError(f"must be an integer from 1 to 2**40 = {MAX_BUDGET:,}, found "
                            f"{budget}", where=where, key=keys[0])
    if time_limit is not None and (not math.isfinite(time_limit)
                                   or not 0 < time_limit <= MAX_TIME):
        raise MapspaceError(f"must be a number of seconds > 0 and at most a week "
                            f"({MAX_TIME:,}), found {time_limit}", where=where, key=keys[1])


def find_mapping(space: Mapspace, cost_model: CostModel = ANALYTICAL, *,
                 objective: str = "edp", strategy: str = DEFAULT_STRATEGY,
                 budget: int | None = None, time_limit: float | None = None, seed: int = 0,
                 victory: int | None = None, where: str = "map",
                 rerank: CostModel | None = None, top_k: int | None = None,
                 **options: object) -> SearchResult:
    """Run ``strategy`` (``mapspace.search.STRATEGIES``) on ``space`` until ``budget``
    evaluations or ``time_limit`` seconds (``DEFAULT_BUDGET`` when neither is given, except
    for ``exhaustive``, which ends on its own).  A strategy whose constructor takes a
    ``budget`` (``anneal``: its cooling schedule) is given it.  Raises
    :class:`MapspaceError` naming ``where`` when no valid mapping is found.

    ``top_k`` records the ``top_k`` best distinct valid mappings the search saw
    (``SearchResult.top``).  ``rerank`` (e.g. a learned model, ``--cost learned:M``): the
    search runs on ``cost_model`` as usual, then ``rerank`` prices its ``top_k``
    (default :data:`RERANK_K`) best and the best of them by ``rerank``'s objective becomes
    ``best``/``best_mapping`` (:func:`rerank_top`)."""
    check_strategy(strategy, where)
    check_limits(budget, time_limit, where=where)
    check_seed(seed, where=where)
    cost = cost_function(space, cost_model, objective, where=where)
    _ = space.tables  # bad constraints fail here, before any search
    if budget is None and time_limit is None and strategy != "exhaustive":
        budget = DEFAULT_BUDGET
    cls = STRATEGIES.get(strategy)
    if cls is not None and budget is not None and "budget" not in options \
            and "budget" in inspect.signature(cls).parameters:
        options = {**options, "budget": budget}
    strat = make_strategy(strategy, space, seed, **options)
    k = top_k if top_k is not None else (RERANK_K if rerank is not None else 0)
    if k < 0 or (rerank is not None and k < 1):
        raise MapspaceError(f"must be a positive integer, found {k}", where=where, key="top_k")
    result = run(space, strat, cost, budget=budget, time_limit=time_limit, victory=victory,
                 top_k=k)
    if result.best is None:
        raise MapspaceError(f"{strategy} found no valid mapping for {space.problem.name!r} "
                            f"in {result.evaluations:,} evaluations", where=where)
    return result if rerank is None else rerank_top(space, result, rerank, objective)


def rerank_top(space: Mapspace, result: SearchResult, model: CostModel,
               objective: str = "edp") -> SearchResult:
    """``result`` with ``best``/``best_mapping``/``best_objective`` set to the best of its
    recorded ``top`` mappings by ``model``'s ``objective`` (ties: the search's order; only
    mappings ``model`` also finds valid and the space admits); ``best_objective`` stays the
    *search* model's objective of that mapping.  ``rerank_choice`` is its rank in the
    search's list (0: the search's own best), ``rerank_objective`` ``model``'s objective.
    Unchanged when nothing was recorded or ``model`` finds none valid."""
    if result.top is None or result.top_objective is None or len(result.top) == 0:
        return result
    c = model.cost(space.problem, space.arch, result.top)
    admitted, _ = space.screen(result.top)
    obj = np.asarray(c.objective(objective), np.float64)
    ok = c.valid & admitted & np.isfinite(obj)
    if not ok.any():
        return result
    obj = np.where(ok, obj, np.inf)
    i = int(np.lexsort((np.arange(len(obj)), obj))[0])
    return replace(result, best=result.top_decisions.take(np.array([i])),
                   best_mapping=result.top[i], best_objective=float(result.top_objective[i]),
                   rerank_choice=i, rerank_objective=float(obj[i]),
                   reranked_by=getattr(model, "name", type(model).__name__))


__all__ = ["DEFAULT_BUDGET", "DEFAULT_STRATEGY", "MAX_BUDGET", "MAX_SEED", "RERANK_K",
           "check_limits", "check_seed", "cost_function", "find_mapping", "rerank_top"]
