"""A learned cost model: gradient-boosted trees that correct the analytical model's cycles
with measurements (``mapspace measure`` datasets, MetaSchedule's runs).

**What it predicts.**  ``log(measured cycles / analytical cycles)`` of a mapping: the
analytical model's error, not the cycles themselves.  Its cycles are the analytical cycles
times ``exp(prediction)``, at least the compute bound (every MAC unit busy every cycle:
``ceil(MACs / MAC units)``).  A residual over the analytical model extrapolates across
workloads (the scale comes from the analytical model, the trees learn what it misses), and
a model trained on measurements that *are* a fixed multiple of the analytical cycles learns
a constant and ranks exactly as the analytical model does.  Measured cycles are the dataset's
``measured_cycles`` where the target counts them (Gemmini's timing model), else
``measured_s`` over the arch's clock period (``Arch.cycle_seconds``, recorded in the model).
Energy is the analytical model's (nothing measures it); ``edp`` is that energy (J) times the
predicted cycles, ``utilization`` the MACs over (MAC units x predicted cycles).  Validity
(``valid``, ``reasons``) is the analytical model's.

**Features** (:func:`features`, version :data:`FEATURE_VERSION`; :func:`feature_names`):
the problem (log2 MACs, per-tensor sizes, the reduction extent, non-unit dims), the
analytical model's own output (log2 cycles and energy, utilization, the stall ratio
``cycles x PEs / MACs``; per level its cycles, absolute and relative) and the mapping per
storage level: log2 products of its temporal and spatial (X, Y) factors, its non-unit loop
count, per tensor whether it is kept, its tile, reads, fills and updates (log2), the spatial
fan-out over the dims that index it (log2: distinct data vs multicast), the loop order as
the two innermost non-unit loops (which tensors each indexes, log2 factor) and each tensor's
stationarity (how many innermost non-unit loops, and their log2 product, do not index it).
Tensors are placed in :data:`TENSOR_SLOTS` slots -- the first two read-only tensors in the
problem's order, then the output -- so one model serves matmuls and convolutions alike; a
third read-only tensor is not described.  Everything is per batch row (row ``i`` of a batch
has the features of mapping ``i`` alone).

**Model.**  scikit-learn's ``HistGradientBoostingRegressor`` (squared error on the log
ratio, fixed seed, no early stopping, fitted single-threaded so a dataset always gives the
same trees).

**Files.**  :func:`save` writes a ``.skops`` file (never pickle: model files get shared)
holding ``{"meta": plain types, "regressor": the estimator}``; ``meta`` records the format,
:data:`FEATURE_VERSION`, the target, the arch name and level names, the clock, the training
workloads and hosts, the row count, the creation time and the holdout metrics.
:func:`load` refuses, with one :class:`MapspaceError`, a file that is not a zip written by
skops (corrupt), one that names any type outside :data:`TRUSTED_TYPES` (tampered or
foreign: nothing in it is built, let alone run), another feature version, and -- when
asked -- another target or arch.

scikit-learn and skops are imported where a model is fitted, loaded or saved (scikit-learn
takes ~2 s to import); ``import cost_models.learned`` stays light.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from cost_models import dataset
from cost_models.interface import Costs, costs_of
from cost_models.model import Evaluation, evaluate
from mapspace.arch import Arch
from mapspace.atomic import staged_file
from mapspace.errors import MapspaceError
from mapspace.mapping import MappingBatch
from mapspace.problem import Problem

#: the feature layout; a model file of another version is refused
FEATURE_VERSION = 1
#: ``meta["format"]`` of our model files
FORMAT = "mapspace-learned-cost"
#: fewest measured ("ok") rows ``train`` accepts, and MetaSchedule's model waits for
MIN_ROWS = 50
#: tensor slots of the features: two read-only tensors, then the output
TENSOR_SLOTS = 3
#: innermost non-unit loops of each level described one by one
ORDER_DEPTH = 2
#: the only types (beyond skops' defaults: builtins, numpy, scikit-learn estimators) a
#: model file may name; a file naming any other is refused before anything is built
TRUSTED_TYPES: tuple[str, ...] = (
    "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
)
#: the fraction of workloads (or, with one workload, of rows) ``train`` holds out to
#: report its metrics before fitting on everything
HOLDOUT = 0.25


# --------------------------------------------------------------------------- features
def _lg(x: np.ndarray) -> np.ndarray:
    """``log2(1 + x)`` of counts (negative or NaN counted as 0)."""
    x = np.nan_to_num(np.asarray(x, np.float64), nan=0.0, posinf=0.0, neginf=0.0)
    return np.log2(1.0 + np.maximum(x, 0.0))


def _slots(problem: Problem) -> list[int]:
    """Problem tensor index per slot (``-1``: empty): read-only tensors, then the output."""
    out = problem.output_index
    ins = [i for i in range(problem.num_tensors) if i != out][:TENSOR_SLOTS - 1]
    return ins + [-1] * (TENSOR_SLOTS - 1 - len(ins)) + [out]


def feature_names(num_levels: int) -> list[str]:
    """Names of the columns of :func:`features` for an arch of ``num_levels`` levels."""
    S = range(TENSOR_SLOTS)
    names = ["log2_cycles", "log2_energy", "utilization", "log2_stall", "log2_macs",
             "log2_reduction", "nonunit_dims", "log2_pes",
             *(f"log2_size_t{s}" for s in S)]
    for lv in range(num_levels):
        p = f"l{lv}_"
        names += [p + "log2_cycles", p + "log2_cycles_share", p + "log2_temporal",
                  p + "log2_spatial", p + "log2_spatial_x", p + "log2_spatial_y",
                  p + "loops"]
        for s in S:
            names += [p + f"t{s}_{k}" for k in ("keep", "log2_tile", "log2_reads",
                                                 "log2_fills", "log2_updates",
                                                 "log2_fanout", "stationary_loops",
                                                 "log2_stationary")]
        for j in range(ORDER_DEPTH):
            names += [p + f"loop{j}_t{s}" for s in S] + [p + f"loop{j}_log2_factor"]
    return names


def features(problem: Problem, mappings: MappingBatch, *, tile: np.ndarray,
             reads: np.ndarray, fills: np.ndarray, updates: np.ndarray,
             level_cycles: np.ndarray, cycles: np.ndarray, energy_pJ: np.ndarray,
             utilization: np.ndarray) -> np.ndarray:
    """``float64[B, F]`` (module doc; :func:`feature_names`) of ``B`` mappings of
    ``problem`` from the analytical model's figures: ``tile``, ``reads``, ``fills``,
    ``updates`` ``[B, L, T]`` (per instance), ``level_cycles`` ``[B, L]``, ``cycles``,
    ``energy_pJ``, ``utilization`` ``[B]``.  Finite everywhere (an invalid mapping's NaN
    figures count as 0)."""
    m = mappings
    B, L, D = m.temporal.shape
    slots = _slots(problem)
    rel = np.zeros((TENSOR_SLOTS, D), bool)
    for s, t in enumerate(slots):
        if t >= 0:
            rel[s] = problem.relevance[t]

    def per_slot(a: np.ndarray) -> np.ndarray:       # [B, L, T] -> [B, L, S]
        out = np.zeros((B, L, TENSOR_SLOTS))
        for s, t in enumerate(slots):
            if t >= 0:
                out[:, :, s] = a[:, :, t]
        return out

    cols: list[np.ndarray] = []
    lcyc = np.log2(np.maximum(np.nan_to_num(np.asarray(cycles, np.float64)), 1.0))
    pes = m.spatial.prod(axis=(1, 2)).astype(np.float64)
    sizes = np.asarray(problem.sizes, np.float64)
    out_rel = problem.relevance[problem.output_index]
    cols += [lcyc, _lg(energy_pJ), np.nan_to_num(np.asarray(utilization, np.float64)),
             lcyc + np.log2(np.maximum(pes, 1.0)) - math.log2(problem.macs),
             np.full(B, math.log2(problem.macs)),
             np.full(B, float(np.log2(sizes[~out_rel]).sum())),
             np.full(B, float((sizes > 1).sum())), np.log2(np.maximum(pes, 1.0))]
    for t in slots:
        cols.append(np.full(B, math.log2(problem.tensor_size(t)) if t >= 0 else 0.0))

    tl, sl = np.log2(np.maximum(m.temporal, 1)), np.log2(np.maximum(m.spatial, 1))
    lvc = _lg(level_cycles)
    keep = per_slot(m.keep.astype(np.float64))
    counts = [per_slot(_lg(a)) for a in (tile, reads, fills, updates)]
    fanout = np.einsum("bld,sd->bls", sl, rel.astype(np.float64))
    # the loop order: innermost first, non-unit loops before unit ones
    order = np.clip(m.order, 0, D - 1)
    fac = np.take_along_axis(tl, order, axis=2)                    # log2 factor, [B, L, D]
    nonunit = fac > 0
    pos = np.argsort(~nonunit, axis=2, kind="stable")
    dims = np.take_along_axis(order, pos, axis=2)
    fac = np.take_along_axis(fac, pos, axis=2)
    nonunit = np.take_along_axis(nonunit, pos, axis=2)
    indexes = rel[:, dims]                                         # [S, B, L, D]
    run = np.cumprod(~indexes | ~nonunit, axis=3).astype(bool)     # innermost loops not
    stat_n = (run & nonunit).sum(axis=3).transpose(1, 2, 0)        # indexing the tensor
    stat_f = (run * fac).sum(axis=3).transpose(1, 2, 0)
    for lv in range(L):
        cols += [lvc[:, lv], lvc[:, lv] - _lg(cycles), tl[:, lv].sum(axis=1),
                 sl[:, lv].sum(axis=1), (sl[:, lv] * m.spatial_x[:, lv]).sum(axis=1),
                 (sl[:, lv] * ~m.spatial_x[:, lv]).sum(axis=1),
                 nonunit[:, lv].sum(axis=1).astype(np.float64)]
        for s in range(TENSOR_SLOTS):
            cols += [keep[:, lv, s], *(c[:, lv, s] for c in counts), fanout[:, lv, s],
                     stat_n[:, lv, s].astype(np.float64), stat_f[:, lv, s]]
        for j in range(ORDER_DEPTH):
            on = nonunit[:, lv, j] if j < D else np.zeros(B, bool)
            for s in range(TENSOR_SLOTS):
                cols.append((indexes[s, :, lv, j] & on).astype(np.float64) if j < D
                            else np.zeros(B))
            cols.append(np.where(on, fac[:, lv, j], 0.0) if j < D else np.zeros(B))
    return np.nan_to_num(np.column_stack(cols), nan=0.0, posinf=0.0, neginf=0.0)


def evaluation_features(ev: Evaluation, mappings: MappingBatch) -> np.ndarray:
    """:func:`features` of ``mappings`` from their analytical :class:`Evaluation`."""
    dm, c = ev.movement, ev.cost
    return features(ev.problem, mappings, tile=dm.tile, reads=dm.reads, fills=dm.fills,
                    updates=dm.updates, level_cycles=c.level_cycles, cycles=c.cycles,
                    energy_pJ=c.energy, utilization=c.utilization)


def dataset_features(rows: pd.DataFrame) -> np.ndarray:
    """:func:`features` of dataset rows (:mod:`cost_models.dataset`) from their stored
    analytical columns, in row order (no arch needed)."""
    rows = rows.reset_index(drop=True)
    X: np.ndarray | None = None
    for _, g in rows.groupby(["problem_key", "L", "D", "T"], sort=False):
        problem = dataset.problem_of(g.iloc[0])
        m = dataset.mappings_of(g)
        L, T = m.num_levels, problem.num_tensors

        def arr(col: str, shape: tuple[int, ...], g: pd.DataFrame = g) -> np.ndarray:
            return np.array([np.asarray(v, np.float64) for v in g[col]]).reshape(-1, *shape)

        f = features(problem, m, tile=arr("a_tile", (L, T)), reads=arr("a_reads", (L, T)),
                     fills=arr("a_fills", (L, T)), updates=arr("a_updates", (L, T)),
                     level_cycles=arr("a_level_cycles", (L,)),
                     cycles=g["a_cycles"].to_numpy(np.float64),
                     energy_pJ=g["a_energy_pJ"].to_numpy(np.float64),
                     utilization=g["a_utilization"].to_numpy(np.float64))
        if X is None:
            X = np.zeros((len(rows), f.shape[1]))
        X[g.index.to_numpy()] = f
    return np.zeros((0, 0)) if X is None else X


# --------------------------------------------------------------------------- the model
@dataclass(frozen=True, eq=False)
class Learned:
    """The learned :class:`~cost_models.interface.CostModel` (module doc): a fitted
    regressor of the log ratio measured / analytical cycles and its ``meta`` (plain types:
    target, arch, levels, feature version, training workloads, ...).  Made by
    :func:`train`, :func:`fit` or :func:`load`; ``detail`` of its costs is the analytical
    :class:`~cost_models.model.Evaluation`."""

    regressor: Any
    meta: Mapping[str, Any] = field(default_factory=dict)
    name: str = "learned"

    def check_arch(self, arch: Arch, where: str = "learned model") -> None:
        """MapspaceError unless ``arch`` has the levels the model was trained on."""
        levels = list(self.meta.get("levels", []))
        if list(arch.level_names) != levels:
            raise MapspaceError(
                f"the learned model was trained for levels {', '.join(levels)} (target "
                f"{self.meta.get('target')!r}), found arch {arch.name!r} with "
                f"{', '.join(arch.level_names)}", where=where)

    def check(self, *, target: str | None = None, arch: Arch | None = None,
              where: str = "learned model") -> None:
        """MapspaceError unless the model was trained for ``target`` (when given) and for
        ``arch``: its levels, and its name when no ``target`` is given."""
        m = self.meta
        if target is not None and m.get("target") != target:
            raise MapspaceError(f"the model was trained for target {m.get('target')!r}, not "
                                f"{target!r}", where=where)
        if arch is not None:
            if target is None and m.get("arch") != arch.name:
                raise MapspaceError(f"the model was trained for arch {m.get('arch')!r} "
                                    f"(target {m.get('target')!r}), not {arch.name!r}",
                                    where=where)
            self.check_arch(arch, where)

    def log_ratio(self, X: np.ndarray) -> np.ndarray:
        """Predicted ``log(measured / analytical cycles)`` of feature rows ``X``."""
        if len(X) == 0:
            return np.zeros(0)
        return np.asarray(self.regressor.predict(X), np.float64)

    def cost(self, problem: Problem, arch: Arch, mappings: MappingBatch) -> Costs:
        self.check_arch(arch)
        ev = evaluate(problem, arch, mappings)
        base = costs_of(ev)
        v = base.valid
        cycles = np.zeros(len(v))
        if v.any():
            idx = np.flatnonzero(v)
            X = evaluation_features(ev, mappings)[idx]
            pred = base.cycles[idx] * np.exp(self.log_ratio(X))
            cycles[idx] = np.maximum(pred, compute_bound(problem, arch))
        energy = np.where(v, base.energy_pJ, np.nan)
        safe = np.where(v, cycles, 1.0)
        util = np.where(v, problem.macs / (arch.compute.instances * safe), np.nan)
        return Costs(cycles=cycles, energy_pJ=energy, edp=energy * 1e-12 * cycles,
                     utilization=util, valid=v, reasons=base.reasons, detail=ev)

    def describe(self) -> str:
        m = self.meta
        return (f"learned model for {m.get('target')!r} ({m.get('n_rows', 0):,} rows of "
                f"{len(m.get('workloads', []))} workloads, feature version "
                f"{m.get('feature_version')})")


def compute_bound(problem: Problem, arch: Arch) -> float:
    """``ceil(MACs / MAC units)``: no mapping takes fewer cycles."""
    return float(max(1, -(-problem.macs // max(1, arch.compute.instances))))


def _regressor(seed: int) -> Any:
    from sklearn.ensemble import HistGradientBoostingRegressor

    return HistGradientBoostingRegressor(
        loss="squared_error", learning_rate=0.1, max_iter=200, max_leaf_nodes=15,
        max_bins=63, min_samples_leaf=10, l2_regularization=1.0, early_stopping=False,
        random_state=seed)


def _fit_regressor(X: np.ndarray, y: np.ndarray, seed: int) -> Any:
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1, "openmp"):  # the same trees whatever the core count
        return _regressor(seed).fit(X, y)


def fit(X: np.ndarray, analytical_cycles: np.ndarray, measured_cycles: np.ndarray, *,
        meta: Mapping[str, Any], seed: int = 0) -> Learned:
    """A :class:`Learned` model fitted on feature rows ``X`` (:func:`features`) with
    targets ``log(measured_cycles / analytical_cycles)``; ``meta`` needs ``target``,
    ``arch``, ``levels`` and ``cycle_seconds`` (the rest is filled in)."""
    y = np.log(np.asarray(measured_cycles, np.float64)) \
        - np.log(np.asarray(analytical_cycles, np.float64))
    reg = _fit_regressor(np.asarray(X, np.float64), y, seed)
    full = {"format": FORMAT, "feature_version": FEATURE_VERSION,
            "n_features": int(X.shape[1]), "n_rows": int(len(y)),
            "created": datetime.now(UTC).isoformat(timespec="seconds"), **dict(meta)}
    return Learned(reg, full)


def measured_cycles(rows: pd.DataFrame, cycle_seconds: float) -> np.ndarray:
    """Measured cycles of dataset rows: ``measured_cycles`` where counted, else
    ``measured_s / cycle_seconds``; NaN where neither is a positive number."""
    mc = pd.to_numeric(rows["measured_cycles"], errors="coerce").to_numpy(np.float64)
    ms = pd.to_numeric(rows["measured_s"], errors="coerce").to_numpy(np.float64)
    out = np.where(np.isfinite(mc) & (mc > 0), mc, ms / cycle_seconds)
    return np.where(np.isfinite(out) & (out > 0), out, np.nan)


def usable_rows(rows: pd.DataFrame, cycle_seconds: float) -> pd.DataFrame:
    """The rows a model trains on: status ``ok``, a positive measurement, positive
    analytical cycles (reindexed from 0)."""
    ok = (rows["status"] == "ok").to_numpy() & np.isfinite(measured_cycles(rows,
                                                                           cycle_seconds))
    a = pd.to_numeric(rows["a_cycles"], errors="coerce").to_numpy(np.float64)
    ok &= np.isfinite(a) & (a > 0)
    return rows[ok].reset_index(drop=True)


def pairwise_accuracy(pred: np.ndarray, truth: np.ndarray, groups: np.ndarray, *,
                      max_pairs: int = 2_000_000, seed: int = 0) -> float:
    """Of the pairs of rows in the same group whose ``truth`` differs, the fraction that
    ``pred`` orders the same way (a tie in ``pred`` counts half); NaN without such pairs.
    Groups with more than ``sqrt(max_pairs)`` rows are scored on that many random pairs."""
    rng = np.random.default_rng(seed)
    agree = total = 0.0
    for g in pd.unique(groups):
        idx = np.flatnonzero(groups == g)
        n = len(idx)
        if n < 2:
            continue
        if n * n <= max_pairs:
            i, j = np.triu_indices(n, 1)
        else:
            i, j = rng.integers(0, n, max_pairs), rng.integers(0, n, max_pairs)
        dt = np.sign(truth[idx[i]] - truth[idx[j]])
        dp = np.sign(pred[idx[i]] - pred[idx[j]])
        keep = dt != 0
        agree += float((dp[keep] == dt[keep]).sum() + 0.5 * (dp[keep] == 0).sum())
        total += float(keep.sum())
    return agree / total if total else float("nan")


def spearman(pred: np.ndarray, truth: np.ndarray, groups: np.ndarray) -> float:
    """Spearman rank correlation within each group, averaged weighted by group size
    (groups of fewer than 3 rows, or constant ones, skipped); NaN when none is left."""
    num = den = 0.0
    for g in pd.unique(groups):
        idx = np.flatnonzero(groups == g)
        if len(idx) < 3:
            continue
        a = pd.Series(pred[idx]).rank().to_numpy()
        b = pd.Series(truth[idx]).rank().to_numpy()
        if a.std() == 0 or b.std() == 0:
            continue
        num += float(np.corrcoef(a, b)[0, 1]) * len(idx)
        den += len(idx)
    return num / den if den else float("nan")


def _holdout(rows: pd.DataFrame, seed: int) -> tuple[np.ndarray, str]:
    """A boolean holdout mask: whole workloads when there are several (at least one, at
    most all but one), else a random :data:`HOLDOUT` of the rows."""
    rng = np.random.default_rng(seed)
    names = sorted(rows["workload"].astype(str).unique())
    if len(names) > 1:
        k = min(len(names) - 1, max(1, round(HOLDOUT * len(names))))
        held = sorted(names[i] for i in rng.permutation(len(names))[:k])
        return rows["workload"].astype(str).isin(held).to_numpy(), \
            "workloads " + ", ".join(held)
    mask = np.zeros(len(rows), bool)
    mask[rng.permutation(len(rows))[:max(1, round(HOLDOUT * len(rows)))]] = True
    return mask, f"{100 * HOLDOUT:.0f}% of the rows"


def holdout_metrics(X: np.ndarray, rows: pd.DataFrame, measured: np.ndarray,
                    seed: int = 0) -> dict[str, Any]:
    """Fit on all but a holdout (:func:`_holdout`) and score the holdout: pairwise ranking
    accuracy and Spearman correlation within each problem, of the learned model's and of
    the analytical model's cycles against the measured ones."""
    mask, what = _holdout(rows, seed)
    a = rows["a_cycles"].to_numpy(np.float64)
    reg = _fit_regressor(X[~mask], np.log(measured[~mask]) - np.log(a[~mask]), seed)
    pred = np.log(a[mask]) + reg.predict(X[mask])
    truth, groups = np.log(measured[mask]), rows["problem_key"].to_numpy()[mask]
    return {"holdout": what, "holdout_rows": int(mask.sum()),
            "pairwise_learned": pairwise_accuracy(pred, truth, groups, seed=seed),
            "pairwise_analytical": pairwise_accuracy(np.log(a[mask]), truth, groups,
                                                     seed=seed),
            "spearman_learned": spearman(pred, truth, groups),
            "spearman_analytical": spearman(np.log(a[mask]), truth, groups)}


def train(rows: pd.DataFrame, *, target: str, arch: Arch, seed: int = 0,
          min_rows: int = MIN_ROWS, where: str = "train") -> Learned:
    """A :class:`Learned` model of ``target`` (whose arch is ``arch``: its levels, its
    clock) from dataset rows: the usable rows (:func:`usable_rows`) of that target; at
    least ``min_rows`` of them, else :class:`MapspaceError`.  ``meta["metrics"]`` holds
    :func:`holdout_metrics` (after which the model is fitted on every row)."""
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) \
            or not 0 <= seed < 2**32:
        raise MapspaceError(f"must be an integer from 0 to 2**32-1, found {seed!r}",
                            where=where, key="seed")
    rows = rows[rows["target"] == target]
    ok = usable_rows(rows, arch.cycle_seconds)
    if len(ok) < min_rows:
        raise MapspaceError(
            f"{len(ok)} measured (status ok) rows of target {target!r}"
            f"{f' out of {len(rows)}' if len(rows) != len(ok) else ''}; a learned model "
            f"needs at least {min_rows}: measure more with `mapspace measure`", where=where)
    bad = sorted(set(ok["L"].astype(int)) - {arch.num_levels})
    if bad:
        raise MapspaceError(f"rows with {bad[0]} storage levels; target {target!r} has "
                            f"{arch.num_levels} ({', '.join(arch.level_names)})", where=where)
    X = dataset_features(ok)
    measured = measured_cycles(ok, arch.cycle_seconds)
    metrics = holdout_metrics(X, ok, measured, seed) if len(ok) >= 2 * 10 else {}
    metrics = {k: (None if isinstance(v, float) and not math.isfinite(v) else v)
               for k, v in metrics.items()}
    meta = {"target": target, "arch": arch.name, "levels": list(arch.level_names),
            "cycle_seconds": float(arch.cycle_seconds),
            "workloads": sorted(ok["workload"].astype(str).unique().tolist()),
            "hosts": sorted(ok["host"].astype(str).unique().tolist()),
            "seed": int(seed), "metrics": metrics}
    return fit(X, ok["a_cycles"].to_numpy(np.float64), measured, meta=meta, seed=seed)


# --------------------------------------------------------------------------- files
def save(model: Learned, path: str | Path, *, where: str = "--out") -> Path:
    """Write ``model`` to ``path`` as a ``.skops`` file, atomically."""
    import skops.io as sio

    meta = json.loads(json.dumps(dict(model.meta)))  # plain types only
    with staged_file(path, where=where) as tmp:
        sio.dump({"meta": meta, "regressor": model.regressor}, tmp)
    return Path(path)


def _refuse(path: str | Path, why: str, where: str) -> MapspaceError:
    return MapspaceError(f"{why}", where=f"{where} {str(path)!r}" if where else str(path))


def load(path: str | Path, *, target: str | None = None, arch: Arch | None = None,
         where: str = "") -> Learned:
    """The :class:`Learned` model saved at ``path`` (module doc: what is refused).
    ``target``: the model must have been trained for it; ``arch``: when no ``target`` is
    given its name must be the model's arch, and in any case its levels the model's."""
    p = Path(path)
    if not p.is_file():
        raise _refuse(p, "not a regular file" if p.exists() else "no such model file", where)
    import skops.io as sio
    from sklearn.ensemble import HistGradientBoostingRegressor

    try:
        untrusted = sio.get_untrusted_types(file=p)
    except Exception as e:  # any failure to read the schema: not a (whole) skops file
        raise _refuse(p, f"not a readable .skops model file ({type(e).__name__}: {e})",
                      where) from None
    foreign = sorted(set(untrusted) - set(TRUSTED_TYPES))
    if foreign:
        raise _refuse(p, f"refusing to load: the file names types a mapspace learned model "
                      f"never holds ({', '.join(foreign)}); it was tampered with or is not "
                      "ours", where)
    try:
        obj = sio.load(p, trusted=list(TRUSTED_TYPES))
    except Exception as e:  # a schema of trusted types that does not build: corrupt
        raise _refuse(p, f"not a readable .skops model file ({type(e).__name__}: {e})",
                      where) from None
    if not (isinstance(obj, dict) and isinstance(obj.get("meta"), dict)
            and obj["meta"].get("format") == FORMAT):
        raise _refuse(p, "not a mapspace learned cost model (no meta with format "
                      f"{FORMAT!r}; write one with `mapspace train`)", where)
    meta, reg = obj["meta"], obj.get("regressor")
    if meta.get("feature_version") != FEATURE_VERSION:
        raise _refuse(p, f"the model was trained on feature version "
                      f"{meta.get('feature_version')!r}, this mapspace computes version "
                      f"{FEATURE_VERSION}: retrain it with `mapspace train`", where)
    if not isinstance(reg, HistGradientBoostingRegressor) \
            or getattr(reg, "n_features_in_", None) != meta.get("n_features") \
            or meta.get("n_features") != len(feature_names(len(meta.get("levels", [])))):
        raise _refuse(p, "the regressor does not match its recorded features", where)
    model = Learned(reg, meta)
    try:
        model.check(target=target, arch=arch)
    except MapspaceError as e:
        raise _refuse(p, e.detail, where) from None
    return model


#: the ``--cost`` choices
COST_SCHEMES: tuple[str, ...] = ("analytical", "learned:MODEL.skops")


def cost_model_of(spec: Any, *, target: str | None = None, arch: Arch | None = None,
                  where: str = "--cost") -> Any:
    """The re-ranking model a ``--cost`` value names: ``None`` for ``analytical`` (or
    nothing), the loaded model for ``learned:PATH`` (:func:`load`, checked against
    ``target``/``arch``); a :class:`Learned` already loaded, checked the same way; any
    other cost model (an object with ``cost``) as given; one :class:`MapspaceError`
    naming ``where`` otherwise."""
    if spec is None or spec == "analytical":
        return None
    if isinstance(spec, Learned):
        spec.check(target=target, arch=arch, where=where)
        return spec
    if not isinstance(spec, str) and callable(getattr(spec, "cost", None)):
        return spec
    if not isinstance(spec, str) or not spec.startswith("learned:") \
            or not spec[len("learned:"):].strip():
        raise MapspaceError(f"expected analytical or learned:MODEL.skops, found {spec!r}",
                            where=where)
    return load(spec[len("learned:"):], target=target, arch=arch, where=where)


def rows_for(problem: Problem, arch: Arch,
             mappings: MappingBatch) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(features, analytical cycles, valid)`` of ``mappings``: training rows made outside
    a dataset (MetaSchedule's measurements); only the ``valid`` rows are usable."""
    ev = evaluate(problem, arch, mappings)
    return (evaluation_features(ev, mappings), ev.cost.cycles.astype(np.float64),
            np.asarray(ev.valid, bool))


__all__ = ["COST_SCHEMES", "FEATURE_VERSION", "FORMAT", "MIN_ROWS", "TENSOR_SLOTS",
           "TRUSTED_TYPES", "Learned", "compute_bound", "cost_model_of",
           "dataset_features", "evaluation_features", "feature_names", "features", "fit",
           "holdout_metrics", "load", "measured_cycles", "pairwise_accuracy", "rows_for",
           "save", "spearman", "train", "usable_rows"]
