"""One conformance suite for every :class:`cost_models.interface.CostModel`.

Like scikit-learn's estimator checks: each implementation in :data:`MODELS` goes through
the same tests — the protocol, batch == scalar row by row, invalid rows flagged as values,
determinism, the invariants of a valid row, and monotonicity in obviously worse mappings
(serialising the spatial fan-out never lowers cycles or energy).  A new cost model (the
learned one) is one more entry in ``MODELS``.
"""

from __future__ import annotations

import numpy as np
import pytest

from cost_models.fused import Fused, row_complete_constraints
from cost_models.interface import ANALYTICAL, Analytical, CostModel, Costs
from cost_models.sparse import Action, SparseOptimizations
from cost_models.sparse_model import Sparse
from cost_models.sparseloop import PrunedWeights
from mapspace.mapping import MappingBatch
from mapspace.problem import conv2d, matmul
from mapspace.space import Mapspace
from mapspace.validity import Reason
from targets import default_constraints, load_target

ARCH = load_target("gemmini")
PROBLEMS = {"matmul": matmul(64, 256, 96, name="mm"),
            "conv": conv2d(1, 32, 16, 16, 64, 3, 3, name="conv")}

#: every implementation, by name (each returns the model for a problem)
MODELS = {
    "analytical": lambda p: Analytical(),
    "sparse-dense": lambda p: Sparse(),
    "sparse-magnitude-0.5": lambda p: Sparse.pruned_weights(0.5, "magnitude"),
    "sparse-2:4": lambda p: Sparse.pruned_weights(0.5, "nm", (2, 4)),
    "sparseloop-2:4": lambda p: PrunedWeights(0.5, "nm", (2, 4)),
    "fused-rows": lambda p: Fused("M", int(np.prod([p.size(d) for d in p.dims
                                                       if d != "C" and d not in "RS"]))),
}
FIELDS = ("cycles", "energy_pJ", "edp", "utilization", "valid", "reasons")


def _batch(p, n: int = 96, seed: int = 7, model: CostModel | None = None) -> MappingBatch:
    """Uniform draws from gemmini's space for ``p`` (a fused model's: rows complete in
    the accumulator): a mix of valid and invalid rows, plus two rows made structurally
    invalid (factors that do not multiply out)."""
    cons = default_constraints("gemmini")
    if isinstance(model, Fused):
        cons = cons.merged(row_complete_constraints(ARCH, model.row_dim))
    space = Mapspace(p, ARCH, cons)
    m, _ = space.sample(n, seed)
    t = m.temporal.copy()
    t[-2:, 0, 0] += 1
    return MappingBatch(t, m.spatial, m.order, m.spatial_x, m.keep)


def _same(a: np.ndarray, b: np.ndarray) -> bool:
    return bool(np.array_equal(np.asarray(a), np.asarray(b), equal_nan=True))


@pytest.fixture(params=sorted(MODELS))
def model_name(request):
    return request.param


@pytest.fixture(params=sorted(PROBLEMS))
def problem(request):
    return PROBLEMS[request.param]


def test_protocol(model_name, problem):
    model = MODELS[model_name](problem)
    assert isinstance(model, CostModel) and isinstance(model.name, str)
    c = model.cost(problem, ARCH, _batch(problem, 8))
    assert isinstance(c, Costs) and len(c) == 8
    for f in FIELDS:
        assert getattr(c, f).shape == (8,)
    assert c.valid.dtype == bool and c.reasons.dtype == np.int64


def test_batch_equals_scalar(model_name, problem):
    model = MODELS[model_name](problem)
    m = _batch(problem, model=model)
    whole = model.cost(problem, ARCH, m)
    for i in range(len(m)):
        one = model.cost(problem, ARCH, m[i:i + 1])
        for f in FIELDS:
            assert _same(getattr(one, f)[0], getattr(whole, f)[i]), (f, i)


def test_invalid_rows_are_values(model_name, problem):
    model = MODELS[model_name](problem)
    m = _batch(problem, model=model)
    c = model.cost(problem, ARCH, m)
    assert not c.valid[-2:].any()                     # factors do not multiply out
    assert (c.reasons[-2:] & int(Reason.FACTORS)).all()
    assert c.valid.any() and (~c.valid).sum() > 2     # the draws mix valid and invalid
    bad = ~c.valid
    assert (c.reasons[bad] != 0).all() and (c.reasons[~bad] == 0).all()
    assert np.isnan(c.energy_pJ[bad]).all() and np.isnan(c.edp[bad]).all()
    assert (c.cycles[bad] == 0).all()


def test_valid_row_invariants(model_name, problem):
    model = MODELS[model_name](problem)
    m = _batch(problem, model=model)
    c = model.cost(problem, ARCH, m)
    v = c.valid
    assert (c.cycles[v] >= 1).all() and (c.energy_pJ[v] > 0).all()
    assert np.allclose(c.edp[v], c.energy_pJ[v] * 1e-12 * c.cycles[v], rtol=1e-12)
    assert ((c.utilization[v] > 0) & (c.utilization[v] <= 1 + 1e-12)).all()
    # no model beats the compute bound: the problem's MACs over every MAC unit
    assert (c.cycles[v] >= problem.macs / ARCH.compute.instances / 2).all()


def test_deterministic(model_name, problem):
    model = MODELS[model_name](problem)
    m = _batch(problem, model=model)
    a, b = model.cost(problem, ARCH, m), MODELS[model_name](problem).cost(problem, ARCH, m)
    for f in FIELDS:
        assert _same(getattr(a, f), getattr(b, f)), f


def _serialised(m: MappingBatch) -> MappingBatch:
    """Each level's spatial fan-out run as temporal loops of that level instead."""
    return MappingBatch(m.temporal * m.spatial, np.ones_like(m.spatial), m.order,
                        m.spatial_x, m.keep)


def test_monotone_in_obviously_worse_mappings(model_name, problem):
    """Running a level's spatial fan-out as temporal loops of the same level (the same
    tiles, one PE instead of many, no multicast) never lowers cycles or energy."""
    model = MODELS[model_name](problem)
    m = _batch(problem, 400, seed=11, model=model)
    good = model.cost(problem, ARCH, m)
    ser = model.cost(problem, ARCH, _serialised(m))
    both = good.valid & ser.valid & (m.spatial.prod(axis=(1, 2)) > 1)
    assert both.sum() >= 5
    assert (ser.cycles[both] >= good.cycles[both]).all()
    assert (ser.energy_pJ[both] >= good.energy_pJ[both] * (1 - 1e-12)).all()
    assert (ser.utilization[both] < good.utilization[both]).all()


def test_sparse_is_exact_at_density_one(problem):
    """The sparse layer adds nothing when nothing is sparse: no optimizations at any
    density, and skipping/gating at density 1, give the analytical model's numbers."""
    m = _batch(problem)
    dense = ANALYTICAL.cost(problem, ARCH, m)
    acts = SparseOptimizations(actions=(Action("skip", "Scratchpad", "Inputs", ("Weights",)),
                                        Action("gate", "compute", None, ("Weights",))))
    for model in (Sparse(), Sparse(densities=(("Weights", 0.3),)),
                  Sparse(densities=(("Weights", 1.0),), optimizations=acts)):
        c = model.cost(problem, ARCH, m)
        assert _same(c.valid, dense.valid)
        v = dense.valid
        np.testing.assert_allclose(c.cycles[v], dense.cycles[v], rtol=0)
        np.testing.assert_allclose(c.energy_pJ[v], dense.energy_pJ[v], rtol=1e-12)


def test_sparse_2_4_saves_cycles_and_energy(problem):
    m = _batch(problem)
    dense = ANALYTICAL.cost(problem, ARCH, m)
    c = Sparse.pruned_weights(0.5, "nm", (2, 4)).cost(problem, ARCH, m)
    v = dense.valid & c.valid
    assert v.sum() >= 5
    assert (c.cycles[v] <= dense.cycles[v]).all() and (c.energy_pJ[v] < dense.energy_pJ[v]).all()


def test_fused_adds_the_epilogue_and_flags_split_rows():
    """Fused = the analytical model on the double-buffered accumulator (F2) plus one
    accumulator read and write per output element; a mapping that splits M above the
    accumulator is invalid with the constraint flag."""
    p = PROBLEMS["matmul"]
    m = _batch(p, 200)
    f = Fused("M", 64 * 96)
    c = f.cost(p, ARCH, m)
    a2 = ARCH.with_level("Accumulator", multiple_buffering=2.0)
    dense = ANALYTICAL.cost(p, a2, m)
    acc = ARCH.levels[ARCH.level_index("Accumulator")]
    per_word = (acc.energy.read + acc.energy.write) / acc.block_size
    v = c.valid
    assert v.any()
    np.testing.assert_allclose(c.energy_pJ[v], dense.energy_pJ[v] + 64 * 96 * per_word)
    np.testing.assert_array_equal(c.cycles[v], dense.cycles[v])
    m_idx = p.dim_index("M")
    split = (m.temporal[:, :ARCH.level_index("Accumulator"), m_idx] > 1).any(axis=1)
    assert not (v & split).any()
    flagged = dense.valid & split
    assert flagged.any() and (c.reasons[flagged] & int(Reason.CONSTRAINT)).all()
