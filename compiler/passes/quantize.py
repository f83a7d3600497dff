"""Post-training quantization (symmetric, uniform) of MAC ops, and its numerical error.

:func:`quantize` records on every MAC op: ``weight_bits``, ``act_bits`` (both ``bits``),
``out_bits`` (32: the accumulator), ``weight_scales`` (one per output channel, symmetric:
``max|W[:, c]| / (2**(bits-1) - 1)``) and ``act_scale`` (one for the op's first input).
Values come from ``calibration`` (tensor name -> array) or, absent, from seeded random
data: activations ``N(0, 1)``, weights ``N(0, 1/sqrt(K))``.  ``bmm`` has no weights (both
operands are activations): its ``weight_scales`` is one per-tensor scale of the second.

:func:`sqnr` measures, per MAC op, the signal-to-quantization-noise ratio of the
fake-quantized computation against fp32 on sample data (at most ``rows`` output rows and
``cols`` output channels) and records it as ``sqnr_db``.  A uniform quantizer gains about
6.02 dB per bit, so int8 is ~24 dB above int4.

:func:`problem_bits` gives the per-tensor bits to apply to an op's
:class:`~mapspace.problem.Problem` (``Problem.with_tensor(name, bits=...)``).
"""

from __future__ import annotations

import zlib

import numpy as np

from compiler.errors import CompilerError
from compiler.graph import MAC_KINDS, Graph, Op
from compiler.passes._rewrite import map_ops, with_attrs

#: Bit widths :func:`quantize` accepts.
BITS: tuple[int, ...] = (8, 4)
OUT_BITS = 32


def _rng(seed: int, op: Op, salt: str) -> np.random.Generator:
    return np.random.default_rng([seed, zlib.crc32(f"{op.name}/{salt}".encode())])


def _qmax(bits: int) -> int:
    return 2 ** (bits - 1) - 1


def _check_bits(bits: object, where: str, key: str = "bits") -> int:
    if isinstance(bits, bool) or not isinstance(bits, int | np.integer) or int(bits) not in BITS:
        raise CompilerError(f"bits must be one of {', '.join(map(str, BITS))}, found {bits!r}",
                            where=where, key=key)
    return int(bits)


def _weight_layout(graph: Graph, op: Op) -> tuple[int, int]:
    """(K, channels) of the op's weight matrix: reduction length and output channels."""
    p = graph.problem(op)
    assert p is not None
    s = dict(zip(p.dims, p.sizes, strict=True))
    k = s["C"] * s.get("R", 1) * s.get("S", 1)
    if op.kind == "depthwise_conv2d":
        return s["R"] * s["S"], s["C"]
    return k, s["M"]


def _as_matrix(graph: Graph, op: Op, w: np.ndarray) -> np.ndarray:
    """A weight param's array as ``[K, channels]``."""
    w = np.asarray(w, dtype=np.float64)
    if op.kind == "matmul":
        return w.T if op.attr("transpose_b", False) else w
    if op.kind in ("conv2d", "depthwise_conv2d"):
        return w.reshape(w.shape[0], -1).T
    return w.reshape(-1, w.shape[-1])


def _calib(graph: Graph, calibration: dict[str, np.ndarray] | None, t: str,
           where: str) -> np.ndarray | None:
    if not calibration or t not in calibration:
        return None
    a = np.asarray(calibration[t], dtype=np.float64)
    if t in graph.params and a.shape != graph.tensor(t).shape:
        raise CompilerError(f"array of shape {list(a.shape)} does not match the parameter's "
                            f"shape {list(graph.tensor(t).shape)}", where=where,
                            key=f"calibration[{t!r}]")
    return a


def _weights(graph: Graph, op: Op, calibration: dict[str, np.ndarray] | None, seed: int,
             cols: int | None = None) -> np.ndarray:
    """The op's weight matrix ``[K, channels]`` (at most ``cols`` channels)."""
    k, n = _weight_layout(graph, op)
    w = _calib(graph, calibration, op.inputs[1], "quantize")
    if w is not None and op.kind != "bmm":
        m = _as_matrix(graph, op, w)
        return m if cols is None else m[:, :cols]
    n = n if cols is None else min(n, cols)
    return _rng(seed, op, "weights").normal(0.0, 1.0 / np.sqrt(k), size=(k, n))


def channel_scales(w: np.ndarray, bits: int) -> np.ndarray:
    """Symmetric scale per column of the ``[K, N]`` matrix ``w``: ``max|w[:, n]| / qmax``."""
    amax = np.abs(w).max(axis=0)
    return np.where(amax > 0, amax, 1.0) / _qmax(bits)


def tensor_scale(x: np.ndarray, bits: int) -> float:
    """Symmetric per-tensor scale ``max|x| / qmax`` (``1 / qmax`` for an all-zero ``x``)."""
    amax = float(np.abs(x).max()) if x.size else 0.0
    return (amax if amax > 0 else 1.0) / _qmax(bits)


def quantize_values(x: np.ndarray, scale: np.ndarray | float, bits: int) -> np.ndarray:
    """``x / scale`` rounded and clipped to ``[-qmax, qmax]`` (integer values, float type)."""
    q = _qmax(bits)
    return np.clip(np.rint(x / scale), -q, q)


def _fake_quant(x: np.ndarray, scale: np.ndarray | float, bits: int) -> np.ndarray:
    return quantize_values(x, scale, bits) * scale


def _act_sample(graph: Graph, op: Op, calibration: dict[str, np.ndarray] | None, seed: int,
                k: int, rows: int) -> np.ndarray:
    a = _calib(graph, calibration, op.inputs[0], "quantize")
    if a is not None:
        return a.ravel()
    n = min(graph.tensor(op.inputs[0]).size, rows * k)
    return _rng(seed, op, "acts").standard_normal(n)


def quantize(graph: Graph, bits: int = 8, calibration: dict[str, np.ndarray] | None = None,
             seed: int = 0) -> Graph:
    """A new graph whose MAC ops carry quantization attrs (see the module docs).

    ``bits`` is 8 or 4; ``calibration`` maps tensor names (weight params, MAC inputs) to
    sample arrays (a param's array must have its shape).  Raises :class:`CompilerError`.
    """
    bits = _check_bits(bits, "quantize")
    for t in calibration or {}:
        if not graph.has_tensor(t):
            raise CompilerError("names no tensor of the graph", where="quantize",
                                key=f"calibration[{t!r}]")

    def one(op: Op) -> Op:
        if op.kind not in MAC_KINDS:
            return op
        k, _ = _weight_layout(graph, op)
        if op.kind == "bmm":
            b = _calib(graph, calibration, op.inputs[1], "quantize")
            if b is None:
                b = _rng(seed, op, "weights").standard_normal(min(
                    graph.tensor(op.inputs[1]).size, 64 * k))
            wscales: tuple[float, ...] = (tensor_scale(b, bits),)
        else:
            wscales = tuple(float(s) for s in channel_scales(
                _weights(graph, op, calibration, seed), bits))
        act = tensor_scale(_act_sample(graph, op, calibration, seed, k, 64), bits)
        return with_attrs(op, weight_bits=bits, act_bits=bits, out_bits=OUT_BITS,
                          weight_scales=wscales, act_scale=act)

    return map_ops(graph, one)


def op_sqnr(graph: Graph, op: Op | str, bits: int = 8, *, rows: int = 64, cols: int = 512,
            seed: int = 0, calibration: dict[str, np.ndarray] | None = None) -> float:
    """SQNR in dB of one MAC op computed with ``bits``-bit weights and activations (fake
    quantization: per-channel weight scales, per-tensor activation scale) against fp32.

    Sample data: activations ``[rows, K]`` ~ ``N(0, 1)``, weights ``[K, min(channels,
    cols)]`` ~ ``N(0, 1/sqrt(K))`` (or the calibration weights); a convolution is computed
    as its im2col matmul, a depthwise one channel by channel.
    """
    op = graph.op(op) if isinstance(op, str) else op
    if op.kind not in MAC_KINDS:
        raise CompilerError(f"op kind {op.kind!r} has no MACs to quantize", where="sqnr",
                            key=op.name)
    bits = _check_bits(bits, "sqnr")
    k, _ = _weight_layout(graph, op)
    w = _weights(graph, op, calibration, seed, cols)
    p = graph.problem(op)
    assert p is not None
    s = dict(zip(p.dims, p.sizes, strict=True))
    r = max(1, min(rows, s["P"] * s.get("Q", 1) * (1 if op.kind == "bmm" else s["N"])))
    rng = _rng(seed, op, "sqnr-acts")
    if op.kind == "depthwise_conv2d":
        a = rng.standard_normal((r, k, w.shape[1]))
        y = np.einsum("rkc,kc->rc", a, w)
    else:
        a = rng.standard_normal((r, k))
        y = a @ w
    aq = _fake_quant(a, tensor_scale(a, bits), bits)
    wscale = tensor_scale(w, bits) if op.kind == "bmm" else channel_scales(w, bits)
    wq = _fake_quant(w, wscale, bits)
    yq = np.einsum("rkc,kc->rc", aq, wq) if op.kind == "depthwise_conv2d" else aq @ wq
    noise = float(np.sum((y - yq) ** 2))
    signal = float(np.sum(y ** 2))
    if noise == 0.0:
        return float("inf")
    return 10.0 * np.log10(signal / noise)


def sqnr(graph: Graph, bits: int | None = None, *, rows: int = 64, cols: int = 512,
         seed: int = 0, calibration: dict[str, np.ndarray] | None = None) -> Graph:
    """A new graph whose MAC ops carry ``sqnr_db`` (see :func:`op_sqnr`).

    ``bits`` defaults to each op's ``weight_bits`` (set by :func:`quantize`), else 8.
    """
    if bits is not None:
        _check_bits(bits, "sqnr")

    def one(op: Op) -> Op:
        if op.kind not in MAC_KINDS:
            return op
        b = bits if bits is not None else int(op.attr("weight_bits", 8))  # type: ignore[arg-type]
        return with_attrs(op, sqnr_db=op_sqnr(graph, op, b, rows=rows, cols=cols, seed=seed,
                                              calibration=calibration))

    return map_ops(graph, one)


def problem_bits(op: Op) -> dict[str, int]:
    """Per-tensor bits for the op's Problem: ``{"Weights": weight_bits, "Inputs": act_bits,
    "Outputs": out_bits}`` (only those set; empty for an unquantized op)."""
    keys = (("Weights", "weight_bits"), ("Inputs", "act_bits"), ("Outputs", "out_bits"))
    return {t: int(v) for t, a in keys if (v := op.attr(a)) is not None}  # type: ignore[call-overload]


__all__ = ["BITS", "op_sqnr", "problem_bits", "quantize", "sqnr"]
