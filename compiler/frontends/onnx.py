"""ONNX front end: ``from_onnx(path_or_model) -> Graph``.

The model first goes through :func:`compiler.frontends.onnx_fold.fold_model`: local
functions inlined, symbolic input dimensions bound from ``dim_values`` (e.g.
``{"batch": 1}``), shapes inferred with data propagation, and every constant subgraph (the
``Shape``/``Gather``/``Concat``/``ConstantOfShape``/``Expand``/``Where`` plumbing exporters
write for static shapes and masks) evaluated once by ONNX's reference implementation.  A
path loads its external data (``model.onnx`` + ``model.onnx.data``) from beside it.  Then:

- ``Conv`` -> ``conv2d`` (``depthwise_conv2d`` when ``group`` equals the input channels);
  ``Gemm`` -> ``matmul`` (``transA``/``transB`` kept, bias ``C`` as a third input, ``alpha``
  and ``beta`` recorded); ``MatMul`` -> ``matmul`` with a 2-D second operand, else ``bmm``.
- ``Add Mul Relu Softmax LayerNormalization Transpose Concat Gather Split Slice`` -> the
  kind of the same name; ``Reshape Flatten Squeeze Unsqueeze`` -> ``reshape`` (the shape
  inferred); ``MaxPool``/``AveragePool``/``GlobalAveragePool``/``GlobalMaxPool`` -> ``pool``;
  ``Clip`` (ReLU6) -> ``clip``; ``Sigmoid HardSigmoid HardSwish`` -> ``sigmoid hardsigmoid
  hardswish``; ``Gelu`` -> ``gelu``.
- Chains recognised as one op (:mod:`compiler.frontends.onnx_patterns`): GELU in its Erf
  and Tanh forms, SiLU, HardSwish, LayerNorm and RMSNorm decompositions.
- ``Sub Div Pow Sqrt ReduceMean Erf Tanh`` are host-side ops of the same names.
- ``Identity``, ``Dropout`` (inference) and a ``Cast`` to the type it already has are
  elided (the output is renamed to its input, graph outputs included).
- Every other op of a standard ONNX domain (a mask ``Where``, ``Cast``, ``Expand``,
  ``Equal``, ``Neg``, ``Exp`` ... that reads a graph input) becomes a ``host`` op with its
  inferred output shapes; it runs through ``onnx.reference`` on the host.
- Initializers and folded constants become graph params with their values
  (``Graph.values``), so a compiled model runs with the model's own weights.

Only ops that cannot be given a static shape, ops of other domains, and MAC ops the
accelerator cannot express raise :class:`CompilerError`, naming the node and its op type.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from compiler.errors import CompilerError
from compiler.frontends.onnx_fold import fold_model
from compiler.frontends.onnx_patterns import NodeView, find_patterns
from compiler.graph import Graph, Op

#: ONNX op types :func:`from_onnx` maps to a graph kind of their own; any other op of the
#: default domain becomes a ``host`` op (see the module docstring).
SUPPORTED_OPS: tuple[str, ...] = (
    "Conv", "Gemm", "MatMul", "Add", "Mul", "Relu", "Softmax", "LayerNormalization",
    "Transpose", "Reshape", "Concat", "Gather", "MaxPool", "AveragePool", "GlobalAveragePool",
    "GlobalMaxPool", "Flatten", "Squeeze", "Unsqueeze", "Split", "Slice", "Sub", "Div",
    "Pow", "Sqrt", "ReduceMean", "Constant", "Identity", "Dropout", "Erf", "Tanh", "Clip",
    "Sigmoid", "HardSigmoid", "HardSwish", "Gelu",
)
_SIMPLE = {"Add": "add", "Mul": "mul", "Sub": "sub", "Div": "div", "Pow": "pow",
           "Relu": "relu", "Sqrt": "sqrt", "Erf": "erf", "Tanh": "tanh",
           "Sigmoid": "sigmoid", "HardSwish": "hardswish"}
_RESHAPES = ("Reshape", "Flatten", "Squeeze", "Unsqueeze")
#: ONNX ops made of multiply-accumulates that no target lowers: an error, not a host op
#: (a host op would hide their MACs from the report)
UNLOWERED_MAC_OPS: tuple[str, ...] = (
    "LSTM", "GRU", "RNN", "ConvTranspose", "ConvInteger", "MatMulInteger", "QLinearConv",
    "QLinearMatMul", "Einsum", "DeformConv", "Attention",
)


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
            model = onnx.load(str(path), load_external_data=False)
            _load_external_data(model, path, where)
        except CompilerError:
            raise
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


def _load_external_data(model: Any, path: Path, where: str) -> None:
    """Read the weights a model keeps in files beside it (``model.onnx.data``, as the
    ``torch.export``-based exporter writes big models); a missing one is one error."""
    from onnx import external_data_helper

    consts = [a.t for n in model.graph.node for a in n.attribute if a.HasField("t")]
    tensors = [t for t in (*model.graph.initializer, *consts)
               if external_data_helper.uses_external_data(t)]
    for t in tensors:
        loc = {e.key: e.value for e in t.external_data}.get("location", "")
        if not (path.parent / loc).is_file():
            raise CompilerError(f"the external data file {loc!r} of tensor {t.name!r} is "
                                f"missing; keep it beside the .onnx file", where=where)
    if tensors:
        external_data_helper.load_external_data_for_model(model, str(path.parent))


def from_onnx(model: Any, *, dim_values: Mapping[str, int] | None = None,
              name: str | None = None) -> Graph:
    """Load an ONNX model (a path or an ``onnx.ModelProto``) into a validated :class:`Graph`.

    Raises :class:`CompilerError` for unreadable/corrupt files, unsupported ops, symbolic
    dimensions without a value in ``dim_values``, and inconsistent shapes.
    """
    model, where = load_onnx(model, "from_onnx")
    try:
        return _Importer(fold_model(model, dim_values, where), where, dict(dim_values or {}),
                         name).run()
    except CompilerError as e:  # the graph's own checks: name the file too
        if e.where and str(e.where).startswith(where):
            raise
        raise CompilerError(e.detail, where=f"{where}: {e.where}" if e.where else where,
                            key=e.key) from None


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
                            f"tensor {cand!r} has a symbolic dimension {sym!r}; give it a size: "
                            f"--dim {sym}=N (Python: dim_values={{{sym!r}: N}})", where=self.where,
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
            if n.domain not in ("", "ai.onnx"):
                raise self.err(i, f"op domain {n.domain!r} is not supported (only the "
                                  "default ONNX domain)")
            if n.op_type == "Constant":  # left by folding only when the reference cannot
                a = self.attrs(i)
                if "value" not in a:
                    raise self.err(i, f"only Constant with a tensor 'value' is supported, "
                                      f"found {sorted(a)}")
                self.consts[n.output[0]] = numpy_helper.to_array(a["value"])
        ranks = {t: len(s) for t in self.info if (s := self.shape_or_none(t)) is not None}
        view = NodeView(self.nodes, self.consts, self.outputs, self.opset())
        fused, at = find_patterns(view, ranks)
        for i, n in enumerate(self.nodes):
            if i in at:
                f = at[i]
                self.emit(i, f.kind, list(f.inputs), outputs=[f.output],
                          name=self.names[f.anchor], **dict(f.attrs))
                continue
            if i in fused or n.op_type == "Constant":
                continue
            if self.elided(i):
                self.alias[n.output[0]] = n.input[0]
                continue
            self.convert(i)
        used = {t for op, _ in self.pending for t in op.inputs}
        outs = [self.r(o.name) for o in self.og.output]
        for t in sorted(self.consts):
            if t in used or t in outs:
                c = self.consts[t]
                self.g.add_param(t, tuple(int(d) for d in c.shape), str(c.dtype), c)
        for op, shapes in self.pending:
            self.g.add_op(op, shapes=shapes, dtype=self.dtype(op.outputs[0]))
        for o in outs:
            self.g.add_output(o)
        try:
            return self.g.validate()
        except CompilerError as e:
            raise CompilerError(str(e), where=self.where) from None

    def shape_or_none(self, t: str) -> tuple[int, ...] | None:
        try:
            return self.shape(t)
        except CompilerError:
            return None

    def elided(self, i: int) -> bool:
        """``Identity``, inference ``Dropout`` and a ``Cast`` to its input's own type."""
        n = self.nodes[i]
        if n.op_type == "Identity":
            return True
        if n.op_type == "Dropout":
            if len(n.input) > 2 and n.input[2]:
                c = self.const(n.input[2])  # training_mode
                if c is None or bool(np.any(c)):
                    return False
            return not any(o and (o in self.consumers or o in self.outputs)
                           for o in n.output[1:])
        if n.op_type == "Cast":
            src, dst = self.dtype(n.input[0]), self.dtype(n.output[0])
            return src is not None and src == dst
        return False

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
            axis = int(a.get("axis", default)) % rank
            if self.opset() < 13 and axis != rank - 1:  # softmax over the flattened tail
                self.host(i)
            else:
                self.emit(i, "softmax", ins, axis=axis)
        elif t == "LayerNormalization":
            if any(o and (o in self.consumers or o in self.outputs) for o in n.output[1:]):
                self.host(i)  # Mean/InvStdDev outputs are read: keep the op whole
                return
            self.emit(i, "layernorm", [x for x in ins if x], outputs=[n.output[0]],
                      axis=int(a.get("axis", -1)), epsilon=float(a.get("epsilon", 1e-5)))
        elif t == "Transpose":
            rank = len(self.need_shape(i, ins[0]))
            self.emit(i, "transpose", ins[:1],
                      perm=tuple(a.get("perm", reversed(range(rank)))))
        elif t in _RESHAPES:
            self.emit(i, "reshape", ins[:1], shape=self.need_shape(i, n.output[0]))
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
            self.reduce_mean(i, ins, a)
        elif t == "Clip":
            self.clip(i, ins, a)
        elif t == "HardSigmoid":
            self.emit(i, "hardsigmoid", ins, alpha=float(a.get("alpha", 0.2)),
                      beta=float(a.get("beta", 0.5)))
        elif t == "Gelu":
            approx = a.get("approximate", b"none")
            approx = approx.decode() if isinstance(approx, bytes) else str(approx)
            self.emit(i, "gelu", ins, **({"approximate": "tanh"} if approx == "tanh" else {}))
        elif t in UNLOWERED_MAC_OPS:
            raise self.err(i, f"{t!r} is a multiply-accumulate op no target can express; ops "
                              f"lowered to the accelerator are Conv (2-D), Gemm and MatMul")
        else:
            self.host(i)

    def host(self, i: int) -> None:
        """Any other op: a ``host`` op carrying the ONNX node, run by ``onnx.reference``."""
        n = self.nodes[i]
        outs = [o for o in n.output if o]
        shapes = []
        for o in outs:
            s = self.shape_or_none(o)
            if s is None:
                raise self.err(i, f"the shape of output {o!r} cannot be inferred statically, "
                                  "so the op cannot run on the host")
            shapes.append(s)
        self.emit(i, "host", [x for x in n.input if x], outputs=outs, op_type=n.op_type,
                  onnx=n.SerializeToString(), opset=self.opset(), out_shapes=tuple(shapes))

    def reduce_mean(self, i: int, ins: list[str], a: dict[str, Any]) -> None:
        axes = a.get("axes")
        if axes is None and len(ins) > 1 and ins[1]:
            c = self.const(ins[1])
            if c is None:
                self.host(i)
                return
            axes = c.tolist()
        rank = len(self.need_shape(i, ins[0]))
        if axes is None or len(axes) == 0:
            if a.get("noop_with_empty_axes", 0):
                self.host(i)
                return
            axes = list(range(rank))
        self.emit(i, "reduce_mean", ins[:1], axes=tuple(int(x) % rank for x in axes),
                  keepdims=bool(a.get("keepdims", 1)))

    def clip(self, i: int, ins: list[str], a: dict[str, Any]) -> None:
        """``Clip`` with constant bounds (attributes before opset 11, inputs after)."""
        lo, hi = a.get("min"), a.get("max")
        for j, key in ((1, "lo"), (2, "hi")):
            if len(ins) > j and ins[j]:
                c = self.const(ins[j])
                if c is None or c.size != 1:
                    self.host(i)  # bounds computed at run time
                    return
                if key == "lo":
                    lo = float(c.reshape(-1)[0])
                else:
                    hi = float(c.reshape(-1)[0])
        self.emit(i, "clip", ins[:1], min=-math.inf if lo is None else float(lo),
                  max=math.inf if hi is None else float(hi))

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

    def conv(self, i: int, ins: list[str], a: dict[str, Any]) -> None:
        """``Conv``: 2-D as it is; 1-D as a 2-D convolution over a height of one (reshapes
        around it); grouped (neither plain nor depthwise) as one convolution per group on
        channel slices, concatenated — the MACs and data of each group, as a library with
        no grouped kernel runs it."""
        x = self.need_shape(i, ins[0])
        bias = ins[2] if len(ins) > 2 and ins[2] else None
        if len(x) == 4:
            self.conv2d(i, ins[0], ins[1], bias, a, self.nodes[i].output[0])
        elif len(x) == 3:
            self.conv1d(i, ins[0], ins[1], bias, a)
        else:
            raise self.err(i, f"only 1-D and 2-D convolutions are supported, found input "
                              f"shape {list(x)}")

    def conv2d(self, i: int, xt: str, wt: str, bias: str | None, a: dict[str, Any],
               out: str) -> None:
        x, w = self.pending_shape(xt), self.pending_shape(wt)
        group = int(a.get("group", 1))
        strides = tuple(a.get("strides", (1, 1)))
        dil = tuple(a.get("dilations", (1, 1)))
        pads = self.pads(i, a, x[2:], tuple(w[2:]), strides, dil)
        geo = {"strides": strides, "dilations": dil, "pads": pads}
        base = self.names[i] if out == self.nodes[i].output[0] else out
        if group == 1 or (group == x[1] and w[0] == x[1]):
            kind = "conv2d" if group == 1 else "depthwise_conv2d"
            self.emit(i, kind, [xt, wt, *([bias] if bias else [])], outputs=[out],
                      name=base, group=group, **geo)
            return
        if x[1] % group or w[0] % group:
            raise self.err(i, f"group {group} does not divide {x[1]} input and {w[0]} output "
                              "channels")
        cg, mg = x[1] // group, w[0] // group
        parts = []
        for g in range(group):
            nm = f"{base}/group{g}"
            xs = self.channel_slice(i, xt, 1, g * cg, cg, f"{nm}/x")
            ws = self.channel_slice(i, wt, 0, g * mg, mg, f"{nm}/w")
            extra = [self.channel_slice(i, bias, 0, g * mg, mg, f"{nm}/b")] if bias else []
            parts.append(f"{nm}/y")
            self.emit(i, "conv2d", [xs, ws, *extra], outputs=[parts[-1]], name=nm, group=1,
                      **geo)
        self.emit(i, "concat", parts, outputs=[out], name=f"{base}/concat", axis=1)

    def channel_slice(self, i: int, t: str, axis: int, start: int, size: int,
                      name: str) -> str:
        """``t[start:start+size]`` along ``axis``: a sliced constant (a new param) when ``t``
        is one, else a ``slice`` op."""
        c = self.const(t)
        if c is not None:
            self.consts[name] = np.take(c, np.arange(start, start + size), axis=axis)
        else:
            self.emit(i, "slice", [t], outputs=[name], name=name, starts=(start,),
                      ends=(start + size,), axes=(axis,), steps=(1,))
        return name

    def conv1d(self, i: int, xt: str, wt: str, bias: str | None, a: dict[str, Any]) -> None:
        """A 1-D ``Conv`` as a 2-D one over a height of one."""
        nm, out = self.names[i], self.nodes[i].output[0]
        x, w = self.need_shape(i, xt), self.need_shape(i, wt)
        a2 = {k: (1, *v) for k, v in a.items() if k in ("strides", "dilations", "kernel_shape")}
        a2 |= {k: v for k, v in a.items() if k in ("group", "auto_pad")}
        if "pads" in a:
            a2["pads"] = (0, a["pads"][0], 0, a["pads"][1])
        x4, w4, y4 = f"{nm}/as2d", f"{nm}/w2d", f"{nm}/conv2d"
        self.emit(i, "reshape", [xt], outputs=[x4], name=x4, shape=(x[0], x[1], 1, x[2]))
        c = self.const(wt)
        if c is not None:
            self.consts[w4] = c.reshape(w[0], w[1], 1, w[2])
        else:
            self.emit(i, "reshape", [wt], outputs=[w4], name=w4, shape=(w[0], w[1], 1, w[2]))
        self.conv2d(i, x4, w4, bias, a2, y4)
        self.emit(i, "reshape", [y4], outputs=[out], name=f"{nm}/as1d",
                  shape=self.need_shape(i, out))

    def pending_shape(self, t: str) -> tuple[int, ...]:
        """The shape of a tensor this import made (or a model tensor)."""
        if t in self.consts:
            return tuple(self.consts[t].shape)
        for op, shapes in self.pending:
            if t in op.outputs:
                return tuple(shapes.get(t) or op.attr("shape"))
        return self.need_shape(self.producer.get(t, 0), t)

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
