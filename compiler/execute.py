"""Run a :class:`~compiler.graph.Graph` on numpy arrays: the host reference of a model.

``run_graph(graph, values, mac=None)`` evaluates every op in topological order.  MAC ops
(matmul, bmm, conv2d) go through ``mac(op, problem, a, b)`` when given — the hook an emitted
kernel plugs into — with the operands in the layout of :mod:`targets.tvm_common` (matmul
``A[P, C] · B[C, M]``, bmm ``A[N, P, C] · B[N, C, M]``, conv2d unpadded ``I[N, C, H, W]``
and ``W[M, C, S, R]``); everything else (bias, transposes, broadcasting, the non-MAC kinds)
runs here in numpy.  Without ``mac`` the MAC ops run in numpy too (float64 accumulation).

``random_values(graph, seed)`` makes seeded inputs and parameters for a graph whose values
are not known (zoo models): normal activations, weights scaled by ``1/sqrt(fan_in)``,
LayerNorm gains around 1, integer inputs (token ids) in ``[0, rows of the table)``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from math import prod

import numpy as np

from compiler.errors import CompilerError
from compiler.graph import Graph, Op, matmul_dims
from mapspace.problem import Problem
from targets.tvm_common import op_spec, reference

# tvm and onnx are imported in the host-op runners that need them: both are heavy and
# optional, and `import compiler.execute` must work without them

#: ``mac(op, problem, a, b) -> out`` in the layouts of the module docstring
MacFn = Callable[[Op, Problem, np.ndarray, np.ndarray], np.ndarray]


def _erf(x: np.ndarray) -> np.ndarray:
    """erf to ~1e-7 (Abramowitz & Stegun 7.1.26), vectorised (numpy has no erf)."""
    s = np.sign(x)
    a = np.abs(x)
    t = 1.0 / (1.0 + 0.3275911 * a)
    y = 1.0 - (((((1.061405429 * t - 1.453152027) * t) + 1.421413741) * t - 0.284496736) * t
               + 0.254829592) * t * np.exp(-a * a)
    return (s * y).astype(x.dtype)


def _softmax(x: np.ndarray, axis: int) -> np.ndarray:
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def _layernorm(x: np.ndarray, axis: int, eps: float) -> np.ndarray:
    axes = tuple(range(axis % x.ndim, x.ndim))
    mu = x.mean(axis=axes, keepdims=True)
    var = ((x - mu) ** 2).mean(axis=axes, keepdims=True)
    return (x - mu) / np.sqrt(var + eps)


def _pool(op: Op, x: np.ndarray) -> np.ndarray:
    mode = str(op.attr("mode", "max"))
    if mode.startswith("global"):
        f = np.max if mode == "global_max" else np.mean
        return f(x, axis=(2, 3), keepdims=True)
    kh, kw = op.attr("kernel")  # type: ignore[misc]
    sh, sw = op.attr("strides", (1, 1))
    pt, pl, pb, pr = op.attr("pads", (0, 0, 0, 0))
    ceil = bool(op.attr("ceil_mode", False))
    fill = -np.inf if mode == "max" else np.nan
    n, c, h, w = x.shape

    def out(size, k, s, lo, hi):
        num = size + lo + hi - k
        return (-(-num // s) if ceil else num // s) + 1

    oh, ow = out(h, kh, sh, pt, pb), out(w, kw, sw, pl, pr)
    xp = np.full((n, c, max(h + pt + pb, (oh - 1) * sh + kh),
                  max(w + pl + pr, (ow - 1) * sw + kw)), fill, dtype=x.dtype)
    xp[:, :, pt:pt + h, pl:pl + w] = x
    win = np.lib.stride_tricks.sliding_window_view(xp, (kh, kw), axis=(2, 3))
    win = win[:, :, ::sh, ::sw][:, :, :oh, :ow]
    if mode == "max":
        return win.max(axis=(-2, -1))
    return np.nanmean(win, axis=(-2, -1)).astype(x.dtype)  # avg excludes padding


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * x))  # no overflow for large |x|


def _rmsnorm(op: Op, x: np.ndarray, w: np.ndarray | None = None) -> np.ndarray:
    axes = tuple(range(int(op.attr("axis", -1)) % x.ndim, x.ndim))
    y = x / np.sqrt((x * x).mean(axis=axes, keepdims=True) + float(op.attr("epsilon", 1e-6)))
    return y if w is None else y * w


def _hardsigmoid(x: np.ndarray, alpha: float, beta: float) -> np.ndarray:
    return np.clip(alpha * x + beta, 0.0, 1.0)


#: the one-input activations (and rmsnorm): ``fn(op, *args) -> array``
_ACTIVATIONS: dict[str, Callable[..., np.ndarray]] = {
    "clip": lambda op, x: np.clip(x, op.attr("min", -np.inf), op.attr("max", np.inf)),
    "sigmoid": lambda op, x: _sigmoid(x),
    "silu": lambda op, x: x * _sigmoid(x),
    "hardsigmoid": lambda op, x: _hardsigmoid(x, float(op.attr("alpha", 0.2)),
                                              float(op.attr("beta", 0.5))),
    "hardswish": lambda op, x: x * _hardsigmoid(x, 1.0 / 6.0, 0.5),
    "rmsnorm": _rmsnorm,
}


_RELAX_BUILDS: dict[str, object] = {}  # JSON of a one-op module -> its VM function


def _relax_host(module_json: str, args: list[np.ndarray]) -> list[np.ndarray]:
    """A ``host`` op from the Relax front end: its one-op module (``tvm.ir.save_json``,
    read back with ``load_json``: data, never evaluated as code), built for the host CPU
    once per distinct module and run by TVM's VM."""
    import tvm
    from tvm import relax

    fn = _RELAX_BUILDS.get(module_json)
    if fn is None:
        try:
            mod = tvm.ir.load_json(module_json)
            vm = relax.VirtualMachine(tvm.compile(mod, target="llvm"), tvm.cpu())
        except Exception as e:  # a damaged module (e.g. from an edited model.json)
            raise CompilerError(f"the host op's Relax module does not build: "
                                f"{type(e).__name__}", where="run") from None
        fn = _RELAX_BUILDS[module_json] = vm["main"]
    out = fn(*[tvm.runtime.tensor(np.asarray(a, order="C")) for a in args])  # keeps 0-d
    return [o.numpy() for o in out] if isinstance(out, Sequence) else [out.numpy()]


def _host(op: Op, args: list[np.ndarray]) -> list[np.ndarray]:
    """A ``host`` op: the ONNX node it carries, run by ONNX's reference implementation (or,
    from the Relax front end, its one-op module, built by TVM)."""
    script = op.attr("relax")
    if isinstance(script, str):
        return _relax_host(script, args)
    onnx_node = op.attr("onnx")
    if not isinstance(onnx_node, bytes):
        raise CompilerError(f"host op {op.attr('op_type')!r} carries nothing to execute",
                            where=f"op {op.name!r}")
    from onnx import NodeProto
    from onnx.reference import ReferenceEvaluator

    node = NodeProto()
    node.ParseFromString(onnx_node)
    names = list(node.input)
    ev = ReferenceEvaluator(node, opsets={"": int(op.attr("opset", 17))})
    feeds = {t: a for t, a in zip([t for t in names if t], args, strict=True)}
    outs = ev.run(None, feeds)
    by_name = dict(zip(node.output, outs, strict=True))
    return [np.asarray(by_name[t]) for t in node.output if t]


def _numpy_mac(op: Op, problem: Problem, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return reference(op_spec(problem), a.astype(np.float64), b.astype(np.float64))


def _mac(graph: Graph, op: Op, args: list[np.ndarray], mac: MacFn) -> np.ndarray:
    """A MAC op: operands to the kernel layout, ``mac``, then bias and reshape back."""
    problem = graph.problem(op)
    a, b = args[0], args[1]
    if op.kind == "matmul":
        if op.attr("transpose_a", False):
            a = a.T
        if op.attr("transpose_b", False):
            b = b.T
        lead, m, k, n = matmul_dims(op, args[0].shape, args[1].shape)
        out = mac(op, problem, np.ascontiguousarray(a.reshape(-1, k)), np.ascontiguousarray(b))
        out = out.reshape(*lead, m, n) if args[0].ndim > 1 else out.reshape(n)
        out = out * float(op.attr("alpha", 1.0))
        if len(args) > 2:
            out = out + float(op.attr("beta", 1.0)) * args[2]
        return out
    if op.kind == "bmm":
        lead = np.broadcast_shapes(a.shape[:-2], b.shape[:-2])
        a = np.broadcast_to(a, (*lead, *a.shape[-2:])).reshape(-1, *a.shape[-2:])
        b = np.broadcast_to(b, (*lead, *b.shape[-2:])).reshape(-1, *b.shape[-2:])
        out = mac(op, problem, np.ascontiguousarray(a), np.ascontiguousarray(b))
        return out.reshape(*lead, *out.shape[-2:])
    if not _square(op):  # no kernel layout for it: numpy on the host, in float64
        return _window_conv(op, a, b, args[2] if len(args) > 2 else None)
    if op.kind == "depthwise_conv2d":  # W[C, 1, S, R] -> the kernel's W[C, S, R]
        b = b.reshape(b.shape[0], *b.shape[2:])
    out = mac(op, problem, np.ascontiguousarray(a), np.ascontiguousarray(b))
    if len(args) > 2:
        out = out + args[2].reshape(1, -1, 1, 1)
    return out


def _square(op: Op) -> bool:
    """Whether a convolution's geometry is what the kernels take: the same stride and
    dilation along both axes, and one padding on every side."""
    sh, sw = op.attr("strides", (1, 1))
    dh, dw = op.attr("dilations", (1, 1))
    return sh == sw and dh == dw and len(set(op.attr("pads", (0, 0, 0, 0)))) == 1


def _window_conv(op: Op, x: np.ndarray, w: np.ndarray, bias: np.ndarray | None) -> np.ndarray:
    """Any convolution (plain or depthwise; any strides, dilations and pads) in numpy."""
    sh, sw = op.attr("strides", (1, 1))
    pt, pl, pb, pr = op.attr("pads", (0, 0, 0, 0))
    dh, dw = op.attr("dilations", (1, 1))
    xp = np.pad(x, ((0, 0), (0, 0), (pt, pb), (pl, pr)))
    kh, kw = w.shape[2:]
    oh = (xp.shape[2] - dh * (kh - 1) - 1) // sh + 1
    ow = (xp.shape[3] - dw * (kw - 1) - 1) // sw + 1
    out = np.zeros((x.shape[0], w.shape[0], oh, ow), dtype=np.float64)
    for i in range(kh):
        for j in range(kw):
            win = xp[:, :, i * dh:i * dh + sh * (oh - 1) + 1:sh,
                     j * dw:j * dw + sw * (ow - 1) + 1:sw]
            if op.kind == "depthwise_conv2d":
                out += win * w[:, 0, i, j].reshape(1, -1, 1, 1)
            else:
                out += np.einsum("nchw,mc->nmhw", win, w[:, :, i, j], optimize=True)
    return out if bias is None else out + bias.reshape(1, -1, 1, 1)


def _slice(op: Op, x: np.ndarray) -> np.ndarray:
    idx = [slice(None)] * x.ndim
    axes = op.attr("axes", tuple(range(len(op.attr("starts", ())))))
    steps = op.attr("steps", (1,) * len(axes))
    for ax, st, en, sp in zip(axes, op.attr("starts", ()), op.attr("ends", ()), steps,
                              strict=True):
        idx[ax % x.ndim] = slice(st, en, sp)
    return x[tuple(idx)]


def _run_op(graph: Graph, op: Op, args: list[np.ndarray], mac: MacFn) -> list[np.ndarray]:
    k = op.kind
    if k in ("matmul", "bmm", "conv2d", "depthwise_conv2d"):
        return [_mac(graph, op, args, mac)]
    if k in ("add", "mul", "sub", "div", "pow"):
        f = {"add": np.add, "mul": np.multiply, "sub": np.subtract, "div": np.divide,
             "pow": np.power}[k]
        return [f(args[0], args[1])]
    if k == "relu":
        return [np.maximum(args[0], 0)]
    if k == "gelu":
        x = args[0]
        if op.attr("approximate") == "tanh":
            c = math.sqrt(2.0 / math.pi)
            return [0.5 * x * (1.0 + np.tanh(c * (x + 0.044715 * x ** 3)))]
        return [0.5 * x * (1.0 + _erf(x / math.sqrt(2.0)))]
    if k in _ACTIVATIONS:
        return [_ACTIVATIONS[k](op, *args)]
    if k == "host":
        return _host(op, args)
    if k in ("sqrt", "tanh"):
        return [getattr(np, k)(args[0])]
    if k == "erf":
        return [_erf(args[0])]
    if k == "softmax":
        return [_softmax(args[0], int(op.attr("axis", -1)))]
    if k == "layernorm":
        y = _layernorm(args[0], int(op.attr("axis", -1)), float(op.attr("epsilon", 1e-5)))
        if len(args) > 1:
            y = y * args[1]
        if len(args) > 2:
            y = y + args[2]
        return [y]
    if k == "transpose":
        return [np.transpose(args[0], op.attr("perm", None))]
    if k == "reshape":
        return [args[0].reshape(op.attr("shape"))]
    if k == "concat":
        return [np.concatenate(args, axis=int(op.attr("axis", 0)))]
    if k == "gather":
        return [np.take(args[0], args[1].astype(np.int64), axis=int(op.attr("axis", 0)))]
    if k == "pool":
        return [_pool(op, args[0])]
    if k == "split":
        a = int(op.attr("axis", 0))
        cuts = np.cumsum(op.attr("sizes"))[:-1]
        return list(np.split(args[0], cuts, axis=a))
    if k == "slice":
        return [_slice(op, args[0])]
    if k == "reduce_mean":
        axes = tuple(op.attr("axes", tuple(range(args[0].ndim))))
        return [args[0].mean(axis=axes, keepdims=bool(op.attr("keepdims", True)))]
    raise CompilerError(f"op kind {k!r} cannot be executed", where=f"op {op.name!r}")


def run_graph(graph: Graph, values: Mapping[str, np.ndarray], *,
              mac: MacFn | None = None) -> dict[str, np.ndarray]:
    """Evaluate ``graph`` given every input and parameter in ``values`` (a param missing
    there takes its value from ``graph.values``, the model's own weights); returns the graph
    outputs by name (float32 activations; integer inputs stay integer)."""
    env: dict[str, np.ndarray] = {}
    values = {**graph.values, **values}
    for t in (*graph.inputs, *graph.params):
        if t not in values:
            raise CompilerError(f"no value for {'input' if t in graph.inputs else 'param'} "
                                f"{t!r}", where=f"graph {graph.name!r}")
        v = np.asarray(values[t])
        if tuple(v.shape) != graph.tensor(t).shape:
            raise CompilerError(f"value of {t!r} has shape {list(v.shape)}, the graph "
                                f"declares {list(graph.tensor(t).shape)}",
                                where=f"graph {graph.name!r}")
        env[t] = v
    fn = mac or _numpy_mac
    for op in graph.ops():
        outs = _run_op(graph, op, [env[t] for t in op.inputs], fn)
        for t, v in zip(op.outputs, outs, strict=True):
            v = np.asarray(v)
            env[t] = v.astype(np.float32) if v.dtype.kind == "f" else v
    return {t: env[t] for t in graph.outputs}


def random_values(graph: Graph, seed: int = 0) -> dict[str, np.ndarray]:
    """Seeded inputs and parameters for ``graph`` (see the module docstring)."""
    rng = np.random.default_rng(seed)
    rows: dict[str, int] = {}
    fan_in: dict[str, int] = {}
    gains: set[str] = set()
    for op in graph.ops():
        if op.kind == "gather" and len(op.inputs) > 1:
            rows[op.inputs[1]] = graph.tensor(op.inputs[0]).shape[int(op.attr("axis", 0))]
        if op.kind in ("matmul", "conv2d", "depthwise_conv2d") and len(op.inputs) > 1:
            w = graph.tensor(op.inputs[1]).shape
            fan_in[op.inputs[1]] = prod(w[1:]) if op.kind != "matmul" else (
                w[1] if op.attr("transpose_b", False) else w[0])
        if op.kind == "layernorm" and len(op.inputs) > 1:
            gains.add(op.inputs[1])
    out: dict[str, np.ndarray] = {}
    for t in (*graph.inputs, *graph.params):
        info = graph.tensor(t)
        if np.dtype(info.dtype).kind in "iu":
            out[t] = rng.integers(0, rows.get(t, 2), info.shape).astype(info.dtype)
        elif t in gains:
            out[t] = (1.0 + 0.1 * rng.standard_normal(info.shape)).astype(np.float32)
        else:
            scale = 1.0 / math.sqrt(fan_in[t]) if t in fan_in else (
                0.1 if t in graph.params else 1.0)
            out[t] = (scale * rng.standard_normal(info.shape)).astype(np.float32)
    return out
