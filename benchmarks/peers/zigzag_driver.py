"""Run ZigZag's LOMA temporal-mapping search on one layer and print one JSON object.

Runs inside ``.venv-peers`` (zigzag-dse, see ``make bench-peers``), never in the project's
venv.  Every mapping the cost model evaluates is counted and timed by wrapping
``CostModelStage.run``, so the rate and the time to best are those of ZigZag's own loop.

    .venv-peers/bin/python benchmarks/peers/zigzag_driver.py WORKLOAD.yaml \
        [--hardware gemmini_like.yaml] [--mapping gemmini_like_mapping.yaml] [--lpf-limit 6]

Output keys: ``evaluations``, ``seconds`` (search only, after parsing), ``evals_per_s``,
``time_to_best_s``, ``best_edp_pJ_cycles``, ``best_energy_pJ``, ``best_latency_cycles``,
``zigzag_version``; energies in pJ, latency in cycles (ZigZag's ``latency_total2``).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import tempfile
import time
from importlib.metadata import version

HERE = os.path.dirname(os.path.abspath(__file__))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("workload")
    ap.add_argument("--hardware", default=os.path.join(HERE, "gemmini_like.yaml"))
    ap.add_argument("--mapping", default=os.path.join(HERE, "gemmini_like_mapping.yaml"))
    ap.add_argument("--lpf-limit", type=int, default=6)
    args = ap.parse_args()

    from zigzag import api
    from zigzag.stages.evaluation.cost_model_evaluation import CostModelStage

    state = {"n": 0, "best": float("inf"), "t_best": None, "t0": None, "cme": None}
    original = CostModelStage.run

    def counted(self):
        for cme, extra in original(self):
            now = time.perf_counter()
            if state["t0"] is None:           # first evaluation: parsing is over
                state["t0"] = now
            state["n"] += 1
            edp = cme.energy_total * cme.latency_total2
            if edp < state["best"]:
                state["best"], state["t_best"], state["cme"] = edp, now, cme
            yield cme, extra

    CostModelStage.run = counted
    logging.disable(logging.CRITICAL)
    t_start = time.perf_counter()
    with tempfile.TemporaryDirectory() as dump:
        api.get_hardware_performance_zigzag(
            workload=args.workload, accelerator=args.hardware, mapping=args.mapping,
            opt="EDP", dump_folder=dump, lpf_limit=args.lpf_limit,
            nb_spatial_mappings_generated=1, loma_show_progress_bar=False,
        )
    t_end = time.perf_counter()
    cme = state["cme"]
    if cme is None:
        print(json.dumps({"error": "ZigZag evaluated no mapping"}))
        sys.exit(1)
    t0 = state["t0"]
    seconds = t_end - t0
    print(json.dumps({
        "tool": "zigzag", "zigzag_version": version("zigzag-dse"),
        "workload": os.path.basename(args.workload), "lpf_limit": args.lpf_limit,
        "evaluations": state["n"], "seconds": seconds, "total_seconds": t_end - t_start,
        "evals_per_s": state["n"] / seconds if seconds > 0 else None,
        "time_to_best_s": state["t_best"] - t0,
        "best_edp_pJ_cycles": state["best"],
        "best_energy_pJ": float(cme.energy_total),
        "best_latency_cycles": float(cme.latency_total2),
        "best_mac_energy_pJ": float(cme.mac_energy),
        "best_utilization": float(getattr(cme, "mac_utilization2", float("nan"))),
    }))


if __name__ == "__main__":
    main()
