"""Weight sparsity: magnitude pruning to a density, or N:M structured pruning (2:4).

Records on every MAC op with a weight parameter (``matmul``, ``conv2d``,
``depthwise_conv2d``; not ``bmm``, whose operands are both activations):
``weight_density`` (the fraction of non-zero weights, in (0, 1]) and ``pruning``
(``"magnitude"`` or ``"nm"``); N:M also records ``nm=(N, M)`` and density ``N/M``
(exactly: N non-zeros in every group of M along the reduction).  The graph holds no weight
values, so the pass records the target; cost models read it through
:func:`problem_density` (Sparseloop's ``uniform`` model for magnitude pruning, exact for
N:M).
"""

from __future__ import annotations

from compiler.errors import CompilerError
from compiler.graph import Graph, Op
from compiler.passes._rewrite import map_ops, with_attrs

_WEIGHTED = ("matmul", "conv2d", "depthwise_conv2d")


def _check(density: float | None, nm: tuple[int, int] | None) -> tuple[float, dict]:
    if (density is None) == (nm is None):
        raise CompilerError("give exactly one of density or nm, found "
                            f"density={density!r}, nm={nm!r}", where="sparsify",
                            key="density/nm")
    if nm is not None:
        ok = (isinstance(nm, tuple | list) and len(nm) == 2
              and all(isinstance(v, int) and not isinstance(v, bool) for v in nm))
        if not ok or not 1 <= nm[0] < nm[1]:
            raise CompilerError(f"expected N:M with integers 1 <= N < M, found {nm!r}",
                                where="sparsify", key="nm")
        n, m = int(nm[0]), int(nm[1])
        return n / m, {"nm": (n, m), "pruning": "nm"}
    if isinstance(density, bool) or not isinstance(density, int | float) \
            or not 0.0 < float(density) <= 1.0:
        raise CompilerError(f"density must be in (0, 1], found {density!r}",
                            where="sparsify", key="density")
    return float(density), {"pruning": "magnitude"}


def sparsify(graph: Graph, density: float | None = None,
             nm: tuple[int, int] | None = None) -> Graph:
    """A new graph whose weighted MAC ops carry ``weight_density`` (see the module docs).

    Exactly one of ``density`` (in (0, 1]) and ``nm`` (``(N, M)``, ``1 <= N < M``).
    Raises :class:`CompilerError` naming the bad argument.
    """
    d, extra = _check(density, nm)

    def one(op: Op) -> Op:
        if op.kind not in _WEIGHTED or len(op.inputs) < 2 or op.inputs[1] not in graph.params:
            return op
        return with_attrs(op, weight_density=d, **extra)

    return map_ops(graph, one)


def problem_density(op: Op) -> dict[str, float]:
    """Per-tensor density for the op's Problem (``{"Weights": weight_density}`` or empty)."""
    d = op.attr("weight_density")
    return {} if d is None else {"Weights": float(d)}  # type: ignore[arg-type]


__all__ = ["problem_density", "sparsify"]
