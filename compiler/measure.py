"""``mapspace measure``: build and run mappings that span a target's space, one dataset row each.

For one problem on one target (:mod:`targets.registry`) it

1. **selects** ``n`` valid mappings, deterministically for a seed (:func:`select`): a pool
   of valid mappings drawn uniformly from the target's space (:meth:`Mapspace.draw`, the
   space's validity and the target's emitter rules, :meth:`Mapspace.valid_mask`), priced by
   the analytical model; the **top-K** by the objective (with the best mapping a short
   :func:`~cost_models.search.find_mapping` search finds among them), and the rest
   **stratified random**: the remaining pool cut into strata of equal size by quantiles of
   log objective, the same number drawn from each (seeded);
2. **builds and checks** each one through the target's emitter (``emit(..., run=True)``:
   the emitter's own build and its comparison with numpy), in parallel on the local cores
   (a process pool, ``jobs`` workers), or as tasks on a Dask backend (``workers``,
   ``cluster``, ``client``: :mod:`compiler.backend`; a worker that cannot see the build
   folder sends the built kernel back; a CPU kernel built on a worker whose CPU differs from
   this machine's is a ``build-failed`` row, since it is timed here); a build or run that
   raises, and a wrong result, are rows with their status (``build-failed``,
   ``run-failed``, ``wrong-result``) and error;
3. **measures**:

   * ``cpu`` (a target whose emitter has ``run_kernel``): sequentially in
     this process (timing in parallel would perturb it), the built ``kernel.so`` loaded,
     run on the emitter's seeded inputs (:func:`targets.cpu.emit.run_kernel`), ``warmup``
     calls, then ``repeat`` samples of TVM's ``time_evaluator`` (each averaging calls over
     ``min_repeat_s``), with TVM's thread pool sized as the emitter sizes it
     (:func:`targets.tvm_common.host_threads`): ``measured_s`` the median sample,
     ``measured_spread`` ``(p75 - p25) / median``;
   * ``gemmini``: the run itself (the functional model with its timing model):
     ``measured_cycles`` the timing model's ``cycles`` counter, ``measured_s`` those cycles
     at the arch's clock (spread 0: the model is deterministic); without a ``cycles``
     counter, ``measured_s`` is the wall time of the functional run and the cycles NaN;

4. **writes** the rows into the dataset (:mod:`cost_models.dataset`): keyed by target, host,
   problem and mapping, so re-measuring replaces rows instead of duplicating them.
"""

from __future__ import annotations

import inspect
import os
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from datetime import UTC, datetime
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from compiler.backend import Backend, backend
from cost_models import dataset
from cost_models.interface import ANALYTICAL
from cost_models.model import evaluate
from cost_models.search import find_mapping
from mapspace.errors import MapspaceError
from mapspace.mapping import MappingBatch
from mapspace.mapping_yaml import mapping_to_list
from mapspace.problem import Problem
from mapspace.space import Mapspace
from targets.cpu import read_text
from targets.host import num_cores
from targets.registry import Target, emitting_targets, get_target
from targets.tvm_common import host_threads, import_tvm, op_spec

#: the artifact an emitter's ``out_dir`` holds once its build succeeded: an exception
#: raised after it exists is a failed *run*, before it a failed *build*
BUILT_ARTIFACT: dict[str, str] = {"cpu": "kernel.so", "gemmini": "gemmini_kernel"}
#: the ``host`` of rows measured on a model rather than on this machine
MODEL_HOST: dict[str, str] = {"gemmini": "gemmini-timing-model"}
#: candidates drawn per round while filling the selection pool
DRAW_CHUNK = 4096
#: evaluations of the search whose best joins the top-K
SEARCH_BUDGET = 2000


# --------------------------------------------------------------------------- selection
@dataclass(frozen=True)
class Selection:
    """The selected mappings (top-K first, best first, then the stratified random ones) and
    how each was picked (``"top-k"`` or ``"random"``)."""

    mappings: MappingBatch
    selection: tuple[str, ...]
    pool: int                      # valid, distinct mappings it was picked from

    def __len__(self) -> int:
        return len(self.selection)


def _keys(m: MappingBatch) -> list[str]:
    return [dataset.mapping_key(m, i) for i in range(len(m))]


def valid_pool(space: Mapspace, size: int, seed: int, *, max_rounds: int = 64) -> MappingBatch:
    """Up to ``size`` distinct valid mappings of ``space`` (valid by the space's rules and
    by the analytical model), drawn uniformly in rounds of :data:`DRAW_CHUNK` candidates;
    the same for a seed."""
    parts: list[MappingBatch] = []
    seen: set[str] = set()
    have = 0
    for r in range(max_rounds):
        dec = space.draw(DRAW_CHUNK, seed, first_chunk=r)
        m = space.decode(dec)
        ok = space.valid_mask(m)
        if ok.any():
            m = m[np.nonzero(ok)[0]]
            ok = ANALYTICAL.cost(space.problem, space.arch, m).valid
            m = m[np.nonzero(ok)[0]]
        keep = []
        for i, k in enumerate(_keys(m)):
            if k not in seen:
                seen.add(k)
                keep.append(i)
        if keep:
            parts.append(m[np.array(keep)])
            have += len(keep)
        if have >= size:
            break
    if not parts:
        raise MapspaceError(f"no valid mapping of {space.problem.name!r} found in "
                            f"{max_rounds * DRAW_CHUNK:,} samples", where="measure")
    pool = MappingBatch.concat(parts)
    return pool[np.arange(min(size, len(pool)))]


def select(space: Mapspace, n: int, seed: int = 0, *, top_k: int | None = None,
           objective: str = "edp", strata: int = 8, pool_size: int | None = None,
           search_budget: int = SEARCH_BUDGET) -> Selection:
    """``n`` valid mappings spanning ``space`` (see the module doc); the same for a seed.

    ``top_k``: how many of the best by the analytical ``objective`` (default ``n // 4``,
    at least 1), the search's best among them; the other ``n - top_k`` are drawn from
    ``strata`` equal-size strata of the rest of the pool by log objective, the same number
    from each.  ``pool_size``: valid mappings to pick from (default ``max(1024, 32 n)``).
    Fewer than ``n`` when the space holds fewer valid mappings."""
    if n < 1:
        raise MapspaceError(f"must be a positive integer, found {n}", where="--n")
    k = max(1, n // 4) if top_k is None else top_k
    if not 0 <= k <= n:
        raise MapspaceError(f"must be between 0 and --n ({n}), found {k}", where="--top-k")
    pool = valid_pool(space, pool_size or max(1024, 32 * n), seed)
    if k and search_budget:
        try:
            best = find_mapping(space, objective=objective, budget=search_budget, seed=seed,
                                where="measure").best_mapping
        except MapspaceError:
            best = None
        if best is not None:
            bk = dataset.mapping_key(best, 0)
            keys = _keys(pool)
            rest = np.array([i for i, x in enumerate(keys) if x != bk], np.int64)
            pool = MappingBatch.concat([best, pool[rest]])
    obj = ANALYTICAL.cost(space.problem, space.arch, pool).objective(objective)
    obj = np.where(np.isfinite(obj), obj, np.inf)
    rank = np.lexsort((np.arange(len(pool)), obj))     # best first, ties by pool order
    top = rank[:min(k, len(pool))]
    rest = rank[len(top):]
    m_rand = min(n - len(top), len(rest))
    rng = np.random.default_rng(seed)
    picked: list[int] = []
    if m_rand > 0:
        s = max(1, min(strata, m_rand))
        bins = np.array_split(rest, s)                  # rest is sorted: equal-size strata
        quota = np.full(s, m_rand // s)
        quota[rng.permutation(s)[:m_rand % s]] += 1
        left: list[int] = []
        for b, q in zip(bins, quota, strict=True):
            take = rng.permutation(len(b))
            picked += [int(b[i]) for i in take[:q]]
            left += [int(b[i]) for i in take[q:]]
        short = m_rand - len(picked)
        if short > 0:                                   # a stratum smaller than its quota
            picked += [left[i] for i in rng.permutation(len(left))[:short]]
        # in order of the objective, best first
        picked.sort(key=lambda i: (obj[i], i))
    idx = np.array([int(i) for i in top] + picked, np.int64)
    return Selection(pool[idx], ("top-k",) * len(top) + ("random",) * len(picked), len(pool))


# --------------------------------------------------------------------------- host
def host_fingerprint(target: Target) -> str:
    """The ``host`` of rows measured on ``target``: for a target run on this machine its CPU
    model (``/proc/cpuinfo``) and usable cores, else the model's name."""
    if target.name in MODEL_HOST:
        return MODEL_HOST[target.name]
    if target.tvm_target != "llvm":
        return f"{target.name}-model"
    model = "unknown CPU"
    for line in (read_text(Path("/proc/cpuinfo")) or "").splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    return f"{model} x{num_cores()} cores"


def measurable(name: str, dtype: str | None = None) -> tuple[Target, Any, str]:
    """``(record, emitter module, dtype)`` of a target that can be measured here; one
    MapspaceError naming ``--target`` otherwise (unknown, no emitter, no C compiler)."""
    t = get_target(name)
    if not t.emitter:
        raise MapspaceError(f"target {name!r} cannot be measured here: it has no emitter "
                            f"(targets that can: {', '.join(emitting_targets())})",
                            where="--target")
    try:
        mod = t.emitter_module()
        if hasattr(mod, "c_compiler"):
            mod.c_compiler()        # gemmini builds its kernel with a C compiler
    except MapspaceError as e:
        raise MapspaceError(f"target {name!r} cannot be measured here: {e.detail}",
                            where="--target") from None
    d = dtype or t.default_dtype
    t.word_bits(d)                  # a dtype the target does not run
    return t, mod, d


def _host_timed(mod: Any) -> bool:
    """Whether the emitter's kernels run on this machine and are timed here."""
    return hasattr(mod, "run_kernel")


# --------------------------------------------------------------------------- builds
@dataclass
class Outcome:
    """What building and measuring one mapping gave."""

    status: str = ""
    error: str = ""
    folder: str = ""
    seconds: float = float("nan")
    spread: float = float("nan")
    repeats: int = 0
    cycles: float = float("nan")
    at: str = ""
    counters: dict[str, Any] = field(default_factory=dict)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _message(e: BaseException) -> str:
    text = str(e).strip() or type(e).__name__
    return f"{type(e).__name__}: {text}"[:2000]


def build_one(target: Target, problem: Problem, mapping: MappingBatch, dtype: str,
              folder: str, seed: int) -> Outcome:
    """Build ``mapping`` with the target's emitter into ``folder``, run it and check it
    against numpy (the emitter's own ``run=True``); never raises.  Status ``"built"`` when
    it ran correctly."""
    mod = target.emitter_module()
    kw: dict[str, Any] = {}
    if "repeat" in inspect.signature(mod.emit).parameters:
        kw["repeat"] = 1            # the timed runs come later, one mapping at a time
    try:
        res = mod.emit(problem, mapping, target.arch(dtype), dtype=dtype, out_dir=folder,
                       run=True, seed=seed, **kw)
    except Exception as e:  # noqa: BLE001 - any failure is a recorded row
        built = BUILT_ARTIFACT.get(target.name)
        failed = "run-failed" if built and (Path(folder) / built).exists() else "build-failed"
        return Outcome(failed, _message(e), folder, at=_now())
    out = Outcome("built", "", folder, at=_now(), counters=dict(res.counters or {}))
    if not res.correct:
        out.status = "wrong-result"
        out.error = f"differs from numpy (max abs error {res.max_abs_error})"
        return out
    if "cycles" in out.counters:
        out.cycles = float(out.counters["cycles"])
    if res.seconds is not None:
        out.seconds = float(res.seconds)
    return out


def _build_job(job: tuple) -> Outcome:
    """Process-pool entry point of :func:`build_one`."""
    return build_one(*job)


def build_task(target: Target, problem: Problem, mapping: MappingBatch, dtype: str,
               folder: str, seed: int, host: str) -> tuple[Outcome, bytes | None]:
    """:func:`build_one` as a backend task (on a Dask worker): where the worker cannot see
    ``folder``'s parent (another machine) it builds in a folder of its own and returns the
    built artifact's bytes; a kernel timed on the client (``cpu``) built on a worker whose
    host differs from ``host`` is a ``build-failed`` outcome (it was compiled for another
    CPU)."""
    mine = host_fingerprint(target)
    if _host_timed(target.emitter_module()) and mine != host:
        return Outcome("build-failed", f"built on another host ({mine}) than the one that "
                       f"times it ({host})", folder, at=_now()), None
    if os.path.isdir(os.path.dirname(folder)):
        return build_one(target, problem, mapping, dtype, folder, seed), None
    with tempfile.TemporaryDirectory(prefix="mapspace-build-") as tmp:
        o = build_one(target, problem, mapping, dtype, os.path.join(tmp, "b"), seed)
        art = Path(tmp) / "b" / BUILT_ARTIFACT.get(target.name, "")
        data = art.read_bytes() if o.status == "built" and art.is_file() else None
    o.folder = folder
    return o, data


def _build_on(be: Backend, jobs_: list[tuple], target: Target,
              done: Callable[[int, Outcome], None]) -> None:
    """The builds as tasks on the Dask backend ``be`` (:func:`build_task`)."""
    host = host_fingerprint(target)
    for i, (o, data) in be.imap(build_task, ((*j, host) for j in jobs_), name="measure-build"):
        if data is not None:        # built on a worker that cannot see our folder
            os.makedirs(o.folder, exist_ok=True)
            (Path(o.folder) / BUILT_ARTIFACT[target.name]).write_bytes(data)
        done(i, o)


def build_all(target: Target, problem: Problem, mappings: MappingBatch, dtype: str, root: str,
              seed: int, jobs: int, progress: Callable[[int], None] | None = None,
              be: Backend | None = None) -> list[Outcome]:
    """:func:`build_one` of every mapping, in ``root/<i>``; ``jobs`` worker processes
    (``1``: in this process), or tasks on ``be`` when it is a Dask backend.  A worker that
    dies takes down only its own mapping's row: the unfinished ones are retried one per
    fresh worker (Dask retries a lost worker's task itself)."""
    jobs_ = [(target, problem, mappings[i], dtype, os.path.join(root, str(i)), seed)
             for i in range(len(mappings))]
    out: list[Outcome | None] = [None] * len(jobs_)

    def done(i: int, o: Outcome) -> None:
        out[i] = o
        if progress:
            progress(1)

    if be is not None and be.client is not None:
        _build_on(be, jobs_, target, done)
        return out  # type: ignore[return-value]
    if jobs <= 1:
        for i, j in enumerate(jobs_):
            done(i, build_one(*j))
        return out  # type: ignore[return-value]
    ctx = get_context("spawn")      # TVM's thread pool does not survive a fork
    retry: list[int] = []
    with ProcessPoolExecutor(max_workers=min(jobs, len(jobs_)), mp_context=ctx) as ex:
        futs = {ex.submit(_build_job, j): i for i, j in enumerate(jobs_)}
        for f, i in futs.items():
            try:
                done(i, f.result())
            except BrokenProcessPool:
                retry.append(i)
    for i in retry:                 # isolate the mapping whose worker died
        with ProcessPoolExecutor(max_workers=1, mp_context=ctx) as ex:
            try:
                done(i, ex.submit(_build_job, jobs_[i]).result())
            except BrokenProcessPool as e:
                built = BUILT_ARTIFACT.get(target.name)
                st = "run-failed" if built and (Path(jobs_[i][4]) / built).exists() \
                    else "build-failed"
                done(i, Outcome(st, f"the worker process died: {_message(e)}", jobs_[i][4],
                                at=_now()))
    return out  # type: ignore[return-value]


# --------------------------------------------------------------------------- timing
def time_built(mod: Any, problem: Problem, dtype: str, folder: str, seed: int, *,
               warmup: int, repeat: int, min_repeat_s: float) -> tuple[float, float, int]:
    """``(median seconds, (p75 - p25) / median, samples)`` of the kernel built in
    ``folder`` (``kernel.so``): loaded, run on the emitter's seeded inputs
    (``mod.run_kernel``), ``warmup`` untimed calls, then ``repeat`` samples of TVM's
    ``time_evaluator`` (each the mean of as many calls as last ``min_repeat_s``)."""
    tvm = import_tvm()
    lib = tvm.runtime.load_module(str(Path(folder) / BUILT_ARTIFACT["cpu"]))
    _, _, args = mod.run_kernel(lib, op_spec(problem), dtype, seed)
    f = lib["main"]
    for _ in range(max(0, warmup)):
        f(*args)
    timer = lib.time_evaluator("main", tvm.cpu(0), number=1, repeat=max(1, repeat),
                               min_repeat_ms=int(round(max(0.0, min_repeat_s) * 1e3)))
    samples = np.asarray(timer(*args).results, np.float64)
    med = float(np.median(samples))
    p25, p75 = np.percentile(samples, [25, 75])
    return med, float((p75 - p25) / med) if med > 0 else float("nan"), len(samples)


def pool_threads() -> int:
    """The size of TVM's CPU thread pool as the cpu emitter sets it."""
    host_threads()
    try:
        return int(os.environ["TVM_NUM_THREADS"])
    except (KeyError, ValueError):
        return num_cores()


# --------------------------------------------------------------------------- driver
@dataclass(frozen=True)
class MeasureResult:
    """The rows written (one per selected mapping) and the whole dataset's size after."""

    rows: pd.DataFrame
    total_rows: int
    pool: int
    seconds: dict[str, float]

    def summary(self) -> dict[str, Any]:
        r = self.rows
        ok = r[r["status"] == "ok"]
        s: dict[str, Any] = {"rows": len(r), "dataset_rows": self.total_rows,
                             "pool": self.pool,
                             "status": {k: int(v) for k, v in r["status"].value_counts()
                                        .items()},
                             "seconds": self.seconds}
        if len(ok):
            fast = ok.loc[ok["measured_s"].idxmin()]
            best = r.loc[r["a_edp"].idxmin()]
            ok_rank = ok["measured_s"].rank(method="min")
            s["fastest"] = {"mapping_key": fast["mapping_key"], "selection": fast["selection"],
                            "measured_s": float(fast["measured_s"]),
                            "a_cycles": float(fast["a_cycles"]),
                            "analytical_rank": int(r["a_edp"].rank(method="min")
                                                   [fast.name])}
            s["analytical_best"] = {
                "mapping_key": best["mapping_key"], "status": best["status"],
                "measured_s": float(best["measured_s"]),
                "a_cycles": float(best["a_cycles"]),
                "measured_rank": int(ok_rank[best.name]) if best.name in ok_rank.index
                else None}
        return s


def _mapping_yaml(m: MappingBatch, problem: Problem, arch: Any) -> str:
    return yaml.safe_dump({"mapping": mapping_to_list(m, problem, arch)}, sort_keys=False,
                          default_flow_style=None, width=100)


def measure(target: str, problem: Problem, *, n: int, seed: int = 0, out: str | Path,
            workload: str | None = None, dtype: str | None = None, top_k: int | None = None,
            objective: str = "edp", jobs: int | None = None, repeat: int = 10,
            warmup: int = 3, min_repeat_s: float = 0.05, search_budget: int = SEARCH_BUDGET,
            progress: Callable[[str, int, int], None] | None = None,
            workers: int | None = None, cluster: str | None = None,
            client: Any = None) -> MeasureResult:
    """Select, build, run and measure ``n`` mappings of ``problem`` on ``target`` and append
    one row each to the dataset ``out`` (see the module doc).  ``workers``/``cluster``/
    ``client`` put the builds on a Dask backend (:func:`compiler.backend.backend`; the
    timing stays in this process).  Bad arguments raise :class:`MapspaceError` before
    anything is built or written."""
    for name, v, lo in (("--n", n, 1), ("--repeat", repeat, 1), ("--warmup", warmup, 0),
                        ("--jobs", jobs if jobs is not None else 1, 1)):
        if v < lo:
            raise MapspaceError(f"must be at least {lo}, found {v}", where=name)
    t, mod, dt = measurable(target, dtype)
    if Path(out).exists():
        dataset.read(out)           # a file that is not a dataset fails before any work
    jobs = jobs or num_cores()
    times: dict[str, float] = {}
    t0 = time.perf_counter()
    space = t.space(problem, dt)
    sel = select(space, n, seed, top_k=top_k, objective=objective,
                 search_budget=search_budget)
    times["select"] = time.perf_counter() - t0
    m = sel.mappings
    emit_arch = t.arch(dt)
    ev = evaluate(problem, space.arch, m)
    rows = dataset.analytical_rows(
        problem, m, ev, target=t.name, host=host_fingerprint(t),
        workload=workload or problem.name, selection=sel.selection,
        mapping_yaml=[_mapping_yaml(m[i], problem, emit_arch) for i in range(len(m))])
    timed = _host_timed(mod)
    threads = pool_threads() if timed else 1
    with tempfile.TemporaryDirectory(prefix="mapspace-measure-") as root:
        t0 = time.perf_counter()
        count = [0]

        def built(k: int) -> None:
            count[0] += k
            if progress:
                progress("build", count[0], len(m))

        with backend(workers, cluster, client) as be:
            outs = build_all(t, problem, m, dt, root, seed, jobs, built, be)
        times["build"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        todo = [i for i, o in enumerate(outs) if o.status == "built"]
        for j, i in enumerate(todo):
            o = outs[i]
            if timed:
                try:
                    o.seconds, o.spread, o.repeats = time_built(
                        mod, problem, dt, o.folder, seed, warmup=warmup, repeat=repeat,
                        min_repeat_s=min_repeat_s)
                    o.status = "ok"
                except Exception as e:  # noqa: BLE001 - a recorded row
                    o.status, o.error = "run-failed", _message(e)
                    o.seconds = float("nan")
                o.at = _now()
            else:
                o.status, o.repeats = "ok", 1
                if np.isfinite(o.cycles):
                    if emit_arch.cycle_seconds:
                        o.seconds = o.cycles * emit_arch.cycle_seconds
                    o.spread = 0.0          # the timing model is deterministic
            if progress:
                progress("time", j + 1, len(todo))
        times["time"] = time.perf_counter() - t0
    nan = float("nan")

    def col(get: Callable[[Outcome], float], dtype: type, failed: float) -> np.ndarray:
        return np.array([get(o) if o.status == "ok" else failed for o in outs], dtype)

    rows["status"] = [o.status for o in outs]
    rows["error"] = [o.error for o in outs]
    rows["measured_at"] = [o.at for o in outs]
    rows["measured_s"] = col(lambda o: o.seconds, np.float64, nan)
    rows["measured_spread"] = col(lambda o: o.spread, np.float64, nan)
    rows["measured_cycles"] = col(lambda o: o.cycles, np.float64, nan)
    rows["repeats"] = col(lambda o: o.repeats, np.int64, 0)
    rows["threads"] = np.full(len(outs), threads, np.int64)
    whole = dataset.append(out, rows)
    return MeasureResult(rows, len(whole), sel.pool, times)


__all__ = ["BUILT_ARTIFACT", "MODEL_HOST", "MeasureResult", "Outcome", "Selection",
           "build_all", "build_one", "host_fingerprint", "measurable", "measure",
           "pool_threads", "select", "time_built", "valid_pool"]
