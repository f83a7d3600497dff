"""Sparse layer (Sparseloop-style) on top of the dense analysis: compressed formats,
skipping and gating, priced from a dense :class:`~cost_models.model.Evaluation`.

Pure functions over arrays, batched like the dense model.  The dense counts are taken as
the *dense-equivalent* traffic; each count is then scaled by expected fractions under
Sparseloop's default ``uniform`` density model (every element non-zero independently with
probability ``density``; structured ``N:M`` tensors are exactly ``N/M`` dense).  Rules
S1-S9 are listed in ``cost_models/README.md`` ("Sparse rules"), each with its test in
``tests/test_sparse.py``.

Vocabulary: a *format* is how a level stores a tensor (``uncompressed``, ``bitmask``,
``csr``, ``coo``); an *action* removes accesses that touch a zero: ``skip`` (not performed,
no energy, no cycle) or ``gate`` (not performed, no energy, but its cycle is still spent),
on the reads of one tensor at one storage level, or on the MACs (``level="compute"``).

Example::

    opts = SparseOptimizations(
        formats=(Format("Buffer", "Weights", "bitmask"),),
        actions=(Action("skip", "Buffer", "Inputs", ("Weights",)),
                 Action("gate", "compute", None, ("Weights",))))
    sc = evaluate_sparse(evaluate(problem, arch, mappings), opts, mappings=mappings)
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from cost_models.model import Evaluation
from cost_models.nest import DataMovement, analyze
from cost_models.pricing import Prices
from mapspace.errors import MapspaceError
from mapspace.mapping import MappingBatch
from mapspace.problem import Problem
from mapspace.validity import Reason

FORMATS = ("uncompressed", "bitmask", "csr", "coo", "nm")
KINDS = ("skip", "gate")
COMPUTE = "compute"


@dataclass(frozen=True)
class Format:
    """Storage format of ``tensor`` at storage level ``level`` (names as in the arch/problem).

    ``coord_bits``: bits of one coordinate (CSR: the position inside a row; COO: each axis
    the tile spans); ``None`` = ``ceil(log2(extent))`` of that axis of the level's tile
    (at least 1).  CSR rows run along the innermost tensor axis the tile spans (extent > 1).
    ``pointer_bits``: bits of one CSR row pointer (``rows + 1`` of them per tile);
    ``None`` = ``ceil(log2(tile + 1))``.  ``nm`` (structured N:M) stores each nonzero's
    position inside its group of M in ``coord_bits`` bits (required; ``ceil(log2 M)``, e.g.
    2 for 2:4 as in NVIDIA's sparse tensor cores): ``density x coord_bits`` bits per dense
    element.
    """

    level: str
    tensor: str
    kind: str = "uncompressed"
    coord_bits: int | None = None
    pointer_bits: int | None = None


@dataclass(frozen=True)
class Action:
    """``skip`` or ``gate`` the accesses of ``target`` at ``level`` whenever any tensor of
    ``condition`` is zero (``Action("skip", "Buffer", "Inputs", ("Weights",))`` is
    Sparseloop's "skip Inputs on Weights").  ``level="compute"`` acts on the MACs
    (``target`` is then ignored)."""

    kind: str
    level: str
    target: str | None
    condition: tuple[str, ...]


@dataclass(frozen=True)
class SparseOptimizations:
    """Formats (unlisted level/tensor pairs are ``uncompressed``) and actions."""

    formats: tuple[Format, ...] = ()
    actions: tuple[Action, ...] = ()


@dataclass(frozen=True)
class SparseCost:
    """Sparse costs of ``B`` mappings (``L`` levels, ``T`` tensors).

    ``valid: bool[B]`` (dense structural validity and the compressed-tile capacity check),
    ``reason: object[B]`` ('' when valid); ``cycles: int64[B]``, ``energy: float64[B]`` pJ,
    ``edp`` (J x cycles), ``macs: float64[B]`` MACs actually performed (all instances),
    ``mac_energy``, ``leak_energy``: ``float64[B]``.  Per instance, ``float64[B, L, T]``
    expected counts: ``reads``, ``fills``, ``updates`` (performed), ``gated_reads``,
    ``gated_fills``, ``gated_updates`` (not performed, cycle spent), ``metadata_reads``,
    ``metadata_fills`` (words of the level's datawidth), ``occupancy`` (data + metadata
    words of the compressed tile); ``usage: float64[B, L]``; ``level_cycles: int64[B, L]``;
    ``energy_breakdown: float64[B, L, T]`` pJ (data and metadata)."""

    valid: np.ndarray
    reason: np.ndarray
    cycles: np.ndarray
    energy: np.ndarray
    edp: np.ndarray
    macs: np.ndarray
    mac_energy: np.ndarray
    leak_energy: np.ndarray
    reads: np.ndarray
    fills: np.ndarray
    updates: np.ndarray
    gated_reads: np.ndarray
    gated_fills: np.ndarray
    gated_updates: np.ndarray
    metadata_reads: np.ndarray
    metadata_fills: np.ndarray
    occupancy: np.ndarray
    usage: np.ndarray
    level_cycles: np.ndarray
    energy_breakdown: np.ndarray
    densities: tuple[float, ...] = field(default=())
    level_names: tuple[str, ...] = field(default=())
    tensor_names: tuple[str, ...] = field(default=())

    def frame(self) -> pd.DataFrame:
        """One row per mapping: ``valid, reason, cycles, energy_pJ, edp, macs`` and per level
        and tensor ``<level>.<tensor>.{reads,fills,updates,metadata}`` (expected, per
        instance; metadata = reads + fills of metadata words)."""
        cols: dict[str, np.ndarray] = {"valid": self.valid, "reason": self.reason,
                                       "cycles": self.cycles, "energy_pJ": self.energy,
                                       "edp": self.edp, "macs": self.macs}
        for l, lv in enumerate(self.level_names):
            for t, name in enumerate(self.tensor_names):
                cols[f"{lv}.{name}.reads"] = self.reads[:, l, t]
                cols[f"{lv}.{name}.fills"] = self.fills[:, l, t]
                cols[f"{lv}.{name}.updates"] = self.updates[:, l, t]
                cols[f"{lv}.{name}.metadata"] = (self.metadata_reads[:, l, t]
                                                 + self.metadata_fills[:, l, t])
        return pd.DataFrame(cols)


# ----------------------------------------------------------------- inputs (S1)
def resolve_densities(problem: Problem,
                      overrides: dict[str, float | tuple[int, int]] | None = None
                      ) -> tuple[float, ...]:
    """Density per tensor: ``Problem.tensors[t].density`` unless overridden by a float in
    (0, 1] or a structured ``(N, M)`` pair (exactly ``N/M``, ``0 < N <= M``)."""
    out = [t.density for t in problem.tensors]
    for name, d in (overrides or {}).items():
        t = problem.tensor_index(name)
        if isinstance(d, tuple):
            if len(d) != 2 or not 0 < d[0] <= d[1]:
                raise MapspaceError(f"structured density must be (N, M) with 0 < N <= M, "
                                    f"found {d!r}", where="evaluate_sparse",
                                    key=f"densities.{name}")
            out[t] = d[0] / d[1]
        else:
            out[t] = d
    for t, d in enumerate(out):
        if not (isinstance(d, int | float) and 0.0 < d <= 1.0):
            raise MapspaceError(f"density must be in (0, 1], found {d!r}",
                                where="evaluate_sparse",
                                key=f"densities.{problem.tensor_names[t]}")
    return tuple(float(d) for d in out)


def _check(problem: Problem, level_names: tuple[str, ...], opts: SparseOptimizations
           ) -> tuple[dict[tuple[int, int], Format], list[tuple[str, int, int | None,
                                                                tuple[int, ...]]]]:
    where = "evaluate_sparse"

    def level(name: str, key: str) -> int:
        if name not in level_names:
            raise MapspaceError(f"unknown level {name!r} (levels are "
                                f"{', '.join(level_names)})", where=where, key=key)
        return level_names.index(name)

    def tensor(name: str, key: str) -> int:
        try:
            return problem.tensor_index(name)
        except MapspaceError as e:
            raise MapspaceError(e.detail, where=where, key=key) from None

    formats: dict[tuple[int, int], Format] = {}
    for f in opts.formats:
        if f.kind not in FORMATS:
            raise MapspaceError(f"format must be one of {', '.join(FORMATS)}, found "
                                f"{f.kind!r}", where=where, key=f"formats.{f.level}.{f.tensor}")
        if f.kind == "nm" and f.coord_bits is None:
            raise MapspaceError("format 'nm' needs coord_bits (ceil(log2 M))", where=where,
                                key=f"formats.{f.level}.{f.tensor}")
        for b in (f.coord_bits, f.pointer_bits):
            if b is not None and b < 1:
                raise MapspaceError(f"metadata bit widths must be positive, found {b}",
                                    where=where, key=f"formats.{f.level}.{f.tensor}")
        key = (level(f.level, "formats"), tensor(f.tensor, "formats"))
        if key in formats:
            raise MapspaceError(f"two formats for {f.tensor} at {f.level}", where=where,
                                key="formats")
        formats[key] = f
    actions = []
    for a in opts.actions:
        if a.kind not in KINDS:
            raise MapspaceError(f"action must be 'skip' or 'gate', found {a.kind!r}",
                                where=where, key=f"actions.{a.level}")
        if not a.condition:
            raise MapspaceError("an action needs at least one condition tensor",
                                where=where, key=f"actions.{a.level}")
        cond = tuple(tensor(c, "actions.condition") for c in a.condition)
        if a.level == COMPUTE:
            actions.append((a.kind, -1, None, cond))
        else:
            if a.target is None:
                raise MapspaceError("a storage action needs a target tensor", where=where,
                                    key=f"actions.{a.level}")
            actions.append((a.kind, level(a.level, "actions"), tensor(a.target, "actions"),
                            cond))
    return formats, actions


# ------------------------------------------------------------- metadata (S3)
def _metadata_bits_per_element(fmt: Format | None, problem: Problem, t: int,
                               spans: np.ndarray | None, tile: np.ndarray,
                               density: float) -> np.ndarray:
    """Expected metadata bits per *dense* element of the tile, ``float64[B]``."""
    B = tile.shape[0]
    if fmt is None or fmt.kind == "uncompressed":
        return np.zeros(B)
    if fmt.kind == "bitmask":
        return np.ones(B)
    if fmt.kind == "nm":
        return np.full(B, density * float(fmt.coord_bits or 0))
    if spans is None:
        raise MapspaceError(f"format {fmt.kind!r} needs the mappings (to know the tile's "
                            "rows)", where="evaluate_sparse",
                            key=f"formats.{fmt.level}.{fmt.tensor}")
    tile_f = np.maximum(tile, 1).astype(float)

    def cbits(span: np.ndarray) -> np.ndarray:
        if fmt.coord_bits is not None:
            return np.full(B, float(fmt.coord_bits))
        return np.maximum(1.0, np.ceil(np.log2(np.maximum(span, 1))))

    live = spans > 1                              # axes the tile actually spans
    if fmt.kind == "coo":
        per_nz = sum(np.where(live[:, a], cbits(spans[:, a]), 0.0)
                     for a in range(spans.shape[1]))
        return density * per_nz
    # csr: rows along the innermost axis the tile spans (a 1-element row if it spans none)
    last = spans.shape[1] - 1 - np.argmax(live[:, ::-1], axis=1)
    row = np.where(live.any(axis=1), spans[np.arange(B), last], 1).astype(float)
    rows = tile_f / row
    pbits = (np.full(B, float(fmt.pointer_bits)) if fmt.pointer_bits is not None
             else np.maximum(1.0, np.ceil(np.log2(tile_f + 1))))
    return density * cbits(row) + (rows + 1) * pbits / tile_f


# ----------------------------------------------------------------- the model
def evaluate_sparse(evaluation: Evaluation, optimizations: SparseOptimizations,
                    densities: dict[str, float | tuple[int, int]] | None = None, *,
                    mappings: MappingBatch | None = None,
                    prices: Prices | None = None,
                    confidence: float | None = None) -> SparseCost:
    """Sparse cycles, energy and counts of the ``B`` mappings of ``evaluation``.

    ``densities`` overrides ``Problem.tensors[t].density`` (float, or ``(N, M)`` for N:M
    structured sparsity).  ``mappings`` (the batch that was evaluated) is needed for CSR/COO
    metadata (tile shapes) and lets mappings whose dense tiles overflow a level but whose
    compressed tiles fit be analysed and priced; without it they stay invalid.

    ``confidence``: ``None`` sizes a compressed tile by its expected nonzeros,
    ``ceil(density x tile)``; a value in (0, 1] sizes it, for a uniformly sparse tensor, by
    that quantile of the hypergeometric distribution of the tile's nonzeros (Sparseloop's
    capacity check; 1.0 = the worst case, ``min(tile, nonzeros of the tensor)``).
    Structured ``N:M`` tensors always use the exact ``ceil(tile x N/M)``.
    """
    problem, arch = evaluation.problem, evaluation.arch
    dens = resolve_densities(problem, densities)
    if confidence is not None and not 0.0 < confidence <= 1.0:
        raise MapspaceError(f"confidence must be in (0, 1], found {confidence!r}",
                            where="evaluate_sparse", key="confidence")
    structured = {problem.tensor_index(n) for n, d in (densities or {}).items()
                  if isinstance(d, tuple)}
    formats, actions = _check(problem, arch.level_names, optimizations)
    p = prices or Prices.of(arch)
    dm: DataMovement = evaluation.movement
    if mappings is not None and len(mappings) != len(evaluation):
        raise MapspaceError(f"mappings has {len(mappings)} rows, the evaluation "
                            f"{len(evaluation)}; pass the batch that was evaluated",
                            where="evaluate_sparse", key="mappings")
    reasons = evaluation.validity.reasons.copy()
    B, L, T = dm.reads.shape
    rw = problem.output_index

    # dense rows only rejected for capacity: compressed tiles may fit (S5)
    cap_only = reasons == int(Reason.CAPACITY)
    if mappings is not None and cap_only.any():
        sub = analyze(problem, arch, mappings[np.nonzero(cap_only)[0]])
        dm = DataMovement(**{k: _merge(getattr(dm, k), getattr(sub, k), cap_only)
                             for k in ("tile", "reads", "fills", "updates", "partition",
                                       "instances", "macs", "compute_instances", "keep")})
        reasons = np.where(cap_only, 0, reasons)
    structural = reasons == 0        # capacity is re-checked below on compressed tiles

    spans = None
    if mappings is not None:
        ext = mappings.extents()[:, :L, :]                          # [B, L, D]
        spans = [1 + (ext - 1) @ problem.projections[t].T for t in range(T)]  # [B, L, A]

    def prod(ts: set[int]) -> float:
        return math.prod(dens[t] for t in sorted(ts))

    keep = dm.keep
    compressed = {k for k, f in formats.items() if f.kind != "uncompressed"}
    mac_skip = {c for kind, l, _, cond in actions if l < 0 and kind == "skip" for c in cond}
    mac_gate = {c for kind, l, _, cond in actions if l < 0 and kind == "gate" for c in cond}
    # a storage action applies at the nearest level at or above its own that keeps the
    # target, per mapping (Sparseloop's target_dspace_level); none -> invalid (S4)
    storage = []
    no_keeper = np.zeros(B, bool)
    why_no_keeper: list[tuple[np.ndarray, str]] = []
    for kind, l, t, cond in actions:
        if l < 0:
            continue
        k = keep[:, :l + 1, t]
        has = k.any(axis=1)
        storage.append((kind, t, set(cond), np.where(has, l - np.argmax(k[:, ::-1], axis=1),
                                                     -1)))
        no_keeper |= ~has
        why_no_keeper.append((~has, f"no level at or above {arch.levels[l].name} keeps "
                                    f"{problem.tensor_names[t]}, so its {kind} has no target"))
    every = np.ones(B, bool)

    def factor(terms: list[tuple[set[int], np.ndarray]]) -> np.ndarray:
        """Per row, the product of the densities of the union of the applicable sets."""
        f = np.ones(B)
        for c in range(T):
            inc = np.zeros(B, bool)
            for cs, mask in terms:
                if c in cs:
                    inc |= mask
            f = np.where(inc, f * dens[c], f)
        return f

    def split(base: np.ndarray, skip: list, gate: list) -> tuple[np.ndarray, np.ndarray]:
        """(performed, gated) expected counts."""
        done, spent = factor(skip + gate), factor(skip)
        return base * done, base * (spent - done)

    f64 = np.float64
    reads, fills, updates = (x.astype(f64) for x in (dm.reads, dm.fills, dm.updates))
    names = ("reads", "fills", "updates", "g_reads", "g_fills", "g_updates", "md_reads",
             "md_fills", "g_md_reads", "g_md_fills", "occ")
    out = {k: np.zeros((B, L, T)) for k in names}
    for t in range(T):
        acts = [(kind, cs, e) for kind, tt, cs, e in storage if tt == t]
        for l in range(L):
            own = [({t}, every)] if (l, t) in compressed else []
            here = [(kind, cs, e == l) for kind, cs, e in acts]
            above = [(kind, cs, (e >= 0) & (e < l)) for kind, cs, e in acts]
            d_skip = [(cs, m) for kind, cs, m in here if kind == "skip"]
            d_gate = [(cs, m) for kind, cs, m in here if kind == "gate"]
            i_skip = [(cs, m) for kind, cs, m in above if kind == "skip"]
            i_gate = [(cs, m) for kind, cs, m in above if kind == "gate"]
            # reads: own compression, actions here and above; fills: compression and
            # actions above (what the parent does not deliver is not filled) (S2, S4)
            out["reads"][:, l, t], out["g_reads"][:, l, t] = split(
                reads[:, l, t], own + d_skip + i_skip, d_gate + i_gate)
            out["fills"][:, l, t], out["g_fills"][:, l, t] = split(
                fills[:, l, t], own + i_skip, i_gate)
            if t == rw:          # output updates change only when the output is targeted (S8)
                out["updates"][:, l, t], out["g_updates"][:, l, t] = split(
                    updates[:, l, t], d_skip + i_skip, d_gate + i_gate)
            else:
                out["updates"][:, l, t] = updates[:, l, t]
            # metadata (S3): per dense element moved, read or filled with the data; it is
            # read to find the nonzeros, so only actions above remove it
            fmt = formats.get((l, t))
            sp = None if spans is None else spans[t][:, l, :]
            mb = _metadata_bits_per_element(fmt, problem, t, sp, dm.tile[:, l, t], dens[t])
            dw = arch.levels[l].datawidth
            out["md_reads"][:, l, t], out["g_md_reads"][:, l, t] = split(
                reads[:, l, t] * mb / dw, i_skip, i_gate)
            out["md_fills"][:, l, t], out["g_md_fills"][:, l, t] = split(
                fills[:, l, t] * mb / dw, i_skip, i_gate)
            # occupancy of the (compressed) tile in words (S5)
            bits = problem.tensors[t].bits
            nz = dm.tile[:, l, t] * (dens[t] if own else 1.0)
            if own and confidence is not None and t not in structured:
                size = problem.tensor_size(t)
                nz = _quantile_occupancy(dm.tile[:, l, t], size, round(dens[t] * size),
                                         confidence)
            data_w = np.ceil(nz * bits / dw) if bits else np.ceil(nz)
            md_w = np.ceil(dm.tile[:, l, t] * mb / dw)
            out["occ"][:, l, t] = np.where(keep[:, l, t], data_w + md_w, 0.0)

    # capacity check on compressed tiles (S5)
    usage = out["occ"].sum(axis=2)
    cap = np.array([-1 if lv.capacity is None else lv.capacity for lv in arch.levels])
    over = (cap >= 0) & (usage > cap)
    valid = structural & ~over.any(axis=1) & ~no_keeper
    reason = np.full(B, "", dtype=object)
    for b in np.nonzero(~valid)[0].tolist():
        if not structural[b]:
            reason[b] = "; ".join(evaluation.validity.explain(b, problem, arch))
        elif no_keeper[b]:
            reason[b] = "; ".join(msg for mask, msg in why_no_keeper if mask[b])
        else:
            reason[b] = "; ".join(
                f"compressed tiles kept in {arch.levels[l].name} need {usage[b, l]:g} "
                f"words, capacity is {cap[l]}" for l, o in enumerate(over[b].tolist()) if o)

    # pricing (S6-S9): the dense rules P1-P7 over expected counts
    macs = dm.macs.astype(f64)
    cc = macs * prod(mac_skip)                       # compute cycles per instance
    mac_done = (dm.macs * dm.compute_instances).astype(f64) * prod(mac_skip | mac_gate)
    with np.errstate(divide="ignore", invalid="ignore"):
        dyn = np.zeros(B)
        cyc = np.ceil(cc)
        level_cycles = np.zeros((B, L), np.int64)
        breakdown = np.zeros((B, L, T))
        for l in range(L):
            uc = np.minimum(dm.instances[:, l], p.clusters[l])
            rd = np.zeros(B)
            wd = np.zeros(B)
            bs = p.block[l]
            for t in range(T):
                r, f, u = out["reads"][:, l, t], out["fills"][:, l, t], out["updates"][:, l, t]
                mr, mf = out["md_reads"][:, l, t], out["md_fills"][:, l, t]
                if bs != 1:
                    r, f, u, mr, mf = (-(-x // bs) for x in (r, f, u, mr, mf))
                e = (r * p.read[l] + f * p.write[l] + u * p.update[l]) * uc
                e = e + (mr * p.read[l] + mf * p.write[l]) * uc
                breakdown[:, l, t] = e
                dyn = dyn + e
                rd = rd + (out["reads"][:, l, t] + out["g_reads"][:, l, t]
                           + out["md_reads"][:, l, t] + out["g_md_reads"][:, l, t]) / cc
                wd = wd + (out["fills"][:, l, t] + out["g_fills"][:, l, t]
                           + out["updates"][:, l, t] + out["g_updates"][:, l, t]
                           + out["md_fills"][:, l, t] + out["g_md_fills"][:, l, t]) / cc
            slow = np.ones(B)
            slow = np.where(p.read_bw[l] < rd, np.minimum(slow, p.read_bw[l] / rd), slow)
            slow = np.where(p.write_bw[l] < wd, np.minimum(slow, p.write_bw[l] / wd), slow)
            slow = np.where(p.shared_bw[l] < rd + wd,
                            np.minimum(slow, p.shared_bw[l] / (rd + wd)), slow)
            lc = np.ceil(cc / slow)
            level_cycles[:, l] = np.where(valid, lc, 0).astype(np.int64)
            cyc = np.maximum(cyc, lc)
        lk = np.zeros(B)
        for l in range(L):
            lk = lk + p.leak[l] * np.maximum(dm.instances[:, l], 1)
        lk = lk * cyc
        mac_e = mac_done * p.mac
        energy = dyn + mac_e + lk
    nan = np.where(valid, 1.0, np.nan)
    cycles = np.where(valid, cyc, 0).astype(np.int64)
    energy = energy * nan
    return SparseCost(
        valid=valid, reason=reason, cycles=cycles, energy=energy,
        edp=energy * 1e-12 * cycles, macs=mac_done * nan, mac_energy=mac_e * nan,
        leak_energy=lk * nan, reads=out["reads"], fills=out["fills"],
        updates=out["updates"], gated_reads=out["g_reads"], gated_fills=out["g_fills"],
        gated_updates=out["g_updates"], metadata_reads=out["md_reads"],
        metadata_fills=out["md_fills"], occupancy=out["occ"], usage=usage,
        level_cycles=level_cycles, energy_breakdown=breakdown * nan[:, None, None],
        densities=dens, level_names=arch.level_names, tensor_names=problem.tensor_names)


def _quantile_occupancy(tiles: np.ndarray, size: int, nonzeros: int, q: float
                        ) -> np.ndarray:
    """Per tile of ``n`` elements drawn from a tensor of ``size`` with ``nonzeros``
    nonzeros, the smallest ``k`` with ``P(nonzeros in tile <= k) >= q`` (hypergeometric)."""
    out = np.zeros(tiles.shape, np.float64)
    for tile in np.unique(tiles):
        n = int(min(max(tile, 0), size))
        hi = min(n, nonzeros)
        lo = max(0, n - (size - nonzeros))
        if q >= 1.0 or hi == lo:
            k = hi
        else:
            ks = np.arange(lo, hi)                # pmf(k + 1) / pmf(k), log space
            step = (np.log(nonzeros - ks) + np.log(n - ks) - np.log(ks + 1)
                    - np.log(size - nonzeros - n + ks + 1))
            logp0 = (_lchoose(nonzeros, lo) + _lchoose(size - nonzeros, n - lo)
                     - _lchoose(size, n))
            pmf = np.exp(logp0 + np.concatenate([[0.0], np.cumsum(step)]))
            cdf = np.cumsum(pmf)
            k = lo + int(np.searchsorted(cdf, q * cdf[-1] - 1e-12))
        out[tiles == tile] = k
    return out


def _lchoose(a: int, b: int) -> float:
    return math.lgamma(a + 1) - math.lgamma(b + 1) - math.lgamma(a - b + 1)


def _merge(a: np.ndarray, b: np.ndarray, rows: np.ndarray) -> np.ndarray:
    out = a.copy()
    out[rows] = b
    return out


__all__ = ["Action", "Format", "SparseCost", "SparseOptimizations", "evaluate_sparse",
           "resolve_densities"]
