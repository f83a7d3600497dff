"""Depthwise convolutions on Gemmini: one channel at a time through the array.

Gemmini's own library runs a depthwise convolution (``tiled_conv_dw`` in gemmini-rocc-tests'
``include/gemmini.h``) as a loop over channels, each channel a convolution with one input
and one output channel.  The emitter does the same within one loop nest (the mapping's
``C`` loops are ordinary loops of it): the weights of one compute are a ``1 x 1`` block
(one filter tap of one channel), its activations up to 16 output pixels of that channel,
so a scratchpad or accumulator row holds ONE element (``mvin``/``mvout`` with ``cols = 1``)
and the PE array does one MAC per cycle -- 1/256 of its peak, which is what Gemmini gets.

Layouts (Gemmini's, channels last): activations NHWC, weights ``[S, R, C]``, output
``[N, Q, P, C]``.  The emitter (:mod:`targets.gemmini.plan`) uses the tables below for the kind
``depthwise_conv2d``; the rest of its lowering (tiles, sliding windows, the compute tile,
bytes moved) is the same as for conv2d, with ``C`` an output dim instead of a reduction.

Search: Gemmini's default constraints let ``C`` fan out across the array rows (right for
a conv2d, whose rows reduce over ``C``); for a depthwise problem that is not a reduction,
so :func:`constraints` adds ``C=1`` there (no fan-out at all: the array computes one
channel), and :func:`search_arch` gives the scratchpad its capacity in elements when a row holds one
element (1/16 of its words; the accumulator's 16 instances of 1024 one-word rows already
count one element per row in the one column used).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from mapspace.arch import Arch
from mapspace.constraints import Constraints
from mapspace.constraints_yaml import constraints_from_list
from mapspace.problem import Problem

# tvm is imported inside the functions that use it (import_tvm(), `from tvm import ...`):
# it is heavy (~3 s) and optional, and `import targets` must work without it

KIND = "depthwise_conv2d"
#: TE axes of (activations, weights, output) in Gemmini layouts (see targets.gemmini.plan.AXES)
AXES = ([[("N", 1)], [("Q", "st"), ("S", "dl")], [("P", "st"), ("R", "dl")], [("C", 1)]],
        [[("S", 1)], [("R", 1)], [("C", 1)]],
        [[("N", 1)], [("Q", 1)], [("P", 1)], [("C", 1)]])
ITERS = ("N", "Q", "P", "C", "S", "R")
REDUCE = ("S", "R")
#: elements per scratchpad/accumulator row when one channel goes through the array
ROW_ELEMENTS = 1


def is_depthwise(problem: Problem) -> bool:
    """Whether ``problem`` is a depthwise convolution (no ``M``: one filter per channel)."""
    return "M" not in problem.dims and {"C", "R", "S", "P", "Q"} <= set(problem.dims)


def te(spec: Any) -> tuple[Any, Any, Any, Any]:
    """``(A, B, Z, A_dram)`` of a depthwise spec in Gemmini layouts (int8 in, int32 out)."""
    from tvm import te as tte

    s = spec.sizes
    st, pd, dl = spec.stride, spec.padding, spec.dilation
    A = tte.placeholder((s["N"], spec.H, spec.W, s["C"]), "int8", name="A")
    B = tte.placeholder((s["S"], s["R"], s["C"]), "int8", name="B")
    A_in = A
    if pd:
        from tvm import topi
        A_in = topi.nn.pad(A, (0, pd, pd, 0), (0, pd, pd, 0), name="A_pad")
    rs = tte.reduce_axis((0, s["S"]), name="S")
    rr = tte.reduce_axis((0, s["R"]), name="R")
    Z = tte.compute((s["N"], s["Q"], s["P"], s["C"]), lambda N, Q, P, C: tte.sum(
        A_in[N, Q * st + rs * dl, P * st + rr * dl, C].astype("int32")
        * B[rs, rr, C].astype("int32"), axis=[rs, rr]), name="Z")
    return A, B, Z, A_in


def shapes(spec: Any) -> list[tuple[int, ...]]:
    s = spec.sizes
    return [(s["N"], spec.H, spec.W, s["C"]), (s["S"], s["R"], s["C"]),
            (s["N"], s["Q"], s["P"], s["C"])]


def to_layout(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``I[N, C, H, W]``, ``W[C, S, R]`` (targets.tvm_common) -> NHWC, ``[S, R, C]``."""
    return (np.ascontiguousarray(a.transpose(0, 2, 3, 1)),
            np.ascontiguousarray(b.transpose(1, 2, 0)))


def from_layout(z: np.ndarray) -> np.ndarray:
    """``[N, Q, P, C]`` -> ``O[N, C, Q, P]``."""
    return np.ascontiguousarray(z.transpose(0, 3, 1, 2))


def constraints(base: Constraints, problem: Problem) -> Constraints:
    """``base`` (the target's defaults), plus no fan-out of ``C`` across the array rows
    for a depthwise ``problem`` (the rows reduce; a depthwise ``C`` is not a reduction)."""
    if not is_depthwise(problem):
        return base
    extra = constraints_from_list(
        [{"target": "Accumulator", "type": "spatial", "factors": "C=1"}],
        "gemmini: depthwise convolutions run one channel at a time", strict=False)
    return base.merged(extra)


def search_arch(arch: Arch, problem: Problem) -> Arch:
    """``arch`` with the scratchpad holding one element per row for a depthwise
    ``problem`` (its row count, not its words, bounds the tiles)."""
    if not is_depthwise(problem):
        return arch
    lv = arch.levels[arch.level_index("Scratchpad")]
    return arch.with_level("Scratchpad", multiple_buffering=lv.multiple_buffering * 16
                           // ROW_ELEMENTS)
