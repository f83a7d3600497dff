"""The ``gemmini-rows`` rule (targets/gemmini/rules.py): the vectorised :func:`admits` equals
the per-mapping :func:`admits_reference` (``targets.gemmini.plan.check`` on each row) exactly,
on large samples of several shapes -- drawn from the target's search space, from the plain
Gemmini space (depthwise with ``C`` across the array rows), from the unconstrained space
(wrong kept tensors, spatial factors off the array, Registers factors) and from mutations
of admitted mappings (factors moved between levels, orders shuffled) -- analytically valid
and invalid rows alike; plus the rows it hands to the reference (factors below 1, orders
that are not permutations) and the arches and batches it refuses whole."""

from __future__ import annotations

import numpy as np
import pytest

from mapspace.mapping import MappingBatch
from mapspace.problem import matmul
from mapspace.space import Mapspace
from mapspace.validity import check as analytical
from mapspace.workloads import workload
from targets import default_constraints
from targets.gemmini.rules import RULE, admits, admits_reference, rules
from targets.registry import get_target

SHAPES = ["bert-base/ffn1", "bert-base/ffn2", "bert-base/attn-scores", "resnet50/conv1",
          "resnet50/conv3_x", "resnet50/conv4_x.downsample", "mobilenetv2/dw-28x28x192-s2",
          "matmul-10x20x30"]
N = 20_000


def _problem(name: str):
    return matmul(10, 20, 30) if name == "matmul-10x20x30" else workload(name)


def _arch():
    return get_target("gemmini").arch()


def _same(problem, m: MappingBatch) -> np.ndarray:
    got = admits(problem, _arch(), m)
    want = admits_reference(problem, _arch(), m)
    assert got.dtype == np.bool_ and got.shape == (len(m),)
    bad = np.nonzero(got != want)[0]
    assert not len(bad), f"{len(bad)} rows differ, first {bad[:10].tolist()}"
    return want


def _mutate(m: MappingBatch, seed: int) -> MappingBatch:
    """Each row with one prime factor of one dim moved to another level (same product),
    some into the spatial factors, one row in ten with a factor doubled (product broken),
    and half the rows with their level orders shuffled."""
    rng = np.random.default_rng(seed)
    tem, spa = m.temporal.copy(), m.spatial.copy()
    B, L, D = tem.shape
    for b in range(B):
        d, l1, l2 = int(rng.integers(D)), int(rng.integers(L)), int(rng.integers(L))
        for p in (2, 3, 5, 7):
            if tem[b, l1, d] % p == 0:
                tem[b, l1, d] //= p
                if rng.random() < 0.2:
                    spa[b, l2, d] *= p
                else:
                    tem[b, l2, d] *= p
                break
        if rng.random() < 0.1:
            tem[b, int(rng.integers(L)), int(rng.integers(D))] *= 2
    order = np.argsort(rng.random((B, L, D)), axis=2).astype(np.int64)
    keep_order = rng.random(B) < 0.5
    order[keep_order] = m.order[keep_order]
    return MappingBatch(tem, spa, order, m.spatial_x.copy(), m.keep.copy())


@pytest.mark.parametrize("name", SHAPES)
def test_admits_equals_reference(name):
    p = _problem(name)
    arch = _arch()
    target_space = get_target("gemmini").space(p)
    plain = Mapspace(p, arch, default_constraints("gemmini"))
    batches = [target_space.sample(N, 0)[0], plain.sample(N, 1)[0],
               Mapspace(p, arch).sample(N // 4, 2)[0]]
    ok0 = _same(p, batches[0])
    batches.append(_mutate(batches[0][np.nonzero(ok0)[0][:N // 4]], 3))
    seen = np.zeros((2, 2), int)                  # [analytically valid, admitted]
    for k, m in enumerate(batches):
        ok = ok0 if k == 0 else _same(p, m)
        v = analytical(p, arch, m).valid
        np.add.at(seen, (v.astype(int), ok.astype(int)), 1)
    # both kinds of rows, and the rule deciding some analytically valid ones each way
    assert seen[1, 1] > 0 and seen[1, 0] > 0 and seen[0].sum() > 0, seen


def test_rows_for_the_reference_and_refused_batches():
    """Factors below 1 and orders with a repeated dim go to the reference row by row, in
    a batch with ordinary rows; factors whose int64 product wraps to the size are refused
    as the reference's exact product does; a non-Gemmini arch refuses every row."""
    p = workload("resnet50/conv3_x")
    m = get_target("gemmini").space(p).sample(400, 5)[0]
    tem, spa, order = m.temporal.copy(), m.spatial.copy(), m.order.copy()
    tem[0:40, 1, 0] = 0
    spa[40:80, 3, 2] = 0
    tem[80:120, 2, 4] = -tem[80:120, 2, 4]
    order[120:160, 1, 0] = order[120:160, 1, 1]
    # a P whose factors multiply to its size only modulo 2**64 (int64 would wrap to it)
    P, size = p.dims.index("P"), p.size("P")
    k = next(k for k in range(3, 10**6, 2)
             if 0 < size * pow(k, -1, 2**64) % 2**64 < 2**63)
    ok0 = admits_reference(p, _arch(), m)
    wrap = np.nonzero(ok0[160:])[0][:10] + 160
    tem[wrap, :, P] = 1
    tem[wrap, 0, P], tem[wrap, 1, P] = k, size * pow(k, -1, 2**64) % 2**64
    assert (np.prod(tem[wrap, :, P], axis=1) == size).all()          # wraps to the size
    odd = MappingBatch(tem, spa, order, m.spatial_x, m.keep)
    ok = _same(p, odd)
    assert not ok[wrap].any() and ok[160:].any()
    assert not admits(p, get_target("cpu").arch(), m).any()
    assert not admits_reference(p, get_target("cpu").arch(), m).any()
    assert admits(p, _arch(), m[np.zeros(0, np.int64)]).shape == (0,)


def test_rule_is_the_vectorised_admits():
    p = workload("bert-base/ffn1")
    (rule,) = rules(p, _arch())
    assert rule.name == RULE
    m = get_target("gemmini").space(p).sample(2000, 7)[0]
    assert np.array_equal(rule.admits(p, None, m), admits_reference(p, _arch(), m))
