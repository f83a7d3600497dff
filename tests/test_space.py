"""Mapspace: exact size against brute-force enumeration, uniform sampling (chi-square),
determinism, constraints honoured, bad constraints reported."""

from __future__ import annotations

import itertools
from math import factorial

import numba
import numpy as np
import pytest

from compiler.explore import explore
from mapspace.arch import Arch, ComputeUnit, StorageLevel
from mapspace.constraints import NONE, Constraints, Directive, FactorBound
from mapspace.errors import MapspaceError
from mapspace.problem import matmul
from mapspace.space import Mapspace
from mapspace.workloads import workload
from targets import default_constraints, load_target


def tiny_arch(buffer_words: int = 12) -> Arch:
    return Arch("tiny", (
        StorageLevel("DRAM", cls="DRAM"),
        StorageLevel("Buffer", depth=buffer_words),
        StorageLevel("PE", instances=4, mesh_x=2, mesh_y=2, depth=4),
    ), ComputeUnit(instances=4, mesh_x=2, mesh_y=2))


def divisors(n: int) -> list[int]:
    return [d for d in range(1, n + 1) if n % d == 0]


def brute_force_count(problem, arch) -> tuple[int, int]:
    """(factorizations x X/Y choices within fan-out, raw factorizations), by enumeration."""
    slots = [(l, False) for l in range(arch.num_levels)] + \
            [(l, True) for l in range(arch.num_levels) if arch.fanout(l) != (1, 1)]
    per_dim = []
    for size in problem.sizes:
        # a spatial slot can hold at most the larger side of its fan-out
        choices = [[f for f in divisors(size) if not sp or f <= max(arch.fanout(l))]
                   for l, sp in slots]
        rows = [r for r in itertools.product(*choices) if np.prod(r) == size]
        per_dim.append(rows)
    raw = int(np.prod([len(r) for r in per_dim]))
    fan_slots = [(i, l) for i, (l, sp) in enumerate(slots) if sp]
    ok = 0
    for combo in itertools.product(*per_dim):
        # X/Y choice per (dim, 2-D fan-out level): count those that fit
        for xy in itertools.product([True, False], repeat=len(combo) * len(fan_slots)):
            fits = True
            k = 0
            prods = {l: [1, 1] for _, l in fan_slots}
            for row in combo:
                for i, l in fan_slots:
                    prods[l][0 if xy[k] else 1] *= row[i]
                    k += 1
            for _, l in fan_slots:
                fx, fy = arch.fanout(l)
                fits &= prods[l][0] <= fx and prods[l][1] <= fy
            ok += fits
    return ok, raw


def test_size_matches_brute_force():
    p, a = matmul(2, 4, 2), tiny_arch()
    size = Mapspace(p, a, NONE).size()
    fs, raw = brute_force_count(p, a)
    assert size.factorizations == raw
    assert size.factor_spatial == fs
    D, L = p.num_dims, a.num_levels
    assert size.orders == factorial(D) ** L
    # all tensors free at the 2 inner levels; the outermost keeps every tensor (Timeloop's
    # default bypass string "X...X1", src/mapping/constraints.cpp)
    assert size.bypass == 2 ** ((L - 1) * p.num_tensors)
    assert size.total == fs * size.orders * size.bypass


def test_distinct_orders_count_by_enumeration():
    # distinct orders = sum over (factorization, X/Y) of prod_l (non-unit loops at l)!
    p, a = matmul(2, 2, 1), tiny_arch()
    space = Mapspace(p, a, NONE)
    dec = space.draw(1, 0)
    total = 0
    for rows in itertools.product(*[range(len(t)) for t in space.tables]):
        dec.factor[0] = rows
        m = space.decode(dec)
        for xs in itertools.product([True, False], repeat=p.num_dims):
            sx = np.where(xs, m.spatial[0, 1], 1).prod()
            sy = np.where(xs, 1, m.spatial[0, 1]).prod()
            if sx > 2 or sy > 2:
                continue
            total += int(np.prod([factorial(int((m.temporal[0, l] > 1).sum()))
                                  for l in range(a.num_levels)]))
    size = space.size()
    assert size.distinct_total == total * size.bypass


def test_constraints_shrink_tables_and_orders():
    p, a = matmul(4, 4, 4), tiny_arch()
    c = Constraints((
        Directive("PE", "temporal", factors=(FactorBound("C", "=", 1),),
                  permutation=("P", "M")),
        Directive("Buffer", "datatype", keep=("Weights",), bypass=("Outputs",)),
    ), strict=True)
    space = Mapspace(p, a, c)
    ci = p.dim_index("C")
    assert (space.tables[ci][:, 2] == 1).all()           # PE temporal slot of C
    size = space.size()
    assert size.orders == factorial(p.num_dims) ** 2 * factorial(p.num_dims - 2)
    assert size.bypass == 2 ** (2 * 3 - 2)      # outermost fixed (keeps all), 2 by Buffer
    m, _ = space.sample(2000, 3)
    assert (m.temporal[:, 2, ci] == 1).all()
    assert (m.keep[:, 1, p.tensor_index("Weights")]).all()
    assert (~m.keep[:, 1, p.tensor_index("Outputs")]).all()
    # prefix: P then M innermost at the PE level
    assert (m.order[:, 2, 0] == p.dim_index("P")).all()
    assert (m.order[:, 2, 1] == p.dim_index("M")).all()


def _chi2_critical(dof: int, z: float = 3.09) -> float:
    """Upper 0.1% quantile of chi-square (Wilson-Hilferty)."""
    return dof * (1 - 2 / (9 * dof) + z * (2 / (9 * dof)) ** 0.5) ** 3


def test_uniform_over_valid_mappings_chi_square():
    # Small space: every valid mapping (as a decision tuple) must be equally likely.
    p, a = matmul(2, 2, 2), tiny_arch(buffer_words=6)
    c = Constraints((Directive("DRAM", "datatype", keep=("Weights", "Inputs", "Outputs")),
                     Directive("PE", "datatype", keep=("Weights", "Inputs", "Outputs"))),
                    strict=True)
    space = Mapspace(p, a, c)
    n = 400_000
    dec = space.draw(n, 11)
    m = space.decode(dec)
    ok = space.valid_mask(m)
    # identify mappings up to unit-loop order positions: factors, order, x (where >1), keep
    key = np.concatenate([
        dec.factor,
        dec.order.reshape(n, -1),
        (dec.spatial_x & (m.spatial > 1)).reshape(n, -1),
        dec.keep.reshape(n, -1),
    ], axis=1)[ok]
    _, counts = np.unique(key, axis=0, return_counts=True)
    # every decision tuple has the same multiplicity in the raw space, so valid tuples
    # must be hit equally often
    k = len(counts)
    assert k > 50
    expected = counts.sum() / k
    chi2 = float(((counts - expected) ** 2 / expected).sum())
    assert chi2 < _chi2_critical(k - 1), (chi2, k)


def test_draw_is_deterministic_and_thread_independent():
    space = Mapspace(workload("resnet50/conv3_x"), load_target("gemmini"),
                     default_constraints("gemmini"))
    a = space.draw(20_000, 5)
    threads = numba.get_num_threads()
    numba.set_num_threads(1)
    try:
        b = space.draw(20_000, 5)
    finally:
        numba.set_num_threads(threads)
    for f in ("factor", "order", "spatial_x", "keep"):
        assert (getattr(a, f) == getattr(b, f)).all()
    c = space.draw(20_000, 6)
    assert not (a.factor == c.factor).all()
    # continuing a draw equals drawing more at once
    head = space.draw(8192, 5)
    tail = space.draw(4096, 5, first_chunk=2)
    assert (np.concatenate([head.factor, tail.factor]) == space.draw(12288, 5).factor).all()


def test_gemmini_defaults_are_honoured_by_samples():
    from mapspace.constraint_check import satisfies

    p, a = workload("bert-base/ffn1"), load_target("gemmini")
    c = default_constraints("gemmini")
    space = Mapspace(p, a, c)
    m, _ = space.sample(20_000, 0)
    ok = space.valid_mask(m)
    assert ok.mean() > 0.2
    assert satisfies(c, p, a, m).all()


def test_explore_is_deterministic_and_summarises():
    p, a = workload("bert-base/ffn1"), load_target("gemmini")
    c = default_constraints("gemmini")
    r1 = explore(p, a, c, 3000, 1)
    r2 = explore(p, a, c, 3000, 1)
    assert r1.summary["valid"] == 3000 and len(r1.frame) == 3000
    assert (r1.frame["edp"].to_numpy() == r2.frame["edp"].to_numpy()).all()
    edp = r1.frame["edp"].to_numpy()
    s = r1.summary
    assert s["edp_min"] == edp.min() and s["edp_max"] == edp.max()
    assert s["within_2x_of_best"] == pytest.approx((edp <= 2 * edp.min()).mean())
    assert s["spread_orders_of_magnitude"] == pytest.approx(np.log10(edp.max() / edp.min()))


def test_impossible_constraints_name_the_dimension():
    p, a = matmul(4, 4, 4), tiny_arch()
    c = Constraints((Directive("DRAM", "temporal", factors=(FactorBound("C", "=", 3),)),),
                    strict=True)
    with pytest.raises(MapspaceError, match="C=4"):
        _ = Mapspace(p, a, c).tables


def test_capacity_that_fits_nothing_is_reported():
    p, a = matmul(64, 64, 64), tiny_arch(buffer_words=1)
    c = Constraints((Directive("Buffer", "datatype", keep=("Weights", "Inputs", "Outputs")),),
                    strict=True)
    with pytest.raises(MapspaceError, match="no valid mapping"):
        explore(p, a, c, 10, 0, max_candidates=200_000)


def test_explore_matches_draw_and_evaluate_and_is_thread_independent():
    from cost_models import evaluate

    p, a = workload("resnet50/conv3_x"), load_target("gemmini")
    c = default_constraints("gemmini")
    r2 = explore(p, a, c, 4000, 9)
    threads = numba.get_num_threads()
    numba.set_num_threads(1)
    try:
        r1 = explore(p, a, c, 4000, 9)
    finally:
        numba.set_num_threads(threads)
    assert (r1.costs["edp"] == r2.costs["edp"]).all()
    space = Mapspace(p, a, c)
    ev = evaluate(p, a, space.decode(space.draw(65536, 9)))
    idx = np.nonzero(ev.valid)[0][:4000]
    assert (ev.cost.cycles[idx] == r2.costs["cycles"]).all()
    assert np.allclose(ev.cost.energy[idx], r2.costs["energy_pJ"], rtol=1e-12)
