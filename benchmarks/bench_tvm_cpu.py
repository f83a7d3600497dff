"""Our CPU kernels (mapping picked by the cost model alone, no measurement) against numpy
(OpenBLAS) and TVM MetaSchedule, on the host CPU.

* fp32 matmul 512x768x3072 (bert-base/ffn1): ours, numpy ``a @ b``, MetaSchedule with 64
  trials (XGBoost model, evolutionary search; skipped with ``--quick``).
* ResNet-50 conv3_x (1x128x28x28, 128 3x3 filters, pad 1): ours, numpy im2col + matmul,
  TVM's untuned build of the same PrimFunc.

"Tuning seconds": ours = mapper search (``--search-time`` seconds of simulated annealing
over the cpu mapspace, priced by the analytical model) + scheduling + LLVM build;
MetaSchedule = ``tune_tir`` + ``compile_tir`` + build.  Kernel times are medians of
``--repeat`` measurements taken in interleaved rounds after all tuning (one measurement of
each kernel per round, so load from other processes hits them alike).  The last line
printed is one JSON object.

    .venv/bin/python benchmarks/bench_tvm_cpu.py [--quick] [--search-time 2] [--trials 64]
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
from mapspace.space import Mapspace  # noqa: E402
from mapspace.workloads import workload  # noqa: E402
from targets.cpu import cpu_constraints, host_arch, num_cores  # noqa: E402
from targets.cpu.emit import build, host_target, run_kernel, schedule  # noqa: E402
from targets.tvm_common import op_spec, prim_func, random_inputs, reference  # noqa: E402


def ours(name: str, search_time: float, repeat: int, seed: int) -> dict:
    p = workload(name)
    spec = op_spec(p)
    arch = host_arch()
    t0 = time.perf_counter()
    m = choose_mapping(Mapspace(p, arch, cpu_constraints(p)), seed=seed, time_limit=search_time)
    t_search = time.perf_counter() - t0
    sch = schedule(spec, m, arch)
    lib = build(sch)
    tune = time.perf_counter() - t0
    got, want, args = run_kernel(lib, spec, "float32", seed)
    ok = bool(np.allclose(got, want, rtol=1e-4, atol=1e-2))
    return {"call": _caller(lib, args), "tuning_seconds": tune,
            "search_seconds": t_search, "correct": ok, "trace": list(sch.trace.as_python())}


def _caller(lib, args):
    f = lib["main"]
    return lambda: f(*args)


def interleaved(calls: dict[str, object], repeat: int, min_s: float = 0.05,
                pause: float = 0.25) -> dict:
    """Median seconds per call of each kernel, measured in interleaved rounds (one
    measurement of every kernel per round) so that load from other processes on a shared
    machine hits all of them alike.

    Each measurement starts ``pause`` seconds after the previous one ended: OpenBLAS's and
    TVM's worker threads busy-wait for a while after a call, and a kernel timed right after
    the other library's ran against those spinning threads (on 2 cores, TVM's matmul
    measured 22 ms alone and 26-29 ms right after a numpy matmul).  One untimed call after
    the pause wakes the kernel's own threads."""
    number = {}
    for k, f in calls.items():
        f()
        t0 = time.perf_counter()
        f()
        number[k] = max(1, int(min_s / max(time.perf_counter() - t0, 1e-7)))
    ts: dict[str, list[float]] = {k: [] for k in calls}
    for _ in range(repeat):
        for k, f in calls.items():
            time.sleep(pause)
            f()  # wakes this library's worker threads (untimed)
            t0 = time.perf_counter()
            for _ in range(number[k]):
                f()
            ts[k].append((time.perf_counter() - t0) / number[k])
    return {k: float(np.median(v)) for k, v in ts.items()}


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
    return {"call": _caller(lib, args), "tuning_seconds": tune,
            "correct": bool(np.allclose(got, want, rtol=1e-4, atol=1e-2))}


def untuned(spec, repeat: int, seed: int) -> dict:
    import tvm

    t0 = time.perf_counter()
    lib = tvm.compile(tvm.IRModule({"main": prim_func(spec)}), target=host_target())
    tune = time.perf_counter() - t0
    got, want, args = run_kernel(lib, spec, "float32", seed)
    return {"call": _caller(lib, args),
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
    ap.add_argument("--search-time", type=float, default=2.0)
    ap.add_argument("--trials", type=int, default=64)
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    out: dict = {"host": {"cores": num_cores(), "arch": [
        (lv.name, lv.capacity, lv.instances) for lv in host_arch().levels],
        "target": str(host_target()), "numpy_threads_env": os.environ.get(
            "OPENBLAS_NUM_THREADS")}, "search_time_s": args.search_time}

    # --- tuning: bert-base/ffn1 matmul, resnet50/conv3_x
    spec = op_spec(workload("bert-base/ffn1"))
    o = ours("bert-base/ffn1", args.search_time, args.repeat, args.seed)
    a, b = random_inputs(spec, "float32", args.seed)
    calls = {"mm_ours": o.pop("call"), "mm_numpy": lambda: a @ b}
    mm = {"ours": o}
    print(f"matmul 512x768x3072: ours tuned in {o['tuning_seconds']:.1f} s, correct "
          f"{o['correct']}", flush=True)
    if not args.quick:
        m = metaschedule(spec, args.trials, args.repeat, args.seed)
        calls["mm_ms"] = m.pop("call")
        mm["metaschedule"] = {**m, "trials": args.trials, "cost_model": ms_cost_model()}
        print(f"  metaschedule ({args.trials} trials): tuned in {m['tuning_seconds']:.1f} s, "
              f"correct {m['correct']}", flush=True)
    cspec = op_spec(workload("resnet50/conv3_x"))
    co = ours("resnet50/conv3_x", args.search_time, args.repeat, args.seed)
    ca, cw = random_inputs(cspec, "float32", args.seed)
    assert np.allclose(numpy_conv(cspec, ca, cw), reference(cspec, ca, cw), rtol=1e-4,
                       atol=1e-3)
    u = untuned(cspec, args.repeat, args.seed)
    calls.update({"conv_ours": co.pop("call"), "conv_numpy": lambda: numpy_conv(cspec, ca, cw)})
    cu = u.pop("call")

    # --- timing, interleaved
    t = interleaved(calls, args.repeat)
    u["seconds"] = interleaved({"u": cu}, max(1, min(args.repeat, 3)), min_s=0)["u"]
    o["seconds"], co["seconds"] = t["mm_ours"], t["conv_ours"]
    mm["numpy"] = {"seconds": t["mm_numpy"]}
    mm["ours_over_numpy"] = t["mm_ours"] / t["mm_numpy"]
    print(f"matmul: ours {t['mm_ours'] * 1e3:.2f} ms, numpy {t['mm_numpy'] * 1e3:.2f} ms",
          flush=True)
    if "mm_ms" in t:
        m = mm["metaschedule"]
        m["seconds"] = t["mm_ms"]
        mm["ours_over_metaschedule"] = t["mm_ours"] / t["mm_ms"]
        mm["tuning_ours_over_metaschedule"] = o["tuning_seconds"] / m["tuning_seconds"]
        print(f"  metaschedule {t['mm_ms'] * 1e3:.2f} ms", flush=True)
    out["matmul_bert_ffn1"] = mm
    out["conv_resnet50_conv3_x"] = {
        "ours": co, "numpy_im2col": {"seconds": t["conv_numpy"]}, "tvm_untuned": u,
        "ours_over_numpy": t["conv_ours"] / t["conv_numpy"],
        "ours_over_untuned": t["conv_ours"] / u["seconds"]}
    print(f"conv3_x: ours {t['conv_ours'] * 1e3:.2f} ms (tuning {co['tuning_seconds']:.1f} s, "
          f"correct {co['correct']}), numpy im2col {t['conv_numpy'] * 1e3:.2f} ms, TVM "
          f"untuned {u['seconds'] * 1e3:.1f} ms", flush=True)
    for k in ("matmul_bert_ffn1", "conv_resnet50_conv3_x"):
        out[k]["ours"].pop("trace")
    print(json.dumps(out))


if __name__ == "__main__":
    main()
