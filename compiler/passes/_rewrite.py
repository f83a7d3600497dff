"""Private helpers shared by the passes: copy an op with new attrs, rebuild a graph."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from compiler.graph import Graph, Op


def with_attrs(op: Op, **attrs: object) -> Op:
    """A copy of ``op`` with ``attrs`` set (existing keys overwritten)."""
    return Op.make(op.name, op.kind, op.inputs, op.outputs, **(dict(op.attrs) | attrs))


def rebuild(graph: Graph, ops: Iterable[Op]) -> Graph:
    """A new, validated graph with ``graph``'s inputs, params and outputs and ``ops``.

    Tensor shapes, dtypes and param values come from ``graph``; tensors no op writes any
    more vanish.
    Tensors an op reads only through its ``fused_inputs`` attr (a residual, layernorm
    gamma/beta) become dependency edges, so the topological order stays right.
    """
    old = graph.tensors
    g = Graph(graph.name)
    for t in graph.inputs:
        g.add_input(t, old[t].shape, old[t].dtype)
    for t in graph.params:
        g.add_param(t, old[t].shape, old[t].dtype, graph.values.get(t))
    ops = list(ops)
    for op in ops:
        g.add_op(op, shapes={t: old[t].shape for t in op.outputs},
                 dtype=old[op.outputs[0]].dtype if op.outputs else None)
    for op in ops:
        for t in op.attr("fused_inputs", ()):  # type: ignore[union-attr]
            src = g.producer(t)
            if src is None:
                continue
            if g.nx.has_edge(src.name, op.name):
                tensors = g.nx.edges[src.name, op.name]["tensors"]
                if t not in tensors:
                    g.nx.edges[src.name, op.name]["tensors"] = (*tensors, t)
            else:
                g.nx.add_edge(src.name, op.name, tensors=(t,))
    for t in graph.outputs:
        g.add_output(t)
    return g.validate()


def map_ops(graph: Graph, fn: Callable[[Op], Op]) -> Graph:
    """A rebuilt graph with ``fn(op)`` in place of every op (same structure)."""
    return rebuild(graph, [fn(op) for op in graph.ops()])
