"""Sparse pricing of MAC ops in ``mapspace compile`` (the default sparse optimizations).

After the ``sparsify`` pass (``--passes sparsify=0.5`` or ``sparsify=2:4``), a weighted MAC
op carries ``weight_density`` < 1 and ``pruning`` (``"magnitude"`` or ``"nm"`` with
``nm=(N, M)``).  The compile driver searches its mapping on the dense model (as before),
then prices that mapping with :func:`cost_models.sparse.evaluate_sparse` under
:func:`default_sparse_optimizations`, the same rules for every target:

* **Compressed weights** at every level that keeps them in the mapping but the innermost
  (the per-PE operand register holds one decompressed weight): ``bitmask`` (1 bit per
  dense element) for unstructured (magnitude) pruning, ``nm`` (``ceil(log2 M)`` bits per
  nonzero: 2 bits for 2:4, i.e. 1 bit per dense element) for N:M.  Only nonzeros and
  their metadata move and occupy space (rules S2, S3, S5).
* **Skip zero weights** at the last keeper above the innermost one (on Gemmini the
  Scratchpad): zero weights are never sent to the PEs, so the PE registers' fills and
  reads shrink with them (S4).
* **The MACs**: N:M is *skipped* at the MAC (``Action("skip", "compute", ...)``): the array
  processes N of every M reduction elements, as a 2:4 sparse tensor core does, so MACs and
  compute cycles scale by N/M (S6).  Unstructured sparsity is only *gated*: a rigid
  weight-stationary array cannot compact random zeros, so MAC energy is saved but every MAC
  still takes its cycle (S7).

Inputs and outputs stay dense (the pass prunes weights only).  The mapping is the dense
search's best, re-priced sparse (a sparse-aware search is not done).  A mapping whose
compressed tiles do not fit (bitmask metadata at a density near 1 can make a tile larger
than its dense size) keeps its dense price, and the reason is reported.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from compiler.graph import Op
from cost_models.model import Evaluation
from cost_models.sparse import Action, Format, SparseOptimizations, evaluate_sparse
from mapspace.arch import Arch
from mapspace.mapping import MappingBatch

WEIGHTS = "Weights"


@dataclass(frozen=True)
class SparsePrice:
    """The sparse price of one op's mapping (``valid`` False: the dense price stands)."""

    valid: bool
    reason: str
    cycles: int
    energy_pJ: float
    edp: float
    macs: float          # MACs performed (all instances)
    utilization: float   # performed MACs / (MAC instances x cycles)
    description: str     # e.g. "2:4 nm@DRAM,Scratchpad skip@Scratchpad skip-MAC"
    level_energy_pJ: tuple[float, ...] = ()  # per storage level (data + metadata)
    mac_energy_pJ: float = 0.0
    leak_energy_pJ: float = 0.0


def default_sparse_optimizations(arch: Arch, pruning: str,
                                 nm: tuple[int, int] | None = None,
                                 keepers: tuple[str, ...] | None = None
                                 ) -> SparseOptimizations:
    """The formats and actions above (module docs) for weights pruned by ``pruning``
    (``"nm"`` with ``nm=(N, M)``, else unstructured).  ``keepers``: the levels that keep the
    weights, outermost first (a mapping's keep flags); ``None`` = every storage level."""
    storage = tuple(keepers) if keepers is not None else arch.level_names
    outer = storage[:-1]                    # every keeper but the innermost
    if pruning == "nm":
        if nm is None:
            raise ValueError("N:M pruning needs nm=(N, M)")
        bits = max(1, math.ceil(math.log2(nm[1])))
        formats = tuple(Format(lv, WEIGHTS, "nm", coord_bits=bits) for lv in outer)
        mac = Action("skip", "compute", None, (WEIGHTS,))
    else:
        formats = tuple(Format(lv, WEIGHTS, "bitmask") for lv in outer)
        mac = Action("gate", "compute", None, (WEIGHTS,))
    actions: tuple[Action, ...] = (mac,)
    if len(storage) >= 2:
        actions = (Action("skip", storage[-2], WEIGHTS, (WEIGHTS,)), mac)
    return SparseOptimizations(formats=formats, actions=actions)


def _describe(opts: SparseOptimizations, pruning: str, nm: tuple[int, int] | None,
              density: float) -> str:
    what = f"{nm[0]}:{nm[1]}" if pruning == "nm" and nm else f"density {density:g}"
    fmt = opts.formats[0].kind if opts.formats else "uncompressed"
    at = ",".join(f.level for f in opts.formats)
    parts = [what, f"{fmt}@{at}" if at else fmt]
    for a in opts.actions:
        parts.append(f"{a.kind}-MAC" if a.level == "compute" else f"{a.kind}@{a.level}")
    return " ".join(parts)


def sparse_price(evaluation: Evaluation, mapping: MappingBatch, *, density: float,
                 pruning: str | None = None, nm: tuple[int, int] | None = None
                 ) -> SparsePrice:
    """Price ``mapping`` (a batch of one, already evaluated densely) with weights of
    ``density`` under :func:`default_sparse_optimizations`."""
    arch = evaluation.arch
    kind = "nm" if pruning == "nm" and nm is not None else "magnitude"
    w = evaluation.problem.tensor_index(WEIGHTS)
    keepers = tuple(lv for l, lv in enumerate(arch.level_names)
                    if evaluation.movement.keep[0, l, w])
    opts = default_sparse_optimizations(arch, kind, tuple(nm) if nm else None, keepers)
    dens: dict[str, float | tuple[int, int]] = {
        WEIGHTS: (int(nm[0]), int(nm[1])) if kind == "nm" and nm else float(density)}
    sc = evaluate_sparse(evaluation, opts, dens, mappings=mapping)
    desc = _describe(opts, kind, nm, density)
    if not bool(sc.valid[0]):
        return SparsePrice(False, str(sc.reason[0]), 0, float("nan"), float("nan"),
                           float("nan"), 0.0, desc)
    cycles = int(sc.cycles[0])
    macs = float(sc.macs[0])
    util = macs / (arch.compute.instances * cycles) if cycles else 0.0
    return SparsePrice(True, "", cycles, float(sc.energy[0]), float(sc.edp[0]), macs, util,
                       desc, tuple(float(x) for x in sc.energy_breakdown[0].sum(axis=1)),
                       float(sc.mac_energy[0]), float(sc.leak_energy[0]))


def price_op(op: Op, evaluation: Evaluation, mapping: MappingBatch) -> SparsePrice | None:
    """:func:`sparse_price` of a graph op from its ``sparsify`` attrs (``weight_density``,
    ``pruning``, ``nm``); ``None`` when its weights are dense."""
    d = op.attr("weight_density")
    if d is None or float(d) >= 1.0:  # type: ignore[arg-type]
        return None
    nm = op.attr("nm")
    return sparse_price(evaluation, mapping, density=float(d),  # type: ignore[arg-type]
                        pruning=op.attr("pruning"),  # type: ignore[arg-type]
                        nm=tuple(nm) if nm else None)  # type: ignore[arg-type]


__all__ = ["SparsePrice", "default_sparse_optimizations", "price_op", "sparse_price"]
