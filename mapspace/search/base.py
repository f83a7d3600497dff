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

from mapspace.errors import Interrupted
from mapspace.mapping import MappingBatch
from mapspace.space import Decisions, Mapspace

#: cost function: mappings -> (objective float64[B] (lower is better), valid bool[B])
CostFn = Callable[[MappingBatch], tuple[np.ndarray, np.ndarray]]
#: kernel threads during a search: its batches are a few hundred mappings (~1 ms of work on
#: one core), and a parallel launch per batch costs more than it saves (measured: 20K anneal
#: evaluations of BERT q-proj took 0.19 s on one thread, 0.55-3.5 s on two of a busy 2-core
#: machine); results are the same either way
SEARCH_THREADS = 1


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
    #: with ``run(top_k=K)``: the ``K`` best distinct valid mappings seen, best first
    #: (ties by arrival), their decisions and objectives; else ``None``
    top: MappingBatch | None = None
    top_decisions: Decisions | None = None
    top_objective: np.ndarray | None = None
    #: set by ``cost_models.search.rerank_top``: which of ``top`` a second model chose
    #: (0: the search's own best), that model's objective of it, and the model's name
    rerank_choice: int | None = None
    rerank_objective: float | None = None
    reranked_by: str = ""


class _TopK:
    """The ``k`` best distinct valid mappings seen so far (distinct by their arrays), best
    first, ties by arrival: what ``run(top_k=k)`` records."""

    def __init__(self, k: int):
        self.k = k
        self.rows: list[tuple[float, int, bytes, Decisions, MappingBatch]] = []
        self.keys: set[bytes] = set()
        self.seen = 0

    @staticmethod
    def _key(m: MappingBatch, i: int) -> bytes:
        """The mapping up to what cannot change its nest: where loops of factor 1 sit in
        an order, and the X/Y side of a spatial factor of 1."""
        t, s = m.temporal[i], m.spatial[i]
        order = [o[t[lv, o] > 1].tobytes() for lv, o in enumerate(m.order[i])]
        return b"|".join([t.tobytes(), s.tobytes(), (m.spatial_x[i] & (s > 1)).tobytes(),
                          m.keep[i].tobytes(), *order])

    def add(self, dec: Decisions, m: MappingBatch, obj: np.ndarray, valid: np.ndarray) -> None:
        ok = np.flatnonzero(valid & np.isfinite(obj))
        if len(self.rows) >= self.k:
            ok = ok[obj[ok] < self.rows[-1][0]]
        new: list[tuple[float, int, bytes, Decisions, MappingBatch]] = []
        for i in ok[np.argsort(obj[ok], kind="stable")]:
            key = self._key(m, int(i))
            if key in self.keys:
                continue
            self.keys.add(key)
            new.append((float(obj[i]), self.seen + int(i), key, dec.take(np.array([i])),
                        m[int(i)]))
            if len(new) == self.k:
                break
        self.seen += len(obj)
        if new:
            self.rows = sorted(self.rows + new, key=lambda r: (r[0], r[1]))
            for r in self.rows[self.k:]:
                self.keys.discard(r[2])
            self.rows = self.rows[:self.k]

    def result(self) -> tuple[MappingBatch | None, Decisions | None, np.ndarray | None]:
        if not self.rows:
            return None, None, None
        return (MappingBatch.concat([r[4] for r in self.rows]),
                Decisions.concat([r[3] for r in self.rows]),
                np.array([r[0] for r in self.rows], np.float64))


def run(space: Mapspace, strategy: Strategy, cost: CostFn, *, budget: int | None = None,
        time_limit: float | None = None, victory: int | None = None,
        top_k: int = 0, threads: int | None = SEARCH_THREADS) -> SearchResult:
    """Drive ``strategy`` until it finishes, ``budget`` evaluations are spent, ``time_limit``
    seconds pass, or ``victory`` consecutive valid evaluations fail to improve the best
    (Timeloop's victory condition).  ``top_k > 0`` also records the ``top_k`` best distinct
    valid mappings seen (``SearchResult.top``); the search itself is the same.  The compiled
    kernels run on at most ``threads`` threads meanwhile (:data:`SEARCH_THREADS`).

    Ctrl-C (``KeyboardInterrupt``) once a valid mapping is known raises
    :class:`mapspace.errors.Interrupted` holding the result so far (``stopped_by``
    ``"interrupted"``); before that the interrupt propagates as it came."""
    from mapspace.kernels import kernel_threads  # numba: imported when a search runs

    with kernel_threads(threads):
        return _run(space, strategy, cost, budget, time_limit, victory, top_k)


def _run(space: Mapspace, strategy: Strategy, cost: CostFn, budget: int | None,
         time_limit: float | None, victory: int | None, top_k: int) -> SearchResult:
    top = _TopK(top_k) if top_k > 0 else None
    t0 = time.perf_counter()
    best_obj = float("inf")
    best: Decisions | None = None
    evals = valid_evals = 0
    since = 0
    history: list[tuple[int, float]] = []
    stopped = "strategy finished"
    try:
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
            decoded = space.decode(dec)
            obj, valid = cost(decoded)
            obj = np.where(valid, obj, np.inf)
            strategy.tell(dec, obj, valid)
            if top is not None:
                top.add(dec, decoded, obj, valid)
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
    except KeyboardInterrupt:  # Ctrl-C: keep the best so far (raised with it below)
        if best is None:
            raise
        stopped = "interrupted"
    top_m, top_d, top_obj = top.result() if top is not None else (None, None, None)
    result = SearchResult(
        best=best, best_mapping=None if best is None else space.decode(best),
        best_objective=best_obj, evaluations=evals, valid_evaluations=valid_evals,
        seconds=time.perf_counter() - t0, history=history, stopped_by=stopped,
        top=top_m, top_decisions=top_d, top_objective=top_obj,
    )
    if stopped == "interrupted":
        raise Interrupted(result, evals, budget, "evaluations")
    return result
