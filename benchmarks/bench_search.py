"""Search quality per evaluation: every strategy's gap to the best-known EDP (issue 13).

Over every distinct layer of BERT-Base and ResNet-50 on ``gemmini`` (the shapes ``mapspace
compile`` searches, :func:`compiler.pipeline.distinct_spaces`), each strategy runs at seed 0
with budgets of 2K, 20K, the default budget (50K) and 200K evaluations; for each (strategy,
budget) the benchmark reports the gap of its best EDP to ``benchmarks/data/best_known.yaml``
(written by ``benchmarks/best_known.py``): the worst and the geometric-mean gap in percent, how many
layers are within 1%, and the seconds per layer (wall and CPU: the 2-core development
machine is shared, so the CPU seconds are the quiet-machine figure).  ``cpsat`` ends by
itself (CP-SAT solves, then at most the budget's evaluations of polish).

Anchors from the issue (not run here): Timeloop's random-pruned mapper, about 75 valid
mappings/s per thread on this machine, its best of 100K for BERT FFN1 8,120 J x cycles
(best-known: see the table); CoSA (one-shot MIP) seconds per layer; ZigZag's LOMA 7 s for
the 720 orderings of FFN1.  The last printed line is one JSON object.

    .venv/bin/python benchmarks/bench_search.py [--budgets 2000,20000,50000,200000]
        [--strategies anneal,anneal-uniform,genetic,random,cpsat] [--models bert-base,resnet50]
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import yaml

DATA = Path(__file__).resolve().parent / "data" / "best_known.yaml"
#: name -> (registered strategy, options); anneal-uniform is anneal as it was before issue 13
#: (factor changes only to uniformly drawn rows, no prime-factor moves)
STRATEGIES: dict[str, tuple[str, dict]] = {
    "anneal": ("anneal", {}),
    "anneal-uniform": ("anneal", {"local": False}),
    "genetic": ("genetic", {}),
    "random": ("random", {}),
    "cpsat": ("cpsat", {}),
}
ANCHORS = {
    "timeloop_random_pruned": {"valid_per_s_per_thread": 75, "bert_ffn1_best_of_100k": 8120},
    "cosa": "one MIP solve per layer, seconds",
    "zigzag_loma": {"bert_ffn1_orderings": 720, "seconds": 7},
}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--budgets", default=None,
                    help="comma-separated (default: 2K, 20K, the default budget, 200K)")
    ap.add_argument("--strategies", default=",".join(STRATEGIES))
    ap.add_argument("--models", default="bert-base,resnet50")
    ap.add_argument("--data", type=Path, default=DATA)
    args = ap.parse_args()

    from compiler.pipeline import distinct_spaces
    from cost_models.search import DEFAULT_BUDGET, DEFAULT_STRATEGY, find_mapping

    table = yaml.safe_load(args.data.read_text())
    best = {(r["model"], r["op"]): r["edp"] for r in table["layers"]}
    layers = [(m, names[0], space) for m in args.models.split(",")
              for names, space in distinct_spaces(m, "gemmini")]
    missing = [f"{m}:{op}" for m, op, _ in layers if (m, op) not in best]
    if missing:
        raise SystemExit(f"{args.data}: no best-known row for {', '.join(missing)} "
                         f"(run benchmarks/best_known.py)")
    for _, _, space in layers:                       # kernels loaded, tables built
        find_mapping(space, budget=256)
    budgets = sorted({2000, 20_000, DEFAULT_BUDGET, 200_000}) if args.budgets is None else \
        [int(b) for b in args.budgets.split(",")]
    out: dict = {"benchmark": "bench_search", "models": args.models.split(","),
                 "layers": len(layers), "default": {"strategy": DEFAULT_STRATEGY,
                                                    "budget": DEFAULT_BUDGET},
                 "anchors": ANCHORS, "results": {}}
    for name in args.strategies.split(","):
        strategy, opts = STRATEGIES[name]
        for budget in budgets:
            gaps, wall, cpu, worst = [], 0.0, 0.0, ("", 0.0)
            for model, op, space in layers:
                t, c = time.perf_counter(), time.process_time()
                r = find_mapping(space, strategy=strategy, budget=budget, seed=0, **opts)
                wall += time.perf_counter() - t
                cpu += time.process_time() - c
                gap = 100 * (r.best_objective / best[(model, op)] - 1)
                gaps.append(gap)
                if gap > worst[1]:
                    worst = (f"{model}:{op}", gap)
            n = len(layers)
            row = {"max_gap_pct": max(gaps),
                   "geomean_gap_pct": 100 * (math.exp(sum(math.log1p(g / 100) for g in gaps)
                                                      / n) - 1),
                   "within_1pct": sum(g <= 1 for g in gaps), "layers": n,
                   "worst_layer": worst[0], "wall_s_per_layer": wall / n,
                   "cpu_s_per_layer": cpu / n,
                   "below_best_known": sum(g < -1e-9 for g in gaps)}
            out["results"][f"{name}@{budget}"] = row
            print(f"{name:11s} {budget:>7,}: within 1% {row['within_1pct']:>2}/{n}, max gap "
                  f"{row['max_gap_pct']:6.2f}% ({worst[0]}), geomean "
                  f"{row['geomean_gap_pct']:5.2f}%, {row['wall_s_per_layer']:.2f} s wall / "
                  f"{row['cpu_s_per_layer']:.2f} s CPU per layer", flush=True)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
