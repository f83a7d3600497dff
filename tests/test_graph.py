"""The typed graph: building, shape rules, validation, lowering to Problems, summary."""

from __future__ import annotations

import pytest

from compiler.errors import CompilerError
from compiler.graph import HOST_KINDS, KINDS, MAC_KINDS, Graph, Op, infer_shapes
from mapspace.errors import MapspaceError
from mapspace.problem import bmm, conv2d, depthwise_conv2d, matmul


def _mlp() -> Graph:
    g = Graph("mlp")
    g.add_input("x", (4, 16))
    g.add_param("w1", (16, 32))
    g.add_param("b1", (32,))
    g.add_param("w2", (32, 8))
    g.add_op(Op.make("fc1", "matmul", ["x", "w1", "b1"], ["h"]))
    g.add_op(Op.make("act", "relu", ["h"], ["a"]))
    g.add_op(Op.make("fc2", "matmul", ["a", "w2"], ["y"]))
    g.add_output("y")
    return g.validate()


def test_kinds_closed_set():
    assert set(MAC_KINDS) <= set(KINDS) and set(HOST_KINDS) <= set(KINDS)
    assert len(set(KINDS)) == len(KINDS)
    for k in ("matmul", "bmm", "conv2d", "depthwise_conv2d", "add", "mul", "relu", "gelu",
              "softmax", "layernorm", "transpose", "reshape", "concat", "gather", "pool",
              "split", "slice"):
        assert k in KINDS


def test_build_query_and_lower():
    g = _mlp()
    assert [o.name for o in g.ops()] == ["fc1", "act", "fc2"]
    assert g.tensor("h").shape == (4, 32) and g.tensor("y").shape == (4, 8)
    assert g.producer("h").name == "fc1" and g.producer("x") is None
    assert [o.name for o in g.consumers("a")] == ["fc2"]
    assert [o.name for o in g.producers("fc2")] == ["act"]
    assert g.nx.edges["fc1", "act"]["tensors"] == ("h",)
    assert g.problem("fc1") == matmul(4, 16, 32, name="fc1")
    assert g.problem("act") is None
    s = g.summary()
    assert s.macs == 4 * 16 * 32 + 4 * 32 * 8 and s.mac_ops == 2
    assert dict(s.by_kind) == {"matmul": 2, "relu": 1}
    assert s.param_elements == 16 * 32 + 32 + 32 * 8
    assert "mlp" in str(s)


def test_ops_added_out_of_order_get_edges():
    g = Graph()
    g.add_input("x", (2, 3))
    g.add_op(Op.make("b", "relu", ["t"], ["u"]), shapes={"u": (2, 3)})
    g.add_op(Op.make("a", "relu", ["x"], ["t"]))
    assert [o.name for o in g.ops()] == ["a", "b"]
    g.validate()


def test_matmul_leading_dims_and_transpose():
    g = Graph()
    g.add_input("x", (2, 5, 16))
    g.add_param("w", (32, 16))
    op = g.add_op(Op.make("fc", "matmul", ["x", "w"], ["y"], transpose_b=True))
    assert g.tensor("y").shape == (2, 5, 32)
    assert g.problem(op).sizes == matmul(10, 16, 32).sizes


def test_bmm_broadcast_batch():
    g = Graph()
    g.add_input("q", (1, 12, 128, 64))
    g.add_input("k", (1, 12, 64, 128))
    op = g.add_op(Op.make("s", "bmm", ["q", "k"], ["y"]))
    assert g.tensor("y").shape == (1, 12, 128, 128)
    assert g.problem(op) == bmm(12, 128, 64, 128, name="s")


def test_conv_lowering_matches_helper():
    g = Graph()
    g.add_input("x", (1, 3, 224, 224))
    g.add_param("w", (64, 3, 7, 7))
    op = g.add_op(Op.make("c", "conv2d", ["x", "w"], ["y"], strides=(2, 2), pads=(3,) * 4))
    assert g.tensor("y").shape == (1, 64, 112, 112)
    p = g.problem(op)
    assert p == conv2d(1, 3, 224, 224, 64, 7, 7, stride=2, padding=3, name="c")
    assert p.macs == 112 * 112 * 64 * 3 * 49


def test_conv_asymmetric_dilated():
    g = Graph()
    g.add_input("x", (2, 8, 30, 40))
    g.add_param("w", (16, 8, 3, 5))
    op = g.add_op(Op.make("c", "conv2d", ["x", "w"], ["y"], strides=(1, 2),
                          pads=(1, 2, 1, 2), dilations=(2, 1)))
    oh, ow = (30 + 2 - 5) // 1 + 1, (40 + 4 - 5) // 2 + 1
    assert g.tensor("y").shape == (2, 16, oh, ow)
    p = g.problem(op)
    assert dict(zip(p.dims, p.sizes, strict=True)) == dict(C=8, M=16, R=5, S=3, N=2, P=ow,
                                                           Q=oh)
    assert dict(p.coefficients) == dict(Wstride=2, Hstride=1, Wdilation=1, Hdilation=2)
    assert p.macs == 2 * 16 * oh * ow * 8 * 15


def test_depthwise_and_bad_group():
    g = Graph()
    g.add_input("x", (1, 32, 56, 56))
    g.add_param("w", (32, 1, 3, 3))
    g.add_param("w2", (32, 8, 3, 3))
    op = g.add_op(Op.make("dw", "depthwise_conv2d", ["x", "w"], ["y"], strides=(2, 2),
                          pads=(1,) * 4, group=32))
    assert g.problem(op) == depthwise_conv2d(1, 32, 56, 56, 3, 3, stride=2, padding=1,
                                             name="dw")
    bad = g.add_op(Op.make("gc", "conv2d", ["x", "w2"], ["z"], group=4))
    with pytest.raises(CompilerError, match="'gc'.*group 4"):
        g.problem(bad)


@pytest.mark.parametrize(
    ("kind", "shapes", "attrs", "want"),
    [
        ("add", [(4, 1, 3), (5, 1)], {}, [(4, 5, 3)]),
        ("transpose", [(2, 3, 4)], {"perm": (2, 0, 1)}, [(4, 2, 3)]),
        ("reshape", [(2, 3, 4)], {"shape": (6, 4)}, [(6, 4)]),
        ("concat", [(1, 2, 5), (1, 3, 5)], {"axis": 1}, [(1, 5, 5)]),
        ("gather", [(100, 8), (2, 7)], {"axis": 0}, [(2, 7, 8)]),
        ("pool", [(1, 64, 112, 112)], {"mode": "max", "kernel": (3, 3), "strides": (2, 2),
                                       "pads": (1, 1, 1, 1)}, [(1, 64, 56, 56)]),
        ("pool", [(1, 8, 7, 7)], {"mode": "global_avg"}, [(1, 8, 1, 1)]),
        ("slice", [(10, 20)], {"starts": (2, -5), "ends": (8, 100), "axes": (0, 1),
                               "steps": (2, 1)}, [(3, 5)]),
        ("reduce_mean", [(2, 3, 4)], {"axes": (-1,), "keepdims": True}, [(2, 3, 1)]),
    ],
)
def test_shape_rules(kind, shapes, attrs, want):
    n_out = len(want)
    op = Op.make("o", kind, [f"i{j}" for j in range(len(shapes))],
                 [f"o{j}" for j in range(n_out)], **attrs)
    assert infer_shapes(op, shapes) == want


def test_split_rule():
    op = Op.make("s", "split", ["x"], ["a", "b", "c"], axis=-1, sizes=(2, 2, 4))
    assert infer_shapes(op, [(3, 8)]) == [(3, 2), (3, 2), (3, 4)]


def test_errors_name_the_op():
    g = Graph()
    g.add_input("x", (4, 16))
    g.add_param("w", (8, 32))
    with pytest.raises(CompilerError, match="'fc'.*reduction sizes differ"):
        g.add_op(Op.make("fc", "matmul", ["x", "w"], ["y"]))
    with pytest.raises(CompilerError, match="unknown op kind 'lstm'"):
        g.add_op(Op.make("r", "lstm", ["x"], ["y"]))
    g.add_op(Op.make("a", "relu", ["x"], ["y"]))
    with pytest.raises(CompilerError, match="already exists"):
        g.add_op(Op.make("a", "relu", ["x"], ["z"]))
    with pytest.raises(CompilerError, match="already has a producer"):
        g.add_op(Op.make("b", "relu", ["x"], ["y"]))
    assert issubclass(CompilerError, MapspaceError)


def test_validate_catches_missing_producer_and_bad_shape():
    g = Graph()
    g.add_input("x", (4, 16))
    g.add_op(Op.make("a", "relu", ["ghost"], ["y"]), shapes={"y": (4, 16)})
    with pytest.raises(CompilerError, match="'a'.*'ghost'"):
        g.validate()
    g = Graph()
    g.add_input("x", (4, 16))
    g.add_op(Op.make("a", "relu", ["x"], ["y"]), shapes={"y": (4, 15)})
    with pytest.raises(CompilerError, match="'a'.*shape \\[4, 15\\].*\\[4, 16\\]"):
        g.validate()
