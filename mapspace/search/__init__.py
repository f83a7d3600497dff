"""Search strategies over a :class:`~mapspace.space.Mapspace` (ask/tell)."""

from mapspace.search.base import CostFn, SearchResult, Strategy, run

__all__ = ["CostFn", "SearchResult", "Strategy", "run"]
