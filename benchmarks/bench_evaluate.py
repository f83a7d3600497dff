"""Batch vs scalar evaluation speed of the analytical model (issue: core).

100K random *valid* mappings of BERT-Base FFN1 (512x768x3072) on ``gemmini`` are evaluated
(validity + data movement + pricing) as one batch, with 1 and with all threads, and a
sample of them one at a time through the same API (the scalar path is a batch of one).
Both runs happen here, now, on this machine; the last line printed is one JSON object.

    .venv/bin/python benchmarks/bench_evaluate.py [--samples 100000] [--scalar 2000]
        [--sparse 10000]

``--sparse K`` also prices the first K mappings with Timeloop's sparse model
(``cost_models/sparseloop.py``, ``PrunedWeights`` 2:4 on the weights) beside the dense model
on the same rows, and the first K/5 with unstructured 50 % pruning (hypergeometric
weights, bitmask formats); each the best of three calls, after one call on two rows (every
call starts cold: nothing is kept between calls).
"""

from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np


def best_of(fn, repeat: int = 3) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--samples", type=int, default=100_000)
    ap.add_argument("--scalar", type=int, default=2_000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--sparse", type=int, default=10_000,
                    help="mappings priced by Timeloop's sparse model (2:4 weights)")
    args = ap.parse_args()
    for name in ("samples", "scalar", "sparse"):
        if getattr(args, name) < 1:
            ap.error(f"--{name} must be at least 1")

    import numba

    from cost_models import evaluate
    from mapspace.mapping_yaml import load_mapping
    from mapspace.naive_random import random_valid
    from mapspace.workloads import workload
    from targets import load_target

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    arch = load_target("gemmini")
    problem = workload("bert-base/ffn1")
    keep = load_mapping(os.path.join(root, "targets/gemmini/examples/bert_ffn1_good.yaml"),
                        problem, arch).keep[0]
    t = time.perf_counter()
    batch, drawn = random_valid(problem, arch, args.samples, args.seed, keep)
    gen_s = time.perf_counter() - t
    print(f"generated {len(batch)} valid mappings from {drawn} candidates in {gen_s:.1f} s")

    evaluate(problem, arch, batch[:16])                       # compile / load the kernels
    threads = numba.get_num_threads()
    numba.set_num_threads(1)
    t1 = best_of(lambda: evaluate(problem, arch, batch))
    numba.set_num_threads(threads)
    tn = best_of(lambda: evaluate(problem, arch, batch))
    full = evaluate(problem, arch, batch)
    assert full.valid.all()

    k = min(args.scalar, len(batch))
    t = time.perf_counter()
    singles = [evaluate(problem, arch, batch[i]) for i in range(k)]
    ts = (time.perf_counter() - t) / k
    same = all(s.cost.cycles[0] == full.cost.cycles[i] and s.cost.energy[0] == full.cost.energy[i]
               for i, s in enumerate(singles))

    # Timeloop's sparse model (cost_models/sparseloop.py) on the same mappings, weights 2:4
    from cost_models.sparseloop import PrunedWeights

    ks = min(args.sparse, len(batch))
    sparse_model = PrunedWeights(0.5, "nm", (2, 4))
    sub = batch[:ks]
    sparse_model.cost(problem, arch, sub[:2])
    sc = sparse_model.cost(problem, arch, sub)
    tsp = best_of(lambda: sparse_model.cost(problem, arch, sub))
    td = best_of(lambda: evaluate(problem, arch, sub))
    # unstructured 50 % (hypergeometric weights, bitmask formats) on a fifth of the rows
    ku = max(1, ks // 5)
    unstructured = PrunedWeights(0.5, "magnitude")
    unstructured.cost(problem, arch, sub[:2])
    tsu = best_of(lambda: unstructured.cost(problem, arch, sub[:ku]))
    tdu = best_of(lambda: evaluate(problem, arch, sub[:ku]))

    n = len(batch)
    result = {
        "benchmark": "bench_evaluate",
        "problem": problem.name, "target": "gemmini", "mappings": n,
        "threads": threads,
        "batch_evals_per_s": n / tn,
        "batch_evals_per_s_1thread": n / t1,
        "scalar_evals_per_s": 1 / ts,
        "batch_over_scalar": (n / tn) * ts,
        "scalar_equals_batch": same,
        "goal_evals_per_s": 1_000_000,
        "best_edp_J_cycles": float(np.nanmin(full.cost.edp)),
        "generation_s": gen_s,
        "sparse_mappings": ks,
        "sparse_evals_per_s": ks / tsp,
        "dense_evals_per_s_same_rows": ks / td,
        "sparse_over_dense_time": tsp / td,
        "sparse_valid": int(sc.valid.sum()),
        "unstructured_mappings": ku,
        "unstructured_evals_per_s": ku / tsu,
        "unstructured_over_dense_time": tsu / tdu,
        "sparse_median_cycles_ratio": float(np.nanmedian(
            sc.cycles[sc.valid] / full.cost.cycles[:ks][sc.valid])),
    }
    print(f"batch: {n / tn:,.0f} evaluations/s ({threads} threads), "
          f"{n / t1:,.0f}/s (1 thread); scalar: {1 / ts:,.0f}/s; "
          f"ratio {result['batch_over_scalar']:.0f}x; scalar == batch: {same}")
    print(f"sparse (Timeloop's sparse model, 2:4 weights): {ks / tsp:,.0f} evaluations/s "
          f"beside dense {ks / td:,.0f}/s on the same {ks} mappings "
          f"({tsp / td:,.0f}x the time); unstructured 50 %: {ku / tsu:,.0f}/s on {ku} "
          f"({tsu / tdu:,.0f}x the dense time)")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
