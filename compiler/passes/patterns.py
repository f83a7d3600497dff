"""Decomposed-op patterns over a small expression view, shared by the front ends.

Exporters write GELU as a chain of primitive ops, and each front end sees that chain in
its own node format (ONNX ``NodeProto`` lists, Relax bindings).  Each builds an
:class:`ExprView` -- nodes as ``(kind, inputs, outputs)`` with lower-case kinds (``erf``,
``tanh``, ``mul``, ``add``, ``div``, ``pow``), the one-element constants, the graph
outputs -- and :func:`match_gelu` recognises, at an ``erf`` or ``tanh`` node:

- ``0.5 * x * (1 + erf(x / sqrt 2))``, with either ``div`` by sqrt 2 or ``mul`` by its
  inverse;
- ``0.5 * x * (1 + tanh(sqrt(2/pi) * (x + 0.044715 * x^3)))`` with ``x^3`` as
  ``pow(x, 3)`` or ``x * x * x`` (``x * x`` also as ``pow(x, 2)``; any association),

in either order of the multiplications by ``x`` and ``0.5``.  The caller replaces a match
only when :meth:`ExprView.closed` holds (no inner tensor read outside it).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass

SQRT2 = math.sqrt(2.0)
SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)

__all__ = ["ExprNode", "ExprView", "GeluMatch", "match_gelu"]


@dataclass(frozen=True)
class ExprNode:
    """One node of the view: a lower-case op kind, its input and output tensor names."""

    kind: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]


class ExprView:
    """Read-only queries over a topologically ordered node list: producers, consumers,
    constant scalars.  Nodes are named by their index in the list."""

    def __init__(self, nodes: Sequence[ExprNode], scalar: Callable[[str], float | None],
                 outputs: Collection[str]):
        self.nodes = nodes
        self.scalar = scalar             # value of a one-element constant, else None
        self.outputs = outputs
        self.producer = {o: i for i, n in enumerate(nodes) for o in n.outputs}
        self.consumers: dict[str, list[int]] = {}
        for i, n in enumerate(nodes):
            for t in n.inputs:
                self.consumers.setdefault(t, []).append(i)

    def kind(self, i: int) -> str:
        return self.nodes[i].kind

    def only_consumer(self, t: str) -> int | None:
        c = self.consumers.get(t, [])
        return c[0] if len(c) == 1 and t not in self.outputs else None

    def node_of(self, t: str, *kinds: str) -> int | None:
        i = self.producer.get(t)
        return i if i is not None and self.nodes[i].kind in kinds else None

    def other(self, i: int, t: str) -> str | None:
        ins = self.nodes[i].inputs
        if len(ins) != 2 or t not in ins:
            return None
        return ins[1] if ins[0] == t else ins[0]

    def is_const(self, t: str, value: float, rel: float = 1e-3) -> bool:
        v = self.scalar(t)
        return v is not None and math.isclose(v, value, rel_tol=rel)

    def closed(self, group: Collection[int], out: str) -> bool:
        """No tensor made inside ``group`` but ``out`` is read outside it or is an output."""
        gs = set(group)
        inner = {o for j in group for o in self.nodes[j].outputs} - {out}
        return not any(o in self.outputs or any(c not in gs for c in self.consumers.get(o, []))
                       for o in inner)

    def square_of(self, t: str) -> tuple[str, int] | None:
        """``(x, node)`` when ``t`` is ``pow(x, 2)`` or ``mul(x, x)``."""
        i = self.node_of(t, "pow", "mul")
        if i is None:
            return None
        a, b = self.nodes[i].inputs[:2]
        if self.kind(i) == "pow" and self.is_const(b, 2.0, 1e-9):
            return a, i
        if self.kind(i) == "mul" and a == b:
            return a, i
        return None

    def cube_of(self, t: str, x: str) -> list[int] | None:
        """Nodes computing ``t = x^3`` as ``pow(x, 3)`` or ``x * x * x`` (any association)."""
        pw = self.node_of(t, "pow")
        if pw is not None:
            ok = self.nodes[pw].inputs[0] == x and self.is_const(self.nodes[pw].inputs[1], 3.0)
            return [pw] if ok else None
        m = self.node_of(t, "mul")
        if m is None:
            return None
        a, b = self.nodes[m].inputs[:2]
        for sq, lone in ((a, b), (b, a)):
            got = self.square_of(sq)
            if lone == x and got is not None and got[0] == x:
                return [m, got[1]]
        return None


@dataclass(frozen=True)
class GeluMatch:
    """A GELU chain: its argument ``x``, every node in it (``last`` makes ``output``) and
    ``approximate`` (``"none"`` for the erf form, ``"tanh"``)."""

    x: str
    group: tuple[int, ...]
    last: int
    output: str
    approximate: str


def _gelu_argument(v: ExprView, i: int) -> tuple[str, list[int], str] | None:
    """For an erf/tanh node, ``(x, nodes before it, approximate)`` for the GELU argument."""
    n = v.nodes[i]
    pre = v.producer.get(n.inputs[0])
    if pre is None:
        return None
    p = v.nodes[pre]
    if n.kind == "erf":
        if p.kind == "div" and v.is_const(p.inputs[1], SQRT2):
            return p.inputs[0], [pre], "none"
        if p.kind == "mul":
            for x, c in ((p.inputs[0], p.inputs[1]), (p.inputs[1], p.inputs[0])):
                if v.is_const(c, 1 / SQRT2):
                    return x, [pre], "none"
        return None
    if p.kind != "mul":  # tanh: mul(add(x, mul(x^3, 0.044715)), sqrt(2/pi))
        return None
    for inner, c in ((p.inputs[0], p.inputs[1]), (p.inputs[1], p.inputs[0])):
        add = v.node_of(inner, "add") if v.is_const(c, SQRT_2_OVER_PI) else None
        if add is None:
            continue
        a0, a1 = v.nodes[add].inputs[:2]
        for x, cube_mul in ((a0, a1), (a1, a0)):
            m = v.node_of(cube_mul, "mul")
            if m is None:
                continue
            m0, m1 = v.nodes[m].inputs[:2]
            for cube, c2 in ((m0, m1), (m1, m0)):
                if not v.is_const(c2, 0.044715):
                    continue
                got = v.cube_of(cube, x)
                if got is not None:
                    return x, [pre, add, m, *got], "tanh"
    return None


def match_gelu(v: ExprView, i: int) -> GeluMatch | None:
    """The GELU chain around the ``erf``/``tanh`` node ``i``, if it is one (see module doc);
    whether it is closed is left to the caller."""
    if v.kind(i) not in ("erf", "tanh"):
        return None
    found = _gelu_argument(v, i)
    if found is None:
        return None
    x, before, approx = found
    out0 = v.nodes[i].outputs[0]
    a = v.only_consumer(out0)
    if a is None or v.kind(a) != "add" or not v.is_const(v.other(a, out0) or "", 1.0):
        return None
    chain: list[int] = []
    has_x = has_half = False
    t = v.nodes[a].outputs[0]
    while not (has_x and has_half):
        m = v.only_consumer(t)
        if m is None or v.kind(m) != "mul":
            break
        o = v.other(m, t) or ""
        h = v.node_of(o, "mul")
        if o == x and not has_x:
            has_x = True
        elif v.is_const(o, 0.5) and not has_half:
            has_half = True
        elif (h is not None and not has_x and not has_half and x in v.nodes[h].inputs
              and v.is_const(v.other(h, x) or "", 0.5)
              and v.only_consumer(v.nodes[h].outputs[0]) == m):
            has_x = has_half = True
            chain.append(h)
        else:
            break
        chain.append(m)
        t = v.nodes[m].outputs[0]
    if not (has_x and has_half):
        return None
    return GeluMatch(x, (*before, i, a, *chain), chain[-1], t, approx)
