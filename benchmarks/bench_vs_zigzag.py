"""Our mapper against ZigZag's LOMA on BERT-Base FFN1 and ResNet-50 conv3_x (``make bench-peers``).

Both tools search the same two layers on the same Gemmini-like machine in one run:

- **ZigZag** (zigzag-dse, pinned in the Makefile) runs in its own venv ``.venv-peers``
  through ``benchmarks/peers/zigzag_driver.py``: LOMA (``lpf_limit`` 6, exhaustive over the
  loop orderings of the layer's prime factors) with the spatial mapping fixed to the
  target's (K over the 16 columns, C over the 16 rows), optimising EDP.  The machine is
  ``benchmarks/peers/gemmini_like.yaml``, the workloads ``bert_base_ffn1.yaml`` and
  ``resnet50_conv3_x.yaml`` beside it.
- **ours** runs what ``mapspace map --target gemmini --workload W`` runs (the genetic
  strategy, EDP, seed 0, its default budget of 100K evaluations), with the cost function
  wrapped to time every batch, so the time to best is exact.  For context it also reports
  ``explore`` (100K uniformly random valid mappings) on the same layers.

Reported for each tool and layer: mappings evaluated per second, time to the best mapping,
and the best mapping's EDP, energy and latency.  Each tool's numbers are in its own units
(ours: cycles, pJ, J*cycles; ZigZag: ``latency_total2`` cycles, ``energy_total`` pJ, and
the EDP also converted to J*cycles).  The two cost models differ (ZigZag models port
bandwidth stalls and its own data-reuse rules; ours follows Timeloop), so the EDPs are
compared as ratios only with that caveat.  The last line is one JSON object.

    make bench-peers                                  # builds .venv-peers, then runs this
    .venv/bin/python benchmarks/bench_vs_zigzag.py [--budget 100000] [--peers .venv-peers]

When ``.venv-peers`` is missing or ZigZag fails, the ZigZag side is reported as an error
string and ours is still measured.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PEERS = os.path.join(ROOT, "benchmarks", "peers")
LAYERS = {                     # our zoo name -> ZigZag workload file
    "bert-base/ffn1": "bert_base_ffn1.yaml",
    "resnet50/conv3_x": "resnet50_conv3_x.yaml",
}


def run_zigzag(python: str, workload_file: str, timeout: float) -> dict:
    """ZigZag's result for one layer (the driver's JSON), or ``{"error": ...}``."""
    if not os.path.exists(python):
        return {"error": f"{python} not found (run `make bench-peers` to create .venv-peers)"}
    cmd = [python, os.path.join(PEERS, "zigzag_driver.py"), os.path.join(PEERS, workload_file)]
    t = time.perf_counter()
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=ROOT)
    except subprocess.TimeoutExpired:
        return {"error": f"ZigZag did not finish within {timeout:.0f} s"}
    wall = time.perf_counter() - t
    lines = [ln for ln in p.stdout.splitlines() if ln.startswith("{")]
    if p.returncode != 0 or not lines:
        tail = (p.stderr or p.stdout).strip().splitlines()[-3:]
        return {"error": f"zigzag_driver exited {p.returncode}: {' | '.join(tail)}"}
    out = json.loads(lines[-1])
    out["process_wall_s"] = wall
    out["best_edp_J_cycles"] = out["best_edp_pJ_cycles"] * 1e-12
    return out


def run_ours(name: str, budget: int) -> dict:
    """``mapspace map``'s search on one layer, with every batch of the cost function timed."""
    from cost_models import evaluate
    from cost_models.search import DEFAULT_STRATEGY, cost_function
    from mapspace.search import make_strategy, run
    from mapspace.space import Mapspace
    from mapspace.workloads import workload
    from targets import default_constraints, load_target

    problem, arch = workload(name), load_target("gemmini")
    space = Mapspace(problem, arch, default_constraints("gemmini"))
    _ = space.tables
    inner = cost_function(space, objective="edp")
    ends: list[tuple[int, float]] = []            # (evaluations so far, time)
    t0 = time.perf_counter()

    def timed(m):
        out = inner(m)
        ends.append(((ends[-1][0] if ends else 0) + len(out[0]), time.perf_counter() - t0))
        return out

    strat = make_strategy(DEFAULT_STRATEGY, space, 0)
    res = run(space, strat, timed, budget=budget)
    at_best = res.history[-1][0] if res.history else 0
    t_best = next(t for n, t in ends if n >= at_best)
    stats = evaluate(problem, arch, res.best_mapping).stats(0)
    return {
        "tool": "mapspace map", "strategy": DEFAULT_STRATEGY, "budget": budget,
        "evaluations": res.evaluations, "valid_evaluations": res.valid_evaluations,
        "seconds": res.seconds, "evals_per_s": res.evaluations / res.seconds,
        "time_to_best_s": t_best, "evaluations_to_best": at_best,
        "best_edp_J_cycles": stats["edp"], "best_energy_pJ": stats["energy_pJ"],
        "best_latency_cycles": stats["cycles"], "best_utilization": stats["utilization"],
    }


def run_explore(name: str, samples: int) -> dict:
    """Uniform random sampling (``mapspace explore``) on one layer, for context."""
    from compiler.explore import explore
    from mapspace.workloads import workload
    from targets import default_constraints, load_target

    r = explore(workload(name), load_target("gemmini"), default_constraints("gemmini"),
                samples, 0)
    s = r.summary
    i = r.best_index()
    return {"samples": s["valid"], "seconds": s["seconds"], "evals_per_s": s["evals_per_s"],
            "best_edp_J_cycles": s["edp_min"],
            "best_energy_pJ": float(r.frame["energy_pJ"].iloc[i]),
            "best_latency_cycles": int(r.frame["cycles"].iloc[i])}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--budget", type=int, default=100_000, help="our evaluations per layer")
    ap.add_argument("--peers", default=os.path.join(ROOT, ".venv-peers"),
                    help="the venv holding zigzag-dse")
    ap.add_argument("--zigzag-timeout", type=float, default=600)
    args = ap.parse_args()
    python = os.path.join(args.peers, "bin", "python")

    from compiler.explore import explore
    from mapspace.workloads import workload
    from targets import default_constraints, load_target

    explore(workload("resnet50/conv3_x"), load_target("gemmini"),       # load/compile kernels
            default_constraints("gemmini"), 1000, 0)

    out: dict = {"benchmark": "bench_vs_zigzag", "layers": {}}
    for name, zz_file in LAYERS.items():
        zz = run_zigzag(python, zz_file, args.zigzag_timeout)
        ours = run_ours(name, args.budget)
        rnd = run_explore(name, 100_000)
        row = {"ours": ours, "ours_random_100k": rnd, "zigzag": zz}
        if "error" not in zz:
            row["evals_per_s_ours_over_zigzag"] = ours["evals_per_s"] / zz["evals_per_s"]
            row["best_edp_ours_over_zigzag"] = (ours["best_edp_J_cycles"]
                                                / zz["best_edp_J_cycles"])
            row["time_to_best_ours_over_zigzag"] = ours["time_to_best_s"] / zz["time_to_best_s"]
        out["layers"][name] = row
        print(f"{name}:")
        print(f"  ours   {ours['evaluations']:>7,} evals  {ours['evals_per_s']:>9,.0f}/s  "
              f"best at {ours['time_to_best_s']:6.2f} s  EDP {ours['best_edp_J_cycles']:.4g} "
              f"J*cyc  energy {ours['best_energy_pJ']:.4g} pJ  "
              f"latency {ours['best_latency_cycles']:,} cyc")
        print(f"  random {rnd['samples']:>7,} evals  {rnd['evals_per_s']:>9,.0f}/s  "
              f"                 EDP {rnd['best_edp_J_cycles']:.4g} J*cyc  "
              f"energy {rnd['best_energy_pJ']:.4g} pJ  latency {rnd['best_latency_cycles']:,} cyc")
        if "error" in zz:
            print(f"  zigzag error: {zz['error']}")
        else:
            print(f"  zigzag {zz['evaluations']:>7,} evals  {zz['evals_per_s']:>9,.0f}/s  "
                  f"best at {zz['time_to_best_s']:6.2f} s  EDP {zz['best_edp_J_cycles']:.4g} "
                  f"J*cyc  energy {zz['best_energy_pJ']:.4g} pJ  "
                  f"latency {zz['best_latency_cycles']:,.0f} cyc")
            print(f"  ratios ours/zigzag: evals/s {row['evals_per_s_ours_over_zigzag']:.0f}x, "
                  f"best EDP {row['best_edp_ours_over_zigzag']:.3f}, time to best "
                  f"{row['time_to_best_ours_over_zigzag']:.2f}")
        sys.stdout.flush()
    print(json.dumps(out))


if __name__ == "__main__":
    main()
