"""The TE definitions of our problems (targets/_tvm.py) against numpy, and numpy's conv
reference against a direct loop."""

import numpy as np
import pytest

from mapspace import bmm, conv2d, matmul
from mapspace.errors import MapspaceError
from mapspace.problem import depthwise_conv2d
from targets._tvm import (
    DTYPES,
    op_spec,
    output_shape,
    prim_func,
    random_inputs,
    reference,
)

tvm = pytest.importorskip("tvm")

CASES = [matmul(20, 24, 36), bmm(3, 10, 12, 14),
         conv2d(1, 8, 9, 9, 16, 3, 3, stride=2, padding=1), conv2d(2, 3, 7, 5, 4, 1, 1)]


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
    assert [op_spec(p).kind for p in CASES] == ["matmul", "bmm", "conv2d", "conv2d"]
    spec = op_spec(CASES[2])
    assert (spec.stride, spec.padding, spec.H, spec.W) == (2, 1, 9, 9)
    assert output_shape(spec) == (1, 16, 5, 5)
    with pytest.raises(MapspaceError, match="only matmul"):
        op_spec(depthwise_conv2d(1, 8, 9, 9, 3, 3))


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
