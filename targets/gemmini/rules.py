"""What the Gemmini emitter can build, as the search sees it (the record's ``hooks``).

* :func:`search_arch` / :func:`search_constraints`: the per-problem space (a depthwise
  convolution runs one channel at a time, one element per scratchpad row:
  :mod:`targets.gemmini.depthwise`).
* :func:`rules`: one extra validity rule, ``gemmini-rows``.  Gemmini's scratchpad and
  accumulator are organised in rows of ``DIM = 16`` elements, and a tile whose channel
  blocks are narrower than 16 still takes whole rows, which the word-based analytical
  capacity does not count; the emitter's placement of the tiles (which loop moves each
  tensor, its sliding window) decides the rows.  The rule runs the emitter's own geometry
  (:func:`targets.gemmini.model.check`) on each candidate the cost model already found
  valid, so a searched mapping is always one the emitter builds (reason flag
  :attr:`mapspace.validity.Reason.TARGET`), and nothing is re-searched after the fact.
"""

from __future__ import annotations

import numpy as np

from mapspace.arch import Arch
from mapspace.errors import MapspaceError
from mapspace.mapping import MappingBatch
from mapspace.problem import Problem
from mapspace.validity import Rule
from targets.gemmini.depthwise import constraints as search_constraints
from targets.gemmini.depthwise import search_arch

RULE = "gemmini-rows"


def admits(problem: Problem, emit_arch: Arch, mappings: MappingBatch) -> np.ndarray:
    """``bool[B]``: whether the emitter can build each mapping on ``emit_arch``."""
    from targets.gemmini.model import check

    ok = np.zeros(len(mappings), bool)
    for i in range(len(mappings)):
        try:
            check(problem, mappings[i:i + 1], emit_arch)
            ok[i] = True
        except MapspaceError:
            ok[i] = False
    return ok


def rules(problem: Problem, arch: Arch) -> tuple[Rule, ...]:
    """The ``gemmini-rows`` rule for ``problem`` (checked on ``arch``, the arch the emitter
    gets); none for a problem that is not a Gemmini op (the emitter refuses it anyway)."""
    from targets.tvm_common import op_spec

    try:
        op_spec(problem)
    except MapspaceError:
        return ()
    return (Rule(RULE, lambda p, _a, m: admits(p, arch, m),
                 "tiles fit Gemmini's 16-element scratchpad and accumulator rows"),)


__all__ = ["RULE", "admits", "rules", "search_arch", "search_constraints"]
