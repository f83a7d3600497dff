"""ONNX front end on small models built with onnx.helper (nothing downloaded)."""

from __future__ import annotations

import math

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from compiler.errors import CompilerError  # noqa: E402
from compiler.frontends import SUPPORTED_OPS, from_onnx  # noqa: E402
from mapspace.problem import bmm, conv2d, matmul  # noqa: E402

F = TensorProto.FLOAT


def _init(name: str, *shape: int, value: float | None = None) -> onnx.TensorProto:
    arr = (np.full(shape, value, np.float32) if value is not None
           else np.zeros(shape, np.float32))
    return numpy_helper.from_array(arr, name)


def _i64(name: str, values) -> onnx.TensorProto:
    return numpy_helper.from_array(np.asarray(values, np.int64), name)


def _model(nodes, inputs, outputs, inits, opset: int = 17) -> onnx.ModelProto:
    g = helper.make_graph(nodes, "test", inputs, outputs, inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])
    onnx.checker.check_model(m)
    return m


def _vi(name, *shape):
    return helper.make_tensor_value_info(name, F, list(shape))


def mlp() -> onnx.ModelProto:
    nodes = [
        helper.make_node("Gemm", ["x", "w1", "b1"], ["h"], name="fc1", transB=1),
        helper.make_node("Relu", ["h"], ["a"], name="act"),
        helper.make_node("Gemm", ["a", "w2", "b2"], ["y"], name="fc2"),
    ]
    inits = [_init("w1", 64, 32), _init("b1", 64), _init("w2", 64, 10), _init("b2", 10)]
    return _model(nodes, [_vi("x", 8, 32)], [_vi("y", 8, 10)], inits)


def test_mlp(tmp_path):
    path = tmp_path / "mlp.onnx"
    onnx.save(mlp(), str(path))
    g = from_onnx(path)
    assert [(o.name, o.kind) for o in g.ops()] == [("fc1", "matmul"), ("act", "relu"),
                                                   ("fc2", "matmul")]
    assert g.tensor("h").shape == (8, 64) and g.tensor("y").shape == (8, 10)
    assert g.inputs == ["x"] and g.outputs == ["y"]
    assert set(g.params) == {"w1", "b1", "w2", "b2"}
    assert g.problem("fc1") == matmul(8, 32, 64, name="fc1")
    assert g.problem("fc2").macs == 8 * 64 * 10
    assert g.summary().macs == 8 * 32 * 64 + 8 * 64 * 10
    assert g.op("fc1").attr("transpose_b") is True


def test_conv_block():
    nodes = [
        helper.make_node("Conv", ["x", "w", "b"], ["c"], name="conv", strides=[2, 2],
                         pads=[1, 1, 1, 1], kernel_shape=[3, 3]),
        helper.make_node("Relu", ["c"], ["r"], name="relu"),
        helper.make_node("GlobalAveragePool", ["r"], ["p"], name="gap"),
        helper.make_node("Flatten", ["p"], ["f"], name="flat", axis=1),
        helper.make_node("Gemm", ["f", "fw", "fb"], ["y"], name="fc", transB=1),
    ]
    inits = [_init("w", 16, 3, 3, 3), _init("b", 16), _init("fw", 10, 16), _init("fb", 10)]
    g = from_onnx(_model(nodes, [_vi("x", 1, 3, 32, 32)], [_vi("y", 1, 10)], inits))
    assert [o.kind for o in g.ops()] == ["conv2d", "relu", "pool", "reshape", "matmul"]
    assert g.tensor("c").shape == (1, 16, 16, 16)
    assert g.tensor("p").shape == (1, 16, 1, 1) and g.tensor("f").shape == (1, 16)
    p = g.problem("conv")
    assert p == conv2d(1, 3, 32, 32, 16, 3, 3, stride=2, padding=1, name="conv")
    assert p.macs == 16 * 16 * 16 * 3 * 9
    assert g.summary().macs == 16 * 16 * 16 * 27 + 16 * 10


def test_depthwise_and_pools():
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["c"], name="dw", group=8, pads=[1, 1, 1, 1]),
        helper.make_node("MaxPool", ["c"], ["m"], name="mp", kernel_shape=[3, 3],
                         strides=[2, 2], pads=[1, 1, 1, 1]),
        helper.make_node("AveragePool", ["m"], ["y"], name="ap", kernel_shape=[2, 2],
                         strides=[2, 2]),
    ]
    g = from_onnx(_model(nodes, [_vi("x", 1, 8, 16, 16)], [_vi("y", 1, 8, 4, 4)],
                         [_init("w", 8, 1, 3, 3)]))
    assert g.op("dw").kind == "depthwise_conv2d"
    assert g.problem("dw").macs == 8 * 16 * 16 * 9
    assert g.tensor("m").shape == (1, 8, 8, 8)
    assert g.op("ap").attr("mode") == "avg"


def _erf_gelu(x: str, out: str, p: str) -> list:
    return [
        helper.make_node("Div", [x, "sqrt2"], [f"{p}d"], name=f"{p}div"),
        helper.make_node("Erf", [f"{p}d"], [f"{p}e"], name=f"{p}erf"),
        helper.make_node("Add", [f"{p}e", "one"], [f"{p}a"], name=f"{p}add"),
        helper.make_node("Mul", [x, f"{p}a"], [f"{p}m"], name=f"{p}mul"),
        helper.make_node("Mul", [f"{p}m", "half"], [out], name=f"{p}half"),
    ]


def transformer(seq: int = 16, hidden: int = 32, heads: int = 4) -> onnx.ModelProto:
    hd = hidden // heads
    n = helper.make_node
    nodes = [
        n("MatMul", ["x", "wq"], ["q"], name="q_proj"),
        n("MatMul", ["x", "wk"], ["k"], name="k_proj"),
        n("MatMul", ["x", "wv"], ["v"], name="v_proj"),
        n("Reshape", ["q", "heads_shape"], ["q4"], name="q_reshape"),
        n("Transpose", ["q4"], ["qh"], name="q_t", perm=[0, 2, 1, 3]),
        n("Reshape", ["k", "heads_shape"], ["k4"], name="k_reshape"),
        n("Transpose", ["k4"], ["kh"], name="k_t", perm=[0, 2, 3, 1]),
        n("Reshape", ["v", "heads_shape"], ["v4"], name="v_reshape"),
        n("Transpose", ["v4"], ["vh"], name="v_t", perm=[0, 2, 1, 3]),
        n("MatMul", ["qh", "kh"], ["s"], name="scores"),
        n("Mul", ["s", "scale"], ["ss"], name="scale_mul"),
        n("Softmax", ["ss"], ["pr"], name="softmax", axis=-1),
        n("MatMul", ["pr", "vh"], ["ctx"], name="context"),
        n("Transpose", ["ctx"], ["ct"], name="ctx_t", perm=[0, 2, 1, 3]),
        n("Reshape", ["ct", "merge_shape"], ["cm"], name="merge"),
        n("MatMul", ["cm", "wo"], ["o"], name="out_proj"),
        n("Add", ["o", "x"], ["r1"], name="residual"),
        n("LayerNormalization", ["r1", "gamma", "beta"], ["ln"], name="ln", axis=-1),
        n("MatMul", ["ln", "w1"], ["f1"], name="ffn1"),
        *_erf_gelu("f1", "g", "gelu_"),
        n("MatMul", ["g", "w2"], ["y"], name="ffn2"),
    ]
    inits = [
        _init("wq", hidden, hidden), _init("wk", hidden, hidden), _init("wv", hidden, hidden),
        _init("wo", hidden, hidden), _init("w1", hidden, 4 * hidden),
        _init("w2", 4 * hidden, hidden), _init("gamma", hidden), _init("beta", hidden),
        _init("scale", value=1 / math.sqrt(hd)), _init("sqrt2", value=math.sqrt(2)),
        _init("one", value=1.0), _init("half", value=0.5),
        _i64("heads_shape", [1, seq, heads, hd]), _i64("merge_shape", [1, seq, -1]),
    ]
    return _model(nodes, [_vi("x", 1, seq, hidden)], [_vi("y", 1, seq, hidden)], inits)


def test_transformer_block():
    seq, hidden, heads = 16, 32, 4
    g = from_onnx(transformer(seq, hidden, heads))
    kinds = {o.name: o.kind for o in g.ops()}
    assert kinds["scores"] == kinds["context"] == "bmm"
    assert kinds["q_proj"] == kinds["ffn1"] == "matmul"
    assert kinds["softmax"] == "softmax" and kinds["ln"] == "layernorm"
    assert kinds["gelu_erf"] == "gelu"
    assert not any(n.startswith("gelu_") and n != "gelu_erf" for n in kinds)
    assert g.op("gelu_erf").inputs == ("f1",) and g.op("gelu_erf").outputs == ("g",)
    assert {"sqrt2", "one", "half", "heads_shape"}.isdisjoint(g.params)
    assert g.tensor("qh").shape == (1, heads, seq, hidden // heads)
    assert g.tensor("kh").shape == (1, heads, hidden // heads, seq)
    assert g.tensor("cm").shape == (1, seq, hidden)
    assert g.op("merge").attr("shape") == (1, seq, hidden)
    assert g.problem("scores") == bmm(heads, seq, hidden // heads, seq, name="scores")
    assert g.problem("q_proj") == matmul(seq, hidden, hidden, name="q_proj")
    want = 4 * seq * hidden * hidden + 2 * seq * hidden * 4 * hidden + 2 * seq * seq * hidden
    assert g.summary().macs == want


def test_tanh_gelu_and_host_ops():
    n = helper.make_node
    nodes = [
        n("Pow", ["x", "three"], ["x3"], name="pow"),
        n("Mul", ["x3", "c"], ["x3c"], name="cmul"),
        n("Add", ["x", "x3c"], ["inner"], name="inner_add"),
        n("Mul", ["inner", "k"], ["arg"], name="kmul"),
        n("Tanh", ["arg"], ["t"], name="tanh"),
        n("Add", ["t", "one"], ["t1"], name="t1"),
        n("Mul", ["x", "half"], ["xh"], name="xh"),
        n("Mul", ["xh", "t1"], ["g"], name="gmul"),
        # a decomposed LayerNorm stays as host ops
        n("ReduceMean", ["g"], ["mu"], name="mean", axes=[-1]),
        n("Sub", ["g", "mu"], ["dev"], name="sub"),
        n("Pow", ["dev", "two"], ["sq"], name="sq"),
        n("ReduceMean", ["sq"], ["var"], name="var", axes=[-1]),
        n("Sqrt", ["var"], ["sd"], name="sqrt"),
        n("Div", ["dev", "sd"], ["y0"], name="div"),
        n("Identity", ["y0"], ["y"], name="id"),
    ]
    inits = [_init("three", value=3.0), _init("c", value=0.044715),
             _init("k", value=math.sqrt(2 / math.pi)), _init("one", value=1.0),
             _init("half", value=0.5), _init("two", value=2.0)]
    g = from_onnx(_model(nodes, [_vi("x", 2, 8)], [_vi("y", 2, 8)], inits, opset=17))
    kinds = [o.kind for o in g.ops()]
    assert kinds == ["gelu", "reduce_mean", "sub", "pow", "reduce_mean", "sqrt", "div"]
    assert g.op("tanh").outputs == ("g",)
    assert g.tensor("mu").shape == (2, 1)
    assert g.outputs == ["y0"]  # Identity elided
    assert g.summary().macs == 0


def test_split_slice_concat_gather():
    n = helper.make_node
    nodes = [
        n("Gather", ["table", "ids"], ["e"], name="embed"),
        n("Split", ["e", "sizes"], ["a", "b"], name="split", axis=2),
        n("Slice", ["a", "st", "en", "ax"], ["s"], name="slice"),
        n("Concat", ["s", "b"], ["y"], name="cat", axis=2),
    ]
    inits = [_init("table", 100, 12), _i64("sizes", [4, 8]), _i64("st", [1]),
             _i64("en", [3]), _i64("ax", [2])]
    ids = helper.make_tensor_value_info("ids", TensorProto.INT64, [1, 5])
    g = from_onnx(_model(nodes, [ids], [_vi("y", 1, 5, 10)], inits))
    assert [o.kind for o in g.ops()] == ["gather", "split", "slice", "concat"]
    assert g.tensor("e").shape == (1, 5, 12) and g.tensor("e").dtype == "float32"
    assert g.tensor("s").shape == (1, 5, 2) and g.tensor("y").shape == (1, 5, 10)
    assert g.op("split").attr("sizes") == (4, 8)


def test_unlowered_mac_op_names_op_and_node():
    node = helper.make_node("LSTM", ["x", "w", "r"], ["y"], name="encoder_lstm",
                            hidden_size=4)
    m = _model([node], [_vi("x", 3, 1, 2)], [_vi("y", 3, 1, 1, 4)],
               [_init("w", 1, 16, 2), _init("r", 1, 16, 4)])
    with pytest.raises(CompilerError) as e:
        from_onnx(m)
    msg = str(e.value)
    assert "'LSTM'" in msg and "encoder_lstm" in msg and "Conv" in msg and "Gemm" in msg
    assert set(SUPPORTED_OPS) >= {"Conv", "Gemm", "MatMul", "Identity", "Constant"}


def test_other_ops_become_host_ops_that_run():
    """A mask built from an input (Equal/Where/Cast/Expand) is kept as host ops with their
    inferred shapes, and the graph runs them (onnxruntime is the reference)."""
    ort = pytest.importorskip("onnxruntime")
    from compiler.execute import run_graph

    nodes = [
        helper.make_node("Equal", ["ids", "zero"], ["pad"]),
        helper.make_node("Where", ["pad", "neg", "zero_f"], ["bias"]),
        helper.make_node("Unsqueeze", ["bias", "ax"], ["b3"]),
        helper.make_node("Expand", ["b3", "shp"], ["b4"]),
        helper.make_node("Cast", ["ids", ], ["idsf"], to=TensorProto.FLOAT),
        helper.make_node("Unsqueeze", ["idsf", "ax2"], ["col"]),
        helper.make_node("Add", ["b4", "col"], ["y0"]),
        helper.make_node("Neg", ["y0"], ["y"]),
    ]
    inits = [numpy_helper.from_array(np.array(0, np.int64), "zero"),
             numpy_helper.from_array(np.array(-1e4, np.float32), "neg"),
             numpy_helper.from_array(np.array(0.0, np.float32), "zero_f"),
             numpy_helper.from_array(np.array([1], np.int64), "ax"),
             numpy_helper.from_array(np.array([2], np.int64), "ax2"),
             numpy_helper.from_array(np.array([1, 6, 6], np.int64), "shp")]
    m = helper.make_model(helper.make_graph(
        nodes, "mask", [helper.make_tensor_value_info("ids", TensorProto.INT64, [1, 6])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], inits),
        opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    g = from_onnx(m)
    kinds = {op.name: op.kind for op in g.ops()}
    assert sorted(op.attr("op_type") for op in g.ops() if op.kind == "host") == \
        ["Cast", "Equal", "Expand", "Neg", "Where"]
    assert list(kinds.values()).count("reshape") == 2
    assert g.tensor("b4").shape == (1, 6, 6) and g.tensor("pad").dtype == "bool"
    ids = np.array([[5, 0, 3, 0, 1, 2]], np.int64)
    want = ort.InferenceSession(m.SerializeToString()).run(None, {"ids": ids})[0]
    got = run_graph(g, {"ids": ids})["y"]
    np.testing.assert_array_equal(got, want)


def test_truncated_and_missing_file(tmp_path):
    path = tmp_path / "broken.onnx"
    data = transformer().SerializeToString()
    path.write_bytes(data[: len(data) // 3])
    with pytest.raises(CompilerError, match="broken.onnx.*truncated or corrupt"):
        from_onnx(path)
    with pytest.raises(CompilerError, match="nothere.onnx"):
        from_onnx(tmp_path / "nothere.onnx")


def test_symbolic_dims_need_values():
    nodes = [helper.make_node("Relu", ["x"], ["y"], name="r")]
    x = helper.make_tensor_value_info("x", F, ["batch", 4])
    y = helper.make_tensor_value_info("y", F, ["batch", 4])
    m = _model(nodes, [x], [y], [])
    with pytest.raises(CompilerError, match="'batch'"):
        from_onnx(m)
    g = from_onnx(m, dim_values={"batch": 3})
    assert g.tensor("y").shape == (3, 4)


def test_constant_node_becomes_param():
    n = helper.make_node
    c = n("Constant", [], ["bias"], name="const",
          value=numpy_helper.from_array(np.ones(4, np.float32)))
    m = _model([c, n("Add", ["x", "bias"], ["y"], name="add")], [_vi("x", 2, 4)],
               [_vi("y", 2, 4)], [])
    g = from_onnx(m)
    assert g.params == ["bias"] and [o.kind for o in g.ops()] == ["add"]


@pytest.mark.parametrize("variant", ["mul_inv_sqrt2", "half_first", "half_then_x"])
def test_erf_gelu_variants(variant):
    n = helper.make_node
    if variant == "mul_inv_sqrt2":
        pre = [n("Mul", ["x", "inv"], ["d"], name="pre")]
    else:
        pre = [n("Div", ["x", "sqrt2"], ["d"], name="pre")]
    core = [n("Erf", ["d"], ["e"], name="erf"), n("Add", ["one", "e"], ["a"], name="add")]
    if variant == "half_first":
        post = [n("Mul", ["x", "half"], ["h"], name="h"), n("Mul", ["h", "a"], ["y"], name="m")]
    elif variant == "half_then_x":
        post = [n("Mul", ["a", "half"], ["h"], name="h"), n("Mul", ["x", "h"], ["y"], name="m")]
    else:
        post = [n("Mul", ["a", "x"], ["h"], name="h"), n("Mul", ["half", "h"], ["y"], name="m")]
    inits = [_init("inv", value=1 / math.sqrt(2)), _init("sqrt2", value=math.sqrt(2)),
             _init("one", value=1.0), _init("half", value=0.5)]
    g = from_onnx(_model(pre + core + post, [_vi("x", 3, 5)], [_vi("y", 3, 5)], inits))
    assert [(o.name, o.kind, o.inputs, o.outputs) for o in g.ops()] == [
        ("erf", "gelu", ("x",), ("y",))]
    assert g.params == []


def test_gelu_not_fused_when_intermediate_escapes():
    n = helper.make_node
    nodes = _erf_gelu("x", "y", "g_") + [n("Relu", ["g_e"], ["z"], name="leak")]
    inits = [_init("sqrt2", value=math.sqrt(2)), _init("one", value=1.0),
             _init("half", value=0.5)]
    g = from_onnx(_model(nodes, [_vi("x", 4)], [_vi("y", 4), _vi("z", 4)], inits))
    kinds = [o.kind for o in g.ops()]
    assert "gelu" not in kinds and "erf" in kinds and "div" in kinds


def test_matmul_vector_and_broadcast_bmm():
    n = helper.make_node
    nodes = [n("MatMul", ["v", "w"], ["y"], name="mv"), n("MatMul", ["a", "b"], ["z"], name="bm")]
    m = _model(nodes, [_vi("v", 6), _vi("a", 5, 6), _vi("b", 3, 6, 7)],
               [_vi("y", 4), _vi("z", 3, 5, 7)], [_init("w", 6, 4)])
    g = from_onnx(m)
    assert g.op("mv").kind == "matmul" and g.tensor("y").shape == (4,)
    assert g.problem("mv").macs == 24
    assert g.op("bm").kind == "bmm" and g.problem("bm") == bmm(3, 5, 6, 7, name="bm")


def _run_vs_ort(nodes, inits, shape=(2, 5, 8)):
    """Graph from ``nodes`` (input x, output y): our graph, and max |ours - onnxruntime|."""
    ort = pytest.importorskip("onnxruntime")
    from compiler.execute import run_graph

    m = helper.make_model(helper.make_graph(
        nodes, "p", [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(shape))],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        [numpy_helper.from_array(np.asarray(v, np.float32), k) for k, v in inits.items()]),
        opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    g = from_onnx(m)
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32) * 3
    want = ort.InferenceSession(m.SerializeToString()).run(None, {"x": x})[0]
    return g, float(np.abs(run_graph(g, {"x": x})["y"] - want).max())


def _n(op, ins, out, **kw):
    return helper.make_node(op, ins, [out], **kw)


@pytest.mark.parametrize("form", ["silu", "hardswish_op", "hardswish_decomposed", "relu6",
                                  "gelu_tanh_cube_mul", "gelu_op_tanh", "layernorm_decomposed",
                                  "rmsnorm", "rmsnorm_cast_div_one"])
def test_exported_activation_and_norm_forms(form: str):
    """Each form as an exporter writes it becomes one op of its kind and computes what
    onnxruntime computes."""
    h = 8
    nodes, inits, kind = {
        "silu": ([_n("Sigmoid", ["x"], "s"), _n("Mul", ["x", "s"], "y")], {}, "silu"),
        "hardswish_op": ([_n("HardSwish", ["x"], "y")], {}, "hardswish"),
        "hardswish_decomposed": ([_n("HardSigmoid", ["x"], "s", alpha=1 / 6, beta=0.5),
                                  _n("Mul", ["x", "s"], "y")], {}, "hardswish"),
        "relu6": ([_n("Clip", ["x", "lo", "hi"], "y")], {"lo": 0.0, "hi": 6.0}, "clip"),
        "gelu_tanh_cube_mul": ([
            _n("Mul", ["x", "x"], "x2"), _n("Mul", ["x2", "x"], "x3"),
            _n("Mul", ["x3", "c1"], "t1"), _n("Add", ["x", "t1"], "t2"),
            _n("Mul", ["t2", "c2"], "t3"), _n("Tanh", ["t3"], "t4"),
            _n("Add", ["t4", "one"], "t5"), _n("Mul", ["x", "half"], "t6"),
            _n("Mul", ["t6", "t5"], "y")],
            {"c1": 0.044715, "c2": math.sqrt(2 / math.pi), "one": 1.0, "half": 0.5}, "gelu"),
        "gelu_op_tanh": ([_n("Mul", ["x", "one"], "x1"),
                          helper.make_node("Gelu", ["x1"], ["y"], approximate="tanh")],
                         {"one": 1.0}, "gelu"),
        "layernorm_decomposed": ([
            _n("ReduceMean", ["x"], "m", axes=[-1]), _n("Sub", ["x", "m"], "d"),
            _n("Pow", ["d", "two"], "d2"), _n("ReduceMean", ["d2"], "v", axes=[-1]),
            _n("Add", ["v", "eps"], "ve"), _n("Sqrt", ["ve"], "sd"),
            _n("Div", ["d", "sd"], "n"), _n("Mul", ["n", "g"], "ng"),
            _n("Add", ["ng", "b"], "y")],
            {"two": 2.0, "eps": 1e-5, "g": np.linspace(0.5, 1.5, h),
             "b": np.linspace(-1, 1, h)}, "layernorm"),
        "rmsnorm": ([
            _n("Pow", ["x", "two"], "x2"), _n("ReduceMean", ["x2"], "v", axes=[-1]),
            _n("Add", ["v", "eps"], "ve"), _n("Sqrt", ["ve"], "r"),
            _n("Reciprocal", ["r"], "ir"), _n("Mul", ["x", "ir"], "n"),
            _n("Mul", ["w", "n"], "y")],
            {"two": 2.0, "eps": 1e-6, "w": np.linspace(0.5, 1.5, h)}, "rmsnorm"),
        "rmsnorm_cast_div_one": ([  # as the TorchScript exporter writes HF's LlamaRMSNorm
            _n("Cast", ["x"], "xc", to=TensorProto.FLOAT),
            _n("Pow", ["xc", "two"], "x2"), _n("ReduceMean", ["x2"], "v", axes=[-1]),
            _n("Add", ["v", "eps"], "ve"), _n("Sqrt", ["ve"], "r"),
            _n("Div", ["one", "r"], "ir"), _n("Mul", ["xc", "ir"], "n"),
            _n("Cast", ["n"], "nc", to=TensorProto.FLOAT), _n("Mul", ["w", "nc"], "y")],
            {"two": 2.0, "eps": 1e-6, "one": 1.0, "w": np.linspace(0.5, 1.5, h)}, "rmsnorm"),
    }[form]
    if form == "gelu_op_tanh":  # Gelu is an opset-20 op: onnxruntime needs that opset
        pytest.importorskip("onnxruntime")
        nodes = nodes[1:]
        nodes[0].input[0] = "x"
        m = helper.make_model(helper.make_graph(
            nodes, "p", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 5, h])],
            [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)]),
            opset_imports=[helper.make_opsetid("", 20)], ir_version=9)
        g = from_onnx(m)
        assert [op.kind for op in g.ops()] == ["gelu"]
        assert g.ops()[0].attr("approximate") == "tanh"
        return
    g, err = _run_vs_ort(nodes, inits, (2, 5, h))
    kinds = [op.kind for op in g.ops()]
    assert kinds == [kind], kinds
    assert err <= 1e-5, err


def test_shape_plumbing_folds_to_constants():
    """Shape (with start/end) -> Gather -> Concat -> Reshape and ConstantOfShape/Range/Expand
    of static sizes fold away: only the reshape and the add remain."""
    nodes = [
        helper.make_node("Shape", ["x"], ["s"], start=-2),
        helper.make_node("Size", ["x"], ["n"]),
        helper.make_node("Gather", ["s", "i0"], ["d0"], axis=0),
        helper.make_node("Unsqueeze", ["d0", "ax"], ["d0u"]),
        helper.make_node("Concat", ["d0u", "minus1"], ["tgt"], axis=0),
        helper.make_node("Reshape", ["x", "tgt"], ["r"]),
        helper.make_node("Range", ["zero", "d0", "one"], ["pos"]),
        helper.make_node("ConstantOfShape", ["tgt2"], ["fill"],
                         value=numpy_helper.from_array(np.array([2.0], np.float32))),
        helper.make_node("Cast", ["pos"], ["posf"], to=TensorProto.FLOAT),
        helper.make_node("Unsqueeze", ["posf", "ax1"], ["posc"]),
        helper.make_node("Mul", ["fill", "posc"], ["bias"]),
        helper.make_node("Add", ["r", "bias"], ["y"]),
    ]
    inits = [numpy_helper.from_array(np.array(v, np.int64), k) for k, v in (
        ("i0", 0), ("ax", [0]), ("minus1", [-1]), ("zero", 0), ("one", 1), ("ax1", [1]),
        ("tgt2", [6, 8]))]
    m = helper.make_model(helper.make_graph(
        nodes, "plumb", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 6, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], inits),
        opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    g = from_onnx(m)
    assert [op.kind for op in g.ops()] == ["reshape", "add"]
    assert g.tensor("r").shape == (6, 8)  # Shape(start=-2) of [2, 6, 4] is [6, 4]
    ort = pytest.importorskip("onnxruntime")
    from compiler.execute import run_graph

    x = np.arange(48, dtype=np.float32).reshape(2, 6, 4)
    want = ort.InferenceSession(m.SerializeToString()).run(None, {"x": x})[0]
    np.testing.assert_array_equal(run_graph(g, {"x": x})["y"], want)


def test_grouped_and_1d_convolutions():
    """A grouped Conv (RegNet/ResNeXt) becomes one conv2d per group on channel slices plus
    a concat; a 1-D Conv (wav2vec2/Whisper) a conv2d over a height of one, grouped or not,
    with asymmetric padding run on the host. MACs as counted by hand; values as
    onnxruntime computes them."""
    ort = pytest.importorskip("onnxruntime")
    from compiler.execute import run_graph

    rng = np.random.default_rng(0)
    w2 = rng.standard_normal((6, 2, 3, 3)).astype(np.float32)  # group 2: 4 -> 6 channels
    w1 = rng.standard_normal((8, 6, 3)).astype(np.float32)     # 1-D, stride 2, pads 1/2
    w1g = rng.standard_normal((8, 4, 5)).astype(np.float32)    # 1-D, group 2
    nodes = [
        helper.make_node("Conv", ["x", "w2", "b2"], ["c2"], group=2, pads=[1, 1, 1, 1]),
        helper.make_node("Reshape", ["c2", "flat"], ["seq"]),
        helper.make_node("Conv", ["seq", "w1"], ["c1"], strides=[2], pads=[1, 2]),
        helper.make_node("Conv", ["c1", "w1g"], ["y"], group=2, pads=[2, 2]),
    ]
    inits = [numpy_helper.from_array(v, k) for k, v in (
        ("w2", w2), ("b2", rng.standard_normal(6).astype(np.float32)),
        ("flat", np.array([1, 6, 64], np.int64)), ("w1", w1), ("w1g", w1g))]
    m = helper.make_model(helper.make_graph(
        nodes, "convs", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], inits),
        opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    g = from_onnx(m)
    kinds = [op.kind for op in g.ops()]
    assert kinds.count("conv2d") == 2 + 1 + 2 and kinds.count("concat") == 2
    out1 = (64 + 1 + 2 - 3) // 2 + 1
    assert g.macs == 6 * 64 * 2 * 9 + 8 * out1 * 6 * 3 + 8 * out1 * 4 * 5
    x = rng.standard_normal((1, 4, 8, 8)).astype(np.float32)
    want = ort.InferenceSession(m.SerializeToString()).run(None, {"x": x})[0]
    got = run_graph(g, {"x": x})["y"]
    assert got.shape == want.shape
    assert float(np.abs(got - want).max()) <= 1e-4 * float(np.abs(want).max())
