"""Data-movement analysis (Timeloop semantics), batched: how many words each storage level
reads, fills and updates per instance, for every tensor, for ``B`` mappings at once.

This module only *counts*; :mod:`cost_models.pricing` turns counts into cycles and energy.
Every rule below is Timeloop's default (non-ISL) nest analysis as implemented in
``src/loop-analysis/nest-analysis.cpp`` and ``tiling.cpp``; ``cost_models/README.md``
lists them with the test that pins each one.

Vocabulary (level index 0 = outermost, as in :class:`~mapspace.arch.Arch`):

* the *tile* of level ``l`` spans every loop factor (temporal and spatial) of ``l`` and of
  all inner levels; its size per tensor is Timeloop's axis-aligned hyper-rectangle;
* the *deltas* of level ``l`` (``D``) are the words newly needed by one instance of ``l``
  over the whole run: Timeloop walks the temporal loops above ``l`` running iteration 0 and
  iteration 1 of each (iteration 1 stands for all the others), and charges each step the
  set difference between the new tile and the previous one while the tile keeps the
  translation it recorded, the whole tile when the translation changes (Timeloop's
  ``SaveAndSubtractIfSameStride``; rule N3);
* the *distinct children* (``G``) of a level's spatial fan-out for a tensor is the number of
  different tiles its children hold: children holding the same tile are served by one
  multicast read (or one spatially reduced update);
* a level's *content accesses* is what its inner neighbour asks of it: ``G * D(inner)``,
  and through a bypassed inner level ``G * content(inner)``; at the innermost level every
  MAC reads each operand once.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mapspace.arch import Arch
from mapspace.mapping import MappingBatch
from mapspace.problem import Problem

# the numba kernels (cost_models._*_kernel, mapspace.kernels) are imported in the functions
# that run them: numba takes ~0.15 s to import and `import cost_models` stays light


@dataclass(frozen=True)
class DataMovement:
    """Per-instance word counts of ``B`` mappings (``L`` levels, ``T`` tensors).

    ``tile``, ``reads``, ``fills``, ``updates``, ``partition``: ``int64[B, L, T]``
    (zero where the level bypasses the tensor); ``instances``: ``int64[B, L]`` utilized
    instances of each level; ``macs``: ``int64[B]`` MACs per utilized compute instance
    (= compute cycles); ``compute_instances``: ``int64[B]``; ``keep``: ``bool[B, L, T]``.
    """

    tile: np.ndarray
    reads: np.ndarray
    fills: np.ndarray
    updates: np.ndarray
    partition: np.ndarray
    instances: np.ndarray
    macs: np.ndarray
    compute_instances: np.ndarray
    keep: np.ndarray


def analyze(problem: Problem, arch: Arch, m: MappingBatch) -> DataMovement:
    """Count reads, fills and updates per instance for every level and tensor (no pricing).

    The mappings must be structurally sound (factors >= 1 whose products equal the problem
    sizes); :func:`mapspace.validity.check` reports those that are not.  Runs compiled and
    in parallel over the batch (``cost_models/_nest_kernel.py``).
    """
    from cost_models._nest_kernel import nest_kernel
    from mapspace.kernels import projection_tables

    B, L, D = m.temporal.shape
    T = problem.num_tensors
    tdim, tcoef, dense = projection_tables(problem.projections, problem.sizes)
    rw = np.array([t.read_write for t in problem.tensors])
    tile = np.empty((B, L, T), np.int64)
    reads, fills, updates, partition = (np.empty_like(tile) for _ in range(4))
    instances = np.empty((B, L), np.int64)
    macs = np.empty(B, np.int64)
    cinst = np.empty(B, np.int64)
    nest_kernel(np.ascontiguousarray(m.temporal), np.ascontiguousarray(m.spatial),
                np.ascontiguousarray(m.order), np.ascontiguousarray(m.keep), tdim, tcoef, dense, rw,
                tile, reads, fills, updates, partition, instances, macs, cinst)
    return DataMovement(tile=tile, reads=reads, fills=fills, updates=updates,
                        partition=partition, instances=instances, macs=macs,
                        compute_instances=cinst, keep=m.keep)


__all__ = ["DataMovement", "analyze"]
