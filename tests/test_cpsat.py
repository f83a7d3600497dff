"""CpSat (strategy cpsat: CoSA-style CP-SAT model + local polish) against exhaustive search.

Three gemmini layers small enough to enumerate (factorization rows x loop orders up to unit
loops): ``CpSat``'s best EDP must be within 0.1% of the exhaustive optimum.  Measured on
the 2-core development machine: every layer's optimum is also the very first CP candidate.
"""

from __future__ import annotations

import time
from functools import cache

import numpy as np
import pytest

import mapspace.search.cpsat as cpsat
import targets
from cost_models import evaluate
from mapspace import conv2d, matmul
from mapspace.mapping import MappingBatch
from mapspace.search import Exhaustive, run
from mapspace.search.cpsat import CpSat
from mapspace.space import Mapspace
from mapspace.validity import check

LAYERS = {
    "matmul_16x32x16": matmul(16, 32, 16),
    "matmul_32x32x64": matmul(32, 32, 64),
    # conv2d N1 C16 H8 W8 M16 R3 S3 has 1.4e9 distinct mappings on gemmini: too many to
    # enumerate in a test; this one keeps the sliding windows (P=Q=2 with R=S=3).
    "conv_c8_m8_hw4_r3": conv2d(1, 8, 4, 4, 8, 3, 3),
}


@cache
def _space(name: str) -> Mapspace:
    return Mapspace(LAYERS[name], targets.load_target("gemmini"),
                    targets.default_constraints("gemmini"))


def _edp(space: Mapspace):
    def cost(m: MappingBatch) -> tuple[np.ndarray, np.ndarray]:
        ev = evaluate(space.problem, space.arch, m)
        return ev.cost.edp.astype(np.float64), ev.valid
    return cost


@cache
def _exhaustive(name: str) -> tuple[float, int, float]:
    space = _space(name)
    res = run(space, Exhaustive(space), _edp(space))
    return res.best_objective, res.evaluations, res.seconds


def _cpsat(name: str, **kw) -> tuple[CpSat, object, float]:
    space = _space(name)
    st = CpSat(space, seed=0, **kw)
    t0 = time.perf_counter()
    res = run(space, st, _edp(space))
    return st, res, time.perf_counter() - t0


@pytest.mark.parametrize("name", sorted(LAYERS))
def test_cpsat_reaches_the_exhaustive_optimum(name):
    best, n_exh, t_exh = _exhaustive(name)
    st, res, secs = _cpsat(name, time_limit=2.0, polish_budget=2000)
    print(f"\n{name}: exhaustive EDP {best:.6g} ({n_exh} evaluations, {t_exh:.1f} s); "
          f"cpsat EDP {res.best_objective:.6g} ({res.evaluations} evaluations, {secs:.1f} s, "
          f"CP {st.cp_seconds:.2f} s, {st.cp_solutions} solutions, {st.cp_candidates} "
          f"candidates; best found at evaluation {res.history[-1][0]})")
    assert np.isfinite(best)
    assert res.best_objective <= best * 1.001
    assert res.best_objective >= best * (1 - 1e-12)          # exhaustive is a lower bound
    # the CP candidates alone already come close (measured: exactly the optimum)
    cp_best = min((v for e, v in res.history if e <= st.cp_candidates), default=np.inf)
    assert cp_best <= best * 1.10
    assert st.ask() is None                                   # finished
    assert res.stopped_by == "strategy finished"
    assert res.evaluations <= st.cp_candidates + 2000


def test_prime_allocation_form_reaches_the_optimum(monkeypatch):
    """Tables above ``ROW_LIMIT`` rows use CoSA's prime allocation; force it everywhere."""
    monkeypatch.setattr(cpsat, "ROW_LIMIT", 0)
    name = "matmul_16x32x16"
    best, _, _ = _exhaustive(name)
    st, res, _ = _cpsat(name, time_limit=2.0, polish_budget=2000)
    assert st.cp_solutions > 0
    assert res.best_objective <= best * 1.001


def test_same_seed_same_result():
    runs = [_cpsat("conv_c8_m8_hw4_r3", time_limit=2.0, polish_budget=600)[1]
            for _ in range(2)]
    assert runs[0].history == runs[1].history
    assert runs[0].best_mapping.equals(runs[1].best_mapping).all()


def test_asks_only_valid_mappings_and_respects_budgets():
    space = _space("matmul_32x32x64")
    seen: list = []

    def cost(m):
        seen.append(check(space.problem, space.arch, m).valid)
        return _edp(space)(m)

    res = run(space, CpSat(space, seed=3, time_limit=1.0, top_k=8, polish_budget=300), cost)
    assert np.concatenate(seen).all() and res.valid_evaluations == res.evaluations
    res = run(space, CpSat(space, seed=3, time_limit=1.0), _edp(space), budget=100)
    assert res.evaluations == 100 and res.stopped_by == "budget"


@pytest.mark.parametrize("target", ["simba-like", "eyeriss-like"])
def test_free_splits_and_keeps(target):
    """Two-dimensional fan-outs with free X/Y splits and free keep/bypass choices (no
    constraints): the CP model has X/Y and keep variables; the result is valid."""
    space = Mapspace(conv2d(1, 8, 6, 6, 16, 3, 3), targets.load_target(target))
    st = CpSat(space, seed=0, time_limit=1.0, top_k=8, polish_budget=500)
    res = run(space, st, _edp(space))
    assert st.cp_solutions > 0 and np.isfinite(res.best_objective)
    assert check(space.problem, space.arch, res.best_mapping).valid.all()


@pytest.mark.parametrize("shape", [(8, 8, 8), (64, 32, 16)])
def test_model_tiles_use_only_their_own_dimensions(shape) -> None:
    """Each tensor's log tile in the CP model sums only the extents of the dimensions it is
    indexed by, and the per-dimension extents stay per dimension.  OR-Tools' ``SumArray``
    adds in place on ``+=``: the model once built a tensor's tile with ``+=`` onto the
    shared extent of its first dimension, so an output tile counted the reduction
    dimension twice, and a tiny matmul with every tensor kept at the outermost level had
    no solution."""
    import re

    from ortools.sat.python import cp_model

    p = matmul(*shape)
    arch = targets.load_target("gemmini")
    opt = CpSat(Mapspace(p, arch), 0)
    opt._setup()
    m = cpsat._Model(opt, cp_model)
    inner = [[s for s, (ll, _) in enumerate(opt._slots) if ll >= lv]
             for lv in range(arch.num_levels)]
    for d in range(p.num_dims):
        for expr in m.ext_con[d]:
            names = set(re.findall(r"\b([re])(\d+)_", str(expr)))
            assert names <= {("r", str(d)), ("e", str(d))}, (d, str(expr))
    for t in range(p.num_tensors):
        if any((axis != 0).sum() > 1 for axis in p.projections[t]):
            continue                            # sliding windows: pair variables
        con, _ = m._log_tile(t, 0, inner)
        dims = {int(k) for k in re.findall(r"\b[re](\d+)_", str(con))}
        relevant = set(np.nonzero(p.relevance[t])[0].tolist())
        assert {d for d in relevant if p.sizes[d] > 1} <= dims <= relevant
    assert opt.ask() is not None
