"""Search strategies: one conformance suite over every strategy in ``STRATEGIES``, the
exhaustive enumeration checked against brute force, gene operators, and search quality
against the exhaustive optimum on layers with 0.8M-4.5M candidates."""

from __future__ import annotations

from itertools import permutations, product

import numpy as np
import pytest

from cost_models.model import evaluate
from mapspace import (
    ActionEnergy,
    Arch,
    ComputeUnit,
    MapspaceError,
    StorageLevel,
    bmm,
    conv2d,
    matmul,
)
from mapspace.constraints import Constraints, Directive
from mapspace.problem import Problem
from mapspace.search import STRATEGIES, CostFn, Exhaustive, make_strategy, run
from mapspace.search.operators import crossover, gene_table, local_moves, mutate, neighbour
from mapspace.space import Decisions, Mapspace
from targets import default_constraints, load_target


# ------------------------------------------------------------------------- helpers
def edp_cost(problem: Problem, arch: Arch, objective: str = "edp") -> CostFn:
    """Cost function over :func:`cost_models.model.evaluate`: ``objective`` is ``edp``,
    ``energy`` or ``cycles``."""
    def cost(m):
        ev = evaluate(problem, arch, m)
        return getattr(ev.cost, objective).astype(np.float64), ev.valid
    return cost


def gemmini_space(problem: Problem) -> Mapspace:
    """``problem`` on the gemmini target under its default constraints."""
    return Mapspace(problem, load_target("gemmini"), default_constraints("gemmini"))


def tiny_space() -> Mapspace:
    """3 levels, a free 2x2 X/Y split below a 16-word buffer, free keeps at the buffer,
    free loop order at the buffer only: small enough to enumerate raw."""
    arch = Arch("tiny", (
        StorageLevel("DRAM", cls="DRAM", energy=ActionEnergy(100.0, 100.0, 100.0)),
        StorageLevel("Buffer", depth=16, energy=ActionEnergy(2.0, 2.0, 2.0)),
        StorageLevel("Regs", instances=4, mesh_x=2, mesh_y=2, depth=2,
                     energy=ActionEnergy(0.5, 0.5, 0.5)),
    ), ComputeUnit(instances=4, mesh_x=2, mesh_y=2, energy=1.0))
    problem = bmm(1, 2, 4, 2)
    dims = problem.dims
    cons = Constraints((
        Directive("DRAM", "datatype", keep=problem.tensor_names),
        Directive("DRAM", "temporal", permutation=dims),
        Directive("Regs", "temporal", permutation=dims),
        Directive("Regs", "datatype", keep=(problem.tensor_names[1],),
                  bypass=(problem.tensor_names[0], problem.tensor_names[2])),
    ))
    return Mapspace(problem, arch, cons)


#: per strategy, constructor arguments that keep the conformance runs small
FAST = {"random": {"batch": 128}, "exhaustive": {"batch": 256},
        "genetic": {"population": 64, "elite": 4}, "anneal": {"chains": 32, "budget": 1000},
        "cpsat": {"time_limit": 1.0, "polish_budget": 300}}


def strategy(name: str, space: Mapspace, seed: int = 0):
    return make_strategy(name, space, seed, **FAST.get(name, {}))


# ---------------------------------------------------------------- conformance suite
@pytest.mark.parametrize("name", sorted(STRATEGIES))
def test_same_seed_same_result(name: str) -> None:
    space = tiny_space()
    cost = edp_cost(space.problem, space.arch)
    a, b = (run(space, strategy(name, space, 7), cost, budget=700) for _ in range(2))
    assert a.best is not None and b.best is not None
    assert a.best_objective == b.best_objective and a.history == b.history
    for f in ("factor", "order", "spatial_x", "keep"):
        np.testing.assert_array_equal(getattr(a.best, f), getattr(b.best, f))


@pytest.mark.parametrize("objective", ["edp", "energy", "cycles"])
@pytest.mark.parametrize("name", sorted(STRATEGIES))
def test_result_is_valid_and_reevaluates(name: str, objective: str) -> None:
    space = gemmini_space(matmul(16, 32, 16))
    cost = edp_cost(space.problem, space.arch, objective)
    res = run(space, strategy(name, space, 1), cost, budget=1000)
    assert res.best is not None and res.best_mapping is not None
    obj, valid = cost(space.decode(res.best))
    assert valid[0] and obj[0] == res.best_objective
    assert [b for _, b in res.history] == sorted((b for _, b in res.history), reverse=True)


@pytest.mark.parametrize("name", sorted(STRATEGIES))
def test_never_worse_than_first_batch(name: str) -> None:
    space = tiny_space()
    inner = edp_cost(space.problem, space.arch)
    first: list[float] = []

    def cost(m):
        obj, valid = inner(m)
        if not first:
            first.append(float(np.where(valid, obj, np.inf).min()))
        return obj, valid

    res = run(space, strategy(name, space, 3), cost, budget=900)
    assert res.best_objective <= first[0]


@pytest.mark.parametrize("budget", [1, 333, 1000])
@pytest.mark.parametrize("name", sorted(STRATEGIES))
def test_respects_budget_exactly(name: str, budget: int) -> None:
    space = tiny_space()
    inner = edp_cost(space.problem, space.arch)
    seen: list[int] = []

    def cost(m):
        seen.append(len(m))
        return inner(m)

    res = run(space, strategy(name, space, 0), cost, budget=budget)
    assert res.evaluations == sum(seen) <= budget
    # spend the whole budget unless the strategy finishes by itself (cpsat, exhaustive)
    assert res.evaluations == budget or res.stopped_by == "strategy finished"


@pytest.mark.parametrize("name", sorted(STRATEGIES))
def test_all_invalid_cost_returns_no_best(name: str) -> None:
    space = tiny_space()

    def cost(m):
        return np.full(len(m), np.nan), np.zeros(len(m), bool)

    res = run(space, strategy(name, space, 0), cost, budget=500)
    assert res.best is None and res.best_mapping is None
    assert res.best_objective == np.inf and res.evaluations <= 500
    assert res.evaluations == 500 or res.stopped_by == "strategy finished"


def test_make_strategy_names_known_strategies() -> None:
    space = tiny_space()
    with pytest.raises(MapspaceError, match="known strategies are .*anneal.*exhaustive"):
        make_strategy("hill-climb", space, 0)
    # the CP-SAT strategy was once called 'optimal', which it is not: the old name says so
    with pytest.raises(MapspaceError, match="'optimal' was renamed 'cpsat'.*proves nothing"):
        make_strategy("optimal", space, 0)
    s = make_strategy("genetic", space, 5, population=8)
    assert s.seed == 5 and s.population == 8
    assert isinstance(make_strategy("exhaustive", space, 5), Exhaustive)


# -------------------------------------------------------------------- exhaustive
def test_unit_loop_position_does_not_change_cost() -> None:
    """Exhaustive enumerates orders up to unit loops: moving loops of factor 1 anywhere in a
    level's order (non-unit loops keeping their relative order) leaves every cost equal."""
    space = gemmini_space(matmul(16, 32, 16))
    rng = np.random.default_rng(0)
    m = space.decode(space.random_decisions(64, rng))
    order = m.order.copy()
    B, L, D = order.shape
    for b, l in product(range(B), range(L)):
        row = order[b, l]
        unit = m.temporal[b, l, row] == 1
        slots = np.sort(rng.choice(D, int((~unit).sum()), replace=False))
        new = np.empty(D, np.int64)
        new[slots] = row[~unit]
        new[np.setdiff1d(np.arange(D), slots)] = rng.permutation(row[unit])
        order[b, l] = new
    moved = type(m)(m.temporal, m.spatial, order, m.spatial_x, m.keep)
    assert (moved.order != m.order).any()
    a, b = evaluate(space.problem, space.arch, m), evaluate(space.problem, space.arch, moved)
    np.testing.assert_array_equal(a.valid, b.valid)
    np.testing.assert_array_equal(a.cost.cycles, b.cost.cycles)
    np.testing.assert_allclose(a.cost.energy, b.cost.energy, rtol=1e-12)


def _raw_decisions(space: Mapspace) -> Decisions:
    """Every raw decision of :func:`tiny_space` (all orders, X/Y and keeps)."""
    L, D = space.arch.num_levels, space.problem.num_dims
    fixed_k, value_k = space.keep_fixed
    free_k = np.argwhere(~fixed_k)
    rows = []
    for f in product(*(range(len(t)) for t in space.tables)):
        for perm in permutations(range(D)):
            for xy in product([False, True], repeat=D):
                for kb in product([False, True], repeat=len(free_k)):
                    rows.append((f, perm, xy, kb))
    n = len(rows)
    order = np.broadcast_to(np.arange(D), (n, L, D)).copy()
    order[:, 1] = [r[1] for r in rows]
    sx = np.ones((n, L, D), bool)
    sx[:, 1] = [r[2] for r in rows]
    keep = np.broadcast_to(value_k, (n, *value_k.shape)).copy()
    keep[:, free_k[:, 0], free_k[:, 1]] = [r[3] for r in rows]
    return Decisions(np.array([r[0] for r in rows], np.int64), order, sx, keep)


def test_exhaustive_matches_brute_force() -> None:
    """Orders up to unit loops and X/Y only for non-unit spatial factors lose no cost: the
    set of (cycles, energy) pairs of the valid raw space equals the exhaustive one's."""
    space = tiny_space()
    raw = _raw_decisions(space)
    ev = evaluate(space.problem, space.arch, space.decode(raw))
    assert 0 < ev.valid.sum() < len(raw)                  # pruning has work to do
    ex = Exhaustive(space, batch=1000)
    parts = []
    while (d := ex.ask()) is not None:
        parts.append(d)
    dec = Decisions.concat(parts)
    assert len(dec) == ex.count()
    m = space.decode(dec)
    got = evaluate(space.problem, space.arch, m)
    assert got.valid.all()
    flat = np.concatenate([a.reshape(len(m), -1) for a in
                           (m.temporal, m.spatial, m.order, m.spatial_x, m.keep)], axis=1)
    assert len(np.unique(flat, axis=0)) == len(m)          # no candidate twice

    def costs(e):
        v = e.valid
        return set(zip(e.cost.cycles[v].tolist(), np.round(e.cost.energy[v], 6).tolist(),
                       strict=True))

    assert costs(got) == costs(ev)


def test_exhaustive_count_equals_space_size_without_capacity() -> None:
    """With unbounded capacities only fan-out prunes, so the count is the space's exact
    number of candidates up to unit loops (gemmini has no free X/Y split)."""
    arch = load_target("gemmini")
    for name in ("Scratchpad", "Accumulator", "Registers"):
        arch = arch.with_level(name, depth=None)
    space = Mapspace(matmul(16, 32, 16), arch, default_constraints("gemmini"))
    assert Exhaustive(space).count() == space.size().distinct_total == 821_435
    assert Exhaustive(space, prune=False).count() >= space.size().distinct_total


def test_exhaustive_refuses_large_spaces() -> None:
    space = gemmini_space(conv2d(1, 16, 8, 8, 16, 3, 3))
    ex = Exhaustive(space, limit=1e6)
    with pytest.raises(MapspaceError, match="more than .* candidates, above the limit"):
        ex.ask()


# --------------------------------------------------------------------- operators
def test_operators_keep_fixed_genes_fixed() -> None:
    space = gemmini_space(conv2d(1, 16, 8, 8, 16, 3, 3))
    rng = np.random.default_rng(0)
    a, b = space.random_decisions(200, rng), space.random_decisions(200, rng)
    fixed_k, value_k = space.keep_fixed
    for dec in (mutate(space, a, rng, 0.5), crossover(a, b, rng), neighbour(space, a, rng)):
        assert np.all(dec.keep[:, fixed_k] == value_k[fixed_k])
        for l, p in enumerate(space.order_prefix):
            assert (dec.order[:, l, :len(p)] == p).all()
        assert (np.sort(dec.order, axis=2) == np.arange(space.problem.num_dims)).all()
        for d, t in enumerate(space.tables):
            assert ((dec.factor[:, d] >= 0) & (dec.factor[:, d] < len(t))).all()
    moves = local_moves(space)
    for n in (neighbour(space, a, rng), neighbour(space, a, rng, moves)):
        changed = (n.factor != a.factor).sum(1) + (n.order != a.order).any(2).sum(1) \
            + (n.spatial_x != a.spatial_x).any(2).sum(1) + (n.keep != a.keep).any(2).sum(1)
        assert changed.max() == 1 and changed.mean() > 0.5
    # with moves, about half the factor changes are one prime moved between two slots
    rows, dims = np.nonzero(n.factor != a.factor)
    local = [n.factor[r, d] in moves[d][a.factor[r, d]] for r, d in zip(rows, dims, strict=True)]
    assert 0.3 < np.mean(local) < 0.9
    kinds = [tuple(g) for g in gene_table(space)]      # N = 1 has one factorization
    assert kinds == [(0, d) for d in (0, 1, 2, 3, 5, 6)] + [(1, l) for l in range(4)]


# ----------------------------------------------------------------------- quality
LAYERS = {
    "matmul 16x32x16": matmul(16, 32, 16),
    "matmul 32x32x64": matmul(32, 32, 64),
    "conv2d N1 C4 H4 W4 M8 R3 S3": conv2d(1, 4, 4, 4, 8, 3, 3),
}


@pytest.fixture(scope="module")
def optimum() -> dict[str, tuple[float, int]]:
    """Per layer: exhaustive best EDP and number of evaluations."""
    out = {}
    for key, problem in LAYERS.items():
        space = gemmini_space(problem)
        res = run(space, Exhaustive(space), edp_cost(problem, space.arch))
        assert res.stopped_by == "strategy finished" and res.evaluations >= 100_000
        out[key] = (res.best_objective, res.evaluations)
    return out


@pytest.mark.parametrize("layer", sorted(LAYERS))
@pytest.mark.parametrize("name", ["genetic", "anneal"])
def test_search_within_5_percent_of_optimum(optimum, name: str, layer: str) -> None:
    """Genetic and annealing search get within 5% of the exhaustive optimum EDP with 1% of
    its evaluations (two seeds each)."""
    best, count = optimum[layer]
    space = gemmini_space(LAYERS[layer])
    budget = count // 100
    kw = {"budget": budget} if name == "anneal" else {}
    for seed in (0, 1):
        res = run(space, make_strategy(name, space, seed, **kw),
                  edp_cost(space.problem, space.arch), budget=budget)
        assert res.best_objective <= 1.05 * best, (name, layer, seed, res.best_objective / best)
