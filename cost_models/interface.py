"""The one cost-model interface: a batched ``cost(problem, arch, mappings) -> Costs``.

Every cost model — the analytical model (:class:`Analytical`), the Sparseloop-style sparse
layer (:class:`cost_models.sparse_model.Sparse`), fusion pricing
(:class:`cost_models.fused.Fused`), and learned models — implements :class:`CostModel`:

* construction only stores parameters (as in scikit-learn); nothing is fitted here;
* ``cost`` takes a whole :class:`~mapspace.mapping.MappingBatch` of ``B`` mappings and
  returns :class:`Costs`, arrays of length ``B``; a single mapping is a batch of one, and
  row ``i`` of a batch equals the cost of mapping ``i`` alone;
* invalid mappings are values, never exceptions: ``valid[i]`` False, ``reasons[i]`` a bit
  set of :class:`~mapspace.validity.Reason` flags, costs NaN (cycles 0);
* the same inputs give the same outputs.

``tests/test_cost_model_conformance.py`` runs every implementation through the same
checks.  The search reads a model through :func:`cost_models.search.cost_function`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np

from cost_models.model import Evaluation, evaluate, kernel_arrays
from cost_models.pricing import Prices
from mapspace.arch import Arch
from mapspace.errors import MapspaceError
from mapspace.mapping import MappingBatch
from mapspace.problem import Problem

#: objective name -> :class:`Costs` field (lower is better)
OBJECTIVES: dict[str, str] = {"edp": "edp", "energy": "energy_pJ", "latency": "cycles"}


@dataclass(frozen=True)
class Costs:
    """Costs of ``B`` mappings: ``cycles: float64[B]`` (0 where invalid), ``energy_pJ``,
    ``edp`` (J x cycles) and ``utilization`` (MACs / (MAC units x cycles)): ``float64[B]``,
    NaN where invalid; ``valid: bool[B]``; ``reasons: int64[B]`` (Reason bits, 0 where
    valid).  ``detail`` is the model's own full result (an ``Evaluation``, a
    ``SparseCost``, ...) for breakdowns; batch-shaped like the rest."""

    cycles: np.ndarray
    energy_pJ: np.ndarray
    edp: np.ndarray
    utilization: np.ndarray
    valid: np.ndarray
    reasons: np.ndarray
    detail: Any = None

    def __len__(self) -> int:
        return len(self.valid)

    def objective(self, name: str) -> np.ndarray:
        """``float64[B]`` of objective ``name`` (see :data:`OBJECTIVES`)."""
        return np.asarray(getattr(self, objective_field(name)), np.float64)


def objective_field(name: str, where: str = "objective") -> str:
    """The :class:`Costs` field of objective ``name``; MapspaceError naming the choices."""
    if name not in OBJECTIVES:
        raise MapspaceError(f"unknown objective {name!r} (known: {', '.join(OBJECTIVES)})",
                            where=where, key="objective")
    return OBJECTIVES[name]


@runtime_checkable
class CostModel(Protocol):
    """Batched pricing of mappings (see module docstring)."""

    name: str

    def cost(self, problem: Problem, arch: Arch, mappings: MappingBatch) -> Costs:
        """Costs of the ``B`` mappings of ``mappings`` for ``problem`` on ``arch``."""


def costs_of(evaluation: Evaluation) -> Costs:
    """:class:`Costs` of a dense :class:`~cost_models.model.Evaluation`."""
    c = evaluation.cost
    return Costs(cycles=c.cycles.astype(np.float64), energy_pJ=c.energy, edp=c.edp,
                 utilization=c.utilization, valid=evaluation.valid,
                 reasons=evaluation.validity.reasons, detail=evaluation)


@dataclass(frozen=True)
class Analytical:
    """The analytical model (Timeloop's semantics, ``cost_models/README.md``):
    :func:`cost_models.model.evaluate`; ``detail`` is its :class:`Evaluation`."""

    name: str = "analytical"

    def cost(self, problem: Problem, arch: Arch, mappings: MappingBatch) -> Costs:
        return costs_of(evaluate(problem, arch, mappings))

    def bind(self, problem: Problem, arch: Arch) -> Callable[[MappingBatch], Costs]:
        """``cost`` for one ``problem`` and ``arch``, their kernel inputs built once (what
        a search calls per batch; same results as :meth:`cost`)."""
        prices = Prices.of(arch)
        static = kernel_arrays(problem, arch, prices)
        return lambda m: costs_of(evaluate(problem, arch, m, prices, static))


#: the default cost model
ANALYTICAL = Analytical()

__all__ = ["ANALYTICAL", "OBJECTIVES", "Analytical", "CostModel", "Costs", "costs_of",
           "objective_field"]
