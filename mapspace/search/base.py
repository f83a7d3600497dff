"""Search strategies: one ask/tell interface over the decisions of a :class:`Mapspace`.

A strategy proposes :class:`~mapspace.space.Decisions` (``ask``), the driver decodes and
prices them with a cost function it is *given* (so ``mapspace`` never imports the cost
models) and reports back (``tell``) the objective (lower is better; ``inf`` for invalid)
and validity.  Failures are values, never exceptions.  Every random choice comes from the
``seed`` the strategy was built with.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from mapspace.mapping import MappingBatch
from mapspace.space import Decisions, Mapspace

#: cost function: mappings -> (objective float64[B] (lower is better), valid bool[B])
CostFn = Callable[[MappingBatch], tuple[np.ndarray, np.ndarray]]


class Strategy(Protocol):
    """Ask/tell search over a mapspace (see module docstring)."""

    name: str

    def ask(self) -> Decisions | None:
        """The next batch of candidates, or ``None`` when the strategy has finished."""

    def tell(self, decisions: Decisions, objective: np.ndarray, valid: np.ndarray) -> None:
        """Report the cost of the batch returned by the last ``ask``."""


@dataclass
class SearchResult:
    """Best mapping found and the search's bookkeeping."""

    best: Decisions | None
    best_mapping: MappingBatch | None
    best_objective: float
    evaluations: int
    valid_evaluations: int
    seconds: float
    history: list[tuple[int, float]] = field(default_factory=list)   # (evaluations, best)
    stopped_by: str = ""


def run(space: Mapspace, strategy: Strategy, cost: CostFn, *, budget: int | None = None,
        time_limit: float | None = None, victory: int | None = None) -> SearchResult:
    """Drive ``strategy`` until it finishes, ``budget`` evaluations are spent, ``time_limit``
    seconds pass, or ``victory`` consecutive valid evaluations fail to improve the best
    (Timeloop's victory condition)."""
    t0 = time.perf_counter()
    best_obj = float("inf")
    best: Decisions | None = None
    evals = valid_evals = 0
    since = 0
    history: list[tuple[int, float]] = []
    stopped = "strategy finished"
    while True:
        if budget is not None and evals >= budget:
            stopped = "budget"
            break
        if time_limit is not None and time.perf_counter() - t0 >= time_limit:
            stopped = "time limit"
            break
        dec = strategy.ask()
        if dec is None or len(dec) == 0:
            break
        if budget is not None and evals + len(dec) > budget:
            dec = dec.take(np.arange(budget - evals))
        obj, valid = cost(space.decode(dec))
        obj = np.where(valid, obj, np.inf)
        strategy.tell(dec, obj, valid)
        evals += len(dec)
        valid_evals += int(valid.sum())
        i = int(np.argmin(obj))
        if obj[i] < best_obj:
            # position of the improvement within the batch counts for the victory streak
            since = int(valid[i + 1:].sum())
            best_obj = float(obj[i])
            best = dec.take(np.array([i]))
            history.append((evals - len(dec) + i + 1, best_obj))
        else:
            since += int(valid.sum())
        if victory is not None and since >= victory:
            stopped = "victory condition"
            break
    return SearchResult(
        best=best, best_mapping=None if best is None else space.decode(best),
        best_objective=best_obj, evaluations=evals, valid_evaluations=valid_evals,
        seconds=time.perf_counter() - t0, history=history, stopped_by=stopped,
    )
