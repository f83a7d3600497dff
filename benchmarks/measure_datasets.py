"""Measure the datasets shipped in ``benchmarks/data/`` (issue 11): the analytical model
against execution, for notebook 04 and ``benchmarks/bench_learned.py``, which read them
instead of measuring again.

    .venv/bin/python benchmarks/measure_datasets.py [--only cpu,heldout,repeat,gemmini] [--n N]

Each set is a list of ``(workload, problem, n, seed)``; every layer goes through
:func:`compiler.measure.measure`, exactly what

    mapspace measure --target T --workload W --n N --seed S --out benchmarks/data/F.parquet \
        --repeat R --warmup 2

does (the held-out shapes are not zoo workloads: ``--problem`` with their YAML, written by
``mapspace.problem_yaml``, gives the same rows).  The rows are keyed, so a rerun replaces
rows rather than adding them.

* ``cpu.parquet`` -- the training set: 6 BERT-Base (sequence 128) and ResNet-50 layers,
  55 mappings each, fp32 TVM kernels on this machine, 10 timed samples after 2 warm-ups.
* ``cpu_heldout.parquet`` -- shapes never trained on (:data:`HELDOUT`): a 384x1024x4096
  matmul, ResNet-50's conv3_x (3x3, 128 channels) at 20x20 instead of 28x28, attention
  scores with head size 32 instead of 64 -- 80, 110 and 110 mappings, 7 timed samples.
* ``cpu_repeat.parquet`` -- bert-base-s128/q-proj's 55 mappings (the same seed selects
  the same ones) measured again after the rest: how well two measurements of the same
  kernels agree here, the ceiling of any model's measured ranking accuracy.
* ``gemmini.parquet`` -- 6 BERT-Base (sequence 128) and ResNet-50 layers, 55 mappings each,
  int8 on the functional Gemmini model, ``measured_cycles`` its timing model's cycles.

The CPU timings come from a 2-core machine shared with other jobs: each row keeps the
spread of its samples (``measured_spread``, ``(p75 - p25) / median``).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from compiler.measure import measure
from mapspace.problem import Problem, bmm, conv2d, matmul
from mapspace.workloads import workload

DATA = Path(__file__).resolve().parent / "data"

#: training layers of the cpu set (zoo names): small-but-real, 12M-302M MACs each, so that
#: 330 TVM builds and timings fit in ~25 minutes on 2 cores
CPU_LAYERS = ("bert-base-s128/q-proj", "bert-base-s128/ffn2", "bert-base-s128/attn-scores",
              "bert-base-s128/attn-context", "resnet50/conv4_x", "resnet50/conv5_x.reduce")
#: the gemmini set: 12M-115M MACs each (a random mapping of a 300M-MAC layer can issue
#: enough commands to take the functional model several seconds)
GEMMINI_LAYERS = ("bert-base-s128/q-proj", "bert-base-s128/attn-scores",
                  "bert-base-s128/attn-context", "resnet50/conv2_x.reduce",
                  "resnet50/conv4_x.reduce", "resnet50/conv5_x")


#: the training layer measured twice (``repeat``)
REPEAT_LAYER = "bert-base-s128/q-proj"
#: mappings per held-out shape (the big matmul's slow random kernels cost ~15 s each)
HELDOUT_N = {"heldout/matmul-384x1024x4096": 80, "heldout/conv3x3-128ch-20x20": 110,
             "heldout/attn-scores-hd32": 110}


def heldout() -> dict[str, Problem]:
    """The held-out shapes: none of them (nor its shape under another name) is trained on."""
    return {
        "heldout/matmul-384x1024x4096": matmul(384, 1024, 4096,
                                               name="heldout/matmul-384x1024x4096"),
        "heldout/conv3x3-128ch-20x20": conv2d(1, 128, 20, 20, 128, 3, 3, stride=1,
                                              padding=1, name="heldout/conv3x3-128ch-20x20"),
        "heldout/attn-scores-hd32": bmm(12, 128, 32, 128, name="heldout/attn-scores-hd32"),
    }


def sets(n: int | None) -> dict[str, tuple[str, str, list[tuple[str, Problem, int]], int]]:
    """name -> (target, file, [(workload, problem, n)], timed samples)."""
    return {
        "cpu": ("cpu", "cpu.parquet",
                [(w, workload(w), n or 55) for w in CPU_LAYERS], 10),
        "heldout": ("cpu", "cpu_heldout.parquet",
                    [(w, p, n or HELDOUT_N[w]) for w, p in heldout().items()], 7),
        # the same 55 mappings of one training layer measured again, later: how far two
        # measurements of the same kernels agree on this machine (the noise ceiling)
        "repeat": ("cpu", "cpu_repeat.parquet",
                   [(REPEAT_LAYER, workload(REPEAT_LAYER), n or 55)], 10),
        "gemmini": ("gemmini", "gemmini.parquet",
                    [(w, workload(w), n or 55) for w in GEMMINI_LAYERS], 1),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--only", default="cpu,heldout,repeat,gemmini",
                    help="comma-separated sets: cpu, heldout, repeat, gemmini")
    ap.add_argument("--n", type=int, default=None, help="mappings per layer (default per set)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out-dir", type=Path, default=DATA)
    ap.add_argument("--jobs", type=int, default=None, help="parallel builds (default: cores)")
    a = ap.parse_args()
    all_sets = sets(a.n)
    names = [s for s in a.only.split(",") if s]
    unknown = [s for s in names if s not in all_sets]
    if unknown:
        print(f"--only: unknown set {unknown[0]!r} (sets: {', '.join(all_sets)})",
              file=sys.stderr)
        raise SystemExit(2)
    a.out_dir.mkdir(parents=True, exist_ok=True)
    summary = {}
    for s in names:
        target, fname, layers, repeat = all_sets[s]
        out = a.out_dir / fname
        for w, p, n in layers:
            t0 = time.perf_counter()
            print(f"mapspace measure --target {target} --workload {w} --n {n} "
                  f"--seed {a.seed} --out {out} --repeat {repeat} --warmup 2", flush=True)
            res = measure(target, p, n=n, seed=a.seed, out=out, workload=w, repeat=repeat,
                          warmup=2, jobs=a.jobs)
            sm = res.summary()
            summary[f"{s}:{w}"] = {"rows": sm["rows"], "status": sm["status"],
                                   "seconds": round(time.perf_counter() - t0, 1)}
            print(f"  {sm['status']} in {time.perf_counter() - t0:.0f} s", flush=True)
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
