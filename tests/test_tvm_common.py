"""The TE definitions of our problems (targets/tvm_common.py) against numpy, and numpy's conv
reference against a direct loop."""

import numpy as np
import pytest

from mapspace import bmm, conv2d, matmul
from mapspace.errors import MapspaceError
from mapspace.problem import Problem, Tensor, Term, depthwise_conv2d
from targets.tvm_common import (
    DTYPES,
    op_spec,
    output_shape,
    prim_func,
    random_inputs,
    reference,
)

tvm = pytest.importorskip("tvm")

CASES = [matmul(20, 24, 36), bmm(3, 10, 12, 14),
         conv2d(1, 8, 9, 9, 16, 3, 3, stride=2, padding=1), conv2d(2, 3, 7, 5, 4, 1, 1),
         depthwise_conv2d(2, 6, 9, 8, 3, 3, stride=2, padding=1)]


def _direct_conv(a, w, stride, pad):
    a = np.pad(a.astype(np.int64), ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    N, C, H, W = a.shape
    M, _, S, R = w.shape
    Q, P = (H - S) // stride + 1, (W - R) // stride + 1
    out = np.zeros((N, M, Q, P), np.int64)
    for n in range(N):
        for m in range(M):
            for q in range(Q):
                for p in range(P):
                    win = a[n, :, q * stride:q * stride + S, p * stride:p * stride + R]
                    out[n, m, q, p] = (win * w[m].astype(np.int64)).sum()
    return out


def test_op_kinds():
    assert [op_spec(p).kind for p in CASES] == ["matmul", "bmm", "conv2d", "conv2d",
                                                "depthwise_conv2d"]
    spec = op_spec(CASES[2])
    assert (spec.stride, spec.padding, spec.H, spec.W) == (2, 1, 9, 9)
    assert output_shape(spec) == (1, 16, 5, 5)
    dw = op_spec(CASES[4])
    assert (dw.stride, dw.padding, dw.H, dw.W, dw.reduce_dims) == (2, 1, 9, 8, ("S", "R"))
    assert output_shape(dw) == (2, 6, 5, 4)
    with pytest.raises(MapspaceError, match="only matmul"):
        op_spec(Problem("dot", ("A",), (3,), (Tensor("X", ((Term("A"),),)),
                                              Tensor("Z", (), read_write=True))))


def _direct_depthwise(a, w, stride, pad, dil):
    a = np.pad(a.astype(np.int64), ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    N, C, H, W = a.shape
    _, S, R = w.shape
    Q, P = (H - dil * (S - 1) - 1) // stride + 1, (W - dil * (R - 1) - 1) // stride + 1
    out = np.zeros((N, C, Q, P), np.int64)
    for q in range(Q):
        for p in range(P):
            win = a[:, :, q * stride:q * stride + dil * (S - 1) + 1:dil,
                    p * stride:p * stride + dil * (R - 1) + 1:dil]
            out[:, :, q, p] = (win * w[None].astype(np.int64)).sum(axis=(2, 3))
    return out


@pytest.mark.parametrize("stride,pad,dil", [(2, 1, 1), (1, 2, 2), (3, 0, 1)])
def test_depthwise_reference_matches_direct_loop(stride, pad, dil):
    spec = op_spec(depthwise_conv2d(2, 5, 11, 10, 3, 3, stride=stride, padding=pad,
                                    dilation=dil))
    a, b = random_inputs(spec, "int8", stride + pad)
    np.testing.assert_array_equal(reference(spec, a, b), _direct_depthwise(a, b, stride,
                                                                           pad, dil))


def test_conv_reference_matches_direct_loop():
    spec = op_spec(CASES[2])
    a, b = random_inputs(spec, "int8", 3)
    np.testing.assert_array_equal(reference(spec, a, b), _direct_conv(a, b, 2, 1))


@pytest.mark.parametrize("dtype", sorted(DTYPES))
@pytest.mark.parametrize("problem", CASES, ids=lambda p: p.name)
def test_unscheduled_prim_func_matches_numpy(problem, dtype):
    spec = op_spec(problem)
    lib = tvm.compile(tvm.IRModule({"main": prim_func(spec, dtype)}), target="llvm")
    a, b = random_inputs(spec, dtype, 0)
    out = tvm.runtime.empty(output_shape(spec), DTYPES[dtype][1])
    lib["main"](tvm.runtime.tensor(a), tvm.runtime.tensor(b), out)
    ref = reference(spec, a, b)
    if dtype == "int8":
        np.testing.assert_array_equal(out.numpy(), ref)
    else:
        np.testing.assert_allclose(out.numpy(), ref, rtol=1e-4, atol=1e-4)
