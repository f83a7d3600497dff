"""Pricing of fusion: the row-complete constraint, the cost of softmax/LayerNorm, and the
:class:`Fused` cost model that applies both to a fused MAC op.

Follows the fusion study of Kim et al., "Full Stack Optimization of Transformer
Inference: a Survey" (2023), on Gemmini.  Softmax and LayerNorm reduce over a whole row of
their input, so

* an **unfused** ``softmax``/``layernorm`` op runs on the host CPU (Gemmini has no
  normalization unit in our arch files): its input tile makes a DRAM round trip — the
  accelerator's output is written to DRAM and read back — and the host computes it.
  :func:`host_nonlinear_cost` prices that: ``2 x elements`` DRAM words at the DRAM energy
  per word and bandwidth, plus ``elements / HOST_ELEMENTS_PER_CYCLE`` host cycles.
* a **fused** MAC op (``fused`` contains ``softmax``/``layernorm``, ``row_complete_dim``
  set by :mod:`compiler.passes.fuse`) keeps its intermediate on chip.  It must hold whole
  rows in the accumulator: :func:`row_complete_constraints` forces every *temporal* factor
  of the row dimension at the levels above the accumulator to 1; the search then runs on
  the target's defaults merged with those directives, on :func:`row_complete_arch` (the
  accumulator **double-buffered**, rule F2 below); :class:`Fused` prices a mapping that
  way and flags one that splits the row (:attr:`Reason.CONSTRAINT`).  The nonlinear part
  is priced by :func:`fused_nonlinear_cost`: one accumulator read and one write per output
  element, its cycles overlapped with the MAC loop nest (zero extra cycles).

Rule F2 — the accumulator is double-buffered for a fused row-wise epilogue.  The epilogue
reads the finished rows of one output tile (mean/variance or max/sum over the row, then
the normalized write-back) while the array accumulates the next tile, so two tiles must be
resident: the row-complete tile gets ``capacity / ACCUMULATOR_BUFFERS`` words per instance
(Timeloop's ``multiple_buffering``).  Gemmini's own tiler does the same for every matmul
(``tiled_matmul_auto`` sizes tiles to half of ``ACC_ROWS``).  Nothing else is added: the
latency consequence follows from the Timeloop rules already in the model.  On Gemmini's
weight-stationary array each 16x16 weight block is preloaded into the PEs (``Registers``
fills of ``Weights``) through the same Scratchpad read port that streams the input rows,
so with ``I`` output rows per preloaded block the Scratchpad serves ``16 + 256 / I``
words per cycle (P5).  Row-complete FFN2 of BERT-Base (``M = 768``: 48 words per column
instance per row) leaves ``I <= 512 / 48`` -> 8 rows at the 64 KiB accumulator (1024
words per instance, halved), so the Scratchpad must read ``16 + 32 = 48`` words per cycle
against its ``read_bandwidth`` of 32: FFN2 runs 1.5x slower.  At 128 KiB, ``I = 16``
(32 words per cycle) keeps it compute-bound.  ``tests/test_fusion.py`` checks the
hand-computed figures.

Assumptions (documented, deliberately simple):

* one DRAM word per element (INT8 activations on Gemmini's 8-bit DRAM word);
* ``HOST_ELEMENTS_PER_CYCLE = 16`` host elements per accelerator cycle, host and DRAM
  transfer times add (no overlap);
* the spatial fan-out *into* the accumulator instances (Gemmini's array columns, the
  Scratchpad level's spatial M factor) is left free: a row spread over the 16 columns is
  still entirely in the accumulator — that is how Gemmini stores a row.  Pass
  ``spatial=True`` to :func:`row_complete_constraints` to also force it to 1.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from cost_models.interface import Costs
from cost_models.model import evaluate
from mapspace.arch import Arch, StorageLevel
from mapspace.constraint_check import satisfies
from mapspace.constraints import Constraints, Directive, FactorBound
from mapspace.errors import MapspaceError
from mapspace.mapping import MappingBatch
from mapspace.problem import Problem
from mapspace.validity import Reason

#: op kinds / fused steps that need a whole row (priced by this module)
NONLINEAR_KINDS: tuple[str, ...] = ("softmax", "layernorm")
#: host throughput for softmax/LayerNorm, in elements per accelerator cycle (an assumption)
HOST_ELEMENTS_PER_CYCLE: float = 16.0
#: the level that must hold complete rows
ACCUMULATOR: str = "Accumulator"
#: tile buffers the accumulator holds for a fused row-wise epilogue (rule F2: double buffering)
ACCUMULATOR_BUFFERS: int = 2


@dataclass(frozen=True)
class NonlinearCost:
    """Cycles and energy of one softmax/LayerNorm (host round trip or fused on chip)."""

    cycles: int
    energy_pJ: float
    where: str  # "host" or "fused"


def _level(arch: Arch, name: str, what: str) -> int:
    if name not in arch.level_names:
        raise MapspaceError(f"target {arch.name!r} has no {name!r} level (levels: "
                            f"{', '.join(arch.level_names)})", where=what)
    return arch.level_index(name)


def _per_word(lv: StorageLevel, action: str) -> float:
    """pJ per word of a read/write (the ERT prices one block-wide vector access)."""
    return float(getattr(lv.energy, action)) / max(1, lv.block_size)


def row_complete_constraints(arch: Arch, dim: str, *, level: str = ACCUMULATOR,
                             spatial: bool = False) -> Constraints:
    """Directives forcing ``dim`` to be complete at ``level``: ``dim = 1`` in the temporal
    loops of every level above it (and in their spatial fan-out when ``spatial``).

    ``strict=False`` so that it merges with a target's non-strict defaults.
    """
    idx = _level(arch, level, "row_complete_constraints")
    bound = (FactorBound(dim, "=", 1),)
    ds: list[Directive] = []
    for lv in arch.levels[:idx]:
        src = f"fusion: {dim} complete at {level}"
        ds.append(Directive(lv.name, "temporal", factors=bound, source=src))
        if spatial and lv.name != arch.levels[0].name:
            ds.append(Directive(lv.name, "spatial", factors=bound, source=src))
    return Constraints(tuple(ds), strict=False, source=f"row-complete {dim} at {level}")


def row_complete_arch(arch: Arch, *, level: str = ACCUMULATOR,
                      buffers: int = ACCUMULATOR_BUFFERS) -> Arch:
    """``arch`` with ``level`` holding ``buffers`` tiles (rule F2): its
    ``multiple_buffering`` raised to ``buffers``, so each tile gets ``capacity / buffers``
    words per instance.  A level already multiple-buffered that much is left alone."""
    lv = arch.levels[_level(arch, level, "row_complete_arch")]
    if lv.multiple_buffering >= buffers:
        return arch
    return arch.with_level(level, multiple_buffering=float(buffers))


def host_nonlinear_cost(elements: int, arch: Arch) -> NonlinearCost:
    """An unfused softmax/LayerNorm: ``elements`` written to DRAM and read back (DRAM
    energy per word, DRAM bandwidth cycles) plus the host's compute time."""
    dram = arch.levels[0]
    words = 2 * int(elements)
    energy = elements * (_per_word(dram, "write") + _per_word(dram, "read"))
    bw = dram.shared_bandwidth or dram.read_bandwidth or 1.0
    cycles = words / float(bw) + elements / HOST_ELEMENTS_PER_CYCLE
    return NonlinearCost(int(round(cycles)), float(energy), "host")


def fused_nonlinear_cost(elements: int, arch: Arch, *,
                         level: str = ACCUMULATOR) -> NonlinearCost:
    """A fused softmax/LayerNorm: each element read from and written back to the
    accumulator once; its cycles overlap the MAC loop nest (0 extra)."""
    lv = arch.levels[_level(arch, level, "fused_nonlinear_cost")]
    return NonlinearCost(0, elements * (_per_word(lv, "read") + _per_word(lv, "write")),
                         "fused")


def row_level(arch: Arch, level: str = ACCUMULATOR) -> bool:
    """Whether ``arch`` has the level that must hold whole rows.  Targets without one (the
    ``cpu``: rows of a fused op stay in its caches) get neither the row-complete
    constraint nor a separate price for the fused nonlinear part."""
    return level in arch.level_names


def needs_row(fused: Sequence[str] | None) -> bool:
    """Whether a fused op's epilogue contains a row-wise nonlinear op."""
    return bool(fused) and any(s in NONLINEAR_KINDS for s in fused)  # type: ignore[union-attr]


@dataclass(frozen=True)
class Fused:
    """Cost model of a MAC op whose row-wise epilogue (softmax/LayerNorm over ``row_dim``,
    ``elements`` output elements) is fused: priced on :func:`row_complete_arch` (rule F2),
    plus the epilogue's accumulator traffic (:func:`fused_nonlinear_cost`, no extra
    cycles); a mapping that splits ``row_dim`` above ``level`` is invalid
    (:attr:`Reason.CONSTRAINT`).  ``detail`` is the dense ``Evaluation`` on that arch."""

    row_dim: str
    elements: int
    level: str = ACCUMULATOR
    name: str = "fused"

    def epilogue_energy_pJ(self, arch: Arch) -> float:
        """The fused epilogue's energy on ``arch`` (added to every valid mapping's)."""
        return fused_nonlinear_cost(self.elements, arch, level=self.level).energy_pJ

    def cost(self, problem: Problem, arch: Arch, mappings: MappingBatch) -> Costs:
        a = row_complete_arch(arch, level=self.level)
        ev = evaluate(problem, a, mappings)
        rows = satisfies(row_complete_constraints(a, self.row_dim, level=self.level),
                         problem, a, mappings)
        valid = ev.valid & rows
        reasons = ev.validity.reasons | np.where(rows, 0, int(Reason.CONSTRAINT))
        extra = self.epilogue_energy_pJ(arch)
        energy = np.where(valid, ev.cost.energy + extra, np.nan)
        with np.errstate(divide="ignore", invalid="ignore"):
            scale = np.where(ev.cost.energy != 0, energy / ev.cost.energy, 1.0)
        return Costs(cycles=np.where(valid, ev.cost.cycles, 0).astype(np.float64),
                     energy_pJ=energy, edp=np.where(valid, ev.cost.edp * scale, np.nan),
                     utilization=np.where(valid, ev.cost.utilization, np.nan), valid=valid,
                     reasons=reasons, detail=ev)


__all__ = ["ACCUMULATOR", "ACCUMULATOR_BUFFERS", "HOST_ELEMENTS_PER_CYCLE", "NONLINEAR_KINDS",
           "Fused", "NonlinearCost", "fused_nonlinear_cost", "host_nonlinear_cost", "needs_row",
           "row_complete_arch", "row_level", "row_complete_constraints"]
