"""Gemmini emission on BERT-Base FFN1 and ResNet-50 conv3_x: the mapper's mapping for the
``gemmini`` target, emitted to C, run on the functional Gemmini model (bit-exact vs numpy),
and the bytes moved by mvin/mvout next to the analytical model's DRAM traffic.

    .venv/bin/python benchmarks/bench_gemmini_emit.py [--budget 3000] [--out /tmp/gemmini]

Model words are DRAM reads of Inputs/Weights (-> mvin / mvin2, int8: 1 byte each), DRAM
reads of Outputs (partial sums back into the accumulator -> mvin3, int32: 4 bytes) and
DRAM updates of Outputs (-> mvout, int32: 4 bytes).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from cost_models.search import find_mapping
from mapspace.space import Mapspace
from mapspace.workloads import workload
from targets import default_constraints, load_target
from targets.gemmini.emit import emit, predicted_traffic

WORKLOADS = ("bert-base/ffn1", "resnet50/conv3_x")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--budget", type=int, default=3000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="/tmp/gemmini_emit")
    args = ap.parse_args()
    arch = load_target("gemmini")
    rows = []
    for name in WORKLOADS:
        p = workload(name)
        t0 = time.perf_counter()
        m = find_mapping(Mapspace(p, arch, default_constraints("gemmini")), budget=args.budget,
                         seed=args.seed).best_mapping
        t1 = time.perf_counter()
        r = emit(p, m, arch, out_dir=Path(args.out) / name.replace("/", "_"), run=True)
        t2 = time.perf_counter()
        pr = predicted_traffic(p, arch, m)
        c = r.counters
        pairs = {"inputs (mvin, B)": (pr["inputs"], c["mvin1_bytes"]),
                 "weights (mvin2, B)": (pr["weights"], c["mvin2_bytes"]),
                 "partial sums in (mvin3, B)": (4 * pr["output_reads"], c["mvin3_bytes"]),
                 "outputs out (mvout, B)": (4 * pr["output_updates"], c["mvout_bytes"])}
        rows.append({"workload": name, "correct": r.correct, "map_s": round(t1 - t0, 2),
                     "emit_build_run_s": round(t2 - t1, 2), "kernel_s": r.seconds,
                     "predicted_vs_measured": pairs,
                     "all_equal": all(a == b for a, b in pairs.values()),
                     "macs": c["macs"], "intrinsics": {k: c[k] for k in (
                         "mvin", "mvout", "preload", "compute_preloaded",
                         "compute_accumulated")}})
    for r in rows:
        print(f"{r['workload']}: bit-exact {r['correct']}, kernel {r['kernel_s']} s on the "
              f"functional model, bytes equal to the model's prediction: {r['all_equal']}")
        for k, (pred, meas) in r["predicted_vs_measured"].items():
            print(f"  {k:28s} model {pred:>12,}  measured {meas:>12,}")
    print(json.dumps({"benchmark": "bench_gemmini_emit", "workloads": rows}))


if __name__ == "__main__":
    main()
