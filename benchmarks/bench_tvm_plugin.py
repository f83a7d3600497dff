"""The TVM plug-in on whole models: onnxruntime, ``tvm.compile`` with TVM's default Relax
pipeline (the baseline: unscheduled TIR) and ``relax_pipeline=mapspace_pipeline("cpu")``,
each on BERT-Base (sequence 128) and ResNet-50, batch 1, on this CPU, in one run.

Models: ONNX files exported from PyTorch / HF (default ``/work/models/bert_base_128.dynamo.onnx``
and ``/work/models/resnet50.ts.onnx``; inputs from the ``<name>.inputs.npz`` beside them when
present, else seeded random ones).  A path that does not exist is replaced, with a message,
by a model of the same shapes and op mix built here with ``onnx.helper`` (random weights).

Per model and executor: build seconds (onnxruntime: session creation; TVM: ``tvm.compile``
after the shared ``from_onnx`` import, whose seconds are reported once), run seconds (median
and range over ``--repeat`` interleaved rounds: one run of every executor per round, a pause
between runs so one library's spinning worker threads do not slow the next), ratios, and
the largest output difference against TVM's default build and onnxruntime.  The last line
printed is one JSON object.

    .venv/bin/python benchmarks/bench_tvm_plugin.py [--bert PATH] [--resnet PATH]
        [--repeat 3] [--budget 20000] [--skip-default] [--measured]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

MODELS = Path("/work/models")
DEFAULTS = {"bert": MODELS / "bert_base_128.dynamo.onnx", "resnet": MODELS / "resnet50.ts.onnx"}
NAMES = {"bert": "BERT-Base seq 128", "resnet": "ResNet-50 224x224"}


# ------------------------------------------------------------ synthetic stand-ins
class _G:
    """A tiny ONNX graph writer: named nodes and initializers."""

    def __init__(self, rng):
        self.nodes, self.inits, self.rng, self.n = [], [], rng, 0

    def const(self, arr):
        from onnx import numpy_helper

        self.n += 1
        name = f"c{self.n}"
        self.inits.append(numpy_helper.from_array(np.asarray(arr), name))
        return name

    def w(self, shape, scale):
        return self.const((self.rng.standard_normal(shape) * scale).astype(np.float32))

    def op(self, typ, ins, **attrs):
        from onnx import helper

        self.n += 1
        out = f"{typ.lower()}{self.n}"
        self.nodes.append(helper.make_node(typ, ins, [out], **attrs))
        return out


def synthetic_bert(rng, layers=12, hidden=768, heads=12, ffn=3072, seq=128, vocab=30522):
    """BERT-Base as an HF export writes it (opset 17 LayerNormalization, erf GELU)."""
    from onnx import TensorProto, helper

    g, d, f32 = _G(rng), hidden // heads, (lambda a: np.asarray(a, np.float32))

    def ln(x):
        return g.op("LayerNormalization", [x, g.const(f32(np.ones(hidden))),
                                           g.const(f32(np.zeros(hidden)))], epsilon=1e-12)

    def dense(x, i, o):
        return g.op("Add", [g.op("MatMul", [x, g.w((i, o), 0.02)]), g.w((o,), 0.02)])

    x = g.op("Add", [g.op("Gather", [g.w((vocab, hidden), 0.02), "input_ids"]),
                     g.op("Gather", [g.w((2, hidden), 0.02), "token_type_ids"])])
    x = ln(g.op("Add", [x, g.op("Gather", [g.w((512, hidden), 0.02),
                                           g.const(np.arange(seq)[None])])]))
    m = g.op("Cast", [g.op("Unsqueeze", ["attention_mask", g.const(np.array([1, 2]))])], to=1)
    m = g.op("Mul", [g.op("Sub", [g.const(f32(1.0)), m]), g.const(f32(-3.4e38))])
    split, flat = g.const(np.array([1, seq, heads, d])), g.const(np.array([1, seq, hidden]))
    for _ in range(layers):
        q, k, v = (g.op("Transpose", [g.op("Reshape", [dense(x, hidden, hidden), split])],
                        perm=p) for p in ([0, 2, 1, 3], [0, 2, 3, 1], [0, 2, 1, 3]))
        s = g.op("Add", [g.op("Div", [g.op("MatMul", [q, k]), g.const(f32(np.sqrt(d)))]), m])
        c = g.op("MatMul", [g.op("Softmax", [s], axis=-1), v])
        c = g.op("Reshape", [g.op("Transpose", [c], perm=[0, 2, 1, 3]), flat])
        x = ln(g.op("Add", [dense(c, hidden, hidden), x]))
        h = dense(x, hidden, ffn)
        h = g.op("Mul", [g.op("Mul", [h, g.op("Add", [g.op("Erf", [g.op(
            "Div", [h, g.const(f32(np.sqrt(2.0)))])]), g.const(f32(1.0))])]), g.const(f32(0.5))])
        x = ln(g.op("Add", [dense(h, ffn, hidden), x]))
    g.nodes[-1].output[0] = "last_hidden_state"
    first = g.op("Gather", ["last_hidden_state", g.const(np.array(0))], axis=1)
    g.op("Tanh", [g.op("Gemm", [first, g.w((hidden, hidden), 0.02), g.w((hidden,), 0.02)],
                       transB=1)])
    g.nodes[-1].output[0] = "pooler_output"
    ins = [helper.make_tensor_value_info(n, TensorProto.INT64, [1, seq])
           for n in ("input_ids", "attention_mask", "token_type_ids")]
    outs = [helper.make_tensor_value_info("last_hidden_state", TensorProto.FLOAT,
                                          [1, seq, hidden]),
            helper.make_tensor_value_info("pooler_output", TensorProto.FLOAT, [1, hidden])]
    graph = helper.make_graph(g.nodes, "bert", ins, outs, g.inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


def synthetic_resnet50(rng, width=64, blocks=(3, 4, 6, 3), size=224, classes=1000):
    """ResNet-50 v1.5 as torchvision exports it (batch norm folded into the convs)."""
    from onnx import TensorProto, helper

    g = _G(rng)

    def conv(x, cin, cout, k, stride=1, relu=True):
        y = g.op("Conv", [x, g.w((cout, cin, k, k), np.sqrt(2.0 / (cin * k * k))),
                          g.w((cout,), 0.01)], kernel_shape=[k, k], strides=[stride] * 2,
                 pads=[k // 2] * 4)
        return g.op("Relu", [y]) if relu else y

    x = g.op("MaxPool", [conv("input", 3, width, 7, 2)], kernel_shape=[3, 3], strides=[2, 2],
             pads=[1, 1, 1, 1])
    cin = width
    for stage, n in enumerate(blocks):
        mid = width * 2 ** stage
        for i in range(n):
            stride = 2 if (i == 0 and stage > 0) else 1
            y = conv(conv(conv(x, cin, mid, 1), mid, mid, 3, stride), mid, mid * 4, 1, relu=False)
            sc = conv(x, cin, mid * 4, 1, stride, relu=False) if i == 0 else x
            x, cin = g.op("Relu", [g.op("Add", [y, sc])]), mid * 4
    x = g.op("Flatten", [g.op("GlobalAveragePool", [x])], axis=1)
    g.op("Gemm", [x, g.w((classes, cin), 0.01), g.w((classes,), 0.01)], transB=1)
    g.nodes[-1].output[0] = "output"
    graph = helper.make_graph(
        g.nodes, "resnet50", [helper.make_tensor_value_info("input", TensorProto.FLOAT,
                                                            [1, 3, size, size])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, classes])], g.inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8)


def load_model(which: str, path: Path, rng) -> tuple[str, object, dict[str, np.ndarray]]:
    """``(source, path or ModelProto, inputs)`` for ``which``; a stand-in when ``path`` is
    absent."""
    import onnx

    if path.exists():
        model = onnx.load(str(path), load_external_data=False)
        feeds_file = path.parent / (path.name.split(".")[0] + ".inputs.npz")
        source = str(path)
    else:
        print(f"{path} not found: using a {NAMES[which]} of the same shapes built with "
              "onnx.helper (random weights)", file=sys.stderr)
        model = synthetic_bert(rng) if which == "bert" else synthetic_resnet50(rng)
        feeds_file, source = None, "synthetic"
    if feeds_file is not None and feeds_file.exists():
        z = np.load(feeds_file)
        feeds = {k: z[k] for k in z.files}
    elif which == "bert":
        feeds = {"input_ids": rng.integers(0, 30522, (1, 128)),
                 "attention_mask": np.ones((1, 128), np.int64),
                 "token_type_ids": np.zeros((1, 128), np.int64)}
    else:
        feeds = {"input": rng.standard_normal((1, 3, 224, 224)).astype(np.float32)}
    if path.exists():
        model = onnx.load(str(path))      # with external data, for the importers
    names = [i.name for i in model.graph.input if i.name in feeds]
    return source, model, {k: feeds[k] for k in names}


# ------------------------------------------------------------------ executors
def build_all(model, feeds, budget: int, skip_default: bool,
              measured: bool = False) -> tuple[dict, dict, float]:
    """``(runners, build seconds, import seconds)``: one zero-argument call per executor."""
    import onnxruntime as ort
    import tvm
    from tvm import relax
    from tvm.relax.frontend.onnx import from_onnx

    from targets.cpu import num_cores
    from targets.cpu.emit import host_target
    from targets.tvm_plugin import mapspace_pipeline

    runners, builds = {}, {}
    so = ort.SessionOptions()
    so.intra_op_num_threads = num_cores()
    t0 = time.perf_counter()
    sess = ort.InferenceSession(model.SerializeToString(), so,
                                providers=["CPUExecutionProvider"])
    builds["onnxruntime"] = time.perf_counter() - t0
    runners["onnxruntime"] = lambda: sess.run(None, feeds)

    t0 = time.perf_counter()
    try:
        mod = from_onnx(model, keep_params_in_input=False)
    except Exception as e:  # noqa: BLE001 - e.g. shape subgraphs TVM's importer cannot type
        print(f"TVM's ONNX importer failed ({str(e).splitlines()[-1][:120]}); importing the "
              "model as onnxruntime's basic optimizer (constant folding) leaves it",
              file=sys.stderr)
        mod = from_onnx(_ort_folded(model), keep_params_in_input=False)
    t_import = time.perf_counter() - t0
    target, dev = host_target(), tvm.cpu()
    args = [tvm.runtime.tensor(v) for v in feeds.values()]
    plain = ("mapspace", "mapspace_measured") if measured else ("mapspace",)
    for which in (plain if skip_default else ("tvm_default",) + plain):
        log: list = []
        pipe = mapspace_pipeline("cpu", budget=budget, log=log) if which == "mapspace" \
            else mapspace_pipeline("cpu", budget=budget, measure=("latency",)) \
            if which == "mapspace_measured" else "default"
        t0 = time.perf_counter()
        ex = tvm.compile(mod, target, relax_pipeline=pipe)
        builds[which] = time.perf_counter() - t0
        vm = relax.VirtualMachine(ex, dev)
        runners[which] = (lambda vm=vm: _outputs(vm["main"](*args)))
        if which == "mapspace":
            builds["scheduled"] = {
                "mac": sum(f.scheduled and f.kind != "generic" for f in log),
                "generic": sum(f.kind == "generic" for f in log),
                "failed": [f"{f.func}: {f.error[:80]}" for f in log if not f.scheduled]}
    return runners, builds, t_import


def _ort_folded(model):
    """``model`` after onnxruntime's basic (standard-op) graph optimizations."""
    import tempfile

    import onnx
    import onnxruntime as ort

    with tempfile.TemporaryDirectory() as tmp:
        so = ort.SessionOptions()
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
        so.optimized_model_filepath = str(Path(tmp) / "folded.onnx")
        ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
        return onnx.load(so.optimized_model_filepath)


def _outputs(out) -> list[np.ndarray]:
    if hasattr(out, "numpy"):
        return [out.numpy()]
    return [o.numpy() for o in out]


def interleaved(runners: dict, repeat: int, pause: float = 0.3) -> dict[str, list[float]]:
    """Seconds per run of every runner over ``repeat`` rounds (one run each per round,
    after one untimed warm-up run each)."""
    for f in runners.values():
        f()
        time.sleep(pause)
    times: dict[str, list[float]] = {k: [] for k in runners}
    for _ in range(repeat):
        for k, f in runners.items():
            t0 = time.perf_counter()
            f()
            times[k].append(time.perf_counter() - t0)
            time.sleep(pause)
    return times


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bert", type=Path, default=DEFAULTS["bert"])
    ap.add_argument("--resnet", type=Path, default=DEFAULTS["resnet"])
    ap.add_argument("--models", nargs="+", default=["bert", "resnet"], choices=list(NAMES))
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--budget", type=int, default=None,
                    help="search evaluations per op shape (default: the plug-in's)")
    ap.add_argument("--skip-default", action="store_true",
                    help="leave out TVM's default build (BERT-Base: ~25 s per run)")
    ap.add_argument("--measured", action="store_true",
                    help="also build with measure=('latency',): per MAC function the faster "
                         "of the edp and latency mappings, timed during the build")
    args = ap.parse_args()

    from targets.tvm_common import host_threads
    from targets.tvm_plugin.search import DEFAULT_BUDGET

    host_threads()
    budget = args.budget or DEFAULT_BUDGET
    rng = np.random.default_rng(0)
    out: dict = {"budget": budget, "repeat": args.repeat}
    for which in args.models:
        source, model, feeds = load_model(which, getattr(args, which), rng)
        runners, builds, t_import = build_all(model, feeds, budget, args.skip_default,
                                              args.measured)
        outs = {k: f() for k, f in runners.items()}
        times = interleaved(runners, args.repeat)
        row: dict = {"model": source, "import_s": round(t_import, 2),
                     "scheduled": builds.pop("scheduled")}
        for k in runners:
            ts = times[k]
            row[k] = {"build_s": round(builds[k], 2), "run_s": float(np.median(ts)),
                      "run_range_s": [min(ts), max(ts)]}
        ours = row["mapspace"]["run_s"]
        row["ratio_ort_over_mapspace"] = row["onnxruntime"]["run_s"] / ours
        row["max_abs_diff_vs_ort"] = max(float(np.abs(a - b).max()) for a, b in
                                         zip(outs["mapspace"], outs["onnxruntime"],
                                             strict=False))
        if "tvm_default" in runners:
            row["ratio_default_over_mapspace"] = row["tvm_default"]["run_s"] / ours
            row["max_abs_diff_vs_default"] = max(
                float(np.abs(a - b).max()) for a, b in zip(outs["mapspace"],
                                                           outs["tvm_default"], strict=True))
        out[which] = row
        for k in runners:
            r = row[k]
            print(f"{NAMES[which]:18s} {k:12s} run {r['run_s'] * 1e3:9.1f} ms "
                  f"[{r['run_range_s'][0] * 1e3:.1f}-{r['run_range_s'][1] * 1e3:.1f}]   "
                  f"build {r['build_s']:7.2f} s")
        print(f"{NAMES[which]:18s} onnxruntime / mapspace run time "
              f"{row['ratio_ort_over_mapspace']:.2f}"
              + (f", TVM default / mapspace {row['ratio_default_over_mapspace']:.1f}"
                 if "tvm_default" in runners else "")
              + f"; scheduled {row['scheduled']['mac']} MAC + {row['scheduled']['generic']} "
              "other functions", flush=True)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
