"""Property tests: invariants of the analytical model on random valid mappings of random
small problems, on random small architectures and on the built-in targets; plus cases
worked out by hand and the validity reasons of invalid mappings.

Expectations are computed here independently of ``cost_models``: the iteration space is
enumerated point by point to count the elements each tensor really touches, tile sizes are
recomputed from the mapping's factors, and multicast fan-outs are enumerated child by child.
"""

from __future__ import annotations

import itertools
from math import prod

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from cost_models import evaluate
from mapspace import (
    ActionEnergy,
    Arch,
    ComputeUnit,
    MappingBatch,
    Problem,
    StorageLevel,
    Tensor,
    Term,
    bmm,
    conv2d,
    depthwise_conv2d,
    matmul,
    single,
)
from mapspace.naive_random import random_mappings
from mapspace.validity import Reason, check
from targets import load_target

PROPS = settings(max_examples=40, derandomize=True, database=None, deadline=None,
                 suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
N_CANDIDATES = 48


# ======================================================================== strategies
@st.composite
def problems(draw: st.DrawFn) -> Problem:
    kind = draw(st.sampled_from(["matmul", "conv2d", "bmm", "depthwise"]))
    small = st.integers(1, 6)
    if kind == "matmul":
        return matmul(draw(small), draw(small), draw(small))
    if kind == "bmm":
        return bmm(draw(st.integers(1, 3)), draw(st.integers(1, 4)), draw(st.integers(1, 4)),
                   draw(st.integers(1, 4)))
    R, S = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    stride, dilation = draw(st.integers(1, 2)), draw(st.integers(1, 2))
    pad = draw(st.integers(0, 1))
    min_w = max(1, dilation * (max(R, S) - 1) + 1 - 2 * pad)
    H = draw(st.integers(min_w, min_w + 4))
    W = draw(st.integers(min_w, min_w + 4))
    N, C = draw(st.integers(1, 2)), draw(st.integers(1, 4))
    if kind == "depthwise":
        return depthwise_conv2d(N, C, H, W, R, S, stride=stride, padding=pad,
                                dilation=dilation)
    return conv2d(N, C, H, W, draw(st.integers(1, 4)), R, S, stride=stride, padding=pad,
                  dilation=dilation)


def _energy(draw: st.DrawFn) -> ActionEnergy:
    e = st.floats(0.0, 50.0, allow_nan=False, allow_subnormal=False)
    return ActionEnergy(read=draw(e), write=draw(e), update=draw(e),
                        leak=draw(st.sampled_from([0.0, 0.0, 0.01])))


@st.composite
def synthetic_archs(draw: st.DrawFn) -> Arch:
    """DRAM + 1..3 buffers, random capacities, fan-outs, bandwidths and energies."""
    n = draw(st.integers(2, 4))
    mx = my = 1
    levels = []
    bw = st.sampled_from([None, None, 1.0, 2.0, 4.0])
    for i in range(n):
        block = draw(st.sampled_from([1, 1, 2, 4]))
        levels.append(StorageLevel(
            name="DRAM" if i == 0 else f"Buf{i}",
            cls="DRAM" if i == 0 else "SRAM",
            instances=mx * my, mesh_x=mx, mesh_y=my,
            depth=None if i == 0 else draw(st.integers(4, 128)) // block + 1,
            width=8 * block, datawidth=8,
            read_bandwidth=draw(bw), write_bandwidth=draw(bw),
            shared_bandwidth=draw(bw) if i == 0 else None,
            energy=_energy(draw),
        ))
        mx *= draw(st.sampled_from([1, 1, 2, 3, 4]))
        my *= draw(st.sampled_from([1, 1, 2]))
    compute = ComputeUnit(instances=mx * my, mesh_x=mx, mesh_y=my,
                          energy=draw(st.floats(0.0, 5.0, allow_nan=False)))
    return Arch(name="synthetic", levels=tuple(levels), compute=compute)


#: The built-in targets with the keep/bypass choices of their reference mappings.
TARGET_KEEP = {
    "gemmini": {"DRAM": "WIO", "Scratchpad": "WI", "Accumulator": "O", "Registers": "W"},
    "eyeriss-like": {"DRAM": "WIO", "shared_glb": "IO", "ifmap_spad": "I",
                     "weights_spad": "W", "psum_spad": "O"},
    "simba-like": {"DRAM": "WIO", "GlobalBuffer": "IO", "PEInputBuffer": "I",
                   "PEWeightBuffer": "W", "PEAccuBuffer": "O", "PEWeightRegs": "W"},
}
archs = st.one_of(synthetic_archs(), st.sampled_from(sorted(TARGET_KEEP)).map(load_target))


@st.composite
def keeps(draw: st.DrawFn, arch: Arch, problem: Problem) -> np.ndarray | None:
    """For a built-in target, its usual keep choices; otherwise None (the generator's
    default: keep everything everywhere) or a random keep matrix with every tensor kept
    somewhere (each level keeps each tensor with probability 3/4)."""
    if arch.name != "synthetic":
        usual = next(v for v in TARGET_KEEP.values() if set(v) <= set(arch.level_names))
        return np.array([[t.name[0] in usual.get(lv.name, "") for t in problem.tensors]
                         for lv in arch.levels])
    if draw(st.booleans()):
        return None
    L, T = arch.num_levels, problem.num_tensors
    k = np.zeros((L, T), bool)
    for t in range(T):
        for l, lv in enumerate(arch.levels):
            if not lv.is_dummy:
                k[l, t] = draw(st.integers(0, 3)) > 0
        if not k[:, t].any():
            k[0, t] = True
    return k


@st.composite
def scenarios(draw: st.DrawFn):
    """(problem, arch, valid mappings as one batch, seed, keep)."""
    p = draw(problems())
    a = draw(archs)
    keep = draw(keeps(a, p))
    seed = draw(st.integers(0, 2**32 - 1))
    m = random_mappings(p, a, N_CANDIDATES, np.random.default_rng(seed), keep)
    ok = check(p, a, m).valid
    assume(ok.any())
    return p, a, m[np.nonzero(ok)[0]], seed, keep


# ===================================================================== independent math
def touched(problem: Problem, t: int) -> int:
    """Distinct elements of tensor ``t`` that some point of the iteration space touches."""
    grids = np.meshgrid(*[np.arange(s) for s in problem.sizes], indexing="ij")
    pts = np.stack([g.ravel() for g in grids], axis=1)           # [points, D]
    idx = pts @ problem.projections[t].T                         # [points, A]
    return len(np.unique(idx, axis=0))


def tile_sizes(problem: Problem, m: MappingBatch, i: int) -> np.ndarray:
    """``int64[L, T]``: each level's tile per tensor, from the factors (AAHR spans)."""
    f = m.temporal[i] * m.spatial[i]                             # [L, D]
    L = f.shape[0]
    out = np.zeros((L, problem.num_tensors), np.int64)
    for l in range(L):
        ext = f[l:].prod(axis=0)
        for t in range(problem.num_tensors):
            p = problem.projections[t]
            out[l, t] = prod(1 + int(((ext - 1) * p[a]).sum()) for a in range(p.shape[0]))
    return out


def distinct_children(problem: Problem, m: MappingBatch, i: int, level: int, t: int) -> int:
    """Distinct tiles of tensor ``t`` among all compute units below one instance of ``level``,
    enumerating every compute unit's offset through all the fan-outs below ``level``."""
    f = m.temporal[i] * m.spatial[i]
    L, D = f.shape
    offsets = [np.zeros(D, np.int64)]
    for l in range(level, L):
        child_ext = f[l + 1:].prod(axis=0) if l + 1 < L else np.ones(D, np.int64)
        steps = [np.arange(m.spatial[i, l, d]) * child_ext[d] for d in range(D)]
        offsets = [o + np.array(c) for o in offsets for c in itertools.product(*steps)]
    idx = np.array(offsets) @ problem.projections[t].T
    return len(np.unique(idx, axis=0))


def fanout_product(problem: Problem, m: MappingBatch, i: int, level: int, t: int) -> int:
    """Product of the spatial factors below ``level`` of the dims tensor ``t`` depends on."""
    rel = problem.relevance[t]
    return int(m.spatial[i, level:, rel].prod())


def has_sliding_axis(problem: Problem, t: int) -> bool:
    return bool((np.count_nonzero(problem.projections[t], axis=1) > 1).any())


# ========================================================================= properties
@PROPS
@given(scenarios())
def test_generator_is_structurally_sound(sc) -> None:
    """Factors multiply out to the problem sizes, orders are permutations, keep as asked."""
    p, a, m, _, keep = sc
    assert (m.factors.prod(axis=1) == np.array(p.sizes)).all()
    assert (np.sort(m.order, axis=2) == np.arange(p.num_dims)).all()
    if keep is not None:
        assert (m.keep == keep[None]).all()
    else:
        want = np.array([[not lv.is_dummy] * p.num_tensors for lv in a.levels])
        assert (m.keep == want[None]).all()


@PROPS
@given(scenarios())
def test_mac_conservation(sc) -> None:
    p, a, m, _, _ = sc
    ev = evaluate(p, a, m)
    dm = ev.movement
    assert (dm.macs * dm.compute_instances == p.macs).all()
    assert (dm.macs == m.temporal.prod(axis=(1, 2))).all()
    assert (dm.compute_instances <= a.compute.instances).all()
    assert (ev.cost.cycles >= dm.macs).all()
    assert (ev.cost.utilization <= 1.0 + 1e-12).all()
    assert np.allclose(ev.cost.mac_energy, p.macs * a.compute.energy)


@PROPS
@given(scenarios())
def test_compulsory_accesses(sc) -> None:
    """At a tensor's outermost kept level, all its instances together read (operands) or
    receive as updates (the output) at least every element the computation touches."""
    p, a, m, _, _ = sc
    dm = evaluate(p, a, m).movement
    for t in range(p.num_tensors):
        need = touched(p, t)
        rw = p.tensors[t].read_write
        for i in range(len(m)):
            kept = np.nonzero(m.keep[i, :, t])[0]
            top = kept[0]
            moved = dm.updates[i, top, t] if rw else dm.reads[i, top, t]
            assert moved * dm.instances[i, top] >= need, (i, t, int(top))
            assert dm.fills[i, top, t] == 0
            # And every kept level below moves at least what it holds.
            for l in kept[1:]:
                got = dm.updates[i, l, t] if rw else dm.fills[i, l, t]
                assert got >= dm.tile[i, l, t] > 0, (i, t, int(l))


@PROPS
@given(scenarios())
def test_partition_lower_bounds(sc) -> None:
    """The output: updates >= partition at every kept level.  Read-only tensors: fills >=
    partition at every kept level but the outermost, for tensors without a sliding-window
    axis (for those, Timeloop's partition is a proportional share rounded down, which can
    exceed what one instance really needs, e.g. when the window's two dims are split
    between a temporal and a spatial loop).  Every tensor: all instances of a kept level
    together take in at least every touched element."""
    p, a, m, _, _ = sc
    dm = evaluate(p, a, m).movement
    for t in range(p.num_tensors):
        rw = p.tensors[t].read_write
        exact = not has_sliding_axis(p, t)
        need = touched(p, t)
        for i in range(len(m)):
            kept = np.nonzero(m.keep[i, :, t])[0]
            for l in kept:
                part = dm.partition[i, l, t]
                assert part >= 1
                if rw:
                    assert dm.updates[i, l, t] >= part, (i, t, int(l))
                    assert dm.updates[i, l, t] * dm.instances[i, l] >= need
                elif l != kept[0]:
                    assert dm.fills[i, l, t] * dm.instances[i, l] >= need, (i, t, int(l))
                    if exact:
                        assert dm.fills[i, l, t] >= part, (i, t, int(l))


@PROPS
@given(scenarios())
def test_capacity_respected(sc) -> None:
    """Tiles recomputed from the factors equal the model's; kept tiles fit every level."""
    p, a, m, _, _ = sc
    dm = evaluate(p, a, m).movement
    for i in range(len(m)):
        tiles = tile_sizes(p, m, i)
        assert (dm.tile[i] == np.where(m.keep[i], tiles, 0)).all()
        for l, lv in enumerate(a.levels):
            used = int((tiles[l] * m.keep[i, l]).sum())
            if lv.capacity is not None:
                assert used <= lv.capacity, (i, lv.name)


@PROPS
@given(scenarios())
def test_scalar_equals_batch(sc) -> None:
    p, a, m, _, _ = sc
    whole = evaluate(p, a, m)
    fields = ("tile", "reads", "fills", "updates", "partition", "instances", "macs",
              "compute_instances")
    for i in range(len(m)):
        one = evaluate(p, a, m[i])
        assert one.cost.cycles[0] == whole.cost.cycles[i]
        assert one.cost.energy[0] == whole.cost.energy[i]            # bit-identical
        assert one.cost.edp[0] == whole.cost.edp[i]
        assert one.cost.utilization[0] == whole.cost.utilization[i]
        assert np.array_equal(one.cost.energy_breakdown[0], whole.cost.energy_breakdown[i])
        assert np.array_equal(one.cost.level_cycles[0], whole.cost.level_cycles[i])
        for f in fields:
            assert np.array_equal(getattr(one.movement, f)[0], getattr(whole.movement, f)[i]), f
        assert one.stats(0) == whole.stats(i)


@PROPS
@given(scenarios())
def test_same_seed_same_result(sc) -> None:
    p, a, _, seed, keep = sc
    m1 = random_mappings(p, a, N_CANDIDATES, np.random.default_rng(seed), keep)
    m2 = random_mappings(p, a, N_CANDIDATES, np.random.default_rng(seed), keep)
    assert m1.equals(m2).all()
    e1, e2 = evaluate(p, a, m1), evaluate(p, a, m2)
    assert np.array_equal(e1.valid, e2.valid)
    v = e1.valid
    assert np.array_equal(e1.cost.cycles[v], e2.cost.cycles[v])
    assert np.array_equal(e1.cost.energy[v], e2.cost.energy[v])
    assert np.array_equal(e1.movement.reads, e2.movement.reads)
    # Evaluating in two halves gives the same rows (no state across calls).
    h = N_CANDIDATES // 2
    e3, e4 = evaluate(p, a, m1[:h]), evaluate(p, a, m1[h:])
    assert np.array_equal(np.concatenate([e3.cost.energy, e4.cost.energy])[v],
                          e1.cost.energy[v])


@PROPS
@given(scenarios())
def test_innermost_operand_reads(sc) -> None:
    """An operand's innermost kept level is read once per MAC for every distinct operand
    value among the compute units below it (multicast serves identical ones): exactly
    MACs/unit x product of the relevant spatial factors for a plain (non-sliding) tensor;
    between the whole-fan-out distinct count and that product for a sliding window."""
    p, a, m, _, _ = sc
    dm = evaluate(p, a, m).movement
    for t in range(p.num_tensors):
        if p.tensors[t].read_write:
            continue
        for i in range(len(m)):
            l = int(np.nonzero(m.keep[i, :, t])[0][-1])
            r = int(dm.reads[i, l, t])
            macs = int(dm.macs[i])
            upper = macs * fanout_product(p, m, i, l, t)
            if has_sliding_axis(p, t):
                lower = macs * distinct_children(p, m, i, l, t)
                assert lower <= r <= upper, (i, t, l)
            else:
                assert r == upper, (i, t, l)
            assert r * dm.instances[i, l] >= touched(p, t)


# ===================================================================== worked by hand
def _two_level(dram_read_bw: float | None = None) -> Arch:
    """DRAM (10 pJ per access) + one 64-word buffer (1 pJ per access), one 0.5 pJ MAC."""
    return Arch(
        name="two-level",
        levels=(
            StorageLevel("DRAM", cls="DRAM", read_bandwidth=dram_read_bw,
                         energy=ActionEnergy(read=10.0, write=10.0, update=10.0)),
            StorageLevel("Buffer", depth=64,
                         energy=ActionEnergy(read=1.0, write=1.0, update=1.0)),
        ),
        compute=ComputeUnit(energy=0.5),
    )


def _mapping(problem: Problem, arch: Arch, temporal: list[dict[str, int]],
             order: list[str]) -> MappingBatch:
    """Temporal-only mapping; ``order[l]`` lists level l's loops innermost first."""
    L, D = arch.num_levels, problem.num_dims
    tf = np.ones((L, D), np.int64)
    for l, fs in enumerate(temporal):
        for d, v in fs.items():
            tf[l, problem.dim_index(d)] = v
    od = np.array([[problem.dim_index(d) for d in order[l]]
                   + [k for k in range(D) if problem.dims[k] not in order[l]]
                   for l in range(L)])
    return single(tf, np.ones((L, D)), od, np.ones((L, D), bool),
                  np.ones((L, problem.num_tensors), bool))


def _counts(ev, level: str, tensor: str) -> tuple[int, int, int, int]:
    l, t = ev.arch.level_index(level), ev.problem.tensor_index(tensor)
    dm = ev.movement
    return (int(dm.tile[0, l, t]), int(dm.reads[0, l, t]), int(dm.fills[0, l, t]),
            int(dm.updates[0, l, t]))


def test_hand_matmul_output_stationary_row() -> None:
    """Z[m, n] += A[m, k] * B[k, n], M = K = N = 4 (Timeloop names: P = m, C = k, M = n;
    Inputs = A, Weights = B, Outputs = Z).  Loop nest::

        DRAM:    for m in 4:  for k in 4:        (k innermost)
        Buffer:    for n in 4:                   (tile: B[k, :], A[m, k], Z[m, :])

    Buffer tiles: Weights 1x4 = 4, Inputs 1, Outputs 1x4 = 4 (9 of 64 words).
    MACs = 64, each reads one A and one B element from the buffer: 64 reads each.
    Weights: a new row B[k, :] for every (m, k): 16 x 4 = 64 fills = 64 DRAM reads.
    Inputs: a new A[m, k] for every (m, k): 16 fills = 16 DRAM reads (each once).
    Outputs: the row Z[m, :] stays while k runs, so each of the 16 outputs is written
    back once: 16 DRAM updates, 0 DRAM reads, 0 buffer fills (first touch is zero-init).
    In the buffer every MAC updates its output (64 updates) and reads the old partial sum
    except the first time each output is touched: 64 - 16 = 48 reads.
    Energy: DRAM (64 + 16 + 16) x 10 = 960; Buffer (64 + 64) + (64 + 16) + (48 + 64) = 320;
    MACs 64 x 0.5 = 32; total 1312 pJ.  No bandwidth limit: 64 cycles.
    """
    p, a = matmul(4, 4, 4), _two_level()
    m = _mapping(p, a, [{"P": 4, "C": 4}, {"M": 4}], ["CP", "M"])
    ev = evaluate(p, a, m)
    assert bool(ev.valid[0])
    assert _counts(ev, "Buffer", "Weights") == (4, 64, 64, 0)
    assert _counts(ev, "Buffer", "Inputs") == (1, 64, 16, 0)
    assert _counts(ev, "Buffer", "Outputs") == (4, 48, 0, 64)
    assert _counts(ev, "DRAM", "Weights") == (16, 64, 0, 0)
    assert _counts(ev, "DRAM", "Inputs") == (16, 16, 0, 0)
    assert _counts(ev, "DRAM", "Outputs") == (16, 0, 0, 16)
    assert int(ev.cost.cycles[0]) == 64
    assert float(ev.cost.energy[0]) == pytest.approx(1312.0, abs=1e-9)
    assert float(ev.cost.utilization[0]) == 1.0


def test_hand_matmul_partial_sums_spill() -> None:
    """Same problem, DRAM loops swapped (m innermost):  for k in 4: for m in 4: [for n].

    Weights: the row B[k, :] stays while m runs: 4 rows x 4 = 16 fills (each once).
    Inputs: still one new A[m, k] per (k, m): 16.
    Outputs: Z[m, :] is evicted after every step, so each (k, m) writes back a partial row:
    16 x 4 = 64 DRAM updates; it is refetched for k > 0: 3 x 16 = 48 buffer fills = 48
    DRAM reads.  Buffer outputs: 64 updates, 48 reads (as before).
    With DRAM reads limited to 1 word/cycle: DRAM reads 16 + 16 + 48 = 80 words in what
    would be 64 cycles, so the run takes 80 cycles.
    """
    p, a = matmul(4, 4, 4), _two_level(dram_read_bw=1.0)
    m = _mapping(p, a, [{"P": 4, "C": 4}, {"M": 4}], ["PC", "M"])
    ev = evaluate(p, a, m)
    assert _counts(ev, "Buffer", "Weights") == (4, 64, 16, 0)
    assert _counts(ev, "Buffer", "Inputs") == (1, 64, 16, 0)
    assert _counts(ev, "Buffer", "Outputs") == (4, 48, 48, 64)
    assert _counts(ev, "DRAM", "Weights") == (16, 16, 0, 0)
    assert _counts(ev, "DRAM", "Outputs") == (16, 48, 0, 64)
    assert int(ev.cost.cycles[0]) == 80
    # Energy: DRAM (16 + 16 + 48 + 64) x 10 = 1440; Buffer W 64+16, I 64+16, O 48+48+64
    # = 320; MACs 32.
    assert float(ev.cost.energy[0]) == pytest.approx(1440 + 320 + 32, abs=1e-9)


def _conv1d(R: int = 3, P: int = 16) -> Problem:
    """Timeloop tutorial 1-D convolution: O[p] += W[r] * I[p + r]."""
    return Problem(
        name="conv1d", dims=("R", "P"), sizes=(R, P),
        tensors=(Tensor("Weights", ((Term("R"),),)),
                 Tensor("Inputs", ((Term("R"), Term("P")),)),
                 Tensor("Outputs", ((Term("P"),),), read_write=True)),
    )


@pytest.mark.parametrize(
    ("temporal", "order", "tiles", "input_fills"),
    [
        # DRAM: for p in 16 / Buffer: for r in 3.  The 3-wide window slides by one input
        # per step: 3 + 15 x 1 = 18 fills (= the whole input, each element once).
        ([{"P": 16}, {"R": 3}], ["P", "R"], (3, 3, 1), 18),
        # DRAM: for p in 4 / Buffer: for p in 4, r in 3.  6-wide window, stride 4:
        # 6 + 3 x 4 = 18.
        ([{"P": 4}, {"P": 4, "R": 3}], ["P", "RP"], (3, 6, 4), 18),
        # Weight stationary: DRAM: for r in 3 / Buffer: for p in 16.  16-wide window
        # slides by one per r: 16 + 2 = 18.
        ([{"R": 3}, {"P": 16}], ["R", "P"], (1, 16, 16), 18),
        # DRAM: for p in 4: for r in 3 (r innermost) / Buffer: for p in 4.  Tiles
        # [4po + r, +3]: each r step moves the window by 1 (1 new input).  Exactly, the
        # next po moves it by 2 from r = 2 (first block 4 + 1 + 1, then 3 x (2 + 1 + 1)
        # = 18).  Timeloop does not walk every iteration: it visits iterations 0 and 1 of
        # each loop and weights iteration 1 by (bound - 1) (the last iteration is not run),
        # so the po step is taken from r = 1, a move of 3 (3 new): 4 + 1 x 2, then
        # 3 x (3 + 1 x 2) = 6 + 15 = 21.
        ([{"P": 4, "R": 3}, {"P": 4}], ["RP", "P"], (1, 4, 4), 21),
        # DRAM: for r in 3: for p in 4 (p innermost) / Buffer: for p in 4.  Within an r
        # pass the 4-wide tiles are disjoint (no reuse).  Timeloop (it does not run a
        # loop's last iteration, gRunLastIteration = false) compares the next pass's first
        # tile [r, r + 3] with the p = 1 tile [4, 7]; they overlap by one input, but the
        # translation -3 differs from the p steps' +4 it recorded, so
        # SaveAndSubtractIfSameStride fetches the whole tile: 3 x 16 = 48.
        ([{"P": 4, "R": 3}, {"P": 4}], ["PR", "P"], (1, 4, 4), 48),
    ],
    ids=["os-window3", "p-tiled-window6", "ws-window16", "r-inner-slides", "p-inner-refetch"],
)
def test_hand_sliding_window_conv1d(temporal, order, tiles, input_fills) -> None:
    """tut_01-style 1-D conv, R = 3, P = 16 (18 inputs) on DRAM + buffer."""
    p, a = _conv1d(), _two_level()
    ev = evaluate(p, a, _mapping(p, a, temporal, order))
    assert bool(ev.valid[0])
    w_tile, i_tile, o_tile = tiles
    # 48 MACs, each reads one weight and one input from the buffer (innermost level).
    assert _counts(ev, "Buffer", "Inputs") == (i_tile, 48, input_fills, 0)
    assert _counts(ev, "DRAM", "Inputs") == (18, input_fills, 0, 0)
    assert _counts(ev, "Buffer", "Weights")[:2] == (w_tile, 48)
    assert _counts(ev, "Buffer", "Outputs")[0] == o_tile
    # The output is updated by every MAC; the first touch of each of 16 outputs needs
    # no read.
    assert _counts(ev, "Buffer", "Outputs")[1:4:2] == (48 - 16, 48)


def test_hand_sliding_window_weights_and_outputs() -> None:
    """Output stationary tut_01 (DRAM: p 16 / Buffer: r 3): the 3 weights are fetched once
    (no loop above the buffer indexes them); each output is completed in the buffer and
    written back once: 16 DRAM updates, no buffer fills of outputs."""
    p, a = _conv1d(), _two_level()
    ev = evaluate(p, a, _mapping(p, a, [{"P": 16}, {"R": 3}], ["P", "R"]))
    assert _counts(ev, "Buffer", "Weights") == (3, 48, 3, 0)
    assert _counts(ev, "DRAM", "Weights") == (3, 3, 0, 0)
    assert _counts(ev, "DRAM", "Outputs") == (16, 0, 0, 16)
    assert _counts(ev, "Buffer", "Outputs") == (1, 32, 0, 48)


def test_hand_multicast_fanout() -> None:
    """matmul M = K = N = 4 with a 4-wide fan-out over n (Timeloop's M) below the buffer,
    into four 1-word register files holding Weights only.  Per register: B[k, n] for its
    own n, 16 fills (one per (m, k)); the buffer serves A[m, k] to all four units with one
    multicast read: 16 MACs per unit x 1 distinct input = 16 buffer reads of Inputs (not 64),
    while Weights are read once per register fill: 4 distinct x 16 = 64."""
    a = Arch(
        name="fanout",
        levels=(
            StorageLevel("DRAM", cls="DRAM"),
            StorageLevel("Buffer", depth=64),
            StorageLevel("Reg", instances=4, mesh_x=4, depth=1),
        ),
        compute=ComputeUnit(instances=4, mesh_x=4),
    )
    p = matmul(4, 4, 4)
    L, D, T = 3, p.num_dims, p.num_tensors
    tf = np.ones((L, D), np.int64)
    tf[1, p.dim_index("P")] = 4
    tf[1, p.dim_index("C")] = 4
    sp = np.ones((L, D), np.int64)
    sp[1, p.dim_index("M")] = 4
    keep = np.ones((L, T), bool)
    keep[2] = [True, False, False]              # Reg keeps Weights only
    od = np.tile(np.arange(D), (L, 1))
    od[1, :2] = [p.dim_index("C"), p.dim_index("P")]
    od[1, 2:] = [d for d in range(D) if d not in od[1, :2]]
    ev = evaluate(p, a, single(tf, sp, od, np.ones((L, D), bool), keep))
    assert bool(ev.valid[0]), ev.validity.explain(0, p, a)
    assert int(ev.movement.instances[0, 2]) == 4 and int(ev.movement.compute_instances[0]) == 4
    assert _counts(ev, "Reg", "Weights") == (1, 16, 16, 0)
    assert _counts(ev, "Buffer", "Weights")[1] == 64
    assert _counts(ev, "Buffer", "Inputs")[1] == 16
    # Outputs Z[m, n]: four distinct per step (one per unit), 16 steps: 64 updates.
    assert _counts(ev, "Buffer", "Outputs")[3] == 64
    assert int(ev.cost.cycles[0]) == 16


# ====================================================================== invalid mappings
def _small() -> tuple[Problem, Arch]:
    a = Arch(
        name="small",
        levels=(StorageLevel("DRAM", cls="DRAM"),
                StorageLevel("GlobalBuf", depth=8, instances=1),
                StorageLevel("PEReg", depth=2, instances=2, mesh_x=2)),
        compute=ComputeUnit(instances=2, mesh_x=2),
    )
    return matmul(4, 4, 4), a


def _base(p: Problem, a: Arch) -> dict[str, np.ndarray]:
    """A valid mapping: everything at DRAM, all kept at DRAM only."""
    L, D, T = a.num_levels, p.num_dims, p.num_tensors
    tf = np.ones((L, D), np.int64)
    tf[0] = p.sizes
    keep = np.zeros((L, T), bool)
    keep[0] = True
    return dict(temporal=tf, spatial=np.ones((L, D), np.int64),
                order=np.tile(np.arange(D), (L, 1)), spatial_x=np.ones((L, D), bool),
                keep=keep)


def test_valid_base_mapping() -> None:
    p, a = _small()
    v = check(p, a, single(**_base(p, a)))
    assert bool(v.valid[0]) and int(v.reasons[0]) == 0
    assert v.explain(0, p, a) == []


def test_reason_factors() -> None:
    p, a = _small()
    mp = _base(p, a)
    mp["temporal"][1, p.dim_index("C")] = 2          # C: 4 x 2 = 8 != 4
    v = check(p, a, single(**mp))
    assert not v.valid[0] and Reason(int(v.reasons[0])) == Reason.FACTORS
    (msg,) = v.explain(0, p, a)
    assert "C (size 4)" in msg and "M (size" not in msg


def test_reason_fanout() -> None:
    p, a = _small()
    mp = _base(p, a)
    mp["temporal"][0, p.dim_index("M")] = 1
    mp["spatial"][1, p.dim_index("M")] = 4           # GlobalBuf fans out to 2 PEReg only
    v = check(p, a, single(**mp))
    assert Reason(int(v.reasons[0])) == Reason.FANOUT
    (msg,) = v.explain(0, p, a)
    assert "GlobalBuf" in msg and "2x1" in msg


def test_reason_capacity() -> None:
    p, a = _small()
    mp = _base(p, a)
    mp["temporal"][0, p.dim_index("C")] = 1
    mp["temporal"][2, p.dim_index("C")] = 4          # PEReg tile of Weights: 4 > 2 words
    mp["keep"][2, p.tensor_index("Weights")] = True
    v = check(p, a, single(**mp))
    assert Reason(int(v.reasons[0])) == Reason.CAPACITY
    assert int(v.usage[0, 2]) == 4 and int(v.capacity[2]) == 2
    (msg,) = v.explain(0, p, a)
    assert "PEReg" in msg and "4" in msg and "2" in msg


def test_reason_unkept() -> None:
    p, a = _small()
    mp = _base(p, a)
    mp["keep"][:, p.tensor_index("Inputs")] = False
    v = check(p, a, single(**mp))
    assert Reason(int(v.reasons[0])) == Reason.UNKEPT
    (msg,) = v.explain(0, p, a)
    assert "Inputs" in msg and "Weights" not in msg


def test_several_reasons_at_once_and_batch_rows_independent() -> None:
    p, a = _small()
    good = single(**_base(p, a))
    mp = _base(p, a)
    mp["temporal"][1, p.dim_index("P")] = 3          # FACTORS on P
    mp["spatial"][2, p.dim_index("C")] = 2           # FANOUT below PEReg (to 1 MAC each)
    mp["keep"][:, p.tensor_index("Outputs")] = False  # UNKEPT
    bad = single(**mp)
    v = check(p, a, MappingBatch.concat([good, bad, good]))
    assert v.valid.tolist() == [True, False, True]
    r = Reason(int(v.reasons[1]))
    assert r == Reason.FACTORS | Reason.FANOUT | Reason.UNKEPT
    text = " ".join(v.explain(1, p, a))
    assert "P (size 4)" in text and "PEReg" in text and "Outputs" in text
    ev = evaluate(p, a, MappingBatch.concat([good, bad, good]))   # never raises
    assert ev.frame()["valid"].tolist() == [True, False, True]
    assert np.isnan(ev.frame()["energy_pJ"][1])


def test_random_invalid_mappings_are_explained() -> None:
    """On a tight arch most random mappings fail; each failure has a reason and a sentence
    per reason flag."""
    p, a = _small()
    keep = np.ones((3, 3), bool)
    keep[2] = [True, False, False]                   # PEReg keeps Weights only
    m = random_mappings(p, a, 300, np.random.default_rng(7), keep)
    v = check(p, a, m)
    assert (~v.valid).sum() > 0 and v.valid.sum() > 0
    for i in np.nonzero(~v.valid)[0]:
        flags = [f for f in Reason if f in Reason(int(v.reasons[i]))]
        assert flags
        msgs = v.explain(int(i), p, a)
        assert len(msgs) >= len(flags)
        if Reason.CAPACITY in Reason(int(v.reasons[i])):
            assert any("GlobalBuf" in s or "PEReg" in s for s in msgs)


# ============================================================================ edge cases
def test_empty_batch_evaluates_to_empty_results() -> None:
    """A filter that keeps no row gives an empty batch; checking and evaluating it gives
    empty results (at 0fd62ff this raised ValueError from a ``reshape(B, -1)``)."""
    p, a = _small()
    empty = single(**_base(p, a))[np.zeros(0, dtype=np.int64)]
    assert len(empty) == 0
    v = check(p, a, empty)
    assert v.valid.shape == (0,)
    ev = evaluate(p, a, empty)
    assert len(ev) == 0 and len(ev.frame()) == 0
