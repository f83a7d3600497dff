"""targets/tvm_plugin: recognising MAC PrimFuncs, the Relax pipeline, MetaSchedule adapters."""

from __future__ import annotations

import numpy as np
import pytest

tvm = pytest.importorskip("tvm")
onnx = pytest.importorskip("onnx")

from onnx import TensorProto, helper, numpy_helper  # noqa: E402
from tvm import relax  # noqa: E402

from cost_models import evaluate  # noqa: E402
from mapspace.validity import check  # noqa: E402
from targets.tvm_plugin import mapspace_pipeline, recognize, schedule_module  # noqa: E402
from targets.tvm_plugin.recognition import leaf_blocks  # noqa: E402

_RNG = np.random.default_rng(0)


def _legalized(shapes, build, dtype="float32"):
    """A one-op Relax module through TVM's CPU legalize passes (ends in FuseTIR)."""
    from tvm.relax.backend.cpu_generic import pipeline as cp

    bb = relax.BlockBuilder()
    vs = [relax.Var(f"x{i}", relax.TensorType(s, dtype)) for i, s in enumerate(shapes)]
    with bb.function("main", vs):
        with bb.dataflow():
            out = bb.emit_output(build(*vs))
        bb.emit_func_output(out)
    t = tvm.target.Target("llvm")
    with t:
        return tvm.transform.Sequential(cp.legalize_passes(t))(bb.get())


def _prim_funcs(mod):
    return {gv.name_hint: f for gv, f in mod.functions.items()
            if isinstance(f, tvm.tirx.PrimFunc)}


def _big(sizes):
    return {k: v for k, v in sizes.items() if v > 1}


R = relax.op
CASES = {
    "matmul": ([(16, 32), (32, 8)], lambda a, b: R.matmul(a, b), "matmul",
               dict(P=16, C=32, M=8), {}),
    "bmm": ([(4, 16, 32), (4, 32, 8)], lambda a, b: R.matmul(a, b), "bmm",
            dict(N=4, P=16, C=32, M=8), {}),
    "bmm_4d": ([(2, 3, 16, 32), (2, 3, 32, 8)], lambda a, b: R.matmul(a, b), "bmm",
               dict(N=6, P=16, C=32, M=8), {}),
    "matmul_3d_2d": ([(2, 16, 32), (32, 8)], lambda a, b: R.matmul(a, b), "matmul",
                     dict(P=32, C=32, M=8), {}),
    "conv_pad_stride": ([(1, 3, 15, 15), (8, 3, 3, 3)],
                        lambda a, b: R.nn.conv2d(a, b, strides=2, padding=1), "conv2d",
                        dict(C=3, M=8, R=3, S=3, P=8, Q=8), dict(stride=2, padding=1, H=15)),
    "conv_batch_nopad": ([(2, 3, 9, 9), (8, 3, 3, 3)], lambda a, b: R.nn.conv2d(a, b),
                         "conv2d", dict(N=2, C=3, M=8, R=3, S=3, P=7, Q=7),
                         dict(stride=1, padding=0, H=9)),
    "conv_dilated": ([(1, 3, 12, 12), (4, 3, 3, 3)],
                     lambda a, b: R.nn.conv2d(a, b, dilation=2, padding=2), "conv2d",
                     dict(C=3, M=4, R=3, S=3, P=12, Q=12), dict(dilation=2, padding=2)),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_recognises_legalized_ops(case):
    shapes, build, kind, sizes, geometry = CASES[case]
    funcs = _prim_funcs(_legalized(shapes, build))
    macs = [m for m in (recognize(f, n) for n, f in funcs.items()) if m is not None]
    assert len(macs) == 1
    mac = macs[0]
    assert mac.kind == kind
    assert _big(mac.spec.sizes) == sizes
    for k, v in geometry.items():
        assert getattr(mac.spec, k) == v
    assert mac.problem.macs == int(np.prod(list(sizes.values())))


def test_recognises_transposed_operands_and_int8():
    from tvm import te

    A = te.placeholder((32, 16), name="A")   # [k, i]
    B = te.placeholder((8, 32), name="B")    # [j, k]
    k = te.reduce_axis((0, 32), name="k")
    Z = te.compute((16, 8), lambda i, j: te.sum(A[k, i] * B[j, k], axis=k), name="Z")
    mac = recognize(te.create_prim_func([A, B, Z]))
    assert (mac.kind, _big(mac.spec.sizes), mac.groups) == (
        "matmul", dict(P=16, M=8, C=32), {"P": ("i",), "M": ("j",), "C": ("k",)})
    A8 = te.placeholder((16, 32), "int8", name="A")
    B8 = te.placeholder((32, 8), "int8", name="B")
    Z8 = te.compute((16, 8), lambda i, j: te.sum(
        A8[i, k].astype("int32") * B8[k, j].astype("int32"), axis=k), name="Z")
    mac = recognize(te.create_prim_func([A8, B8, Z8]))
    assert (mac.kind, mac.dtype, mac.word_bits) == ("matmul", "int8", 8)


@pytest.mark.parametrize("build", [
    lambda a, b: R.add(a, b),
    lambda a, b: R.sum(R.multiply(a, b), axis=1),
], ids=["add", "multiply_sum"])
def test_non_mac_functions_not_recognised(build):
    for name, f in _prim_funcs(_legalized([(4, 4), (4, 4)], build)).items():
        assert recognize(f, name) is None


def test_depthwise_conv_not_recognised():
    mod = _legalized([(1, 4, 8, 8), (4, 1, 3, 3)],
                     lambda a, b: R.nn.conv2d(a, b, groups=4, padding=1))
    assert all(recognize(f, n) is None for n, f in _prim_funcs(mod).items())


# ------------------------------------------------------------------ ONNX models
def _model(nodes, inputs, outputs, inits):
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info(n, TensorProto.FLOAT, s)
                                       for n, s in inputs],
                          [helper.make_tensor_value_info(n, TensorProto.FLOAT, s)
                           for n, s in outputs],
                          [numpy_helper.from_array(v.astype(np.float32), k)
                           for k, v in inits.items()])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])


def mlp_model():
    return _model([helper.make_node("MatMul", ["x", "W1"], ["h"]),
                   helper.make_node("Add", ["h", "b1"], ["h1"]),
                   helper.make_node("Relu", ["h1"], ["h2"]),
                   helper.make_node("MatMul", ["h2", "W2"], ["y"])],
                  [("x", [16, 64])], [("y", [16, 32])],
                  dict(W1=_RNG.standard_normal((64, 96)), b1=_RNG.standard_normal(96),
                       W2=_RNG.standard_normal((96, 32))))


def conv_model():
    return _model([helper.make_node("Conv", ["x", "W"], ["c"], pads=[1, 1, 1, 1]),
                   helper.make_node("Relu", ["c"], ["r"]),
                   helper.make_node("MaxPool", ["r"], ["y"], kernel_shape=[2, 2],
                                    strides=[2, 2])],
                  [("x", [1, 4, 14, 14])], [("y", [1, 8, 7, 7])],
                  dict(W=_RNG.standard_normal((8, 4, 3, 3))))


def _macs(log):
    """The log's entries for MAC functions (not the generic rules')."""
    return [f for f in log if f.kind != "generic"]


def _run(ex, x):
    vm = relax.VirtualMachine(ex, tvm.cpu())
    return vm["main"](tvm.runtime.tensor(x)).numpy()


@pytest.mark.parametrize("make, shape, scheduled", [
    (mlp_model, (16, 64), {("matmul", 16, 64, 96), ("matmul", 16, 96, 32)}),
    (conv_model, (1, 4, 14, 14), {("conv2d", 14, 4, 8)}),
], ids=["mlp", "conv"])
def test_pipeline_matches_default_build(make, shape, scheduled):
    from tvm.relax.frontend.onnx import from_onnx

    mod = from_onnx(make(), keep_params_in_input=False)
    log: list = []
    ours = tvm.compile(mod, "llvm", relax_pipeline=mapspace_pipeline("cpu", budget=500,
                                                                      log=log))
    ref = tvm.compile(mod, "llvm")
    x = _RNG.standard_normal(shape).astype(np.float32)
    np.testing.assert_allclose(_run(ours, x), _run(ref, x), rtol=1e-4, atol=1e-4)
    got = set()
    for f in _macs(log):
        s = f.sizes
        got.add((f.kind, s["P"], s["C"], s["M"]))
    assert got == scheduled


@pytest.mark.parametrize("which, n_macs", [("bert_block", 6), ("resnet_block", 4)])
def test_pipeline_on_relax_blocks(which, n_macs):
    """The BERT-like block (Q/K/V, Q*K^T and P*V as bmm, out-proj, FFN with GELU) and the
    ResNet-like block of the Relax front-end tests: same output as TVM's default build."""
    from tests import test_relax_frontend as rf

    mod = getattr(rf, which)()
    log: list = []
    ours = tvm.compile(mod, "llvm", relax_pipeline=mapspace_pipeline("cpu", budget=300,
                                                                      log=log))
    ref = tvm.compile(mod, "llvm")
    args = [tvm.runtime.tensor((0.3 * _RNG.standard_normal([int(d) for d in p.ty.shape]))
                               .astype(np.float32)) for p in mod["main"].params]
    got, want = (relax.VirtualMachine(e, tvm.cpu())["main"](*args).numpy() for e in (ours, ref))
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)
    macs = _macs(log)
    assert len(macs) == n_macs and all(f.scheduled for f in log)
    if which == "bert_block":
        assert sorted(f.kind for f in macs).count("bmm") == 2


def test_unrecognised_functions_left_to_defaults():
    from tvm.relax.backend.cpu_generic import pipeline as cp
    from tvm.relax.frontend.onnx import from_onnx

    mod = from_onnx(conv_model(), keep_params_in_input=False)
    t = tvm.target.Target("llvm")
    with t:
        mod = tvm.transform.Sequential(cp.legalize_passes(t))(mod)
    log: list = []
    out = schedule_module(mod, budget=300, log=log, generic=False)
    marks = {n: (f.attrs is not None and "tirx.is_scheduled" in f.attrs)
             for n, f in _prim_funcs(out).items()}
    assert marks == {"fused_conv2d_relu": True, "max_pool2d": False}
    assert [f.func for f in log] == ["fused_conv2d_relu"]
    # the pool function is the very same object: untouched
    assert _prim_funcs(out)["max_pool2d"].same_as(_prim_funcs(mod)["max_pool2d"])


def test_failures_keep_defaults_and_are_logged(monkeypatch):
    import targets.tvm_plugin.relax_pass as rp
    from mapspace.errors import MapspaceError

    mod = _legalized([(16, 32), (32, 8)], lambda a, b: R.matmul(a, b))

    def boom(*a, **k):
        raise RuntimeError("no schedule")

    monkeypatch.setattr(rp, "schedule_mac", boom)
    log: list = []
    out = schedule_module(mod, budget=200, log=log)
    assert all(f.attrs is None or "tirx.is_scheduled" not in f.attrs
               for f in _prim_funcs(out).values())
    assert len(log) == 1 and not log[0].scheduled and "no schedule" in log[0].error
    with pytest.raises(MapspaceError, match="objective"):
        mapspace_pipeline("cpu", objective="speed")
    with pytest.raises(MapspaceError, match="target"):
        mapspace_pipeline("gemmini")


def test_register_pipeline_by_name():
    from targets.tvm_plugin import register_pipeline

    register_pipeline()
    register_pipeline()   # idempotent
    p = relax.get_pipeline("mapspace", budget=200)
    assert isinstance(p, tvm.transform.Pass)


# ------------------------------------------------------------- MetaSchedule
def _matmul_mod(n=64):
    from mapspace.problem import matmul
    from targets.tvm_common import op_spec, prim_func

    spec = op_spec(matmul(n, n, n))
    return spec, tvm.IRModule({"main": prim_func(spec).with_attr("global_symbol", "main")})


def test_cost_model_ranks_like_evaluate():
    from tvm import s_tir

    from targets.tvm_plugin.metaschedule import (
        apply_recorded,
        candidate_mappings,
        mapping_of,
        predict_scores,
    )
    from targets.tvm_plugin.search import cpu_target

    spec, mod = _matmul_mod()
    mac = recognize(mod["main"])
    arch, cons = cpu_target(32, mac.problem)
    maps = candidate_mappings(mac, 64, select="random", pool=1024, budget=200)
    cyc = np.asarray(evaluate(mac.problem, arch, maps).cost.edp, np.float64)
    assert check(mac.problem, arch, maps).valid.all()
    lo, hi = int(np.argmin(cyc)), int(np.argmax(cyc))
    assert cyc[lo] < cyc[hi]
    schs = []
    for i in (hi, lo):
        s = s_tir.Schedule(mod)
        apply_recorded(s, mac, _row(maps, i))
        assert np.array_equal(mapping_of(s).factors, _row(maps, i).factors)
        schs.append(s)
    pred = predict_scores(mod, schs)
    assert pred[1] > pred[0] > 0          # lower EDP -> higher score
    assert predict_scores(mod, [s_tir.Schedule(mod)])[0] == 0   # no recorded mapping


def _row(m, i):
    from mapspace.mapping import MappingBatch

    return MappingBatch(*(getattr(m, k)[i:i + 1] for k in
                          ("temporal", "spatial", "order", "spatial_x", "keep")))


def test_tunable_space_reads_mutated_tiles_from_the_trace():
    from tvm import s_tir

    from targets.tvm_plugin.metaschedule import apply_recorded, candidate_mappings, mapping_of

    spec, mod = _matmul_mod()
    mac = recognize(mod["main"])
    m = _row(candidate_mappings(mac, 1, budget=200, pool=256), 0)
    s = s_tir.Schedule(mod)
    apply_recorded(s, mac, m, tunable=True)
    got = mapping_of(s)
    assert np.array_equal(got.temporal, m.temporal) and np.array_equal(got.spatial, m.spatial)
    tiles = [i for i in s.trace.insts if i.kind.name == "SamplePerfectTile"]
    assert tiles
    first = [int(v) for v in s.trace.decisions[tiles[0]]]
    mutated = first[::-1] if first[::-1] != first else first
    s2 = s_tir.Schedule(mod)
    s.trace.with_decision(tiles[0], mutated, remove_postproc=True).apply_to_schedule(
        s2, remove_postproc=True)
    m2 = mapping_of(s2)
    assert (m2.factors.prod(axis=1)[0] == np.array(mac.problem.sizes)).all()
    d = int(np.flatnonzero([(m2.factors[0, :, i] != m.factors[0, :, i]).any()
                            for i in range(m.num_dims)])[0]) if mutated != first else None
    if d is not None:   # the mutated dim's factors are the new decision, level by level
        slots = list(m2.temporal[0, :, d]) + list(m2.spatial[0, :, d])
        assert sorted(int(f) for f in slots if f > 1) == sorted(f for f in mutated if f > 1)


@pytest.mark.parametrize("tunable", [False, True], ids=["fixed", "tunable"])
def test_tune_tir_with_our_space_and_cost_model(tmp_path, tunable):
    """MetaSchedule end to end: 8 trials of a 128^3 matmul (MetaSchedule's import of its
    tensor intrinsics, 20-35 s here, skipped: our spaces tensorize nothing)."""
    from tvm.s_tir import meta_schedule as ms

    from targets.tvm_common import random_inputs, reference
    from targets.tvm_plugin.metaschedule import (
        MapspaceCostModel,
        local_builder,
        mapping_of,
        mapspace_space,
        without_tensor_intrinsics,
    )

    spec, mod = _matmul_mod(128)
    target = tvm.target.Target({"kind": "llvm", "num-cores": 2})
    cm = MapspaceCostModel()
    runner = ms.runner.LocalRunner(evaluator_config=ms.runner.EvaluatorConfig(
        number=1, repeat=1, min_repeat_ms=0))
    with without_tensor_intrinsics():
        db = ms.tune_tir(mod, target, str(tmp_path), max_trials_global=8,
                         num_trials_per_iter=8,
                         space=mapspace_space(num_spaces=8, pool=1024, budget=500,
                                              tunable=tunable),
                         cost_model=cm, builder=local_builder(), runner=runner,
                         strategy="evolutionary")
    sch = ms.tir_integration.compile_tir(db, mod, target)
    assert sch is not None and mapping_of(sch) is not None
    assert cm.predict_calls > 0 and len(cm.history) == 8
    lib = tvm.compile(sch.mod, target=target)
    a, b = random_inputs(spec, "float32", 0)
    args = [tvm.runtime.tensor(a), tvm.runtime.tensor(b),
            tvm.runtime.empty((128, 128), "float32", tvm.cpu())]
    lib["main"](*args)
    np.testing.assert_allclose(args[2].numpy(), reference(spec, a, b), rtol=1e-4, atol=1e-3)


def test_leaf_blocks_lists_blocks():
    _, mod = _matmul_mod(8)
    assert [b.name_hint for b in leaf_blocks(mod["main"])] == ["Z"]


def test_symbolic_shapes_not_recognised():
    from tvm import te, tirx

    n = tirx.Var("n", "int64")
    A = te.placeholder((n, 32), name="A")
    B = te.placeholder((32, 8), name="B")
    k = te.reduce_axis((0, 32), name="k")
    Z = te.compute((n, 8), lambda i, j: te.sum(A[i, k] * B[k, j], axis=k), name="Z")
    assert recognize(te.create_prim_func([A, B, Z])) is None


# ------------------------------------------------------------ generic rules
def _gelu(a):
    return R.multiply(R.multiply(a, R.add(R.erf(R.divide(a, relax.const(1.4142135, "float32"))),
                                          relax.const(1.0, "float32"))),
                      relax.const(0.5, "float32"))


GENERIC_CASES = {
    "softmax": ([(2, 4, 16, 16)], lambda a: R.nn.softmax(a, axis=-1), "row-reduction"),
    "layer_norm": ([(1, 16, 64), (64,), (64,)],
                   lambda a, g, b: R.nn.layer_norm(a, g, b, axes=[-1]), "row-reduction"),
    "gelu": ([(1, 16, 64)], _gelu, "injective"),
    "gelu_op": ([(1, 16, 64)], lambda a: R.nn.gelu(a), "injective"),   # via fast_gelu_pass
    "transpose": ([(1, 16, 4, 16)], lambda a: R.permute_dims(a, [0, 2, 1, 3]), "injective"),
    "broadcast_add": ([(8, 64), (64,)], lambda a, b: R.nn.relu(R.add(a, b)), "injective"),
    "max_pool": ([(1, 8, 16, 16)],
                 lambda a: R.nn.max_pool2d(a, pool_size=3, strides=2, padding=1), "reduction"),
    "avg_pool": ([(1, 8, 7, 7)], lambda a: R.mean(a, axis=[2, 3], keepdims=True),
                 "row-reduction"),
}


@pytest.mark.parametrize("case", sorted(GENERIC_CASES))
def test_generic_rules_match_default_build(case):
    """Each non-MAC op is scheduled by the expected rule (marked ``tirx.is_scheduled``,
    with parallel or vectorised loops) and computes what TVM's default build computes."""
    shapes, build, rule = GENERIC_CASES[case]
    bb = relax.BlockBuilder()
    vs = [relax.Var(f"x{i}", relax.TensorType(s, "float32")) for i, s in enumerate(shapes)]
    with bb.function("main", vs):
        with bb.dataflow():
            out = bb.emit_output(build(*vs))
        bb.emit_func_output(out)
    mod = bb.get()
    log: list = []
    ours = tvm.compile(mod, "llvm", relax_pipeline=mapspace_pipeline("cpu", log=log))
    ref = tvm.compile(mod, "llvm")
    args = [tvm.runtime.tensor(_RNG.standard_normal(s).astype(np.float32)) for s in shapes]
    got, want = (relax.VirtualMachine(e, tvm.cpu())["main"](*args).numpy() for e in (ours, ref))
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    assert [(f.kind, f.block) for f in log] == [("generic", rule)]
    # the scheduled function: marked, and its loops are no longer all serial
    from tvm.relax.backend.cpu_generic import pipeline as cp
    from tvm.s_tir import Schedule

    from targets.tvm_plugin.generic import schedule_generic
    from targets.tvm_plugin.relax_pass import fast_gelu_pass

    t = tvm.target.Target("llvm")
    with t:
        legal = tvm.transform.Sequential([fast_gelu_pass()] + cp.legalize_passes(t))(mod)
    (name, func), = _prim_funcs(legal).items()
    new, got_rule = schedule_generic(func, t)
    assert got_rule == rule
    sch = Schedule(tvm.IRModule({"main": new}))
    kinds = {int(sch.get(lp).kind) for b in sch.get_child_blocks(sch.get_sblock("root"))
             for lp in sch.get_loops(b)}
    assert kinds - {0}, f"{name}: every loop still serial"


def bert_layer_model(seq=8, hidden=32, heads=2, ffn=64):
    """One post-LN BERT layer as an HF export writes it (decomposed layer norm, erf GELU,
    softmax over an additive mask), plus a tanh pooler."""
    rng = np.random.default_rng(1)
    d = hidden // heads
    nodes, inits = [], {}

    def w(name, shape, scale=0.2):
        inits[name] = rng.standard_normal(shape) * scale
        return name

    def node(op, ins, out, **kw):
        nodes.append(helper.make_node(op, ins, [out], **kw))
        return out

    def ln(x, p):
        mu = node("ReduceMean", [x], p + "mu", axes=[-1])
        xc = node("Sub", [x, mu], p + "xc")
        var = node("ReduceMean", [node("Mul", [xc, xc], p + "sq")], p + "var", axes=[-1])
        den = node("Sqrt", [node("Add", [var, w(p + "eps", (), 0) or p + "eps"], p + "ve")],
                   p + "den")
        inits[p + "eps"] = np.array(1e-12)
        y = node("Div", [xc, den], p + "y")
        return node("Add", [node("Mul", [y, w(p + "g", (hidden,))], p + "yg"),
                            w(p + "b", (hidden,))], p + "out")

    def dense(x, i, o, p):
        return node("Add", [node("MatMul", [x, w(p + "W", (i, o))], p + "mm"),
                            w(p + "bias", (o,))], p + "d")

    inits["shape4"] = np.array([1, seq, heads, d])
    inits["shape3"] = np.array([1, seq, hidden])
    q, k, v = (node("Reshape", [dense("x", hidden, hidden, n), "shape4"], n + "r")
               for n in ("q", "k", "v"))
    q = node("Transpose", [q], "qt", perm=[0, 2, 1, 3])
    k = node("Transpose", [k], "kt", perm=[0, 2, 3, 1])
    v = node("Transpose", [v], "vt", perm=[0, 2, 1, 3])
    s = node("Add", [node("Div", [node("MatMul", [q, k], "qk"), w("scale", (), 0)], "sd"),
                     "mask"], "sm")
    inits["scale"] = np.array(np.sqrt(d))
    p = node("Softmax", [s], "p", axis=-1)
    c = node("Reshape", [node("Transpose", [node("MatMul", [p, v], "pv")], "ct",
                              perm=[0, 2, 1, 3]), "shape3"], "c")
    x = ln(node("Add", [dense(c, hidden, hidden, "o"), "x"], "res1"), "ln1")
    h = dense(x, hidden, ffn, "f1")
    inits["sqrt2"], inits["one"], inits["half"] = np.array(1.4142135), np.array(1.0), \
        np.array(0.5)
    g = node("Mul", [node("Mul", [h, node("Add", [node("Erf", [node(
        "Div", [h, "sqrt2"], "hd")], "erf"), "one"], "e1")], "hm"), "half"], "gelu")
    y = ln(node("Add", [dense(g, ffn, hidden, "f2"), x], "res2"), "ln2")
    node("Tanh", [y], "y")
    graph = helper.make_graph(
        nodes, "bert_layer",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, seq, hidden]),
         helper.make_tensor_value_info("mask", TensorProto.FLOAT, [1, 1, 1, seq])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, seq, hidden])],
        [numpy_helper.from_array(np.asarray(a).astype(
            np.int64 if n.startswith("shape") else np.float32), n) for n, a in inits.items()])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)])


def test_whole_bert_layer_scheduled_and_equal():
    """Every PrimFunc of an exported-style BERT layer is scheduled (MAC functions by a
    mapping, the rest by a generic rule; the GELU epilogue fused into its matmul) and the
    output equals TVM's default build."""
    from tvm.relax.frontend.onnx import from_onnx

    mod = from_onnx(bert_layer_model(), keep_params_in_input=False)
    log: list = []
    ours = tvm.compile(mod, "llvm", relax_pipeline=mapspace_pipeline("cpu", budget=500,
                                                                      log=log))
    ref = tvm.compile(mod, "llvm")
    x = tvm.runtime.tensor(_RNG.standard_normal((1, 8, 32)).astype(np.float32))
    mask = tvm.runtime.tensor(np.where(np.arange(8) < 6, 0, -1e4).astype(np.float32)
                              .reshape(1, 1, 1, 8))
    got, want = (relax.VirtualMachine(e, tvm.cpu())["main"](x, mask).numpy()
                 for e in (ours, ref))
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    assert all(f.scheduled for f in log)
    rules = {f.block for f in log if f.kind == "generic"}
    assert {"row-reduction", "injective"} <= rules
    gelu = [f for f in _macs(log) if "fast_erf" in f.func]   # FastMathTransform ran
    assert len(gelu) == 1 and {"T_fast_erf", "T_divide"} <= set(gelu[0].inlined)


# ------------------------------------------------------- convs with HWIO weights
def _hwio_legalized(shapes, build):
    """As :func:`_legalized`, with the plug-in's OIHW -> HWIO weight pass first."""
    from tvm.relax.backend.cpu_generic import pipeline as cp

    from targets.tvm_plugin.relax_pass import conv_weights_hwio_pass

    bb = relax.BlockBuilder()
    vs = [relax.Var(f"x{i}", relax.TensorType(s, "float32")) for i, s in enumerate(shapes)]
    with bb.function("main", vs):
        with bb.dataflow():
            out = bb.emit_output(build(*vs))
        bb.emit_func_output(out)
    t = tvm.target.Target("llvm")
    with t:
        return tvm.transform.Sequential([conv_weights_hwio_pass()]
                                        + list(cp.legalize_passes(t)))(bb.get())


@pytest.mark.parametrize("case", [c for c in sorted(CASES) if c.startswith("conv")])
def test_recognises_hwio_convs(case):
    """The same convs with HWIO weights: same op, sizes and geometry; lanes on ``M``.
    (OIHW ones keep them on ``P``.)"""
    shapes, build, kind, sizes, geometry = CASES[case]
    mod = _hwio_legalized(shapes, build)
    text = mod.script()
    assert 'kernel_layout="HWIO"' not in text       # legalized away
    macs = [m for m in (recognize(f, n) for n, f in _prim_funcs(mod).items()) if m]
    assert len(macs) == 1 and macs[0].kind == kind and macs[0].vector_dim == "M"
    assert _big(macs[0].spec.sizes) == sizes
    for k, v in geometry.items():
        assert getattr(macs[0].spec, k) == v
    old = [m for m in (recognize(f, n) for n, f in _prim_funcs(_legalized(shapes, build))
                       .items()) if m]
    assert old[0].vector_dim == "P" and old[0].shape_key() != macs[0].shape_key()


def test_hwio_pass_leaves_grouped_convs():
    from targets.tvm_plugin.relax_pass import conv_weights_hwio_pass

    bb = relax.BlockBuilder()
    x = relax.Var("x", relax.TensorType((1, 4, 8, 8), "float32"))
    w = relax.Var("w", relax.TensorType((4, 1, 3, 3), "float32"))
    with bb.function("main", [x, w]):
        with bb.dataflow():
            out = bb.emit_output(R.nn.conv2d(x, w, groups=4, padding=1))
        bb.emit_func_output(out)
    mod = conv_weights_hwio_pass()(bb.get())
    assert "HWIO" not in mod.script() and "permute_dims" not in mod.script()


@pytest.mark.parametrize("conv_hwio, measure", [(True, ()), (False, ()),
                                               (True, ("latency",))])
def test_resnet_like_convs_match_default_build(conv_hwio, measure):
    """Stride-2 3x3 conv + bias + ReLU, then a 1x1 conv + bias + residual + ReLU (lanes on
    the output channels with ``conv_hwio``, on the width without): TVM's default output."""
    c, m, h = 8, 32, 14
    w1 = relax.const((0.2 * _RNG.standard_normal((m, c, 3, 3))).astype(np.float32))
    b1 = relax.const(_RNG.standard_normal((1, m, 1, 1)).astype(np.float32))
    w2 = relax.const((0.2 * _RNG.standard_normal((m, m, 1, 1))).astype(np.float32))
    bb = relax.BlockBuilder()
    x = relax.Var("x", relax.TensorType((1, c, h, h), "float32"))
    with bb.function("main", [x]):
        with bb.dataflow():
            y = bb.emit(R.nn.relu(R.add(R.nn.conv2d(x, w1, strides=2, padding=1), b1)))
            z = bb.emit(R.nn.relu(R.add(R.nn.conv2d(y, w2), y)))
            out = bb.emit_output(z)
        bb.emit_func_output(out)
    mod = bb.get()
    log: list = []
    ours = tvm.compile(mod, "llvm", relax_pipeline=mapspace_pipeline(
        "cpu", budget=500, log=log, conv_hwio=conv_hwio, measure=measure))
    ref = tvm.compile(mod, "llvm")
    xv = _RNG.standard_normal((1, c, h, h)).astype(np.float32)
    np.testing.assert_allclose(_run(ours, xv), _run(ref, xv), rtol=1e-4, atol=1e-4)
    macs = _macs(log)
    assert len(macs) == 2 and all(f.scheduled for f in macs)
    assert all(f.inlined for f in macs)               # epilogues in the write-back
    regs = -1                                          # the lanes: Registers' fan-out
    dims = list(macs[0].sizes)
    lanes_on = {dims[i] for f in macs for i in range(len(dims))
                if f.mapping.spatial[0][regs, i] > 1}
    assert lanes_on <= ({"M"} if conv_hwio else {"P"})
