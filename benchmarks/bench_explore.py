"""Sampling + evaluation throughput of ``explore`` (issue: mapspace), and end-to-end CLI time.

For BERT-Base FFN1 and ResNet-50 conv3_x on ``gemmini`` (default constraints), measured in
this run: valid mappings sampled and priced per second (best of ``--reps``), the acceptance
rate, and a 100K-sample ``mapspace explore ... --out run.parquet`` from process start to the
Parquet file written.  Baselines in the same run: the previous compiled kernel
(``explore(..., legacy=True)``, issue 13 item 4; runs alternate with the current one, so
load affects both alike: ``speedup_over_previous`` is best wall time previous / current,
``cpu_speedup_over_previous`` the same with process CPU seconds, ``one_thread_*`` the same
runs on one thread: the figure a busy neighbour on the other core leaves intact) and the simple
rejection generator (``mapspace.naive_random``) + the same evaluation.  The last line is
one JSON object.

    .venv/bin/python benchmarks/bench_explore.py [--samples 100000] [--reps 3]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np


def _kernel_ns_per_valid(space, reps: int) -> dict[bool, float]:
    """CPU ns per valid candidate of the compiled sample-and-price alone, on one thread
    (best of ``reps`` rounds of 16 chunks each, current and previous kernel alternating)."""
    from cost_models.explore import SampleAndPrice
    from mapspace.kernels import kernel_threads

    runs = {legacy: SampleAndPrice(space, legacy=legacy) for legacy in (False, True)}
    best = {False: float("inf"), True: float("inf")}
    with kernel_threads(1):
        for rep in range(reps):
            for legacy, run in runs.items():
                c = time.process_time()
                ok = run(16 * 4096, rep)[1]
                best[legacy] = min(best[legacy], (time.process_time() - c) / ok.sum() * 1e9)
    return best


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--samples", type=int, default=100_000)
    ap.add_argument("--reps", type=int, default=3)
    args = ap.parse_args()

    from compiler.explore import explore
    from cost_models import evaluate
    from mapspace.kernels import kernel_threads
    from mapspace.naive_random import random_valid
    from mapspace.space import Mapspace
    from mapspace.workloads import workload
    from targets import default_constraints, load_target

    arch = load_target("gemmini")
    cons = default_constraints("gemmini")
    out: dict = {"benchmark": "bench_explore", "samples": args.samples, "layers": {}}
    for name in ("bert-base/ffn1", "resnet50/conv3_x"):
        p = workload(name)
        explore(p, arch, cons, 1000, 0)                          # compile / load kernels
        explore(p, arch, cons, 1000, 0, legacy=True)
        wall = {False: [], True: []}
        cpu = {False: [], True: []}
        one = {False: [], True: []}                  # wall time on one thread
        for rep in range(args.reps):
            edp = {}
            for legacy in (False, True):                           # alternate: same load
                t, c = time.perf_counter(), time.process_time()
                r = explore(p, arch, cons, args.samples, rep, legacy=legacy)
                wall[legacy].append(time.perf_counter() - t)
                cpu[legacy].append(time.process_time() - c)
                edp[legacy] = r.costs["edp"]
                with kernel_threads(1):
                    t = time.perf_counter()
                    explore(p, arch, cons, args.samples, rep, legacy=legacy)
                    one[legacy].append(time.perf_counter() - t)
            if not np.array_equal(edp[False], edp[True]):
                sys.exit(f"{name}: the current and previous kernels disagree (seed {rep})")
        r = explore(p, arch, cons, args.samples, 0)
        best, prev = min(wall[False]), min(wall[True])
        kernel = _kernel_ns_per_valid(Mapspace(p, arch, cons), args.reps)
        # baseline: the issue-2 rejection generator, then the same evaluation
        keep = r.best_mapping().keep[0]
        n_base = max(1000, args.samples // 20)
        t = time.perf_counter()
        m, _ = random_valid(p, arch, n_base, 0, keep)
        evaluate(p, arch, m)
        base = (time.perf_counter() - t) / n_base
        out["layers"][name] = {
            "valid_per_s": args.samples / best,
            "previous_valid_per_s": args.samples / prev,
            "speedup_over_previous": prev / best,
            "one_thread_valid_per_s": args.samples / min(one[False]),
            "previous_one_thread_valid_per_s": args.samples / min(one[True]),
            "one_thread_speedup_over_previous": min(one[True]) / min(one[False]),
            "cpu_s": min(cpu[False]), "previous_cpu_s": min(cpu[True]),
            "cpu_speedup_over_previous": min(cpu[True]) / min(cpu[False]),
            # explore's CPU per valid sample on one core: 2 cores at most double it
            "cpu_valid_per_s_per_core": args.samples / min(cpu[False]),
            "kernel_cpu_ns_per_valid": kernel[False],
            "previous_kernel_cpu_ns_per_valid": kernel[True],
            "kernel_cpu_speedup_over_previous": kernel[True] / kernel[False],
            "acceptance": r.summary["acceptance"],
            "baseline_valid_per_s": 1 / base,
            "speedup_over_baseline": (args.samples / best) * base,
            "edp_min": r.summary["edp_min"],
            "spread_orders_of_magnitude": r.summary["spread_orders_of_magnitude"],
            "median_over_best": r.summary["median_over_best"],
            "within_2x_of_best": r.summary["within_2x_of_best"],
        }
        print(f"{name}: {args.samples / best:,.0f} valid mappings/s "
              f"(acceptance {100 * r.summary['acceptance']:.1f}%), previous kernel "
              f"{args.samples / prev:,.0f}/s ({prev / best:.2f}x wall, "
              f"{min(cpu[True]) / min(cpu[False]):.2f}x CPU); one thread "
              f"{args.samples / min(one[False]):,.0f}/s, previous "
              f"{args.samples / min(one[True]):,.0f}/s; baseline generator "
              f"{1 / base:,.0f}/s; kernel alone {kernel[False]:.0f} ns CPU per valid, "
              f"previous {kernel[True]:.0f} ns")
    exe = os.path.join(os.path.dirname(sys.executable), "mapspace")
    with tempfile.TemporaryDirectory() as tmp:
        parquet = os.path.join(tmp, "run.parquet")
        t = time.perf_counter()
        subprocess.run([exe, "explore", "--target", "gemmini", "--workload", "bert-base/ffn1",
                        "--samples", str(args.samples), "--seed", "0", "--out", parquet,
                        "--json"], check=True, capture_output=True)
        out["cli_end_to_end_s"] = time.perf_counter() - t
        out["parquet_bytes"] = os.path.getsize(parquet)
    out["load_average"] = os.getloadavg()
    out["goals"] = {"bert-base/ffn1": 1_000_000, "resnet50/conv3_x": 300_000, "cli_s": 3.0}
    print(f"CLI explore of {args.samples:,} samples end to end: {out['cli_end_to_end_s']:.2f} s")
    print(json.dumps(out))


if __name__ == "__main__":
    main()
