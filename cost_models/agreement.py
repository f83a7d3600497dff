"""How well a cost model's predictions agree with measurements, within groups (one group
per problem: only mappings of the same problem are ever compared when choosing one).

Every function takes ``pred`` and ``truth`` (lower is better: cycles or seconds; a score
where higher is better is passed negated) and ``groups`` (one label per row); a rank
statistic is computed per group and averaged weighted by the group's size.

* :func:`~cost_models.learned.spearman` and :func:`~cost_models.learned.pairwise_accuracy`
  (the fraction of pairs with different ``truth`` that ``pred`` orders the same way, a tie
  in ``pred`` counting half);
* :func:`kendall`: Kendall's tau-b;
* :func:`top_recall`: the fraction of groups whose measured best is among the ``k``
  mappings ``pred`` ranks best (ties in ``pred`` broken at random: its expectation);
* :func:`mape`: the mean absolute percentage error ``|pred - truth| / truth`` (over rows,
  of numbers in the same unit);
* :func:`agreement`: all of them in one dict.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from cost_models.learned import pairwise_accuracy, spearman


def _groups(groups: np.ndarray) -> list[np.ndarray]:
    g = np.asarray(groups)
    return [np.flatnonzero(g == x) for x in pd.unique(g)]


def kendall(pred: np.ndarray, truth: np.ndarray, groups: np.ndarray) -> float:
    """Kendall's tau-b within each group (``sum sign(dp) sign(dt) / sqrt(pairs untied in
    pred x pairs untied in truth)``), averaged weighted by group size; groups of fewer
    than 3 rows or constant in either skipped; NaN when none is left."""
    p, t = np.asarray(pred, np.float64), np.asarray(truth, np.float64)
    num = den = 0.0
    for idx in _groups(groups):
        n = len(idx)
        if n < 3:
            continue
        i, j = np.triu_indices(n, 1)
        dp = np.sign(p[idx[i]] - p[idx[j]])
        dt = np.sign(t[idx[i]] - t[idx[j]])
        norm = np.sqrt(float(np.count_nonzero(dp)) * float(np.count_nonzero(dt)))
        if norm == 0:
            continue
        num += float((dp * dt).sum()) / norm * n
        den += n
    return num / den if den else float("nan")


def top_recall(pred: np.ndarray, truth: np.ndarray, groups: np.ndarray, k: int) -> float:
    """Fraction of groups whose measured best (lowest ``truth``) is among the ``k`` rows with
    the lowest ``pred``, ties in ``pred`` broken at random: a group counts
    ``clip((k - better) / tied, 0, 1)``, the chance that the best row makes the top ``k``
    when ``better`` rows rank strictly above it and ``tied`` (itself included) equal
    (several measured-best rows: the one ``pred`` ranks best)."""
    p, t = np.asarray(pred, np.float64), np.asarray(truth, np.float64)
    hits = 0.0
    total = 0
    for idx in _groups(groups):
        if len(idx) == 0:
            continue
        total += 1
        pb = p[idx[t[idx] == t[idx].min()]].min()
        better = int((p[idx] < pb).sum())
        tied = int((p[idx] == pb).sum())          # includes the best row itself
        hits += min(1.0, max(0.0, (k - better) / tied))
    return hits / total if total else float("nan")


def mape(pred: np.ndarray, truth: np.ndarray) -> float:
    """Mean of ``|pred - truth| / truth`` over the rows (NaN without rows)."""
    p, t = np.asarray(pred, np.float64), np.asarray(truth, np.float64)
    return float(np.mean(np.abs(p - t) / t)) if len(t) else float("nan")


def agreement(pred: np.ndarray, truth: np.ndarray, groups: np.ndarray, *,
              errors: bool = True, seed: int = 0) -> dict[str, Any]:
    """``rows``, ``groups``, ``spearman``, ``kendall``, ``pairwise``, ``top1``, ``top5``
    and (``errors``: ``pred`` is in ``truth``'s unit) ``mape`` and ``ratio_median``
    (median of ``truth / pred``, the model's typical scale error)."""
    p, t = np.asarray(pred, np.float64), np.asarray(truth, np.float64)
    out: dict[str, Any] = {
        "rows": int(len(t)), "groups": len(_groups(groups)),
        "spearman": spearman(p, t, np.asarray(groups)),
        "kendall": kendall(p, t, groups),
        "pairwise": pairwise_accuracy(p, t, np.asarray(groups), seed=seed),
        "top1": top_recall(p, t, groups, 1), "top5": top_recall(p, t, groups, 5)}
    if errors:
        out["mape"] = mape(p, t)
        out["ratio_median"] = float(np.median(t / p)) if len(t) else float("nan")
    return out


__all__ = ["agreement", "kendall", "mape", "top_recall"]
