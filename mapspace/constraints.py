"""Mapspace constraints (Timeloop's ``mapspace_constraints`` / ``architecture_constraints``).

Typed form only; :mod:`mapspace.constraints_yaml` reads and writes the YAML.  A
:class:`Constraints` is a list of per-level directives:

* ``temporal`` / ``spatial`` with ``factors`` bounds (``=``, ``<=``, ``>=``) per dimension
  and an optional partial ``permutation`` (dimension names listed *innermost first*; the
  listed dimensions take the innermost positions in that order, the others are free above
  them); spatial directives may fix the X/Y ``split`` (the first ``split`` dimensions of the
  permutation go along X, the rest along Y);
* ``datatype`` (Timeloop's ``bypass``) with ``keep`` / ``bypass`` tensor lists (tensors in
  neither list are free);
* ``utilization`` with ``min_utilization`` (fraction of the level's fan-out, or of the MACs
  for the compute level, that must be used).

Dimensions or tensors the problem does not have are ignored when ``strict`` is false (the
built-in targets' defaults name convolution dimensions that a bmm lacks), and are errors
when it is true (a user's constraints file); merged sets keep each directive's own.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Literal

Op = Literal["=", "<=", ">="]
Kind = Literal["temporal", "spatial", "datatype", "utilization"]


@dataclass(frozen=True)
class FactorBound:
    """``dim op value``, e.g. ``C <= 16``."""

    dim: str
    op: Op
    value: int

    def allows(self, factor: int) -> bool:
        if self.op == "=":
            return factor == self.value
        if self.op == "<=":
            return factor <= self.value
        return factor >= self.value


@dataclass(frozen=True)
class Directive:
    """One constraint on one level (``target`` is the level name)."""

    target: str
    kind: Kind
    factors: tuple[FactorBound, ...] = ()
    permutation: tuple[str, ...] | None = None
    split: int | None = None
    keep: tuple[str, ...] = ()
    bypass: tuple[str, ...] = ()
    min_utilization: float | None = None
    source: str = ""            # "file: key" where it came from, for error messages
    # unknown names an error (True) or dropped (False); None: the enclosing Constraints'
    # ``strict`` (set by :meth:`Constraints.merged`, so a user's strict file stays strict
    # when merged with a target's lenient defaults)
    strict: bool | None = field(default=None, compare=False)


@dataclass(frozen=True)
class Constraints:
    """All directives; ``strict`` makes unknown dimensions/tensors errors."""

    directives: tuple[Directive, ...] = ()
    strict: bool = True
    source: str = field(default="", compare=False)

    def on(self, level: str, kind: Kind) -> tuple[Directive, ...]:
        return tuple(d for d in self.directives if d.target == level and d.kind == kind)

    def merged(self, other: Constraints) -> Constraints:
        """Both sets of directives (e.g. a target's defaults plus a user's file); each
        directive keeps the strictness of the set it came from."""

        def own(c: Constraints) -> tuple[Directive, ...]:
            return tuple(d if d.strict is not None else replace(d, strict=c.strict)
                         for d in c.directives)

        return Constraints(own(self) + own(other),
                           strict=self.strict and other.strict,
                           source=", ".join(s for s in (self.source, other.source) if s))


NONE = Constraints(strict=False, source="no constraints")
