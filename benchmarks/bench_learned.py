"""The learned cost model against the analytical model and MetaSchedule's XGBoost model, on
CPU workloads held out of training (issue 11, "Must show").

    .venv/bin/python benchmarks/bench_learned.py [--e2e] [--budget 20000] [--repeat 7]

**Ranking** (from the shipped datasets, nothing measured again): the three models are
trained on the same measured rows, ``benchmarks/data/cpu.parquet`` (6 BERT-Base and
ResNet-50 layers), and scored on ``benchmarks/data/cpu_heldout.parquet`` (shapes never
trained on: a 384x1024x4096 matmul, a 3x3 128-channel conv at 20x20, attention scores with
head size 32; ``benchmarks/measure_datasets.py`` measured both):

* ``learned``: :func:`cost_models.learned.train` (gradient-boosted trees on the log ratio
  measured / analytical cycles), the model ``mapspace train`` writes;
* ``analytical``: the analytical model's cycles alone;
* ``xgboost``: MetaSchedule's cost model as its ``XGBModel`` trains it -- the normalised
  throughput ``min cost / cost`` within each workload as the label, squared error,
  ``XGBConfig``'s defaults (max_depth 10, gamma 0.001, min_child_weight 0, eta 0.2) --
  on the same features as ``learned`` (MetaSchedule's own features are of TIR blocks), 200
  boosting rounds (XGBModel stops early on the training set's own peak score).

Per held-out workload: pairwise ranking accuracy, Spearman, Kendall, and whether the
measured best is the model's top-1 / among its top-5 (averaged over workloads, weighted by
rows for the rank statistics).

**End to end** (``--e2e``; builds and times kernels, ~3-6 minutes): for the held-out shapes
and BERT-Base FFN1 (512x768x3072), the kernel of the mapping the analytical model chooses
(``mapspace emit --target cpu``: annealing, ``--budget`` evaluations) and of the one the
learned model chooses among the same search's top 64 (``--cost learned:``), built by the
same emitter, and numpy/OpenBLAS (im2col + one matmul for the conv), timed in interleaved
rounds (``bench_tvm_cpu.interleaved``) with each approach's tuning seconds (search +
re-ranking + LLVM build; the learned model's training time once, and the measurement that
made its data, reported apart).  The machine is a shared 2-core VM: timings move with the
neighbours' load.  The last line printed is one JSON object; notebook 04 reads the one in
``benchmarks/data/bench_learned.json`` (``bench_learned.py --e2e | tail -1 > ...``).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench_tvm_cpu import interleaved, numpy_conv  # noqa: E402
from measure_datasets import DATA, heldout  # noqa: E402

from cost_models import dataset  # noqa: E402
from cost_models.agreement import agreement  # noqa: E402
from cost_models.learned import (  # noqa: E402
    Learned,
    compute_bound,
    dataset_features,
    measured_cycles,
    train,
    usable_rows,
)
from mapspace.workloads import workload  # noqa: E402
from targets.registry import get_target  # noqa: E402

#: MetaSchedule's XGBConfig defaults (tvm.s_tir.meta_schedule.cost_model.xgb_model)
XGB_PARAMS = {"max_depth": 10, "gamma": 0.001, "min_child_weight": 0, "eta": 0.2,
              "objective": "reg:squarederror", "nthread": 1}
XGB_ROUNDS = 200


def normalised_throughput(cost: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """MetaSchedule's label: ``min cost in the group / cost`` (1 for the group's best)."""
    y = np.zeros(len(cost))
    for g in np.unique(groups):
        i = groups == g
        y[i] = cost[i].min() / cost[i]
    return y


def fit_xgboost(X: np.ndarray, cost: np.ndarray, groups: np.ndarray, seed: int) -> Any:
    import xgboost as xgb

    d = xgb.DMatrix(X, label=normalised_throughput(cost, groups))
    return xgb.train({**XGB_PARAMS, "seed": seed}, d, num_boost_round=XGB_ROUNDS)


def learned_cycles(model: Learned, rows: Any, X: np.ndarray, arch: Any) -> np.ndarray:
    """The learned model's cycles of dataset rows (as ``Learned.cost`` computes them)."""
    a = rows["a_cycles"].to_numpy(np.float64)
    pred = a * np.exp(model.log_ratio(X))
    bound = np.array([compute_bound(dataset.problem_of(r), arch) for _, r in rows.iterrows()])
    return np.maximum(pred, bound)


def ranking(train_path: Path, test_path: Path, seed: int) -> tuple[dict, Learned]:
    t = get_target("cpu")
    arch = t.arch()
    cs = arch.cycle_seconds
    tr_all, te_all = dataset.read(train_path), dataset.read(test_path)
    t0 = time.perf_counter()
    model = train(tr_all, target="cpu", arch=arch, seed=seed)
    train_s = time.perf_counter() - t0
    tr, te = usable_rows(tr_all[tr_all["target"] == "cpu"], cs), \
        usable_rows(te_all[te_all["target"] == "cpu"], cs)
    overlap = set(tr["problem_key"]) & set(te["problem_key"])
    if overlap:
        raise SystemExit(f"held-out problems also in the training data: {sorted(overlap)}")
    Xtr, Xte = dataset_features(tr), dataset_features(te)
    t0 = time.perf_counter()
    booster = fit_xgboost(Xtr, measured_cycles(tr, cs), tr["problem_key"].to_numpy(), seed)
    xgb_s = time.perf_counter() - t0
    import xgboost as xgb

    truth = measured_cycles(te, cs)
    groups = te["workload"].to_numpy()
    preds = {"learned": learned_cycles(model, te, Xte, arch),
             "analytical": te["a_cycles"].to_numpy(np.float64),
             # higher predicted throughput is better: rank by its negation
             "xgboost": -np.asarray(booster.predict(xgb.DMatrix(Xte)), np.float64)}
    out: dict[str, Any] = {
        "train_rows": len(tr), "train_workloads": sorted(tr["workload"].unique().tolist()),
        "test_rows": len(te), "test_workloads": sorted(te["workload"].unique().tolist()),
        "test_rows_failed": int(len(te_all) - len(te)),
        "train_seconds": {"learned": train_s, "xgboost": xgb_s},
        "learned_train_holdout": dict(model.meta.get("metrics") or {}),
        "models": {}}
    for name, p in preds.items():
        a = agreement(p, truth, groups, errors=name != "xgboost", seed=seed)
        a["per_workload"] = {w: agreement(p[groups == w], truth[groups == w],
                                          groups[groups == w], errors=name != "xgboost",
                                          seed=seed)
                             for w in sorted(set(groups))}
        out["models"][name] = a
    return out, model


# --------------------------------------------------------------------------- end to end
def e2e(model: Learned, budget: int, repeat: int, seed: int) -> dict:
    from compiler.emit import choose_mapping
    from targets.cpu.emit import build, run_kernel, schedule
    from targets.tvm_common import op_spec, random_inputs

    t = get_target("cpu")
    arch = t.arch()
    shapes = {**heldout(), "bert-base/ffn1": workload("bert-base/ffn1")}
    out: dict[str, Any] = {}
    calls: dict[str, Any] = {}
    for name, p in shapes.items():
        spec = op_spec(p)
        space = t.space(p)
        rec: dict[str, Any] = {}
        built: dict[str, Any] = {}
        for how, rerank in (("analytical", None), ("learned", model)):
            t0 = time.perf_counter()
            m = choose_mapping(space, seed=seed, budget=budget, rerank=rerank)
            search = time.perf_counter() - t0
            key = dataset.mapping_key(m, 0)
            t0 = time.perf_counter()
            lib = built.get(key) or build(schedule(spec, m, arch))
            b = time.perf_counter() - t0
            built[key] = lib
            got, want, args = run_kernel(lib, spec, "float32", seed)
            rec[how] = {"mapping_key": key, "search_seconds": search, "build_seconds": b,
                        "tuning_seconds": search + b,
                        "correct": bool(np.allclose(got, want, rtol=1e-4, atol=1e-2))}
            f = lib["main"]
            calls[f"{name}|{how}"] = (lambda f=f, args=args: f(*args))
        rec["same_mapping"] = rec["analytical"]["mapping_key"] == rec["learned"]["mapping_key"]
        a, w = random_inputs(spec, "float32", seed)
        if spec.kind in ("matmul", "bmm"):
            calls[f"{name}|numpy"] = (lambda a=a, w=w: np.matmul(a, w))
        else:
            calls[f"{name}|numpy"] = (lambda a=a, w=w, spec=spec: numpy_conv(spec, a, w))
        out[name] = rec
        print(f"{name}: analytical {rec['analytical']['mapping_key']} learned "
              f"{rec['learned']['mapping_key']} (same: {rec['same_mapping']})", flush=True)
    ts = interleaved(calls, repeat)
    for name, rec in out.items():
        for how in ("analytical", "learned"):
            rec[how]["seconds"] = ts[f"{name}|{how}"]
        rec["numpy"] = {"seconds": ts[f"{name}|numpy"]}
        rec["learned_over_analytical"] = ts[f"{name}|learned"] / ts[f"{name}|analytical"]
        rec["learned_over_numpy"] = ts[f"{name}|learned"] / ts[f"{name}|numpy"]
        rec["analytical_over_numpy"] = ts[f"{name}|analytical"] / ts[f"{name}|numpy"]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--train", type=Path, default=DATA / "cpu.parquet")
    ap.add_argument("--heldout", type=Path, default=DATA / "cpu_heldout.parquet")
    ap.add_argument("--e2e", action="store_true", help="also build and time the kernels")
    ap.add_argument("--budget", type=int, default=20_000, help="search evaluations (e2e)")
    ap.add_argument("--repeat", type=int, default=7, help="interleaved rounds (e2e)")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    res, model = ranking(a.train, a.heldout, a.seed)
    print(f"trained on {res['train_rows']} rows of {len(res['train_workloads'])} workloads; "
          f"scored on {res['test_rows']} held-out rows of {res['test_workloads']}")
    print(f"{'model':<11} {'pairwise':>8} {'spearman':>8} {'kendall':>8} {'top1':>5} "
          f"{'top5':>5}")
    for name, m in res["models"].items():
        print(f"{name:<11} {m['pairwise']:8.3f} {m['spearman']:8.3f} {m['kendall']:8.3f} "
              f"{m['top1']:5.2f} {m['top5']:5.2f}")
        for w, x in m["per_workload"].items():
            print(f"  {w:<32} pairwise {x['pairwise']:.3f} spearman {x['spearman']:.3f} "
                  f"top1 {x['top1']:.2f} top5 {x['top5']:.2f}")
    if a.e2e:
        res["e2e"] = e2e(model, a.budget, a.repeat, a.seed)
        for name, r in res["e2e"].items():
            print(f"{name}: analytical {r['analytical']['seconds'] * 1e3:.2f} ms "
                  f"(tuned {r['analytical']['tuning_seconds']:.1f} s), learned "
                  f"{r['learned']['seconds'] * 1e3:.2f} ms (tuned "
                  f"{r['learned']['tuning_seconds']:.1f} s), numpy "
                  f"{r['numpy']['seconds'] * 1e3:.2f} ms")
    print(json.dumps(res, default=float))


if __name__ == "__main__":
    main()
