"""The model graph: typed ops and tensors on a ``networkx.DiGraph``.

Nodes are op names (node attribute ``op`` holds the :class:`Op`); an edge ``a -> b`` means
``b`` reads tensors written by ``a`` and carries them as ``tensors`` (a tuple of names: one
edge may carry several, e.g. two outputs of a ``split``).  Graph inputs and parameters
(weights, constants) are tensors without a producer; they are not nodes.

Op kinds form one closed set, :data:`KINDS`:

==================  =========================================================================
MAC kinds           ``matmul`` (``A[..., M, K] @ B[K, N]`` (+ bias); attrs ``transpose_a``,
                    ``transpose_b``), ``bmm`` (``A[..., M, K] @ B[..., K, N]``, batch dims
                    broadcast), ``conv2d`` (NCHW ``X``, ``W[M, C/group, kh, kw]`` (+ bias);
                    attrs ``strides=(sh, sw)``, ``pads=(top, left, bottom, right)``,
                    ``dilations=(dh, dw)``, ``group``), ``depthwise_conv2d`` (same attrs,
                    ``group`` = channels)
accelerator-side    ``add``, ``mul`` (broadcasting), ``relu``, ``gelu``, ``softmax`` (``axis``),
                    ``layernorm`` (``axis``, ``epsilon``), ``transpose`` (``perm``),
                    ``reshape`` (``shape``, resolved), ``concat`` (``axis``), ``gather``
                    (embedding lookup, ``axis``), ``pool`` (``mode`` max/avg/global_avg/
                    global_max, ``kernel``, ``strides``, ``pads``, ``ceil_mode``), ``split``
                    (``axis``, ``sizes``), ``slice`` (``starts``, ``ends``, ``axes``, ``steps``)
activations        ``clip`` (``min``, ``max``: ReLU6 is ``clip(0, 6)``), ``sigmoid``, ``silu``
                    (``x * sigmoid(x)``), ``hardsigmoid`` (``alpha``, ``beta``),
                    ``hardswish``, ``rmsnorm`` (``axis``, ``epsilon``; optional gain input)
host kinds          :data:`HOST_KINDS`: ``sub``, ``div``, ``pow`` (broadcasting), ``sqrt``,
                    ``erf``, ``tanh``, ``reduce_mean`` (``axes``, ``keepdims``): elementwise
                    arithmetic left to the host CPU (e.g. a decomposed LayerNorm from ONNX);
                    ``host``: any other operator a front end keeps (a mask ``Where``, a
                    ``Cast``, an ``Expand`` of an input), with its output shapes in attr
                    ``out_shapes`` and what executes it in ``op_type``/``onnx``/``opset``
==================  =========================================================================

Only MAC kinds lower to a :class:`~mapspace.problem.Problem` (:meth:`Graph.problem`).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, replace
from math import prod

import networkx as nx
import numpy as np

from compiler.errors import CompilerError
from mapspace.errors import MapspaceError
from mapspace.problem import Problem, bmm, conv2d, depthwise_conv2d, matmul

MAC_KINDS: tuple[str, ...] = ("matmul", "bmm", "conv2d", "depthwise_conv2d")
HOST_KINDS: tuple[str, ...] = ("sub", "div", "pow", "sqrt", "erf", "tanh", "reduce_mean",
                               "host")
#: one-input activations (and ``rmsnorm``): the output has the input's shape
ACTIVATION_KINDS: tuple[str, ...] = ("clip", "sigmoid", "silu", "hardsigmoid", "hardswish",
                                     "rmsnorm")
#: Every op kind a :class:`Graph` may hold (a closed set).
KINDS: tuple[str, ...] = MAC_KINDS + (
    "add", "mul", "relu", "gelu", "softmax", "layernorm", "transpose", "reshape", "concat",
    "gather", "pool", "split", "slice",
) + ACTIVATION_KINDS + HOST_KINDS

_ELEMENTWISE2 = ("add", "mul", "sub", "div", "pow")
_UNARY = ("relu", "gelu", "sqrt", "erf", "tanh", "softmax", "layernorm")
_POOL_MODES = ("max", "avg", "global_avg", "global_max")

Shape = tuple[int, ...]


@dataclass(frozen=True)
class TensorInfo:
    """A tensor: its name, static shape and element type (a numpy dtype name, ``float32``)."""

    name: str
    shape: Shape
    dtype: str = "float32"

    @property
    def size(self) -> int:
        return prod(self.shape)


def _freeze(v: object) -> object:
    if isinstance(v, list | tuple):
        return tuple(_freeze(x) for x in v)
    return v


@dataclass(frozen=True)
class Op:
    """One operation: ``kind`` from :data:`KINDS`, tensor names in and out, sorted attrs."""

    name: str
    kind: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    attrs: tuple[tuple[str, object], ...] = ()

    @classmethod
    def make(cls, name: str, kind: str, inputs: Iterable[str], outputs: Iterable[str],
             **attrs: object) -> Op:
        """Build an op from keyword attrs (lists become tuples, keys sorted)."""
        return cls(name, kind, tuple(inputs), tuple(outputs),
                   tuple(sorted((k, _freeze(v)) for k, v in attrs.items())))

    def attr(self, key: str, default: object = None) -> object:
        return dict(self.attrs).get(key, default)


# ------------------------------------------------------------------ shape rules
def _err(op: Op, msg: str, key: str | None = None) -> CompilerError:
    return CompilerError(msg, where=f"op {op.name!r} ({op.kind})", key=key)


def _broadcast(op: Op, shapes: list[Shape]) -> Shape:
    ndim = max(len(s) for s in shapes)
    out = []
    for i in range(ndim):
        dims = {s[len(s) - ndim + i] for s in shapes if len(s) - ndim + i >= 0} - {1}
        if len(dims) > 1:
            raise _err(op, f"shapes {[list(s) for s in shapes]} do not broadcast")
        out.append(dims.pop() if dims else 1)
    return tuple(out)


def _axis(op: Op, axis: int, ndim: int) -> int:
    a = axis + ndim if axis < 0 else axis
    if not 0 <= a < ndim:
        raise _err(op, f"axis {axis} out of range for rank {ndim}", key="axis")
    return a


def _window(size: int, k: int, stride: int, pad: int, dil: int, ceil: bool = False) -> int:
    span = dil * (k - 1) + 1
    num = size + pad - span
    return (-(-num // stride) if ceil else num // stride) + 1


def matmul_dims(op: Op, a: Shape, b: Shape) -> tuple[Shape, int, int, int]:
    """(leading dims of A, M, K, N) of a ``matmul``; checks K matches."""
    if len(b) != 2:
        raise _err(op, f"matmul needs a 2-D second operand, found shape {list(b)}")
    if len(a) == 1:
        a = (1, *a)
    if op.attr("transpose_a", False):
        if len(a) != 2:
            raise _err(op, "transpose_a needs a 2-D first operand", key="transpose_a")
        a = (a[1], a[0])
    k2, n = (b[1], b[0]) if op.attr("transpose_b", False) else b
    if a[-1] != k2:
        raise _err(op, f"reduction sizes differ: A {list(a)} vs B {list(b)}")
    return a[:-2], a[-2], a[-1], n


def _bmm_dims(op: Op, a: Shape, b: Shape) -> tuple[Shape, int, int, int]:
    if len(a) < 2 or len(b) < 2:
        raise _err(op, f"bmm needs operands of rank >= 2, found {list(a)} and {list(b)}")
    if a[-1] != b[-2]:
        raise _err(op, f"reduction sizes differ: A {list(a)} vs B {list(b)}")
    return _broadcast(op, [a[:-2], b[:-2]]), a[-2], a[-1], b[-1]


def _conv_out(op: Op, x: Shape, w: Shape) -> Shape:
    if len(x) != 4 or len(w) != 4:
        raise _err(op, f"conv needs NCHW input and MCkk weights, found {list(x)}, {list(w)}")
    group = int(op.attr("group", 1))
    sh, sw = op.attr("strides", (1, 1))
    pt, pl, pb, pr = op.attr("pads", (0, 0, 0, 0))
    dh, dw = op.attr("dilations", (1, 1))
    if x[1] != w[1] * group:
        raise _err(op, f"input has {x[1]} channels but weights {list(w)} with group {group} "
                       f"expect {w[1] * group}")
    oh = _window(x[2], w[2], sh, pt + pb, dh)
    ow = _window(x[3], w[3], sw, pl + pr, dw)
    if oh < 1 or ow < 1:
        raise _err(op, f"input {list(x)} is smaller than the window of weights {list(w)}")
    return (x[0], w[0], oh, ow)


def infer_shapes(op: Op, shapes: list[Shape]) -> list[Shape]:
    """Output shapes of ``op`` from its input shapes (raises :class:`CompilerError`)."""
    k = op.kind
    if k not in KINDS:
        raise _err(op, f"unknown op kind {k!r}; kinds are {', '.join(KINDS)}", key="kind")
    nin = {"matmul": (2, 3), "bmm": (2, 2), "conv2d": (2, 3), "depthwise_conv2d": (2, 3),
           "layernorm": (1, 3), "gather": (2, 2), "concat": (1, 10**9), "rmsnorm": (1, 2),
           "host": (0, 10**9)}
    lo, hi = nin.get(k, (2, 2) if k in _ELEMENTWISE2 else (1, 1))
    if not lo <= len(shapes) <= hi:
        raise _err(op, f"expects {lo}..{hi} inputs, found {len(shapes)}")
    if k == "host":
        out = op.attr("out_shapes")
        if not isinstance(out, tuple) or len(out) != len(op.outputs):
            raise _err(op, f"a host op needs one shape per output in out_shapes, found {out!r}",
                       key="out_shapes")
        return [tuple(int(d) for d in o) for o in out]
    s = shapes[0]
    if k in ACTIVATION_KINDS:
        if k == "rmsnorm":
            _axis(op, int(op.attr("axis", -1)), len(s))
        return [s]
    if k == "matmul":
        lead, m, _, n = matmul_dims(op, shapes[0], shapes[1])
        return [(n,)] if len(shapes[0]) == 1 else [(*lead, m, n)]
    if k == "bmm":
        lead, m, _, n = _bmm_dims(op, shapes[0], shapes[1])
        return [(*lead, m, n)]
    if k in ("conv2d", "depthwise_conv2d"):
        return [_conv_out(op, shapes[0], shapes[1])]
    if k in _ELEMENTWISE2:
        return [_broadcast(op, shapes)]
    if k in _UNARY:
        if k in ("softmax", "layernorm"):
            _axis(op, int(op.attr("axis", -1)), len(s))
        return [s]
    if k == "transpose":
        perm = op.attr("perm", tuple(reversed(range(len(s)))))
        if sorted(perm) != list(range(len(s))):
            raise _err(op, f"perm {list(perm)} is not a permutation of rank {len(s)}", "perm")
        return [tuple(s[p] for p in perm)]
    if k == "reshape":
        new = tuple(op.attr("shape", ()))
        if prod(new) != prod(s):
            raise _err(op, f"cannot reshape {list(s)} to {list(new)}", key="shape")
        return [new]
    if k == "concat":
        a = _axis(op, int(op.attr("axis", 0)), len(s))
        for t in shapes:
            if len(t) != len(s) or any(t[i] != s[i] for i in range(len(s)) if i != a):
                raise _err(op, f"inputs {[list(t) for t in shapes]} differ off axis {a}")
        return [(*s[:a], sum(t[a] for t in shapes), *s[a + 1:])]
    if k == "gather":
        a = _axis(op, int(op.attr("axis", 0)), len(s))
        return [(*s[:a], *shapes[1], *s[a + 1:])]
    if k == "pool":
        mode = op.attr("mode", "max")
        if mode not in _POOL_MODES:
            raise _err(op, f"mode must be one of {', '.join(_POOL_MODES)}, found {mode!r}")
        if len(s) != 4:
            raise _err(op, f"pool needs an NCHW input, found {list(s)}")
        if str(mode).startswith("global"):
            return [(s[0], s[1], 1, 1)]
        kh, kw = op.attr("kernel")  # type: ignore[misc]
        sh, sw = op.attr("strides", (1, 1))
        pt, pl, pb, pr = op.attr("pads", (0, 0, 0, 0))
        ceil = bool(op.attr("ceil_mode", False))
        return [(s[0], s[1], _window(s[2], kh, sh, pt + pb, 1, ceil),
                 _window(s[3], kw, sw, pl + pr, 1, ceil))]
    if k == "split":
        a = _axis(op, int(op.attr("axis", 0)), len(s))
        sizes = tuple(op.attr("sizes", ()))
        if sum(sizes) != s[a] or len(sizes) != len(op.outputs):
            raise _err(op, f"sizes {list(sizes)} do not split {s[a]} into {len(op.outputs)}",
                       key="sizes")
        return [(*s[:a], n, *s[a + 1:]) for n in sizes]
    if k == "slice":
        out = list(s)
        axes = op.attr("axes", tuple(range(len(op.attr("starts", ())))))
        steps = op.attr("steps", (1,) * len(axes))
        for ax, st, en, sp in zip(axes, op.attr("starts", ()), op.attr("ends", ()), steps,
                                  strict=True):
            a = _axis(op, ax, len(s))
            out[a] = len(range(*slice(st, en, sp).indices(s[a])))
        return [tuple(out)]
    # reduce_mean
    axes = [_axis(op, a, len(s)) for a in op.attr("axes", tuple(range(len(s))))]
    keep = bool(op.attr("keepdims", True))
    return [tuple(1 if i in axes else d for i, d in enumerate(s) if keep or i not in axes)]


# ------------------------------------------------------------------ the graph
@dataclass(frozen=True)
class GraphSummary:
    """Counts by kind, number of MAC ops and total MACs, parameter elements."""

    name: str
    num_ops: int
    by_kind: tuple[tuple[str, int], ...]
    mac_ops: int
    macs: int
    param_elements: int

    def __str__(self) -> str:
        kinds = ", ".join(f"{k} {n}" for k, n in self.by_kind)
        return (f"{self.name}: {self.num_ops} ops ({kinds}); {self.mac_ops} MAC ops, "
                f"{self.macs:,} MACs; {self.param_elements:,} parameters")


class Graph:
    """A dataflow graph of :class:`Op` over named :class:`TensorInfo` (see module docs)."""

    def __init__(self, name: str = "graph") -> None:
        self.name = name
        self.nx = nx.DiGraph()
        self.inputs: list[str] = []
        self.outputs: list[str] = []
        self.params: list[str] = []
        self._tensors: dict[str, TensorInfo] = {}
        self._producer: dict[str, str] = {}
        self._consumers: dict[str, list[str]] = {}
        #: values of params a front end read from the model (weights, folded constants);
        #: params without one (zoo models) get seeded values when run
        self.values: dict[str, np.ndarray] = {}

    # -------------------------------------------------------------- building
    def _declare(self, info: TensorInfo, what: str) -> None:
        if info.name in self._tensors:
            raise CompilerError(f"tensor {info.name!r} is declared twice",
                                where=f"graph {self.name!r}", key=what)
        if any(not isinstance(d, int) or d < 0 for d in info.shape):
            raise CompilerError(f"shape {list(info.shape)} of {info.name!r} is not static",
                                where=f"graph {self.name!r}", key=what)
        self._tensors[info.name] = TensorInfo(info.name, tuple(info.shape), info.dtype)

    def add_input(self, name: str, shape: Iterable[int], dtype: str = "float32") -> str:
        self._declare(TensorInfo(name, tuple(shape), dtype), "inputs")
        self.inputs.append(name)
        return name

    def add_param(self, name: str, shape: Iterable[int], dtype: str = "float32",
                  value: np.ndarray | None = None) -> str:
        """A weight or constant: a tensor with no producer that is not a graph input;
        ``value`` (its data, when the model carries it) must have ``shape``."""
        self._declare(TensorInfo(name, tuple(shape), dtype), "params")
        self.params.append(name)
        if value is not None:
            if tuple(value.shape) != tuple(shape):
                raise CompilerError(f"value of {name!r} has shape {list(value.shape)}, "
                                    f"declared {list(shape)}", where=f"graph {self.name!r}",
                                    key="params")
            self.values[name] = value
        return name

    def add_output(self, name: str) -> None:
        self.outputs.append(name)

    def add_op(self, op: Op, shapes: Mapping[str, Iterable[int]] | None = None,
               dtype: str | None = None) -> Op:
        """Add ``op``; output shapes come from ``shapes`` or are inferred from the inputs.

        Ops may be added in any order; edges to not-yet-added producers appear when they are.
        """
        where = f"op {op.name!r} ({op.kind})"
        if op.kind not in KINDS:
            raise CompilerError(f"unknown op kind {op.kind!r}; kinds are {', '.join(KINDS)}",
                                where=where, key="kind")
        if op.name in self.nx:
            raise CompilerError("an op of this name already exists", where=where)
        for t in op.outputs:
            if t in self._producer or t in self.inputs or t in self.params:
                raise CompilerError(f"tensor {t!r} already has a producer", where=where)
        shapes = dict(shapes or {})
        if any(t not in shapes for t in op.outputs):
            missing = [t for t in op.inputs if t not in self._tensors]
            if missing:
                raise CompilerError(f"cannot infer output shapes: inputs {missing} are not "
                                    "declared yet", where=where)
            inferred = infer_shapes(op, [self._tensors[t].shape for t in op.inputs])
            for t, s in zip(op.outputs, inferred, strict=True):
                shapes.setdefault(t, s)
        first = self._tensors.get(op.inputs[0]) if op.inputs else None
        dt = dtype or (first.dtype if first is not None else "float32")
        for t in op.outputs:
            self._declare(TensorInfo(t, tuple(int(d) for d in shapes[t]), dt), "outputs")
        self.nx.add_node(op.name, op=op)
        for t in op.outputs:
            self._producer[t] = op.name
            for c in self._consumers.get(t, []):
                self._edge(op.name, c, t)
        for t in op.inputs:
            self._consumers.setdefault(t, []).append(op.name)
            if t in self._producer:
                self._edge(self._producer[t], op.name, t)
        return op

    def _edge(self, a: str, b: str, tensor: str) -> None:
        if self.nx.has_edge(a, b):
            tensors = self.nx.edges[a, b]["tensors"]
            if tensor not in tensors:
                self.nx.edges[a, b]["tensors"] = (*tensors, tensor)
        else:
            self.nx.add_edge(a, b, tensors=(tensor,))

    # -------------------------------------------------------------- queries
    def __len__(self) -> int:
        return self.nx.number_of_nodes()

    def __iter__(self) -> Iterator[Op]:
        return iter(self.ops())

    def op(self, name: str) -> Op:
        if name not in self.nx:
            raise CompilerError(f"no op named {name!r}", where=f"graph {self.name!r}")
        return self.nx.nodes[name]["op"]

    def ops(self) -> list[Op]:
        """All ops in a topological order (ties broken by insertion order)."""
        try:
            order = list(nx.lexicographical_topological_sort(
                self.nx, key=self._insertion_index().__getitem__))
        except nx.NetworkXUnfeasible:
            cycle = [a for a, _ in nx.find_cycle(self.nx)]
            raise CompilerError(f"the graph has a cycle through ops {cycle}",
                                where=f"graph {self.name!r}") from None
        return [self.nx.nodes[n]["op"] for n in order]

    def _insertion_index(self) -> dict[str, int]:
        return {n: i for i, n in enumerate(self.nx.nodes)}

    @property
    def tensors(self) -> dict[str, TensorInfo]:
        return dict(self._tensors)

    def has_tensor(self, name: str) -> bool:
        return name in self._tensors

    def tensor(self, name: str) -> TensorInfo:
        try:
            return self._tensors[name]
        except KeyError:
            raise CompilerError(f"no tensor named {name!r}", where=f"graph {self.name!r}") \
                from None

    def producer(self, tensor: str) -> Op | None:
        """The op writing ``tensor`` (``None`` for graph inputs and params)."""
        n = self._producer.get(tensor)
        return None if n is None else self.nx.nodes[n]["op"]

    def consumers(self, tensor: str) -> list[Op]:
        return [self.nx.nodes[n]["op"] for n in self._consumers.get(tensor, [])
                if n in self.nx]

    def producers(self, op: Op | str) -> list[Op]:
        """The ops whose outputs ``op`` reads (graph predecessors)."""
        return [self.nx.nodes[n]["op"] for n in self.nx.predecessors(self._name(op))]

    def successors(self, op: Op | str) -> list[Op]:
        return [self.nx.nodes[n]["op"] for n in self.nx.successors(self._name(op))]

    def _name(self, op: Op | str) -> str:
        name = op.name if isinstance(op, Op) else op
        self.op(name)
        return name

    # -------------------------------------------------------------- checks
    def validate(self) -> Graph:
        """Check every tensor has a producer (or is an input/param), shapes agree with each
        op's shape rule, outputs exist, no cycles.  Returns ``self``; raises
        :class:`CompilerError` naming the op and what is wrong."""
        for op in self.ops():
            where = f"op {op.name!r} ({op.kind})"
            for t in op.inputs:
                if t not in self._tensors:
                    raise CompilerError(f"input tensor {t!r} is not declared", where=where)
                if t not in self._producer and t not in self.inputs and t not in self.params:
                    raise CompilerError(f"input tensor {t!r} has no producer and is neither a "
                                        "graph input nor a parameter", where=where)
            want = infer_shapes(op, [self._tensors[t].shape for t in op.inputs])
            for t, s in zip(op.outputs, want, strict=True):
                if self._tensors[t].shape != s:
                    raise CompilerError(f"output {t!r} has shape {list(self._tensors[t].shape)}"
                                        f" but the {op.kind} rule gives {list(s)}", where=where)
        for t in self.outputs:
            if t not in self._tensors:
                raise CompilerError(f"graph output {t!r} is not declared",
                                    where=f"graph {self.name!r}", key="outputs")
        return self

    # -------------------------------------------------------------- lowering
    def problem(self, op: Op | str) -> Problem | None:
        """The :class:`Problem` of a MAC op (``None`` for other kinds).

        ``matmul`` folds leading dims of ``A`` into rows; ``bmm`` folds the broadcast batch
        dims into the batch; convolutions keep batch, strides, pads and dilations
        (``R``/``P`` along the width, ``S``/``Q`` along the height, Timeloop's naming).
        A grouped convolution that is neither plain nor depthwise (multiplier 1) raises.
        """
        op = self.op(op) if isinstance(op, str) else op
        if op.kind not in MAC_KINDS:
            return None
        shp = [self.tensor(t).shape for t in op.inputs]
        for t, s in zip(op.inputs, shp, strict=False):
            if 0 in s:
                raise _err(op, f"input {t!r} has shape {list(s)}, with a zero-size dimension; "
                               "a MAC op needs non-empty operands")
        try:
            if op.kind == "matmul":
                lead, m, k, n = matmul_dims(op, shp[0], shp[1])
                return matmul(prod(lead) * m, k, n, name=op.name)
            if op.kind == "bmm":
                lead, m, k, n = _bmm_dims(op, shp[0], shp[1])
                return bmm(prod(lead), m, k, n, name=op.name)
            return _lower_conv(op, shp[0], shp[1])
        except CompilerError:
            raise
        except MapspaceError as e:  # the Problem's own checks (e.g. the 64-bit size bounds)
            raise _err(op, e.detail) from None

    def summary(self) -> GraphSummary:
        kinds = Counter(op.kind for op in self.ops())
        probs = [p for op in self.ops() if (p := self.problem(op)) is not None]
        return GraphSummary(
            name=self.name, num_ops=len(self),
            by_kind=tuple(sorted(kinds.items(), key=lambda kv: (-kv[1], kv[0]))),
            mac_ops=len(probs), macs=sum(p.macs for p in probs),
            param_elements=sum(self._tensors[t].size for t in self.params),
        )

    @property
    def macs(self) -> int:
        return self.summary().macs

    def __repr__(self) -> str:
        return f"Graph({self.name!r}, {len(self)} ops)"


def _lower_conv(op: Op, x: Shape, w: Shape) -> Problem:
    n, _, oh, ow = _conv_out(op, x, w)
    c = x[1]
    group = int(op.attr("group", 1))
    sh, sw = op.attr("strides", (1, 1))
    pt, pl, pb, pr = op.attr("pads", (0, 0, 0, 0))
    dh, dw = op.attr("dilations", (1, 1))
    m, kh, kw = w[0], w[2], w[3]
    if group == 1 and op.kind == "conv2d":
        base = conv2d(n, c, kh, kw, m, kw, kh, name=op.name)
    elif group == c and m == c:
        base = depthwise_conv2d(n, c, kh, kw, kw, kh, name=op.name)
    else:
        raise _err(op, f"grouped convolution with group {group}, {c} input and {m} output "
                       "channels is neither plain (group 1) nor depthwise (group = channels "
                       "= filters) and cannot be lowered", key="group")
    sizes = dict(zip(base.dims, base.sizes, strict=True)) | {"P": ow, "Q": oh}
    return replace(
        base, sizes=tuple(sizes[d] for d in base.dims),
        coefficients=(("Wstride", sw), ("Hstride", sh), ("Wdilation", dw), ("Hdilation", dh)),
        extras=tuple(sorted(dict(H=x[2], W=x[3], Hpad=pt, Wpad=pl).items())),
    )
