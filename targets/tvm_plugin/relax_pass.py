"""Our mapper as a Relax module pass, and a ``relax_pipeline`` that runs it.

Usage (a TVM user's build, one argument changed)::

    from targets.tvm_plugin import mapspace_pipeline
    log = []
    ex = tvm.compile(mod, "llvm", relax_pipeline=mapspace_pipeline("cpu", log=log))
    vm = tvm.relax.VirtualMachine(ex, tvm.cpu())
    # log: one ScheduledFunc per PrimFunc our pass scheduled

The pipeline is TVM's CPU pipeline with one pass inserted::

    library dispatch -> conv weights OIHW -> HWIO (conv_weights_hwio_pass)
    -> FastMathTransform (erf/exp/tanh as TVM's polynomial approximations)
    -> LegalizeOps, AnnotateTIROpPattern, FoldConstant, FuseOps, FuseTIR
    -> MapspaceSchedule (ours) -> dataflow lowering -> finalization

``MapspaceSchedule`` visits every ``PrimFunc`` not already marked ``tirx.is_scheduled``:

* a function whose single MAC block is a matmul, batched matmul or NCHW conv2d
  (:func:`targets.tvm_plugin.recognition.recognize`) gets a mapping from our search over the
  host CPU's mapspace priced by our analytical model (cached by shape), applied to that
  block by :func:`targets.cpu.emit.apply_mapping` (tiling per cache level, loop order,
  parallel cores, register accumulators, vectorized lanes -- over the output channels of a
  conv whose weights are HWIO, with the accumulators laid out channels-last and the whole
  reduction kept around them); the blocks fused after it
  (bias add, ReLU, residual add, GELU, ...) are inlined forward into the last one, which is
  inlined into the accumulators' write-back when ``apply_mapping`` made one (else kept as
  its own nest, run in parallel over vectors), and a conv's pad block runs in parallel over
  vectors.  The function is marked ``tirx.is_scheduled``;
* every other function (softmax, layer norm, elementwise and broadcast chains, transposes,
  reshapes, pooling, reductions) gets the first rule of
  :func:`targets.tvm_plugin.generic.schedule_generic` that fits (``generic=False`` turns
  this off) and is marked ``tirx.is_scheduled``;
* left to TVM's defaults: functions no generic rule fits (symbolic extents, ...), and any
  function whose search or scheduling raises (kept as it was; a MAC one is logged with the
  error).  Grouped, depthwise and NHWC convolutions, non-square strides, several MAC blocks
  or a prologue computing an operand are not recognised as MACs and go to the generic
  rules.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mapspace.errors import MapspaceError
from targets.cpu.emit import apply_mapping, host_target
from targets.tvm_common import import_tvm
from targets.tvm_plugin.generic import schedule_generic, schedule_spatial, vector_lanes
from targets.tvm_plugin.recognition import MacBlock, loops_by_dim, recognize
from targets.tvm_plugin.search import (
    DEFAULT_BUDGET,
    OBJECTIVES,
    MappingCache,
    cpu_target,
    search_mapping,
)

# tvm is imported inside the functions that use it (import_tvm(), `from tvm import ...`):
# it is heavy (~3 s) and optional, and `import targets` must work without it

TARGETS = ("cpu",)
#: ``ScheduledFunc.kind`` of a function scheduled by a generic rule (``block`` names it)
GENERIC = "generic"
PIPELINE_NAME = "mapspace"


def _check_options(target: str, objective: str) -> None:
    if target not in TARGETS:
        raise MapspaceError(f"target must be one of {', '.join(TARGETS)}, found {target!r}",
                            where="mapspace_pipeline", key="target")
    if objective not in OBJECTIVES:
        raise MapspaceError(f"objective must be one of {', '.join(OBJECTIVES)}, found "
                            f"{objective!r}", where="mapspace_pipeline", key="objective")


@dataclass(frozen=True)
class ScheduledFunc:
    """What the pass did to one recognised function: scheduled (``error`` empty), or left
    to TVM's defaults because the search or scheduling raised (``error`` says what)."""

    func: str
    kind: str
    sizes: dict[str, int]
    block: str
    objective: float
    inlined: tuple[str, ...] = ()
    mapping: Any = field(default=None, repr=False, compare=False)
    error: str = ""

    @property
    def scheduled(self) -> bool:
        return not self.error


def schedule_mac(func: Any, mac: MacBlock, mapping: Any, arch: Any, *, vectorize: bool = True,
                 parallel: bool = True, inline_epilogue: bool = True,
                 lanes: int = 8) -> tuple[Any, tuple]:
    """``func`` with ``mapping`` applied to its MAC block, the epilogue blocks inlined into
    the accumulators' write-back, and any other spatial block (a conv's pad, an epilogue
    that cannot be inlined) run in parallel over ``lanes``-wide vectors."""
    tvm = import_tvm()
    from tvm import s_tir

    sch = s_tir.Schedule(tvm.IRModule({"main": func}))
    block, loops = loops_by_dim(sch, mac)
    apply_mapping(sch, block, loops, mac.spec, mapping, arch, vectorize=vectorize,
                  parallel=parallel, vector_dim=mac.vector_dim)
    for name in mac.other_blocks:
        if name not in mac.epilogue and _is_copy(sch, name):
            try:   # a 1x1 / unpadded conv's "pad" is a plain copy of the input: read it
                sch.compute_inline(sch.get_sblock(name))
            except Exception:  # noqa: BLE001 - not inlinable: keep its own nest
                pass
    inlined: list[str] = []
    if inline_epilogue and mac.epilogue:
        inlined = _fuse_epilogue(sch, mac.epilogue)
    if vectorize or parallel:
        prologue = [n for n in mac.other_blocks if n not in mac.epilogue]
        for name in prologue + [n for n in mac.epilogue if n not in inlined]:
            try:
                rv = sch.get_sblock(name)
            except Exception:  # noqa: BLE001 - removed by an inlining above
                continue
            if _is_spatial(sch, rv):
                _spatial_or_keep(sch, rv, lanes if vectorize else 1, parallel)
    return sch.mod["main"], tuple(inlined)


def _is_copy(sch: Any, name: str) -> bool:
    """Whether block ``name`` stores a plain load of another buffer (no padding select)."""
    from tvm import ir, tirx

    try:
        st = sch.get(sch.get_sblock(name)).body
    except Exception:  # noqa: BLE001
        return False
    return isinstance(st, tirx.BufferStore) and isinstance(st.value, ir.expr.TensorLoad)


def _is_spatial(sch: Any, rv: Any) -> bool:
    return all(int(iv.iter_type) == 0 for iv in sch.get(rv).iter_vars)


def _spatial_or_keep(sch: Any, rv: Any, lanes: int, parallel: bool) -> None:
    """:func:`generic.schedule_spatial` on a block whose loops are all still serial (its
    own nest at the function's root); anything already scheduled is left as it is."""
    loops = sch.get_loops(rv)
    if loops and all(int(sch.get(lp).kind) == 0 for lp in loops):
        schedule_spatial(sch, rv, lanes, parallel=parallel)


def _fuse_epilogue(sch: Any, epilogue: tuple[str, ...]) -> list[str]:
    """Inline the blocks after the MAC block into the accumulators' write-back: every one
    but the last forward into its consumers (``compute_inline``; a diamond such as GELU's
    ``h * (erf(h / sqrt 2) + 1) / 2`` reads ``h`` twice), then the last one from behind
    (``reverse_compute_inline``).  That last step needs the write-back ``apply_mapping``
    makes for a register tile (a reduction block cannot take it): without one the blocks
    left keep their own loop nests, which :func:`schedule_mac` runs in parallel.  Returns
    the blocks inlined."""
    done: list[str] = []
    for name in epilogue[:-1]:
        try:
            sch.compute_inline(sch.get_sblock(name))
        except Exception:  # noqa: BLE001 - an output or not inlinable: keep it
            continue
        done.append(name)
    if len(done) == len(epilogue) - 1:
        try:
            sch.reverse_compute_inline(sch.get_sblock(epilogue[-1]))
            done.append(epilogue[-1])
        except Exception:  # noqa: BLE001 - the MAC block itself produces it: own loop nest
            pass
    return done


def schedule_module(mod: Any, *, target: str = "cpu", strategy: str = "anneal",
                    budget: int = DEFAULT_BUDGET, seed: int = 0, objective: str = "edp",
                    cache: MappingCache | None = None, log: list | None = None,
                    vectorize: bool = True, parallel: bool = True,
                    inline_epilogue: bool = True, generic: bool = True,
                    measure: tuple[str, ...] = ()) -> Any:
    """``mod`` with every recognised MAC function scheduled, and with ``generic`` every
    other one that a rule of :func:`targets.tvm_plugin.generic.schedule_generic` fits
    (see the module doc).  ``measure``: further objectives to search each MAC function's
    mapping under; the function is then scheduled by every candidate, each built and timed
    here on random inputs, and the fastest kept (:func:`_fastest`)."""
    tvm = import_tvm()
    _check_options(target, objective)
    cache = MappingCache() if cache is None else cache
    tgt = tvm.target.Target.current(allow_none=True)
    if tgt is None or tgt.kind.name != "llvm":
        tgt = host_target()
    lanes = vector_lanes(tgt)
    out = mod
    for gv, func in mod.functions.items():
        if not isinstance(func, tvm.tirx.PrimFunc):
            continue
        if func.attrs is not None and "tirx.is_scheduled" in func.attrs:
            continue
        mac = recognize(func, gv.name_hint)
        if mac is None:
            if generic:
                out = _schedule_other(out, gv, func, tgt, log)
            continue
        arch, cons = cpu_target(mac.word_bits, mac.problem, mac.vector_dim)
        key = (target, mac.shape_key(), strategy, budget, seed, objective)
        try:
            mapping, obj = cache.get(key, lambda m=mac, a=arch, c=cons: search_mapping(
                m.problem, a, c, strategy=strategy, budget=budget, seed=seed,
                objective=objective))
            new, inlined = schedule_mac(func, mac, mapping, arch, vectorize=vectorize,
                                        parallel=parallel, inline_epilogue=inline_epilogue,
                                        lanes=lanes)
            if measure:
                cands = [(mapping, obj, new, inlined)]
                for extra in measure:
                    if extra == objective:
                        continue
                    k2 = (target, mac.shape_key(), strategy, budget, seed, extra)
                    m2, o2 = cache.get(k2, lambda m=mac, a=arch, c=cons, e=extra: (
                        search_mapping(m.problem, a, c, strategy=strategy, budget=budget,
                                       seed=seed, objective=e)))
                    n2, i2 = schedule_mac(func, mac, m2, arch, vectorize=vectorize,
                                          parallel=parallel, inline_epilogue=inline_epilogue,
                                          lanes=lanes)
                    cands.append((m2, o2, n2, i2))
                kt = (target, mac.shape_key(), strategy, budget, seed, objective, "measure",
                      tuple(measure))
                best, _ = cache.get(kt, lambda c=cands: (_fastest([x[2] for x in c], tgt),
                                                         0.0))
                mapping, obj, new, inlined = cands[best]
        except Exception as e:  # noqa: BLE001 - never break a user's build: keep TVM's default
            if log is not None:
                log.append(ScheduledFunc(func=gv.name_hint, kind=mac.kind,
                                         sizes=dict(mac.spec.sizes), block=mac.block,
                                         objective=float("nan"),
                                         error=f"{type(e).__name__}: {e}"[:500]))
            continue
        new = new.with_attr("tirx.is_scheduled", True)
        out = _replace(out, gv, new)
        if log is not None:
            log.append(ScheduledFunc(func=gv.name_hint, kind=mac.kind, sizes=dict(mac.spec.sizes),
                                     block=mac.block, objective=obj, inlined=inlined,
                                     mapping=mapping))
    return out


def _fastest(funcs: list[Any], tgt: Any, repeat: int = 5) -> int:
    """Index of the fastest of the scheduled ``funcs`` (same signature), each built for
    ``tgt`` and timed on random inputs: interleaved rounds, the best of each kept."""
    tvm = import_tvm()
    dev = tvm.cpu(0)
    rng = np.random.default_rng(0)
    args = []
    for p in funcs[0].params:
        shape = [int(d) for d in p.ty.shape]
        dt = str(p.ty.dtype)
        arr = rng.standard_normal(shape).astype(dt) if dt.startswith("float") else \
            np.zeros(shape, dt)
        args.append(tvm.runtime.tensor(arr, dev))
    timers = []
    for f in funcs:
        lib = tvm.compile(tvm.IRModule({"main": f.with_attr("global_symbol", "main")}), tgt)
        timers.append(lib.mod.time_evaluator("main", dev, number=2, repeat=1))
        timers[-1](*args)   # warm up
    best = [float("inf")] * len(funcs)
    for _ in range(repeat):
        for i, t in enumerate(timers):
            best[i] = min(best[i], float(t(*args).mean))
    return int(np.argmin(best))


def _schedule_other(mod: Any, gv: Any, func: Any, tgt: Any, log: list | None) -> Any:
    """``mod`` with the non-MAC ``func`` scheduled by the first generic rule that fits
    (unchanged when none does, or when scheduling raises)."""
    try:
        got = schedule_generic(func, tgt)
    except Exception:  # noqa: BLE001 - never break a user's build: keep TVM's default
        got = None
    if got is None:
        return mod
    new, rule = got
    if log is not None:
        log.append(ScheduledFunc(func=gv.name_hint, kind=GENERIC, sizes={}, block=rule,
                                 objective=float("nan")))
    return _replace(mod, gv, new.with_attr("tirx.is_scheduled", True))


def _replace(mod: Any, gv: Any, func: Any) -> Any:
    mod = mod.clone() if hasattr(mod, "clone") else mod
    mod.update_func(gv, func)
    return mod


def mapspace_schedule_pass(target: str = "cpu", **options: Any) -> Any:
    """The ``MapspaceSchedule`` module pass (``options`` as for :func:`schedule_module`)."""
    tvm = import_tvm()

    @tvm.transform.module_pass(opt_level=0, name="MapspaceSchedule")
    def _pass(mod: Any, _ctx: Any) -> Any:
        return schedule_module(mod, target=target, **options)

    return _pass


def mapspace_pipeline(target: str = "cpu", *, strategy: str = "anneal",
                      budget: int = DEFAULT_BUDGET, seed: int = 0, objective: str = "edp",
                      log: list | None = None,
                      cache: MappingCache | None = None, vectorize: bool = True,
                      parallel: bool = True, inline_epilogue: bool = True,
                      generic: bool = True, fast_math: bool = True,
                      conv_hwio: bool = True, measure: tuple[str, ...] = ()) -> Any:
    """A Relax pipeline (``tvm.transform.Pass``) for ``tvm.compile(..., relax_pipeline=)``:
    TVM's CPU pipeline with :func:`mapspace_schedule_pass` after ``FuseTIR``.

    ``objective``: ``"edp"`` (default; on the host CPU it picks much faster kernels than
    ``"latency"``, whose cycles saturate at full FMA use for many mappings -- see
    ``benchmarks/bench_tvm_plugin.py``), ``"latency"`` or ``"energy"``.
    ``budget`` evaluations of ``strategy`` per distinct op shape (cached in ``cache`` across
    builds when one is passed); ``log`` (a list) receives a :class:`ScheduledFunc` per
    recognised function (``.scheduled`` false, with ``.error``, where it kept TVM's default)
    and, with ``generic``, one (``kind == "generic"``, ``block`` the rule) per other function
    a generic rule scheduled.  ``fast_math`` runs TVM's ``FastMathTransform`` first: the
    ``erf``, ``exp`` and ``tanh`` ops become TVM's vectorisable polynomial approximations
    (within 4e-7 absolute of libm's on [-6, 6]; libm's ``erff`` is a scalar call: 7 ms per
    BERT-Base GELU on 2 cores against 0.1 ms).  ``conv_hwio`` runs
    :func:`conv_weights_hwio_pass` first: NCHW conv2d weights become HWIO (folded into the
    constants), so our conv kernels vectorise over output channels.  ``measure`` (e.g.
    ``("latency",)``): also search under those objectives and keep, per MAC function, the
    candidate that runs fastest when built and timed during the build (see
    :func:`schedule_module`).
    """
    tvm = import_tvm()
    from tvm import relax

    _check_options(target, objective)
    ours = mapspace_schedule_pass(
        target, strategy=strategy, budget=budget, seed=seed, objective=objective,
        cache=MappingCache() if cache is None else cache, log=log, vectorize=vectorize,
        parallel=parallel, inline_epilogue=inline_epilogue, generic=generic,
        measure=tuple(measure))

    @tvm.transform.module_pass(opt_level=0, name="MapspacePipeline")
    def _pipeline(mod: Any, _ctx: Any) -> Any:
        tgt = tvm.target.Target.current(allow_none=True) or tvm.target.Target("llvm")
        # relax.pipeline.dataflow_lower_passes misses the llvm backend's in TVM 0.27
        if tgt.kind.name == "llvm":
            from tvm.relax.backend.cpu_generic import pipeline as P
        else:
            P = relax.pipeline
        fast = [fast_gelu_pass(), relax.transform.FastMathTransform()] if fast_math else []
        hwio = [conv_weights_hwio_pass()] if conv_hwio else []
        seq = tvm.transform.Sequential(
            list(P.library_dispatch_passes(tgt)) + hwio + fast + list(P.legalize_passes(tgt))
            + [ours]
            + list(P.dataflow_lower_passes(tgt)) + list(P.finalize_passes(tgt)))
        with tgt:
            return seq(mod)

    return _pipeline


def conv_weights_hwio_pass() -> Any:
    """A Relax pass: every ungrouped ``nn.conv2d`` with NCHW data, OIHW weights and NCHW
    output reads its weights as HWIO (``permute_dims(w, [2, 3, 1, 0])``, which
    ``FoldConstant`` folds into a constant weight).  The legalized PrimFunc then reads
    ``W[ry, rx, c, f]``: the output channels are contiguous, so our conv kernels put the
    vector lanes on them (:mod:`targets.tvm_plugin.recognition`) -- the output width of
    ResNet's later layers (7-28) fills 16 lanes poorly.  Same arithmetic, same order of
    the reduction as TVM's default (only the weights' addressing changes)."""
    tvm = import_tvm()
    from tvm import relax
    from tvm.relax import expr_functor

    @expr_functor.mutator
    class _Hwio(relax.PyExprMutator):
        def visit_call_(self, call: Any) -> Any:
            call = super().visit_call_(call)
            if getattr(call.op, "name", "") != "relax.nn.conv2d":
                return call
            a = call.attrs
            if (int(a.groups) != 1 or a.data_layout != "NCHW" or a.kernel_layout != "OIHW"
                    or a.out_layout != "NCHW"):
                return call
            x, w = call.args
            if len(getattr(w.ty, "shape", None) or ()) != 4:
                return call
            wt = self.builder_.emit(relax.op.permute_dims(w, [2, 3, 1, 0]))
            return relax.op.nn.conv2d(x, wt, strides=a.strides, padding=a.padding,
                                      dilation=a.dilation, groups=1, data_layout="NCHW",
                                      kernel_layout="HWIO", out_layout="NCHW",
                                      out_dtype=a.out_dtype)

    @tvm.transform.module_pass(opt_level=0, name="MapspaceConvWeightsHWIO")
    def _pass(mod: Any, _ctx: Any) -> Any:
        m = _Hwio(mod)
        for gv, func in mod.functions_items():
            if isinstance(func, relax.Function):
                m.builder_.update_func(gv, m.visit_expr(func))
        return m.builder_.get()

    return _pass


def fast_gelu_pass() -> Any:
    """A Relax pass: fp32 ``nn.gelu`` / ``nn.gelu_tanh`` computed as TVM legalizes them but
    with ``topi.fast_erf`` / ``topi.fast_tanh`` (``FastMathTransform`` only rewrites the
    plain ``erf`` / ``tanh`` ops, and an exported BERT's GELU is one ``nn.gelu`` op)."""
    tvm = import_tvm()
    from tvm import relax, te, tirx, topi
    from tvm.relax import expr_functor

    def gelu(x: Any) -> Any:
        half = tirx.const(0.5, x.dtype)
        erf = topi.fast_erf(te.compute(x.shape, lambda *i: x(*i) * tirx.const(0.5 ** 0.5,
                                                                             x.dtype)))
        return te.compute(x.shape, lambda *i: x(*i) * (half + erf(*i) * half), name="gelu")

    def gelu_tanh(x: Any) -> Any:
        c = tirx.const(math.sqrt(2.0 / math.pi), x.dtype)
        inner = te.compute(x.shape, lambda *i: c * x(*i) * (
            tirx.const(1.0, x.dtype) + tirx.const(0.044715, x.dtype) * x(*i) * x(*i)))
        th = topi.fast_tanh(inner)
        return te.compute(x.shape, lambda *i: tirx.const(0.5, x.dtype) * x(*i) * (
            tirx.const(1.0, x.dtype) + th(*i)), name="gelu_tanh")

    rules = {"relax.nn.gelu": gelu, "relax.nn.gelu_tanh": gelu_tanh}

    @expr_functor.mutator
    class _Gelu(relax.PyExprMutator):
        def visit_call_(self, call: Any) -> Any:
            call = super().visit_call_(call)
            name = getattr(call.op, "name", "")
            if name in rules and str(call.args[0].ty.dtype) == "float32":
                return self.builder_.call_te(rules[name], call.args[0],
                                             primfunc_name_hint=name.split(".")[-1])
            return call

    @tvm.transform.module_pass(opt_level=0, name="MapspaceFastGelu")
    def _pass(mod: Any, _ctx: Any) -> Any:
        m = _Gelu(mod)
        for gv, func in mod.functions_items():
            if isinstance(func, relax.Function):
                m.builder_.update_func(gv, m.visit_expr(func))
        return m.builder_.get()

    return _pass


def register_pipeline() -> None:
    """Register :func:`mapspace_pipeline` as ``relax_pipeline="mapspace"`` (idempotent)."""
    import_tvm()
    from tvm.relax import pipeline as P

    if PIPELINE_NAME not in P.PIPELINE_MAP:
        P.register_pipeline(PIPELINE_NAME)(mapspace_pipeline)
