"""Search strategies over a :class:`~mapspace.space.Mapspace` (ask/tell).

``STRATEGIES`` maps each strategy's name to its class; add an entry to register a new one.
:func:`make_strategy` builds one by name.
"""

from __future__ import annotations

import inspect
from typing import Any

from mapspace.errors import MapspaceError
from mapspace.search.anneal import Anneal
from mapspace.search.base import CostFn, SearchResult, Strategy, run
from mapspace.search.cpsat import Optimal
from mapspace.search.exhaustive import Exhaustive
from mapspace.search.genetic import Genetic
from mapspace.search.random import RandomSearch
from mapspace.space import Mapspace

STRATEGIES: dict[str, type] = {
    "random": RandomSearch,
    "exhaustive": Exhaustive,
    "genetic": Genetic,
    "anneal": Anneal,
    "optimal": Optimal,
}


def make_strategy(name: str, space: Mapspace, seed: int = 0, **kw: Any) -> Strategy:
    """The strategy registered as ``name`` on ``space``; ``seed`` is passed to strategies
    that draw random numbers, ``kw`` to the constructor."""
    if name not in STRATEGIES:
        raise MapspaceError(f"unknown search strategy {name!r} (known strategies are "
                            f"{', '.join(sorted(STRATEGIES))})", where="make_strategy")
    cls = STRATEGIES[name]
    if "seed" in inspect.signature(cls).parameters:
        kw = {"seed": seed, **kw}
    return cls(space, **kw)


__all__ = ["STRATEGIES", "Anneal", "CostFn", "Exhaustive", "Genetic", "Optimal", "RandomSearch",
           "SearchResult", "Strategy", "make_strategy", "run"]
