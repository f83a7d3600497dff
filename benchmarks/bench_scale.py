"""Scale-out of ``explore`` (issue 14): throughput in-process and on Dask LocalClusters of 1
and 2 worker processes, and a large dataset streamed to disk with bounded memory.

Measured in this run, BERT-Base FFN1 on ``gemmini`` (default constraints), shards of 16
chunks (65,536 candidates each) written through the atomic writer:

1. ``--samples`` valid mappings into a fresh dataset folder: in-process (numba on every
   local core), then on a LocalCluster of 1 and of 2 worker processes (one thread each;
   the cluster is started and warmed up -- one small run, so the workers have imported the
   package and loaded the kernels -- before the clock starts; start-up reported apart).
   Ratios: 2 workers / 1 worker (goal >= 1.6 on 2 cores) and each run / in-process.
2. ``--big`` valid mappings (default 10 million) streamed into a dataset on 2 workers,
   the peak resident memory of the whole process tree (this process, the scheduler and
   the workers: psutil, summed over the tree every 50 ms) against the 2 GB goal, and the
   dataset's size on disk.

The last line is one JSON object.

    .venv/bin/python benchmarks/bench_scale.py [--samples 2000000] [--big 10000000]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import threading
import time


class TreeRSS:
    """Peak RSS of this process and all its descendants, sampled every ``period`` s."""

    def __init__(self, period: float = 0.05):
        import psutil

        self.proc = psutil.Process()
        self.period = period
        self.peak = 0
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)

    def _sample(self) -> int:
        import psutil

        total = 0
        for p in [self.proc, *self.proc.children(recursive=True)]:
            try:
                total += p.memory_info().rss
            except psutil.Error:
                pass
        return total

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self._sample())
            time.sleep(self.period)

    def __enter__(self) -> TreeRSS:
        self._t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._t.join()
        self.peak = max(self.peak, self._sample())


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--samples", type=int, default=2_000_000)
    ap.add_argument("--big", type=int, default=10_000_000)
    args = ap.parse_args()

    from distributed import Client, LocalCluster

    from compiler.shards import explore_dataset
    from mapspace.workloads import workload
    from targets import default_constraints, load_target

    p = workload("bert-base/ffn1")
    a = load_target("gemmini")
    c = default_constraints("gemmini", p)
    tmp = tempfile.mkdtemp(prefix="bench_scale-")
    out: dict = {"benchmark": "bench_scale", "workload": p.name, "target": "gemmini",
                 "samples": args.samples, "cpus": os.cpu_count()}

    def timed(name: str, **backend: object) -> float:
        folder = os.path.join(tmp, name)
        t0 = time.perf_counter()
        run = explore_dataset(folder, p, a, c, args.samples, 0, **backend)
        s = time.perf_counter() - t0
        shutil.rmtree(folder)
        return run.summary["valid"] / s

    explore_dataset(os.path.join(tmp, "warm"), p, a, c, 1000, 0)   # kernels loaded
    out["in_process_valid_per_s"] = timed("inproc")
    print(f"in-process: {out['in_process_valid_per_s']:,.0f} valid/s", flush=True)
    for n in (1, 2):
        t0 = time.perf_counter()
        lc = LocalCluster(n_workers=n, threads_per_worker=1, processes=True,
                          dashboard_address=None, env={"NUMBA_NUM_THREADS": "1"})
        client = Client(lc)
        explore_dataset(os.path.join(tmp, f"warm{n}"), p, a, c, 1000, 0, client=client)
        out[f"workers{n}_startup_s"] = time.perf_counter() - t0
        out[f"workers{n}_valid_per_s"] = timed(f"w{n}", client=client)
        client.close()
        lc.close()
        print(f"{n} worker(s): {out[f'workers{n}_valid_per_s']:,.0f} valid/s (start-up and "
              f"warm-up {out[f'workers{n}_startup_s']:.1f} s, not counted)", flush=True)
    out["two_over_one_worker"] = out["workers2_valid_per_s"] / out["workers1_valid_per_s"]
    out["one_worker_over_in_process"] = (out["workers1_valid_per_s"]
                                         / out["in_process_valid_per_s"])
    out["two_workers_over_in_process"] = (out["workers2_valid_per_s"]
                                          / out["in_process_valid_per_s"])
    print(f"2 workers / 1 worker = {out['two_over_one_worker']:.2f} (goal >= 1.6); "
          f"1 worker / in-process = {out['one_worker_over_in_process']:.2f}; "
          f"2 workers / in-process = {out['two_workers_over_in_process']:.2f}", flush=True)

    if args.big:
        folder = os.path.join(tmp, "big")
        with TreeRSS() as rss:
            t0 = time.perf_counter()
            run = explore_dataset(folder, p, a, c, args.big, 0, workers=2)
            s = time.perf_counter() - t0
        size = sum(os.path.getsize(os.path.join(r, f)) for r, _, fs in os.walk(folder)
                   for f in fs)
        out.update(big_samples=run.summary["valid"], big_shards=run.shards, big_seconds=s,
                   big_valid_per_s=run.summary["valid"] / s,
                   big_peak_rss_tree_bytes=rss.peak, big_peak_rss_goal_bytes=2 * 10 ** 9,
                   big_dataset_bytes=size, big_edp_median=run.summary["edp_median"])
        print(f"{run.summary['valid']:,} samples in {run.shards} shards on 2 workers: "
              f"{s:.0f} s, peak RSS of the process tree {rss.peak / 1e9:.2f} GB (goal <= 2), "
              f"dataset {size / 1e9:.2f} GB on disk", flush=True)
    shutil.rmtree(tmp, ignore_errors=True)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
