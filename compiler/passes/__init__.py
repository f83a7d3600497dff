"""Graph passes: pure functions ``Graph -> Graph`` (see :mod:`compiler.passes.manager`).

A driver reads as a list of them::

    g = fuse(g)                 # fold MAC-op epilogues (softmax, layernorm, bias+act)
    g = quantize(g, bits=8)     # int8 weights/activations, 32-bit accumulation
    g = sparsify(g, nm=(2, 4))  # 2:4 structured weight sparsity
"""

from compiler.passes.fuse import fuse
from compiler.passes.manager import (
    PASSES,
    PassInfo,
    annotated_problem,
    describe,
    parse_passes,
    run_passes,
)
from compiler.passes.quantize import op_sqnr, problem_bits, quantize, sqnr
from compiler.passes.sparsify import problem_density, sparsify

__all__ = [
    "PASSES", "PassInfo", "annotated_problem", "describe", "fuse", "op_sqnr", "parse_passes",
    "problem_bits", "problem_density", "quantize", "run_passes", "sparsify", "sqnr",
]
