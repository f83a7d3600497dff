"""Turn a mapping into a TVM schedule for the host CPU, build it, check it, time it.

:func:`apply_mapping` is the core: given a block and which loop carries which of our dims,
it

1. splits every dim's loop into one loop per (level, temporal|spatial) factor > 1, outermost
   level first (Timeloop's loop nest: level ``l`` temporal loops, then its fan-out);
2. reorders them: per level the mapping's temporal order (``order`` is innermost first),
   then that level's spatial loops; the vector-lane loop of the contiguous output dim
   goes innermost;
3. hoists the core fan-out loops (spatial factors below a level whose fan-out is to the
   cores) over *output* dims to the outermost position, fuses and ``parallel``-izes them
   (always legal for these perfectly nested ops; a spatial factor over a reduction dim
   stays a serial loop);
4. adds a write cache (``cache_write`` into ``"local"``) for the output tile held by the
   innermost level below DRAM that keeps ``Outputs`` (``Registers`` on the cpu target),
   written back after the reduction loops that directly enclose that tile (so the
   accumulators stay resident across them), with ``decompose_reduction`` initialising it;
5. vectorizes the innermost loop when it runs over the output's contiguous dim (also in
   the init and write-back blocks) and unrolls the register tile's output loops.

:func:`schedule` applies it to :func:`targets.tvm_common.prim_func`; :func:`emit` writes the trace
(replayable Python), the scheduled TIR and an exported ``.so``, and with ``run=True``
builds for llvm (``mcpu`` from the host's flags), runs on seeded inputs, compares with
numpy and times the kernel.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from mapspace.arch import Arch
from mapspace.errors import MapspaceError
from mapspace.mapping import MappingBatch
from mapspace.problem import Problem
from targets import cpu  # cpu.num_cores/cpu.llvm_mcpu looked up per call (tests patch them)
from targets.tvm_common import (
    DTYPES,
    EmitResult,
    OpSpec,
    import_tvm,
    op_spec,
    output_shape,
    prim_func,
    random_inputs,
    reference,
)

# tvm is imported inside the functions that use it (import_tvm(), `from tvm import ...`):
# it is heavy (~3 s) and optional, and `import targets` must work without it

#: the output's innermost (contiguous) dim per op kind
CONTIGUOUS = {"matmul": "M", "bmm": "M", "conv2d": "P", "depthwise_conv2d": "P"}
#: unroll the register tile's output loops when their product is at most this
MAX_UNROLL = 256


def check_mapping(spec: OpSpec, mapping: MappingBatch, arch: Arch) -> None:
    """Raise :class:`MapspaceError` naming what does not fit ``spec`` / ``arch``."""
    where = "emit: mapping"
    if len(mapping) != 1:
        raise MapspaceError(f"expected one mapping, found a batch of {len(mapping)}", where=where)
    if mapping.num_levels != arch.num_levels:
        raise MapspaceError(f"has {mapping.num_levels} levels but architecture {arch.name!r} "
                            f"has {arch.num_levels} ({', '.join(arch.level_names)})",
                            where=where)
    dims = list(spec.sizes)
    if mapping.num_dims != len(dims):
        raise MapspaceError(f"has {mapping.num_dims} dims but the problem has {len(dims)} "
                            f"({', '.join(dims)})", where=where)
    f = mapping.factors[0]
    if (f < 1).any():
        raise MapspaceError("has a factor below 1", where=where)
    prod = f.prod(axis=0)
    for i, d in enumerate(dims):
        if int(prod[i]) != spec.sizes[d]:
            raise MapspaceError(f"factors of dim {d} multiply to {int(prod[i])}, but the "
                                f"problem's {d} is {spec.sizes[d]}", where=where, key=d)
    order = mapping.order[0]
    for lv in range(mapping.num_levels):
        if sorted(order[lv].tolist()) != list(range(len(dims))):
            raise MapspaceError(f"loop order of level {arch.level_names[lv]!r} is not a "
                                f"permutation of the {len(dims)} dims", where=where)


def _output_index(n_tensors: int) -> int:
    # Problems list Weights, Inputs, Outputs (the read-write tensor is last)
    return n_tensors - 1


def _core_levels(arch: Arch) -> set[int]:
    """Levels whose fan-out goes to cores (not the last one, which is the vector lanes)."""
    return {lv for lv in range(arch.num_levels - 1)
            if arch.fanout(lv)[0] * arch.fanout(lv)[1] > 1}


def apply_mapping(sch: Any, block: Any, loops_by_dim: dict[str, Any], spec: OpSpec,
                  mapping: MappingBatch, arch: Arch, *, vectorize: bool = True,
                  parallel: bool = True, pack: str | None = "L2",
                  vector_dim: str | None = None) -> None:
    """Schedule ``block`` (in ``sch``) as ``mapping`` says; see the module doc.

    ``vector_dim``: the output dim whose lane loop goes innermost and is vectorised
    (default :data:`CONTIGUOUS` of the op; ``"M"`` for a conv whose weights have the output
    channels innermost, the TVM plug-in's layout, with its mapping searched under
    ``cpu_constraints(..., vector_dim="M")``).

    ``loops_by_dim`` maps our dim names to the loops carrying them (dims of size 1 may be
    absent); every loop of the block must be in it.  Raises :class:`MapspaceError` when
    the mapping does not fit ``spec`` or ``arch``.
    """
    check_mapping(spec, mapping, arch)
    dims = list(spec.sizes)
    for d in loops_by_dim:
        if d not in spec.sizes:
            raise MapspaceError(f"loop for unknown dim {d!r} (dims are {', '.join(dims)})",
                                where="emit: loops_by_dim", key=d)
    for d in dims:
        if d not in loops_by_dim and spec.sizes[d] != 1:
            raise MapspaceError(f"no loop given for dim {d} of size {spec.sizes[d]}",
                                where="emit: loops_by_dim", key=d)
    L = mapping.num_levels
    T, S, O = mapping.temporal[0], mapping.spatial[0], mapping.order[0]
    reduce = set(spec.reduce_dims)
    vdim = vector_dim or CONTIGUOUS[spec.kind]
    core_levels = _core_levels(arch)

    # 1. split: entries (level, 0=temporal|1=spatial, dim) per factor > 1
    loops: dict[tuple[int, int, str], Any] = {}
    units: dict[tuple[int, int, str], Any] = {}   # extent-1 loops: placed next to innermost
    for d, loop in loops_by_dim.items():
        i = dims.index(d)
        slots = [(lv, k, int((T, S)[k][lv, i])) for lv in range(L) for k in (0, 1)]
        slots = [s for s in slots if s[2] > 1]
        if not slots:
            units[(L, 0, d)] = loop
            continue
        parts = sch.split(loop, factors=[s[2] for s in slots]) if len(slots) > 1 else [loop]
        for (lv, k, _), rv in zip(slots, parts, strict=True):
            loops[(lv, k, d)] = rv

    # 2. order
    def rank(key: tuple[int, int, str]) -> tuple:
        lv, k, d = key
        if k == 0:
            pos = list(O[lv]).index(dims.index(d))
            return (lv, 0, -pos)
        return (lv, 1, d == vdim, spec.iters.index(d))

    keys = sorted(loops, key=rank)
    # 3. hoist the core fan-out loops over output dims
    par = [k for k in keys if k[1] == 1 and k[0] in core_levels and k[2] not in reduce]
    if parallel and par:
        keys = par + [k for k in keys if k not in par]
    if units:
        cut = max(len(keys) - 1, len(par) if parallel else 0)
        keys = keys[:cut] + list(units) + keys[cut:]
        loops.update(units)
    if len(keys) > 1:
        sch.reorder(*[loops[k] for k in keys])
    order = list(keys)
    rvs = [loops[k] for k in keys]
    if parallel and len(par) > 1:
        fused = sch.fuse(*rvs[:len(par)])
        rvs = [fused] + rvs[len(par):]
        order = [par[0]] + order[len(par):]
    n_par = 1 if parallel and par else 0

    # 4. write cache for the innermost non-DRAM level keeping Outputs
    out_t = _output_index(mapping.num_tensors)
    keeps = [lv for lv in range(1, L) if mapping.keep[0, lv, out_t]]
    anchor = None
    wb = None
    if keeps:
        lo = keeps[-1]
        outer = list(range(n_par)) + [j for j in range(n_par, len(order)) if order[j][0] < lo]
        # extend over directly enclosing reduction loops: the tile stays resident
        while len(outer) > n_par and order[outer[-1]][2] in reduce:
            outer.pop()
        # a reduction loop still outside: partial sums leave the tile; no register cache
        spill = any(order[j][2] in reduce and _extent(sch, rvs[j]) > 1 for j in outer)
        if outer and not spill and outer[-1] + 1 < len(rvs):
            anchor = outer[-1]
    if anchor is not None:
        wb = sch.cache_write(block, 0, "local")
        sch.reverse_compute_at(wb, rvs[anchor], preserve_unit_loops=True)
        _lanes_last(sch, block, spec, vdim)
    # 4b. pack the weights' tile of level `pack` into a contiguous buffer
    if pack and pack in arch.level_names:
        _pack_weights(sch, block, spec, order, rvs, n_par, arch.level_index(pack), vectorize)

    # 5. parallel, vectorize, unroll
    if parallel and n_par:
        sch.parallel(rvs[0])
    inner = order[-1]
    if vectorize and inner[2] == vdim and len(order) > n_par:
        sch.vectorize(rvs[-1])
        if wb is not None:
            bl = sch.get_loops(wb)
            if bl and _extent(sch, bl[-1]) > 1:
                sch.vectorize(bl[-1])
    if wb is not None and vdim != CONTIGUOUS[spec.kind]:
        # the write-back reads the channels-last accumulators across: unrolled, every
        # index is a constant and LLVM keeps the whole tile in registers
        own = sch.get_loops(wb)[anchor + 1:]
        rest = own[:-1] if vectorize and own and _extent(sch, own[-1]) > 1 else own
        ext = 1
        for lp in rest:
            ext *= _extent(sch, lp)
        if rest and ext <= MAX_UNROLL:
            for lp in rest:
                sch.unroll(lp)
    if True:
        # output loops of the register tile after the last reduction loop
        tail: list[int] = []
        stop = anchor if anchor is not None else n_par - 1
        for j in range(len(order) - 1, stop, -1):
            if order[j][2] in reduce and _extent(sch, rvs[j]) > 1:
                break
            tail.append(j)
        tail = [j for j in tail if not (vectorize and j == len(order) - 1 and inner[2] == vdim)]
        ext = 1
        for j in tail:
            ext *= _extent(sch, rvs[j])
        if tail and ext <= MAX_UNROLL:
            for j in sorted(tail):
                sch.unroll(rvs[j])
    # 6. initialise the accumulators just inside the anchor (or before the whole nest)
    if anchor is not None:
        sch.decompose_reduction(block, rvs[anchor + 1])
    elif n_par < len(rvs):
        sch.decompose_reduction(block, rvs[n_par])


#: the output's dims, outermost first (the layout of targets.tvm_common.prim_func and of the
#: PrimFuncs the TVM plug-in recognises)
OUTPUT_DIMS = {"matmul": ("P", "M"), "bmm": ("N", "P", "M"), "conv2d": ("N", "M", "Q", "P"),
               "depthwise_conv2d": ("N", "C", "Q", "P")}


def _lanes_last(sch: Any, block: Any, spec: OpSpec, vdim: str) -> None:
    """Lay the register accumulators out with the vector dim innermost (an NCHW conv
    vectorised over ``M``: ``[n, q, p, m]``), so each vector of sums is contiguous and
    LLVM keeps the tile in registers; the write-back still stores the output's layout."""
    dims = OUTPUT_DIMS.get(spec.kind)
    if dims is None or vdim not in dims or dims[-1] == vdim:
        return
    k = dims.index(vdim)
    n = len(dims)
    sch.transform_layout(block, ("write", 0),
                         lambda *ix: tuple(ix[j] for j in range(n) if j != k) + (ix[k],))


#: dims that index the weights operand (read buffer 1 of the block)
WEIGHT_DIMS = {"matmul": ("C", "M"), "bmm": ("N", "C", "M"), "conv2d": ("M", "C", "S", "R"),
               "depthwise_conv2d": ("C", "S", "R")}


def _pack_weights(sch: Any, block: Any, spec: OpSpec, order: list, rvs: list, n_par: int,
                  level: int, vectorize: bool) -> None:
    """``cache_read`` of the weights' tile of ``level`` (copied where that tile changes:
    just outside the level's loops, hoisted over directly enclosing loops of dims that do
    not index the weights), so the inner loops read it contiguously (BLAS-style packing)."""
    rel = set(WEIGHT_DIMS[spec.kind])
    outer = list(range(n_par)) + [j for j in range(n_par, len(order)) if order[j][0] < level]
    while outer and order[outer[-1]][2] not in rel and outer[-1] >= n_par:
        outer.pop()
    if not outer or outer[-1] + 1 >= len(rvs):
        return
    cb = sch.cache_read(block, 1, "global")
    sch.compute_at(cb, rvs[outer[-1]], preserve_unit_loops=True)
    if vectorize:
        bl = sch.get_loops(cb)
        if bl and _extent(sch, bl[-1]) > 1:
            sch.vectorize(bl[-1])


def _extent(sch: Any, loop: Any) -> int:
    return int(sch.get(loop).extent)


def schedule(spec: OpSpec, mapping: MappingBatch, arch: Arch, dtype: str = "float32", *,
             vectorize: bool = True, parallel: bool = True,
             vector_dim: str | None = None) -> Any:
    """An ``s_tir.Schedule`` of ``prim_func(spec, dtype)`` with ``mapping`` applied
    (``vector_dim`` as for :func:`apply_mapping`)."""
    tvm = import_tvm()
    from tvm import s_tir

    check_mapping(spec, mapping, arch)
    func = prim_func(spec, dtype)
    sch = s_tir.Schedule(tvm.IRModule({"main": func}))
    block = sch.get_sblock("Z")
    loops = sch.get_loops(block)
    apply_mapping(sch, block, dict(zip(spec.iters, loops, strict=True)), spec, mapping, arch,
                  vectorize=vectorize, parallel=parallel, vector_dim=vector_dim)
    return sch


def host_target(num_cores: int | None = None) -> Any:
    """The llvm Target for the host (``mcpu`` from /proc/cpuinfo flags where known)."""
    tvm = import_tvm()
    cfg: dict[str, Any] = {"kind": "llvm", "num-cores": num_cores or cpu.num_cores()}
    mcpu = cpu.llvm_mcpu()
    if mcpu:
        cfg["mcpu"] = mcpu
    try:
        return tvm.target.Target(cfg)
    except Exception:  # noqa: BLE001 - an mcpu this LLVM does not know: plain llvm
        return tvm.target.Target({"kind": "llvm", "num-cores": cfg["num-cores"]})


def trace_script(sch: Any) -> str:
    """``sch.trace`` as a Python module: ``apply(sch)`` replays it on a fresh schedule."""
    lines = list(sch.trace.as_python())
    body = "\n".join("    " + ln for ln in lines) or "    pass"
    return ('"""Schedule trace written by mapspace (targets/cpu/emit.py).  Replay with\n'
            "apply(tvm.s_tir.Schedule(mod)) on the unscheduled module.\"\"\"\n\n"
            "import tvm  # noqa: F401\nfrom tvm import tirx as T  # noqa: F401\n\n\n"
            f"def apply(sch):\n{body}\n")


def build(sch: Any, target: Any = None) -> Any:
    tvm = import_tvm()
    return tvm.compile(sch.mod, target=target or host_target())


def time_kernel(lib: Any, args: list[Any], *, repeat: int = 5,
                min_repeat_s: float = 0.05) -> float:
    """Median seconds of one call over ``repeat`` measurements (each averages enough calls
    to last ``min_repeat_s``)."""
    f = lib["main"]
    f(*args)
    t0 = time.perf_counter()
    f(*args)
    once = max(time.perf_counter() - t0, 1e-7)
    number = max(1, int(min_repeat_s / once))
    times = []
    for _ in range(max(1, repeat)):
        t0 = time.perf_counter()
        for _ in range(number):
            f(*args)
        times.append((time.perf_counter() - t0) / number)
    return float(np.median(times))


def run_kernel(lib: Any, spec: OpSpec, dtype: str, seed: int) -> tuple[np.ndarray, np.ndarray,
                                                                        list[Any]]:
    """Run the built kernel on seeded inputs: ``(result, reference, device args)``."""
    tvm = import_tvm()
    a, b = random_inputs(spec, dtype, seed)
    dev = tvm.cpu(0)
    args = [tvm.runtime.tensor(a, dev), tvm.runtime.tensor(b, dev),
            tvm.runtime.empty(output_shape(spec), DTYPES[dtype][1], dev)]
    lib["main"](*args)
    return args[2].numpy(), reference(spec, a, b), args


def emit(problem: Problem, mapping: MappingBatch, arch: Arch, *, dtype: str = "float32",
         out_dir: str | Path | None = None, run: bool = False, seed: int = 0,
         repeat: int = 5) -> EmitResult:
    """Schedule ``problem`` by ``mapping`` for the host CPU; see the module doc.

    Files in ``out_dir``: ``trace.py``, ``kernel_tir.py`` (scheduled TIR), ``kernel.so``
    (:func:`compiler.emit.emit_op` stages them so they land only when everything succeeded).
    """
    spec = op_spec(problem)
    sch = schedule(spec, mapping, arch, dtype)
    target = host_target()
    lib = build(sch, target)
    trace = trace_script(sch)
    source = sch.mod.script()
    files: list[Path] = []
    if out_dir is not None:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        (out / "trace.py").write_text(trace)
        (out / "kernel_tir.py").write_text(source)
        lib.export_library(str(out / "kernel.so"))
        files = [out / name for name in ("trace.py", "kernel_tir.py", "kernel.so")]
    correct = err = secs = None
    if run:
        got, want, args = run_kernel(lib, spec, dtype, seed)
        if dtype == "int8":
            correct = bool(np.array_equal(got, want))
            err = float(np.abs(got.astype(np.int64) - want).max()) if got.size else 0.0
        else:
            err = float(np.abs(got - want).max()) if got.size else 0.0
            correct = bool(np.allclose(got, want, rtol=1e-4, atol=1e-3 * max(
                1.0, float(np.sqrt(max(spec.sizes[d] for d in spec.reduce_dims))))))
        secs = time_kernel(lib, args, repeat=repeat)
    return EmitResult(target="cpu", op=problem.name, kind=spec.kind, dtype=dtype,
                      files=tuple(files), trace=trace, source=source, correct=correct,
                      max_abs_error=err, seconds=secs)
