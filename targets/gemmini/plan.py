"""A mapping of the ``gemmini`` target as the emitted loop nest and its tiles, checked.

:func:`loop_nest` turns one mapping into the loop nest the emitter builds, outer to inner:
every op axis is split by the mapping's factors per level ``[DRAM, Scratchpad,
Accumulator, Registers, spatial]`` (the spatial factor last, so a PE-array block is a
contiguous run of channels, as Gemmini's rows need), then ordered DRAM loops, Scratchpad
loops, Accumulator loops (each in the mapping's order), then the *compute tile*: spatial
``M`` (array columns), spatial ``C`` (array rows), Registers loops (unit loops are kept
just outside the tile).  It raises :class:`MapspaceError` for what Gemmini cannot run
(spatial factors off the array, wrong kept tensors, weights not stationary).

:class:`Geometry` places each tensor's tile in that nest and lays it out in Gemmini's
row-organised scratchpad and accumulator (sliding activation windows included); it raises
when the tiles do not fit.  :func:`check` runs both: whether the emitter can build a
mapping (the search's ``gemmini-rows`` rule, :mod:`targets.gemmini.rules`, computes the
same answer for a whole batch with numpy and is tested equal to it).  Nothing here imports
TVM at module load.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from mapspace.arch import Arch
from mapspace.errors import MapspaceError
from mapspace.mapping import MappingBatch
from mapspace.problem import Problem
from targets.gemmini import depthwise
from targets.tvm_common import OpSpec, op_spec

DIM = 16
SPAD_ROWS = 16384
ACC_ROWS = 1024
LEVELS = ("DRAM", "Scratchpad", "Accumulator", "Registers")
_WHERE = "emit gemmini"

#: per kind: TE axes of (activations, weights, output) in Gemmini layouts, each axis a list
#: of (dim, coefficient name or 1); the last axis is the one a scratchpad row holds.
AXES: dict[str, tuple[list[list[tuple[str, Any]]], ...]] = {
    "matmul": ([[("P", 1)], [("C", 1)]], [[("C", 1)], [("M", 1)]], [[("P", 1)], [("M", 1)]]),
    "bmm": ([[("N", 1)], [("P", 1)], [("C", 1)]], [[("N", 1)], [("C", 1)], [("M", 1)]],
            [[("N", 1)], [("P", 1)], [("M", 1)]]),
    "conv2d": ([[("N", 1)], [("Q", "st"), ("S", "dl")], [("P", "st"), ("R", "dl")], [("C", 1)]],
               [[("S", 1)], [("R", 1)], [("C", 1)], [("M", 1)]],
               [[("N", 1)], [("Q", 1)], [("P", 1)], [("M", 1)]]),
}
ITERS = {"matmul": ("P", "M", "C"), "bmm": ("N", "P", "M", "C"),
          "conv2d": ("N", "Q", "P", "M", "C", "S", "R")}
REDUCE = {"matmul": ("C",), "bmm": ("C",), "conv2d": ("C", "S", "R")}
# depthwise: one channel at a time through the array (targets/gemmini/depthwise.py)
AXES[depthwise.KIND], ITERS[depthwise.KIND] = depthwise.AXES, depthwise.ITERS
REDUCE[depthwise.KIND] = depthwise.REDUCE


@dataclass
class Loop:
    dim: str
    factor: int
    level: int
    spatial: bool
    stride: int = 1
    rv: Any = None
    var: Any = None
    tile: bool = False


# --------------------------------------------------------------------------- mapping checks
def loop_nest(problem: Problem, spec: OpSpec, arch: Arch, mapping: MappingBatch) -> list[Loop]:
    """The mapping as the emitted loop nest (outer to inner), checked emittable."""
    if tuple(arch.level_names) != LEVELS:
        raise MapspaceError(f"gemmini emission needs the levels {list(LEVELS)}, found "
                            f"{list(arch.level_names)}", where=_WHERE)
    if len(mapping) != 1:
        raise MapspaceError(f"emit takes one mapping, found a batch of {len(mapping)}",
                            where=_WHERE)
    tem, spa, order = mapping.temporal[0], mapping.spatial[0], mapping.order[0]
    keep = mapping.keep[0]
    dims = problem.dims
    di = {d: i for i, d in enumerate(dims)}
    dw = spec.kind == depthwise.KIND
    for (lv, d), f in np.ndenumerate(spa):
        allowed = (lv == 1 and dims[d] == "M") or (lv == 2 and dims[d] == "C" and not dw)
        if f > 1 and dw and not allowed:
            raise MapspaceError(
                f"spatial factor {dims[d]}={f} at {LEVELS[lv]}: a depthwise convolution "
                "runs one channel at a time through Gemmini's PE array (its C is not a "
                "reduction the array rows can sum)", where=_WHERE)
        if f > 1 and not allowed:
            raise MapspaceError(
                f"spatial factor {dims[d]}={f} at {LEVELS[lv]} cannot run on Gemmini's PE "
                "array (only M across the columns, below the scratchpad, and C across the "
                "rows, below the accumulator)", where=_WHERE)
        if f > DIM:
            raise MapspaceError(f"spatial factor {dims[d]}={f} exceeds the {DIM}x{DIM} array",
                                where=_WHERE)
    tn = list(problem.tensor_names)
    want = {1: {"Weights", "Inputs"}, 2: {"Outputs"}}
    for lv, names in want.items():
        kept = {tn[t] for t in range(len(tn)) if keep[lv, t]}
        if kept != names:
            raise MapspaceError(f"{LEVELS[lv]} must keep exactly {sorted(names)} on Gemmini, "
                                f"the mapping keeps {sorted(kept)}", where=_WHERE)
    for d in ("C", "M", "R", "S"):
        if d in di and tem[3, di[d]] > 1:
            raise MapspaceError(f"temporal {d}={tem[3, di[d]]} at Registers: Gemmini holds one "
                                "weight per PE (weight-stationary)", where=_WHERE)
    iters = ITERS[spec.kind]
    for d in dims:
        if d not in iters and (tem[:, di[d]] * spa[:, di[d]]).prod() > 1:
            raise MapspaceError(f"dim {d} is not an axis of the emitted {spec.kind}",
                                where=_WHERE)
    nest: list[Loop] = []
    for lv in range(3):
        for d in reversed(order[lv].tolist()):
            if dims[d] in iters:
                nest.append(Loop(dims[d], int(tem[lv, d]), lv, False))
    if "M" in di:
        nest.append(Loop("M", int(spa[1, di["M"]]), 1, True))
    if "C" in di:
        nest.append(Loop("C", int(spa[2, di["C"]]), 2, True))
    for d in reversed(order[3].tolist()):
        if dims[d] in iters:
            nest.append(Loop(dims[d], int(tem[3, d]), 3, False))
    # the compute tile: spatial M, spatial C, Registers loops; its unit loops go just
    # outside it (a TensorIntrin matches the loops of extent > 1)
    head = [lp for lp in nest if lp.level < 3 and not lp.spatial]
    rest = nest[len(head):]
    tile = [lp for lp in rest if lp.factor > 1] or [rest[1]]
    nest = head + [lp for lp in rest if not any(lp is x for x in tile)] + tile
    for lp in tile:
        lp.tile = True
    # strides: split order per dim is [L0, L1, L2, L3, spatial] (outer -> inner)
    for d in iters:
        parts = sorted((lp for lp in nest if lp.dim == d), key=lambda lp: (lp.spatial,
                                                                            lp.level))
        stride = 1
        for lp in reversed(parts):
            lp.stride = stride
            stride *= lp.factor
        if stride != spec.sizes[d]:
            raise MapspaceError(f"factors of {d} multiply to {stride}, not {spec.sizes[d]}",
                                where=_WHERE)
    return nest


# --------------------------------------------------------------------------- geometry
class Geometry:
    """Tiles, placements and scratchpad/accumulator layouts of one emission."""

    def __init__(self, spec: OpSpec, nest: list[Loop]):
        self.spec = spec
        self.nest = nest
        self.tile_pos = next(i for i, lp in enumerate(nest) if lp.tile)
        coef = {"st": spec.stride, "dl": spec.dilation, 1: 1}
        self.axes = [[[(d, coef[c]) for d, c in ax] for ax in t] for t in AXES[spec.kind]]
        self.mc = self._factor("M", spatial=True)
        self.kc = self._factor("C", spatial=True)
        self.widths = (self.kc, self.mc, self.mc)
        # placements: A, B at DRAM loops; Z at DRAM/Scratchpad loops
        self.place = [self._placement(t, (0,)) for t in (0, 1)] + [self._placement(2, (0, 1))]
        self.ext = [self._extents(t) for t in range(3)]
        self.rows_of = [self._rows(t) for t in range(3)]
        self.base = [0, self.tile_rows(0), 0]
        self.slide = self._slide()
        spad = self.tile_rows(0) + self.tile_rows(1)
        if spad > SPAD_ROWS:
            raise MapspaceError(
                f"the scratchpad tiles need {spad} rows of {DIM} bytes (activations "
                f"{self.tile_rows(0)} + weights {self.tile_rows(1)}) but Gemmini has "
                f"{SPAD_ROWS}: rows of {self.kc}/{self.mc} < {DIM} elements waste space",
                where=_WHERE)
        if self.tile_rows(2) > ACC_ROWS:
            raise MapspaceError(f"the accumulator tile needs {self.tile_rows(2)} rows, Gemmini "
                                f"has {ACC_ROWS}", where=_WHERE)

    def _slide(self) -> tuple[int, int] | None:
        """``(axis, shift)`` when the activations' placement loop slides their window along
        ``H`` or ``W`` by less than the window: the scratchpad then keeps the overlap (that
        axis addressed modulo the window) and each later iteration moves in only the
        ``shift`` new rows/columns -- Timeloop's sliding-window delta."""
        if self.place[0] < 0:
            return None
        lp = self.nest[self.place[0]]
        for a, ax in enumerate(self.axes[0][:-1]):
            for d, c in ax:
                if d == lp.dim and len(ax) > 1 and c * lp.stride < self.ext[0][a]:
                    return a, c * lp.stride
        return None

    def _factor(self, dim: str, spatial: bool) -> int:
        return math.prod(lp.factor for lp in self.nest if lp.dim == dim and lp.spatial
                         == spatial) if spatial else 1

    def relevant(self, t: int) -> set[str]:
        return {d for ax in self.axes[t] for d, _ in ax}

    def _placement(self, t: int, levels: tuple[int, ...]) -> int:
        rel = self.relevant(t)
        pos = -1
        for i, lp in enumerate(self.nest[:self.tile_pos]):
            if lp.level in levels and not lp.spatial and lp.factor > 1 and lp.dim in rel:
                pos = i
        return pos

    def dim_extent(self, t: int, d: str) -> int:
        return math.prod(lp.factor for lp in self.nest[self.place[t] + 1:] if lp.dim == d)

    def _extents(self, t: int) -> list[int]:
        return [sum((self.dim_extent(t, d) - 1) * c for d, c in ax) + 1 for ax in self.axes[t]]

    def _rows(self, t: int) -> int:
        return math.prod(self.ext[t][:-1])

    def tile_rows(self, t: int) -> int:
        return self.rows_of[t] * (self.ext[t][-1] // self.widths[t])

    # expressions --------------------------------------------------------------------
    def dim_sum(self, d: str, lo: int, hi: int) -> Any:
        """sum of var * stride over the loops of ``d`` at nest positions ``(lo, hi)``."""
        from tvm import tirx
        e: Any = tirx.const(0, "int32")
        for lp in self.nest[lo + 1:hi]:
            if lp.dim == d and lp.factor > 1:
                e = e + lp.var * lp.stride
        return e

    def row_addr(self, t: int, local: list[Any]) -> Any:
        """int32 row of tensor ``t``'s tile element at local axis coordinates ``local``."""
        ext = self.ext[t]
        lin: Any = local[0]
        for a in range(1, len(ext) - 1):
            lin = lin * ext[a] + local[a]
        if len(ext) == 1:
            lin = 0
        return self.base[t] + (local[-1] // self.widths[t]) * self.rows_of[t] + lin


def check(problem: Problem, mapping: MappingBatch, arch: Arch) -> None:
    """Raise :class:`MapspaceError` unless ``mapping`` can be emitted: the loop nest is
    expressible and its tiles fit Gemmini's row-organised scratchpad and accumulator (a tile
    whose channel blocks are narrower than 16 still takes whole rows, which the word-based
    analytical capacity does not count)."""
    spec = op_spec(problem)
    Geometry(spec, loop_nest(problem, spec, arch, mapping))
