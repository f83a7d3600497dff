"""ONNX front end: ``from_onnx(path_or_model) -> Graph``.

Shapes come from ``onnx.shape_inference`` (and initializers); symbolic dimensions need
values in ``dim_values`` (e.g. ``{"batch": 1}``).  Mapping of ONNX ops to graph kinds:

- ``Conv`` -> ``conv2d`` (``depthwise_conv2d`` when ``group`` equals the input channels);
  ``Gemm`` -> ``matmul`` (``transA``/``transB`` kept, bias ``C`` as a third input, ``alpha``
  and ``beta`` recorded); ``MatMul`` -> ``matmul`` with a 2-D second operand, else ``bmm``.
- ``Add Mul Relu Softmax LayerNormalization Transpose Concat Gather Split Slice`` -> the
  kind of the same name; ``Reshape``/``Flatten`` -> ``reshape`` (target shape resolved);
  ``MaxPool``/``AveragePool``/``GlobalAveragePool``/``GlobalMaxPool`` -> ``pool``.
- GELU subgraphs are fused into one ``gelu`` op: the Erf form
  ``0.5 * x * (1 + erf(x / sqrt 2))`` and the Tanh form
  ``0.5 * x * (1 + tanh(sqrt(2/pi) * (x + 0.044715 * x^3)))`` (either order of the
  multiplications by ``x`` and ``0.5``).  An ``Erf``/``Tanh`` outside these patterns stays a
  host op.
- ``Sub Div Pow Sqrt ReduceMean`` are host-side elementwise ops (kinds ``sub``, ``div``,
  ``pow``, ``sqrt``, ``reduce_mean``): a LayerNorm exported decomposed into them is kept as
  those separate ops, not fused.
- ``Constant`` and initializers become graph params (those only used as shapes, axes,
  starts/ends or split sizes are folded into attributes); ``Identity`` is elided (its
  output is renamed to its input, graph outputs included).

Anything else raises :class:`CompilerError` naming the op type and the node, and listing
the supported op types.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from compiler.errors import CompilerError
from compiler.graph import Graph, Op

#: ONNX op types :func:`from_onnx` accepts (Erf/Tanh also appear inside GELU patterns).
SUPPORTED_OPS: tuple[str, ...] = (
    "Conv", "Gemm", "MatMul", "Add", "Mul", "Relu", "Softmax", "LayerNormalization",
    "Transpose", "Reshape", "Concat", "Gather", "MaxPool", "AveragePool", "GlobalAveragePool",
    "GlobalMaxPool", "Flatten", "Split", "Slice", "Sub", "Div", "Pow", "Sqrt", "ReduceMean",
    "Constant", "Identity", "Erf", "Tanh",
)
_SIMPLE = {"Add": "add", "Mul": "mul", "Sub": "sub", "Div": "div", "Pow": "pow",
           "Relu": "relu", "Sqrt": "sqrt", "Erf": "erf", "Tanh": "tanh"}
_SQRT2 = math.sqrt(2.0)
_SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)


def load_onnx(model: Any, where: str) -> tuple[Any, str]:
    """``(ModelProto, where)`` from a path or a ``ModelProto``; ``where`` becomes the path.

    Raises :class:`CompilerError` for a missing, unreadable, truncated or corrupt file and for
    anything else than a path or a model."""
    import onnx

    if isinstance(model, str | Path):
        where = str(model)
        path = Path(model)
        if not path.is_file():
            raise CompilerError("no such ONNX file", where=where)
        try:
            model = onnx.load(str(path))
        except Exception as e:  # protobuf DecodeError and friends
            raise CompilerError(f"not a readable ONNX model ({type(e).__name__}: {e}); the "
                                "file may be truncated or corrupt", where=where) from None
        if not model.graph.node and not model.graph.input:
            raise CompilerError("not a readable ONNX model (no graph); the file may be "
                                "truncated or corrupt", where=where)
    elif not isinstance(model, onnx.ModelProto):
        raise CompilerError(f"expected a path or an onnx.ModelProto, found "
                            f"{type(model).__name__}", where=where)
    return model, where


def from_onnx(model: Any, *, dim_values: Mapping[str, int] | None = None,
              name: str | None = None) -> Graph:
    """Load an ONNX model (a path or an ``onnx.ModelProto``) into a validated :class:`Graph`.

    Raises :class:`CompilerError` for unreadable/corrupt files, unsupported ops, symbolic
    dimensions without a value in ``dim_values``, and inconsistent shapes.
    """
    import onnx

    model, where = load_onnx(model, "from_onnx")
    try:
        inferred = onnx.shape_inference.infer_shapes(model)
    except Exception as e:
        raise CompilerError(f"ONNX shape inference failed: {e}", where=where) from None
    return _Importer(inferred, where, dict(dim_values or {}), name).run()


class _Importer:
    def __init__(self, model: Any, where: str, dims: dict[str, int], name: str | None):
        from onnx import numpy_helper

        self.m = model
        self.where = where
        self.dims = dims
        self.og = model.graph
        self.g = Graph(name or self.og.name or "onnx")
        self.consts: dict[str, np.ndarray] = {
            t.name: numpy_helper.to_array(t) for t in self.og.initializer}
        self.info: dict[str, Any] = {}
        for vi in (*self.og.input, *self.og.value_info, *self.og.output):
            self.info.setdefault(vi.name, vi)
        self.alias: dict[str, str] = {}
        self.nodes = list(self.og.node)
        self.names = []
        seen: set[str] = set()
        for i, n in enumerate(self.nodes):
            nm = n.name or f"{n.op_type}_{i}"
            while nm in seen:
                nm = f"{nm}_{i}"
            seen.add(nm)
            self.names.append(nm)
        self.producer = {o: i for i, n in enumerate(self.nodes) for o in n.output}
        self.consumers: dict[str, list[int]] = {}
        for i, n in enumerate(self.nodes):
            for t in n.input:
                self.consumers.setdefault(t, []).append(i)
        self.outputs = {o.name for o in self.og.output}
        self.pending: list[tuple[Op, dict[str, tuple[int, ...]]]] = []

    # ------------------------------------------------------------ helpers
    def err(self, i: int, msg: str) -> CompilerError:
        n = self.nodes[i]
        return CompilerError(msg, where=self.where, key=f"node {self.names[i]!r} ({n.op_type})")

    def r(self, t: str) -> str:
        while t in self.alias:
            t = self.alias[t]
        return t

    def shape(self, t: str, i: int | None = None) -> tuple[int, ...] | None:
        t0 = t
        t = self.r(t)
        if t in self.consts:
            return tuple(int(d) for d in self.consts[t].shape)
        for cand in (t, t0):
            if self.g.has_tensor(cand):
                return self.g.tensor(cand).shape
            vi = self.info.get(cand)
            if vi is not None and vi.type.tensor_type.HasField("shape"):
                out = []
                for d in vi.type.tensor_type.shape.dim:
                    if d.HasField("dim_value"):
                        out.append(int(d.dim_value))
                    elif d.dim_param in self.dims:
                        out.append(int(self.dims[d.dim_param]))
                    else:
                        sym = d.dim_param or "?"
                        raise CompilerError(
                            f"tensor {cand!r} has a symbolic dimension {sym!r}; pass "
                            f"dim_values={{{sym!r}: ...}}", where=self.where,
                            key=None if i is None else f"node {self.names[i]!r}")
                return tuple(out)
        return None

    def dtype(self, t: str) -> str | None:
        from onnx import helper

        t = self.r(t)
        if t in self.consts:
            return str(self.consts[t].dtype)
        vi = self.info.get(t)
        if vi is not None and vi.type.tensor_type.elem_type:
            return str(np.dtype(helper.tensor_dtype_to_np_dtype(vi.type.tensor_type.elem_type)))
        return None

    def const(self, t: str) -> np.ndarray | None:
        return self.consts.get(self.r(t))

    def scalar(self, t: str) -> float | None:
        c = self.const(t)
        return float(c.reshape(-1)[0]) if c is not None and c.size == 1 else None

    def attrs(self, i: int) -> dict[str, Any]:
        from onnx import helper

        return {a.name: helper.get_attribute_value(a) for a in self.nodes[i].attribute}

    def emit(self, i: int, kind: str, inputs: list[str], outputs: list[str] | None = None,
             name: str | None = None, **attrs: object) -> None:
        n = self.nodes[i]
        outs = list(outputs if outputs is not None else n.output)
        shapes = {o: s for o in outs if (s := self.shape(o, i)) is not None}
        op = Op.make(name or self.names[i], kind, [self.r(t) for t in inputs], outs, **attrs)
        self.pending.append((op, shapes))

    # ------------------------------------------------------------ driver
    def run(self) -> Graph:
        from onnx import numpy_helper

        init = set(self.consts)
        for vi in self.og.input:
            if vi.name in init:
                continue
            s = self.shape(vi.name)
            if s is None:
                raise CompilerError(f"graph input {vi.name!r} has no shape", where=self.where)
            self.g.add_input(vi.name, s, self.dtype(vi.name) or "float32")
        for i, n in enumerate(self.nodes):
            if n.op_type not in SUPPORTED_OPS:
                raise self.err(i, f"unsupported ONNX op type {n.op_type!r}; supported op "
                                  f"types are {', '.join(SUPPORTED_OPS)}")
            if n.domain not in ("", "ai.onnx"):
                raise self.err(i, f"op domain {n.domain!r} is not supported (only the "
                                  "default ONNX domain)")
            if n.op_type == "Constant":
                a = self.attrs(i)
                if "value" not in a:
                    raise self.err(i, f"only Constant with a tensor 'value' is supported, "
                                      f"found {sorted(a)}")
                self.consts[n.output[0]] = numpy_helper.to_array(a["value"])
        fused, gelus = self.fuse_gelu()
        for i, n in enumerate(self.nodes):
            if i in gelus:
                act, x, out = gelus[i]
                self.emit(i, "gelu", [x], outputs=[out], name=self.names[act])
                continue
            if i in fused or n.op_type == "Constant":
                continue
            if n.op_type == "Identity":
                self.alias[n.output[0]] = n.input[0]
                continue
            self.convert(i)
        used = {t for op, _ in self.pending for t in op.inputs}
        outs = [self.r(o.name) for o in self.og.output]
        for t in sorted(self.consts):
            if t in used or t in outs:
                c = self.consts[t]
                self.g.add_param(t, tuple(int(d) for d in c.shape), str(c.dtype))
        for op, shapes in self.pending:
            self.g.add_op(op, shapes=shapes, dtype=self.dtype(op.outputs[0]))
        for o in outs:
            self.g.add_output(o)
        try:
            return self.g.validate()
        except CompilerError as e:
            raise CompilerError(str(e), where=self.where) from None

    # ------------------------------------------------------------ conversions
    def convert(self, i: int) -> None:
        n = self.nodes[i]
        t = n.op_type
        a = self.attrs(i)
        ins = list(n.input)
        if t in _SIMPLE:
            self.emit(i, _SIMPLE[t], ins)
        elif t == "Conv":
            self.conv(i, ins, a)
        elif t == "Gemm":
            self.emit(i, "matmul", [x for x in ins if x], transpose_a=bool(a.get("transA", 0)),
                      transpose_b=bool(a.get("transB", 0)), alpha=float(a.get("alpha", 1.0)),
                      beta=float(a.get("beta", 1.0)))
        elif t == "MatMul":
            sb = self.need_shape(i, ins[1])
            if len(sb) == 1:
                raise self.err(i, f"MatMul with a 1-D second operand {list(sb)} is not "
                                  "supported")
            self.emit(i, "matmul" if len(sb) == 2 else "bmm", ins)
        elif t == "Softmax":
            rank = len(self.need_shape(i, ins[0]))
            default = -1 if self.opset() >= 13 else 1
            self.emit(i, "softmax", ins, axis=int(a.get("axis", default)) % rank)
        elif t == "LayerNormalization":
            self.emit(i, "layernorm", [x for x in ins if x], outputs=[n.output[0]],
                      axis=int(a.get("axis", -1)), epsilon=float(a.get("epsilon", 1e-5)))
            if len([o for o in n.output if o]) > 1:
                raise self.err(i, "LayerNormalization with Mean/InvStdDev outputs is not "
                                  "supported")
        elif t == "Transpose":
            rank = len(self.need_shape(i, ins[0]))
            self.emit(i, "transpose", ins[:1],
                      perm=tuple(a.get("perm", reversed(range(rank)))))
        elif t in ("Reshape", "Flatten"):
            out = self.shape(n.output[0], i)
            if out is None:
                s = self.need_shape(i, ins[0])
                if t == "Flatten":
                    ax = int(a.get("axis", 1)) % (len(s) + 1)
                    out = (math.prod(s[:ax]), math.prod(s[ax:]))
                else:
                    out = self.reshape_target(i, s, ins[1], bool(a.get("allowzero", 0)))
            self.emit(i, "reshape", ins[:1], shape=tuple(out))
        elif t == "Concat":
            self.emit(i, "concat", ins, axis=int(a["axis"]))
        elif t == "Gather":
            self.emit(i, "gather", ins, axis=int(a.get("axis", 0)))
        elif t in ("MaxPool", "AveragePool"):
            self.pool(i, ins, a, "max" if t == "MaxPool" else "avg")
        elif t in ("GlobalAveragePool", "GlobalMaxPool"):
            self.emit(i, "pool", ins, mode="global_avg" if "Average" in t else "global_max")
        elif t == "Split":
            self.split(i, ins, a)
        elif t == "Slice":
            self.slice(i, ins, a)
        elif t == "ReduceMean":
            axes = a.get("axes")
            if axes is None and len(ins) > 1 and ins[1]:
                axes = self.need_const(i, ins[1], "axes").tolist()
            rank = len(self.need_shape(i, ins[0]))
            if axes is None:
                if a.get("noop_with_empty_axes", 0):
                    raise self.err(i, "ReduceMean with noop_with_empty_axes is not supported")
                axes = list(range(rank))
            self.emit(i, "reduce_mean", ins[:1], axes=tuple(int(x) % rank for x in axes),
                      keepdims=bool(a.get("keepdims", 1)))
        else:  # pragma: no cover - SUPPORTED_OPS and this dispatch are kept in step
            raise self.err(i, f"op type {t!r} has no conversion")

    def opset(self) -> int:
        for o in self.m.opset_import:
            if o.domain in ("", "ai.onnx"):
                return int(o.version)
        return 1

    def need_shape(self, i: int, t: str) -> tuple[int, ...]:
        s = self.shape(t, i)
        if s is None:
            raise self.err(i, f"the shape of tensor {t!r} is unknown after shape inference")
        return s

    def need_const(self, i: int, t: str, what: str) -> np.ndarray:
        c = self.const(t)
        if c is None:
            raise self.err(i, f"{what} input {t!r} must be a constant (an initializer or "
                              "Constant)")
        return c

    def reshape_target(self, i: int, s: tuple[int, ...], t: str, allowzero: bool) -> tuple:
        tgt = [int(x) for x in self.need_const(i, t, "shape")]
        out = [s[j] if (d == 0 and not allowzero) else d for j, d in enumerate(tgt)]
        if -1 in out:
            known = math.prod(d for d in out if d != -1)
            out[out.index(-1)] = math.prod(s) // max(known, 1)
        return tuple(out)

    def conv(self, i: int, ins: list[str], a: dict[str, Any]) -> None:
        x, w = self.need_shape(i, ins[0]), self.need_shape(i, ins[1])
        if len(x) != 4:
            raise self.err(i, f"only 2-D convolutions (NCHW input) are supported, found "
                              f"input shape {list(x)}")
        group = int(a.get("group", 1))
        strides = tuple(a.get("strides", (1, 1)))
        dil = tuple(a.get("dilations", (1, 1)))
        pads = self.pads(i, a, x[2:], tuple(w[2:]), strides, dil)
        kind = "depthwise_conv2d" if group == x[1] and group > 1 else "conv2d"
        self.emit(i, kind, [t for t in ins if t], strides=strides, dilations=dil,
                  pads=pads, group=group)

    def pads(self, i: int, a: dict[str, Any], hw: tuple[int, ...], k: tuple[int, ...],
             strides: tuple, dil: tuple) -> tuple[int, int, int, int]:
        auto = a.get("auto_pad", b"NOTSET")
        auto = auto.decode() if isinstance(auto, bytes) else str(auto)
        if auto in ("NOTSET", "VALID"):
            p = tuple(a.get("pads", (0, 0, 0, 0))) if auto == "NOTSET" else (0, 0, 0, 0)
            return (int(p[0]), int(p[1]), int(p[2]), int(p[3]))
        if auto not in ("SAME_UPPER", "SAME_LOWER"):
            raise self.err(i, f"auto_pad {auto!r} is not supported")
        out = []
        for size, kk, s, d in zip(hw, k, strides, dil, strict=True):
            total = max(0, (-(-size // s) - 1) * s + (kk - 1) * d + 1 - size)
            lo = total // 2 if auto == "SAME_UPPER" else total - total // 2
            out.append((lo, total - lo))
        return (out[0][0], out[1][0], out[0][1], out[1][1])

    def pool(self, i: int, ins: list[str], a: dict[str, Any], mode: str) -> None:
        x = self.need_shape(i, ins[0])
        if len(x) != 4:
            raise self.err(i, f"only 2-D pooling (NCHW input) is supported, found {list(x)}")
        k = tuple(a["kernel_shape"])
        strides = tuple(a.get("strides", (1, 1)))
        if tuple(a.get("dilations", (1, 1))) != (1, 1):
            raise self.err(i, "dilated pooling is not supported")
        pads = self.pads(i, a, x[2:], k, strides, (1, 1))
        self.emit(i, "pool", ins[:1], outputs=[self.nodes[i].output[0]], mode=mode,
                  kernel=k, strides=strides, pads=pads, ceil_mode=bool(a.get("ceil_mode", 0)))

    def split(self, i: int, ins: list[str], a: dict[str, Any]) -> None:
        n = self.nodes[i]
        s = self.need_shape(i, ins[0])
        axis = int(a.get("axis", 0)) % len(s)
        if "split" in a:
            sizes = [int(v) for v in a["split"]]
        elif len(ins) > 1 and ins[1]:
            sizes = [int(v) for v in self.need_const(i, ins[1], "split")]
        else:
            parts = len(n.output)
            chunk = -(-s[axis] // parts)
            sizes = [min(chunk, s[axis] - j * chunk) for j in range(parts)]
        self.emit(i, "split", ins[:1], axis=axis, sizes=tuple(sizes))

    def slice(self, i: int, ins: list[str], a: dict[str, Any]) -> None:
        s = self.need_shape(i, ins[0])
        if "starts" in a:  # opset < 10: attributes
            starts, ends = list(a["starts"]), list(a["ends"])
            axes = list(a.get("axes", range(len(starts))))
            steps = [1] * len(starts)
        else:
            starts = self.need_const(i, ins[1], "starts").tolist()
            ends = self.need_const(i, ins[2], "ends").tolist()
            axes = (self.need_const(i, ins[3], "axes").tolist() if len(ins) > 3 and ins[3]
                    else list(range(len(starts))))
            steps = (self.need_const(i, ins[4], "steps").tolist() if len(ins) > 4 and ins[4]
                     else [1] * len(starts))
        big = 2**62
        clamp = [max(-big, min(big, int(v))) for v in ends]
        self.emit(i, "slice", ins[:1], starts=tuple(int(v) for v in starts),
                  ends=tuple(clamp), axes=tuple(int(x) % len(s) for x in axes),
                  steps=tuple(int(v) for v in steps))

    # ------------------------------------------------------------ GELU fusion
    def only_consumer(self, t: str) -> int | None:
        c = self.consumers.get(t, [])
        return c[0] if len(c) == 1 and t not in self.outputs else None

    def node_of(self, t: str, op_type: str) -> int | None:
        i = self.producer.get(t)
        return i if i is not None and self.nodes[i].op_type == op_type else None

    def other(self, i: int, t: str) -> str | None:
        ins = list(self.nodes[i].input)
        if len(ins) != 2 or t not in ins:
            return None
        return ins[1] if ins[0] == t else ins[0]

    def is_const(self, t: str, value: float, rel: float = 1e-3) -> bool:
        v = self.scalar(t)
        return v is not None and math.isclose(v, value, rel_tol=rel)

    def gelu_input(self, i: int) -> tuple[str, list[int]] | None:
        """For an Erf/Tanh node, ``(x, nodes before it)`` when its argument is the GELU one."""
        n = self.nodes[i]
        pre = self.producer.get(n.input[0])
        if pre is None:
            return None
        p = self.nodes[pre]
        if n.op_type == "Erf":
            if p.op_type == "Div" and self.is_const(p.input[1], _SQRT2):
                return p.input[0], [pre]
            if p.op_type == "Mul":
                for x, c in ((p.input[0], p.input[1]), (p.input[1], p.input[0])):
                    if self.is_const(c, 1 / _SQRT2):
                        return x, [pre]
            return None
        if p.op_type != "Mul":  # Tanh: Mul(Add(x, Mul(Pow(x, 3), 0.044715)), sqrt(2/pi))
            return None
        for inner, c in ((p.input[0], p.input[1]), (p.input[1], p.input[0])):
            if not self.is_const(c, _SQRT_2_OVER_PI):
                continue
            add = self.node_of(inner, "Add")
            if add is None:
                continue
            for x, cube_mul in ((self.nodes[add].input[0], self.nodes[add].input[1]),
                                (self.nodes[add].input[1], self.nodes[add].input[0])):
                m = self.node_of(cube_mul, "Mul")
                if m is None:
                    continue
                for cube, c2 in ((self.nodes[m].input[0], self.nodes[m].input[1]),
                                 (self.nodes[m].input[1], self.nodes[m].input[0])):
                    pw = self.node_of(cube, "Pow")
                    if (self.is_const(c2, 0.044715) and pw is not None
                            and self.nodes[pw].input[0] == x
                            and self.is_const(self.nodes[pw].input[1], 3.0)):
                        return x, [pre, add, m, pw]
        return None

    def fuse_gelu(self) -> tuple[set[int], dict[int, tuple[int, str, str]]]:
        """Find GELU subgraphs: (all their nodes, last node -> (Erf/Tanh node, x, output))."""
        fused: set[int] = set()
        at: dict[int, tuple[int, str, str]] = {}
        for i, n in enumerate(self.nodes):
            if n.op_type not in ("Erf", "Tanh"):
                continue
            found = self.gelu_input(i)
            if found is None:
                continue
            x, before = found
            a = self.only_consumer(n.output[0])
            if a is None or self.nodes[a].op_type != "Add":
                continue
            if not self.is_const(self.other(a, n.output[0]) or "", 1.0):
                continue
            chain: list[int] = []
            has_x = has_half = False
            t = self.nodes[a].output[0]
            while not (has_x and has_half):
                m = self.only_consumer(t)
                if m is None or self.nodes[m].op_type != "Mul":
                    break
                o = self.other(m, t) or ""
                h = self.node_of(o, "Mul")
                if o == x and not has_x:
                    has_x = True
                elif self.is_const(o, 0.5) and not has_half:
                    has_half = True
                elif (h is not None and not has_x and not has_half
                      and x in self.nodes[h].input
                      and self.is_const(self.other(h, x) or "", 0.5)
                      and self.only_consumer(self.nodes[h].output[0]) == m):
                    has_x = has_half = True
                    chain.append(h)
                else:
                    break
                chain.append(m)
                t = self.nodes[m].output[0]
            if not (has_x and has_half):
                continue
            group = [*before, i, a, *chain]
            inner = {o for j in group for o in self.nodes[j].output} - {t}
            if any(o in self.outputs or any(c not in group for c in self.consumers.get(o, []))
                   for o in inner):
                continue
            fused.update(group)
            at[max(group)] = (i, x, t)
        return fused, at
