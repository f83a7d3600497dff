"""Operator fusion: fold the elementwise epilogue of a MAC op into the op itself.

Three patterns, each a chain of single-consumer ops hanging off one MAC op's output:

* **softmax** (attention scores): ``bmm``/``matmul`` -> [``mul`` by a scalar param] ->
  ``softmax`` over the last axis.  ``fused=("scale", "softmax")`` (or ``("softmax",)``
  without the scale), ``row_complete_dim="M"``.
* **layernorm** (BERT out-projection and FFN2): ``matmul`` -> [bias ``add``] ->
  [residual ``add``] -> ``layernorm`` over the last axis.
  ``fused=("bias", "residual", "layernorm")`` (the steps present), ``row_complete_dim="M"``.
* **bias_act**: ``matmul``/``conv2d``/``depthwise_conv2d`` -> [bias ``add``] ->
  ``relu``/``gelu``.  ``fused=("bias", "relu")`` etc.

``fused`` lists the epilogue in execution order; ``"bias"`` appears when the fused op
carries a bias (absorbed from an ``add`` or, as in the zoo's ResNet convs, its own third
input).  ``row_complete_dim`` names the :class:`~mapspace.problem.Problem` dimension (the
output column dim, Timeloop's ``M`` for matmul/bmm) that must be complete at the
accumulator level before the epilogue can run (softmax and layernorm reduce over a row).

Before / after (BERT FFN2)::

    ffn2 = matmul(h, W)            ffn2 = matmul(h, W, b)   fused=("bias", "residual",
    t1 = add(ffn2, b)       ==>        -> ffn_layernorm            "layernorm")
    t2 = add(x, t1)                    fused_inputs=(x, gamma, beta), row_complete_dim="M"
    y  = layernorm(t2, gamma, beta)

The fused op keeps its name and kind; its output is the last absorbed op's output.  A
bias ``(N,)`` becomes the op's third input when it has none; other absorbed operands
(residual, layernorm gamma/beta, the softmax scale) go to the ``fused_inputs`` attr (a MAC
op's input list is fixed by its shape rule).  ``fused_ops`` names the absorbed ops.  A
chain is fused only when each intermediate tensor has exactly one consumer and is not a
graph output.
"""

from __future__ import annotations

from dataclasses import dataclass

from compiler.graph import Graph, Op
from compiler.passes._rewrite import rebuild


@dataclass(frozen=True)
class _Match:
    mac: Op
    chain: tuple[Op, ...]  # absorbed ops, in order
    steps: tuple[str, ...]  # "scale", "bias", "residual", "softmax", ...
    bias: str | None  # a bias param to append as the MAC's third input
    side: tuple[str, ...]  # other absorbed operands -> fused_inputs
    row_complete: bool


def _next(graph: Graph, tensor: str, kinds: tuple[str, ...]) -> Op | None:
    """The one consumer of ``tensor`` if its kind is in ``kinds`` (else ``None``)."""
    if tensor in graph.outputs:
        return None
    cons = graph.consumers(tensor)
    if len(cons) != 1 or cons[0].kind not in kinds:
        return None
    return cons[0]


def _other(op: Op, tensor: str) -> str | None:
    """The operand of a binary ``op`` that is not ``tensor`` (``None`` if it reads it twice)."""
    rest = [t for t in op.inputs if t != tensor]
    return rest[0] if len(op.inputs) == 2 and len(rest) == 1 else None


def _is_param(graph: Graph, t: str) -> bool:
    return t in graph.params


def _squeeze_lead(shape: tuple[int, ...]) -> tuple[int, ...]:
    i = 0
    while i < len(shape) and shape[i] == 1:
        i += 1
    return shape[i:]


def _bias(graph: Graph, mac: Op, out: str, add: Op) -> str | None:
    """The bias param of ``add`` if it is a per-output-channel constant for ``mac``."""
    b = _other(add, out)
    if b is None or not _is_param(graph, b):
        return None
    if graph.tensor(add.outputs[0]).shape != graph.tensor(out).shape:
        return None
    shape = graph.tensor(out).shape
    bshape = _squeeze_lead(graph.tensor(b).shape)
    if mac.kind in ("conv2d", "depthwise_conv2d"):
        return b if bshape == (shape[1], 1, 1) else None
    return b if bshape == shape[-1:] else None


def _last_axis(graph: Graph, op: Op) -> bool:
    rank = len(graph.tensor(op.inputs[0]).shape)
    axis = int(op.attr("axis", -1))  # type: ignore[arg-type]
    return axis in (-1, rank - 1)


def _match_softmax(graph: Graph, mac: Op) -> _Match | None:
    if mac.kind not in ("matmul", "bmm"):
        return None
    out = mac.outputs[0]
    chain: list[Op] = []
    steps: list[str] = []
    side: list[str] = []
    nxt = _next(graph, out, ("mul", "softmax"))
    if nxt is not None and nxt.kind == "mul":
        s = _other(nxt, out)
        if s is None or not _is_param(graph, s) or graph.tensor(s).size != 1:
            return None
        chain.append(nxt)
        steps.append("scale")
        side.append(s)
        nxt = _next(graph, nxt.outputs[0], ("softmax",))
    if nxt is None or nxt.kind != "softmax" or not _last_axis(graph, nxt):
        return None
    chain.append(nxt)
    steps.append("softmax")
    return _Match(mac, tuple(chain), tuple(steps), None, tuple(side), True)


def _match_epilogue(graph: Graph, mac: Op, finals: tuple[str, ...],
                    residual: bool) -> _Match | None:
    """[bias add] -> [residual add, when ``residual``] -> one of ``finals``."""
    out = mac.outputs[0]
    cur = out
    chain: list[Op] = []
    steps: list[str] = []
    side: list[str] = []
    bias = None
    nxt = _next(graph, cur, ("add", *finals))
    if nxt is not None and nxt.kind == "add" and (b := _bias(graph, mac, cur, nxt)):
        chain.append(nxt)
        steps.append("bias")
        bias = b
        cur = nxt.outputs[0]
        nxt = _next(graph, cur, ("add", *finals))
    if residual and nxt is not None and nxt.kind == "add":
        r = _other(nxt, cur)
        if r is None or _is_param(graph, r) or \
                graph.tensor(nxt.outputs[0]).shape != graph.tensor(cur).shape:
            return None
        chain.append(nxt)
        steps.append("residual")
        side.append(r)
        cur = nxt.outputs[0]
        nxt = _next(graph, cur, finals)
    if nxt is None or nxt.kind not in finals:
        return None
    if nxt.kind == "layernorm":
        if not _last_axis(graph, nxt):
            return None
        side.extend(nxt.inputs[1:])
    chain.append(nxt)
    steps.append(nxt.kind)
    has_own_bias = len(mac.inputs) == 3
    if has_own_bias and bias is not None:  # a second bias: keep it as a side operand
        side.insert(0, bias)
        bias = None
    if has_own_bias and "bias" not in steps:
        steps.insert(0, "bias")
    return _Match(mac, tuple(chain), tuple(steps), bias, tuple(side),
                  nxt.kind == "layernorm")


def _fused_op(m: _Match) -> Op:
    mac = m.mac
    inputs = (*mac.inputs, m.bias) if m.bias is not None else mac.inputs
    attrs = dict(mac.attrs) | {
        "fused": m.steps,
        "fused_ops": tuple(op.name for op in m.chain),
    }
    if m.side:
        attrs["fused_inputs"] = m.side
    if m.row_complete:
        attrs["row_complete_dim"] = "M"
    return Op.make(mac.name, mac.kind, inputs, m.chain[-1].outputs, **attrs)


def fuse(graph: Graph, *, softmax: bool = True, layernorm: bool = True,
         bias_act: bool = True) -> Graph:
    """A new graph with MAC-op epilogues fused (see the module docs); ``graph`` is unchanged.

    ``softmax``, ``layernorm`` and ``bias_act`` switch the three patterns on or off.
    """
    matches: dict[str, _Match] = {}
    for op in graph.ops():
        if op.kind not in ("matmul", "bmm", "conv2d", "depthwise_conv2d") or op.attr("fused"):
            continue
        m = None
        if softmax:
            m = _match_softmax(graph, op)
        if m is None and layernorm and op.kind == "matmul":
            m = _match_epilogue(graph, op, ("layernorm",), residual=True)
        if m is None and bias_act and op.kind != "bmm":
            m = _match_epilogue(graph, op, ("relu", "gelu"), residual=False)
        if m is not None:
            matches[op.name] = m
    gone = {c.name for m in matches.values() for c in m.chain}
    ops = []
    for op in graph.ops():
        if op.name in gone:
            continue
        ops.append(_fused_op(matches[op.name]) if op.name in matches else op)
    return rebuild(graph, ops)


__all__ = ["fuse"]
