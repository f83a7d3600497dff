"""Our mapper as a Relax module pass, and a ``relax_pipeline`` that runs it.

Usage (a TVM user's build, one argument changed)::

    from targets.tvm_plugin import mapspace_pipeline
    log = []
    ex = tvm.compile(mod, "llvm", relax_pipeline=mapspace_pipeline("cpu", log=log))
    vm = tvm.relax.VirtualMachine(ex, tvm.cpu())
    # log: one ScheduledFunc per PrimFunc our pass scheduled

The pipeline is TVM's CPU pipeline with one pass inserted::

    library dispatch -> LegalizeOps, AnnotateTIROpPattern, FoldConstant, FuseOps, FuseTIR
    -> MapspaceSchedule (ours) -> dataflow lowering -> finalization

``MapspaceSchedule`` visits every ``PrimFunc`` not already marked ``tirx.is_scheduled``:

* a function whose single MAC block is a matmul, batched matmul or NCHW conv2d
  (:func:`targets.tvm_plugin.recognition.recognize`) gets a mapping from our search over the
  host CPU's mapspace priced by our analytical model (cached by shape), applied to that
  block by :func:`targets.cpu.emit.apply_mapping` (tiling per cache level, loop order,
  parallel cores, register accumulators, vectorized lanes); elementwise epilogue blocks
  fused after it (bias add, ReLU, ...) are collapsed into one block and inlined into the
  accumulators' write-back when TVM allows (else kept as their own nest, run in
  parallel).  A conv's pad block stays as TVM made it.  The function is marked
  ``tirx.is_scheduled``.
* everything else is left to TVM's defaults, unscheduled: elementwise / injective /
  reduction functions that are not MACs, pads and transposes in their own functions,
  grouped or depthwise convolutions, NHWC layouts, non-square strides, functions with
  several MAC blocks or a prologue computing an operand, and any function whose search or
  scheduling raises (kept as it was, logged with the error).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from mapspace.errors import MapspaceError
from targets._tvm import import_tvm
from targets.tvm_plugin.recognition import MacBlock, loops_by_dim, recognize
from targets.tvm_plugin.search import OBJECTIVES, MappingCache, cpu_target, search_mapping

TARGETS = ("cpu",)
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
                 parallel: bool = True, inline_epilogue: bool = True) -> tuple[Any, tuple]:
    """``func`` with ``mapping`` applied to its MAC block, and the epilogue blocks inlined."""
    tvm = import_tvm()
    from tvm import s_tir

    from targets.cpu.emit import apply_mapping

    sch = s_tir.Schedule(tvm.IRModule({"main": func}))
    block, loops = loops_by_dim(sch, mac)
    apply_mapping(sch, block, loops, mac.spec, mapping, arch, vectorize=vectorize,
                  parallel=parallel)
    inlined: list[str] = []
    if inline_epilogue and mac.epilogue:
        inlined = _fuse_epilogue(sch, block, mac.epilogue)
    return sch.mod["main"], tuple(inlined)


def _fuse_epilogue(sch: Any, block: Any, epilogue: tuple[str, ...]) -> list[str]:
    """Inline an elementwise chain after the MAC block into one block, then into the
    accumulators' write-back when ``apply_mapping`` made one (a reduction block cannot
    take it: the collapsed epilogue then keeps its own loop nest, its outer loop run in
    parallel; computing it per tile under the MAC's parallel loop is unsafe when a core's
    rows are not contiguous).  Returns the blocks inlined."""
    done: list[str] = []
    for name in reversed(epilogue[1:]):
        try:
            sch.reverse_compute_inline(sch.get_sblock(name))
        except Exception:  # noqa: BLE001 - not inlinable: keep it, stop collapsing
            return done
        done.append(name)
    try:
        sch.reverse_compute_inline(sch.get_sblock(epilogue[0]))
        done.append(epilogue[0])
    except Exception:  # noqa: BLE001 - the MAC block itself produces it: own loop nest
        _parallel_elementwise(sch, epilogue[0])
    return done


def _parallel_elementwise(sch: Any, name: str) -> None:
    """Run an elementwise block's outermost loop across the cores (spatial iterators only,
    so the iterations are independent)."""
    rv = sch.get_sblock(name)
    if any(int(iv.iter_type) != 0 for iv in sch.get(rv).iter_vars):
        return
    loops = sch.get_loops(rv)
    if loops and int(sch.get(loops[0]).extent) > 1:
        sch.parallel(loops[0])


def schedule_module(mod: Any, *, target: str = "cpu", strategy: str = "anneal",
                    budget: int = 2000, seed: int = 0, objective: str = "edp",
                    cache: MappingCache | None = None, log: list | None = None,
                    vectorize: bool = True, parallel: bool = True,
                    inline_epilogue: bool = True) -> Any:
    """``mod`` with every recognised MAC function scheduled (see the module doc)."""
    tvm = import_tvm()
    _check_options(target, objective)
    cache = MappingCache() if cache is None else cache
    out = mod
    for gv, func in mod.functions.items():
        if not isinstance(func, tvm.tirx.PrimFunc):
            continue
        if func.attrs is not None and "tirx.is_scheduled" in func.attrs:
            continue
        mac = recognize(func, gv.name_hint)
        if mac is None:
            continue
        arch, cons = cpu_target(mac.word_bits, mac.problem)
        key = (target, mac.shape_key(), strategy, budget, seed, objective)
        try:
            mapping, obj = cache.get(key, lambda m=mac, a=arch, c=cons: search_mapping(
                m.problem, a, c, strategy=strategy, budget=budget, seed=seed,
                objective=objective))
            new, inlined = schedule_mac(func, mac, mapping, arch, vectorize=vectorize,
                                        parallel=parallel, inline_epilogue=inline_epilogue)
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


def mapspace_pipeline(target: str = "cpu", *, strategy: str = "anneal", budget: int = 2000,
                      seed: int = 0, objective: str = "edp", log: list | None = None,
                      cache: MappingCache | None = None, vectorize: bool = True,
                      parallel: bool = True, inline_epilogue: bool = True) -> Any:
    """A Relax pipeline (``tvm.transform.Pass``) for ``tvm.compile(..., relax_pipeline=)``:
    TVM's CPU pipeline with :func:`mapspace_schedule_pass` after ``FuseTIR``.

    ``objective``: ``"edp"`` (default; on the host CPU it picks much faster kernels than
    ``"latency"``, whose cycles saturate at full FMA use for many mappings -- see
    ``benchmarks/bench_tvm_plugin.py``), ``"latency"`` or ``"energy"``.
    ``budget`` evaluations of ``strategy`` per distinct op shape (cached in ``cache`` across
    builds when one is passed); ``log`` (a list) receives a :class:`ScheduledFunc` per
    recognised function (``.scheduled`` false, with ``.error``, where it kept TVM's default).
    """
    tvm = import_tvm()
    from tvm import relax

    _check_options(target, objective)
    ours = mapspace_schedule_pass(
        target, strategy=strategy, budget=budget, seed=seed, objective=objective,
        cache=MappingCache() if cache is None else cache, log=log, vectorize=vectorize,
        parallel=parallel, inline_epilogue=inline_epilogue)

    @tvm.transform.module_pass(opt_level=0, name="MapspacePipeline")
    def _pipeline(mod: Any, _ctx: Any) -> Any:
        tgt = tvm.target.Target.current(allow_none=True) or tvm.target.Target("llvm")
        # relax.pipeline.dataflow_lower_passes misses the llvm backend's in TVM 0.27
        if tgt.kind.name == "llvm":
            from tvm.relax.backend.cpu_generic import pipeline as P
        else:
            P = relax.pipeline
        seq = tvm.transform.Sequential(
            list(P.library_dispatch_passes(tgt)) + list(P.legalize_passes(tgt)) + [ours]
            + list(P.dataflow_lower_passes(tgt)) + list(P.finalize_passes(tgt)))
        with tgt:
            return seq(mod)

    return _pipeline


def register_pipeline() -> None:
    """Register :func:`mapspace_pipeline` as ``relax_pipeline="mapspace"`` (idempotent)."""
    import_tvm()
    from tvm.relax import pipeline as P

    if PIPELINE_NAME not in P.PIPELINE_MAP:
        P.register_pipeline(PIPELINE_NAME)(mapspace_pipeline)
