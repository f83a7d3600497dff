"""Relax front end (``compiler.frontends.relax``) on small modules built with
``relax.BlockBuilder`` and on ONNX models imported by TVM: op kinds, shapes, attrs, MACs,
agreement with our ONNX reader, errors, ``compile_model(IRModule)`` and
``mapspace compile --frontend relax``."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest

tvm = pytest.importorskip("tvm")
onnx = pytest.importorskip("onnx")
from click.testing import CliRunner  # noqa: E402
from onnx import helper  # noqa: E402
from tvm import relax  # noqa: E402
from tvm.relax.frontend.onnx import from_onnx as tvm_from_onnx  # noqa: E402

from compiler.cli import main  # noqa: E402
from compiler.errors import CompilerError  # noqa: E402
from compiler.frontends.onnx import from_onnx  # noqa: E402
from compiler.frontends.relax import (  # noqa: E402
    SUPPORTED_OPS,
    from_onnx_via_relax,
    from_relax,
    is_ir_module,
)
from compiler.pipeline import compile_model  # noqa: E402
from mapspace.problem import bmm, matmul  # noqa: E402
from tests import test_onnx as om  # noqa: E402

R = relax.op


def _t(*shape, dtype="float32"):
    return relax.TensorType(shape, dtype)


_RNG = np.random.default_rng(0)


def _c(*shape, value=None):
    """A constant: ``value`` everywhere, else seeded random values."""
    arr = (np.full(shape, value, np.float32) if value is not None
           else (0.3 * _RNG.standard_normal(shape)).astype(np.float32))
    return relax.const(arr)


def _module(params, build, num_input=None):
    """A one-function module: ``build(bb, *params)`` emits the dataflow block."""
    bb = relax.BlockBuilder()
    attrs = {"num_input": num_input} if num_input is not None else None
    with bb.function("main", params, attrs=attrs):
        with bb.dataflow():
            out = bb.emit_output(build(bb, *params))
        bb.emit_func_output(out)
    return bb.get()


# ------------------------------------------------------------------ BERT-like block
SEQ, HID, HEADS, FFN = 16, 32, 4, 128
HD = HID // HEADS


def bert_block():
    x = relax.Var("x", _t(1, SEQ, HID))
    wq, wk, wv = (relax.Var(n, _t(HID, HID)) for n in ("wq", "wk", "wv"))
    wo = relax.Var("wo", _t(HID, HID))  # stored [out, in]: used through permute_dims

    def build(bb, x, wq, wk, wv, wo):
        q = bb.emit(R.matmul(x, wq))
        k = bb.emit(R.matmul(x, wk))
        v = bb.emit(R.matmul(x, wv))
        qh = bb.emit(R.permute_dims(bb.emit(R.reshape(q, (1, SEQ, HEADS, HD))), [0, 2, 1, 3]))
        kh = bb.emit(R.permute_dims(bb.emit(R.reshape(k, (1, SEQ, HEADS, HD))), [0, 2, 3, 1]))
        vh = bb.emit(R.permute_dims(bb.emit(R.reshape(v, (1, SEQ, HEADS, HD))), [0, 2, 1, 3]))
        s = bb.emit(R.matmul(qh, kh))
        ss = bb.emit(R.multiply(s, relax.const(1 / np.sqrt(HD), "float32")))
        p = bb.emit(R.nn.softmax(ss, axis=-1))
        ctx = bb.emit(R.matmul(p, vh))
        cm = bb.emit(R.reshape(bb.emit(R.permute_dims(ctx, [0, 2, 1, 3])), (1, SEQ, HID)))
        o = bb.emit(R.matmul(cm, bb.emit(R.permute_dims(wo))))
        r = bb.emit(R.add(o, x))
        ln = bb.emit(R.nn.layer_norm(r, _c(HID, value=1.0), _c(HID), axes=[-1]))
        f1 = bb.emit(R.matmul(ln, _c(HID, FFN)))
        g = bb.emit(R.nn.gelu(f1))
        f2 = bb.emit(R.matmul(g, _c(FFN, HID)))
        return R.add(f2, ln)

    return _module([x, wq, wk, wv, wo], build, num_input=1)


def test_bert_block():
    g = from_relax(bert_block())
    kinds = Counter(o.kind for o in g.ops())
    assert kinds == Counter(matmul=6, bmm=2, reshape=4, transpose=4, mul=1, softmax=1,
                            add=2, layernorm=1, gelu=1)
    assert g.inputs == ["x"]
    assert {"wq", "wk", "wv", "wo"} <= set(g.params)
    assert len([p for p in g.params if p.startswith("const")]) == 5  # scale, gamma, beta, w1, w2
    mm = [o for o in g.ops() if o.kind in ("matmul", "bmm")]
    probs = [g.problem(o) for o in mm]
    assert [p.name for p in probs] == [o.name for o in mm]
    assert probs[0] == matmul(SEQ, HID, HID, name=mm[0].name)
    scores, context = (o for o in mm if o.kind == "bmm")
    assert g.problem(scores) == bmm(HEADS, SEQ, HD, SEQ, name=scores.name)
    assert g.problem(context) == bmm(HEADS, SEQ, SEQ, HD, name=context.name)
    assert g.tensor(scores.outputs[0]).shape == (1, HEADS, SEQ, SEQ)
    # out-proj: permute_dims of the [out, in] weight folded into transpose_b
    out_proj = next(o for o in mm if "wo" in o.inputs)
    assert out_proj.attr("transpose_b") is True and g.problem(out_proj).macs == SEQ * HID * HID
    ln = next(o for o in g.ops() if o.kind == "layernorm")
    assert ln.attr("axis") == 2 and ln.attr("epsilon") == pytest.approx(1e-5)
    assert len(ln.inputs) == 3
    sm = next(o for o in g.ops() if o.kind == "softmax")
    assert sm.attr("axis") == 3
    want = 4 * SEQ * HID * HID + 2 * SEQ * HID * FFN + 2 * HEADS * SEQ * SEQ * HD
    assert g.summary().macs == want == 212_992
    assert [g.tensor(t).shape for t in g.outputs] == [(1, SEQ, HID)]


# ------------------------------------------------------------------ ResNet-like block
def resnet_block():
    x = relax.Var("x", _t(1, 8, 16, 16))

    def build(bb, x):
        c1 = bb.emit(R.nn.conv2d(x, _c(16, 8, 3, 3), strides=2, padding=1))
        r1 = bb.emit(R.nn.relu(c1))
        c2 = bb.emit(R.nn.conv2d(r1, _c(16, 16, 3, 3), padding=[1, 1, 1, 1]))
        sc = bb.emit(R.nn.conv2d(x, _c(16, 8, 1, 1), strides=2))
        a = bb.emit(R.nn.relu(bb.emit(R.add(c2, sc))))
        dw = bb.emit(R.nn.conv2d(a, _c(16, 1, 3, 3), padding=1, groups=16))
        mp = bb.emit(R.nn.max_pool2d(dw, pool_size=2, strides=2))
        gap = bb.emit(R.nn.adaptive_avg_pool2d(mp, output_size=1))
        flat = bb.emit(R.reshape(gap, (1, 16)))
        return R.matmul(flat, _c(16, 10))

    return _module([x], build)


def test_resnet_block():
    g = from_relax(resnet_block())
    ops = g.ops()
    assert [o.kind for o in ops] == ["conv2d", "relu", "conv2d", "conv2d", "add", "relu",
                                     "depthwise_conv2d", "pool", "pool", "reshape", "matmul"]
    c1, _, c2, sc, _, _, dw, mp, gap, _, fc = ops
    assert c1.attr("strides") == (2, 2) and c1.attr("pads") == (1, 1, 1, 1)
    assert c1.attr("dilations") == (1, 1) and c1.attr("group") == 1
    assert g.tensor(c1.outputs[0]).shape == (1, 16, 8, 8)
    assert sc.attr("strides") == (2, 2) and sc.attr("pads") == (0, 0, 0, 0)
    assert dw.attr("group") == 16
    assert mp.attr("mode") == "max" and mp.attr("kernel") == (2, 2)
    assert gap.attr("mode") == "global_avg" and g.tensor(gap.outputs[0]).shape == (1, 16, 1, 1)
    p1 = g.problem(c1)
    sizes = dict(zip(p1.dims, p1.sizes, strict=True))
    assert sizes["P"] == sizes["Q"] == 8 and sizes["R"] == sizes["S"] == 3
    assert sizes["C"] == 8 and sizes["M"] == 16
    assert dict(p1.coefficients)["Wstride"] == 2
    macs = {o.name: g.problem(o).macs for o in (c1, c2, sc, dw, fc)}
    assert macs == {c1.name: 16 * 8 * 8 * 8 * 9, c2.name: 16 * 8 * 8 * 16 * 9,
                    sc.name: 16 * 8 * 8 * 8, dw.name: 16 * 8 * 8 * 9, fc.name: 16 * 10}
    assert g.summary().macs == sum(macs.values())
    assert len(g.params) == 5 and g.inputs == ["x"]


def test_split_slice_concat_take_mean_and_tuple_outputs():
    x = relax.Var("x", _t(1, 6, 8))
    ids = relax.Var("ids", _t(2, 5, dtype="int64"))

    def build(bb, x, ids):
        parts = bb.emit(R.split(x, [2, 5], axis=1))
        a = bb.emit(relax.TupleGetItem(parts, 0))
        b = bb.emit(relax.TupleGetItem(parts, 2))
        s = bb.emit(R.strided_slice(a, axes=[2], begin=[1], end=[7], strides=[2]))
        cat = bb.emit(R.concat([b, b], axis=1))
        m = bb.emit(R.mean(cat, axis=[-1], keepdims=False))
        e = bb.emit(R.take(_c(100, 4), ids, axis=0))
        h = bb.emit(R.astype(e, "float16"))
        t = bb.emit(R.sqrt(bb.emit(R.expand_dims(m, axis=0))))
        return relax.Tuple([s, t, h])

    g = from_relax(_module([x, ids], build))
    kinds = [o.kind for o in g.ops()]
    assert kinds == ["split", "slice", "concat", "reduce_mean", "gather", "host", "reshape",
                     "sqrt"]
    sp = g.ops()[0]
    assert sp.attr("sizes") == (2, 3, 1) and len(sp.outputs) == 3
    assert g.tensor(g.ops()[1].outputs[0]).shape == (1, 2, 3)
    assert g.tensor(g.ops()[3].outputs[0]).shape == (1, 2)
    assert g.ops()[4].attr("axis") == 0 and g.tensor(g.ops()[4].outputs[0]).shape == (2, 5, 4)
    assert len(g.outputs) == 3  # the tuple's fields; astype to float16 is a real conversion
    cast = g.ops()[5]
    assert cast.attr("op_type") == "relax.astype" and cast.inputs == g.ops()[4].outputs
    assert g.outputs[2] == cast.outputs[0] and g.tensor(cast.outputs[0]).dtype == "float16"
    assert g.summary().macs == 0


def _tanh_gelu_module():
    x = relax.Var("x", _t(2, 8))
    return _module([x], lambda bb, x: R.nn.relu(_tanh_gelu(bb, x)))


def _shapes_module():
    x = relax.Var("x", _t(1, 6, 8, 8))
    ids = relax.Var("ids", _t(2, 3, dtype="int64"))

    def build(bb, x, ids):
        parts = bb.emit(R.split(x, 3, axis=1))
        a = bb.emit(relax.TupleGetItem(parts, 1))
        s = bb.emit(R.strided_slice(a, axes=[2, 3], begin=[1, 0], end=[7, 8], strides=[2, 3]))
        p = bb.emit(R.nn.avg_pool2d(x, pool_size=3, strides=2, padding=1))
        q = bb.emit(R.nn.adaptive_avg_pool2d(x, output_size=[2, 4]))
        m = bb.emit(R.mean(q, axis=[1], keepdims=False))
        ln = bb.emit(R.nn.layer_norm(bb.emit(R.permute_dims(p, [0, 2, 3, 1])),
                                     _c(6), _c(6), axes=[3], epsilon=1e-3))
        e = bb.emit(R.take(_c(10, 4), ids, axis=0))
        r = bb.emit(R.sqrt(bb.emit(R.nn.relu(bb.emit(R.expand_dims(m, axis=1))))))
        return relax.Tuple([s, ln, e, r, bb.emit(R.concat([a, a], axis=2))])

    return _module([x, ids], build, num_input=2)


def _args(f, rng):
    return [rng.integers(0, 10, [int(d) for d in p.ty.shape.values])
            if str(p.ty.dtype) == "int64" else
            rng.standard_normal([int(d) for d in p.ty.shape.values]).astype(np.float32)
            for p in f.params]


@pytest.mark.parametrize("build", [bert_block, resnet_block, _tanh_gelu_module, _shapes_module],
                         ids=["bert", "resnet", "tanh-gelu", "shapes"])
def test_graph_computes_what_tvm_computes(build):
    """The graph run by ``compiler.execute.run_graph`` (numpy) gives TVM's own result."""
    from compiler.execute import run_graph

    mod = build()
    rng = np.random.default_rng(1)
    f = mod["main"]
    args = _args(f, rng)
    vm = relax.VirtualMachine(tvm.compile(mod, "llvm"), tvm.cpu())
    res = vm["main"](*[tvm.runtime.tensor(a) for a in args])
    wants = [r.numpy() for r in res] if not hasattr(res, "numpy") else [res.numpy()]
    values: dict = {}
    g = from_relax(mod, values=values)
    assert set(values) == {p for p in g.params if p.startswith("const")}
    values.update({p.name: a for p, a in zip(f.params, args, strict=True)})
    out = run_graph(g, values)
    assert len(g.outputs) == len(wants)
    for name, want in zip(g.outputs, wants, strict=True):
        assert out[name].shape == want.shape, name
        np.testing.assert_allclose(out[name], want, rtol=1e-4,
                                   atol=1e-4 * max(1.0, np.abs(want).max()), err_msg=name)


# ------------------------------------------------------------------ vs our ONNX reader
def _mac_multiset(g):
    return Counter((o.kind, g.problem(o).sizes) for o in g.ops() if g.problem(o) is not None)


def resnet_onnx() -> onnx.ModelProto:
    n = helper.make_node
    nodes = [
        n("Conv", ["x", "w1", "b1"], ["c1"], name="conv1", strides=[2, 2], pads=[1, 1, 1, 1],
          kernel_shape=[3, 3]),
        n("Relu", ["c1"], ["r1"], name="relu1"),
        n("Conv", ["r1", "w2"], ["c2"], name="conv2", pads=[1, 1, 1, 1], kernel_shape=[3, 3]),
        n("Conv", ["x", "ws"], ["sc"], name="short", strides=[2, 2], kernel_shape=[1, 1]),
        n("Add", ["c2", "sc"], ["a"], name="add"),
        n("Relu", ["a"], ["r2"], name="relu2"),
        n("Conv", ["r2", "wd"], ["d"], name="dw", group=16, pads=[1, 1, 1, 1]),
        n("MaxPool", ["d"], ["m"], name="mp", kernel_shape=[2, 2], strides=[2, 2]),
        n("GlobalAveragePool", ["m"], ["p"], name="gap"),
        n("Flatten", ["p"], ["f"], name="flat", axis=1),
        n("Gemm", ["f", "fw", "fb"], ["y"], name="fc", transB=1),
    ]
    inits = [om._init("w1", 16, 8, 3, 3), om._init("b1", 16), om._init("w2", 16, 16, 3, 3),
             om._init("ws", 16, 8, 1, 1), om._init("wd", 16, 1, 3, 3), om._init("fw", 10, 16),
             om._init("fb", 10)]
    return om._model(nodes, [om._vi("x", 1, 8, 16, 16)], [om._vi("y", 1, 10)], inits)


@pytest.mark.parametrize("build", [om.mlp, om.transformer, resnet_onnx],
                         ids=["mlp", "transformer", "resnet"])
def test_tvm_onnx_import_matches_our_onnx_reader(build):
    model = build()
    ours = from_onnx(model)
    via = from_relax(tvm_from_onnx(model, keep_params_in_input=False))
    assert _mac_multiset(via) == _mac_multiset(ours)
    assert via.summary().macs == ours.summary().macs > 0
    assert via.summary().mac_ops == ours.summary().mac_ops
    # the same through the one-call helper, with weights kept as function params
    assert _mac_multiset(from_onnx_via_relax(model)) == _mac_multiset(ours)
    kept = from_relax(tvm_from_onnx(model, keep_params_in_input=True))
    assert kept.inputs == ours.inputs and _mac_multiset(kept) == _mac_multiset(ours)


def test_tvm_onnx_transformer_has_the_same_op_kinds_gelu_fused():
    model = om.transformer()
    ours = from_onnx(model)
    via = from_relax(tvm_from_onnx(model, keep_params_in_input=False))
    assert Counter(o.kind for o in via.ops()) == Counter(o.kind for o in ours.ops())
    assert via.summary().param_elements == ours.summary().param_elements


def _tanh_gelu(bb, x, half_first=False, cube="pow"):
    if cube == "pow":
        x3 = bb.emit(R.power(x, relax.const(3.0, "float32")))
    else:  # x * x * x, the way the ONNX front end also accepts it
        x3 = bb.emit(R.multiply(bb.emit(R.multiply(x, x)), x))
    inner = bb.emit(R.add(x, bb.emit(R.multiply(x3, relax.const(0.044715, "float32")))))
    t = bb.emit(R.tanh(bb.emit(R.multiply(inner, relax.const(0.7978845608, "float32")))))
    t1 = bb.emit(R.add(t, relax.const(1.0, "float32")))
    if half_first:
        return bb.emit(R.multiply(bb.emit(R.multiply(x, relax.const(0.5, "float32"))), t1))
    return bb.emit(R.multiply(bb.emit(R.multiply(t1, x)), relax.const(0.5, "float32")))


@pytest.mark.parametrize("cube", ["pow", "mul"])
@pytest.mark.parametrize("half_first", [False, True])
def test_tanh_gelu_fused(half_first, cube):
    x = relax.Var("x", _t(2, 8))
    g = from_relax(_module([x], lambda bb, x: R.nn.relu(_tanh_gelu(bb, x, half_first, cube))))
    assert [o.kind for o in g.ops()] == ["gelu", "relu"]
    assert g.ops()[0].inputs == ("x",) and not g.params  # the scalars went with the pattern


def test_gelu_not_fused_when_an_intermediate_escapes():
    x = relax.Var("x", _t(2, 8))

    def build(bb, x):
        e = bb.emit(R.erf(bb.emit(R.divide(x, relax.const(1.41421356, "float32")))))
        y = bb.emit(R.multiply(bb.emit(R.multiply(x, bb.emit(R.add(e, relax.const(
            1.0, "float32"))))), relax.const(0.5, "float32")))
        return relax.Tuple([y, e])

    g = from_relax(_module([x], build))
    assert [o.kind for o in g.ops()] == ["div", "erf", "add", "mul", "mul"]


def test_tvmscript_module_without_dataflow_block_and_function_calls():
    from tvm.script import ir as I
    from tvm.script import relax as RS

    @I.ir_module
    class Mod:
        @RS.function
        def helper(x: RS.Tensor((2, 8), "float32")) -> RS.Tensor((2, 8), "float32"):
            return RS.nn.relu(x)

        @RS.function
        def main(x: RS.Tensor((2, 8), "float32"),
                 w: RS.Tensor((8, 4), "float32")) -> RS.Tensor((2, 4), "float32"):
            RS.func_attr({"num_input": 1})
            y = RS.matmul(x, w)
            z = RS.nn.gelu_tanh(y)
            return z

        @RS.function
        def calls(x: RS.Tensor((2, 8), "float32")) -> RS.Tensor((2, 8), "float32"):
            cls = Mod
            y = cls.helper(x)
            return y

    g = from_relax(Mod, name="script")
    assert g.name == "script" and [(o.name, o.kind) for o in g.ops()] == [("y", "matmul"),
                                                                            ("z", "gelu")]
    assert g.inputs == ["x"] and g.params == ["w"] and g.outputs == ["z"]
    with pytest.raises(CompilerError, match="calls to other functions are not supported"):
        from_relax(Mod, func="calls")


# ------------------------------------------------------------------ errors
def test_other_ops_are_host_ops_unlowered_macs_are_errors():
    x = relax.Var("x", _t(2, 8))
    g = from_relax(_module([x], lambda bb, x: R.sigmoid(bb.emit(R.nn.relu(x)))))
    host = [op for op in g.ops() if op.kind == "host"]
    assert [(op.attr("op_type"), op.attr("out_shapes")) for op in host] == [
        ("relax.sigmoid", ((2, 8),))]
    assert len(SUPPORTED_OPS) == len(set(SUPPORTED_OPS))
    xs = relax.Var("x", _t(2, 6))  # a tuple result: one host op with two outputs, run
    g = from_relax(_module([xs], lambda bb, x: bb.emit(relax.TupleGetItem(
        bb.emit(R.topk(x, k=2, axis=1, ret_type="both")), 1))))
    from compiler.execute import run_graph

    v = np.array([[3, 1, 4, 1, 5, 9], [2, 6, 5, 3, 5, 8]], np.float32)
    got = run_graph(g, {"x": v})[g.outputs[0]]
    np.testing.assert_array_equal(got, np.argsort(-v, axis=1, kind="stable")[:, :2])
    x3 = relax.Var("x", _t(1, 4, 6, 6, 6))
    w3 = relax.Var("w", _t(8, 4, 3, 3, 3))
    with pytest.raises(CompilerError) as e:
        from_relax(_module([x3, w3], lambda bb, x, w: R.nn.conv3d(x, w)))
    msg = str(e.value)
    assert "'relax.nn.conv3d'" in msg and "binding 'gv'" in msg and "no target" in msg


def test_grouped_and_1d_convolutions_as_the_onnx_front_end_reads_them():
    """conv1d -> reshape, conv2d, reshape; a grouped conv2d -> per-group convs on channel
    slices (constant weights sliced into new params) + concat; both run like numpy."""
    from compiler.execute import run_graph

    rng = np.random.default_rng(1)
    w1 = rng.standard_normal((6, 2, 3)).astype(np.float32)
    x = relax.Var("x", _t(1, 4, 10))

    def build(bb, x):
        y = bb.emit(R.nn.conv1d(x, relax.const(w1), strides=2, padding=1, groups=2))
        return R.nn.relu(y)

    g = from_relax(_module([x], build))
    assert [op.kind for op in g.ops()].count("conv2d") == 2
    xv = rng.standard_normal((1, 4, 10)).astype(np.float32)
    got = run_graph(g, {"x": xv})[g.outputs[0]]
    xp = np.pad(xv, ((0, 0), (0, 0), (1, 1)))
    want = np.zeros((1, 6, 5))
    for m in range(6):
        grp = m // 3
        for p in range(5):
            want[0, m, p] = (xp[0, 2 * grp:2 * grp + 2, 2 * p:2 * p + 3] * w1[m]).sum()
    np.testing.assert_allclose(got, np.maximum(want, 0), rtol=1e-5, atol=1e-5)
    assert g.macs == 6 * 5 * 2 * 3


def test_symbolic_shape_needs_dim_values():
    n = tvm.tirx.Var("n", "int64")
    x = relax.Var("x", _t(n, 32))
    mod = _module([x], lambda bb, x: R.matmul(x, _c(32, 8)))
    with pytest.raises(CompilerError) as e:
        from_relax(mod)
    msg = str(e.value)
    assert "symbolic dimension 'n'" in msg and "dim_values={'n': N}" in msg and "--dim n=N" in msg
    assert "parameter 'x'" in msg and "[n, 32]" in msg
    g = from_relax(mod, dim_values={"n": 4, "unused": 3})
    assert g.tensor("x").shape == (4, 32) and g.summary().macs == 4 * 32 * 8


def test_onnx_symbolic_batch_through_tvm_needs_dim_values():
    x = helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, ["batch", 32])
    y = helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, ["batch", 8])
    m = om._model([helper.make_node("MatMul", ["x", "w"], ["y"], name="mm")], [x], [y],
                  [om._init("w", 32, 8)])
    with pytest.raises(CompilerError, match="symbolic dimension 'batch'"):
        from_onnx_via_relax(m)
    g = from_onnx_via_relax(m, dim_values={"batch": 3})
    assert g.summary().macs == 3 * 32 * 8 and g.name == "test"


def test_legalized_module_asks_for_the_module_before_legalization():
    x = relax.Var("x", _t(2, 8))
    mod = relax.transform.LegalizeOps()(_module([x], lambda bb, x: R.nn.relu(x)))
    with pytest.raises(CompilerError, match="before legalization") as e:
        from_relax(mod)
    assert "relax.call_tir" in str(e.value)


def test_bad_layout_function_and_module_errors():
    x = relax.Var("x", _t(1, 8, 8, 3))
    mod = _module([x], lambda bb, x: R.nn.conv2d(x, _c(3, 3, 3, 4), data_layout="NHWC",
                                                 kernel_layout="HWIO"))
    with pytest.raises(CompilerError, match="NCHW data and OIHW kernels only"):
        from_relax(mod)
    with pytest.raises(CompilerError, match="no function 'nope'"):
        from_relax(mod, func="nope")
    with pytest.raises(CompilerError, match="expected a tvm.IRModule"):
        from_relax("model.onnx")
    assert is_ir_module(mod) and not is_ir_module("x.onnx")


# ------------------------------------------------------------------ pipeline and CLI
def test_compile_model_takes_an_ir_module():
    r = compile_model(bert_block(), "gemmini", strategy="random", budget=30, time_per_op=0.5)
    assert r.totals["macs"] == 212_992 and r.mac_ops == 8
    assert r.distinct_shapes == 5  # QKV/out-proj, FFN1, FFN2, scores, context
    assert all(row.cycles > 0 for row in r.rows if not row.on_host)
    with pytest.raises(CompilerError, match="unknown front end"):
        compile_model("mlp.onnx", "gemmini", frontend="tflite")
    with pytest.raises(CompilerError, match="expected an ONNX or .pt2 path"):
        compile_model(42, "gemmini")


FAST = ["--strategy", "random", "--budget", "30", "--time-per-op", "0.5"]


def test_cli_frontend_relax(tmp_path: Path):
    path = tmp_path / "mlp.onnx"
    onnx.save(om.mlp(), str(path))
    run = CliRunner().invoke
    r = run(main, ["compile", str(path), *FAST, "--frontend", "relax", "--json",
                   "--out", str(tmp_path / "o")])
    assert r.exit_code == 0, r.output
    assert '"macs": 21504' in r.output
    bad = tmp_path / "deconv.onnx"
    onnx.save(om._model([helper.make_node("ConvTranspose", ["x", "w"], ["y"], name="up")],
                        [om._vi("x", 1, 2, 4, 4)], [om._vi("y", 1, 3, 6, 6)],
                        [om._init("w", 2, 3, 3, 3)]), str(bad))
    r = run(main, ["compile", str(bad), *FAST, "--frontend", "relax", "--out",
                   str(tmp_path / "b")])
    assert r.exit_code == 2 and "relax.nn.conv2d_transpose" in r.output
    r = run(main, ["compile", "bert-base", *FAST, "--frontend", "relax", "--out",
                   str(tmp_path / "c")])
    assert r.exit_code == 2 and "reads ONNX files" in r.output
    r = run(main, ["compile", str(path), "--frontend", "tflite", "--out", str(tmp_path / "d")])
    assert r.exit_code == 2
    assert not (tmp_path / "b").exists()
