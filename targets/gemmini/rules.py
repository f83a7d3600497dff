"""What the Gemmini emitter can build, as the search sees it (the record's ``hooks``).

* :func:`search_arch` / :func:`search_constraints`: the per-problem space (a depthwise
  convolution runs one channel at a time, one element per scratchpad row:
  :mod:`targets.gemmini.depthwise`).
* :func:`rules`: one extra validity rule, ``gemmini-rows``.  Gemmini's scratchpad and
  accumulator are organised in rows of ``DIM = 16`` elements, and a tile whose channel
  blocks are narrower than 16 still takes whole rows, which the word-based analytical
  capacity does not count; the emitter's placement of the tiles (which loop moves each
  tensor, its sliding window) decides the rows.  The rule computes the emitter's own
  checks and geometry (:func:`targets.gemmini.plan.check`) for a whole batch at once
  (:func:`admits`), so a searched mapping is always one the emitter builds (reason flag
  :attr:`mapspace.validity.Reason.TARGET`), and nothing is re-searched after the fact.
  :func:`admits_reference` is the per-mapping original (one ``check`` per row), kept as
  the definition :func:`admits` must equal exactly (``tests/test_gemmini_rules.py``).
"""

from __future__ import annotations

import numpy as np

from mapspace.arch import Arch
from mapspace.errors import MapspaceError
from mapspace.mapping import MappingBatch
from mapspace.problem import Problem
from mapspace.validity import Rule
from targets.gemmini import depthwise
from targets.gemmini.depthwise import constraints as search_constraints
from targets.gemmini.depthwise import search_arch
from targets.gemmini.plan import ACC_ROWS, AXES, DIM, ITERS, LEVELS, SPAD_ROWS, check
from targets.tvm_common import op_spec

RULE = "gemmini-rows"


def admits_reference(problem: Problem, emit_arch: Arch, mappings: MappingBatch) -> np.ndarray:
    """``bool[B]``: :func:`targets.gemmini.plan.check` on each mapping, one at a time (the
    definition of :func:`admits`; 60-140 us a mapping)."""
    ok = np.zeros(len(mappings), bool)
    for i in range(len(mappings)):
        try:
            check(problem, mappings[i:i + 1], emit_arch)
            ok[i] = True
        except MapspaceError:
            ok[i] = False
    return ok


def admits(problem: Problem, emit_arch: Arch, mappings: MappingBatch) -> np.ndarray:
    """``bool[B]``: whether the emitter can build each mapping on ``emit_arch`` -- exactly
    :func:`admits_reference`, as array operations over the batch.

    What :func:`targets.gemmini.plan.check` raises for, and how it is computed here
    (``tem``/``spa`` the temporal/spatial factors per level):

    * not a Gemmini op (:func:`op_spec`), or levels other than ``LEVELS``: every row refused;
    * a spatial factor ``> 1`` anywhere but ``M`` at the Scratchpad or ``C`` at the
      Accumulator (not even that for a depthwise convolution), or ``> DIM``;
    * the Scratchpad not keeping exactly Weights and Inputs, the Accumulator not exactly
      Outputs;
    * a temporal ``C``/``M``/``R``/``S`` factor ``> 1`` at Registers;
    * a dim that is no loop of the emitted op with ``prod(tem * spa) > 1``; a loop dim whose
      ``prod(tem * spa)`` is not its size (exact: a product over ``2**62`` is refused);
    * the tiles (``Geometry``): each tensor's placement loop is the innermost DRAM (Z: DRAM
      or Scratchpad) loop of factor > 1 over one of its dims, and a dim's tile extent the
      product of its factors in the loops inside it.  Every loop of those levels over the
      tensor's dims with a factor > 1 is at or outside the placement loop and every loop
      of a later level inside it, so the extent is the product of the dim's factors below
      the DRAM (Z: below the Scratchpad's temporal loops; spatial factors always count)
      whatever the loop orders -- no nest positions are needed.  A tensor's axis extent is
      ``sum((extent - 1) * coefficient) + 1`` over the axis' dims (``AXES``: sliding
      windows ``(Q - 1) * stride + (S - 1) * dilation + 1``), its rows the product of all
      but the last axis times ``last // width`` (``width`` the spatial ``C`` for the
      activations, the spatial ``M`` for weights and outputs, 1 without that dim);
      refused when activations + weights rows exceed ``SPAD_ROWS`` or output rows
      ``ACC_ROWS``.

    Fallback (documented, never drawn by the samplers): rows with a factor below 1 or a
    level ``order`` that is not a permutation go through :func:`admits_reference` one at a
    time, as does a whole batch whose level count is not 4.
    """
    B = len(mappings)
    if tuple(emit_arch.level_names) != LEVELS:
        return np.zeros(B, bool)
    try:
        spec = op_spec(problem)
    except MapspaceError:
        return np.zeros(B, bool)
    if B == 0:
        return np.zeros(0, bool)
    if mappings.num_levels != len(LEVELS):
        return admits_reference(problem, emit_arch, mappings)
    tem, spa, order, keep = mappings.temporal, mappings.spatial, mappings.order, mappings.keep
    dims = problem.dims
    D = len(dims)
    di = {d: i for i, d in enumerate(dims)}
    dw = spec.kind == depthwise.KIND

    # rows the vectorised path does not define: factors below 1, orders not permutations
    # (D distinct powers of two below 2**D sum to 2**D - 1, fewer or repeated ones do not)
    odd = (tem < 1).any((1, 2)) | (spa < 1).any((1, 2))
    in_range = ((order >= 0) & (order < D)).all((1, 2))
    bits = np.left_shift(1, np.where(in_range[:, None, None], order, 0)).sum(2)
    odd |= ~in_range | (bits != (1 << D) - 1).any(1)

    # loop_nest: spatial factors on the array only, kept tensors, weight-stationary Registers
    allowed = np.zeros((len(LEVELS), D), bool)
    if "M" in di:
        allowed[1, di["M"]] = True
    if "C" in di and not dw:
        allowed[2, di["C"]] = True
    ok = ~((spa > 1) & ~allowed).any((1, 2)) & ~(spa > DIM).any((1, 2))
    names = problem.tensor_names
    want1 = np.array([n in ("Weights", "Inputs") for n in names], bool)
    want2 = np.array([n == "Outputs" for n in names], bool)
    ok &= (keep[:, 1, :] == want1).all(1) & (keep[:, 2, :] == want2).all(1)
    for d in ("C", "M", "R", "S"):
        if d in di:
            ok &= tem[:, 3, di[d]] <= 1

    # factor products per dim: a loop dim's exact (the reference multiplies Python ints;
    # one over 2**62 is no size, refused), another dim's in wrapping int64 as the
    # reference's numpy product.  Four factors ``tem * spa`` up to 2**15 cannot overflow;
    # rows with a larger one (or a larger ``tem``/``spa``) get their products in float64.
    iters = ITERS[spec.kind]
    with np.errstate(over="ignore"):
        f = tem * spa
        prod = f[:, 0] * f[:, 1] * f[:, 2] * f[:, 3]                # [B, D]
    big = np.zeros((B, D), bool)
    wide = np.nonzero(((np.maximum(tem, spa) > 2**15) | (f > 2**15)).any((1, 2)))[0]
    if len(wide):
        big[wide] = np.prod(tem[wide].astype(np.float64) * spa[wide], axis=1) > 2.0**62
    for d in dims:
        if d in iters:
            ok &= (prod[:, di[d]] == spec.sizes[d]) & ~big[:, di[d]]
        else:
            ok &= prod[:, di[d]] <= 1

    # Geometry.  A tensor's placement loop is the innermost loop of factor > 1 over one of
    # its dims among its placement levels' loops (A, B: DRAM; Z: DRAM, Scratchpad), so
    # each of its dims' loops at those levels is at or outside that loop (or of factor 1)
    # and every loop of a later level inside it: a dim's tile extent is the product of its
    # factors below the placement levels, whatever the loop orders.
    coef = {"st": spec.stride, "dl": spec.dilation, 1: 1}
    axes = [[[(d, coef[c]) for d, c in ax] for ax in t] for t in AXES[spec.kind]]
    with np.errstate(over="ignore"):
        below = spa[:, 0] * spa[:, 1] * spa[:, 2] * spa[:, 3] * tem[:, 3]  # Registers, spatial
        below_acc = below * tem[:, 2, :]                            # Z's tile, [B, D]
        below_spad = below_acc * tem[:, 1, :]                       # A's and B's
    mc = spa[:, 1, di["M"]] if "M" in di else np.ones(B, np.int64)
    kc = spa[:, 2, di["C"]] if "C" in di else np.ones(B, np.int64)
    widths = (kc, mc, mc)
    rows = []
    with np.errstate(over="ignore"):                # only rows refused above overflow
        for t, ext_d in enumerate((below_spad, below_spad, below_acc)):
            ext = [sum((ext_d[:, di[d]] - 1) * c for d, c in ax) + 1 for ax in axes[t]]
            r = np.ones(B, np.int64)
            for e in ext[:-1]:
                r = r * e
            rows.append(r * (ext[-1] // np.maximum(widths[t], 1)))
        ok &= (rows[0] + rows[1] <= SPAD_ROWS) & (rows[2] <= ACC_ROWS)

    if odd.any():
        idx = np.nonzero(odd)[0]
        ok[idx] = admits_reference(problem, emit_arch, mappings[idx])
    return ok


def rules(problem: Problem, arch: Arch) -> tuple[Rule, ...]:
    """The ``gemmini-rows`` rule for ``problem`` (checked on ``arch``, the arch the emitter
    gets); none for a problem that is not a Gemmini op (the emitter refuses it anyway)."""
    try:
        op_spec(problem)
    except MapspaceError:
        return ()
    return (Rule(RULE, lambda p, _a, m: admits(p, arch, m),
                 "tiles fit Gemmini's 16-element scratchpad and accumulator rows"),)


__all__ = ["RULE", "admits", "admits_reference", "rules", "search_arch",
           "search_constraints"]
