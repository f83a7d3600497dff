"""The numpy graph executor (compiler/execute.py) against ONNX's own reference evaluator,
and the MAC hook against the plain numpy path."""

from __future__ import annotations

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
from onnx import numpy_helper  # noqa: E402
from onnx.reference import ReferenceEvaluator  # noqa: E402

from compiler.errors import CompilerError  # noqa: E402
from compiler.execute import random_values, run_graph  # noqa: E402
from compiler.frontends import from_onnx  # noqa: E402
from compiler.zoo import zoo_graph  # noqa: E402
from tests import test_onnx as models  # noqa: E402

_STRUCTURAL = {"sqrt2", "one", "half", "scale", "three", "c", "k", "two", "heads_shape",
               "merge_shape", "sizes", "st", "en", "ax"}


def _randomised(m: onnx.ModelProto, seed: int) -> onnx.ModelProto:
    """The same model with random float initializers (structural constants kept)."""
    rng = np.random.default_rng(seed)
    m = onnx.ModelProto.FromString(m.SerializeToString())
    for i, t in enumerate(m.graph.initializer):
        a = numpy_helper.to_array(t)
        if t.name in _STRUCTURAL or a.dtype != np.float32:
            continue
        new = (0.3 * rng.standard_normal(a.shape)).astype(np.float32)
        m.graph.initializer[i].CopyFrom(numpy_helper.from_array(new, t.name))
    return m


def _depthwise_pools():
    h = models.helper
    nodes = [
        h.make_node("Conv", ["x", "w"], ["c"], name="dw", group=8, pads=[1, 1, 1, 1]),
        h.make_node("MaxPool", ["c"], ["m"], name="mp", kernel_shape=[3, 3], strides=[2, 2],
                    pads=[1, 1, 1, 1]),
        h.make_node("AveragePool", ["m"], ["y"], name="ap", kernel_shape=[2, 2],
                    strides=[2, 2]),
    ]
    return models._model(nodes, [models._vi("x", 1, 8, 16, 16)],
                         [models._vi("y", 1, 8, 4, 4)], [models._init("w", 8, 1, 3, 3)])


def _conv_block():
    h = models.helper
    nodes = [
        h.make_node("Conv", ["x", "w", "b"], ["c"], name="conv", strides=[2, 2],
                    pads=[1, 1, 1, 1], kernel_shape=[3, 3]),
        h.make_node("Relu", ["c"], ["r"], name="relu"),
        h.make_node("GlobalAveragePool", ["r"], ["p"], name="gap"),
        h.make_node("Flatten", ["p"], ["f"], name="flat", axis=1),
        h.make_node("Gemm", ["f", "fw", "fb"], ["y"], name="fc", transB=1),
    ]
    inits = [models._init("w", 16, 3, 3, 3), models._init("b", 16),
             models._init("fw", 10, 16), models._init("fb", 10)]
    return models._model(nodes, [models._vi("x", 1, 3, 32, 32)], [models._vi("y", 1, 10)],
                         inits)


MODELS = {"mlp": models.mlp, "conv_block": _conv_block, "depthwise_pools": _depthwise_pools,
          "transformer": models.transformer}


@pytest.mark.parametrize("name", sorted(MODELS))
def test_matches_onnx_reference_evaluator(name):
    m = _randomised(MODELS[name](), seed=1)
    g = from_onnx(m)
    rng = np.random.default_rng(2)
    feeds = {vi.name: rng.standard_normal([d.dim_value for d in vi.type.tensor_type.shape.dim])
             .astype(np.float32) for vi in m.graph.input}
    values = dict(feeds)
    values.update({t.name: numpy_helper.to_array(t) for t in m.graph.initializer
                   if t.name in g.params})
    want = ReferenceEvaluator(m).run(None, feeds)
    got = run_graph(g, values)
    assert list(got) == g.outputs
    for w, (_, v) in zip(want, got.items(), strict=True):
        np.testing.assert_allclose(v, w, rtol=2e-4, atol=2e-5)


def test_mac_hook_sees_kernel_layouts():
    g = from_onnx(_randomised(models.transformer(), 3))
    seen = []

    def mac(op, problem, a, b):
        seen.append((op.name, a.shape, b.shape))
        from targets.tvm_common import op_spec, reference
        return reference(op_spec(problem), a, b)

    values = random_values(g, seed=0)
    np.testing.assert_allclose(run_graph(g, values, mac=mac)["y"], run_graph(g, values)["y"],
                               rtol=1e-4, atol=1e-5)
    shapes = dict((n, (a, b)) for n, a, b in seen)
    assert shapes["q_proj"] == ((16, 32), (32, 32))          # A[P, C], B[C, M]
    assert shapes["scores"] == ((4, 16, 8), (4, 8, 16))      # A[N, P, C], B[N, C, M]


def test_random_values_cover_zoo_model_and_run():
    g = zoo_graph("bert-base", seq=8)
    values = random_values(g, seed=0)
    assert set(values) == set(g.inputs) | set(g.params)
    ids = values[g.inputs[0]]
    assert ids.dtype.kind == "i" and ids.min() >= 0
    out = run_graph(g, values)
    y = next(iter(out.values()))
    assert np.isfinite(y).all() and y.std() > 0


def test_missing_and_misshapen_values():
    g = from_onnx(models.mlp())
    values = random_values(g, 0)
    w1 = g.values["w1"]  # the model's own weight fills a param the caller leaves out
    got = run_graph(g, {k: v for k, v in values.items() if k != "w1"})
    want = run_graph(g, values | {"w1": w1})
    assert all(np.array_equal(got[t], want[t]) for t in want)
    del g.values["w1"]
    with pytest.raises(CompilerError, match="no value for param 'w1'"):
        run_graph(g, {k: v for k, v in values.items() if k != "w1"})
    with pytest.raises(CompilerError, match="no value for input 'x'"):
        run_graph(g, {k: v for k, v in values.items() if k != "x"})
    values["x"] = np.zeros((3, 3), np.float32)
    with pytest.raises(CompilerError, match="'x' has shape"):
        run_graph(g, values)
