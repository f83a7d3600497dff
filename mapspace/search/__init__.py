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
from mapspace.search.cpsat import CpSat
from mapspace.search.exhaustive import Exhaustive
from mapspace.search.genetic import Genetic
from mapspace.search.random import RandomSearch
from mapspace.space import Mapspace

STRATEGIES: dict[str, type] = {
    "random": RandomSearch,
    "exhaustive": Exhaustive,
    "genetic": Genetic,
    "anneal": Anneal,
    "cpsat": CpSat,
}
#: names no longer registered, with why: asked for, they are refused with that reason
RENAMED: dict[str, str] = {
    "optimal": "was renamed 'cpsat': CP-SAT on a CoSA-style proxy model, then local polish; "
               "it proves nothing optimal about the analytical model's objective",
}


def check_strategy(name: str, where: str, key: str = "strategy") -> None:
    """Raise :class:`MapspaceError` naming ``where`` and ``key`` unless ``name`` is a
    registered strategy (a renamed one's error says what it is called now)."""
    if name in RENAMED:
        raise MapspaceError(f"strategy {name!r} {RENAMED[name]}", where=where, key=key)
    if name not in STRATEGIES:
        raise MapspaceError(f"unknown search strategy {name!r} (known strategies are "
                            f"{', '.join(sorted(STRATEGIES))})", where=where, key=key)


def make_strategy(name: str, space: Mapspace, seed: int = 0, **kw: Any) -> Strategy:
    """The strategy registered as ``name`` on ``space``; ``seed`` is passed to strategies
    that draw random numbers, ``kw`` to the constructor."""
    check_strategy(name, "make_strategy", "name")
    cls = STRATEGIES[name]
    if "seed" in inspect.signature(cls).parameters:
        kw = {"seed": seed, **kw}
    return cls(space, **kw)


__all__ = ["RENAMED", "STRATEGIES", "Anneal", "CostFn", "CpSat", "Exhaustive", "Genetic",
           "RandomSearch", "SearchResult", "Strategy", "check_strategy", "make_strategy", "run"]
