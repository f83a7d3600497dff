"""The compile driver: model -> per-op schedules and a latency/energy report.

``compile_model(model, target)`` runs a visible list of named steps (:data:`STEPS`), each a
function ``_State -> _State``:

1. ``load``     — the front end: an ONNX file (``from_onnx``; with ``frontend="relax"``
   through TVM's ONNX importer and ``from_relax``), a zoo name (``zoo_graph``), a
   ``tvm.IRModule`` object (``from_relax``), or a ``torch.export`` program — an
   ``ExportedProgram`` object or a ``.pt2`` file — (``from_exported_program``).
2. ``passes``   — graph passes (``compiler.passes``: fuse, quantize, sparsify) from a spec
   string such as ``"fuse,quantize=int8,sparsify=2:4"``.
3. ``lower``    — ``Graph.problem(op)`` for every MAC op, with per-tensor bit widths
   (``weight_bits``/``act_bits``/``out_bits``) and densities (``weight_density``,
   ``act_density``, ``out_density``) taken from the op's attrs when present.
4. ``schedule`` — ops are grouped by identical problem (dims, sizes, coefficients,
   projections, bits, density); each distinct shape is searched ONCE with ``find_mapping``
   on the target under its default constraints.
5. ``cost``     — the best mapping of its shape is evaluated for every MAC op.
6. ``report``   — per-op rows and totals (:class:`CompileResult`).

Non-MAC ops (elementwise, reshapes, ...) are reported as host ops with zero accelerator
cost: the accelerator model prices only MAC loop nests.  Host ``softmax``/``layernorm`` ops
and fused MAC ops carrying them are priced by :mod:`cost_models.fused` (a DRAM round
trip + host time, or a row-complete schedule + on-chip accumulator traffic).  Costs come from
the dense analytical model (``cost_models.evaluate``): bit widths change word sizes and
capacities.  A MAC op whose weights were pruned by ``sparsify`` (``weight_density`` < 1) is
searched dense, then its mapping is priced by Timeloop's sparse model
(:class:`cost_models.sparseloop.PrunedWeights` from :func:`compiler.lowering.sparse_model`:
the Sparseloop description of pruned weights, N:M weights compressed and their zero MACs
skipped, unstructured ones bitmask-gated; rule SL13 in ``cost_models/README.md``);
its row keeps the dense price in ``dense_cycles``/``dense_energy_pJ``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

import yaml

from compiler.backend import Backend, backend
from compiler.compiled import CompiledModel
from compiler.errors import CompilerError
from compiler.frontends.onnx import from_onnx
from compiler.frontends.relax import from_onnx_via_relax, from_relax, is_ir_module
from compiler.frontends.torch import (
    from_exported_program,
    is_exported_program,
    load_exported_program,
)
from compiler.graph import MAC_KINDS, Graph, Op
from compiler.lowering import lower_op, shape_key, sparse_model
from compiler.passes.manager import parse_passes, run_passes
from compiler.result import REPORT_ATTRS, CompileResult, OpRow
from compiler.zoo import ZOO, zoo_graph
from cost_models import evaluate
from cost_models.fused import (
    NONLINEAR_KINDS,
    Fused,
    host_nonlinear_cost,
    needs_row,
    row_complete_arch,
    row_complete_constraints,
    row_level,
)
from cost_models.learned import cost_model_of
from cost_models.search import DEFAULT_STRATEGY, check_limits, find_mapping
from mapspace.errors import Interrupted, MapspaceError
from mapspace.mapping_yaml import mapping_to_list
from mapspace.problem import Problem
from mapspace.search import check_strategy
from mapspace.space import Mapspace
from targets import load_target
from targets.registry import get_target

#: Readers of ONNX files (``compile_model(frontend=...)``, ``mapspace compile --frontend``).
FRONTENDS: tuple[str, ...] = ("onnx", "relax")
#: ``progress(done, total, label)`` is called after each distinct shape is searched.
Progress = Callable[[int, int, str], None]

@dataclass
class _State:
    """What flows between the steps (filled in as they run)."""

    model: str
    target: str
    passes: str
    strategy: str
    budget: int | None
    time_per_op: float | None
    seed: int
    seq: int | None
    progress: Progress | None
    frontend: str = "onnx"
    module: object | None = None                                      # a tvm.IRModule
    rerank: object | None = None               # a CostModel re-ranking the search's top-K
    dim_values: dict[str, int] = field(default_factory=dict)  # symbolic ONNX dims
    graph: Graph | None = None
    source_graph: Graph | None = None                                 # before the passes
    problems: dict[str, Problem] = field(default_factory=dict)       # op name -> problem
    groups: dict[tuple, list[str]] = field(default_factory=dict)      # shape key -> op names
    mappings: dict[tuple, object] = field(default_factory=dict)       # shape key -> mapping
    spaces: dict[tuple, Mapspace] = field(default_factory=dict)       # shape key -> space
    evaluations: int = 0
    costs: dict[str, dict] = field(default_factory=dict)              # op name -> stats
    result: CompileResult | None = None
    seconds: list[tuple[str, float]] = field(default_factory=list)
    runner: object | None = None                  # compiler.backend.Backend of the searches
    objective: str = "edp"                        # what each shape's search minimises


# ------------------------------------------------------------------ steps
def _load(s: _State) -> _State:
    """Front end: a torch.export program or ``.pt2`` file to ``from_exported_program``, an
    IRModule to ``from_relax``, an existing file or a ``.onnx`` path to ``from_onnx``, else
    the zoo."""
    if is_exported_program(s.module):
        s.graph = from_exported_program(s.module)
        return s
    if s.module is not None:
        s.graph = from_relax(s.module)
        return s
    path = Path(s.model)
    if path.suffix.lower() == ".pt2":
        s.graph = from_exported_program(load_exported_program(path), name=path.stem,
                                        where=str(path))
        return s
    if s.frontend == "relax":
        if not (path.suffix.lower() == ".onnx" or path.is_file()):
            raise CompilerError(f"the relax front end reads ONNX files (through TVM's ONNX "
                                f"importer), found {s.model!r}", where="compile",
                                key="frontend")
        s.graph = from_onnx_via_relax(path, dim_values=s.dim_values)
    elif path.suffix.lower() == ".onnx" or path.is_file():
        s.graph = from_onnx(path, dim_values=s.dim_values)
    elif s.model in ZOO:
        s.graph = zoo_graph(s.model, s.seq)
    else:
        raise CompilerError(f"unknown model {s.model!r}: neither an ONNX file nor a zoo model "
                            f"(zoo models: {', '.join(ZOO)})", where="compile", key="model")
    return s


def _passes(s: _State) -> _State:
    """Graph passes from the spec (none when it is empty)."""
    s.source_graph = s.graph
    if not s.passes.strip():
        return s
    s.graph = run_passes(s.graph, parse_passes(s.passes))
    return s


def _lower(s: _State) -> _State:
    """One problem per MAC op, grouped by :func:`shape_key` (first-seen order)."""
    for op in s.graph.ops():
        try:
            p = lower_op(s.graph, op)
        except MapspaceError as e:  # name the model file too
            raise CompilerError(str(e), where=str(s.model)) from None
        if p is None:
            continue
        s.problems[op.name] = p
        s.groups.setdefault(shape_key(p) + (op.attr("row_complete_dim"),), []).append(op.name)
    return s


def _schedule(s: _State) -> _State:
    """Search each distinct shape once in the target's space for it
    (:meth:`targets.registry.Target.space`: its constraints for the problem, per-problem
    hooks and the emitter's rules, so every mapping can be emitted); a fused row-wise
    epilogue adds the row-complete rule F2 (:mod:`cost_models.fused`).  The searches are
    tasks on ``s.runner`` (:mod:`compiler.backend`: in this process one after another by
    default, or on Dask workers), results in any order, the same for any backend."""
    total = len(s.groups)
    items = [(key, names, *_space(s, names[0])) for key, names in s.groups.items()]
    runner = s.runner if s.runner is not None else Backend("in-process", 1)
    args = ((space, s.strategy, s.seed, s.budget, s.time_per_op, s.rerank, s.objective)
            for _, _, space, _ in items)
    try:
        for i, (ok, found, evaluations) in runner.imap(_search, args, name="compile-shape"):
            key, names, space, row = items[i]
            if not ok:
                why = f" with {row} complete in the accumulator (fused)" if row else ""
                raise CompilerError(f"cannot map {_sizes(s.problems[names[0]])}{why} on "
                                    f"{s.target!r}: {found}", where=f"op {names[0]!r}")
            s.mappings[key] = found
            s.spaces[key] = space
            s.evaluations += evaluations
            if s.progress is not None:
                s.progress(len(s.mappings), total, names[0])
    except KeyboardInterrupt:  # Ctrl-C: the shapes searched so far are kept
        if not s.mappings:
            raise
        raise Interrupted(searched(s), len(s.mappings), total, "distinct shapes") from None
    s.mappings = {key: s.mappings[key] for key in s.groups}    # first-seen order
    return s


def _search(space: Mapspace, strategy: str, seed: int, budget: int | None,
            time_per_op: float | None, rerank: object | None,
            objective: str = "edp") -> tuple[bool, object, int]:
    """One shape's search (a task): ``(True, best mapping, evaluations)``, or ``(False,
    why, 0)`` when the shape cannot be mapped."""
    try:
        r = find_mapping(space, strategy=strategy, seed=seed, budget=budget,
                         time_limit=time_per_op, where="compile", rerank=rerank,
                         objective=objective)
    except MapspaceError as e:
        return False, str(e), 0
    return True, r.best_mapping, r.evaluations


def _space(s: _State, name: str) -> tuple[Mapspace, object]:
    """The space op ``name`` is searched in (:func:`_schedule`) and its row-complete dim."""
    p = s.problems[name]
    space = get_target(s.target, where="compile").space(p)  # e.g. gemmini depthwise, rows
    row = s.graph.op(name).attr("row_complete_dim") if row_level(space.arch) else None
    if row:  # double-buffered accumulator (F2), whole rows in it
        arch = row_complete_arch(space.arch)
        space = Mapspace(p, arch, space.constraints.merged(
            row_complete_constraints(arch, str(row))), space.rules)
    return space, row


def distinct_spaces(model: str, target: str, *, passes: str = "", seq: int | None = None
                    ) -> list[tuple[list[str], Mapspace]]:
    """The distinct shapes ``compile_model`` searches for a zoo model or ONNX file (its
    ``load``/``passes``/``lower`` steps): per shape, first seen first, the names of its ops
    and the space it is searched in.  For benchmarks of the search
    (``benchmarks/bench_search.py``)."""
    get_target(target, where="compile").arch()
    s = _State(str(model), target, passes, DEFAULT_STRATEGY, None, None, 0, seq, None)
    for step in (_load, _passes, _lower):
        s = step(s)
    return [(names, _space(s, names[0])[0]) for names in s.groups.values()]


def searched(s: _State) -> dict:
    """What an interrupted compile keeps: each distinct shape searched so far (its ops, its
    sizes and the best mapping found, as Timeloop mapping YAML lists)."""
    shapes = []
    for key, m in s.mappings.items():
        names = s.groups[key]
        p = s.problems[names[0]]
        shapes.append({"ops": list(names), "problem": _sizes(p),
                       "mapping": mapping_to_list(m, p, s.spaces[key].arch)})
    return {"model": s.model, "target": s.target, "distinct_shapes": len(s.groups),
            "searched": shapes}


def _cost(s: _State) -> _State:
    """Evaluate the best mapping of its shape for every MAC op."""
    from mapspace.kernels import kernel_threads  # numba, ~0.15 s: loaded when a step runs

    with kernel_threads(1):  # batches of one: a parallel launch per op costs more than it
        return _cost_ops(s)  # saves (96 BERT-Base ops: 1.4 s on 2 busy cores)


def _cost_ops(s: _State) -> _State:
    target = load_target(s.target)
    memo: dict[tuple, object] = {}  # sparse prices per shape and sparsify attrs
    for key, names in s.groups.items():
        a = s.spaces[key].arch  # as searched (hooks, rule F2)
        row = s.graph.op(names[0]).attr("row_complete_dim") if row_level(a) else None
        for n in names:
            ev = evaluate(s.problems[n], a, s.mappings[key])
            stats = ev.stats(0)
            if not stats["valid"]:  # cannot happen for an identical shape; guard anyway
                raise CompilerError("the mapping of its shape is invalid: "
                                    + "; ".join(stats["reasons"]), where=f"op {n!r}")
            op = s.graph.op(n)
            _price_sparse(op, s.problems[n], a, s.mappings[key], stats, memo, key)
            if row and needs_row(op.attr("fused")):  # type: ignore[arg-type]
                fused = Fused(str(row), s.graph.tensor(op.outputs[0]).size)
                e = stats["energy_pJ"] + fused.epilogue_energy_pJ(target)
                stats["edp"] *= e / stats["energy_pJ"] if stats["energy_pJ"] else 1.0
                stats["energy_pJ"] = e
            s.costs[n] = stats
    for op in s.graph.ops():  # unfused softmax/layernorm: DRAM round trip + host time
        if op.name not in s.problems and op.kind in NONLINEAR_KINDS:
            nl = host_nonlinear_cost(s.graph.tensor(op.outputs[0]).size, target)
            s.costs[op.name] = {"cycles": nl.cycles, "energy_pJ": nl.energy_pJ,
                                "edp": nl.energy_pJ * 1e-12 * nl.cycles}
    return s


def _price_sparse(op: Op, problem: Problem, arch: object, mapping: object, stats: dict,
                  memo: dict, key: tuple) -> None:
    """Weights pruned by ``sparsify`` (``weight_density`` < 1): keep the dense price as
    ``dense_cycles``/``dense_energy_pJ`` and price the mapping with the op's sparse model
    (:func:`compiler.lowering.sparse_model`); ``stats["sparse"]`` describes the
    optimizations (and why the dense price stands when the compressed tiles do not fit)."""
    model = sparse_model(op)
    if model is None:
        return
    mk = (key, model)
    if mk not in memo:
        memo[mk] = model.cost(problem, arch, mapping), model.describe(  # type: ignore[arg-type]
            problem, arch, mapping.keep[0])  # type: ignore[attr-defined]
    c, desc = memo[mk]
    stats["dense_cycles"], stats["dense_energy_pJ"] = stats["cycles"], stats["energy_pJ"]
    if not c.valid[0]:
        stats["sparse"] = f"{desc} (not applied: {c.detail.reason[0]})"
        return
    stats.update(cycles=int(c.cycles[0]), energy_pJ=float(c.energy_pJ[0]),
                 edp=float(c.edp[0]), utilization=float(c.utilization[0]), sparse=desc)


def _report(s: _State) -> _State:
    """Per-op rows (host ops at zero cost) and the result object."""
    arch = load_target(s.target)
    group_of = {n: (i, names[0], key) for i, (key, names) in enumerate(s.groups.items())
                for n in names}
    texts: dict[tuple, str] = {}
    rows = []
    g = s.graph
    for op in g.ops():
        shape = "x".join(_fmt(g.tensor(t).shape) for t in op.inputs if g.has_tensor(t)) \
            + "->" + ",".join(_fmt(g.tensor(t).shape) for t in op.outputs)
        attrs = tuple((k, op.attr(k)) for k in REPORT_ATTRS if op.attr(k) is not None)
        if op.name not in s.problems:
            hc = s.costs.get(op.name, {"cycles": 0, "energy_pJ": 0.0, "edp": 0.0})
            rows.append(OpRow(op.name, op.kind, shape, "", -1, "", 0, hc["cycles"],
                              hc["energy_pJ"], hc["edp"], 0.0, "", True, attrs))
            continue
        p, st = s.problems[op.name], s.costs[op.name]
        gi, rep, key = group_of[op.name]
        if key not in texts:
            texts[key] = yaml.safe_dump(
                {"mapping": mapping_to_list(s.mappings[key], s.problems[rep], arch)},
                sort_keys=False, default_flow_style=None, width=100)
        rows.append(OpRow(op.name, op.kind, shape, _sizes(p), gi, rep, p.macs, st["cycles"],
                          st["energy_pJ"], st["edp"], st["utilization"], texts[key], False,
                          attrs, st.get("dense_cycles"), st.get("dense_energy_pJ"),
                          st.get("sparse", "")))
    s.result = CompiledModel(
        model=g.name, target=s.target, passes=s.passes, strategy=s.strategy,
        rows=tuple(rows), distinct_shapes=len(s.groups), searches=len(s.mappings),
        evaluations=s.evaluations, step_seconds=tuple(s.seconds), graph=g,
        source_graph=s.source_graph,
        problems=dict(s.problems),
        mappings={n: s.mappings[key] for n, (_, _, key) in group_of.items()})
    return s


#: The compile driver, in order: (name, step).
STEPS: tuple[tuple[str, Callable[[_State], _State]], ...] = (
    ("load", _load),          # front end: ONNX file, zoo model or IRModule -> Graph
    ("passes", _passes),      # graph passes (fuse, quantize, sparsify) -> Graph'
    ("lower", _lower),        # MAC ops -> Problems (bits/densities), grouped by shape
    ("schedule", _schedule),  # one find_mapping per distinct shape
    ("cost", _cost),          # evaluate each op's mapping
    ("report", _report),      # per-op rows + totals
)


def compile_model(model: str | Path | object, target: str, *, passes: str = "",
                  strategy: str = "anneal", budget: int | None = None,
                  time_per_op: float | None = None, seed: int = 0, seq: int | None = None,
                  progress: Progress | None = None, frontend: str = "onnx",
                  cost: str | object | None = None,
                  dim_values: Mapping[str, int] | None = None, workers: int | None = None,
                  cluster: str | None = None, client: object = None,
                  objective: str = "edp") -> CompileResult:
    """Compile ``model`` (an ONNX path, a zoo name, a TVM Relax ``tvm.IRModule`` read by
    :func:`compiler.frontends.relax.from_relax`, or a ``torch.export`` program — an
    ``ExportedProgram`` or a ``.pt2`` path — read by
    :func:`compiler.frontends.torch.from_exported_program`) for the built-in ``target``.

    ``frontend`` picks the reader of ONNX files: ``"onnx"`` (ours) or ``"relax"`` (TVM's
    ONNX importer, then ``from_relax``); ``dim_values`` give an ONNX file's symbolic
    (dynamic) dimensions their sizes (``mapspace compile --dim NAME=N``).

    Each distinct MAC shape is searched with ``strategy`` for ``budget`` evaluations
    (``None``: the mapper's :data:`~cost_models.search.DEFAULT_BUDGET`), so the same seed
    and budget give a bit-identical report on any machine; ``time_per_op`` (off by default)
    also stops each search after that many seconds, which makes the result depend on the
    machine's speed and load.  ``seq`` sets the zoo transformers' sequence
    length.  Raises :class:`CompilerError` (a ``MapspaceError``) for bad input: an unknown
    model, an unreadable/unsupported ONNX file, a bad pass spec, an unmappable shape.

    ``cost`` (``mapspace compile --cost``): ``"analytical"``/``None``, or
    ``"learned:MODEL.skops"`` (or a loaded cost model): each shape's search runs on the
    analytical model, then the learned model picks among its top-K
    (:func:`cost_models.search.rerank_top`); a model file for another target, arch or
    feature version is refused before any work.  The report prices the chosen mappings
    with the analytical model.

    ``objective`` (``edp``, ``latency`` or ``energy``) is what each shape's search
    minimises.  ``workers``/``cluster``/``client`` run the distinct shapes' searches as
    tasks on Dask
    (:func:`compiler.backend.backend`; default: in this process, or the caller's active
    Dask client); the report is the same.

    The result is a :class:`compiler.compiled.CompiledModel`: the report, and ``run(inputs)``
    with the model's own weights through the target's kernels.
    """
    check_limits(budget, time_per_op, where="compile", keys=("budget", "time_per_op"))

    check_strategy(strategy, "compile")
    if objective not in ("edp", "latency", "energy"):
        raise CompilerError(f"must be edp, latency or energy, found {objective!r}",
                            where="compile", key="objective")
    if frontend not in FRONTENDS:
        raise CompilerError(f"unknown front end {frontend!r} (known: {', '.join(FRONTENDS)})",
                            where="compile", key="frontend")
    arch = get_target(target, where="compile").arch()  # unknown targets fail before any work
    module = model if is_ir_module(model) or is_exported_program(model) else None
    if module is None and not isinstance(model, str | Path):
        raise CompilerError(f"expected an ONNX or .pt2 path, a zoo name, a tvm.IRModule or a "
                            f"torch.export.ExportedProgram, found {type(model).__name__}",
                            where="compile", key="model")
    rerank = cost_model_of(cost, target=target, arch=arch, where="compile: cost")
    kind = "torch" if is_exported_program(model) else "relax"
    s = _State(kind if module is not None else str(model), target, passes or "",
               strategy, budget, time_per_op, seed, seq, progress, frontend, module,
               rerank)
    s.dim_values = dict(dim_values or {})
    s.objective = objective
    with backend(workers, cluster, client) as s.runner:  # where the searches run
        for name, step in STEPS:
            t0 = time.perf_counter()
            s = step(s)
            s.seconds.append((name, time.perf_counter() - t0))
    s.runner = None
    return replace(s.result, step_seconds=tuple(s.seconds))


def _fmt(shape: tuple[int, ...]) -> str:
    return "[" + ",".join(str(d) for d in shape) + "]"


def _sizes(p: Problem) -> str:
    return " ".join(f"{d}={n}" for d, n in zip(p.dims, p.sizes, strict=True) if n > 1) or "1"


__all__ = ["MAC_KINDS", "STEPS", "CompileResult", "OpRow", "compile_model", "distinct_spaces",
           "lower_op", "shape_key"]
