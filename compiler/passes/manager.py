"""The pass registry and driver: parse ``"fuse,quantize=int8,sparsify=2:4"``, run in order.

Each pass is a pure function ``Graph -> Graph`` (keyword arguments from its spec value):

====================  ============================================================
spec                  meaning
====================  ============================================================
``fuse``              all fusions; ``fuse=softmax+layernorm`` only those listed
                      (``softmax``, ``layernorm``, ``bias_act``)
``quantize=int8``     8-bit (``int4``/``4`` for 4-bit; bare ``quantize`` is int8)
``sqnr``              SQNR per MAC op at its quantized bits (``sqnr=int4`` to force)
``sparsify=2:4``      N:M structured; ``sparsify=0.3`` magnitude pruning to density 0.3
====================  ============================================================
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from compiler.errors import CompilerError
from compiler.graph import Graph, Op
from compiler.passes.fuse import fuse
from compiler.passes.quantize import problem_bits, quantize, sqnr
from compiler.passes.sparsify import problem_density, sparsify
from mapspace.problem import Problem

Spec = tuple[str, dict[str, object]]


@dataclass(frozen=True)
class PassInfo:
    """A registered pass: ``run(graph, **parse(value))`` is the pass applied."""

    name: str
    explanation: str
    run: Callable[..., Graph]
    parse: Callable[[str | None], dict[str, object]]
    syntax: str


def _bad(item: str, expected: str) -> CompilerError:
    return CompilerError(f"expected {expected}", where="parse_passes", key=item)


def _parse_fuse(v: str | None) -> dict[str, object]:
    names = ("softmax", "layernorm", "bias_act")
    if v is None:
        return {}
    chosen = [s.strip() for s in v.split("+")]
    unknown = [s for s in chosen if s not in names]
    if unknown:
        raise _bad(f"fuse={v}", f"fusions from {', '.join(names)} joined by '+', found "
                                f"{', '.join(map(repr, unknown))}")
    return {n: n in chosen for n in names}


def _parse_bits(v: str | None, name: str, default: int | None) -> dict[str, object]:
    if v is None:
        return {} if default is None else {"bits": default}
    s = v.strip().lower().removeprefix("int")
    if s not in ("8", "4"):
        raise _bad(f"{name}={v}", "int8 or int4")
    return {"bits": int(s)}


def _parse_sparsify(v: str | None) -> dict[str, object]:
    item = f"sparsify={v}"
    if v is None:
        raise _bad("sparsify", "a value: N:M (e.g. 2:4) or a density in (0, 1]")
    if ":" in v:
        try:
            n, m = (int(x) for x in v.split(":"))
        except ValueError:
            raise _bad(item, "N:M with integers (e.g. 2:4)") from None
        if not 1 <= n < m:
            raise _bad(item, f"N:M with 1 <= N < M, found {n}:{m}")
        return {"nm": (n, m)}
    try:
        d = float(v)
    except ValueError:
        raise _bad(item, "N:M (e.g. 2:4) or a density in (0, 1]") from None
    if not 0.0 < d <= 1.0:
        raise _bad(item, f"a density in (0, 1], found {d}")
    return {"density": d}


#: Every pass by name, in the order they usually run.
PASSES: dict[str, PassInfo] = {p.name: p for p in (
    PassInfo("fuse", "fold MAC-op epilogues (scale+softmax, bias+residual+layernorm, "
             "bias+relu/gelu) into the MAC op", fuse, _parse_fuse,
             "fuse[=softmax+layernorm+bias_act]"),
    PassInfo("quantize", "symmetric int8/int4 weights (per channel) and activations (per "
             "tensor), 32-bit accumulation", quantize,
             lambda v: _parse_bits(v, "quantize", 8), "quantize[=int8|int4]"),
    PassInfo("sqnr", "measure each MAC op's quantization SQNR (dB) against fp32 on sample "
             "data", sqnr, lambda v: _parse_bits(v, "sqnr", None), "sqnr[=int8|int4]"),
    PassInfo("sparsify", "prune weights: magnitude to a density, or N:M structured (2:4)",
             sparsify, _parse_sparsify, "sparsify=N:M|DENSITY"),
)}


def parse_passes(text: str) -> list[Spec]:
    """``"fuse,quantize=int8,sparsify=2:4"`` -> ``[(name, kwargs), ...]`` in order.

    Raises :class:`CompilerError` naming the bad item (and listing the known passes).
    """
    if not isinstance(text, str):
        raise CompilerError(f"expected a comma-separated string, found {text!r}",
                            where="parse_passes", key="passes")
    specs: list[Spec] = []
    for raw in text.split(","):
        item = raw.strip()
        if not item:
            raise CompilerError(f"empty item in {text!r}; known passes: {', '.join(PASSES)}",
                                where="parse_passes", key="passes")
        name, eq, value = item.partition("=")
        name = name.strip()
        if name not in PASSES:
            raise CompilerError(f"unknown pass {name!r}; known passes: "
                                f"{', '.join(PASSES)}", where="parse_passes", key=item)
        if any(n == name for n, _ in specs):  # quantize=int8,quantize=int4: which one?
            raise CompilerError(f"pass {name!r} is given twice", where="parse_passes",
                                key=item)
        specs.append((name, PASSES[name].parse(value.strip() if eq else None)))
    return specs


def run_passes(graph: Graph, specs: str | Sequence[Spec]) -> Graph:
    """Apply the passes in order (``specs`` as text or from :func:`parse_passes`)."""
    if isinstance(specs, str):
        specs = parse_passes(specs)
    for name, kwargs in specs:
        if name not in PASSES:
            raise CompilerError(f"unknown pass {name!r}; known passes: {', '.join(PASSES)}",
                                where="run_passes", key=name)
        graph = PASSES[name].run(graph, **kwargs)
    return graph


def describe() -> list[tuple[str, str]]:
    """``(name, explanation)`` of every pass (with its spec syntax), for ``mapspace passes``."""
    return [(p.name, f"{p.explanation} (spec: {p.syntax})") for p in PASSES.values()]


def annotated_problem(graph: Graph, op: Op | str) -> Problem | None:
    """``graph.problem(op)`` with the passes' per-tensor bits and weight density applied."""
    op = graph.op(op) if isinstance(op, str) else op
    p = graph.problem(op)
    if p is None:
        return None
    for t, b in problem_bits(op).items():
        p = p.with_tensor(t, bits=b)
    for t, d in problem_density(op).items():
        p = p.with_tensor(t, density=d)
    return p


__all__ = ["PASSES", "PassInfo", "annotated_problem", "describe", "parse_passes",
           "run_passes"]
