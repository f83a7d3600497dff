"""The :class:`Sparse` cost model, and the default sparse optimizations ``compile`` uses.

After the ``sparsify`` pass (``--passes sparsify=0.5`` or ``sparsify=2:4``), a weighted MAC
op carries ``weight_density`` < 1 and ``pruning`` (``"magnitude"`` or ``"nm"`` with
``nm=(N, M)``).  The compile driver searches its mapping on the dense model (as before),
then prices that mapping with :class:`Sparse` (:func:`cost_models.sparse.evaluate_sparse`
under :func:`default_sparse_optimizations`), the same rules for every target:

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
from dataclasses import dataclass, fields

import numpy as np

from cost_models.interface import Costs
from cost_models.model import evaluate
from cost_models.sparse import Action, Format, SparseOptimizations, evaluate_sparse
from mapspace.arch import Arch
from mapspace.mapping import MappingBatch
from mapspace.problem import Problem
from mapspace.validity import Reason

WEIGHTS = "Weights"


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


@dataclass(frozen=True)
class Sparse:
    """The Sparseloop-style sparse layer (:func:`cost_models.sparse.evaluate_sparse`) as a
    cost model: the dense analysis of each mapping, then its sparse counts and prices.

    ``densities``: ``(tensor, density or (N, M))`` pairs overriding the problem's.
    ``optimizations``: the formats and actions; ``None`` uses
    :func:`default_sparse_optimizations` for weights pruned by ``pruning``
    (``"nm"``/``"magnitude"``), placed on each mapping's own weight keepers, or none at
    all when ``pruning`` is ``None`` (then the model is the dense one).
    ``confidence``: see :func:`evaluate_sparse`.  Compressed tiles that overflow a level
    make the mapping invalid (:attr:`Reason.CAPACITY`).  ``detail``: the
    :class:`SparseCost`."""

    densities: tuple[tuple[str, float | tuple[int, int]], ...] = ()
    optimizations: SparseOptimizations | None = None
    pruning: str | None = None
    nm: tuple[int, int] | None = None
    confidence: float | None = None
    name: str = "sparse"

    @classmethod
    def pruned_weights(cls, density: float, pruning: str | None = None,
                       nm: tuple[int, int] | None = None) -> Sparse:
        """The model ``compile`` uses for weights pruned to ``density`` by ``pruning``
        (``"nm"`` with ``nm``: exactly ``N/M`` dense; else unstructured)."""
        kind = "nm" if pruning == "nm" and nm is not None else "magnitude"
        dens: float | tuple[int, int] = (int(nm[0]), int(nm[1])) if kind == "nm" and nm \
            else float(density)
        return cls(densities=((WEIGHTS, dens),), pruning=kind,
                   nm=(int(nm[0]), int(nm[1])) if nm else None)

    def optimizations_for(self, problem: Problem, arch: Arch,
                          keep: np.ndarray | None = None) -> SparseOptimizations:
        """The optimizations of a mapping whose keep flags are ``keep: bool[L, T]``."""
        if self.optimizations is not None:
            return self.optimizations
        if self.pruning is None:
            return SparseOptimizations()
        keepers = None
        if keep is not None and WEIGHTS in problem.tensor_names:
            w = problem.tensor_index(WEIGHTS)
            keepers = tuple(lv for l, lv in enumerate(arch.level_names) if keep[l, w])
        return default_sparse_optimizations(arch, self.pruning, self.nm, keepers)

    def describe(self, problem: Problem, arch: Arch, keep: np.ndarray | None = None) -> str:
        """E.g. ``"2:4 nm@DRAM,Scratchpad skip@Scratchpad skip-MAC"``."""
        opts = self.optimizations_for(problem, arch, keep)
        dens = dict(self.densities).get(WEIGHTS)
        what = f"{dens[0]}:{dens[1]}" if isinstance(dens, tuple) else f"density {dens:g}" \
            if dens is not None else "dense"
        fmt = opts.formats[0].kind if opts.formats else "uncompressed"
        at = ",".join(f.level for f in opts.formats)
        parts = [what, f"{fmt}@{at}" if at else fmt]
        for a in opts.actions:
            parts.append(f"{a.kind}-MAC" if a.level == "compute" else f"{a.kind}@{a.level}")
        return " ".join(parts)

    def cost(self, problem: Problem, arch: Arch, mappings: MappingBatch) -> Costs:
        ev = evaluate(problem, arch, mappings)
        dens = dict(self.densities) or None
        groups: dict[bytes, list[int]] = {}
        per_row = self.optimizations is None and self.pruning is not None
        for i in range(len(mappings)):
            groups.setdefault(mappings.keep[i].tobytes() if per_row else b"", []).append(i)
        parts = []
        for rows in groups.values():
            idx = np.asarray(rows)
            sub = mappings if len(groups) == 1 else mappings[idx]
            ev_sub = ev if len(groups) == 1 else evaluate(problem, arch, sub)
            opts = self.optimizations_for(problem, arch, sub.keep[0] if len(sub) else None)
            parts.append((idx, evaluate_sparse(ev_sub, opts, dens, mappings=sub,
                                               confidence=self.confidence)))
        sc = parts[0][1] if len(parts) == 1 else merge_rows(parts, len(mappings))
        return sparse_costs(sc, sc.macs, ev.validity.reasons, arch)


def sparse_costs(sc, computes: np.ndarray, dense_reasons: np.ndarray, arch: Arch) -> Costs:
    """:class:`Costs` of a sparse result ``sc`` (``valid``, ``cycles``, ``energy``, ``edp``
    per row; ``computes``: the MACs it actually runs): invalid rows keep the dense model's
    reason bits (``dense_reasons``), and a row only the sparse model refuses is
    ``CAPACITY`` (its compressed tiles do not fit)."""
    v = np.asarray(sc.valid, bool)
    with np.errstate(divide="ignore", invalid="ignore"):
        util = np.where(v, computes / (arch.compute.instances * sc.cycles), np.nan)
    reasons = np.where(v, 0, np.where(dense_reasons != 0, dense_reasons,
                                      int(Reason.CAPACITY)))
    return Costs(cycles=np.where(v, sc.cycles, 0).astype(np.float64),
                 energy_pJ=np.where(v, sc.energy, np.nan), edp=np.where(v, sc.edp, np.nan),
                 utilization=util, valid=v, reasons=reasons.astype(np.int64), detail=sc)


def merge_rows(parts: list, n: int):
    """One result of ``n`` rows from per-group results ``(rows, result)`` of one frozen
    dataclass type (:class:`SparseCost`, :class:`~cost_models.sparseloop.SparseloopCost`):
    batch-shaped arrays (and dicts of them) are scattered back by row, the rest copied."""
    first = parts[0][1]

    def gather(get):
        v = get(first)
        arr = np.empty((n, *v.shape[1:]), v.dtype)
        for idx, res in parts:
            arr[idx] = get(res)
        return arr
    out = {}
    for f in fields(first):
        v = getattr(first, f.name)
        if isinstance(v, np.ndarray):
            out[f.name] = gather(lambda r, k=f.name: getattr(r, k))
        elif isinstance(v, dict):
            out[f.name] = {key: gather(lambda r, k=f.name, key=key: getattr(r, k)[key])
                           for key in v}
        else:
            out[f.name] = v
    return type(first)(**out)


__all__ = ["Sparse", "WEIGHTS", "default_sparse_optimizations", "merge_rows"]
