"""MetaSchedule adapters: our mapspace as a design-space generator, our analytical model as
a cost model.

Usage::

    from tvm.s_tir import meta_schedule as ms
    from targets.tvm_plugin.metaschedule import (MapspaceCostModel, local_builder,
                                                 mapspace_space, without_tensor_intrinsics)

    with without_tensor_intrinsics():
        db = ms.tune_tir(mod, target, work_dir, max_trials_global=16, num_trials_per_iter=16,
                         space=mapspace_space(num_spaces=16, tunable=True),
                         cost_model=MapspaceCostModel(), builder=local_builder())
    sch = ms.tir_integration.compile_tir(db, mod, target)

* :func:`mapspace_space` is a ``ScheduleFn`` returning **one design space per mapping**:
  the best mapping our search finds plus the best of a pool drawn uniformly from the
  host CPU's mapspace (``select="best"``), or the first valid draws (``"random"``).  Each
  is applied by :func:`targets.cpu.emit.apply_mapping` and recorded in the trace as a
  block annotation (``mapspace.mapping``: factors, loop orders, X/Y splits and keeps), so
  a candidate's mapping can be read back from its schedule (:func:`mapping_of`).

  - ``tunable=False``: the splits are fixed ints; the spaces carry no random decisions,
    so the evolutionary search has nothing to mutate: it ranks the spaces with the cost
    model and measures the best ``max_trials`` of them.
  - ``tunable=True``: every split is a ``sample_perfect_tile`` whose decision is the
    mapping's factors (the loop structure -- order, levels, parallel, vector, cache
    positions -- stays the mapping's); ``MutateTileSize`` is the mutator, and MetaSchedule
    re-samples the tiles when it builds its initial population, so the search explores
    tile sizes within our loop structures, ranked by our cost model, which reads the
    (mutated) tiles back from the trace decisions.

  Functions that are not a recognised MAC
  (:func:`~targets.tvm_plugin.recognition.recognize`) are passed through unscheduled.
* :class:`MapspaceCostModel` (a ``PyCostModel``) reads each candidate's mapping back
  (:func:`mapping_of`) and prices it with ``cost_models.evaluate`` on the task's problem;
  the score (:func:`score`) is ``best possible EDP / EDP`` in ``(0, 1]`` (higher is
  better, comparable across batches; the EDP ranking of ``cost_models.evaluate``).  Candidates
  without the annotation (schedules from other space generators) and invalid mappings
  (e.g. a mutated tile that overflows a cache) score 0.  ``update`` keeps the measured
  ``(score, seconds)`` pairs in ``history`` and learns from them: each measured candidate
  with a valid mapping becomes a training row of the learned model
  (:mod:`cost_models.learned`: its features, its analytical cycles, the measured seconds
  at the arch's clock); once ``min_rows`` (:data:`cost_models.learned.MIN_ROWS`) rows
  are in, the model is refitted on all of them after every ``update`` and ``predict``
  scores with it (:func:`score` with the learned cycles: the learned EDP ranking);
  before that, with the analytical model.  ``save``/``load`` write and read the learned
  model as a ``.skops`` file (:func:`cost_models.learned.save`/``load``).
* :func:`without_tensor_intrinsics`: MetaSchedule's ``TuneContext`` imports
  ``tvm.s_tir.tensor_intrin`` (it parses every backend's tensor intrinsics: 20-35 s on
  these machines, most of a small tuning run); our design spaces tensorize nothing, so
  inside this context manager that import is answered by an empty placeholder module.
* :func:`local_builder`: MetaSchedule's default builder imports
  ``tvm.s_tir.tensor_intrin`` in every worker (~35 s on these machines) and times out; this
  one builds with plain ``tvm.tirx.build``.
"""

from __future__ import annotations

import json
import sys
import types
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np

from cost_models import learned
from cost_models.interface import ANALYTICAL, CostModel
from mapspace.mapping import MappingBatch
from mapspace.problem import Problem
from mapspace.space import Mapspace
from targets.cpu.emit import apply_mapping
from targets.tvm_common import import_tvm
from targets.tvm_plugin.recognition import MacBlock, leaf_blocks, loops_by_dim, recognize
from targets.tvm_plugin.search import cpu_target, search_mapping

# tvm is imported inside the functions that use it (import_tvm(), `from tvm import ...`):
# it is heavy (~3 s) and optional, and `import targets` must work without it

#: block annotation carrying the applied mapping (JSON)
ANNOTATION = "mapspace.mapping"


def encode_mapping(m: MappingBatch, tiles: list | None = None) -> str:
    """One mapping (a batch of one) as compact JSON; ``tiles`` (tunable spaces): per
    ``sample_perfect_tile`` in trace order, ``[dim index, [[level, 0|1 spatial], ...]]``."""
    d: dict[str, Any] = {k: getattr(m, k)[0].astype(int).tolist()
                         for k in ("temporal", "spatial", "order", "spatial_x", "keep")}
    if tiles is not None:
        d["tiles"] = tiles
    return json.dumps(d, separators=(",", ":"))


def decode_mapping(text: str) -> MappingBatch:
    d = json.loads(text)
    ints = {k: np.array([d[k]], np.int64) for k in ("temporal", "spatial", "order")}
    bools = {k: np.array([d[k]], bool) for k in ("spatial_x", "keep")}
    return MappingBatch(**ints, **bools)


def mapping_of(sch_or_mod: Any) -> MappingBatch | None:
    """The mapping a schedule (or module) carries, ``None`` when it has none.

    Loop orders, X/Y splits and keeps come from the ``mapspace.mapping`` block annotation.
    In a tunable space the tile factors come from the schedule's trace: the decisions of
    its ``sample_perfect_tile`` instructions (which MetaSchedule's mutator may have
    changed), placed in the levels the annotation's ``tiles`` layout names."""
    mod = getattr(sch_or_mod, "mod", sch_or_mod)
    text = None
    for _, func in mod.functions.items():
        if not hasattr(func, "body"):
            continue
        for b in leaf_blocks(func):
            if b.annotations is not None and ANNOTATION in b.annotations:
                text = str(b.annotations[ANNOTATION])
                break
    if text is None:
        return None
    m = decode_mapping(text)
    tiles = json.loads(text).get("tiles")
    trace = getattr(sch_or_mod, "trace", None)
    if not tiles or trace is None:
        return m
    decisions = [[int(v) for v in trace.decisions[inst]] for inst in trace.insts
                 if inst.kind.name == "SamplePerfectTile" and inst in trace.decisions]
    if len(decisions) != len(tiles):
        return m
    t, sp = m.temporal.copy(), m.spatial.copy()
    for (d, slots), dec in zip(tiles, decisions, strict=True):
        if len(dec) != len(slots):
            return m
        for (lv, k), f in zip(slots, dec, strict=True):
            (sp if k else t)[0, lv, d] = f
    return MappingBatch(t, sp, m.order, m.spatial_x, m.keep)


def candidate_mappings(mac: MacBlock, n: int, *, select: str = "best", pool: int = 4096,
                       seed: int = 0, budget: int = 2000, strategy: str = "anneal",
                       objective: str = "edp") -> MappingBatch:
    """Up to ``n`` distinct valid mappings of ``mac``'s problem for the host CPU: the best
    of ``strategy`` first, then the best (``select="best"``) or the first (``"random"``)
    valid ones of ``pool`` uniform draws."""
    arch, cons = cpu_target(mac.word_bits, mac.problem, mac.vector_dim)
    best, _ = search_mapping(mac.problem, arch, cons, strategy=strategy, budget=budget,
                             seed=seed, objective=objective)
    space = Mapspace(mac.problem, arch, cons)
    drawn, _ = space.sample(pool, seed + 1)
    priced = ANALYTICAL.cost(mac.problem, arch, drawn)
    idx = np.flatnonzero(priced.valid)
    if select == "best" and idx.size:
        cost = priced.objective(objective)
        idx = idx[np.argsort(cost[idx], kind="stable")]
    parts = [best] + [_take(drawn, i) for i in idx]
    out, seen = [], set()
    for m in parts:
        key = encode_mapping(m)
        if key not in seen:
            seen.add(key)
            out.append(m)
        if len(out) == n:
            break
    return _concat(out)


def _take(m: MappingBatch, i: int) -> MappingBatch:
    return MappingBatch(*(getattr(m, k)[i:i + 1] for k in
                          ("temporal", "spatial", "order", "spatial_x", "keep")))


def _concat(ms_: list[MappingBatch]) -> MappingBatch:
    return MappingBatch(*(np.concatenate([getattr(m, k) for m in ms_]) for k in
                          ("temporal", "spatial", "order", "spatial_x", "keep")))


class _TunableSplits:
    """A schedule proxy for ``apply_mapping``: ``split(loop, factors=[ints])`` becomes
    ``sample_perfect_tile(loop, decision=ints)`` + a split by the sampled factors, so the
    tile sizes are decisions in the trace; everything else goes to the schedule."""

    def __init__(self, sch: Any, dim_of_loop: dict[int, int]):
        self._sch = sch
        self._dim_of_loop = dim_of_loop
        self.split_dims: list[int] = []

    def split(self, loop: Any, factors: list, **kw: Any) -> Any:
        ints = [int(f) for f in factors]
        rvs = self._sch.sample_perfect_tile(loop, n=len(ints),
                                            max_innermost_factor=int(np.prod(ints)),
                                            decision=ints)
        self.split_dims.append(self._dim_of_loop[id(loop)])
        return self._sch.split(loop, factors=rvs, **kw)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sch, name)


def _slots(m: MappingBatch, d: int) -> list[list[int]]:
    """The (level, spatial) slots with a factor > 1 of dim ``d``, as ``apply_mapping``
    splits them (outermost level first, temporal before spatial)."""
    return [[lv, k] for lv in range(m.num_levels) for k in (0, 1)
            if int((m.temporal, m.spatial)[k][0, lv, d]) > 1]


def apply_recorded(sch: Any, mac: MacBlock, mapping: MappingBatch, *, vectorize: bool = True,
                   parallel: bool = True, tunable: bool = False) -> None:
    """Apply ``mapping`` to ``mac``'s block (in ``sch``, traced) and record it in the
    block's ``mapspace.mapping`` annotation; ``tunable`` makes the tile sizes trace
    decisions (``sample_perfect_tile``) that MetaSchedule's ``MutateTileSize`` can change."""
    arch, _ = cpu_target(mac.word_bits, mac.problem)
    block, loops = loops_by_dim(sch, mac)
    dims = list(mac.spec.sizes)
    target = sch
    if tunable:
        target = _TunableSplits(sch, {id(rv): dims.index(d) for d, rv in loops.items()})
    apply_mapping(target, block, loops, mac.spec, mapping, arch, vectorize=vectorize,
                  parallel=parallel, vector_dim=mac.vector_dim)
    tiles = None
    if tunable:
        tiles = [[d, _slots(mapping, d)] for d in target.split_dims]
    sch.annotate(block, ANNOTATION, encode_mapping(mapping, tiles))


def mapspace_space(*, num_spaces: int = 16, select: str = "best", pool: int = 4096,
                   seed: int = 0, budget: int = 2000, strategy: str = "anneal",
                   objective: str = "edp", vectorize: bool = True,
                   parallel: bool = True, tunable: bool = False) -> Any:
    """A ``ms.space_generator.ScheduleFn`` giving one design space per mapping (module
    doc).  No schedule rules or postprocessors: the mapping is the schedule.  With
    ``tunable`` the tile sizes are ``sample_perfect_tile`` decisions and ``MutateTileSize``
    is the one mutator; otherwise there are none."""
    import_tvm()
    from tvm.s_tir import meta_schedule as ms

    cache: dict[tuple, MappingBatch] = {}

    def sch_fn(sch: Any) -> list[Any]:
        mac = recognize(sch.mod["main"], "main")
        if mac is None:
            return [sch]
        key = mac.shape_key()
        if key not in cache:
            cache[key] = candidate_mappings(mac, num_spaces, select=select, pool=pool,
                                            seed=seed, budget=budget, strategy=strategy,
                                            objective=objective)
        maps = cache[key]
        out = []
        for i in range(len(maps)):
            s = sch.copy()
            apply_recorded(s, mac, _take(maps, i), vectorize=vectorize, parallel=parallel,
                           tunable=tunable)
            out.append(s)
        return out

    mutators = {ms.mutator.MutateTileSize(): 1.0} if tunable else {}
    return ms.space_generator.ScheduleFn(sch_fn, sch_rules=[], postprocs=[],
                                         mutator_probs=mutators)


def ideal_cycles(problem: Problem, arch: Any) -> float:
    """MACs over the compute instances: the cycles of a perfectly utilised mapping."""
    macs = float(np.prod(np.asarray(problem.sizes, np.float64)))
    return macs / max(1, arch.compute.instances)


def score(problem: Problem, arch: Any, mappings: MappingBatch,
          cost_model: CostModel = ANALYTICAL) -> np.ndarray:
    """Predicted quality per mapping, higher is better, 0 for invalid ones: float64[B].

    ``(ideal cycles / cycles) * (MAC energy / energy)`` in ``(0, 1]``: the best possible
    EDP over the mapping's EDP, so the ranking is the EDP ranking of the cost model
    (``cost_model``, the analytical one by default).  (Cycles alone saturate on a CPU: many
    mappings keep every FMA busy by the model; their energy -- data moved through the
    caches -- is what tells them apart, and measured run times follow it, see
    ``bench_tvm_plugin.py``.)
    """
    c = cost_model.cost(problem, arch, mappings)
    cycles = np.asarray(c.cycles, np.float64)
    energy = np.asarray(c.energy_pJ, np.float64)
    ok = c.valid & np.isfinite(cycles) & (cycles > 0) \
        & np.isfinite(energy) & (energy > 0)
    macs = float(np.prod(np.asarray(problem.sizes, np.float64)))
    e_mac = macs * float(arch.compute.energy)
    out = np.zeros(len(mappings))
    out[ok] = (ideal_cycles(problem, arch) / cycles[ok]) * np.minimum(1.0, e_mac / energy[ok])
    return out


def recorded_mappings(mod: Any, schedules: list[Any], cache: dict | None = None
                      ) -> tuple[MacBlock, Any, np.ndarray, MappingBatch] | None:
    """``(mac, arch, indices, mappings)``: the schedules (by index) that carry a mapping of
    ``mod``'s problem (``mod``: the task's unscheduled module), their mappings, the MAC and
    the host arch; ``None`` when ``mod`` is not a recognised MAC or none carries one."""
    cache = {} if cache is None else cache
    key = mod
    if key not in cache:
        cache[key] = None if mod is None else recognize(mod["main"], "main")
    mac = cache[key]
    if mac is None or not schedules:
        return None
    arch, _ = cpu_target(mac.word_bits, mac.problem)
    found = [(i, mapping_of(s)) for i, s in enumerate(schedules)]
    found = [(i, m) for i, m in found if m is not None
             and m.num_dims == mac.problem.num_dims and m.num_levels == arch.num_levels]
    if not found:
        return None
    return mac, arch, np.array([i for i, _ in found]), _concat([m for _, m in found])


def predict_scores(mod: Any, schedules: list[Any], cache: dict | None = None,
                   cost_model: CostModel = ANALYTICAL) -> np.ndarray:
    """:func:`score` (by ``cost_model``) of each schedule's recorded mapping on ``mod``'s
    problem (``mod``: the task's unscheduled module); 0 where a schedule has no
    ``mapspace.mapping`` annotation or ``mod`` is not a recognised MAC.  What
    :class:`MapspaceCostModel` predicts."""
    out = np.zeros(len(schedules))
    found = recorded_mappings(mod, schedules, cache)
    if found is not None:
        mac, arch, idx, maps = found
        out[idx] = score(mac.problem, arch, maps, cost_model)
    return out


def _make_cost_model_class() -> type:
    import_tvm()
    from tvm.ir.utils import derived_object
    from tvm.s_tir.meta_schedule.cost_model import PyCostModel

    @derived_object
    class MapspaceCostModel(PyCostModel):
        """Our analytical model as a MetaSchedule cost model, refined by a learned model
        fitted on MetaSchedule's measurements once ``min_rows`` are in (module doc)."""

        def __init__(self, min_rows: int = learned.MIN_ROWS, seed: int = 0) -> None:
            super().__init__()
            self._macs: dict[Any, MacBlock | None] = {}
            self.history: list[tuple[float, float]] = []
            self.predict_calls = 0
            self.min_rows = min_rows
            self.seed = seed
            # training rows: features, analytical cycles, measured cycles, workload
            self.rows: list[tuple[np.ndarray, float, float, str]] = []
            self.learned: learned.Learned | None = None

        def load(self, path: str) -> None:
            self.learned = learned.load(path, target="cpu", where="MapspaceCostModel.load")

        def save(self, path: str) -> None:
            if self.learned is not None:
                learned.save(self.learned, path, where="MapspaceCostModel.save")

        def predict(self, context: Any, candidates: list[Any]) -> np.ndarray:
            self.predict_calls += 1
            return predict_scores(context.mod, [c.sch for c in candidates], self._macs,
                                  self.learned or ANALYTICAL)

        def update(self, context: Any, candidates: list[Any], results: list[Any]) -> None:
            schs = [c.sch for c in candidates]
            pred = predict_scores(context.mod, schs, self._macs, self.learned or ANALYTICAL)
            secs = []
            for p, r in zip(pred, results, strict=True):
                s = [float(x) for x in (r.run_secs or [])]
                secs.append(float(np.median(s)) if s else np.inf)
                self.history.append((float(p), secs[-1]))
            self._learn(context.mod, schs, np.array(secs))

        def _learn(self, mod: Any, schs: list[Any], secs: np.ndarray) -> None:
            """Add the measured candidates with a valid mapping to the training rows and
            refit the learned model once there are ``min_rows`` of them."""
            found = recorded_mappings(mod, schs, self._macs)
            if found is None:
                return
            mac, arch, idx, maps = found
            X, a, valid = learned.rows_for(mac.problem, arch, maps)
            meas = secs[idx] / arch.cycle_seconds
            for i in np.flatnonzero(valid & np.isfinite(meas) & (meas > 0) & (a > 0)):
                self.rows.append((X[i], float(a[i]), float(meas[i]), mac.problem.name))
            if len(self.rows) < max(1, self.min_rows):
                return
            meta = {"target": "cpu", "arch": arch.name, "levels": list(arch.level_names),
                    "cycle_seconds": float(arch.cycle_seconds),
                    "workloads": sorted({r[3] for r in self.rows}),
                    "hosts": ["metaschedule"], "seed": self.seed, "metrics": {}}
            self.learned = learned.fit(np.stack([r[0] for r in self.rows]),
                                       np.array([r[1] for r in self.rows]),
                                       np.array([r[2] for r in self.rows]), meta=meta,
                                       seed=self.seed)

    return MapspaceCostModel


_CLASSES: dict[str, type] = {}


def __getattr__(name: str) -> Any:
    # the class derives from TVM's PyCostModel: made on first use so importing this
    # module does not import TVM
    if name == "MapspaceCostModel":
        if name not in _CLASSES:
            _CLASSES[name] = _make_cost_model_class()
        return _CLASSES[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def fast_build(mod: Any, target: Any, _params: Any = None) -> Any:
    """MetaSchedule build function: plain ``tvm.tirx.build`` (see :func:`local_builder`);
    it returns the runtime module itself (``tvm.compile``'s ``Executable`` does not cross the
    builder's FFI boundary)."""
    tvm = import_tvm()
    return tvm.tirx.build(mod, target=target)


def local_builder(max_workers: int = 1, timeout_sec: float = 90.0) -> Any:
    """A ``LocalBuilder`` with :func:`fast_build` (the default one times out here)."""
    import_tvm()
    from tvm.s_tir import meta_schedule as ms

    return ms.builder.LocalBuilder(f_build=fast_build, max_workers=max_workers,
                                   timeout_sec=timeout_sec)


@contextmanager
def without_tensor_intrinsics() -> Iterator[None]:
    """Skip MetaSchedule's import of ``tvm.s_tir.tensor_intrin`` while inside (see the
    module doc); a no-op when it is already imported.  Only for design spaces that do not
    tensorize (ours); the placeholder is removed on exit, so a later import is the real one.
    """
    name = "tvm.s_tir.tensor_intrin"
    if name in sys.modules:
        yield
        return
    stub = types.ModuleType(name, "placeholder: tensor intrinsics not registered (mapspace)")
    sys.modules[name] = stub
    try:
        yield
    finally:
        if sys.modules.get(name) is stub:
            del sys.modules[name]
