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
from functools import cached_property

import numpy as np
import pandas as pd

from cost_models.explore import SampleAndPrice
from mapspace.arch import Arch
from mapspace.constraints import Constraints
from mapspace.errors import Interrupted, MapspaceError
from mapspace.mapping import MappingBatch
from mapspace.problem import Problem
from mapspace.space import Decisions, Mapspace
from mapspace.validity import Reason, Validity, check

CHUNK = 4096                 # the sampler's chunk (one random stream each)
ROUND_CHUNKS = 16            # candidates per round: 16 chunks
#: candidates drawn before a space with no valid one is refused (a utilization constraint
#: no mapping meets used to keep explore drawing up to max_candidates, for hours)
EMPTY_AFTER = 32 * ROUND_CHUNKS * CHUNK


@dataclass(frozen=True)
class Exploration:
    """The valid samples (``decisions``), their costs and the summary; ``frame`` is the
    Parquet-ready table (built on first use)."""

    space: Mapspace
    decisions: Decisions
    costs: dict[str, np.ndarray]          # cycles, energy_pJ, edp, utilization
    summary: dict

    @cached_property
    def frame(self) -> pd.DataFrame:
        return _frame(self.space, self.decisions, self.costs)

    @property
    def mappings(self) -> MappingBatch:
        """The sampled mappings (decoded on demand)."""
        return self.space.decode(self.decisions)

    def best_index(self) -> int:
        """The best sample by EDP, or by cycles when the energy is unknown (no table)."""
        return int(np.argmin(self.costs[self.summary.get("ranked_by", "edp")]))

    def best_mapping(self) -> MappingBatch:
        return self.space.decode(self.decisions.take(np.array([self.best_index()])))


def explore(problem: Problem, arch: Arch, constraints: Constraints, samples: int, seed: int,
            progress: Callable[[int, int], None] | None = None,
            max_candidates: int = 2_000_000_000,
            empty_after: int = EMPTY_AFTER, legacy: bool = False) -> Exploration:
    """``samples`` uniformly drawn valid mappings with their costs (see module doc).

    Candidates are drawn, validated and priced in one compiled pass
    (:class:`cost_models.explore.SampleAndPrice`) with the same random streams as
    :meth:`Mapspace.draw`, so ``explore`` and ``draw`` + ``evaluate`` agree exactly.
    A space with no valid mapping among the first ``empty_after`` candidates is refused
    (naming the levels and constraints that empty it) instead of drawn for hours.
    Ctrl-C (``KeyboardInterrupt``) after some valid samples raises
    :class:`mapspace.errors.Interrupted` holding them (a smaller exploration).
    ``legacy`` runs the previous compiled kernel and gathering of the valid rows (same
    result, slower; for benchmarks).
    """
    if samples < 1:
        raise MapspaceError(f"--samples must be a positive integer, found {samples}",
                            where="explore")
    t_load = time.perf_counter()
    space = Mapspace(problem, arch, constraints)
    _ = space.tables                                 # raise early on empty factorizations
    run = SampleAndPrice(space, legacy=legacy)
    space.decode(run(1, seed)[0])                    # kernels compiled or loaded: not timed
    t0 = time.perf_counter()
    rows = _Rows(space, samples, legacy)
    have = drawn = valid_seen = 0
    first = 0
    last: Decisions | None = None
    stopped = False
    try:
        while have < samples and drawn < max_candidates and (have or drawn < empty_after):
            n = ROUND_CHUNKS * CHUNK
            dec, ok, cycles, energy, util = run(n, seed, first)
            first += ROUND_CHUNKS
            drawn += n
            last = dec
            if space.screens and ok.any():  # minimum utilization, a target's extra rules
                idx = np.nonzero(ok)[0]
                ok[idx] &= space.screen(space.decode(dec.take(idx)))[0]
            valid_seen += int(ok.sum())
            idx = np.nonzero(ok)[0][: samples - have]
            if len(idx):
                rows.add(idx, dec, cycles, energy, util)
                have += len(idx)
            if progress:
                progress(have, drawn)
    except KeyboardInterrupt:  # Ctrl-C: keep the samples drawn so far (raised below)
        if have == 0:
            raise
        stopped = True
    if have == 0:
        m = space.decode(last)
        raise MapspaceError(f"no valid mapping among {drawn:,} candidates: "
                            + diagnose(space, m, check(problem, arch, m)), where="explore")
    dec, cycles, energy, util = rows.result()
    costs = {"cycles": cycles, "energy_pJ": energy, "edp": energy * 1e-12 * cycles,
             "utilization": util}
    if not arch.energy_known:       # without an energy table: rank by cycles, energy null
        costs["energy_pJ"] = costs["edp"] = np.full(len(cycles), np.nan)
    summary = summarise(problem, arch, seed, costs["cycles"], costs["energy_pJ"],
                        candidates=drawn, valid_seen=valid_seen,
                        seconds=time.perf_counter() - t0)
    summary["kernel_load_s"] = t0 - t_load    # one-time: not in seconds / evals_per_s
    result = Exploration(space, dec, costs, summary)
    if stopped:
        raise Interrupted(result, have, samples, "samples")
    return result


class _Rows:
    """The valid samples kept so far, gathered once into arrays sized for ``samples``;
    ``legacy``: the previous way, a list of per-round parts and a final concatenation,
    which copied every row twice (kept for ``explore(..., legacy=True)``)."""

    FIRST = 1 << 20              # rows allocated at first (then doubled, at most samples)

    def __init__(self, space: Mapspace, samples: int, legacy: bool = False):
        L, D, T = space.arch.num_levels, space.problem.num_dims, space.problem.num_tensors
        self.samples = samples
        self.have = 0
        self.parts: list[tuple[np.ndarray, ...]] | None = [] if legacy else None
        self.arrays = self._empty(0 if legacy else min(samples, self.FIRST), L, D, T)

    @staticmethod
    def _empty(n: int, L: int, D: int, T: int) -> tuple[np.ndarray, ...]:
        return (np.empty((n, D), np.int64), np.empty((n, L, D), np.int64),
                np.empty((n, L, D), bool), np.empty((n, L, T), bool),
                np.empty(n, np.int64), np.empty(n), np.empty(n))

    def add(self, idx: np.ndarray, dec: Decisions, *costs: np.ndarray) -> None:
        src = (dec.factor, dec.order, dec.spatial_x, dec.keep, *costs)
        if self.parts is not None:
            self.parts.append(tuple(a[idx] for a in src))
            self.have += len(idx)
            return
        lo, hi = self.have, self.have + len(idx)
        cap = len(self.arrays[0])
        if hi > cap:
            cap = min(self.samples, max(hi, 2 * cap))
            _, L, D = self.arrays[1].shape
            grown = self._empty(cap, L, D, self.arrays[3].shape[2])
            for new, old in zip(grown, self.arrays, strict=True):
                new[:lo] = old[:lo]
            self.arrays = grown
        for a, b in zip(src, self.arrays, strict=True):
            a.take(idx, axis=0, out=b[lo:hi], mode="clip")   # "clip": no buffered copy
        self.have = hi

    def result(self) -> tuple[Decisions, np.ndarray, np.ndarray, np.ndarray]:
        if self.parts is not None:
            self.arrays = tuple(np.concatenate(c) for c in zip(*self.parts, strict=True))
        factor, order, spatial_x, keep, cycles, energy, util = (a[:self.have]
                                                                  for a in self.arrays)
        return Decisions(factor, order, spatial_x, keep), cycles, energy, util


def summarise(problem: Problem, arch: Arch, seed: int, cycles: np.ndarray,
              energy: np.ndarray, *, candidates: int, valid_seen: int,
              seconds: float) -> dict:
    """The summary of a run's samples (their ``cycles`` and ``energy_pJ``, NaN energies
    when the arch has no energy table: ranked by cycles then), with an exact median."""
    have = len(cycles)
    known = arch.energy_known
    edp = energy * 1e-12 * cycles
    rank = edp if known else cycles.astype(np.float64)
    best = float(rank.min())
    med = float(np.median(rank))
    return {
        "problem": problem.name, "arch": arch.name, "seed": seed,
        "valid": int(have), "candidates": int(candidates),
        "acceptance": valid_seen / candidates,
        "seconds": seconds, "evals_per_s": have / seconds if seconds > 0 else None,
        "edp_min": best if known else None,
        "edp_median": med if known else None,
        "edp_max": float(edp.max()) if known else None,
        "ranked_by": "edp" if known else "cycles",
        "spread_orders_of_magnitude": float(np.log10(rank.max() / best)),
        "median_over_best": med / best,
        "within_2x_of_best": float((rank <= 2 * best).mean()),
        "energy_min_pJ": float(energy.min()) if known else None,
        "cycles_min": int(cycles.min()),
        "cycles_median": float(np.median(cycles)),
        "cycles_max": int(cycles.max()),
    }


def diagnose(space: Mapspace, m: MappingBatch, v: Validity) -> str:
    """Why a batch of candidates is entirely invalid, naming levels and constraints."""
    parts = []
    L = space.arch.num_levels
    for l in range(L):
        cap = v.capacity[l]
        if cap >= 0 and (v.usage[:, l] > cap).all():
            lv = space.arch.levels[l].name
            kept = sorted({space.problem.tensor_names[t] for t in range(space.problem.num_tensors)
                           if m.keep[:, l, t].any()})
            srcs = [dv.source or f"{dv.target} {dv.kind}" for dv in space.resolved.directives
                    if dv.target == lv]
            need = int(v.usage[:, l].min())
            parts.append(f"every candidate overflows {lv} (the smallest needs {need} words "
                         f"for {', '.join(kept)}, capacity {cap})"
                         + (f"; constraints on {lv}: {'; '.join(srcs)}" if srcs else ""))
    if (v.reasons & int(Reason.FANOUT)).all():
        parts.append("every candidate exceeds a spatial fan-out")
    if (v.reasons & int(Reason.UNKEPT)).all():
        parts.append("some tensor is kept at no level (check the keep/bypass constraints)")
    if not parts:
        parts.append("the constraints (minimum utilization) or capacities leave nothing that "
                     "fits")
    return "; ".join(parts)


def _frame(space: Mapspace, dec: Decisions, costs: dict[str, np.ndarray]) -> pd.DataFrame:
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
    cols.update(costs)
    return pd.DataFrame(cols)


def frame_decisions(space: Mapspace, frame: pd.DataFrame) -> Decisions:
    """The decisions of rows written by :func:`_frame` (its inverse)."""
    p, a = space.problem, space.arch
    D, L, T = p.num_dims, a.num_levels, p.num_tensors
    B = len(frame)
    factor = np.stack([frame[f"factor_row.{n}"].to_numpy(np.int64) for n in p.dims], axis=1)
    order = np.empty((B, L, D), np.int64)
    spatial_x = np.empty((B, L, D), bool)
    keep = np.empty((B, L, T), bool)
    for l, lv in enumerate(a.levels):
        code = frame[f"order.{lv.name}"].to_numpy(np.int64)
        order[:, l] = (code[:, None] // D ** np.arange(D)[None, :]) % D
        x = frame[f"x_mask.{lv.name}"].to_numpy(np.int64)
        spatial_x[:, l] = (x[:, None] >> np.arange(D)[None, :]) & 1
        k = frame[f"keep_mask.{lv.name}"].to_numpy(np.int64)
        keep[:, l] = (k[:, None] >> np.arange(T)[None, :]) & 1
    return Decisions(factor, order, spatial_x, keep)
