"""The TVM plug-in on whole models: ``tvm.compile`` with TVM's default Relax pipeline
(the baseline, unscheduled TIR) against ``relax_pipeline=mapspace_pipeline("cpu")``.

Models (ONNX built with ``onnx.helper``, imported with TVM's ONNX front end):

* ``mlp``: x[128, 512] -> MatMul 512x1024 -> Add -> Relu -> MatMul 1024x512;
* ``conv``: x[1, 64, 56, 56] -> Conv 64 3x3 pad 1 -> Relu (a ResNet-50 conv2_x layer).

Per model: build seconds, median model seconds on the VM, the ratio baseline / ours, the
largest difference between the two outputs, and the functions our pass scheduled (and
numpy's seconds for the MLP, for scale).  The last line printed is one JSON object.

    .venv/bin/python benchmarks/bench_tvm_plugin.py [--budget 2000] [--repeat 5]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def _model(nodes, inputs, outputs, inits):
    from onnx import TensorProto, helper, numpy_helper

    g = helper.make_graph(
        nodes, "g",
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, s) for n, s in inputs],
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, s) for n, s in outputs],
        [numpy_helper.from_array(v.astype(np.float32), k) for k, v in inits.items()])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])


def models(rng):
    from onnx import helper

    mlp = _model([helper.make_node("MatMul", ["x", "W1"], ["h"]),
                  helper.make_node("Add", ["h", "b1"], ["h1"]),
                  helper.make_node("Relu", ["h1"], ["h2"]),
                  helper.make_node("MatMul", ["h2", "W2"], ["y"])],
                 [("x", [128, 512])], [("y", [128, 512])],
                 dict(W1=rng.standard_normal((512, 1024)) * 0.05,
                      b1=rng.standard_normal(1024), W2=rng.standard_normal((1024, 512)) * 0.05))
    conv = _model([helper.make_node("Conv", ["x", "W"], ["c"], pads=[1, 1, 1, 1]),
                   helper.make_node("Relu", ["c"], ["y"])],
                  [("x", [1, 64, 56, 56])], [("y", [1, 64, 56, 56])],
                  dict(W=rng.standard_normal((64, 64, 3, 3)) * 0.05))
    return {"mlp": (mlp, (128, 512)), "conv": (conv, (1, 64, 56, 56))}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--budget", type=int, default=2000)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--objective", default="edp", choices=["latency", "energy", "edp"])
    args = ap.parse_args()

    import tvm
    from tvm import relax
    from tvm.relax.frontend.onnx import from_onnx

    from targets.cpu.emit import host_target
    from targets.tvm_plugin import mapspace_pipeline

    rng = np.random.default_rng(0)
    target = host_target()
    dev = tvm.cpu()
    out = {}
    for name, (model, shape) in models(rng).items():
        mod = from_onnx(model, keep_params_in_input=False)
        x = tvm.runtime.tensor(rng.standard_normal(shape).astype(np.float32))
        row = {}
        results = {}
        for which in ("default", "mapspace"):
            log: list = []
            t0 = time.perf_counter()
            pipe = (mapspace_pipeline("cpu", budget=args.budget, log=log,
                                      objective=args.objective)
                    if which == "mapspace" else "default")
            ex = tvm.compile(mod, target, relax_pipeline=pipe)
            build = time.perf_counter() - t0
            vm = relax.VirtualMachine(ex, dev)
            results[which] = vm["main"](x).numpy()
            timer = vm.time_evaluator("main", dev, number=1, repeat=args.repeat)
            secs = float(np.median(timer(x).results))
            row[which] = {"build_s": round(build, 3), "run_s": secs}
            if which == "mapspace":
                row["scheduled"] = [f"{f.func} ({f.kind})" for f in log]
        row["speedup"] = row["default"]["run_s"] / row["mapspace"]["run_s"]
        if name == "mlp":   # numpy (OpenBLAS) for scale
            inits = {i.name: np.frombuffer(i.raw_data, np.float32).reshape(i.dims)
                     for i in model.graph.initializer}
            xn = x.numpy()
            ts = []
            for _ in range(args.repeat):
                t0 = time.perf_counter()
                np.maximum(xn @ inits["W1"] + inits["b1"], 0) @ inits["W2"]
                ts.append(time.perf_counter() - t0)
            row["numpy_s"] = float(np.median(ts))
        row["max_abs_diff"] = float(np.abs(results["default"] - results["mapspace"]).max())
        out[name] = row
        print(f"{name:5s} default {row['default']['run_s'] * 1e3:9.2f} ms   mapspace "
              f"{row['mapspace']['run_s'] * 1e3:8.2f} ms   x{row['speedup']:.1f}   "
              f"build {row['mapspace']['build_s']:.2f} s   diff {row['max_abs_diff']:.1e}   "
              f"scheduled {', '.join(row['scheduled'])}")
    print(json.dumps(out))


if __name__ == "__main__":
    main()
