"""The per-mapping part of Timeloop's sparse model (Sparseloop): density models, formats,
gating/skipping and compute analysis of one mapping; :mod:`cost_models.sparseloop` runs it
over a batch and prices it, and its docstring says which Timeloop sources each rule
follows (``cost_models/README.md``, "Sparseloop rules")."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from mapspace.mapping import MappingBatch
from mapspace.sparse_yaml import (
    Density,
    Rank,
)

#: the fine-grained storage operations reported per level and tensor
DATA_OPS = ("random_read", "gated_read", "skipped_read", "random_fill", "gated_fill",
            "skipped_fill", "random_update", "gated_update", "skipped_update")
FORMAT_OPS = ("random_metadata_read", "gated_metadata_read", "skipped_metadata_read",
              "random_metadata_fill", "gated_metadata_fill", "skipped_metadata_fill",
              "random_metadata_update", "gated_metadata_update", "skipped_metadata_update")
COUNT_OPS = ("decompression_count", "compression_count")
#: Timeloop's BufferLevel::VectorWidthCoefficientTable (buffer.hpp)
VECTOR_WIDTH = {2: (251, 125, 84, 63, 51, 42, 36, 32, 28, 1),
                 4: (375, 188, 125, 94, 75, 63, 54, 47, 42, 1),
                 8: (438, 219, 146, 110, 88, 73, 63, 55, 49, 1),
                 16: (469, 235, 157, 118, 94, 79, 67, 59, 52, 1),
                 32: (485, 243, 162, 122, 97, 81, 70, 61, 52, 1)}


# ----------------------------------------------------------- density models (SL1)
class DensityModel:
    """Timeloop's density models over tile sizes: ``fixed_structured`` (every tile of ``n``
    elements holds ``floor(n d)`` or ``ceil(n d)`` nonzeros, the fraction deciding which) and
    ``hypergeometric`` (the tensor's ``ceil(d N)`` nonzeros spread uniformly: a tile's count
    is hypergeometric).  ``constraint=(shape, occupancy)`` conditions on a known enclosing
    tile (Timeloop's ``ExtraTileConstraintInfo``)."""

    def __init__(self, spec: Density, tensor_size: int):
        self.kind = spec.distribution
        self.d = spec.density
        self.N = int(tensor_size)
        self.total = math.ceil(self.d * self.N)
        self._memo: dict[tuple, float] = {}

    def prob(self, size: int, occ: int, constraint: tuple[int, int] | None = None) -> float:
        key = (size, occ, constraint)
        hit = self._memo.get(key)
        if hit is not None:
            return hit
        if self.kind == "fixed_structured":
            dens = constraint[1] / constraint[0] if constraint else self.d
            exact = size * dens
            lo, hi = math.floor(exact), math.ceil(exact)
            frac = exact - lo
            p = (1 - frac) if lo == occ else (frac if hi == occ else 0.0)
        else:
            N, r = (constraint if constraint else (self.N, self.total))
            p = _hypergeom(occ, r, size, N)
        self._memo[key] = p
        return p

    def max_occupancy(self, size: int) -> int:
        """Occupancy at confidence 1."""
        if self.kind == "fixed_structured":
            exact = size * self.d
            lo = math.floor(exact)
            return lo if exact - lo == 0 else math.ceil(exact)
        return self.total if size >= self.total else size

    def min_occupancy(self, size: int) -> int:
        """``floor(min density x size)`` (Timeloop's GetMinDataTileOccupancy)."""
        if size == 0:
            return 0
        if self.kind == "fixed_structured":
            return math.floor(math.floor(size * self.d) / size * size)
        if size <= self.N - self.total:
            return 0
        return ((size - self.N + self.total) // size) * size  # integer division, as Timeloop

    def occupancies(self, size: int, lo: int, hi: int) -> list[tuple[int, float]]:
        """``(k, P(k))`` for the occupancies lo..hi of nonzero probability
        (:meth:`occupancy_arrays` as a list)."""
        k, p = self.occupancy_arrays(size, lo, hi)
        return list(zip(k.tolist(), p.tolist(), strict=True))

    def occupancy_arrays(self, size: int, lo: int, hi: int) -> tuple[np.ndarray, np.ndarray]:
        """The occupancies lo..hi of nonzero probability and their probabilities, as
        ``int64`` and ``float64`` arrays.  Hypergeometric tails below 1e-13 of the mode are
        left out (Timeloop keeps every probability that is not exactly 0; the difference
        is below 1e-12 relative and saves walking tens of thousands of occupancies of a
        large tile)."""
        if self.kind == "fixed_structured":
            live = [(k, q) for k in range(lo, hi + 1) if (q := self.prob(size, k)) != 0]
            return (np.array([k for k, _ in live], np.int64),
                    np.array([q for _, q in live], np.float64))
        r, N = self.total, self.N
        # the distribution is unimodal: evaluate a window around the mode, widened until
        # both its cut ends are below the threshold (then every occupancy outside is too);
        # the probabilities are computed element by element, as over the whole range
        mode = (size + 1) * (r + 1) // (N + 2)
        sd = math.sqrt(max(size * r * (N - r) * (N - size) / max(N * N * (N - 1), 1), 0.0))
        half = int(10 * sd) + 16
        while True:
            a, b = max(lo, mode - half), min(hi, mode + half)
            k, p = self._hypergeom_pmf(max(a, lo), max(b, a), size)
            keep = p > p.max() * 1e-13
            if (a == lo or not keep[0]) and (b == hi or not keep[-1]):
                break
            half *= 4
        return k[keep].astype(np.int64), p[keep].astype(np.float64)

    def _hypergeom_pmf(self, lo: int, hi: int, size: int) -> tuple[np.ndarray, np.ndarray]:
        from scipy.special import gammaln

        k = np.arange(lo, hi + 1)
        r, N = self.total, self.N
        ok = (k <= r) & (k <= size) & ((size + r <= N) | (k >= size + r - N))
        kk = np.where(ok, k, 0)
        logp = (gammaln(r + 1) - gammaln(kk + 1) - gammaln(r - kk + 1)
                + gammaln(N - r + 1) - gammaln(size - kk + 1) - gammaln(N - r - size + kk + 1)
                - gammaln(N + 1) + gammaln(size + 1) + gammaln(N - size + 1))
        return k, np.where(ok, np.exp(logp), 0.0)

    def expected(self, size: int) -> float:
        if self.kind == "fixed_structured":
            return size * self.d
        return sum(self.prob(size, k) * k for k in range(min(size, self.total) + 1))


def _hypergeom(k: int, r: int, n: int, N: int) -> float:
    if k > r or k > n or (n + r > N and k < n + r - N) or k < 0:
        return 0.0
    return math.exp(_lchoose(r, k) + _lchoose(N - r, n - k) - _lchoose(N, n))


def _lchoose(a: int, b: int) -> float:
    return math.lgamma(a + 1) - math.lgamma(b + 1) - math.lgamma(a - b + 1)


# ----------------------------------------------------------------- per mapping
@dataclass
class _Loop:
    dim: int
    end: int
    kind: str          # "T", "X" or "Y"


@dataclass
class _Tile:
    """Timeloop's DataMovementInfo of one tensor at one storage level."""

    shape: int = 0
    reads: int = 0
    fills: int = 0
    updates: int = 0
    child: int | None = None
    parent: int | None = None
    ranks: tuple[Rank, ...] = ()        # innermost first
    inner_to_outer: bool = False
    has_metadata: bool = False
    compressed: bool = False
    md_subnest: list | None = None
    md_subtile: list | None = None
    fiber: list | None = None
    expected_density: float = 1.0
    expected_occupancy: float = 0.0
    expected_md: list | None = None     # per rank [md units, pl units, md bits, pl bits]
    avg_rep_scale: float = 1.0
    fmt_reads: list | None = None
    fmt_fills: list | None = None
    fmt_updates: list | None = None


class AnalysisFailed(Exception):
    pass


class MappingAnalysis:
    """The sparse analysis of one mapping (``PerformSparseProcessing``)."""

    def __init__(self, ctx, m: MappingBatch, i: int, dm, keep: np.ndarray, tensors=None):
        """``tensors``: the tensors whose tiles are filled in (default all; the others stay
        empty)."""
        self.c = ctx
        p, a = ctx.problem, ctx.arch
        S, T, D = a.num_levels, p.num_tensors, p.num_dims
        self.S, self.T = S, T
        # the complete loop nest, innermost first: per level its spatial loops (if it fans
        # out), then its temporal loops in permutation order (Timeloop mapping parser)
        self.subnests: list[list[_Loop]] = []
        self.highs: list[list[list[int]]] = []   # cumulative extents after each loop
        ext = [1] * D
        sx, spf, tmp, odr = (m.spatial_x[i].tolist(), m.spatial[i].tolist(),
                             m.temporal[i].tolist(), m.order[i].tolist())
        fans = _fanouts(a)
        for s in range(S):
            lv = S - 1 - s
            loops: list[_Loop] = []
            if fans[lv]:
                loops += [_Loop(d, spf[lv][d], "X") for d in range(D) if sx[lv][d]]
                loops += [_Loop(d, spf[lv][d], "Y") for d in range(D) if not sx[lv][d]]
            loops += [_Loop(d, tmp[lv][d], "T") for d in odr[lv]]
            hs = []
            for lp in loops:
                ext = ext.copy()
                ext[lp.dim] *= lp.end
                hs.append(ext)
            self.subnests.append(loops)
            self.highs.append(hs)
        self.tiles = [[_Tile() for _ in range(S)] for _ in range(T)]
        kp, tile, rd = keep.tolist(), dm.tile[i].tolist(), dm.reads[i].tolist()
        fl, up = dm.fills[i].tolist(), dm.updates[i].tolist()
        for t in range(T) if tensors is None else tensors:
            kept = [s for s in range(S) if kp[S - 1 - s][t]]
            for j, s in enumerate(kept):
                lv = S - 1 - s
                tl = self.tiles[t][s]
                tl.shape = int(tile[lv][t])
                tl.reads, tl.fills = int(rd[lv][t]), int(fl[lv][t])
                tl.updates = int(up[lv][t])
                tl.child = kept[j - 1] if j > 0 else None
                tl.parent = kept[j + 1] if j + 1 < len(kept) else None
                fmt = ctx.formats.get((lv, t))
                if fmt is not None:
                    tl.ranks = tuple(fmt.ranks[::-1])
                    tl.inner_to_outer = fmt.inner_to_outer
                    tl.has_metadata = True
                    tl.compressed = any(r.compressed for r in tl.ranks)
        self.macs = int(dm.macs[i]) * int(dm.compute_instances[i])
        self.compute_instances = int(dm.compute_instances[i])

    def size(self, t: int, ext) -> int:
        """Elements of tensor ``t`` in a box of ``ext`` (Timeloop's axis-aligned
        hyper-rectangle, as :meth:`Problem.tile_size`), in Python integers (small boxes, many
        calls)."""
        n = 1
        for axis in self.c.axes[t]:
            if len(axis) == 1:
                d, c = axis[0]
                n *= 1 + c * (int(ext[d]) - 1)
            else:
                n *= 1 + sum(c * (int(ext[d]) - 1) for d, c in axis)
        return n

    # -------------------------------------------------- formats (SL3, SL4)
    def define_formats(self, tensors=None) -> None:
        """``DefineCompressionFormatModels``: per tensor (``tensors``, default all) and
        keeping level, the loops each rank of its format covers (fiber shapes), inner
        keepers first."""
        p = self.c.problem
        for t in range(self.T) if tensors is None else tensors:
            dims_t = set(np.nonzero(p.relevance[t])[0].tolist())
            s = next((s for s in range(self.S) if self.tiles[t][s].shape), None)
            while s is not None:
                tl = self.tiles[t][s]
                child = tl.child
                inner_most = 0 if child is None else child + 1
                nranks = len(tl.ranks) if tl.has_metadata else 1
                ch = self.tiles[t][child] if child is not None else None
                ch_ranks = (len(ch.ranks) if ch.has_metadata else 1) if ch else 0
                pre = False
                if tl.compressed and ch is not None and ch.shape > 1:
                    pre = True
                    bad = ch_ranks > nranks or any(
                        ch.compressed and tl.ranks[r].format != ch.ranks[r].format
                        for r in range(min(ch_ranks, nranks)))
                    if bad:
                        raise AnalysisFailed(
                            f"pretiling for {p.tensor_names[t]} required but level "
                                    f"compression format does not align: "
                                    f"{self.c.arch.level_names[self.S - 1 - s]} "
                                    f"{self.c.arch.level_names[self.S - 1 - child]}")
                sub: list[_Loop] = []
                where: list[tuple[int, int]] = []
                for l2 in range(s, inner_most - 1, -1):
                    for k in range(len(self.subnests[l2]) - 1, -1, -1):
                        lp = self.subnests[l2][k]
                        if lp.dim in dims_t:
                            sub.insert(0, _Loop(lp.dim, lp.end, lp.kind))
                            where.insert(0, (l2, k))
                sub_sz = _LazySizes(self, t, where)
                if not pre:
                    below = [1] * p.num_dims
                    for l3 in range(inner_most):
                        for lp in self.subnests[l3]:
                            below[lp.dim] *= lp.end
                    for lp in sub:
                        lp.end *= below[lp.dim]
                        below[lp.dim] = 1
                tl.md_subnest, tl.md_subtile = [], []
                inner_rank = ch_ranks if pre else 0
                if apply_ranks(inner_rank, sub, sub_sz, tl):
                    raise AnalysisFailed(
                        f"more compression ranks needed than supported in hardware: "
                                f"{p.tensor_names[t]} at "
                                f"{self.c.arch.level_names[self.S - 1 - s]}")
                if pre:
                    for k in range(len(ch.md_subnest) - 1, -1, -1):
                        tl.md_subnest.insert(0, ch.md_subnest[k])
                        tl.md_subtile.insert(0, ch.md_subtile[k + 1])
                    tl.md_subtile.insert(0, ch.md_subtile[0])
                else:
                    tl.md_subtile.insert(0, 1)
                if len(tl.md_subnest) != nranks:
                    raise AnalysisFailed(
                        f"{p.tensor_names[t]}: {len(tl.md_subnest)} ranks derived, "
                                f"{nranks} in the format")
                tl.fiber = []
                for r in range(nranks):
                    e = [1] * p.num_dims
                    for lp in tl.md_subnest[r]:
                        e[lp.dim] *= lp.end
                    tl.fiber.append(self.size(t, e))
                s = tl.parent

    def metadata_given(self, t: int, tl: _Tile, occ: int) -> list:
        """:func:`tile_metadata` of tile ``tl`` of tensor ``t``."""
        return tile_metadata(self.c, self.level_of(t, tl), t, tl, occ)

    def level_of(self, t: int, tl: _Tile) -> int:
        return next(self.S - 1 - s for s in range(self.S) if self.tiles[t][s] is tl)

    def expected_occupancy(self) -> None:
        """``CalculateExpectedOccupancy`` and ``CalculateExpectedMetaDataAccesses``."""
        for t in range(self.T):
            for s in range(self.S):
                tl = self.tiles[t][s]
                if not tl.shape:
                    continue
                total, md, scale = self.tile_expectation(t, s)
                tl.avg_rep_scale *= scale
                tl.expected_density = total / tl.shape
                tl.expected_occupancy = total
                tl.expected_md = md or []
                if tl.has_metadata:
                    rr, fr = tl.reads / tl.shape, tl.fills / tl.shape
                    ur = tl.updates / tl.shape
                    tl.fmt_fills = [[math.ceil(x[0] * fr), math.ceil(x[1] * fr)] for x in md]
                    tl.fmt_reads = [[math.ceil(x[0] * rr), math.ceil(x[1] * rr)] for x in md]
                    tl.fmt_updates = [[math.ceil(x[0] * ur), math.ceil(x[1] * ur)]
                                      for x in md]

    def tile_expectation(self, t: int, s: int) -> tuple[float, list | None, float]:
        """:func:`expected_tile` of the tile of tensor ``t`` at storage level ``s``."""
        tl = self.tiles[t][s]
        par = self.tiles[t][tl.parent] if tl.parent is not None else None
        return expected_tile(self.c, self.S - 1 - s, t, tl,
                             par is not None and par.has_metadata)

    # ---------------------------------------------- gating and skipping (SL5-SL7)
    def ineffectual(self, s: int, target: int, conds: tuple[int, ...]
                    ) -> tuple[int, float, float]:
        """``ComputeIneffectualReadImpact``: (level holding the target, probability its
        read is ineffectual, expected target tile occupancy)."""
        p = self.c.problem
        dims_t = {d for d in range(p.num_dims) if p.relevance[target, d]}
        tgt = s
        if not self.tiles[target][s].shape:
            tgt = next((l for l in range(s + 1, self.S) if self.tiles[target][l].shape), None)
            if tgt is None:
                raise AnalysisFailed(
                    f"skipping/gating for {p.tensor_names[target]} does not have a "
                            f"source storage for datastreams "
                            f"{self.c.arch.level_names[self.S - 1 - s]}")
        child = self.tiles[target][tgt].child
        child = -1 if child is None else child
        found = scalar = False
        loop = None
        where = (0, 0)
        for l in range(child + 1, tgt + 1):
            nest = self.subnests[l]
            for k in range(len(nest)):
                lp = nest[k]
                trivial = lp.end <= 1
                if child != -1:
                    found = not trivial and lp.dim in dims_t
                else:
                    nxt_sp = k + 1 < len(nest) and nest[k + 1].kind != "T"
                    if not nxt_sp:
                        found = True
                        scalar = lp.kind == "T"
                    elif lp.dim in dims_t and not trivial:
                        found = True
                if found:
                    loop, where = lp, (l, k)
                    break
            if found:
                break
        if not found:
            loop, where = self.subnests[tgt][-1], (tgt, len(self.subnests[tgt]) - 1)
        base_ext = [1] * p.num_dims if scalar else list(self.highs[where[0]][where[1]])
        spatial = loop.kind != "T"
        relevant = [loop]
        cond_ext = base_ext.copy()
        upper = not spatial
        for l in range(where[0], tgt + 1):
            start = where[1] + 1 if l == where[0] else 0
            for k in range(start, len(self.subnests[l])):
                u = self.subnests[l][k]
                if u.end <= 1:
                    continue
                u_sp = u.kind != "T"
                above = (not upper) and not u_sp and (child != -1 and u.dim not in dims_t)
                if u_sp or above:
                    cond_ext[u.dim] *= u.end
                    relevant.append(u)
                if spatial and not u_sp and (child == -1 or u.dim in dims_t):
                    upper = True
        effectual = 1.0
        block = self.c.arch.levels[self.S - 1 - tgt].block_size
        for c in conds:
            dims_c = {d for d in range(p.num_dims) if p.relevance[c, d]}
            co = dims_t & dims_c
            t_ext, c_ext = base_ext.copy(), cond_ext.copy()
            bad = is_co = False
            factors: dict[int, float] = {}
            agg = 1.0
            if not scalar:
                for r in relevant:
                    if spatial and is_co and r.dim in dims_c:
                        bad = True
                        break
                    if r.dim in co:
                        factors[r.dim] = factors.get(r.dim, 1.0) * r.end
                        agg *= r.end
                        is_co = True
            if bad:
                continue
            gran = self.size(target, base_ext)
            scaling = math.ceil(block / (gran / agg))
            for dim in sorted(factors):
                eff = factors[dim] / scaling
                t_ext[dim] = math.ceil(t_ext[dim] / eff)
                c_ext[dim] = math.ceil(c_ext[dim] / eff)
                scaling = scaling / factors[dim]
            if scaling > 1:
                c_ext[loop.dim] *= scaling
                t_ext[loop.dim] *= scaling
            empty = self.c.density[c].prob(self.size(c, c_ext), 0)
            effectual *= 1 - empty
        tl = self.tiles[target][tgt]
        occ = tl.expected_occupancy
        lvl = self.S - 1 - tgt
        ratio = self.c.md_bits[lvl] // self.c.arch.levels[lvl].datawidth
        src = self.tiles[target][tgt if child == -1 else child]
        occ += sum(x[0] + x[1] for x in (src.expected_md or [])) * ratio
        return tgt, 1 - effectual, occ

    def storage_optimizations(self) -> None:
        """``DefineStorageOptimizationImpact`` (gating, then skipping; per group the option
        saving most)."""
        self.mask = {"gate": set(), "skip": set()}
        self.prob: dict[tuple[int, int], float] = {}
        for group in self.c.groups:
            kind = group[0][0]
            impacts = [self.ineffectual(s, tgt, conds) for _, s, tgt, conds in group]
            best, option = 0.0, 0
            for o, (lvl, q, occ) in enumerate(impacts):
                lv = self.S - 1 - lvl
                saving = (self.c.sparse_arch.levels[lv].energy("random_read")
                          / self.c.arch.levels[lv].block_size) * occ * q
                best = max(best, saving)
                option = o if saving >= best else option
            lvl, q, _ = impacts[option]
            tgt = group[option][2]
            key = (lvl, tgt)
            if key in self.mask["gate"] or key in self.mask["skip"]:
                if self.prob[key] < q:
                    self.mask["gate"].discard(key)
                    self.mask["skip"].discard(key)
                    self.prob[key] = q
                    self.mask[kind].add(key)
            else:
                self.mask[kind].add(key)
                self.prob[key] = q

    def combine(self) -> None:
        """``CombineStorageOptimizationImpact``: formats, then the propagation of explicit
        gating/skipping to inner levels and to compute, then (de)compression counts."""
        rw = [t.read_write for t in self.c.problem.tensors]
        self.fine = [[dict.fromkeys(DATA_OPS + COUNT_OPS, 0) for _ in range(self.S)]
                     for _ in range(self.T)]
        self.ffmt = [[{op: [[0, 0] for _ in (tl.expected_md or [])] for op in FORMAT_OPS}
                      for tl in row] for row in self.tiles]
        for t in range(self.T):
            for s in range(self.S):
                tl, f = self.tiles[t][s], self.fine[t][s]
                f["random_read"], f["random_fill"] = tl.reads, tl.fills
                f["random_update"] = tl.updates
                if tl.has_metadata:           # ProcessDataReprImpactOnStorageAccesses
                    sp = 1 - tl.expected_density
                    f["random_read"] = tl.reads - math.floor(tl.reads * sp)
                    f["random_fill"] = tl.fills - math.floor(tl.fills * sp)
                    if rw[t]:
                        f["random_update"] = tl.updates - math.floor(tl.updates * sp)
        mr = [[self.fine[t][s]["random_read"] for s in range(self.S)] for t in range(self.T)]
        mf = [[self.fine[t][s]["random_fill"] for s in range(self.S)] for t in range(self.T)]
        mu = [[self.fine[t][s]["random_update"] for s in range(self.S)] for t in range(self.T)]
        fr = [[_copy(tl.fmt_reads) for tl in row] for row in self.tiles]
        ff = [[_copy(tl.fmt_fills) for tl in row] for row in self.tiles]
        fu = [[_copy(tl.fmt_updates) for tl in row] for row in self.tiles]
        done = [[False] * self.S for _ in range(self.T)]
        computes = float(self.macs)
        self.gs_saf = {}
        self.empty_prob = {}

        def has(s: int, t: int) -> bool:
            return (s, t) in self.mask["gate"] or (s, t) in self.mask["skip"]

        def finalize(t: int, s: int, reads_fmt: list) -> None:
            f = self.fine[t][s]
            f["random_fill"], f["random_read"], f["random_update"] = mf[t][s], mr[t][s], mu[t][s]
            self.ffmt[t][s]["random_metadata_fill"] = _copy(ff[t][s])
            self.ffmt[t][s]["random_metadata_read"] = _copy(reads_fmt)
            self.ffmt[t][s]["random_metadata_update"] = _copy(fu[t][s])

        for t in range(self.T):
            for s in range(self.S - 1, -1, -1):
                if not has(s, t):
                    continue
                q = self.prob[(s, t)]
                imp = s - 1
                while imp >= 0:
                    mf[t][imp] -= math.floor(mf[t][imp] * q)
                    mr[t][imp] -= math.floor(mr[t][imp] * q)
                    mu[t][imp] -= math.floor(mu[t][imp] * q)
                    if self.tiles[t][imp].has_metadata:
                        n_own = len(fr[t][s])
                        lo = min(len(ff[t][imp]), n_own - 1 if n_own else 1 << 62)
                        _scale_rank0(ff[t][imp], q, lo)
                        lo = min(len(fr[t][imp]), n_own - 1 if n_own else 1 << 62)
                        _scale_rank0(fr[t][imp], q, lo)
                        _scale_rank0(fu[t][imp], q, len(fu[t][imp]))
                    if has(imp, t):
                        kind = "gated" if (imp, t) in self.mask["gate"] else "skipped"
                        local = self.prob[(imp, t)]
                        eff = 1 - ((1 - local) / (1 - q))
                        finalize(t, imp, fu[t][imp])     # Timeloop passes the updates here
                        self._apply_local(t, imp, eff, kind)
                        done[t][imp] = True
                        break
                    imp -= 1
                if not done[t][s]:
                    done[t][s] = True
                    finalize(t, s, fr[t][s])
                    self._apply_local(t, s, q, "gated" if (s, t) in self.mask["gate"]
                                      else "skipped")
                if imp < 0 and not rw[t]:
                    computes -= math.floor(computes * q)
                    self.gs_saf[t] = True
                    self.empty_prob[t] = round(q * 1e6) / 1e6
        for t in range(self.T):
            for s in range(self.S):
                if not has(s, t):
                    finalize(t, s, fr[t][s])
        for s in range(self.S - 1, -1, -1):      # CalculateDecompressionCompressionCost
            for t in range(self.T):
                tl = self.tiles[t][s]
                if tl.compressed or tl.parent is None or not self.tiles[t][tl.parent].compressed:
                    continue
                f = self.fine[t][s]
                if rw[t]:
                    f["compression_count"] += self.fine[t][tl.parent]["random_update"]
                f["decompression_count"] += f["random_fill"]
        self.max_computes = computes

    def _apply_local(self, t: int, s: int, q: float, kind: str) -> None:
        """``ApplyLocalStorageSAFImpact``."""
        f = self.fine[t][s]
        rw = self.c.problem.tensors[t].read_write
        reads = f["random_read"]
        delta = math.ceil(reads * q) if rw else math.floor(reads * q)
        f[f"{kind}_read"] += delta
        f["random_read"] = reads - delta
        upd = f["random_update"]
        du = math.floor(upd * q)
        f[f"{kind}_update"] += du
        f["random_update"] = upd - du
        tl = self.tiles[t][s]
        ch = self.tiles[t][tl.child] if tl.child is not None else tl
        n = len(ch.ranks) if ch.has_metadata else 0
        fm = self.ffmt[t][s]
        for r in range(min(n, len(fm["random_metadata_read"]))):
            for k in range(2):
                d = math.floor(fm["random_metadata_read"][r][k] * q)
                fm["random_metadata_read"][r][k] -= d
                fm[f"{kind}_metadata_read"][r][k] += d
                d = math.floor(fm["random_metadata_update"][r][k] * q)
                fm["random_metadata_update"][r][k] -= d
                fm[f"{kind}_metadata_update"][r][k] += d

    # ---------------------------------------------------------- compute (SL8)
    def computes(self) -> tuple[int, int, int]:
        """``CalculateFineGrainedComputeAccesses2Operand``: (random, gated, skipped)."""
        p = self.c.problem
        ops = [t for t in range(self.T) if not p.tensors[t].read_write]
        total = self.max_computes
        if len(ops) != 2:
            return int(total), 0, 0
        md, dens = {}, {}
        for t in ops:
            s = next((s for s in range(self.S) if self.tiles[t][s].shape), None)
            md[t] = self.tiles[t][s].has_metadata if s is not None else False
            dens[t] = round(1e6 * self.c.density[t].expected(1)) / 1e6
        states = {}
        for t in ops:
            d = round(dens[t] * 1e6) / 1e6
            states[t] = [d, 0.0, 1 - d] if md[t] else [d, 1 - d, 0.0]   # ENZ, EZ, NE
        a, b = ops
        for x, y in ((a, b), (b, a)):
            if self.gs_saf.get(y) and (self.gs_saf.get(x) is None or True):
                pass
        both = self.gs_saf.get(a) and self.gs_saf.get(b)

        def cond(x: int, y: int) -> None:
            ratio = 1 - self.empty_prob[y]
            enz = dens[x] / ratio
            states[x] = [enz, 0.0 if md[x] else 1 - enz, 1 - enz if md[x] else 0.0]
        if both:
            cond(a, b)
            cond(b, a)
        elif self.gs_saf.get(a):
            cond(b, a)
        elif self.gs_saf.get(b):
            cond(a, b)
        for t in ops:
            states[t] = [min(1.0, max(0.0, v)) for v in states[t]]
        gate = "gate_on_zero_operand" in self.c.compute_opts
        skip = "skip_on_not_aligned_operands" in self.c.compute_opts
        sa, sb = states[a], states[b]
        rnd = total * sa[0] * sb[0]
        gated = skipped = nonexist = 0.0
        d = total * (sa[0] * sb[1] + sa[1] * sb[0])
        gated, rnd = (gated + d, rnd) if gate else (gated, rnd + d)
        for d in (total * (sa[0] * sb[2] + sa[2] * sb[0]),
                  total * (sa[1] * sb[2] + sa[2] * sb[1])):
            if skip:
                skipped += d
            elif gate:
                gated += d
            else:
                rnd += d
        d = total * sa[1] * sb[1]
        gated, rnd = (gated + d, rnd) if gate else (gated, rnd + d)
        nonexist += total * sa[2] * sb[2]
        g, k = math.floor(gated), math.floor(skipped)
        return int(total - k - g - math.floor(nonexist)), g, k


_FANOUTS: dict = {}


def tile_metadata(ctx, lv: int, t: int, tl: _Tile, occ: int) -> list:
    """``GetMetaDataTileOccupancyGivenDataTile`` of tile ``tl`` of tensor ``t`` at level
    ``lv`` (outermost 0) holding ``occ`` nonzeros: per rank (innermost first)
    ``[metadata units, payload units, metadata bits, payload bits]``."""
    dens = ctx.density[t]
    cons = (tl.shape, occ)
    R = len(tl.ranks)
    out: list = [None] * R
    max_fibers = 1
    cur = tl.shape
    for r in range(R - 1, -1, -1):
        fs = tl.fiber[r]
        nxt = tl.md_subtile[r]
        top = r == 0 if tl.inner_to_outer else r == R - 1
        if fs == 1 and not top:
            out[r] = [0.0, 0.0, 0, 0]
        else:
            out[r] = format_occupancy(tl.ranks[r], max_fibers, fs, cur, nxt, dens, cons,
                                       ctx.md_bits[lv])
        max_fibers *= fs
        cur = nxt
    for r in range(R):
        if out[r][0] != 0 or out[r][1] != 0:
            out[r][1] = 0.0
            break
    return out


def expected_tile(ctx, lv: int, t: int, tl: _Tile, par_has_md: bool
                  ) -> tuple[float, list | None, float]:
    """Expected occupancy, expected metadata per rank and the factor on utilized
    instances of tile ``tl`` of tensor ``t`` at level ``lv`` (outermost 0): a function of
    its shape, format, fiber shapes and whether its parent has metadata (``par_has_md``)."""
    dens = ctx.density[t]
    hi = dens.max_occupancy(tl.shape)
    lo = dens.min_occupancy(tl.shape)
    live = dens.occupancies(tl.shape, lo, hi)
    scale = 1.0
    # Timeloop conditions on the first *listed* probability; when that is not an empty
    # tile but certain (a hypergeometric tile holding the whole tensor), Timeloop divides
    # by zero: such a tile is never empty, so it is left unconditioned here
    if par_has_md and lo == 0 and live and live[0][1] < 1.0:
        first = live[0][1]
        scale = 1.0 - first
        live = [(k, q / (1 - first)) for k, q in live]
        live[0] = (live[0][0], 0.0)
    total = 0.0
    md: list | None = None
    for k, q in live:
        total += q * k
        if tl.has_metadata:
            occ = tile_metadata(ctx, lv, t, tl, k)
            if md is None:
                md = [[x[0] * q, x[1] * q, x[2], x[3]] for x in occ]
            else:
                for r, x in enumerate(occ):
                    md[r][0] += x[0] * q
                    md[r][1] += x[1] * q
    return total, md, scale


def _fanouts(arch) -> tuple[bool, ...]:
    """Per level: does it fan out (``Arch.fanout`` x * y > 1); kept per arch object."""
    got = _FANOUTS.get(id(arch))
    if got is None or got[0] is not arch:
        got = _FANOUTS[id(arch)] = (arch, tuple(
            x * y > 1 for x, y in (arch.fanout(lv) for lv in range(arch.num_levels))))
        if len(_FANOUTS) > 64:
            _FANOUTS.clear()
            _FANOUTS[id(arch)] = got
    return got[1]


class _LazySizes:
    """The tile sizes of a relevant-loop list, computed only for the loops a rank starts at."""

    def __init__(self, an: MappingAnalysis, t: int, where: list[tuple[int, int]]):
        self.an, self.t, self.where = an, t, where

    def __len__(self) -> int:
        return len(self.where)

    def __getitem__(self, k: int) -> int:
        l2, j = self.where[k]
        return self.an.size(self.t, self.an.highs[l2][j])


def _copy(x: list | None) -> list:
    return [list(r) for r in x] if x else []


def _scale_rank0(acc: list, q: float, lo: int) -> None:
    """``ScalePerTileFormatAccesses(acc, q, lo, 0)``: only rank 0, and only when lo == 0."""
    if lo == 0 and acc:
        acc[0][0] -= math.floor(acc[0][0] * q)
        acc[0][1] -= math.floor(acc[0][1] * q)


def format_occupancy(rank: Rank, max_fibers: int, fiber: int, cur: int, nxt: int,
                      dens: DensityModel, cons: tuple[int, int], default_bits: int) -> list:
    """A format model's ``GetOccupancy`` (``src/workload/format-models/*.cpp``):
    ``[metadata units, payload units, metadata word bits, payload word bits]``."""
    mb = rank.metadata_word_bits if rank.metadata_word_bits is not None else default_bits
    pb = rank.payload_word_bits if rank.payload_word_bits is not None else default_bits
    if rank.format == "UB":
        return [float(max_fibers * fiber), float(max_fibers * fiber), mb, pb]
    fibers = max_fibers * (1 - dens.prob(cur, 0, cons))
    if rank.format == "UOP":
        return [0.0, fibers * (fiber + 1), mb, pb]
    empty = dens.prob(nxt, 0, cons)
    if rank.format == "RLE":
        nnz = fiber * (1 - empty)
        return [nnz * fibers, nnz * fibers, mb, pb]
    nnz = math.ceil(fiber * (1 - empty))
    if rank.format == "B":
        return [fibers * fiber, fibers * nnz, mb, pb]
    return [nnz * fibers, nnz * fibers, mb, pb]                       # CP


def apply_ranks(inner_rank: int, sub: list, sub_sz: list, tl: _Tile) -> bool:
    """``ApplyRanksOuterToInner`` (from the outermost rank and loop, each rank inserted in
    front) or, for an inner-to-outer format, ``ApplyRanksInnerToOuter`` (from the
    innermost, appended): map the non-trivial loops of ``sub`` (innermost first) to the
    ranks above ``inner_rank``, into ``tl.md_subnest``/``md_subtile``.  A rank takes its
    first non-trivial loop and, without a format or within a flattening group, the
    following loops of the group.  A flattened rank whose group does not hold the next loop
    is appended empty (with the first loop's tile size outer to inner, 1 inner to outer, as
    Timeloop's ``corr``).  Returns whether a non-trivial loop is left over."""
    has = tl.has_metadata
    o2i = not tl.inner_to_outer
    step = -1 if o2i else 1
    k = len(sub) - 1 if o2i else 0
    left = (len(tl.ranks) if has else 1) - inner_rank      # ranks still to assign
    r = inner_rank + left if o2i else inner_rank - 1
    scalar0 = sub_sz[0] if sub_sz else 1
    inside = range(len(sub))
    while left > 0 and k in inside:
        while k in inside and sub[k].end <= 1:
            k += step
        if k not in inside:
            break
        r += step
        left -= 1
        lp = sub[k]
        rule: tuple[int, ...] = ()
        if has and tl.ranks[r].flattened:
            rule = next((g for g in tl.ranks[r].flattened if lp.dim in g), ())
            if not rule:
                tl.md_subnest.append([] if o2i else [_Loop(lp.dim, 1, lp.kind)])
                tl.md_subtile.append(scalar0 if o2i else 1)
                continue
        flat = [lp]
        corr = sub_sz[k]
        k += step
        if not has or rule:
            while k in inside and (not has or sub[k].dim in rule or sub[k].end <= 1):
                if sub[k].end > 1:
                    flat.append(sub[k])
                k += step
        at = 0 if o2i else len(tl.md_subnest)
        tl.md_subnest.insert(at, flat)
        tl.md_subtile.insert(at, corr)
    for _ in range(left):
        at = 0 if o2i else len(tl.md_subnest)
        tl.md_subnest.insert(at, [])
        tl.md_subtile.insert(at, scalar0)
    rest = range(k + 1) if o2i else range(max(k, 0), len(sub))
    return any(sub[j].end > 1 for j in rest)


__all__ = ["COUNT_OPS", "DATA_OPS", "FORMAT_OPS", "AnalysisFailed", "DensityModel",
           "MappingAnalysis", "VECTOR_WIDTH", "expected_tile", "format_occupancy",
           "tile_metadata"]
