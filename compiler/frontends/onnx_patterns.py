"""Subgraphs of exported ONNX models recognised as one graph op.

Exporters write several activations and normalisations as chains of primitive ops.
:func:`find_patterns` finds them in a (folded) node list and says which op replaces each:

===========  ==============================================================================
``gelu``     ``0.5 * x * (1 + erf(x / sqrt 2))`` (either ``Div`` by sqrt 2 or ``Mul`` by
             its inverse; either order of the multiplications by ``x`` and ``0.5``), and the
             Tanh form ``0.5 * x * (1 + tanh(sqrt(2/pi) * (x + 0.044715 * x^3)))`` with
             ``x^3`` as ``Pow(x, 3)`` or ``x * x * x`` (``approximate="tanh"``)
``silu``     ``x * sigmoid(x)``
``hardswish``  ``x * HardSigmoid(x)`` with alpha 1/6, beta 1/2
``layernorm``  ``(x - mean(x)) / sqrt(mean((x - mean(x))^2) + eps) [* gamma] [+ beta]`` over
             the last axis (``Pow(d, 2)`` or ``d * d``; ``Div`` by the root or ``Mul`` by its
             ``Reciprocal``)
``rmsnorm``  ``x / sqrt(mean(x^2) + eps) [* weight]`` over the last axis (the root's
             reciprocal as ``Reciprocal``, ``Div(1, .)`` or a ``Div`` of ``x``)
===========  ==============================================================================

A chain is replaced only when its inner tensors are read by nothing outside it and none
is a graph output; an ``Erf``/``Tanh``/``Sigmoid`` outside these patterns stays an op of
its own.  GELU is recognised by :func:`compiler.passes.patterns.match_gelu`, shared with
the Relax front end, over :attr:`NodeView.expr`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np

from compiler.passes.patterns import ExprNode, ExprView, match_gelu


@dataclass(frozen=True)
class Fused:
    """What replaces a matched chain: emitted at its last node, named after ``anchor``."""

    anchor: int
    kind: str
    inputs: tuple[str, ...]
    output: str
    attrs: tuple[tuple[str, object], ...] = ()


class NodeView:
    """Read-only queries over a node list: producers, consumers, constant scalars."""

    def __init__(self, nodes: list[Any], consts: dict[str, np.ndarray], outputs: set[str],
                 opset: int):
        self.nodes = nodes
        self.consts = consts
        self.outputs = outputs
        self.opset = opset
        self.producer = {o: i for i, n in enumerate(nodes) for o in n.output}
        self.consumers: dict[str, list[int]] = {}
        for i, n in enumerate(nodes):
            for t in n.input:
                self.consumers.setdefault(t, []).append(i)

    @cached_property
    def expr(self) -> ExprView:
        """The same nodes as an :class:`ExprView` (kinds are lower-case op types)."""
        return ExprView([ExprNode(n.op_type.lower(), tuple(n.input), tuple(n.output))
                         for n in self.nodes], self.scalar, self.outputs)

    def op(self, i: int) -> str:
        return self.nodes[i].op_type

    def only_consumer(self, t: str) -> int | None:
        c = self.consumers.get(t, [])
        return c[0] if len(c) == 1 and t not in self.outputs else None

    def node_of(self, t: str, *op_types: str) -> int | None:
        i = self.producer.get(t)
        return i if i is not None and self.nodes[i].op_type in op_types else None

    def other(self, i: int, t: str) -> str | None:
        ins = list(self.nodes[i].input)
        if len(ins) != 2 or t not in ins:
            return None
        return ins[1] if ins[0] == t else ins[0]

    def scalar(self, t: str) -> float | None:
        c = self.consts.get(t)
        return float(c.reshape(-1)[0]) if c is not None and c.size == 1 else None

    def is_const(self, t: str, value: float, rel: float = 1e-3) -> bool:
        v = self.scalar(t)
        return v is not None and math.isclose(v, value, rel_tol=rel)

    def attr(self, i: int, name: str, default: object = None) -> object:
        from onnx import helper

        for a in self.nodes[i].attribute:
            if a.name == name:
                return helper.get_attribute_value(a)
        return default

    def reduce_axes(self, i: int) -> tuple[int, ...] | None:
        """The axes a ReduceMean reduces (attribute or, from opset 18, a constant input)."""
        axes = self.attr(i, "axes")
        ins = self.nodes[i].input
        if axes is None and len(ins) > 1 and ins[1]:
            c = self.consts.get(ins[1])
            axes = None if c is None else c.reshape(-1).tolist()
        return None if axes is None else tuple(int(a) for a in axes)

    def closed(self, group: list[int], out: str) -> bool:
        """No tensor made inside ``group`` but ``out`` is read outside it or is an output."""
        return self.expr.closed(group, out)

    def square_of(self, t: str) -> tuple[str, int] | None:
        """``(x, node)`` when ``t`` is ``Pow(x, 2)`` or ``Mul(x, x)``."""
        return self.expr.square_of(t)

    def last_axis_mean(self, t: str, rank: int | None) -> tuple[str, int] | None:
        """``(x, node)`` when ``t`` is ``ReduceMean(x)`` over the last axis, keeping dims."""
        i = self.node_of(t, "ReduceMean")
        if i is None or not self.attr(i, "keepdims", 1):
            return None
        axes = self.reduce_axes(i)
        if axes is None or len(axes) != 1 or not (axes[0] == -1 or
                                                   (rank is not None and axes[0] == rank - 1)):
            return None
        return self.nodes[i].input[0], i


def _chain_mul_add(v: NodeView, t: str, group: list[int],
                   add_ok: bool = True) -> tuple[str, list[str]]:
    """Absorb ``[* const [+ const]]`` after ``t`` into ``group``; returns the last tensor and
    the constants (gain, then bias)."""
    extra: list[str] = []
    for op_type, ok in (("Mul", True), ("Add", add_ok)):
        nxt = v.only_consumer(t)
        if not ok or nxt is None or v.op(nxt) != op_type:
            break
        c = v.other(nxt, t)
        if c is None or c not in v.consts:
            break
        group.append(nxt)
        extra.append(c)
        t = v.nodes[nxt].output[0]
    return t, extra


def _gelu(v: NodeView, i: int) -> tuple[list[int], Fused] | None:
    m = match_gelu(v.expr, i)
    if m is None:
        return None
    attrs = (("approximate", "tanh"),) if m.approximate == "tanh" else ()
    return list(m.group), Fused(i, "gelu", (m.x,), m.output, attrs)


def _silu_or_hardswish(v: NodeView, i: int) -> tuple[list[int], Fused] | None:
    """``Mul(x, Sigmoid(x))`` -> silu; ``Mul(x, HardSigmoid(x; 1/6, 1/2))`` -> hardswish."""
    n = v.nodes[i]
    x = n.input[0]
    if n.op_type == "HardSigmoid" and not (
            math.isclose(float(v.attr(i, "alpha", 0.2)), 1 / 6, rel_tol=1e-4)
            and math.isclose(float(v.attr(i, "beta", 0.5)), 0.5, rel_tol=1e-4)):
        return None
    m = v.only_consumer(n.output[0])
    if m is None or v.op(m) != "Mul" or v.other(m, n.output[0]) != x:
        return None
    kind = "silu" if n.op_type == "Sigmoid" else "hardswish"
    return [i, m], Fused(i, kind, (x,), v.nodes[m].output[0])


def _norm(v: NodeView, i: int, ranks: dict[str, int]) -> tuple[list[int], Fused] | None:
    """A ``Sqrt`` node at the heart of a decomposed LayerNorm or RMSNorm."""
    add = v.node_of(v.nodes[i].input[0], "Add")
    if add is None:
        return None
    a0, a1 = v.nodes[add].input[:2]
    var, eps = (a0, a1) if v.scalar(a1) is not None else (a1, a0)
    if v.scalar(eps) is None:
        return None
    mean = v.last_axis_mean(var, None)
    if mean is None:
        return None
    sq = v.square_of(mean[0])
    if sq is None:
        return None
    d, sq_node = sq
    root = v.nodes[i].output[0]
    # the normalised value: Div(d, root), or Mul(d, Reciprocal(root)) / Mul(d, Div(1, root))
    div = v.only_consumer(root)
    if div is None:
        return None
    one_over = v.op(div) == "Div" and v.is_const(v.nodes[div].input[0], 1.0, 1e-9)
    if v.op(div) == "Div" and v.nodes[div].input[1] == root and not one_over:
        num, inv, norm = v.nodes[div].input[0], [], div
    elif v.op(div) == "Reciprocal" or one_over:
        norm = v.only_consumer(v.nodes[div].output[0])
        if norm is None or v.op(norm) != "Mul":
            return None
        num, inv = v.other(norm, v.nodes[div].output[0]) or "", [div]
    else:
        return None
    if num != d:
        return None
    sub = v.node_of(d, "Sub")
    ln = sub is not None and v.last_axis_mean(v.nodes[sub].input[1], None) is not None \
        and v.last_axis_mean(v.nodes[sub].input[1], None)[0] == v.nodes[sub].input[0]
    group = [i, add, mean[1], sq_node, *inv, norm]
    if ln:
        x = v.nodes[sub].input[0]
        group += [sub, v.last_axis_mean(v.nodes[sub].input[1], None)[1]]  # type: ignore[index]
        kind = "layernorm"
    else:
        x, kind = d, "rmsnorm"
    out, extra = _chain_mul_add(v, v.nodes[norm].output[0], group, add_ok=kind == "layernorm")
    rank = ranks.get(x)
    return group, Fused(i, kind, (x, *extra), out,
                        (("axis", -1 if rank is None else rank - 1),
                         ("epsilon", float(v.scalar(eps) or 0.0))))


def find_patterns(v: NodeView, ranks: dict[str, int]) -> tuple[set[int], dict[int, Fused]]:
    """All matched chains: (every node in one, last node of each -> what replaces it)."""
    fused: set[int] = set()
    at: dict[int, Fused] = {}
    for i, n in enumerate(v.nodes):
        if n.domain not in ("", "ai.onnx") or i in fused:
            continue
        if n.op_type in ("Erf", "Tanh"):
            found = _gelu(v, i)
        elif n.op_type in ("Sigmoid", "HardSigmoid"):
            found = _silu_or_hardswish(v, i)
        elif n.op_type == "Sqrt":
            found = _norm(v, i, ranks)
        else:
            continue
        if found is None:
            continue
        group, f = found
        if fused.intersection(group) or not v.closed(group, f.output):
            continue
        fused.update(group)
        at[max(group)] = f
    return fused, at
