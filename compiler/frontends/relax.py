"""TVM Relax front end: ``from_relax(mod) -> Graph`` (TVM is imported lazily, inside calls).

Reads one Relax function of an ``IRModule`` (``"main"`` by default) *before* legalization:
its bindings (dataflow blocks or not) are walked in order and each ``relax.*`` call becomes
one op of the :class:`~compiler.graph.Graph`.  Shapes and dtypes come from the bound
variables' types (``var.ty``), so they must be static: symbolic dimensions need values in
``dim_values`` (e.g. ``{"n": 1}``; they are bound with ``Function.bind_symbolic_vars``).

Function parameters: the first ``num_input`` (the function attribute TVM's importers set;
all of them when it is absent) are graph inputs, the rest graph params (weights, as with
``keep_params_in_input=True``).  Every ``relax.Constant`` is a param too (named
``const<k>``).  Mapping of Relax ops to graph kinds:

- ``relax.matmul`` -> ``matmul`` with a 2-D second operand (as the ONNX front end does),
  else ``bmm``; a second operand that is ``permute_dims`` of a 2-D param/constant (how
  ``Gemm(transB=1)`` and ``relax.op.linear`` come out) is folded into ``transpose_b=True``.
- ``relax.nn.conv2d`` -> ``conv2d`` (``depthwise_conv2d`` when ``groups`` equals the input
  channels); NCHW data and OIHW kernels only.
- ``add multiply subtract divide power sqrt erf tanh`` -> ``add mul sub div pow sqrt erf
  tanh``; ``nn.relu``, ``nn.gelu``/``nn.gelu_tanh`` -> ``relu``/``gelu``; ``nn.softmax``,
  ``nn.layer_norm`` (one axis) -> ``softmax``/``layernorm``; ``permute_dims`` ->
  ``transpose``; ``reshape flatten expand_dims squeeze`` -> ``reshape``; ``concat``;
  ``take`` -> ``gather``; ``nn.max_pool2d``/``nn.avg_pool2d``/``nn.adaptive_avg_pool2d``
  -> ``pool``; ``split`` (outputs ``<var>_0``, ``<var>_1``, ... read through
  ``TupleGetItem``); ``strided_slice`` -> ``slice``; ``mean`` -> ``reduce_mean``.
- ``astype`` to the type a tensor already has is elided; a real conversion is a host op.
- Decomposed GELUs (how TVM's ONNX importer brings in an exported one) are fused into one
  ``gelu`` op, the same Erf and Tanh patterns as the ONNX front end; an ``erf``/``tanh``
  outside them stays a host op.  Weights and constants no op reads are dropped.

Any other op with a static tensor result (a mask ``where``, ``less``, ``isnan``,
``broadcast_to`` of an input ...) becomes a ``host`` op with that shape, priced as host ops
are.  Multiply-accumulate ops no target expresses (``conv1d``, ``conv2d_transpose``,
``einsum``, ``nn.attention``), ops whose result is not a tensor (``shape_of`` of a
non-constant shape), ``call_tir``/``call_dps_packed`` and calls to ``PrimFunc``s (a module
after ``LegalizeOps``) raise an error naming the op and the binding.

:func:`from_onnx_via_relax` imports an ONNX model through TVM's own ONNX importer
(``tvm.relax.frontend.onnx.from_onnx(model, keep_params_in_input=False)``), after the
same folding of constant subgraphs as our ONNX reader
(:func:`compiler.frontends.onnx_fold.fold_model`), and then reads the Relax module with
:func:`from_relax` (``mapspace compile --frontend relax``).
"""

from __future__ import annotations

import math
import re
import sys
from collections.abc import Mapping
from typing import Any

from compiler.errors import CompilerError
from compiler.frontends.onnx import load_onnx
from compiler.frontends.onnx_fold import fold_model
from compiler.graph import Graph, Op, infer_shapes
from compiler.passes.patterns import ExprNode, ExprView, match_gelu

#: Relax ops :func:`from_relax` accepts.
SUPPORTED_OPS: tuple[str, ...] = (
    "relax.matmul", "relax.nn.conv2d", "relax.add", "relax.multiply", "relax.subtract",
    "relax.divide", "relax.power", "relax.sqrt", "relax.erf", "relax.tanh", "relax.nn.relu",
    "relax.nn.gelu", "relax.nn.gelu_tanh", "relax.nn.softmax", "relax.nn.layer_norm",
    "relax.permute_dims", "relax.reshape", "relax.flatten", "relax.expand_dims",
    "relax.squeeze", "relax.concat", "relax.take", "relax.nn.max_pool2d",
    "relax.nn.avg_pool2d", "relax.nn.adaptive_avg_pool2d", "relax.split",
    "relax.strided_slice", "relax.mean", "relax.astype", "relax.nn.conv1d",
)
_SIMPLE = {"relax.add": "add", "relax.multiply": "mul", "relax.subtract": "sub",
           "relax.divide": "div", "relax.power": "pow", "relax.sqrt": "sqrt",
           "relax.erf": "erf", "relax.tanh": "tanh", "relax.nn.relu": "relu",
           "relax.nn.gelu": "gelu"}
_RESHAPES = ("relax.reshape", "relax.flatten", "relax.expand_dims", "relax.squeeze")
_UNLOWERED_MAC_OPS = ("relax.nn.conv3d", "relax.nn.conv2d_transpose",
                      "relax.nn.conv1d_transpose", "relax.einsum",
                      "relax.nn.attention", "relax.nn.attention_bias")
_MAC_NAME = re.compile(r"matmul|conv|dense|einsum", re.IGNORECASE)
_LOWERED = ("relax.call_tir", "relax.call_tir_inplace", "relax.call_tir_with_grad",
            "relax.call_dps_packed", "relax.call_pure_packed", "relax.call_packed")
_BEFORE = ("pass the module before legalization (before relax.transform.LegalizeOps / "
           "FuseTIR), e.g. straight from a front end or BlockBuilder")


def is_ir_module(obj: object) -> bool:
    """Whether ``obj`` is a ``tvm.IRModule`` (without importing TVM: an IRModule object can
    only exist when ``tvm`` has been imported already)."""
    tvm = sys.modules.get("tvm")
    ir_module = getattr(tvm, "IRModule", None) if tvm is not None else None
    return ir_module is not None and isinstance(obj, ir_module)


def _import_tvm(where: str) -> Any:
    try:
        import tvm
        from tvm import relax  # noqa: F401
    except ImportError as e:
        raise CompilerError(f"the Relax front end needs Apache TVM (pip install "
                            f"apache-tvm==0.27.0.post1): {e}", where=where) from None
    return tvm


def from_relax(mod: Any, *, func: str = "main", name: str | None = None,
               dim_values: Mapping[str, int] | None = None,
               values: dict[str, Any] | None = None) -> Graph:
    """Read function ``func`` of the Relax ``IRModule`` ``mod`` into a validated
    :class:`Graph` (named ``name``, else ``func``).

    ``values``, when given, is filled with the numpy value of every constant that became a
    graph param (e.g. for :func:`compiler.execute.run_graph`).

    Raises :class:`CompilerError` for a missing function, unsupported or already-lowered
    ops, symbolic dimensions without a value in ``dim_values``, and inconsistent shapes.
    """
    where = "from_relax"
    tvm = _import_tvm(where)
    from tvm import relax

    if not isinstance(mod, tvm.IRModule):
        raise CompilerError(f"expected a tvm.IRModule, found {type(mod).__name__}",
                            where=where)
    names = [gv.name_hint for gv in mod.get_global_vars()]
    if func not in names:
        raise CompilerError(f"the module has no function {func!r} (functions: "
                            f"{', '.join(sorted(names)) or 'none'})", where=where, key="func")
    f = mod[func]
    if not isinstance(f, relax.Function):
        raise CompilerError(f"{func!r} is a {type(f).__name__}, not a Relax function; "
                            f"{_BEFORE}", where=where, key="func")
    dims = {k: int(v) for k, v in (dim_values or {}).items()}
    if dims:
        have = {v.name for v in relax.analysis.defined_symbolic_vars(f)}
        bind = {k: v for k, v in dims.items() if k in have}
        if bind:
            f = f.bind_symbolic_vars(bind)
    reader = _Reader(mod, f, func, name or func, where)
    g = reader.run()
    g.values.update({nm: c.value.numpy() for c, nm in reader.consts if nm in g.params})
    g.values.update({nm: v for nm, v in reader.extra.items() if nm in g.params})
    if values is not None:
        values.update(g.values)
    return g


def from_onnx_via_relax(model: Any, *, dim_values: Mapping[str, int] | None = None,
                        name: str | None = None) -> Graph:
    """An ONNX model (a path or ``onnx.ModelProto``) through TVM's ONNX importer, then
    :func:`from_relax` (``dim_values`` bind the imported module's symbolic dimensions).

    Raises :class:`CompilerError` for missing/unreadable files, models TVM cannot import,
    and everything :func:`from_relax` rejects."""
    model, where = load_onnx(model, "from_onnx_via_relax")
    _import_tvm(where)
    from tvm.relax.frontend.onnx import from_onnx as tvm_from_onnx

    model = fold_model(model, dim_values, where)  # shape/mask plumbing gone before TVM

    try:
        mod = tvm_from_onnx(model, keep_params_in_input=False)
    except Exception as e:
        msg = str(e).strip().splitlines()
        raise CompilerError(f"TVM's ONNX importer failed: {type(e).__name__}: "
                            f"{msg[-1] if msg else ''}", where=where) from None
    try:
        return from_relax(mod, name=name or model.graph.name or "onnx",
                          dim_values=dim_values)
    except CompilerError as e:
        detail = e.detail
        if detail.startswith("the module is already lowered"):  # not the user's doing here
            kernel = detail[detail.index("(") + 1:detail.index(")")]
            detail = (f"TVM's ONNX importer turned this op into a TIR kernel ({kernel}), "
                      "which the relax front end cannot read (it reads Relax ops; the ops "
                      "lowered to the accelerator are Conv, Gemm and MatMul); try --frontend "
                      "onnx")
        raise CompilerError(detail, where=where, key=e.key) from None


class _Reader:
    """One pass over the bindings of a Relax function, collecting ops for a Graph."""

    def __init__(self, mod: Any, f: Any, func: str, name: str, where: str):
        from tvm import relax

        self.relax = relax
        self.mod = mod
        self.f = f
        self.where = where if func == "main" else f"{where} ({func})"
        self.g = Graph(name)
        self.names: dict[Any, Any] = {}       # relax Var -> tensor name | tuple of names
        self.used: set[str] = set()
        self.consts: list[tuple[Any, str]] = []
        self.pending: list[tuple[Op, dict[str, tuple[int, ...]], str | None]] = []
        # permute_dims of a 2-D param kept aside: var -> (source tensor, op, shapes, dtype)
        self.deferred: dict[Any, tuple[str, Op, dict, str | None]] = {}
        self.materialized: set[str] = set()
        self.params: set[str] = set()
        # weight params and constants, declared at the end when some op reads them
        self.lazy: dict[str, tuple[tuple[int, ...], str]] = {}
        self.scalars: dict[str, float] = {}   # values of one-element constants
        self.binding = ""
        self.site = "binding"
        self.op_name = ""
        self.mixed = False
        self.extra: dict[str, Any] = {}       # values of params this reader made (slices)

    # ------------------------------------------------------------ helpers
    def err(self, msg: str) -> CompilerError:
        key = f"{self.site} {self.binding!r}" + (f" ({self.op_name})" if self.op_name else "")
        return CompilerError(msg, where=self.where, key=key if self.binding else None)

    def unique(self, base: str) -> str:
        nm, i = base or "t", 1
        while nm in self.used:
            nm, i = f"{base}_{i}", i + 1
        self.used.add(nm)
        return nm

    def shape(self, ty: Any, what: str) -> tuple[int, ...]:
        from tvm.ir.prim.expr import IntImm

        if not isinstance(ty, self.relax.TensorType):
            raise self.err(f"{what} is not a tensor (type {ty})")
        sh = ty.shape
        if sh is None:
            raise self.err(f"{what} has no static shape (only rank {ty.ndim} is known)")
        vals = list(sh.values) if hasattr(sh, "values") else list(sh)
        out = []
        for d in vals:
            if isinstance(d, IntImm):
                out.append(int(d.value))
                continue
            free = sorted({v.name for v in self.relax.analysis.defined_symbolic_vars(self.f)})
            sym = free[0] if len(free) == 1 else str(d)
            dims = ", ".join(str(x.value) if isinstance(x, IntImm) else str(x) for x in vals)
            raise self.err(f"{what} has a symbolic dimension {str(d)!r} (shape [{dims}]); "
                           f"give it a size: --dim {sym}=N (Python: dim_values={{{sym!r}: N}})")
        return tuple(out)

    def dtype(self, ty: Any) -> str | None:
        dt = getattr(ty, "dtype", None)
        return None if dt is None else str(dt)

    def tensor(self, e: Any) -> str:
        """The tensor name of an argument expression (a var or a constant)."""
        from tvm.ir.expr import Constant

        relax = self.relax
        if isinstance(e, Constant):
            for c, nm in self.consts:
                if c.same_as(e):
                    return nm
            nm = self.unique(f"const{len(self.consts)}")
            self.consts.append((e, nm))
            shape = self.shape(e.ty, f"constant {nm!r}")
            self.lazy[nm] = (shape, self.dtype(e.ty) or "float32")
            self.params.add(nm)
            if math.prod(shape) == 1:
                try:
                    self.scalars[nm] = float(e.value.numpy().reshape(-1)[0])
                except Exception:  # pragma: no cover - a non-numeric constant
                    pass
            return nm
        if isinstance(e, relax.Var):
            if e in self.deferred:
                return self.materialize(e)
            if e not in self.names:
                raise self.err(f"variable {e.name!r} is used before it is bound")
            t = self.names[e]
            if isinstance(t, tuple):
                raise self.err(f"variable {e.name!r} is a tuple where a tensor is expected")
            return t
        raise self.err(f"argument {type(e).__name__} is not a variable or a constant")

    def materialize(self, var: Any) -> str:
        src, op, shapes, dt = self.deferred[var]
        if op.name not in self.materialized:
            self.materialized.add(op.name)
            self.pending.append((op, shapes, dt))
        return op.outputs[0]

    def emit(self, var: Any, kind: str, inputs: list[str], **attrs: object) -> None:
        out = self.unique(var.name)
        self.names[var] = out
        shapes = {out: self.shape(var.ty, f"the result {var.name!r}")}
        self.pending.append((Op.make(self.unique_op(var.name), kind, inputs, [out], **attrs),
                             shapes, self.dtype(var.ty)))

    def unique_op(self, base: str) -> str:
        nm, i = base, 1
        while any(op.name == nm for op, _, _ in self.pending):
            nm, i = f"{base}_{i}", i + 1
        return nm

    @staticmethod
    def ints(v: Any) -> tuple[int, ...]:
        if v is None:
            return ()
        items = v if isinstance(v, list | tuple) or hasattr(v, "__len__") else [v]
        return tuple(int(getattr(x, "value", x)) for x in items)

    # ------------------------------------------------------------ driver
    def run(self) -> Graph:
        relax = self.relax
        f = self.f
        n_in = len(f.params)
        if f.attrs is not None and "num_input" in f.attrs:
            n_in = int(f.attrs["num_input"])
        for i, p in enumerate(f.params):
            nm = self.unique(p.name)
            self.names[p] = nm
            if not isinstance(p.ty, relax.TensorType):
                raise CompilerError(f"parameter {p.name!r} is not a tensor (type {p.ty})",
                                    where=self.where)
            self.binding, self.site = p.name, "parameter"
            shape = self.shape(p.ty, "the parameter")
            self.binding, self.site = "", "binding"
            if i < n_in:
                self.g.add_input(nm, shape, self.dtype(p.ty) or "float32")
            else:
                self.lazy[nm] = (shape, self.dtype(p.ty) or "float32")
                self.params.add(nm)
        body = f.body
        blocks = list(body.blocks) if isinstance(body, relax.SeqExpr) else []
        result = body.body if isinstance(body, relax.SeqExpr) else body
        calls = [b.value.op.name for block in blocks for b in block.bindings
                 if isinstance(b.value, relax.Call) and hasattr(b.value.op, "name")]
        self.mixed = any(c in SUPPORTED_OPS for c in calls)  # not a legalized module
        for block in blocks:
            for b in block.bindings:
                self.binding, self.op_name = b.var.name, ""
                self.bind(b.var, b.value)
        self.binding, self.op_name = "", ""
        outs = self.outputs(result)
        self.pending = _fuse_gelu(self.pending, self.scalars, set(outs))
        used = {t for op, _, _ in self.pending for t in op.inputs} | set(outs)
        for nm, (shape, dt) in self.lazy.items():
            if nm in used:
                self.g.add_param(nm, shape, dt)
        for op, shapes, dt in self.pending:
            self.g.add_op(op, shapes=shapes, dtype=dt)
        for o in outs:
            self.g.add_output(o)
        try:
            return self.g.validate()
        except CompilerError as e:
            raise CompilerError(str(e), where=self.where) from None

    def ref(self, e: Any) -> str | tuple:
        """A tensor name, or a (nested) tuple of them for tuple values."""
        relax = self.relax
        if isinstance(e, relax.Tuple):
            return tuple(self.ref(x) for x in e.fields)
        if isinstance(e, relax.Var) and isinstance(self.names.get(e), tuple):
            return self.names[e]
        return self.tensor(e)

    def outputs(self, e: Any) -> list[str]:
        def flat(r: str | tuple) -> list[str]:
            return [r] if isinstance(r, str) else [o for x in r for o in flat(x)]

        return flat(self.ref(e))

    def bind(self, var: Any, value: Any) -> None:
        from tvm.ir.expr import Constant
        from tvm.ir.op import Op as TvmOp

        relax = self.relax
        if isinstance(value, relax.Call):
            if isinstance(value.op, TvmOp):
                self.op_name = value.op.name
                self.call(var, value)
                return
            callee = value.op
            self.op_name = f"call {getattr(callee, 'name_hint', type(callee).__name__)}"
            target = None
            if isinstance(callee, relax.GlobalVar):
                try:
                    target = self.mod[callee]
                except Exception:  # pragma: no cover - a dangling GlobalVar
                    target = None
            if target is not None and not isinstance(target, relax.Function):
                raise self.err(f"calls a lowered {type(target).__name__} "
                               f"{callee.name_hint!r}; {_BEFORE}")
            raise self.err("calls to other functions are not supported; inline them "
                           "(or read that function with func=...)")
        if isinstance(value, relax.Var):
            if value in self.deferred:
                self.deferred[var] = self.deferred[value]
            else:
                self.names[var] = self.names[value] if value in self.names else \
                    self.tensor(value)
            return
        if isinstance(value, Constant):
            self.names[var] = self.tensor(value)
            return
        if isinstance(value, relax.TupleGetItem):
            tup = value.tuple_value
            parts = self.ref(tup) if isinstance(tup, relax.Var | relax.Tuple) else None
            if not isinstance(parts, tuple):
                raise self.err("TupleGetItem of something that is not a tuple of tensors")
            self.names[var] = parts[int(value.index)]
            return
        if isinstance(value, relax.Tuple):
            self.names[var] = self.ref(value)
            return
        if isinstance(value, relax.ShapeExpr):
            return
        raise self.err(f"a binding to {type(value).__name__} is not supported")

    # ------------------------------------------------------------ conversions
    def call(self, var: Any, c: Any) -> None:
        name = c.op.name
        a = c.attrs
        args = list(c.args)
        if name == "relax.call_tir" and self.mixed and not _MAC_NAME.search(
                getattr(args[0], "name_hint", "")):
            # a front end's own TE kernel (TVM's ONNX importer emits clip this way)
            self.host(var, f"call_tir {args[0].name_hint}", c)
            return
        if name in _LOWERED:
            kernel = getattr(args[0], "name_hint", "") if args else ""
            raise self.err(f"the module is already lowered ({name}"
                           + (f" {kernel!r}" if kernel else "") + f"); {_BEFORE}")
        if name in _UNLOWERED_MAC_OPS:
            raise self.err(f"{name!r} is a multiply-accumulate op no target can express; ops "
                           "lowered to the accelerator are matmul and conv2d")
        if name not in SUPPORTED_OPS:
            self.host(var, name, c)
            return
        if name in _SIMPLE:
            self.emit(var, _SIMPLE[name], [self.tensor(x) for x in args])
        elif name == "relax.matmul":
            self.matmul(var, args)
        elif name == "relax.nn.conv2d":
            self.conv(var, args, a)
        elif name == "relax.nn.conv1d":
            self.conv1d(var, args, a)
        elif name == "relax.nn.gelu_tanh":
            self.emit(var, "gelu", [self.tensor(args[0])], approximate="tanh")
        elif name == "relax.nn.softmax":
            rank = len(self.shape(args[0].ty, "the input"))
            self.emit(var, "softmax", [self.tensor(args[0])], axis=int(a.axis) % rank)
        elif name == "relax.nn.layer_norm":
            rank = len(self.shape(args[0].ty, "the input"))
            axes = sorted(int(x) % rank for x in self.ints(a.axes))
            if len(axes) != 1:
                raise self.err(f"layer_norm over axes {axes} is not supported (one axis only)")
            ins = [self.tensor(args[0])]
            if bool(a.scale) or bool(a.center):
                ins += [self.tensor(x) for x in args[1:3]]
            self.emit(var, "layernorm", ins, axis=axes[0], epsilon=float(a.epsilon))
        elif name == "relax.permute_dims":
            self.permute(var, args, a)
        elif name in _RESHAPES:
            self.emit(var, "reshape", [self.tensor(args[0])],
                      shape=self.shape(var.ty, f"the result {var.name!r}"))
        elif name == "relax.concat":
            tup = args[0]
            fields = (tup.fields if isinstance(tup, self.relax.Tuple)
                      else self.names.get(tup, ()))
            ins = [x if isinstance(x, str) else self.tensor(x) for x in fields]
            self.emit(var, "concat", ins, axis=int(a.axis))
        elif name == "relax.take":
            if a.axis is None:
                raise self.err("take without an axis (over the flattened input) is not "
                               "supported")
            self.emit(var, "gather", [self.tensor(args[0]), self.tensor(args[1])],
                      axis=int(a.axis))
        elif name in ("relax.nn.max_pool2d", "relax.nn.avg_pool2d"):
            self.pool(var, args, a, "max" if "max" in name else "avg")
        elif name == "relax.nn.adaptive_avg_pool2d":
            self.adaptive_pool(var, args, a)
        elif name == "relax.split":
            self.split(var, args, a)
        elif name == "relax.strided_slice":
            self.strided_slice(var, args, a)
        elif name == "relax.mean":
            rank = len(self.shape(args[0].ty, "the input"))
            axes = (tuple(int(x) % rank for x in self.ints(a.axis)) if a.axis is not None
                    else tuple(range(rank)))
            self.emit(var, "reduce_mean", [self.tensor(args[0])], axes=axes,
                      keepdims=bool(a.keepdims))
        elif name == "relax.astype":
            if self.dtype(args[0].ty) == self.dtype(var.ty):
                self.names[var] = self.tensor(args[0])
            else:  # a real conversion (a mask to float, ids to bool): run it
                self.host(var, name, c)
        else:  # pragma: no cover - SUPPORTED_OPS and this dispatch are kept in step
            raise self.err(f"op {name!r} has no conversion")

    def host(self, var: Any, name: str, call: Any) -> None:
        """Any other Relax op with a tensor result: a ``host`` op with its static shape.  Its
        tensor arguments are its inputs; attr ``relax`` holds a one-op module (TVM's JSON
        serialisation) that :func:`compiler.execute.run_graph` builds and runs for it."""
        relax = self.relax
        if not isinstance(var.ty, relax.TensorType | relax.TupleType):
            return  # shape plumbing (shape_of of a static shape): read by nothing we keep
        fields = [var.ty] if isinstance(var.ty, relax.TensorType) else list(var.ty.fields)
        if not fields or not all(isinstance(f, relax.TensorType) for f in fields):
            raise self.err(f"{name!r} gives {var.ty}, not tensors, so it cannot be kept as a "
                           "host op")
        shapes = tuple(self.shape(f, f"the result {var.name!r}") for f in fields)
        args, module = self.one_op_module(call)
        attrs = {"op_type": name, "out_shapes": shapes, **({"relax": module} if module else {})}
        ins = [self.tensor(x) for x in args]
        if isinstance(var.ty, relax.TensorType):
            self.emit(var, "host", ins, **attrs)
            return
        outs = [self.unique(f"{var.name}_{i}") for i in range(len(fields))]
        self.names[var] = tuple(outs)
        self.pending.append((Op.make(self.unique_op(var.name), "host", ins, outs, **attrs),
                             dict(zip(outs, shapes, strict=True)), self.dtype(fields[0])))

    def one_op_module(self, call: Any) -> tuple[list[Any], str | None]:
        """``(tensor arguments, a module computing call from them as TVM's JSON)``; the
        module is ``None`` when an argument is not a tensor or a static value."""
        import tvm
        from tvm.ir.expr import Constant

        relax = self.relax
        tensors: list[Any] = []
        params: dict[Any, Any] = {}
        ok = True

        def sub(e: Any) -> Any:
            nonlocal ok
            if isinstance(e, relax.Tuple):
                return relax.Tuple([sub(x) for x in e.fields])
            if isinstance(e, relax.Var) and isinstance(e.ty, relax.ShapeType) \
                    and e.ty.values is not None:
                return relax.ShapeExpr(e.ty.values)  # shape_of a static shape: inline
            if isinstance(e, relax.Var | Constant):
                if not isinstance(e.ty, relax.TensorType):
                    ok = ok and not isinstance(e, relax.Var)  # a static value stays inline
                    return e
                if e not in params:
                    params[e] = relax.Var(f"a{len(params)}", e.ty)
                    tensors.append(e)
                return params[e]
            return e  # shapes, prim values, strings, the callee

        new_args = [sub(a) for a in call.args]
        if not ok:
            return tensors, None
        try:
            bb = relax.BlockBuilder()
            if call.op.name == "relax.call_tir":
                new_args[0] = bb.add_func(self.mod[call.args[0]], call.args[0].name_hint)
            with bb.function("main", list(params.values())):
                with bb.dataflow():
                    out = bb.emit_output(relax.Call(call.op, new_args, call.attrs,
                                                    call.ty_args))
                bb.emit_func_output(out)
            return tensors, tvm.ir.save_json(bb.get())  # data, not code: no eval on load
        except Exception:  # an op TVM cannot rebuild alone: priced, not executable
            return tensors, None

    def is_param(self, e: Any) -> bool:
        from tvm.ir.expr import Constant

        if isinstance(e, Constant):
            return True
        return isinstance(e, self.relax.Var) and self.names.get(e) in self.params

    def permute(self, var: Any, args: list[Any], a: Any) -> None:
        x = args[0]
        rank = len(self.shape(x.ty, "the input"))
        perm = self.ints(a.axes) if a.axes is not None else tuple(reversed(range(rank)))
        perm = tuple(p % rank for p in perm)
        if rank == 2 and perm == (1, 0) and self.is_param(x):
            src = self.tensor(x)
            out = self.unique(var.name)
            op = Op.make(self.unique_op(var.name), "transpose", [src], [out], perm=perm)
            self.deferred[var] = (src, op, {out: self.shape(var.ty, "the result")},
                                  self.dtype(var.ty))
            return
        self.emit(var, "transpose", [self.tensor(x)], perm=perm)

    def matmul(self, var: Any, args: list[Any]) -> None:
        a, b = args[0], args[1]
        sb = self.shape(b.ty, "the second operand")
        if len(sb) == 1:
            raise self.err(f"matmul with a 1-D second operand {list(sb)} is not supported")
        if len(sb) == 2 and isinstance(b, self.relax.Var) and b in self.deferred:
            src = self.deferred[b][0]
            self.emit(var, "matmul", [self.tensor(a), src], transpose_b=True)
            return
        self.emit(var, "matmul" if len(sb) == 2 else "bmm", [self.tensor(a), self.tensor(b)])

    def conv(self, var: Any, args: list[Any], a: Any) -> None:
        layouts = (str(a.data_layout), str(a.kernel_layout),
                   str(a.out_layout or a.data_layout))
        if layouts != ("NCHW", "OIHW", "NCHW"):
            raise self.err(f"conv2d layouts data={layouts[0]} kernel={layouts[1]} "
                           f"out={layouts[2]} are not supported (NCHW data and OIHW kernels "
                           "only; convert the layout first)")
        pad = self.ints(a.padding)
        if len(pad) == 1:
            pad = pad * 4
        elif len(pad) == 2:
            pad = pad + pad
        strides = self.ints(a.strides)
        dil = self.ints(a.dilation)
        strides = strides * 2 if len(strides) == 1 else strides
        dil = dil * 2 if len(dil) == 1 else dil
        out = self.unique(var.name)
        self.names[var] = out
        self.conv2d(self.tensor(args[0]), self.tensor(args[1]), out, var.name,
                    dict(strides=strides, dilations=dil, pads=pad), int(a.groups))

    def conv2d(self, x: str, w: str, out: str, name: str, geo: dict, group: int) -> None:
        """A 2-D convolution of tensors ``x``, ``w`` into ``out``: plain, depthwise, or (any
        other group count) one convolution per group on channel slices plus a concat, as
        the ONNX front end does."""
        xs, ws = self.tensor_shape(x), self.tensor_shape(w)
        if group == 1 or (group == xs[1] and ws[0] == xs[1]):
            kind = "conv2d" if group == 1 else "depthwise_conv2d"
            self.push(kind, [x, w], out, name, group=group, **geo)
            return
        if xs[1] % group or ws[0] % group:
            raise self.err(f"group {group} does not divide {xs[1]} input and {ws[0]} output "
                           "channels")
        cg, mg = xs[1] // group, ws[0] // group
        parts = []
        for g in range(group):
            nm = f"{name}/group{g}"
            xg = self.channel_slice(x, 1, g * cg, cg, f"{nm}/x")
            wg = self.channel_slice(w, 0, g * mg, mg, f"{nm}/w")
            parts.append(self.unique(f"{nm}/y"))
            self.push("conv2d", [xg, wg], parts[-1], nm, group=1, **geo)
        self.push("concat", parts, out, f"{name}/concat", axis=1)

    def conv1d(self, var: Any, args: list[Any], a: Any) -> None:
        """A 1-D convolution as a 2-D one over a height of one (reshapes around it)."""
        if (str(a.data_layout), str(a.kernel_layout)) != ("NCW", "OIW"):
            raise self.err(f"conv1d layouts {a.data_layout}/{a.kernel_layout} are not "
                           "supported (NCW data and OIW kernels only)")
        x, w = self.tensor(args[0]), self.tensor(args[1])
        (n, c, length), (m, cw, k) = self.tensor_shape(x), self.tensor_shape(w)
        pad = self.ints(a.padding)
        pad = pad * 2 if len(pad) == 1 else pad
        x4 = self.unique(f"{var.name}/as2d")
        self.push("reshape", [x], x4, x4, shape=(n, c, 1, length))
        w4 = self.reshaped(w, (m, cw, 1, k), f"{var.name}/w2d")
        y4 = self.unique(f"{var.name}/conv2d")
        geo = dict(strides=(1, *self.ints(a.strides)[:1]),
                   dilations=(1, *self.ints(a.dilation)[:1]), pads=(0, pad[0], 0, pad[1]))
        self.conv2d(x4, w4, y4, y4, geo, int(a.groups))
        out = self.unique(var.name)
        self.names[var] = out
        self.push("reshape", [y4], out, f"{var.name}/as1d",
                  shape=self.shape(var.ty, f"the result {var.name!r}"))

    def push(self, kind: str, inputs: list[str], out: str, name: str, **attrs: object) -> None:
        """An op writing ``out`` (its shape inferred by the graph)."""
        self.pending.append((Op.make(self.unique_op(name), kind, inputs, [out], **attrs), {},
                             None))

    def tensor_shape(self, t: str) -> tuple[int, ...]:
        """The shape of a tensor read or made so far."""
        if t in self.lazy:
            return self.lazy[t][0]
        if self.g.has_tensor(t):
            return self.g.tensor(t).shape
        for op, shapes, _ in reversed(self.pending):
            if t in op.outputs:
                if t in shapes:
                    return tuple(shapes[t])
                got = infer_shapes(op, [self.tensor_shape(x) for x in op.inputs])
                return tuple(got[op.outputs.index(t)])
        raise self.err(f"tensor {t!r} has no known shape")

    def const_value(self, t: str) -> Any:
        for c, nm in self.consts:
            if nm == t:
                return c.value.numpy()
        return self.extra.get(t)

    def channel_slice(self, t: str, axis: int, start: int, size: int, name: str) -> str:
        """``t[start:start+size]`` along ``axis``: a sliced constant when ``t`` is one, else
        a ``slice`` op."""
        import numpy as np

        out = self.unique(name)
        v = self.const_value(t)
        if v is not None:
            self.new_param(out, np.take(v, np.arange(start, start + size), axis=axis))
        else:
            self.push("slice", [t], out, out, starts=(start,), ends=(start + size,),
                      axes=(axis,), steps=(1,))
        return out

    def reshaped(self, t: str, shape: tuple[int, ...], name: str) -> str:
        out = self.unique(name)
        v = self.const_value(t)
        if v is not None:
            self.new_param(out, v.reshape(shape))
        else:
            self.push("reshape", [t], out, out, shape=shape)
        return out

    def new_param(self, name: str, value: Any) -> None:
        self.lazy[name] = (tuple(int(d) for d in value.shape), str(value.dtype))
        self.params.add(name)
        self.extra[name] = value

    def pool(self, var: Any, args: list[Any], a: Any, mode: str) -> None:
        if str(a.layout) != "NCHW" or str(a.out_layout or a.layout) != "NCHW":
            raise self.err(f"pooling layout {a.layout} is not supported (NCHW only)")
        if any(d != 1 for d in self.ints(a.dilation)):
            raise self.err("dilated pooling is not supported")
        k = self.ints(a.pool_size)
        pad = self.ints(a.padding)
        pad = pad * 4 if len(pad) == 1 else (pad + pad if len(pad) == 2 else pad)
        self.emit(var, "pool", [self.tensor(args[0])], mode=mode, kernel=k,
                  strides=self.ints(a.strides), pads=pad, ceil_mode=bool(a.ceil_mode))

    def adaptive_pool(self, var: Any, args: list[Any], a: Any) -> None:
        if str(a.layout) != "NCHW" or str(a.out_layout or a.layout) != "NCHW":
            raise self.err(f"pooling layout {a.layout} is not supported (NCHW only)")
        x = self.shape(args[0].ty, "the input")
        oh, ow = self.shape(var.ty, "the result")[2:]
        if (oh, ow) == (1, 1):
            self.emit(var, "pool", [self.tensor(args[0])], mode="global_avg")
        elif x[2] % oh == 0 and x[3] % ow == 0:
            k = (x[2] // oh, x[3] // ow)
            self.emit(var, "pool", [self.tensor(args[0])], mode="avg", kernel=k, strides=k,
                      pads=(0, 0, 0, 0), ceil_mode=False)
        else:
            raise self.err(f"adaptive_avg_pool2d from {x[2]}x{x[3]} to {oh}x{ow} is not an "
                           "even pooling window")

    def split(self, var: Any, args: list[Any], a: Any) -> None:
        x = self.shape(args[0].ty, "the input")
        axis = int(a.axis) % len(x)
        ios = a.indices_or_sections
        if hasattr(ios, "__len__"):
            idx = [0, *self.ints(ios), x[axis]]
            sizes = tuple(max(0, idx[i + 1] - idx[i]) for i in range(len(idx) - 1))
        else:
            parts = int(getattr(ios, "value", ios))
            chunk = -(-x[axis] // parts)
            sizes = tuple(min(chunk, x[axis] - j * chunk) for j in range(parts))
        fields = list(var.ty.fields)
        outs = [self.unique(f"{var.name}_{i}") for i in range(len(fields))]
        shapes = {o: self.shape(t, f"result {i} of {var.name!r}")
                  for i, (o, t) in enumerate(zip(outs, fields, strict=True))}
        self.names[var] = tuple(outs)
        self.pending.append((Op.make(self.unique_op(var.name), "split",
                                     [self.tensor(args[0])], outs, axis=axis, sizes=sizes),
                             shapes, self.dtype(fields[0]) if fields else None))

    def strided_slice(self, var: Any, args: list[Any], a: Any) -> None:
        vals = []
        for e in args[1:]:
            if not isinstance(e, self.relax.Tuple):
                raise self.err("strided_slice with non-constant axes/begin/end is not "
                               "supported")
            vals.append(self.ints(e.fields))
        axes, begin, end = vals[0], vals[1], vals[2]
        steps = vals[3] if len(vals) > 3 else (1,) * len(axes)
        rank = len(self.shape(args[0].ty, "the input"))
        big = 2**62
        self.emit(var, "slice", [self.tensor(args[0])], starts=begin,
                  ends=tuple(max(-big, min(big, v)) for v in end),
                  axes=tuple(x % rank for x in axes), steps=steps)


# ------------------------------------------------------------------ GELU fusion
_Pending = list[tuple[Op, dict, Any]]


def _fuse_gelu(pending: _Pending, scalars: dict[str, float], outputs: set[str]) -> _Pending:
    """Fuse decomposed GELUs (what TVM's ONNX importer gives for an exported GELU) into one
    ``gelu`` op with the ONNX front end's matcher (:func:`compiler.passes.patterns.match_gelu`):
    ``0.5 * x * (1 + erf(x / sqrt 2))`` (or ``x * (1/sqrt 2)``) and
    ``0.5 * x * (1 + tanh(sqrt(2/pi) * (x + 0.044715 * x^3)))``, either order of the
    multiplications by ``x`` and ``0.5``.  Other ``erf``/``tanh`` ops stay host ops."""
    ops = [op for op, _, _ in pending]
    view = ExprView([ExprNode(op.kind, tuple(op.inputs), tuple(op.outputs)) for op in ops],
                    scalars.get, outputs)
    fused: dict[str, Op] = {}   # name of the last op of a group -> its gelu
    dropped: set[str] = set()
    for i, act in enumerate(ops):
        if act.kind not in ("erf", "tanh") or (m := match_gelu(view, i)) is None:
            continue
        names = {ops[j].name for j in m.group}
        if not view.closed(m.group, m.output) or names & dropped:
            continue
        dropped |= names
        tanh = {"approximate": "tanh"} if m.approximate == "tanh" else {}
        fused[ops[m.last].name] = Op.make(act.name, "gelu", [m.x], [m.output], **tanh)
    out: _Pending = []
    for op, shapes, dt in pending:
        if op.name in fused:
            out.append((fused[op.name], {k: v for k, v in shapes.items() if k in fused[
                op.name].outputs}, dt))
        elif op.name not in dropped:
            out.append((op, shapes, dt))
    return out
