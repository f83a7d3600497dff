"""cost_models/agreement.py: rank and error statistics against hand-computed values and
scipy's implementations."""

from __future__ import annotations

import numpy as np
import pytest

from cost_models.agreement import agreement, kendall, mape, top_recall


def test_kendall_matches_scipy_tau_b_with_ties() -> None:
    stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(0)
    p = rng.integers(0, 6, 40).astype(float)       # many ties in both
    t = p + rng.integers(0, 4, 40)
    want = stats.kendalltau(p, t, variant="b").statistic
    assert kendall(p, t, np.zeros(40)) == pytest.approx(want, abs=1e-12)


def test_kendall_weights_groups_by_size() -> None:
    # group a (3 rows): perfectly concordant (+1); group b (4 rows): reversed (-1)
    p = np.array([1, 2, 3, 1, 2, 3, 4], float)
    t = np.array([10, 20, 30, 4, 3, 2, 1], float)
    g = np.array(list("aaabbbb"))
    assert kendall(p, t, g) == pytest.approx((3 * 1 + 4 * -1) / 7)


def test_top_recall_hand_cases() -> None:
    g = np.array(list("aaaabbbb"))
    truth = np.array([5, 1, 3, 4, 2, 9, 8, 7], float)   # best: row 1 (a), row 4 (b)
    pred = np.array([1, 2, 3, 4, 5, 1, 2, 3], float)     # a: best ranked 2nd, b: 4th
    assert top_recall(pred, truth, g, 1) == 0.0
    assert top_recall(pred, truth, g, 2) == 0.5
    assert top_recall(pred, truth, g, 4) == 1.0
    # ties in pred with the best row: the chance a random tie order keeps it in the top k
    tied = np.array([1, 1, 1, 1, 3.0])                   # the best (row 1) tied with 3 more
    truth5 = np.array([2, 1, 3, 4, 5.0])
    assert top_recall(tied, truth5, np.zeros(5), 1) == pytest.approx(1 / 4)
    assert top_recall(tied, truth5, np.zeros(5), 2) == pytest.approx(2 / 4)
    assert top_recall(tied, truth5, np.zeros(5), 5) == 1.0
    assert top_recall(np.array([0, 1, 1, 1.0]), np.array([2, 1, 3, 4.0]),
                      np.zeros(4), 1) == 0.0            # one strictly better: never top-1


def test_mape_and_agreement_perfect_model() -> None:
    assert mape(np.array([110.0, 90.0]), np.array([100.0, 100.0])) == pytest.approx(0.1)
    t = np.array([3.0, 1.0, 2.0, 5.0, 4.0, 6.0])
    a = agreement(2 * t, t, np.zeros(6))
    assert (a["spearman"], a["kendall"], a["pairwise"], a["top1"], a["top5"]) == \
        (1.0, 1.0, 1.0, 1.0, 1.0)
    assert a["mape"] == pytest.approx(1.0) and a["ratio_median"] == pytest.approx(0.5)
    r = agreement(-t, t, np.zeros(6), errors=False)
    assert r["pairwise"] == 0.0 and r["kendall"] == -1.0 and "mape" not in r
