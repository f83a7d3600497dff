"""What every TVM emitter shares: lazy TVM import, the TE definition of a :class:`Problem`,
its numpy reference, and the :class:`EmitResult` an emitter returns.

TVM is imported only inside functions here (``import mapspace`` / ``import targets`` stay
fast and work without TVM).  Supported op kinds, recognised from a Problem's structure:

========= ====================================== ==========================================
kind      made by                                TE layout (block iterators, outer→inner)
========= ====================================== ==========================================
matmul    ``matmul(M, K, N)`` (P=M, C=K, M=N)    A[P, C] · B[C, M] → Z[P, M]; iters P, M, C
bmm       ``bmm(B, M, K, N)``                    A[N, P, C] · B[N, C, M] → Z[N, P, M];
                                                 iters N, P, M, C
conv2d    ``conv2d(...)`` (stride, padding)      I[N, C, H, W] ⊛ Wt[M, C, S, R]
                                                 → O[N, M, Q, P]; iters N, M, Q, P, C, S, R
depthwise ``depthwise_conv2d(...)`` (stride,     I[N, C, H, W] ⊛ Wt[C, S, R] → O[N, C, Q, P]
_conv2d   padding, dilation)                     (one filter per channel); iters N, C, Q, P,
                                                 S, R (reductions S, R only)
========= ====================================== ==========================================

``R``/``P`` run along the width and ``S``/``Q`` along the height (Timeloop's conv shape).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mapspace.errors import MapspaceError
from mapspace.problem import Problem
from targets.host import num_cores

#: element types an emitter accepts -> (input dtype, accumulator/output dtype)
DTYPES: dict[str, tuple[str, str]] = {"float32": ("float32", "float32"),
                                      "int8": ("int8", "int32")}

_CONV = ("C", "M", "R", "S", "N", "P", "Q")


def host_threads() -> None:
    """Make TVM's CPU thread pool use every core we may run on (``TVM_NUM_THREADS``, unless
    the user set it).

    Without it, TVM sizes its pool as ``hardware_concurrency() / 2`` on x86-64 (it assumes
    two SMT threads per core), so on a 2-core host without SMT a ``parallel`` loop over the
    cores ran on ONE thread: bert-base/ffn1 took 29 ms instead of 15-17 ms.  The mappings'
    core fan-out is :func:`targets.host.num_cores` (the CPUs in our affinity mask); the
    pool must match it.  TVM reads the variable when the pool is first created (the first
    ``parallel`` launch), so setting it before any kernel runs is enough.
    """
    os.environ.setdefault("TVM_NUM_THREADS", str(num_cores()))


def import_tvm() -> Any:
    """``import tvm`` on first use, with one clear error when it is not installed; sets the
    size of TVM's CPU thread pool first (:func:`host_threads`)."""
    host_threads()
    try:
        import tvm as _tvm
    except ImportError as e:  # pragma: no cover - tvm is a pinned dependency
        raise MapspaceError("Apache TVM is not installed (pip install "
                            "apache-tvm==0.27.0.post1 apache-tvm-ffi==0.1.14.post1)",
                            where="emit") from e
    return _tvm


@dataclass(frozen=True)
class OpSpec:
    """A problem recognised as an emittable op: its kind, sizes by our dim names, conv
    geometry, and the TE block iterators (our dim names, outer to inner; reductions last)."""

    kind: str
    sizes: dict[str, int]
    iters: tuple[str, ...]
    stride: int = 1
    padding: int = 0
    dilation: int = 1
    H: int = 0
    W: int = 0

    @property
    def reduce_dims(self) -> tuple[str, ...]:
        return {"matmul": ("C",), "bmm": ("C",), "conv2d": ("C", "S", "R"),
                "depthwise_conv2d": ("S", "R")}[self.kind]


def op_spec(problem: Problem) -> OpSpec:
    """Recognise ``problem`` as matmul, bmm, conv2d or depthwise_conv2d; raise naming it
    otherwise."""
    sizes = dict(zip(problem.dims, (int(s) for s in problem.sizes), strict=True))
    where = f"problem {problem.name!r}"
    if problem.dims == ("C", "M", "N", "P"):
        return OpSpec("bmm", sizes, ("N", "P", "M", "C"))
    depthwise = (set(problem.dims) == set(_CONV) - {"M"}
                 and len(problem.tensors[0].projection) == 3)
    if depthwise or (set(problem.dims) == set(_CONV)
                     and len(problem.tensors[0].projection) == 4):
        coefs = dict(problem.coefficients)
        extras = dict(problem.extras)
        sw, sh = coefs.get("Wstride", 1), coefs.get("Hstride", 1)
        dw, dh = coefs.get("Wdilation", 1), coefs.get("Hdilation", 1)
        if sw != sh or dw != dh or extras.get("Wpad", 0) != extras.get("Hpad", 0):
            raise MapspaceError("only square strides, dilations and paddings can be emitted",
                                where=where)
        conv_like = any(sizes[d] > 1 for d in ("R", "S", "N", "Q")) or "W" in extras
        if not conv_like and not depthwise:
            return OpSpec("matmul", sizes, ("P", "M", "C"))
        pad = extras.get("Wpad", 0)
        W = extras.get("W", (sizes["P"] - 1) * sw + dw * (sizes["R"] - 1) + 1 - 2 * pad)
        H = extras.get("H", (sizes["Q"] - 1) * sh + dh * (sizes["S"] - 1) + 1 - 2 * pad)
        if depthwise:
            return OpSpec("depthwise_conv2d", sizes, ("N", "C", "Q", "P", "S", "R"),
                          stride=sw, padding=pad, dilation=dw, H=H, W=W)
        return OpSpec("conv2d", sizes, ("N", "M", "Q", "P", "C", "S", "R"), stride=sw,
                      padding=pad, dilation=dw, H=H, W=W)
    raise MapspaceError("only matmul, batched matmul, conv2d and depthwise conv2d can be "
                        "emitted "
                        f"(dims {list(problem.dims)})", where=where)


def input_shapes(spec: OpSpec) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Shapes of the two operands (activations, weights) in the TE layout."""
    s = spec.sizes
    if spec.kind == "matmul":
        return (s["P"], s["C"]), (s["C"], s["M"])
    if spec.kind == "bmm":
        return (s["N"], s["P"], s["C"]), (s["N"], s["C"], s["M"])
    if spec.kind == "depthwise_conv2d":
        return (s["N"], s["C"], spec.H, spec.W), (s["C"], s["S"], s["R"])
    return (s["N"], s["C"], spec.H, spec.W), (s["M"], s["C"], s["S"], s["R"])


def output_shape(spec: OpSpec) -> tuple[int, ...]:
    s = spec.sizes
    if spec.kind == "matmul":
        return (s["P"], s["M"])
    if spec.kind == "bmm":
        return (s["N"], s["P"], s["M"])
    if spec.kind == "depthwise_conv2d":
        return (s["N"], s["C"], s["Q"], s["P"])
    return (s["N"], s["M"], s["Q"], s["P"])


def te_compute(spec: OpSpec, dtype: str = "float32") -> tuple[Any, Any, Any]:
    """TE placeholders and compute ``(A, B, Z)``; the compute block is named ``"Z"`` and
    its iterators are named after our dims (``spec.iters``).  Int8 accumulates in int32."""
    if dtype not in DTYPES:
        raise MapspaceError(f"dtype must be one of {sorted(DTYPES)}, found {dtype!r}",
                            where="emit")
    t = import_tvm()
    from tvm import te

    din, dacc = DTYPES[dtype]
    sa, sb = input_shapes(spec)
    A = te.placeholder(sa, din, name="A")
    B = te.placeholder(sb, din, name="B")
    s = spec.sizes

    def cast(x):
        return x if din == dacc else x.astype(dacc)

    if spec.kind == "matmul":
        k = te.reduce_axis((0, s["C"]), name="C")
        Z = te.compute(output_shape(spec),
                       lambda P, M: te.sum(cast(A[P, k]) * cast(B[k, M]), axis=k), name="Z")
    elif spec.kind == "bmm":
        k = te.reduce_axis((0, s["C"]), name="C")
        Z = te.compute(output_shape(spec), lambda N, P, M: te.sum(
            cast(A[N, P, k]) * cast(B[N, k, M]), axis=k), name="Z")
    else:
        st, pd, dl = spec.stride, spec.padding, spec.dilation
        if pd:
            from tvm import topi
            A_in = topi.nn.pad(A, (0, 0, pd, pd), (0, 0, pd, pd), name="A_pad")
        else:
            A_in = A
        c = te.reduce_axis((0, s["C"]), name="C")
        rs = te.reduce_axis((0, s["S"]), name="S")
        rr = te.reduce_axis((0, s["R"]), name="R")
        if spec.kind == "depthwise_conv2d":
            Z = te.compute(output_shape(spec), lambda N, C, Q, P: te.sum(
                cast(A_in[N, C, Q * st + rs * dl, P * st + rr * dl]) * cast(B[C, rs, rr]),
                axis=[rs, rr]), name="Z")
            del t
            return A, B, Z
        Z = te.compute(output_shape(spec), lambda N, M, Q, P: te.sum(
            cast(A_in[N, c, Q * st + rs * dl, P * st + rr * dl]) * cast(B[M, c, rs, rr]),
            axis=[c, rs, rr]), name="Z")
    del t
    return A, B, Z


def prim_func(spec: OpSpec, dtype: str = "float32") -> Any:
    """The unscheduled ``PrimFunc(A, B, Z)`` of ``spec``."""
    import_tvm()
    from tvm import te

    A, B, Z = te_compute(spec, dtype)
    return te.create_prim_func([A, B, Z])


def random_inputs(spec: OpSpec, dtype: str, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Seeded random operands: normal fp32, or int8 in [-128, 127]."""
    rng = np.random.default_rng(seed)
    sa, sb = input_shapes(spec)
    if dtype == "int8":
        return (rng.integers(-128, 128, sa, dtype=np.int8),
                rng.integers(-128, 128, sb, dtype=np.int8))
    return (rng.standard_normal(sa, dtype=np.float32),
            rng.standard_normal(sb, dtype=np.float32))


def reference(spec: OpSpec, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """numpy result of the op (int8 operands accumulate exactly in int32 via int64).

    int8 matmul/bmm go through float64 BLAS where that is exact: every partial sum is an
    integer below ``C * 2**14 < 2**53`` (int8 products are at most ``2**14``)."""
    acc = np.int64 if a.dtype == np.int8 else np.float64
    out_t = np.int32 if a.dtype == np.int8 else np.float32
    if spec.kind in ("matmul", "bmm") and (a.dtype != np.int8
                                           or spec.sizes["C"] * 2**14 < 2**53):
        return np.matmul(a.astype(np.float64), b.astype(np.float64)).astype(out_t)
    a, b = a.astype(acc), b.astype(acc)
    if spec.kind in ("matmul", "bmm"):
        return np.matmul(a, b).astype(out_t)
    st, pd, dl = spec.stride, spec.padding, spec.dilation
    s = spec.sizes
    a = np.pad(a, ((0, 0), (0, 0), (pd, pd), (pd, pd)))
    out = np.zeros(output_shape(spec), dtype=acc)
    for ks in range(s["S"]):
        for kr in range(s["R"]):
            h0, w0 = ks * dl, kr * dl
            win = a[:, :, h0:h0 + st * (s["Q"] - 1) + 1:st, w0:w0 + st * (s["P"] - 1) + 1:st]
            if spec.kind == "depthwise_conv2d":
                out += win * b[None, :, ks, kr, None, None]
                continue
            out += np.einsum("nchw,mc->nmhw", win, b[:, :, ks, kr])
    return out.astype(out_t)


@dataclass(frozen=True)
class EmitResult:
    """What an emitter produced for one op.

    ``trace`` is the replayable schedule trace (Python, ``sch.trace``); ``source`` the
    generated code (C for gemmini, the lowered TIR / LLVM for cpu).  After ``run=True``:
    ``correct`` (bit-exact for int8, allclose for fp32), ``max_abs_error``, ``seconds``
    (median kernel time, cpu) and ``counters`` (intrinsic counts and bytes moved, gemmini).
    """

    target: str
    op: str
    kind: str
    dtype: str
    files: tuple[Path, ...] = ()
    trace: str = ""
    source: str = ""
    correct: bool | None = None
    max_abs_error: float | None = None
    seconds: float | None = None
    counters: dict[str, int] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        """JSON-ready summary for the CLI."""
        return {"target": self.target, "op": self.op, "kind": self.kind, "dtype": self.dtype,
                "files": [str(f) for f in self.files], "correct": self.correct,
                "max_abs_error": self.max_abs_error, "seconds": self.seconds,
                "counters": dict(self.counters)}
