"""Is a mapping legal on this arch?  Every reason, for a whole batch, as values (no raising).

``check`` returns a :class:`Validity`: ``valid: bool[B]`` and ``reasons: int64[B]``, a bit
set of :class:`Reason` flags, plus the per-level detail needed to explain a failure in
words (:meth:`Validity.explain`).  Capacity is checked per instance, in words of the level
(``ceil(elements * bits / datawidth)`` for a tensor with an explicit bit width, one word per
element otherwise, as in Timeloop).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import IntFlag

import numpy as np

from mapspace.arch import Arch
from mapspace.mapping import MappingBatch
from mapspace.problem import Problem

# mapspace.kernels is imported in check(): numba takes ~0.15 s to import and
# `import mapspace` stays light


class Reason(IntFlag):
    """Why a mapping is invalid (bit flags; several may be set)."""

    FACTORS = 1          # factors of a dimension do not multiply to its size
    NONPOSITIVE = 2      # a factor below 1
    ORDER = 4            # a level's loop order is not a permutation of the dimensions
    FANOUT = 8           # spatial factors exceed a level's X or Y fan-out
    CAPACITY = 16        # kept tiles overflow a level's capacity
    UNKEPT = 32          # a tensor is kept at no level
    CONSTRAINT = 64      # violates a mapspace constraint (set by mapspace.constraints)
    TARGET = 128         # breaks a target's extra rule (what its emitter can build)


@dataclass(frozen=True)
class Rule:
    """An extra validity rule a target contributes (e.g. what its emitter can build):
    ``admits(problem, arch, mappings) -> bool[B]``, vectorised, no exceptions.  The search
    sees a broken rule as :attr:`Reason.TARGET` (:meth:`mapspace.space.Mapspace.screen`)."""

    name: str
    admits: Callable[[Problem, Arch, MappingBatch], np.ndarray]
    why: str = ""


@dataclass(frozen=True)
class Validity:
    """``valid: bool[B]``, ``reasons: int64[B]``; detail arrays for explanations:
    ``bad_dims: bool[B, D]``, ``over_fanout: bool[B, L]``, ``usage: int64[B, L]`` words
    used per instance, ``capacity: int64[L]`` (-1 = unbounded), ``unkept: bool[B, T]``."""

    valid: np.ndarray
    reasons: np.ndarray
    bad_dims: np.ndarray
    over_fanout: np.ndarray
    usage: np.ndarray
    capacity: np.ndarray
    unkept: np.ndarray

    def explain(self, i: int, problem: Problem, arch: Arch) -> list[str]:
        """Every reason mapping ``i`` is invalid, one sentence each (empty if valid)."""
        r = Reason(int(self.reasons[i]))
        out: list[str] = []
        if Reason.NONPOSITIVE in r:
            out.append("a loop factor is below 1")
        if Reason.FACTORS in r:
            dims = [problem.dims[d] for d in np.nonzero(self.bad_dims[i])[0]]
            out.append("factors do not multiply to the problem size for "
                       + ", ".join(f"{d} (size {problem.size(d)})" for d in dims))
        if Reason.ORDER in r:
            out.append("a loop permutation is not a permutation of the dimensions")
        if Reason.FANOUT in r:
            for l in np.nonzero(self.over_fanout[i])[0]:
                fx, fy = arch.fanout(int(l))
                out.append(f"spatial factors below {arch.levels[l].name} exceed its "
                           f"fan-out of {fx}x{fy}")
        if Reason.CAPACITY in r:
            for l in range(arch.num_levels):
                cap = self.capacity[l]
                if cap >= 0 and self.usage[i, l] > cap:
                    out.append(f"tiles kept in {arch.levels[l].name} need "
                               f"{self.usage[i, l]} words, capacity is {cap}")
        if Reason.UNKEPT in r:
            names = [problem.tensor_names[t] for t in np.nonzero(self.unkept[i])[0]]
            out.append("kept at no level: " + ", ".join(names))
        if Reason.CONSTRAINT in r:
            out.append("violates the mapspace constraints")
        if Reason.TARGET in r:
            out.append("breaks a rule of the target (what its emitter can build)")
        return out


def tiles_of(problem: Problem, m: MappingBatch) -> np.ndarray:
    """``int64[B, L, T]``: elements of each tensor in each level's tile (kept or not)."""
    ext = m.extents()[:, :-1]
    return np.stack([problem.tile_size(t, ext) for t in range(problem.num_tensors)], axis=2)


def check(problem: Problem, arch: Arch, m: MappingBatch) -> Validity:
    """Validate a batch: factor products, positivity, permutations, fan-out, capacity, keep.

    Runs compiled and in parallel over the batch (``mapspace/kernels.py``).  Capacity is
    in words of the level: ``ceil(elements * bits / datawidth)`` for a tensor with a bit
    width, one word per element otherwise.
    """
    from mapspace.kernels import term_tables, validity_kernel

    B, L, D = m.temporal.shape
    T = problem.num_tensors
    tdim, tcoef = term_tables(problem.projections, problem.sizes)
    fan = np.array([arch.fanout(l) for l in range(L)], np.int64).reshape(L, 2)
    cap = np.array([-1 if lv.capacity is None else lv.capacity for lv in arch.levels],
                   np.int64)
    bits = np.array([t.bits or 0 for t in problem.tensors], np.int64)
    dw = np.array([lv.datawidth for lv in arch.levels], np.int64)
    reasons = np.zeros(B, np.int64)
    bad_dims = np.zeros((B, D), bool)
    over = np.zeros((B, L), bool)
    usage = np.zeros((B, L), np.int64)
    unkept = np.zeros((B, T), bool)
    validity_kernel(m.temporal, m.spatial, m.order, m.spatial_x, m.keep,
                    np.array(problem.sizes, np.int64), fan[:, 0].copy(), fan[:, 1].copy(), cap,
                    bits, dw, tdim, tcoef, reasons, bad_dims, over, usage, unkept)
    return Validity(valid=reasons == 0, reasons=reasons, bad_dims=bad_dims, over_fanout=over,
                    usage=usage, capacity=cap, unkept=unkept)
