"""Mapspace characterisation: sample valid mappings uniformly, price them all, summarise.

``explore(problem, arch, constraints, samples, seed)`` draws candidates from the mapspace
in rounds of fixed-size chunks, keeps the valid ones in draw order (so the result depends
only on the seed, never on the number of threads), prices them with the analytical model,
and returns every sample with its costs plus a summary.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from cost_models import evaluate
from mapspace.arch import Arch
from mapspace.constraints import Constraints
from mapspace.errors import MapspaceError
from mapspace.mapping import MappingBatch
from mapspace.problem import Problem
from mapspace.space import Decisions, Mapspace
from mapspace.validity import check

ROUND_CHUNKS = 32            # candidates per round = 32 chunks of 4096


@dataclass(frozen=True)
class Exploration:
    """The valid samples (``decisions``, ``mappings``), their costs and the summary."""

    space: Mapspace
    decisions: Decisions
    mappings: MappingBatch
    frame: pd.DataFrame
    summary: dict

    def best_index(self) -> int:
        return int(np.argmin(self.frame["edp"].to_numpy()))


def valid_mask(space: Mapspace, m: MappingBatch) -> np.ndarray:
    """Validity, plus the constraints the sampler cannot build in (minimum utilization)."""
    ok = check(space.problem, space.arch, m).valid
    if any(dv.min_utilization is not None for dv in space.constraints.directives):
        from mapspace.constraint_check import satisfies

        ok &= satisfies(space.constraints, space.problem, space.arch, m)
    return ok


def explore(problem: Problem, arch: Arch, constraints: Constraints, samples: int, seed: int,
            progress: Callable[[int, int], None] | None = None,
            max_candidates: int = 2_000_000_000) -> Exploration:
    """``samples`` uniformly drawn valid mappings with their costs (see module doc)."""
    if samples < 1:
        raise MapspaceError(f"--samples must be a positive integer, found {samples}",
                            where="explore")
    t0 = time.perf_counter()
    space = Mapspace(problem, arch, constraints)
    _ = space.tables                                 # raise early on empty factorizations
    got: list[Decisions] = []
    have = drawn = 0
    chunk = 4096
    first = 0
    while have < samples:
        if drawn >= max_candidates:
            break
        n = ROUND_CHUNKS * chunk
        dec = space.draw(n, seed, first_chunk=first)
        first += ROUND_CHUNKS
        drawn += n
        ok = valid_mask(space, space.decode(dec))
        idx = np.nonzero(ok)[0][: samples - have]
        if len(idx):
            got.append(dec.take(idx))
            have += len(idx)
        if progress:
            progress(have, drawn)
    if have == 0:
        raise MapspaceError(
            f"no valid mapping among {drawn:,} candidates: the constraints or the buffer "
            "capacities leave nothing that fits", where="explore")
    dec = Decisions.concat(got)
    maps = space.decode(dec)
    ev = evaluate(problem, arch, maps)
    seconds = time.perf_counter() - t0
    frame = _frame(space, dec, ev)
    edp = frame["edp"].to_numpy()
    best = float(edp.min())
    summary = {
        "problem": problem.name, "arch": arch.name, "seed": seed,
        "valid": int(have), "candidates": int(drawn), "acceptance": have / drawn,
        "seconds": seconds, "evals_per_s": have / seconds,
        "edp_min": best, "edp_median": float(np.median(edp)), "edp_max": float(edp.max()),
        "spread_orders_of_magnitude": float(np.log10(edp.max() / best)),
        "median_over_best": float(np.median(edp) / best),
        "within_2x_of_best": float((edp <= 2 * best).mean()),
        "energy_min_pJ": float(frame["energy_pJ"].min()),
        "cycles_min": int(frame["cycles"].min()),
    }
    return Exploration(space, dec, maps, frame, summary)


def _frame(space: Mapspace, dec: Decisions, ev) -> pd.DataFrame:
    """Encoded decisions and costs, one row per sample (Parquet-friendly columns)."""
    p, a = space.problem, space.arch
    cols: dict[str, np.ndarray] = {}
    for d, name in enumerate(p.dims):
        cols[f"factor_row.{name}"] = dec.factor[:, d]
    D = p.num_dims
    weights = (D ** np.arange(D))[None, :]
    for l, lv in enumerate(a.levels):
        cols[f"order.{lv.name}"] = (dec.order[:, l] * weights).sum(axis=1)   # base-D digits
        cols[f"x_mask.{lv.name}"] = (dec.spatial_x[:, l] * (1 << np.arange(D))).sum(axis=1)
        cols[f"keep_mask.{lv.name}"] = (dec.keep[:, l] * (1 << np.arange(p.num_tensors))
                                        ).sum(axis=1)
    cols["cycles"] = ev.cost.cycles
    cols["energy_pJ"] = ev.cost.energy
    cols["edp"] = ev.cost.edp
    cols["utilization"] = ev.cost.utilization
    return pd.DataFrame(cols)
