"""Gemmini emission: a mapping of the ``gemmini`` target -> an ``s_tir.Schedule`` -> C that
calls Gemmini's intrinsics (``targets/gemmini/runtime``: a functional C model of them).

The schedule (every step is in the replayable trace written to ``trace.py``):

* every op axis is split by the mapping's factors per level, outer to inner
  ``[DRAM, Scratchpad, Accumulator, Registers, spatial]`` (the spatial factor last, so a
  PE-array block is a contiguous run of channels, as Gemmini's rows need), then reordered:
  DRAM loops, Scratchpad loops, Accumulator loops (each in the mapping's order), then the
  *compute tile*: spatial ``M`` (array columns), spatial ``C`` (array rows), Registers
  loops (unit loops are kept just outside the tile);
* ``cache_read`` of activations and weights into ``"global.spad"``, ``compute_at`` the
  innermost DRAM loop that indexes them (where the mapping's scratchpad tile changes; root
  when none does); ``cache_write`` of the output into ``"global.acc"``;
  ``decompose_reduction``; ``annotate`` of the loops that hold the copies;
* ``tensorize`` of the compute tile to a TensorIntrin registered for this emission (its
  description is the tile's loops over regions of the spad/acc buffers; its implementation
  calls ``gemmini_extended_preload`` and ``gemmini_extended_compute_preloaded`` /
  ``_accumulated`` over chunks of at most 16 rows, the weights ``kc x mc``, addresses
  decoded from the buffers' element offsets).  Spatial factors below 16 become the
  intrinsics' rows/cols arguments, so partial tiles are zero-padded as Gemmini pads them.

Then a lowering pass (``_GemminiLowering``, a rewrite of the scheduled TIR before
``tvm.compile(..., "c")``; TVM 0.27 has no Python IR mutator, so it rebuilds the few
statement kinds a schedule holds) turns the caches into data movement:

* each scratchpad copy block becomes ``mvin`` (activations) / ``mvin2`` (weights) of the
  tile, rows of ``kc``/``mc`` <= 16 elements in Gemmini's row layout.  A conv activation
  window that slides along ``H`` in its placement loop keeps its overlap (rows addressed
  modulo the window) and moves in only the new rows, like Timeloop's sliding-window delta;
  a window sliding along ``W`` (a DRAM loop over ``P`` or ``R``) is reloaded whole, which
  moves more than the model counts;
* the accumulator is tile resident: at the innermost DRAM/Scratchpad loop indexing the
  output, partial sums come back with ``mvin3`` (int32) when a reduction loop outside has
  already run once (Timeloop's first-read elision), and leave with ``mvout`` (int32, full
  accumulator rows) after the loop body; the first compute into an output tile overwrites
  the accumulator, later ones accumulate (bit 30); the full-size init and write-back of
  the logical ``global.acc`` buffer are dropped.

conv2d is emitted **directly** (no im2col), in Gemmini's layouts: activations NHWC, weights
``[S, R, C, M]`` (HWIO), output NHWC (``[N, Q, P, M]``); the zero padding is a TE pad stage
run on the host inside the kernel (the padded input is what Timeloop's ``Inputs`` counts);
:func:`emit` transposes the operands and the result around the kernel.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mapspace.arch import Arch
from mapspace.errors import MapspaceError
from mapspace.mapping import MappingBatch
from mapspace.problem import Problem
from targets.gemmini import depthwise
from targets.tvm_common import EmitResult, OpSpec, import_tvm, op_spec, random_inputs, reference

RUNTIME = Path(__file__).parent / "runtime"
DIM = 16
SPAD_ROWS = 16384
ACC_ROWS = 1024
_LEVELS = ("DRAM", "Scratchpad", "Accumulator", "Registers")
GARBAGE = 0xFFFFFFFF
ACC_BIT, ACCUMULATE_BIT, FULL_BIT = 1 << 31, 1 << 30, 1 << 29
_WHERE = "emit gemmini"

#: per kind: TE axes of (activations, weights, output) in Gemmini layouts, each axis a list
#: of (dim, coefficient name or 1); the last axis is the one a scratchpad row holds.
_AXES: dict[str, tuple[list[list[tuple[str, Any]]], ...]] = {
    "matmul": ([[("P", 1)], [("C", 1)]], [[("C", 1)], [("M", 1)]], [[("P", 1)], [("M", 1)]]),
    "bmm": ([[("N", 1)], [("P", 1)], [("C", 1)]], [[("N", 1)], [("C", 1)], [("M", 1)]],
            [[("N", 1)], [("P", 1)], [("M", 1)]]),
    "conv2d": ([[("N", 1)], [("Q", "st"), ("S", "dl")], [("P", "st"), ("R", "dl")], [("C", 1)]],
               [[("S", 1)], [("R", 1)], [("C", 1)], [("M", 1)]],
               [[("N", 1)], [("Q", 1)], [("P", 1)], [("M", 1)]]),
}
_ITERS = {"matmul": ("P", "M", "C"), "bmm": ("N", "P", "M", "C"),
          "conv2d": ("N", "Q", "P", "M", "C", "S", "R")}
_REDUCE = {"matmul": ("C",), "bmm": ("C",), "conv2d": ("C", "S", "R")}
# depthwise: one channel at a time through the array (targets/gemmini/depthwise.py)
_AXES[depthwise.KIND], _ITERS[depthwise.KIND] = depthwise.AXES, depthwise.ITERS
_REDUCE[depthwise.KIND] = depthwise.REDUCE


@dataclass
class _Loop:
    dim: str
    factor: int
    level: int
    spatial: bool
    stride: int = 1
    rv: Any = None
    var: Any = None
    tile: bool = False


# --------------------------------------------------------------------------- TE / layouts
def _te(spec: OpSpec) -> tuple[Any, Any, Any, Any]:
    """``(A, B, Z, A_dram)`` in Gemmini layouts; ``A_dram`` is what the scratchpad reads."""
    from tvm import te

    s = spec.sizes
    if spec.kind == depthwise.KIND:
        return depthwise.te(spec)
    if spec.kind == "matmul":
        A = te.placeholder((s["P"], s["C"]), "int8", name="A")
        B = te.placeholder((s["C"], s["M"]), "int8", name="B")
        k = te.reduce_axis((0, s["C"]), name="C")
        Z = te.compute((s["P"], s["M"]), lambda P, M: te.sum(
            A[P, k].astype("int32") * B[k, M].astype("int32"), axis=k), name="Z")
        return A, B, Z, A
    if spec.kind == "bmm":
        A = te.placeholder((s["N"], s["P"], s["C"]), "int8", name="A")
        B = te.placeholder((s["N"], s["C"], s["M"]), "int8", name="B")
        k = te.reduce_axis((0, s["C"]), name="C")
        Z = te.compute((s["N"], s["P"], s["M"]), lambda N, P, M: te.sum(
            A[N, P, k].astype("int32") * B[N, k, M].astype("int32"), axis=k), name="Z")
        return A, B, Z, A
    st, pd, dl = spec.stride, spec.padding, spec.dilation
    A = te.placeholder((s["N"], spec.H, spec.W, s["C"]), "int8", name="A")
    B = te.placeholder((s["S"], s["R"], s["C"], s["M"]), "int8", name="B")
    A_in = A
    if pd:
        from tvm import topi
        A_in = topi.nn.pad(A, (0, pd, pd, 0), (0, pd, pd, 0), name="A_pad")
    c = te.reduce_axis((0, s["C"]), name="C")
    rs = te.reduce_axis((0, s["S"]), name="S")
    rr = te.reduce_axis((0, s["R"]), name="R")
    Z = te.compute((s["N"], s["Q"], s["P"], s["M"]), lambda N, Q, P, M: te.sum(
        A_in[N, Q * st + rs * dl, P * st + rr * dl, c].astype("int32")
        * B[rs, rr, c, M].astype("int32"), axis=[c, rs, rr]), name="Z")
    return A, B, Z, A_in


def _to_gemmini_layout(spec: OpSpec, a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, ...]:
    if spec.kind == depthwise.KIND:
        return depthwise.to_layout(a, b)
    if spec.kind != "conv2d":
        return a, b
    return (np.ascontiguousarray(a.transpose(0, 2, 3, 1)),
            np.ascontiguousarray(b.transpose(2, 3, 1, 0)))


def _from_gemmini_layout(spec: OpSpec, z: np.ndarray) -> np.ndarray:
    if spec.kind == depthwise.KIND:
        return depthwise.from_layout(z)
    return z if spec.kind != "conv2d" else np.ascontiguousarray(z.transpose(0, 3, 1, 2))


# --------------------------------------------------------------------------- mapping checks
def _loops(problem: Problem, spec: OpSpec, arch: Arch, mapping: MappingBatch) -> list[_Loop]:
    """The mapping as the emitted loop nest (outer to inner), checked emittable."""
    if tuple(arch.level_names) != _LEVELS:
        raise MapspaceError(f"gemmini emission needs the levels {list(_LEVELS)}, found "
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
                f"spatial factor {dims[d]}={f} at {_LEVELS[lv]}: a depthwise convolution "
                "runs one channel at a time through Gemmini's PE array (its C is not a "
                "reduction the array rows can sum)", where=_WHERE)
        if f > 1 and not allowed:
            raise MapspaceError(
                f"spatial factor {dims[d]}={f} at {_LEVELS[lv]} cannot run on Gemmini's PE "
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
            raise MapspaceError(f"{_LEVELS[lv]} must keep exactly {sorted(names)} on Gemmini, "
                                f"the mapping keeps {sorted(kept)}", where=_WHERE)
    for d in ("C", "M", "R", "S"):
        if d in di and tem[3, di[d]] > 1:
            raise MapspaceError(f"temporal {d}={tem[3, di[d]]} at Registers: Gemmini holds one "
                                "weight per PE (weight-stationary)", where=_WHERE)
    iters = _ITERS[spec.kind]
    for d in dims:
        if d not in iters and (tem[:, di[d]] * spa[:, di[d]]).prod() > 1:
            raise MapspaceError(f"dim {d} is not an axis of the emitted {spec.kind}",
                                where=_WHERE)
    nest: list[_Loop] = []
    for lv in range(3):
        for d in reversed(order[lv].tolist()):
            if dims[d] in iters:
                nest.append(_Loop(dims[d], int(tem[lv, d]), lv, False))
    if "M" in di:
        nest.append(_Loop("M", int(spa[1, di["M"]]), 1, True))
    if "C" in di:
        nest.append(_Loop("C", int(spa[2, di["C"]]), 2, True))
    for d in reversed(order[3].tolist()):
        if dims[d] in iters:
            nest.append(_Loop(dims[d], int(tem[3, d]), 3, False))
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
class _Geometry:
    """Tiles, placements and scratchpad/accumulator layouts of one emission."""

    def __init__(self, spec: OpSpec, nest: list[_Loop]):
        self.spec = spec
        self.nest = nest
        self.tile_pos = next(i for i, lp in enumerate(nest) if lp.tile)
        coef = {"st": spec.stride, "dl": spec.dilation, 1: 1}
        self.axes = [[[(d, coef[c]) for d, c in ax] for ax in t] for t in _AXES[spec.kind]]
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


# --------------------------------------------------------------------------- TensorIntrin
def _region_src(name: str, axes: list[list[tuple[str, int]]], ext: dict[str, int],
                iv: dict[str, str]) -> tuple[str, str, list[int]]:
    """``(index expression, full region, shape)`` of a desc buffer."""
    idx, shape = [], []
    for ax in axes:
        terms = [iv[d] if c == 1 else f"{iv[d]} * {c}" for d, c in ax if ext[d] > 1]
        idx.append(" + ".join(terms) or "0")
        shape.append(sum((ext[d] - 1) * c for d, c in ax) + 1)
    region = ", ".join(f"0:{n}" for n in shape)
    return f"{name}[{', '.join(idx)}]", f"{name}[{region}]", shape


def _register_intrin(spec: OpSpec, geo: _Geometry, low: _GemminiLowering,
                     zshape: tuple[int, ...], bshape: tuple[int, ...]) -> str:
    """Register a TensorIntrin for this emission's compute tile (its loops, in nest order,
    over regions of the spad/acc buffers) whose implementation is Gemmini's preload +
    compute calls; the tile's global position comes from the buffers' element offsets."""
    from tvm import s_tir, tirx
    from tvm.script import from_source

    tile = geo.nest[geo.tile_pos:]
    iters = _ITERS[spec.kind]
    ext = {d: math.prod(lp.factor for lp in tile if lp.dim == d) for d in iters}
    iv = {d: f"v_{d}" for d in iters}
    a_ix, a_rg, a_sh = _region_src("A", geo.axes[0], ext, iv)
    b_ix, b_rg, b_sh = _region_src("B", geo.axes[1], ext, iv)
    z_ix, z_rg, z_sh = _region_src("Z", geo.axes[2], ext, iv)
    loops = ", ".join(f"l{i}" for i in range(len(tile)))
    exts = ", ".join(str(lp.factor) for lp in tile)
    binds = []
    for d in iters:
        if ext[d] == 1:
            continue
        terms = [f"l{i}" if lp.stride == 1 else f"l{i} * {lp.stride}"
                 for i, lp in enumerate(tile) if lp.dim == d]
        kind = "reduce" if d in _REDUCE[spec.kind] else "spatial"
        binds.append(f"                {iv[d]} = T.axis.{kind}({ext[d]}, "
                     f"{' + '.join(terms) or '0'})")
    head = f"""
@T.prim_func(s_tir=True)
def f(a: T.handle, b: T.handle, z: T.handle):
    A = T.match_buffer(a, ({", ".join(map(str, a_sh))},), "int8", offset_factor=1,
                       scope="global.spad")
    B = T.match_buffer(b, ({", ".join(map(str, b_sh))},), "int8", offset_factor=1,
                       scope="global.spad")
    Z = T.match_buffer(z, ({", ".join(map(str, z_sh))},), "int32", offset_factor=1,
                       scope="global.acc")
    with T.sblock("root"):
        T.reads({z_rg}, {a_rg}, {b_rg})
        T.writes({z_rg})
"""
    desc_src = head + f"""        for {loops} in T.grid({exts}):
            with T.sblock("Z"):
{chr(10).join(binds)}
                {z_ix} = {z_ix} + T.Cast("int32", {a_ix}) * T.Cast("int32", {b_ix})
"""
    impl_src = head + "        T.evaluate(0)\n"
    desc = from_source(desc_src)
    impl = from_source(impl_src)
    _, bp, zp = impl.params

    def decode(off: Any, shape: tuple[int, ...]) -> list[Any]:
        out = []
        for a in range(len(shape)):
            inner = math.prod(shape[a + 1:])
            out.append(tirx.floormod(tirx.floordiv(off, inner), shape[a]) if a else
                       tirx.floordiv(off, inner))
        return out
    gdim: dict[str, Any] = {}
    for buf, shape, axes in ((zp, zshape, geo.axes[2]), (bp, bshape, geo.axes[1])):
        for (ax, e) in zip(axes, decode(buf.elem_offset, shape), strict=True):
            gdim.setdefault(ax[0][0], e)
    root = impl.body.block
    nb = s_tir.SBlock(root.iter_vars, root.reads, root.writes, root.name_hint,
                      low.compute_tile(gdim), root.init, root.alloc_buffers,
                      root.match_buffers, root.annotations)
    impl = impl.with_body(s_tir.SBlockRealize(impl.body.iter_values, impl.body.predicate, nb))
    import hashlib

    digest = hashlib.sha1((desc.script() + impl.script()).encode()).hexdigest()[:12]
    name = f"gemmini_tile_{spec.kind}_{digest}"     # same tile, same name (replayable)
    s_tir.TensorIntrin.register(name, desc, impl, override=True)
    return name


# --------------------------------------------------------------------------- schedule
def _schedule(spec: OpSpec, nest: list[_Loop]) -> tuple[Any, dict[str, Any]]:
    tvm = import_tvm()
    from tvm import s_tir, te

    A, B, Z, A_dram = _te(spec)
    func = te.create_prim_func([A, B, Z])
    sch = s_tir.Schedule(tvm.IRModule({"main": func}))
    blk = sch.get_sblock("Z")
    axis = {sch.get(lp).loop_var.name: lp for lp in sch.get_loops(blk)}
    for d in _ITERS[spec.kind]:
        parts = sorted((lp for lp in nest if lp.dim == d), key=lambda lp: (lp.spatial,
                                                                            lp.level))
        rvs = sch.split(axis[d], factors=[lp.factor for lp in parts])
        for lp, rv in zip(parts, rvs, strict=True):
            lp.rv = rv
    sch.reorder(*[lp.rv for lp in nest])
    geo = _Geometry(spec, nest)
    reads = [r.source.name for r in sch.get(blk).reads]
    names = {}
    bufs: dict[int, Any] = {}
    for t, buf in ((0, A_dram.op.name), (1, "B")):
        cb = sch.cache_read(blk, reads.index(buf), "global.spad")
        names[t] = sch.get(cb).name_hint
        bufs[t] = sch.get(cb).reads[0].source
        if geo.place[t] >= 0:
            sch.compute_at(cb, nest[geo.place[t]].rv)
        reads = [r.source.name for r in sch.get(blk).reads]
    wb = sch.cache_write(blk, 0, "global.acc")
    names[2] = sch.get(wb).name_hint
    bufs[2] = sch.get(wb).writes[0].source
    for t, tag in ((0, "mvin"), (1, "mvin2")):
        if geo.place[t] >= 0:
            sch.annotate(nest[geo.place[t]].rv, f"gemmini.{tag}", names[t])
    if geo.place[2] >= 0:
        sch.annotate(nest[geo.place[2]].rv, "gemmini.acc_tile", names[2])
    for lp in nest:
        lp.var = sch.get(lp.rv).loop_var
    low = _GemminiLowering(geo, names, bufs)
    init = sch.decompose_reduction(blk, nest[0].rv)
    low.drop.add(sch.get(init).name_hint)
    intrin = _register_intrin(spec, geo, low, tuple(int(x) for x in Z.shape),
                              tuple(int(x) for x in B.shape))
    sch.tensorize(nest[geo.tile_pos].rv, intrin)
    return sch, {"geo": geo, "low": low}


# --------------------------------------------------------------------------- lowering
class _GemminiLowering:
    """Rewrite the scheduled TIR into Gemmini intrinsic calls (see the module docstring)."""

    def __init__(self, geo: _Geometry, names: dict[int, str], bufs: dict[int, Any]):
        from tvm import tirx

        self.t = tirx
        self.geo = geo
        self.names = names
        self.abuf, self.bbuf, self.zbuf = bufs[0], bufs[1], bufs[2]
        self.drop = set(names.values())
        self.fresh = 0

    # helpers ------------------------------------------------------------------------
    def u32(self, v: int) -> Any:
        return self.t.const(v, "uint32")

    def call(self, name: str, *args: Any) -> Any:
        return self.t.Evaluate(self.t.call_extern("void", name, *args))

    def seq(self, stmts: list[Any]) -> Any:
        stmts = [s for s in stmts if s is not None]
        return stmts[0] if len(stmts) == 1 else self.t.SeqStmt(stmts)

    def loop(self, extent: int, name: str, body_fn) -> Any:
        if extent == 1:
            return body_fn(self.t.const(0, "int32"))
        self.fresh += 1
        v = self.t.Var(f"{name}{self.fresh}", "int32")
        return self.t.For(v, 0, extent, self.t.ForKind.SERIAL, body_fn(v))

    def addr(self, buf: Any, idx: list[Any]) -> Any:
        return self.t.address_of(self.t.BufferLoad(buf, idx))

    def local_addr(self, row: Any, flags: Any) -> Any:
        return self.t.Cast("uint32", row) | flags

    def origin(self, t: int) -> list[Any]:
        """global coordinates of tensor ``t``'s tile origin (loops down to its placement)."""
        g = self.geo
        hi = g.place[t] + 1
        return [sum((g.dim_sum(d, -1, hi) * c for d, c in ax), self.t.const(0, "int32"))
                for ax in g.axes[t]]

    # moves of a whole tile ------------------------------------------------------------
    def phys(self, t: int, local: list[Any], org: list[Any]) -> list[Any]:
        """local axis coordinates -> the ones the scratchpad layout uses (the sliding axis
        modulo its window, see :meth:`_Geometry._slide`)."""
        g = self.geo
        if t != 0 or g.slide is None:
            return local
        a = g.slide[0]
        out = list(local)
        out[a] = self.t.floormod(org[a] + local[a], g.ext[0][a])
        return out

    def tile_moves(self, t: int, make) -> Any:
        """loops over tensor ``t``'s tile: leading axes, chunks of <= DIM rows along the
        second-to-last axis, blocks of ``width`` columns; ``make(dram_idx, row, cols, rows)``
        builds one move.  A sliding activation window moves in only its new rows after the
        first iteration of its placement loop."""
        g = self.geo
        ext, w = g.ext[t], g.widths[t]
        org = self.origin(t)
        nlead = len(ext) - 2
        rows_ext = ext[-2]
        nchunk = -(-rows_ext // DIM)
        slide = g.slide if t == 0 else None

        def build(lead: list[Any]) -> Any:
            a = len(lead)
            if a < nlead and slide is not None and slide[0] == a:
                first = g.nest[g.place[0]].var == 0
                lo = self.t.Select(first, 0, ext[a] - slide[1])
                n = self.t.Select(first, ext[a], slide[1])
                self.fresh += 1
                v = self.t.Var(f"h{self.fresh}", "int32")
                return self.t.For(v, 0, n, self.t.ForKind.SERIAL, build(lead + [lo + v]))
            if a < nlead:
                return self.loop(ext[a], "i", lambda v: build(lead + [v]))

            if slide is not None and slide[0] == nlead:     # sliding along W: new rows only
                first = g.nest[g.place[0]].var == 0
                lo = self.t.Select(first, 0, rows_ext - slide[1])
                total = self.t.Select(first, rows_ext, slide[1])
                nch = self.t.Select(first, nchunk, -(-slide[1] // DIM))
            else:
                lo, total, nch = 0, rows_ext, nchunk

            def chunk(ch: Any) -> Any:
                def block(cb: Any) -> Any:
                    local = lead + [lo + ch * DIM, cb * w]
                    if isinstance(total, int) and total <= DIM:
                        rows = total
                    elif isinstance(total, int) and total % DIM == 0:
                        rows = DIM
                    else:
                        rows = self.t.min(DIM, total - ch * DIM)
                    idx = [o + x for o, x in zip(org, local, strict=True)]
                    if slide is None or slide[0] != nlead:
                        return make(idx, g.row_addr(t, self.phys(t, local, org)), w, rows)
                    # the rows may wrap around the window: split the move there
                    ph = self.phys(t, local, org)
                    first_rows = self.t.min(rows, rows_ext - ph[nlead])
                    one = make(idx, g.row_addr(t, ph), w, first_rows)
                    idx2 = list(idx)
                    idx2[nlead] = idx[nlead] + first_rows
                    ph2 = list(ph)
                    ph2[nlead] = self.t.const(0, "int32")
                    two = make(idx2, g.row_addr(t, ph2), w, rows - first_rows)
                    return self.t.IfThenElse(first_rows < rows, self.seq([one, two]), one)
                return self.loop(ext[-1] // w, "cb", block)
            if isinstance(nch, int):
                return self.loop(nch, "ch", chunk)
            self.fresh += 1
            v = self.t.Var(f"ch{self.fresh}", "int32")
            return self.t.For(v, 0, nch, self.t.ForKind.SERIAL, chunk(v))
        return build([])

    def mvin_spad(self, t: int) -> Any:
        buf = self.abuf if t == 0 else self.bbuf
        fn = "gemmini_extended_mvin" if t == 0 else "gemmini_extended_mvin2"
        return self.tile_moves(t, lambda idx, row, cols, rows: self.call(
            fn, self.addr(buf, idx), self.local_addr(row, self.u32(0)), cols, rows))

    def reduce_first(self, lo: int, hi: int) -> Any:
        """all reduction loops at nest positions (lo, hi) are at iteration 0 (None: none)."""
        g = self.geo
        conds = [lp.var == 0 for lp in g.nest[lo + 1:max(hi, 0)]
                 if lp.dim in _REDUCE[g.spec.kind] and lp.factor > 1 and not lp.spatial]
        if not conds:
            return None
        c = conds[0]
        for x in conds[1:]:
            c = self.t.And(c, x)
        return c

    def acc_in(self) -> Any:
        first = self.reduce_first(-1, self.geo.place[2])
        if first is None:
            return None
        body = self.tile_moves(2, lambda idx, row, cols, rows: self.call(
            "gemmini_extended_mvin3", self.addr(self.zbuf, idx),
            self.local_addr(row, self.u32(ACC_BIT)), cols, rows))
        return self.t.IfThenElse(self.t.Not(first), body, None)

    def acc_out(self) -> Any:
        return self.tile_moves(2, lambda idx, row, cols, rows: self.call(
            "gemmini_extended_mvout", self.addr(self.zbuf, idx),
            self.local_addr(row, self.u32(ACC_BIT | FULL_BIT)), cols, rows))

    # the compute tile -------------------------------------------------------------------
    def compute_tile(self, gdim: dict[str, Any] | None = None) -> Any:
        """preload + compute calls of one compute tile.  Its position is either the loop
        variables outside it (``gdim`` None, the rewrite) or ``gdim``: the tile's global
        coordinate per dim (the TensorIntrin, which decodes them from buffer offsets)."""
        g = self.geo
        t = self.t
        tp = g.tile_pos
        reg = {lp.dim: lp.factor for lp in g.nest[tp:] if not lp.spatial}
        row_dim = "P"
        a_row_coef = dict(g.axes[0][-2])[row_dim]
        cs = DIM if a_row_coef == 1 else 1
        prow = reg.get(row_dim, 1)
        nchunk = -(-prow // cs)
        others = [d for d in ("N", "Q") if reg.get(d, 1) > 1]
        if gdim is None:
            first_red = self.reduce_first(-1, tp)

            def outer(tn: int, d: str) -> Any:
                return g.dim_sum(d, g.place[tn], tp)
            a_org = self.origin(0)
        else:
            red = [gdim[d] == 0 for d in _REDUCE[g.spec.kind]
                   if g.spec.sizes[d] > 1]
            first_red = None
            for x in red:
                first_red = x if first_red is None else t.And(first_red, x)

            def outer(tn: int, d: str) -> Any:
                return t.floormod(gdim[d], g.dim_extent(tn, d))
            a_org = [sum(((gdim[d] - outer(0, d)) * c for d, c in ax), t.const(0, "int32"))
                     for ax in g.axes[0]]
        acc_flag = (self.u32(0) if first_red is None
                    else t.Select(first_red, self.u32(0), self.u32(ACCUMULATE_BIT)))

        def local(tn: int, inner: dict[str, Any]) -> list[Any]:
            out = []
            for ax in g.axes[tn]:
                e: Any = t.const(0, "int32")
                for d, c in ax:
                    e = e + (outer(tn, d) + inner.get(d, 0)) * c
                out.append(e)
            return out

        def body(inner: dict[str, Any], firsts: list[Any]) -> Any:
            rows = prow if nchunk == 1 else t.min(cs, prow - inner[row_dim])
            a_row = g.row_addr(0, self.phys(0, local(0, inner), a_org))
            b_row = g.row_addr(1, local(1, inner))
            c_row = g.row_addr(2, local(2, inner))
            c_addr = self.local_addr(c_row, self.u32(ACC_BIT) | acc_flag)
            kc, mc = g.kc, g.mc
            wa = len(g.axes[0]) - 2
            wraps = g.slide is not None and g.slide[0] == wa and cs > 1
            full_rows = rows
            if wraps:   # the activation rows wrap around a W-sliding window: split there
                ph = self.phys(0, local(0, inner), a_org)
                rows = t.min(full_rows, g.ext[0][wa] - ph[wa])
            pre_w = self.seq([
                self.call("gemmini_extended_preload", self.local_addr(b_row, self.u32(0)),
                          c_addr, mc, kc, mc, rows),
                self.call("gemmini_extended_compute_preloaded", self.local_addr(
                    a_row, self.u32(0)), self.u32(GARBAGE), kc, rows, DIM, DIM)])
            keep_w = self.seq([
                self.call("gemmini_extended_preload", self.u32(GARBAGE), c_addr, mc, kc, mc,
                          rows),
                self.call("gemmini_extended_compute_accumulated", self.local_addr(
                    a_row, self.u32(0)), self.u32(GARBAGE), kc, rows, DIM, DIM)])
            if not firsts:
                out = pre_w
            else:
                c = firsts[0]
                for x in firsts[1:]:
                    c = t.And(c, x)
                out = t.IfThenElse(c, pre_w, keep_w)
            if not wraps:
                return out
            first_rows = rows
            rows = full_rows
            ph2 = list(ph)
            ph2[wa] = t.const(0, "int32")
            a2 = g.row_addr(0, ph2)
            c2 = self.local_addr(c_row + first_rows, self.u32(ACC_BIT) | acc_flag)
            rest = rows - first_rows
            more = self.seq([
                self.call("gemmini_extended_preload", self.u32(GARBAGE), c2, mc, kc, mc, rest),
                self.call("gemmini_extended_compute_accumulated", self.local_addr(
                    a2, self.u32(0)), self.u32(GARBAGE), kc, rest, DIM, DIM)])
            return t.IfThenElse(first_rows < rows, self.seq([out, more]), out)

        def nest_others(i: int, inner: dict[str, Any], firsts: list[Any]) -> Any:
            if i < len(others):
                d = others[i]
                return self.loop(reg[d], d.lower(), lambda v: nest_others(
                    i + 1, {**inner, d: v}, firsts + [v == 0]))
            return self.loop(nchunk, "pc", lambda v: body(
                {**inner, row_dim: v * cs}, firsts + ([v == 0] if nchunk > 1 else [])))
        return nest_others(0, {}, [])

    # the rewrite ------------------------------------------------------------------------
    def config(self) -> list[Any]:
        z_row = self.zbuf.shape[-1] * 4
        a_row = self.abuf.shape[-1]
        b_row = self.bbuf.shape[-1]
        f1 = self.t.const(1.0, "float32")
        return [self.call("gemmini_config_ex", 1, 0, 0),
                self.call("gemmini_extended3_config_ld", a_row, f1, 0, 0),
                self.call("gemmini_extended3_config_ld", b_row, f1, 0, 1),
                self.call("gemmini_extended3_config_ld", z_row, f1, 0, 2),
                self.call("gemmini_config_st", z_row)]

    def rewrite(self, stmt: Any) -> Any:
        t = self.t
        from tvm import s_tir

        g = self.geo
        if isinstance(stmt, t.SeqStmt):
            return self.seq([self.rewrite(s) for s in stmt.seq])
        if isinstance(stmt, s_tir.SBlockRealize):
            blk = stmt.block
            if blk.name_hint in self.drop:
                return t.Evaluate(0)
            if blk.name_hint == "root":
                nb = s_tir.SBlock(blk.iter_vars, blk.reads, blk.writes, blk.name_hint,
                                  self.rewrite(blk.body), blk.init,
                                  [b for b in blk.alloc_buffers
                                   if b.scope() not in ("global.spad", "global.acc")],
                                  blk.match_buffers, blk.annotations)
                return s_tir.SBlockRealize(stmt.iter_values, stmt.predicate, nb)
            return stmt
        if isinstance(stmt, t.For):
            lv = stmt.loop_var
            pos = next((i for i, lp in enumerate(g.nest) if lp.var.same_as(lv)), None)
            if pos is None:
                return t.For(lv, stmt.min, stmt.extent, stmt.kind, self.rewrite(stmt.body),
                             stmt.thread_binding, stmt.annotations)
            if pos == g.tile_pos:
                return self.compute_tile()
            body = self.rewrite(stmt.body)
            pre, post = [], []
            for tn in (0, 1):
                if g.place[tn] == pos:
                    pre.append(self.mvin_spad(tn))
            if g.place[2] == pos:
                pre.append(self.acc_in())
                post.append(self.acc_out())
            loop = t.For(lv, stmt.min, stmt.extent, stmt.kind,
                         self.seq(pre + [body] + post), None, {})
            if pos == 0:
                top = self.config()
                for tn in (0, 1):
                    if g.place[tn] < 0:
                        top.append(self.mvin_spad(tn))
                tail = []
                if g.place[2] < 0:
                    top.append(self.acc_in())
                    tail.append(self.acc_out())
                tail.append(self.call("gemmini_fence"))
                return self.seq(top + [loop] + tail)
            return loop
        return stmt

    def run(self, func: Any) -> Any:
        return func.with_body(self.rewrite(func.body))


# --------------------------------------------------------------------------- driver / build
_DRIVER = RUNTIME / "driver.c.in"


def _compiler() -> str:
    cc = os.environ.get("CC") or "gcc"
    path = shutil.which(cc)
    if path is None:
        raise MapspaceError(f"no C compiler: {cc!r} is not on PATH (set CC or install gcc); "
                            "the Gemmini emitter compiles its kernel with the functional "
                            "Gemmini model", where=_WHERE)
    return path


def _include_dirs() -> list[str]:
    import tvm
    import tvm_ffi

    return [str(RUNTIME), tvm_ffi.libinfo.find_include_path(),
            str(Path(tvm.__file__).parent / "include")]


def gemmini_shapes(spec: OpSpec) -> list[tuple[int, ...]]:
    """Shapes of (activations, weights, output) in the kernel's Gemmini layouts (conv2d:
    NHWC, HWIO ``[S, R, C, M]``, NHWC output; matmul/bmm as in :mod:`targets.tvm_common`)."""
    from targets.tvm_common import input_shapes, output_shape

    if spec.kind == depthwise.KIND:
        return depthwise.shapes(spec)
    if spec.kind == "conv2d":
        s = spec.sizes
        return [(s["N"], spec.H, spec.W, s["C"]), (s["S"], s["R"], s["C"], s["M"]),
                (s["N"], s["Q"], s["P"], s["M"])]
    return [*input_shapes(spec), output_shape(spec)]


def driver_source(kernels: list[tuple[str, list[tuple[int, ...]]]]) -> str:
    """``main.c`` of a program over ``kernels`` (name, Gemmini-layout shapes), in order:
    ``runtime/driver.c.in`` with its kernel table filled in."""
    decls, rows = [], []
    for i, (name, shapes) in enumerate(kernels):
        decls.append(f"int32_t mapspace_kernel_{i}(void *, void *, int32_t, void *);")
        dims = ", ".join(str(len(s)) for s in shapes)
        arr = ", ".join("{" + ", ".join(str(x) for x in s) + "}" for s in shapes)
        rows.append(f'  {{"{name}", mapspace_kernel_{i}, {{{dims}}}, {{{arr}}}}},')
    return (_DRIVER.read_text().replace("@DECLS@", "\n".join(decls))
            .replace("@TABLE@", "\n".join(rows)))


def rename_flags(i: int) -> list[str]:
    """gcc flags giving kernel ``i``'s TVM entry point and context the driver's names."""
    return [f"-D__tvm_ffi_main=mapspace_kernel_{i}",
            f"-D__tvm_ffi__library_ctx=mapspace_ctx_{i}"]


def _build_cmd(cc: str, out: Path) -> list[str]:
    inc = [f"-I{d}" for d in _include_dirs()]
    return [cc, "-O2", "-std=gnu11", "-w", *rename_flags(0), *inc, str(out / "kernel.c"),
            str(out / "main.c"), str(RUNTIME / "gemmini_model.c"), "-o",
            str(out / "gemmini_kernel")]


# --------------------------------------------------------------------------- entry point
def lower(problem: Problem, mapping: MappingBatch, arch: Arch) -> tuple[Any, Any, Any]:
    """``(schedule, lowered IRModule, geometry)`` of ``mapping`` (no C compiled)."""
    tvm = import_tvm()
    spec = op_spec(problem)
    nest = _loops(problem, spec, arch, mapping)
    sch, info = _schedule(spec, nest)
    low = info["low"]
    mod = tvm.IRModule({"main": low.run(sch.mod["main"])})
    return sch, mod, info["geo"]


def emit(problem: Problem, mapping: MappingBatch, arch: Arch, *, dtype: str = "int8",
         out_dir: str | Path | None = None, run: bool = False, seed: int = 0) -> EmitResult:
    """Emit ``problem`` under ``mapping`` as C for Gemmini; with ``run``, build it with the
    functional Gemmini model, run it on seeded random int8 operands and compare bit-exactly
    with numpy.  Writes ``trace.py``, ``kernel.c``, ``main.c``, ``Makefile`` (and, after a
    run, ``a.bin``/``b.bin``/``z.bin``/``counters.json``) into ``out_dir``."""
    if dtype != "int8":
        raise MapspaceError(f"gemmini emits int8 only (int32 accumulation), not {dtype!r}",
                            where=_WHERE)
    if run and out_dir is None:  # build and run in a folder removed afterwards
        import tempfile
        from dataclasses import replace

        with tempfile.TemporaryDirectory(prefix="gemmini_emit_") as d:
            return replace(emit(problem, mapping, arch, dtype=dtype, out_dir=d, run=True,
                                seed=seed), files=())
    spec = op_spec(problem)
    cc = _compiler() if run else None
    sch, mod, geo = lower(problem, mapping, arch)
    tvm = import_tvm()
    lib = tvm.compile(mod, target="c")
    source = lib.mod.inspect_source()
    trace = str(sch.trace)
    files: list[Path] = []
    out = Path(out_dir) if out_dir is not None else None
    shapes = gemmini_shapes(spec)
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        (out / "trace.py").write_text(f"# schedule trace of {problem.name} on gemmini\n"
                                      + trace + "\n")
        (out / "kernel.c").write_text(source)
        (out / "main.c").write_text(driver_source([(problem.name, shapes)]))
        cmd = _build_cmd("$(CC)", out)
        rel = [c.replace(str(out) + "/", "") for c in cmd]
        (out / "Makefile").write_text(
            "CC ?= gcc\n\ngemmini_kernel: kernel.c main.c\n\t" + " ".join(rel) + "\n\n"
            "run: gemmini_kernel\n\t./gemmini_kernel 0 .\n")
        files = [out / n for n in ("trace.py", "kernel.c", "main.c", "Makefile")]
    if not run:
        return EmitResult("gemmini", problem.name, spec.kind, dtype, tuple(files), trace,
                          source)
    assert out is not None and cc is not None
    a, b = random_inputs(spec, "int8", seed)
    ref = reference(spec, a, b)
    ga, gb = _to_gemmini_layout(spec, a, b)
    ga.tofile(out / "a.bin")
    gb.tofile(out / "b.bin")
    proc = subprocess.run(_build_cmd(cc, out), capture_output=True, text=True)
    if proc.returncode != 0:
        raise MapspaceError(f"compiling the Gemmini kernel failed:\n{proc.stderr[-4000:]}",
                            where=_WHERE)
    t0 = time.perf_counter()
    proc = subprocess.run([str(out / "gemmini_kernel"), "0", str(out)], capture_output=True,
                          text=True)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise MapspaceError(f"the Gemmini kernel failed (exit {proc.returncode}):\n"
                            f"{proc.stderr[-4000:]}", where=_WHERE)
    counters = json.loads((out / "counters.json").read_text())
    lines = [json.loads(x) for x in proc.stdout.splitlines() if "kernel_seconds" in x]
    z = np.fromfile(out / "z.bin", dtype=np.int32).reshape(shapes[2])
    z = _from_gemmini_layout(spec, z)
    err = float(np.abs(z.astype(np.int64) - ref.astype(np.int64)).max())
    files += [out / n for n in ("a.bin", "b.bin", "z.bin", "counters.json", "gemmini_kernel")]
    del wall
    return EmitResult("gemmini", problem.name, spec.kind, dtype, tuple(files), trace, source,
                      correct=bool(err == 0), max_abs_error=err,
                      seconds=lines[0]["kernel_seconds"] if lines else None,
                      counters=counters)


def predicted_traffic(problem: Problem, arch: Arch, mapping: MappingBatch) -> dict[str, int]:
    """DRAM <-> Scratchpad/Accumulator traffic of ``mapping`` by the analytical model, in
    words (elements): DRAM reads of Inputs and Weights (-> mvin), DRAM reads of Outputs
    (partial sums back into the accumulator -> mvin3) and DRAM updates of Outputs (mvout)."""
    from cost_models.nest import analyze

    dm = analyze(problem, arch, mapping)
    ti = {n: i for i, n in enumerate(problem.tensor_names)}
    return {"inputs": int(dm.reads[0, 0, ti["Inputs"]]),
            "weights": int(dm.reads[0, 0, ti["Weights"]]),
            "output_reads": int(dm.reads[0, 0, ti["Outputs"]]),
            "output_updates": int(dm.updates[0, 0, ti["Outputs"]])}
