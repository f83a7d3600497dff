"""Whole-model compile time (issue: graph compiler).

BERT-Base (12 layers, sequence 512) and ResNet-50 compiled for ``gemmini`` with every pass
(``fuse,quantize=int8,sparsify=2:4``), each distinct shape searched with the default
strategy for a fixed evaluation budget (reproducible), measured in this run.  Baseline in
the same run: the same compile with no passes.  Goal: each model in <= 60 s on 2 cores.
The last line is one JSON object.

    .venv/bin/python benchmarks/bench_compile.py [--budget 20000]
"""

from __future__ import annotations

import argparse
import json
import time


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--budget", type=int, default=20_000)
    args = ap.parse_args()

    from compiler.pipeline import compile_model

    compile_model("bert-base", "gemmini", strategy="random", budget=100, time_per_op=None,
                  seq=32)                                     # load the compiled kernels
    out: dict = {"benchmark": "bench_compile", "budget_per_shape": args.budget, "models": {}}
    for model in ("bert-base", "resnet50"):
        row = {}
        for passes in ("", "fuse,quantize=int8,sparsify=2:4"):
            t = time.perf_counter()
            r = compile_model(model, "gemmini", passes=passes, budget=args.budget,
                              time_per_op=None, seed=0)
            secs = time.perf_counter() - t
            row["all_passes" if passes else "no_passes"] = {
                "seconds": secs, "mac_ops": r.mac_ops, "distinct_shapes": r.distinct_shapes,
                "evaluations": r.evaluations,
            }
            print(f"{model} passes={passes or '-'}: {secs:.1f} s, {r.mac_ops} MAC ops, "
                  f"{r.distinct_shapes} distinct shapes, {r.evaluations:,} evaluations")
        row["passes_overhead"] = row["all_passes"]["seconds"] / row["no_passes"]["seconds"]
        out["models"][model] = row
    out["goal_seconds"] = 60
    print(json.dumps(out))


if __name__ == "__main__":
    main()
