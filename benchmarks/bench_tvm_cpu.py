"""Our CPU kernels (mapping picked by the cost model alone, no measurement) against numpy
(OpenBLAS) and TVM MetaSchedule, on the host CPU.

* fp32 matmul 512x768x3072 (bert-base/ffn1): ours, numpy ``a @ b``, MetaSchedule with 64
  trials (XGBoost model, evolutionary search; skipped with ``--quick``).
* ResNet-50 conv3_x (1x128x28x28, 128 3x3 filters, pad 1): ours, numpy im2col + matmul,
  TVM's untuned build of the same PrimFunc.

"Tuning seconds": ours = mapper search (``--search-time`` seconds of simulated annealing
over the cpu mapspace, priced by the analytical model) + scheduling + LLVM build;
MetaSchedule = ``tune_tir`` + ``compile_tir`` + build.  Kernel times are medians of
``--repeat`` measurements.  The last line printed is one JSON object.

    .venv/bin/python benchmarks/bench_tvm_cpu.py [--quick] [--search-time 5] [--trials 64]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from compiler.emit import choose_mapping  # noqa: E402
from mapspace.workloads import workload  # noqa: E402
from targets._tvm import op_spec, prim_func, random_inputs, reference  # noqa: E402
from targets.cpu import cpu_constraints, host_arch, num_cores  # noqa: E402
from targets.cpu.emit import build, host_target, run_kernel, schedule, time_kernel  # noqa: E402


def median_time(f, repeat: int, min_s: float = 0.05) -> float:
    f()
    t0 = time.perf_counter()
    f()
    number = max(1, int(min_s / max(time.perf_counter() - t0, 1e-7)))
    ts = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        for _ in range(number):
            f()
        ts.append((time.perf_counter() - t0) / number)
    return float(np.median(ts))


def ours(name: str, search_time: float, repeat: int, seed: int) -> dict:
    p = workload(name)
    spec = op_spec(p)
    arch = host_arch()
    t0 = time.perf_counter()
    m = choose_mapping(p, arch, cpu_constraints(p), seed=seed, time_limit=search_time)
    t_search = time.perf_counter() - t0
    sch = schedule(spec, m, arch)
    lib = build(sch)
    tune = time.perf_counter() - t0
    got, want, args = run_kernel(lib, spec, "float32", seed)
    ok = bool(np.allclose(got, want, rtol=1e-4, atol=1e-2))
    return {"seconds": time_kernel(lib, args, repeat=repeat), "tuning_seconds": tune,
            "search_seconds": t_search, "correct": ok, "trace": list(sch.trace.as_python())}


def _ms_build(mod, target, _params):
    # meta_schedule's default_build imports tvm.s_tir.tensor_intrin (~35 s per worker)
    from tvm.driver import build as tvm_build
    from tvm.s_tir.transform import RemoveWeightLayoutRewriteBlock

    mod = RemoveWeightLayoutRewriteBlock(skip_tensor_rewrite=True)(mod)
    return tvm_build(mod, target=target)


def ms_cost_model() -> str:
    """``"xgb"`` (MetaSchedule's default) when xgboost is installed, else ``"random"``.

    With 64 trials in one batch of 64 the two search alike: the XGBoost model predicts
    uniform random scores until it has been trained (``XGBModel.predict`` before
    ``num_warmup_samples``), and it is first trained after that batch is measured."""
    try:
        import xgboost  # noqa: F401
    except ImportError:
        return "random"
    return "xgb"


def metaschedule(spec, trials: int, repeat: int, seed: int) -> dict:
    import tvm
    from tvm.s_tir import meta_schedule as ms

    mod = tvm.IRModule({"main": prim_func(spec)})
    target = host_target()
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="ms-") as wd:
        db = ms.tune_tir(mod, target, wd, max_trials_global=trials,
                         num_trials_per_iter=min(64, trials), cost_model=ms_cost_model(),
                         builder=ms.builder.LocalBuilder(f_build=_ms_build, timeout_sec=90),
                         seed=seed)
        sch = ms.tir_integration.compile_tir(db, mod, target)
    lib = tvm.compile(sch.mod, target=target)
    tune = time.perf_counter() - t0
    got, want, args = run_kernel(lib, spec, "float32", seed)
    return {"seconds": time_kernel(lib, args, repeat=repeat), "tuning_seconds": tune,
            "correct": bool(np.allclose(got, want, rtol=1e-4, atol=1e-2))}


def untuned(spec, repeat: int, seed: int) -> dict:
    import tvm

    t0 = time.perf_counter()
    lib = tvm.compile(tvm.IRModule({"main": prim_func(spec)}), target=host_target())
    tune = time.perf_counter() - t0
    got, want, args = run_kernel(lib, spec, "float32", seed)
    return {"seconds": time_kernel(lib, args, repeat=max(1, min(repeat, 3)), min_repeat_s=0),
            "tuning_seconds": tune, "correct": bool(np.allclose(got, want, rtol=1e-4,
                                                                atol=1e-2))}


def numpy_conv(spec, a: np.ndarray, w: np.ndarray) -> np.ndarray:
    """im2col + one BLAS matmul (N = 1 per image)."""
    from numpy.lib.stride_tricks import sliding_window_view

    s, st, pd = spec.sizes, spec.stride, spec.padding
    ap = np.pad(a, ((0, 0), (0, 0), (pd, pd), (pd, pd)))
    win = sliding_window_view(ap, (s["S"], s["R"]), axis=(2, 3))[:, :, ::st, ::st]
    # win: N, C, Q, P, S, R -> (C*S*R, Q*P) per image
    cols = np.ascontiguousarray(win.transpose(0, 1, 4, 5, 2, 3)).reshape(
        a.shape[0], s["C"] * s["S"] * s["R"], s["Q"] * s["P"])
    wm = w.reshape(s["M"], -1)
    return np.stack([wm @ c for c in cols]).reshape(a.shape[0], s["M"], s["Q"], s["P"])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="skip MetaSchedule")
    ap.add_argument("--search-time", type=float, default=5.0)
    ap.add_argument("--trials", type=int, default=64)
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    out: dict = {"host": {"cores": num_cores(), "arch": [
        (lv.name, lv.capacity, lv.instances) for lv in host_arch().levels],
        "target": str(host_target()), "numpy_threads_env": os.environ.get(
            "OPENBLAS_NUM_THREADS")}, "search_time_s": args.search_time}

    # --- bert-base/ffn1 matmul
    spec = op_spec(workload("bert-base/ffn1"))
    o = ours("bert-base/ffn1", args.search_time, args.repeat, args.seed)
    a, b = random_inputs(spec, "float32", args.seed)
    npy = median_time(lambda: a @ b, args.repeat)
    mm = {"ours": o, "numpy": {"seconds": npy}, "ours_over_numpy": o["seconds"] / npy}
    print(f"matmul 512x768x3072: ours {o['seconds'] * 1e3:.2f} ms (tuning "
          f"{o['tuning_seconds']:.1f} s, correct {o['correct']}), numpy {npy * 1e3:.2f} ms",
          flush=True)
    if not args.quick:
        m = metaschedule(spec, args.trials, args.repeat, args.seed)
        mm["metaschedule"] = {**m, "trials": args.trials, "cost_model": ms_cost_model()}
        mm["ours_over_metaschedule"] = o["seconds"] / m["seconds"]
        mm["tuning_ours_over_metaschedule"] = o["tuning_seconds"] / m["tuning_seconds"]
        print(f"  metaschedule ({args.trials} trials): {m['seconds'] * 1e3:.2f} ms, tuning "
              f"{m['tuning_seconds']:.1f} s, correct {m['correct']}", flush=True)
    out["matmul_bert_ffn1"] = mm

    # --- resnet50/conv3_x
    spec = op_spec(workload("resnet50/conv3_x"))
    o = ours("resnet50/conv3_x", args.search_time, args.repeat, args.seed)
    a, w = random_inputs(spec, "float32", args.seed)
    assert np.allclose(numpy_conv(spec, a, w), reference(spec, a, w), rtol=1e-4, atol=1e-3)
    npy = median_time(lambda: numpy_conv(spec, a, w), args.repeat)
    u = untuned(spec, args.repeat, args.seed)
    out["conv_resnet50_conv3_x"] = {"ours": o, "numpy_im2col": {"seconds": npy},
                                    "tvm_untuned": u, "ours_over_numpy": o["seconds"] / npy,
                                    "ours_over_untuned": o["seconds"] / u["seconds"]}
    print(f"conv3_x: ours {o['seconds'] * 1e3:.2f} ms (tuning {o['tuning_seconds']:.1f} s, "
          f"correct {o['correct']}), numpy im2col {npy * 1e3:.2f} ms, TVM untuned "
          f"{u['seconds'] * 1e3:.1f} ms", flush=True)
    for k in ("matmul_bert_ffn1", "conv_resnet50_conv3_x"):
        out[k]["ours"].pop("trace")
    print(json.dumps(out))


if __name__ == "__main__":
    main()
