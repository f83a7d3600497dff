"""Full-size exported models compiled and run on their sample inputs with their own weights,
checked against onnxruntime: cpu (fp32, max relative error) and gemmini (int8: bit-exact
against numpy's integer computation, SQNR against onnxruntime's fp32 output).

    .venv/bin/python benchmarks/bench_run_exported.py /work/models [MODEL.onnx ...]

Defaults: ``bert_base_128.ts.onnx`` and ``resnet50.ts.onnx`` (made by
``tests/models/export.py --full DIR``).  Last line: one JSON object.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np


def check(path: Path, target: str, budget: int = 2000) -> dict:
    import onnxruntime as ort

    from compiler.pipeline import compile_model

    sess = ort.InferenceSession(str(path))
    names = {i.name for i in sess.get_inputs()}
    with np.load(path.parent / (path.name.split(".")[0] + ".inputs.npz")) as z:
        feeds = {k: z[k] for k in z.files if k in names}
    t0 = time.perf_counter()
    want = sess.run(None, feeds)
    t_ort = time.perf_counter() - t0
    t0 = time.perf_counter()
    r = compile_model(path, target, budget=budget, time_per_op=None)
    t_compile = time.perf_counter() - t0
    t0 = time.perf_counter()
    got = r.run(feeds)
    t_run = time.perf_counter() - t0  # includes building the kernels once
    outs = r.source_graph.outputs
    rel = max(float(np.abs(got[t].astype(np.float64) - w).max() / np.abs(w).max())
              for t, w in zip(outs, want, strict=True))
    row = {"target": target, "macs": r.totals["macs"], "kernels_built_and_run_s": t_run,
           "compile_s": t_compile, "onnxruntime_s": t_ort, "max_rel_error_vs_ort": rel}
    if target == "gemmini":
        ref = r.run(feeds, reference=True)
        row["bit_exact_vs_integer_reference"] = all(np.array_equal(got[t], ref[t])
                                                    for t in outs)
        w, o = want[0].astype(np.float64), got[outs[0]].astype(np.float64)
        row["sqnr_db_vs_ort"] = float(10 * np.log10((w ** 2).sum() / ((o - w) ** 2).sum()))
    return row


def main(folder: str, models: list[str]) -> dict:
    out = {}
    for m in models:
        for target in ("cpu", "gemmini"):
            row = check(Path(folder) / m, target)
            out[f"{m}/{target}"] = row
            print(m, json.dumps(row), flush=True)
    return out


if __name__ == "__main__":
    folder = sys.argv[1] if len(sys.argv) > 1 else "/work/models"
    models = sys.argv[2:] or ["bert_base_128.ts.onnx", "resnet50.ts.onnx"]
    print(json.dumps(main(folder, models)))
