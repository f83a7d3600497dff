"""Independent restarts of a mapping search as tasks on an execution backend
(``mapspace map --restarts K [--workers N | --cluster ADDRESS]``).

Restart ``i`` runs :func:`cost_models.search.find_mapping` with the same budget and its own
seed, :func:`restart_seed` ``(seed, i)`` (restart 0 uses ``seed`` itself, so one restart
is the plain search).  The result is the best restart by the search objective, ties to the
lowest index; evaluations are summed over the restarts.  It depends only on the options,
never on the backend, the worker count or the order the restarts finish in.
"""

from __future__ import annotations

import time
from dataclasses import replace

from compiler.backend import backend
from cost_models.search import find_mapping
from mapspace.errors import MapspaceError
from mapspace.search import SearchResult
from mapspace.space import Mapspace

#: most restarts
MAX_RESTARTS = 4096
_GOLDEN = 0x9E3779B97F4A7C15          # 2**64 / golden ratio: restarts' seeds spread apart


def restart_seed(seed: int, i: int) -> int:
    """The seed of restart ``i`` (``seed`` for ``i = 0``), in 0 .. 2**63-1."""
    return (seed + i * _GOLDEN) % (1 << 63)


def _one(space: Mapspace, i: int, seed: int, options: dict) -> tuple[bool, object]:
    try:
        return True, find_mapping(space, seed=restart_seed(seed, i), **options)
    except MapspaceError as e:       # a failure is a value here, raised by the caller
        return False, e


def map_restarts(space: Mapspace, *, restarts: int, seed: int = 0,
                 workers: int | None = None, cluster: str | None = None,
                 client: object = None, **options: object) -> tuple[SearchResult, list[float]]:
    """The best of ``restarts`` independent searches (``options`` go to
    :func:`~cost_models.search.find_mapping`: strategy, objective, budget, time_limit,
    rerank, where), and each restart's best objective in restart order."""
    if not 1 <= restarts <= MAX_RESTARTS:
        raise MapspaceError(f"must be 1 to {MAX_RESTARTS}, found {restarts}",
                            where=str(options.get("where", "map")), key="restarts")
    t0 = time.perf_counter()
    results: dict[int, SearchResult] = {}
    with backend(workers, cluster, client) as be:
        args = ((space, i, seed, options) for i in range(restarts))
        for i, (ok, r) in be.imap(_one, args, name="map-restart"):
            if not ok:
                raise r  # type: ignore[misc]
            results[i] = r  # type: ignore[assignment]
    objectives = [results[i].best_objective for i in range(restarts)]
    best = min(range(restarts), key=lambda i: (objectives[i], i))
    r = results[best]
    return replace(r, evaluations=sum(x.evaluations for x in results.values()),
                   valid_evaluations=sum(x.valid_evaluations for x in results.values()),
                   seconds=time.perf_counter() - t0,
                   stopped_by=f"{restarts} restarts (best: #{best}, {r.stopped_by})"), objectives


__all__ = ["MAX_RESTARTS", "map_restarts", "restart_seed"]
