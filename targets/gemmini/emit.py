"""Gemmini emission: a mapping of the ``gemmini`` target -> an ``s_tir.Schedule`` -> C that
calls Gemmini's intrinsics (``targets/gemmini/runtime``: a functional C model of them).

This module is the entry point (:func:`emit`, :func:`lower`, :func:`predicted_traffic`);
the work is done in

* :mod:`targets.gemmini.plan` -- the mapping as the emitted loop nest (split by the
  mapping's factors per level, DRAM/Scratchpad/Accumulator loops, then the compute tile)
  and its scratchpad/accumulator tiles, checked emittable;
* :mod:`targets.gemmini.schedule` -- the TE definition in Gemmini's layouts and the
  ``s_tir.Schedule`` (split, reorder, ``cache_read``/``cache_write`` into
  ``global.spad``/``global.acc``, ``tensorize`` of the compute tile), every step in the
  replayable trace written to ``trace.py``;
* :mod:`targets.gemmini.lowering` -- the lowering pass that turns the caches into
  ``mvin``/``mvin2``/``mvin3``/``mvout`` and the compute tile into preload/compute calls
  (sliding activation windows keep their overlap; the accumulator is tile resident);
* :mod:`targets.gemmini.build` -- the C compiler, the driver program, the files an
  emission writes, and the run compared bit-exactly with numpy.

conv2d is emitted **directly** (no im2col), in Gemmini's layouts: activations NHWC, weights
``[S, R, C, M]`` (HWIO), output NHWC (``[N, Q, P, M]``); the zero padding is a TE pad stage
run on the host inside the kernel (the padded input is what Timeloop's ``Inputs`` counts);
:func:`emit` transposes the operands and the result around the kernel.
"""

from __future__ import annotations

import tempfile
from dataclasses import replace
from pathlib import Path

from cost_models.nest import analyze
from mapspace.arch import Arch
from mapspace.errors import MapspaceError
from mapspace.mapping import MappingBatch
from mapspace.problem import Problem
from targets.gemmini.build import (
    RUNTIME,
    c_compiler,
    c_source,
    driver_source,
    gemmini_shapes,
    rename_flags,
    run_and_compare,
    write_sources,
)
from targets.gemmini.lowering import ACC_BIT, ACCUMULATE_BIT, FULL_BIT, GARBAGE
from targets.gemmini.plan import ACC_ROWS, DIM, SPAD_ROWS
from targets.gemmini.schedule import lower
from targets.tvm_common import EmitResult, op_spec

_WHERE = "emit gemmini"

#: the names this module had before it was split (re-exported from where they now live)
__all__ = ["ACC_BIT", "ACC_ROWS", "ACCUMULATE_BIT", "DIM", "FULL_BIT", "GARBAGE", "RUNTIME",
           "SPAD_ROWS", "driver_source", "emit", "gemmini_shapes", "lower", "predicted_traffic",
           "rename_flags"]


def emit(problem: Problem, mapping: MappingBatch, arch: Arch, *, dtype: str = "int8",
         out_dir: str | Path | None = None, run: bool = False, seed: int = 0) -> EmitResult:
    """Emit ``problem`` under ``mapping`` as C for Gemmini; with ``run``, build it with the
    functional Gemmini model, run it on seeded random int8 operands and compare bit-exactly
    with numpy.  Writes ``trace.py``, ``kernel.c``, ``main.c``, ``Makefile`` (and, after a
    run, ``a.bin``/``b.bin``/``z.bin``/``counters.json``) into ``out_dir``."""
    if dtype != "int8":
        raise MapspaceError(f"gemmini emits int8 only (int32 accumulation), not {dtype!r}",
                            where=_WHERE)
    if run and out_dir is None:  # build and run in a folder removed afterwards
        with tempfile.TemporaryDirectory(prefix="gemmini_emit_") as d:
            return replace(emit(problem, mapping, arch, dtype=dtype, out_dir=d, run=True,
                                seed=seed), files=())
    spec = op_spec(problem)
    cc = c_compiler() if run else None
    sch, mod, _ = lower(problem, mapping, arch)
    source = c_source(mod)
    trace = str(sch.trace)
    out = Path(out_dir) if out_dir is not None else None
    files = ([] if out is None
             else write_sources(out, problem.name, trace, source, gemmini_shapes(spec)))
    result = EmitResult("gemmini", problem.name, spec.kind, dtype, tuple(files), trace,
                        source)
    if not run:
        return result
    assert out is not None and cc is not None
    return run_and_compare(result, spec, cc, out, seed)


def predicted_traffic(problem: Problem, arch: Arch, mapping: MappingBatch) -> dict[str, int]:
    """DRAM <-> Scratchpad/Accumulator traffic of ``mapping`` by the analytical model, in
    words (elements): DRAM reads of Inputs and Weights (-> mvin), DRAM reads of Outputs
    (partial sums back into the accumulator -> mvin3) and DRAM updates of Outputs (mvout)."""
    dm = analyze(problem, arch, mapping)
    ti = {n: i for i, n in enumerate(problem.tensor_names)}
    return {"inputs": int(dm.reads[0, 0, ti["Inputs"]]),
            "weights": int(dm.reads[0, 0, ti["Weights"]]),
            "output_reads": int(dm.reads[0, 0, ti["Outputs"]]),
            "output_updates": int(dm.updates[0, 0, ti["Outputs"]])}
