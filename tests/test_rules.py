"""One small hand-worked case per semantic rule of cost_models/README.md (rule ids in names).

Each expected number is derived in the comments from the rule, not from running the model.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from cost_models import evaluate
from mapspace.arch import ActionEnergy, Arch, ComputeUnit, StorageLevel
from mapspace.mapping import single
from mapspace.problem import Problem, Tensor, Term, conv2d, matmul


def two_levels(buffer_words: int = 1 << 20, read_bw: float | None = None) -> Arch:
    return Arch("two", (
        StorageLevel("DRAM", cls="DRAM", width=8, datawidth=8,
                     energy=ActionEnergy(read=100.0, write=100.0, update=100.0)),
        StorageLevel("Buffer", depth=buffer_words, width=8, datawidth=8, read_bandwidth=read_bw,
                     energy=ActionEnergy(read=1.0, write=2.0, update=3.0, leak=0.5)),
    ), ComputeUnit(energy=0.25))


def conv1d(P: int, R: int, K: int = 1) -> Problem:
    """Timeloop's tutorial 1-D convolution with output channels: Inputs[p + r]."""
    return Problem("conv1d", ("K", "R", "P"), (K, R, P), (
        Tensor("Weights", ((Term("K"),), (Term("R"),))),
        Tensor("Inputs", ((Term("R"), Term("P")),)),
        Tensor("Outputs", ((Term("K"),), (Term("P"),)), read_write=True),
    ))


def mapping(problem: Problem, arch: Arch, temporal: list[dict[str, int]],
            orders: list[str], keep: list[list[str]], spatial=None, xs=None):
    L, D = arch.num_levels, problem.num_dims
    t = np.ones((L, D), np.int64)
    s = np.ones((L, D), np.int64)
    o = np.zeros((L, D), np.int64)
    x = np.ones((L, D), bool)
    k = np.zeros((L, problem.num_tensors), bool)
    for l in range(L):
        for dim, f in temporal[l].items():
            t[l, problem.dim_index(dim)] = f
        for dim, f in (spatial[l] if spatial else {}).items():
            s[l, problem.dim_index(dim)] = f
        for dim in (xs[l] if xs else ""):
            x[l, problem.dim_index(dim)] = False
        inner_first = [problem.dim_index(c) for c in orders[l]]
        rest = [d for d in range(D) if d not in inner_first]
        o[l] = inner_first + rest
        for name in keep[l]:
            k[l, problem.tensor_index(name)] = True
    return single(t, s, o, x, k)


def counts(ev, level: int, tensor: str) -> tuple[int, int, int]:
    t = ev.problem.tensor_index(tensor)
    dm = ev.movement
    return int(dm.reads[0, level, t]), int(dm.fills[0, level, t]), int(dm.updates[0, level, t])


ALL = ["Weights", "Inputs", "Outputs"]


def test_N1_stationarity_refetch_rule():
    # Matmul 4x4x4: DRAM loops (innermost first) M4 then P4; buffer loop C4.
    # Weights[C,M] tile = 4; innermost relevant loop above = M -> fills = 4 * 4 * 4 = 64.
    # Inputs[P,C] tile = 4; M is irrelevant (reuse), P relevant -> fills = 4 * 4 = 16.
    # Outputs[P,M] tile 1, refetched per (M,P) = 16 deltas; partition 16 -> fills 0,
    # reads = MACs - partition = 64 - 16 = 48, updates = 64 (N6, N7).
    p, a = matmul(4, 4, 4), two_levels()
    m = mapping(p, a, [{"M": 4, "P": 4}, {"C": 4}], ["MP", "C"], [ALL, ALL])
    ev = evaluate(p, a, m)
    assert ev.valid[0]
    assert counts(ev, 1, "Weights") == (64, 64, 0)     # every MAC reads its weight (N5)
    assert counts(ev, 1, "Inputs") == (64, 16, 0)
    assert counts(ev, 1, "Outputs") == (48, 0, 64)
    # DRAM serves the buffer's fills; outputs drain 16 updates, first reads elided.
    assert counts(ev, 0, "Weights") == (64, 0, 0)
    assert counts(ev, 0, "Inputs") == (16, 0, 0)
    assert counts(ev, 0, "Outputs") == (0, 0, 16)


def test_N2_sliding_window_keeps_overlap():
    # 1-D conv P=4, R=3: buffer tile R3 (Inputs span 3); DRAM loop P4 slides by 1:
    # first tile 3 words, then 3 steps of a 1-word slab -> 6 = the whole input.
    p, a = conv1d(P=4, R=3), two_levels()
    m = mapping(p, a, [{"P": 4}, {"R": 3}], ["P", "R"], [ALL, ALL])
    assert counts(evaluate(p, a, m), 1, "Inputs")[1] == 6


def test_N3_direction_change_refetches_whole_tile():
    # Buffer tile R1 P2 (span 2); DRAM loops P2 (inner, stride 2) then R3 (stride 1).
    # Extrapolated order: P step = +2 >= span -> whole tile (2), but its translation +2 is
    # recorded (Timeloop's SaveAndSubtractIfSameStride records a first translation even
    # without overlap).  R step = +1 (R) - 2 (P undone) = -1: a different translation ->
    # whole tile (2), translation forgotten; the P step after it is again +2 (whole tile,
    # recorded).  Block(P) = 2 + 2; total = 4 + 2 * (2 + 2) = 12.
    p, a = conv1d(P=4, R=3), two_levels()
    m = mapping(p, a, [{"P": 2, "R": 3}, {"P": 2}], ["PR", "P"], [ALL, ALL])
    assert counts(evaluate(p, a, m), 1, "Inputs")[1] == 12


def test_N3_gradient_reset_on_wrap():
    # Buffer tile R3 P1 (span 3); DRAM loops P4 then K2 (K irrelevant to Inputs).
    # P steps: +1 slabs (3 of them, gradient forward); the K step undoes one P step
    # (-1): overlap but the direction flips -> whole tile (3), gradient cleared; then the
    # second P block again slides: 3 + [3 + (3 + 3)] = 12.
    p, a = conv1d(P=4, R=3, K=2), two_levels()
    m = mapping(p, a, [{"P": 4, "K": 2}, {"R": 3}], ["PK", "R"], [ALL, ALL])
    assert counts(evaluate(p, a, m), 1, "Inputs")[1] == 12


def test_N4_tile_is_the_strided_hull():
    # Stride-2 3x3 conv: an output tile of P=4 (one row) spans (4-1)*2 + (3-1) + 1 = 9
    # input columns (holes between strided windows count, as Timeloop's AAHR).
    p = conv2d(1, 1, 9, 9, 1, 3, 3, stride=2)          # P = Q = 4
    ext = np.array([1, 1, 3, 1, 1, 4, 1])              # C M R S N P Q
    assert int(p.tile_size(p.tensor_index("Inputs"), ext)) == 9


def test_N5_multicast_counts_distinct_child_tiles():
    # Spatial fan-out of 4 along M (output channels) under the buffer: Inputs are the same
    # for all 4 children (one multicast read), Weights differ (4 reads).
    a = Arch("fan", (
        StorageLevel("DRAM", cls="DRAM"),
        StorageLevel("Buffer", depth=1 << 16),
        StorageLevel("PE", instances=4, mesh_x=4, depth=64),
    ), ComputeUnit(instances=4, mesh_x=4))
    p = matmul(2, 2, 4)                                 # P=2, C=2, M=4
    m = mapping(p, a, [{}, {"P": 2}, {"C": 2}], ["", "P", "C"], [ALL, ALL, ALL],
                spatial=[{}, {"M": 4}, {}])
    ev = evaluate(p, a, m)
    assert ev.valid[0]
    # PE tile: Inputs C2 (2 words), P loop above relevant -> fills per PE = 2*2 = 4.
    assert counts(ev, 2, "Inputs")[1] == 4
    assert counts(ev, 1, "Inputs")[0] == 4             # one multicast per delta
    # Weights per PE: C2 (M1) = 2 words, P irrelevant -> 2 fills; 4 distinct children.
    assert counts(ev, 2, "Weights")[1] == 2
    assert counts(ev, 1, "Weights")[0] == 8
    # Outputs: children write disjoint outputs: 4 x 2 updates each.
    assert counts(ev, 1, "Outputs")[2] == 8


@pytest.mark.parametrize("n1,n2,s1,s2", [(3, 14, 1, 2), (4, 4, 2, 3), (5, 2, 4, 6), (7, 7, 1, 1)])
def test_N5_distinct_sliding_children_closed_form(n1, n2, s1, s2):
    from cost_models._nest_kernel import _distinct

    tdim = np.array([[[0, 1]]])
    tcoef = np.array([[[s1, s2]]])
    brute = len({i * s1 + j * s2 for i, j in itertools.product(range(n1), range(n2))})
    got = _distinct(tdim, tcoef, 0, np.array([n1, n2]), np.array([1, 1]))
    assert got == brute


def test_N6_bypass_passes_inner_demand_through():
    # Buffer bypasses Inputs: DRAM serves every MAC's operand directly (64 reads);
    # the buffer keeps no Inputs counts.
    p, a = matmul(4, 4, 4), two_levels()
    m = mapping(p, a, [{"M": 4, "P": 4}, {"C": 4}], ["MP", "C"],
                [ALL, ["Weights", "Outputs"]])
    ev = evaluate(p, a, m)
    assert counts(ev, 0, "Inputs") == (64, 0, 0)
    assert counts(ev, 1, "Inputs") == (0, 0, 0)


def test_P1_energy_rounds_vector_accesses_per_instance():
    # Buffer with 4-word blocks: 6 fills -> ceil(6/4) = 2 vector writes (not 1.5).
    a = two_levels()
    a = a.with_level("Buffer", width=32, depth=1024)
    p = conv1d(P=4, R=3)
    m = mapping(p, a, [{"P": 4}, {"R": 3}], ["P", "R"], [ALL, ALL])
    ev = evaluate(p, a, m)
    r, f, u = counts(ev, 1, "Inputs")
    assert (r, f) == (12, 6)
    t = p.tensor_index("Inputs")
    assert ev.cost.energy_breakdown[0, 1, t] == pytest.approx(3 * 1.0 + 2 * 2.0)


def test_P2_bandwidth_throttles_cycles_and_leakage_uses_run_cycles():
    # 64 MACs on one PE = 64 compute cycles.  The buffer reads 64 weights + 64 inputs +
    # 48 outputs = 176 words; at 2 words/cycle that needs 88 cycles > 64.
    p, a = matmul(4, 4, 4), two_levels(read_bw=2.0)
    m = mapping(p, a, [{"M": 4, "P": 4}, {"C": 4}], ["MP", "C"], [ALL, ALL])
    ev = evaluate(p, a, m)
    assert int(ev.cost.level_cycles[0, 1]) == 88
    assert int(ev.cost.cycles[0]) == 88
    assert ev.cost.leak_energy[0] == pytest.approx(0.5 * 88)      # 1 instance x 88 cycles
    assert ev.cost.mac_energy[0] == pytest.approx(64 * 0.25)
    assert ev.cost.utilization[0] == pytest.approx(64 / 88)
