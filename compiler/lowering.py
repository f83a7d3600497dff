"""Lowering a graph op to the problem the search and the cost models see: its
:class:`~mapspace.problem.Problem` with the passes' attrs applied (:func:`lower_op`),
what makes two problems one search (:func:`shape_key`), and the sparse cost model of a
pruned op (:func:`sparse_model`)."""

from __future__ import annotations

from compiler.errors import CompilerError
from compiler.graph import Graph, Op
from compiler.result import TENSOR_ATTRS
from cost_models.sparseloop import PrunedWeights
from mapspace.problem import Problem


def lower_op(graph: Graph, op: Op) -> Problem | None:
    """``graph.problem(op)`` with the op's bit-width/density attrs applied to its tensors."""
    p = graph.problem(op)
    if p is None:
        return None
    for attr, (tensor, fld) in TENSOR_ATTRS.items():
        v = op.attr(attr)
        if v is None or tensor not in p.tensor_names:
            continue
        try:
            val = int(v) if fld == "bits" else float(v)
        except (TypeError, ValueError):
            raise CompilerError(f"expected a number, found {v!r}", where=f"op {op.name!r}",
                                key=attr) from None
        if (fld == "bits" and val < 1) or (fld == "density" and not 0.0 < val <= 1.0):
            raise CompilerError(f"out of range: {v!r}", where=f"op {op.name!r}", key=attr)
        p = p.with_tensor(tensor, **{fld: val})
    return p


def shape_key(p: Problem) -> tuple:
    """What makes two problems the same search: everything but the name (and extras)."""
    return (p.dims, p.sizes, p.coefficients, p.tensors)


def sparse_model(op: Op) -> PrunedWeights | None:
    """The sparse cost model of a MAC op from its ``sparsify`` attrs (``weight_density``,
    ``pruning``, ``nm``): Timeloop's sparse model under the Sparseloop description of
    pruned weights (:class:`~cost_models.sparseloop.PrunedWeights`); ``None`` when dense."""
    d = op.attr("weight_density")
    if d is None or float(d) >= 1.0:  # type: ignore[arg-type]
        return None
    nm = op.attr("nm")
    kind = "nm" if op.attr("pruning") == "nm" and nm else "magnitude"
    return PrunedWeights(float(d), kind,  # type: ignore[arg-type]
                         (int(nm[0]), int(nm[1])) if nm else None)  # type: ignore[index]


__all__ = ["lower_op", "shape_key", "sparse_model"]
