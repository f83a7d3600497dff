"""The ``s_tir.Schedule`` of a Gemmini emission (every step is in the replayable trace):

* every op axis is split by the loop nest's factors (:func:`targets.gemmini.plan.loop_nest`)
  and the loops are reordered into that nest;
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

:func:`lower` then runs the lowering pass (:mod:`targets.gemmini.lowering`) over it.  The
TE definition (:func:`gemmini_te`) is in Gemmini's layouts: conv2d activations NHWC,
weights ``[S, R, C, M]`` (HWIO), output NHWC, its zero padding a TE pad stage run on the
host inside the kernel.
"""

from __future__ import annotations

import hashlib
import math
from typing import Any

from mapspace.arch import Arch
from mapspace.mapping import MappingBatch
from mapspace.problem import Problem
from targets.gemmini import depthwise
from targets.gemmini.lowering import GemminiLowering
from targets.gemmini.plan import ITERS, REDUCE, Geometry, Loop, loop_nest
from targets.tvm_common import OpSpec, import_tvm, op_spec

# tvm is imported inside the functions that use it (import_tvm(), `from tvm import ...`):
# it is heavy (~3 s) and optional, and `import targets` must work without it


# --------------------------------------------------------------------------- TE
def gemmini_te(spec: OpSpec) -> tuple[Any, Any, Any, Any]:
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


def register_intrin(spec: OpSpec, geo: Geometry, low: GemminiLowering,
                    zshape: tuple[int, ...], bshape: tuple[int, ...]) -> str:
    """Register a TensorIntrin for this emission's compute tile (its loops, in nest order,
    over regions of the spad/acc buffers) whose implementation is Gemmini's preload +
    compute calls; the tile's global position comes from the buffers' element offsets."""
    from tvm import s_tir, tirx
    from tvm.script import from_source

    tile = geo.nest[geo.tile_pos:]
    iters = ITERS[spec.kind]
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
        kind = "reduce" if d in REDUCE[spec.kind] else "spatial"
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
    digest = hashlib.sha1((desc.script() + impl.script()).encode()).hexdigest()[:12]
    name = f"gemmini_tile_{spec.kind}_{digest}"     # same tile, same name (replayable)
    s_tir.TensorIntrin.register(name, desc, impl, override=True)
    return name


# --------------------------------------------------------------------------- schedule
def build_schedule(spec: OpSpec, nest: list[Loop]) -> tuple[Any, dict[str, Any]]:
    """The ``s_tir.Schedule`` of ``nest`` (see the module docstring) and ``{"geo":
    Geometry, "low": GemminiLowering}`` for the lowering pass; fills in the loops' ``rv`` and
    ``var``."""
    tvm = import_tvm()
    from tvm import s_tir, te

    A, B, Z, A_dram = gemmini_te(spec)
    func = te.create_prim_func([A, B, Z])
    sch = s_tir.Schedule(tvm.IRModule({"main": func}))
    blk = sch.get_sblock("Z")
    axis = {sch.get(lp).loop_var.name: lp for lp in sch.get_loops(blk)}
    for d in ITERS[spec.kind]:
        parts = sorted((lp for lp in nest if lp.dim == d), key=lambda lp: (lp.spatial,
                                                                            lp.level))
        rvs = sch.split(axis[d], factors=[lp.factor for lp in parts])
        for lp, rv in zip(parts, rvs, strict=True):
            lp.rv = rv
    sch.reorder(*[lp.rv for lp in nest])
    geo = Geometry(spec, nest)
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
    low = GemminiLowering(geo, names, bufs)
    init = sch.decompose_reduction(blk, nest[0].rv)
    low.drop.add(sch.get(init).name_hint)
    intrin = register_intrin(spec, geo, low, tuple(int(x) for x in Z.shape),
                             tuple(int(x) for x in B.shape))
    sch.tensorize(nest[geo.tile_pos].rv, intrin)
    return sch, {"geo": geo, "low": low}


# --------------------------------------------------------------------------- entry point
def lower(problem: Problem, mapping: MappingBatch, arch: Arch) -> tuple[Any, Any, Any]:
    """``(schedule, lowered IRModule, geometry)`` of ``mapping`` (no C compiled)."""
    tvm = import_tvm()
    spec = op_spec(problem)
    nest = loop_nest(problem, spec, arch, mapping)
    sch, info = build_schedule(spec, nest)
    low = info["low"]
    mod = tvm.IRModule({"main": low.run(sch.mod["main"])})
    return sch, mod, info["geo"]
