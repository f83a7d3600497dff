"""What ``compile`` returns: one row per op (:class:`OpRow`) and the
:class:`CompileResult` holding them, the graphs, problems and mappings."""

from __future__ import annotations

from dataclasses import dataclass, field

from compiler.graph import Graph
from mapspace.problem import Problem

#: op attr -> (tensor of the lowered problem, field of the tensor)
TENSOR_ATTRS: dict[str, tuple[str, str]] = {
    "weight_bits": ("Weights", "bits"),
    "act_bits": ("Inputs", "bits"),
    "out_bits": ("Outputs", "bits"),
    "weight_density": ("Weights", "density"),
    "act_density": ("Inputs", "density"),
    "out_density": ("Outputs", "density"),
}
#: op attrs copied into the report when present
REPORT_ATTRS: tuple[str, ...] = ("fused", *TENSOR_ATTRS)


@dataclass(frozen=True)
class OpRow:
    """One op of the compiled model (host ops: zero cycles and energy, no mapping)."""

    name: str
    kind: str
    shape: str                 # input shapes -> output shapes, e.g. ``[1,8]x[8,4]->[1,4]``
    problem: str               # the lowered problem's sizes (``""`` for host ops)
    shape_group: int           # index of its distinct problem (-1 for host ops)
    searched_as: str           # the op whose search produced the mapping (``""`` for host)
    macs: int
    cycles: int
    energy_pJ: float
    edp: float
    utilization: float
    mapping_yaml: str
    on_host: bool
    attrs: tuple[tuple[str, object], ...] = ()
    #: sparse ops (``weight_density`` < 1): the dense price of the same mapping, and the
    #: sparse optimizations priced (:mod:`cost_models.sparse_model`); ``None``/``""`` otherwise
    dense_cycles: int | None = None
    dense_energy_pJ: float | None = None
    sparse: str = ""


@dataclass(frozen=True)
class CompileResult:
    """Per-op rows (topological order), totals and the driver's bookkeeping.

    ``searches`` is the number of ``find_mapping`` calls (= distinct MAC shapes);
    ``step_seconds`` the wall time of each named step.
    """

    model: str
    target: str
    passes: str
    strategy: str
    rows: tuple[OpRow, ...]
    distinct_shapes: int
    searches: int
    evaluations: int
    step_seconds: tuple[tuple[str, float], ...] = ()
    #: the compiled graph (after passes), and per MAC op its problem and chosen mapping —
    #: what code emission (``compiler.emit_model``) needs
    graph: Graph | None = field(default=None, compare=False, repr=False)
    #: the graph as the front end read it (fusion keeps MAC op names; running a model
    #: executes this one, with the passes' numerics applied per op)
    source_graph: Graph | None = field(default=None, compare=False, repr=False)
    problems: dict[str, Problem] = field(default_factory=dict, compare=False, repr=False)
    mappings: dict[str, object] = field(default_factory=dict, compare=False, repr=False)

    @property
    def mac_ops(self) -> int:
        return sum(not r.on_host for r in self.rows)

    @property
    def host_ops(self) -> int:
        return sum(r.on_host for r in self.rows)

    @property
    def totals(self) -> dict:
        """Sums of MACs, cycles and energy over all ops (ops run one after another);
        ``edp`` is total energy (J) x total cycles, ``utilization`` the cycle-weighted mean."""
        cycles = sum(r.cycles for r in self.rows)
        energy = sum(r.energy_pJ for r in self.rows)
        util = sum(r.utilization * r.cycles for r in self.rows) / cycles if cycles else 0.0
        return {
            "ops": len(self.rows), "mac_ops": self.mac_ops, "host_ops": self.host_ops,
            "distinct_shapes": self.distinct_shapes, "searches": self.searches,
            "macs": sum(r.macs for r in self.rows), "cycles": cycles, "energy_pJ": energy,
            "edp": energy * 1e-12 * cycles, "utilization": util,
            "seconds": sum(s for _, s in self.step_seconds),
        }


__all__ = ["REPORT_ATTRS", "TENSOR_ATTRS", "CompileResult", "OpRow"]
