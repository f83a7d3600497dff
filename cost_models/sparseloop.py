"""Timeloop's sparse model (Sparseloop), on top of the dense analysis: formats, density
models, gating and skipping, for a batch of mappings.

Each rule follows NVlabs/timeloop (``src/sparse-analysis/``, ``src/model/buffer.cpp``,
``src/model/arithmetic.cpp``, ``src/workload/density-models/``,
``src/workload/format-models/``) and is listed in ``cost_models/README.md`` ("Sparseloop
rules" SL1-SL13) with the test that pins it.  Storage level index ``s`` below is Timeloop's
(0 = innermost); the arrays of the result use the arch's order (0 = outermost).

The dense counts (:mod:`cost_models.nest`) are Timeloop's algorithmic accesses; the sparse
analysis turns them, per mapping, into *actual* (``random``), *gated* and *skipped*
accesses and metadata (format) accesses, then prices them as ``buffer.cpp`` does.  The
per-mapping part walks the loop nest of each mapping; mappings whose loop nests, tiles and
counts are equal share one analysis, and :mod:`cost_models.sparseloop_fast` runs the rest
over the batch as arrays (specs without storage gating or skipping).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from cost_models.interface import Costs
from cost_models.model import Evaluation, evaluate
from cost_models.pricing import Prices
from cost_models.sparse_model import merge_rows, sparse_costs
from cost_models.sparseloop_analysis import (
    COUNT_OPS,
    DATA_OPS,
    FORMAT_OPS,
    VECTOR_WIDTH,
    AnalysisFailed,
    DensityModel,
    MappingAnalysis,
)
from cost_models.sparseloop_fast import fast_rows
from mapspace.arch import Arch
from mapspace.mapping import MappingBatch
from mapspace.problem import Problem
from mapspace.sparse_yaml import (
    Density,
    SparseArch,
    SparseSpec,
    default_sparse_arch,
    densities_of,
)
from mapspace.validity import Reason


# ------------------------------------------------------------------- the batch
@dataclass(frozen=True)
class _Context:
    problem: Problem
    arch: Arch
    sparse_arch: SparseArch
    formats: dict
    groups: tuple
    density: tuple
    md_bits: tuple
    compute_opts: frozenset
    axes: tuple          # per tensor, per axis: ((dim, coefficient), ...)
    energies: tuple      # per level: {storage op: pJ}


@dataclass(frozen=True)
class SparseloopCost:
    """Sparseloop results of ``B`` mappings (``L`` levels outermost first, ``T`` tensors).

    ``valid: bool[B]``, ``reason: object[B]``; ``cycles: int64[B]``, ``energy: float64[B]``
    pJ, ``edp``; ``computes``, ``gated_computes``, ``skipped_computes``: ``int64[B]`` (all
    instances), ``algorithmic_computes``; ``mac_energy``, ``leak_energy``; ``accesses``:
    ``{op: float64[B, L, T]}`` per instance for every op of :data:`DATA_OPS` (scalar
    accesses), :data:`FORMAT_OPS` (metadata + payload units over all ranks) and
    :data:`COUNT_OPS`; ``utilized_instances: float64[B, L, T]`` (average: a tile that may be
    empty is not sent when its parent has metadata); ``level_cycles: int64[B, L]``;
    ``energy_breakdown: float64[B, L, T]`` pJ."""

    valid: np.ndarray
    reason: np.ndarray
    cycles: np.ndarray
    energy: np.ndarray
    edp: np.ndarray
    computes: np.ndarray
    gated_computes: np.ndarray
    skipped_computes: np.ndarray
    algorithmic_computes: np.ndarray
    mac_energy: np.ndarray
    leak_energy: np.ndarray
    accesses: dict
    utilized_instances: np.ndarray
    level_cycles: np.ndarray
    energy_breakdown: np.ndarray
    keep: np.ndarray
    level_names: tuple[str, ...] = ()
    tensor_names: tuple[str, ...] = ()

    def stats(self, i: int = 0) -> dict:
        """Per-level, per-tensor actual/gated/skipped and metadata accesses of mapping
        ``i`` as plain data (JSON-ready): the ``sparse`` section of ``evaluate --json``."""
        levels = []
        for lv, name in enumerate(self.level_names):
            tensors = {}
            for t, tname in enumerate(self.tensor_names):
                if not self.keep[i, lv, t]:
                    continue
                tensors[tname] = {
                    **{op: int(self.accesses[op][i, lv, t]) for op in DATA_OPS + COUNT_OPS},
                    **{op.replace("_metadata_", "_metadata_"): float(
                        self.accesses[op][i, lv, t]) for op in FORMAT_OPS},
                    "utilized_instances": float(self.utilized_instances[i, lv, t]),
                    "energy_pJ": float(self.energy_breakdown[i, lv, t]),
                }
            levels.append({"name": name, "cycles": int(self.level_cycles[i, lv]),
                           "tensors": tensors})
        return {"valid": bool(self.valid[i]), "reason": str(self.reason[i]),
                "cycles": int(self.cycles[i]), "energy_pJ": float(self.energy[i]),
                "algorithmic_computes": int(self.algorithmic_computes[i]),
                "actual_computes": int(self.computes[i]),
                "gated_computes": int(self.gated_computes[i]),
                "skipped_computes": int(self.skipped_computes[i]),
                "mac_energy_pJ": float(self.mac_energy[i]),
                "leak_energy_pJ": float(self.leak_energy[i]), "levels": levels}


def _context(problem: Problem, arch: Arch, spec: SparseSpec, densities, sparse_arch
             ) -> _Context:
    S = arch.num_levels
    formats = {}
    for f in spec.formats:
        formats[(arch.level_index(f.level), problem.tensor_index(f.tensor))] = f
    groups = tuple(tuple((o.kind, S - 1 - arch.level_index(o.level),
                          problem.tensor_index(o.target),
                          tuple(problem.tensor_index(c) for c in o.condition_on))
                         for o in g) for g in spec.groups)
    dens = densities if densities is not None else densities_of(problem)
    models = tuple(DensityModel(d, problem.tensor_size(t)) for t, d in enumerate(dens))
    sa = sparse_arch or default_sparse_arch(arch)
    axes = tuple(tuple(tuple((d, int(c)) for d, c in enumerate(row) if c)
                       for row in proj) for proj in problem.projections)
    return _Context(problem, arch, sa, formats, groups, models,
                    tuple(lv.metadata_word_bits for lv in sa.levels), spec.compute, axes,
                    tuple(dict(lv.op_energy) for lv in sa.levels))


def _price(an: MappingAnalysis, ctx: _Context, dm, i: int, keep: np.ndarray, p: Prices,
           out: dict) -> None:
    """Buffer and arithmetic statistics of one analysed mapping (``buffer.cpp``
    ComputeVectorAccesses, ComputeBufferEnergy, ComputePerformance; ``arithmetic.cpp``)."""
    arch, sa = ctx.arch, ctx.sparse_arch
    S, T = an.S, an.T
    rnd, gated, skipped = an.computes()
    inst = max(1, an.compute_instances)
    cc = math.ceil((rnd + gated) / inst)
    mac_e = (rnd * sa.compute("random_compute") + gated * sa.compute("gated_compute")
             + skipped * sa.compute("skipped_compute"))
    cyc = cc
    dyn = 0.0
    for lv in range(S):
        s = S - 1 - lv
        attrs = sa.levels[lv]
        energy = ctx.energies[lv]
        block = arch.levels[lv].block_size
        word = arch.levels[lv].datawidth
        width = attrs.metadata_storage_width
        rd_bw = wr_bw = 0.0
        max_inst = int(dm.instances[i, lv])
        for t in range(T):
            tl = an.tiles[t][s]
            f, fm = an.fine[t][s], an.ffmt[t][s]
            bits = dict.fromkeys(FORMAT_OPS, 0)
            md = tl.expected_md
            if md:
                for op in FORMAT_OPS:
                    acc = fm.get(op, [])
                    if acc:
                        bits[op] = sum(md[r][2] * acc[r][0] + md[r][3] * acc[r][1]
                                       for r in range(min(len(acc), len(md))))
                        out[op][i, lv, t] = sum(a[0] + a[1] for a in acc)
            for op in DATA_OPS + COUNT_OPS:
                if f[op]:
                    out[op][i, lv, t] = f[op]
            if not keep[lv, t]:
                continue
            ratio = 1.0
            if tl.compressed and tl.shape and block > 1 and tl.expected_density < 1.0:
                if block not in VECTOR_WIDTH:
                    raise AnalysisFailed(no_vector_width(arch, lv, block))
                d = tl.expected_density
                idx = math.floor(d / 0.1) - 1 if d >= 0.1 else 0
                if VECTOR_WIDTH[block][int(idx)] > tl.shape // block:
                    dens = ctx.density[t]
                    total = sum(math.ceil(k / block) * dens.prob(tl.shape, k)
                                for k in range(1, tl.shape + 1))
                    ratio = total / (tl.shape * d / block)
            e = 0.0
            for op in DATA_OPS:
                n = f[op]
                if n:
                    e += (-(-n // block)) * ratio * energy.get(op, 0.0)
            for op in COUNT_OPS:
                e += f[op] * energy.get(op, 0.0)
            if width:
                for op in FORMAT_OPS:
                    e += math.ceil(bits[op] / width) * energy.get(op, 0.0)
            scale = tl.avg_rep_scale
            e_tot = e * min(max_inst, int(p.clusters[lv])) * scale
            out["energy_breakdown"][i, lv, t] = e_tot
            out["utilized_instances"][i, lv, t] = max_inst * scale
            dyn += e_tot
            r_acc = (f["random_read"] + f["gated_read"]
                     + (bits["random_metadata_read"] + bits["gated_metadata_read"]) // word)
            w_acc = (f["random_fill"] + f["gated_fill"] + f["random_update"] + f["gated_update"]
                     + (bits["random_metadata_fill"] + bits["gated_metadata_fill"]
                        + bits["random_metadata_update"] + bits["gated_metadata_update"])
                     // word)
            if cc > 0:
                rd_bw += math.ceil(r_acc * scale) / cc
                wr_bw += math.ceil(w_acc * scale) / cc
        slow = 1.0
        if p.read_bw[lv] < rd_bw:
            slow = min(slow, p.read_bw[lv] / rd_bw)
        if p.write_bw[lv] < wr_bw:
            slow = min(slow, p.write_bw[lv] / wr_bw)
        if p.shared_bw[lv] < rd_bw + wr_bw:
            slow = min(slow, p.shared_bw[lv] / (rd_bw + wr_bw))
        lc = math.ceil(cc / slow)
        out["level_cycles"][i, lv] = lc
        cyc = max(cyc, lc)
    leak = sum(p.leak[lv] * max(int(dm.instances[i, lv]), 1) for lv in range(S)) * cyc
    out["cycles"][i] = cyc
    out["computes"][i], out["gated_computes"][i] = rnd, gated
    out["skipped_computes"][i] = skipped
    out["mac_energy"][i], out["leak_energy"][i] = mac_e, leak
    out["energy"][i] = dyn + mac_e + leak


def no_vector_width(arch: Arch, lv: int, block: int) -> str:
    """Why a compressed tile at level ``lv`` cannot be priced: Timeloop's
    VectorWidthCoefficientTable (``buffer.cpp``, looked up with ``.at``) has no row for its
    block size."""
    return (f"{arch.level_names[lv]}: a compressed tile in blocks of {block} words, but "
            f"Timeloop's vector-width table has blocks of "
            f"{', '.join(map(str, VECTOR_WIDTH))} only")


def evaluate_sparseloop(problem: Problem, arch: Arch, mappings: MappingBatch,
                        spec: SparseSpec, densities: tuple[Density, ...] | None = None,
                        sparse_arch: SparseArch | None = None,
                        evaluation: Evaluation | None = None,
                        fast: bool = True) -> SparseloopCost:
    """Timeloop's sparse model of ``B`` mappings: ``spec`` (formats and optimizations),
    ``densities`` (default: fixed-structured ``Problem.tensors[t].density``), the metadata
    attributes and sparse action energies ``sparse_arch`` (default: none, sparse actions
    free).  Invalid mappings are values (``valid`` False, ``reason``), as in the dense model.
    ``fast``: price a spec without storage gating/skipping on arrays
    (:mod:`cost_models.sparseloop_fast`, equal results); ``False``: the per-mapping
    reference for every row.
    """
    from cost_models.nest import analyze

    ev = evaluation or evaluate(problem, arch, mappings)
    ctx = _context(problem, arch, spec, densities, sparse_arch)
    p = Prices.of(arch)
    dm = ev.movement
    B, L, T = dm.reads.shape
    reasons = ev.validity.reasons
    cap_only = reasons == int(Reason.CAPACITY)
    if cap_only.any() and not spec.empty:   # compressed tiles may fit where dense ones do not
        rows = np.nonzero(cap_only)[0]
        sub = analyze(problem, arch, mappings[rows])
        merged = {}
        for k in ("tile", "reads", "fills", "updates", "instances", "macs",
                  "compute_instances"):
            a = getattr(dm, k).copy()
            a[rows] = getattr(sub, k)
            merged[k] = a
        dm = _Movement(**merged)
    f64 = np.float64
    out: dict = {op: np.zeros((B, L, T), f64) for op in DATA_OPS + FORMAT_OPS + COUNT_OPS}
    out.update(energy_breakdown=np.zeros((B, L, T)), utilized_instances=np.zeros((B, L, T)),
               level_cycles=np.zeros((B, L), np.int64), cycles=np.zeros(B, np.int64),
               computes=np.zeros(B, np.int64), gated_computes=np.zeros(B, np.int64),
               skipped_computes=np.zeros(B, np.int64), mac_energy=np.zeros(B),
               leak_energy=np.zeros(B), energy=np.zeros(B))
    valid = (reasons == 0) | (cap_only & (not spec.empty))
    reason = np.full(B, "", dtype=object)
    todo = np.nonzero(valid)[0]
    if fast and not ctx.groups and len(todo):
        todo = fast_rows(ctx, mappings, dm, todo, p, out)
    cache: dict[bytes, int] = {}
    for i in todo.tolist():
        key = b"".join(a[i].tobytes() for a in (mappings.temporal, mappings.spatial,
                                                   mappings.order, mappings.spatial_x,
                                                   mappings.keep))
        if key in cache:
            j = cache[key]
            for a in out.values():
                a[i] = a[j]
            valid[i], reason[i] = valid[j], reason[j]
            continue
        cache[key] = i
        keep = mappings.keep[i]
        try:
            an = MappingAnalysis(ctx, mappings, i, dm, keep)
            if not spec.empty:
                if ctx.formats:
                    an.define_formats()
                an.expected_occupancy()
                an.storage_optimizations()
            else:
                an.mask, an.prob = {"gate": set(), "skip": set()}, {}
                for row in an.tiles:
                    for tl in row:
                        tl.expected_md = []
            an.combine()
            over = _capacity(an, ctx, keep)
            if over:
                raise AnalysisFailed(over)
            _price(an, ctx, dm, i, keep, p, out)
        except AnalysisFailed as e:
            valid[i], reason[i] = False, str(e)
    for i in np.nonzero(~valid & (reason == ""))[0].tolist():
        reason[i] = "; ".join(ev.validity.explain(i, problem, arch))
    nan = np.where(valid, 1.0, np.nan)
    energy = out.pop("energy") * nan
    cycles = np.where(valid, out.pop("cycles"), 0)
    acc = {op: out.pop(op) for op in DATA_OPS + FORMAT_OPS + COUNT_OPS}
    return SparseloopCost(
        valid=valid, reason=reason, cycles=cycles, energy=energy,
        edp=energy * 1e-12 * cycles, computes=out["computes"],
        gated_computes=out["gated_computes"], skipped_computes=out["skipped_computes"],
        algorithmic_computes=(dm.macs * dm.compute_instances).astype(np.int64),
        mac_energy=out["mac_energy"] * nan, leak_energy=out["leak_energy"] * nan,
        accesses=acc, utilized_instances=out["utilized_instances"],
        level_cycles=out["level_cycles"], energy_breakdown=out["energy_breakdown"],
        keep=mappings.keep, level_names=arch.level_names, tensor_names=problem.tensor_names)


@dataclass(frozen=True)
class _Movement:
    tile: np.ndarray
    reads: np.ndarray
    fills: np.ndarray
    updates: np.ndarray
    instances: np.ndarray
    macs: np.ndarray
    compute_instances: np.ndarray


def _capacity(an: MappingAnalysis, ctx: _Context, keep: np.ndarray) -> str:
    """Timeloop's capacity check on compressed tiles (``ComputeTileOccupancyAndConfidence``
    at confidence 1): a tile with metadata occupies its maximum nonzeros; metadata bits are
    checked against ``metadata_storage_depth x metadata_storage_width`` when given."""
    msgs = []
    for lv, level in enumerate(ctx.arch.levels):
        s = an.S - 1 - lv
        cap = level.capacity
        words = 0
        md_bits = 0.0
        for t in range(an.T):
            tl = an.tiles[t][s]
            if not keep[lv, t] or not tl.shape:
                continue
            if tl.has_metadata:
                occ = ctx.density[t].max_occupancy(tl.shape)
                words += occ
                md = an.metadata_given(t, tl, occ)
                md_bits += sum(math.ceil(x[0]) * x[2] + math.ceil(x[1]) * x[3] for x in md)
            else:
                words += tl.shape
        if cap is not None and words > cap:
            msgs.append(f"mapped tile size {words} exceeds buffer capacity {cap} at "
                        f"{level.name}")
        attrs = ctx.sparse_arch.levels[lv]
        md_cap = attrs.metadata_storage_depth * attrs.metadata_storage_width
        if md_cap and md_bits > md_cap / level.multiple_buffering:
            msgs.append(f"mapped metadata tile size {md_bits:g} bits exceeds metadata buffer "
                        f"capacity {md_cap} bits at {level.name}")
    return "; ".join(msgs)


@dataclass(frozen=True)
class Sparseloop:
    """Timeloop's sparse model as a batched :class:`~cost_models.interface.CostModel`:
    ``spec`` (a :class:`~mapspace.sparse_yaml.SparseSpec`), ``densities`` per tensor
    (``None``: the problem's, fixed-structured) and ``sparse_arch`` (metadata attributes and
    sparse action energies; ``None``: none).  ``detail`` is the :class:`SparseloopCost`."""

    spec: SparseSpec
    densities: tuple[Density, ...] | None = None
    sparse_arch: SparseArch | None = None
    name: str = "sparseloop"

    def cost(self, problem: Problem, arch: Arch, mappings: MappingBatch) -> Costs:
        ev = evaluate(problem, arch, mappings)
        sc = evaluate_sparseloop(problem, arch, mappings, self.spec, self.densities,
                                 self.sparse_arch, evaluation=ev)
        return costs_of_sparse(sc, ev, arch)


def costs_of_sparse(sc: SparseloopCost, ev: Evaluation, arch: Arch) -> Costs:
    """:class:`Costs` of a :class:`SparseloopCost` (``ev``: the dense evaluation of the same
    rows, for the reason bits of invalid rows; sparse-only failures are ``CAPACITY``)."""
    return sparse_costs(sc, sc.computes, ev.validity.reasons, arch)


# ------------------------------------------- pruned weights (compile --passes sparsify)
WEIGHTS = "Weights"


def pruned_weights_spec(problem: Problem, arch: Arch, keep: np.ndarray, pruning: str,
                        nm: tuple[int, int] | None = None) -> SparseSpec:
    """The Sparseloop description ``compile`` prices weights pruned by ``sparsify`` with,
    for a mapping whose keep flags are ``keep: bool[L, T]`` (the same rules for every
    target; on ``gemmini``, N:M: DRAM ``UOP-UOP-CP``, Scratchpad ``UOP-CP``, Registers
    ``CP``; unstructured: DRAM ``UOP-B``, Scratchpad ``B``, Registers dense):

    * N:M: every level keeping ``Weights`` stores them compressed, ``CP`` with
      ``ceil(log2 M)``-bit coordinates (2 bits for 2:4: a nonzero's position in its group)
      over all weight dimensions (one flattened rank), ranks applied inner to outer; each
      keeper adds one ``UOP`` rank (offsets into the tiles below) per keeper under it, so a
      tile below is pretiled as Timeloop requires.  The MAC skips zero weights
      (``compute_optimization: skipping``, skip_on_not_aligned_operands): half the MACs and
      their cycles for 2:4, as a 2:4 sparse tensor core does; the inputs are still read
      dense (the core selects them by the metadata).
    * unstructured: the same with a bitmask ``B`` (1 bit per element) at every keeper but
      the innermost (the PE's register holds a decompressed weight); the MAC is gated on a
      zero weight (``compute_optimization: gating``): a rigid weight-stationary array
      cannot compact random zeros, every MAC keeps its cycle, and without a gated-MAC
      energy a gated MAC costs a full one (Timeloop's rule): the saving is the compressed
      weight traffic and storage.
    """
    from mapspace.sparse_yaml import Rank, TensorFormat

    if WEIGHTS not in problem.tensor_names:
        return SparseSpec()
    w = problem.tensor_index(WEIGHTS)
    dims = tuple(d for d in range(problem.num_dims) if problem.relevance[w, d])
    keepers = [l for l in range(arch.num_levels) if keep[l, w]]
    if pruning == "nm":
        if nm is None:
            raise ValueError("N:M pruning needs nm=(N, M)")
        inner = Rank("CP", metadata_word_bits=max(1, math.ceil(math.log2(nm[1]))),
                     flattened=(dims,))
        compressed, opt = keepers, "skip_on_not_aligned_operands"
    else:
        inner = Rank("B", metadata_word_bits=1, flattened=(dims,))
        compressed, opt = keepers[:-1], "gate_on_zero_operand"
    uop = Rank("UOP", flattened=(dims,))
    formats = tuple(TensorFormat(arch.level_names[l], WEIGHTS,
                                 (uop,) * (len(compressed) - 1 - j) + (inner,),
                                 inner_to_outer=True)
                    for j, l in enumerate(compressed))
    return SparseSpec(formats=formats, compute=frozenset({opt}))


def target_sparse_arch(arch: Arch, offset_bits: int = 16) -> SparseArch:
    """Sparse attributes of a built-in target (which has no metadata storage of its own):
    metadata lives in the level's data storage, one metadata access moving the level's
    width in bits at the price of a data access (read/write/update); gated and skipped
    accesses are free; a gated MAC costs a full MAC (no gated action in the target's
    table), a skipped MAC nothing (the table's ``compute_skipped`` is 0: the MAC never
    starts).  ``offset_bits``: the word bits of UOP offsets."""
    from mapspace.sparse_yaml import LevelSparseAttrs

    levels = []
    for lv in arch.levels:
        e = lv.energy
        levels.append(LevelSparseAttrs(
            metadata_word_bits=offset_bits, metadata_storage_width=lv.width,
            op_energy=(("random_read", e.read), ("random_fill", e.write),
                       ("random_update", e.update), ("random_metadata_read", e.read),
                       ("random_metadata_fill", e.write),
                       ("random_metadata_update", e.update))))
    c = arch.compute.energy
    return SparseArch(tuple(levels), (("random_compute", c), ("skipped_compute", 0.0),
                                      ("gated_compute", c)))


@dataclass(frozen=True)
class PrunedWeights:
    """The cost model ``compile`` uses for weights pruned to ``density`` by ``pruning``
    (``"nm"`` with ``nm``: fixed-structured ``N/M``; else unstructured: hypergeometric,
    Sparseloop's uniform model): :func:`pruned_weights_spec` on each mapping's own weight
    keepers, :func:`target_sparse_arch`, Timeloop's sparse model.  ``detail``: the
    :class:`SparseloopCost` (rows in input order)."""

    density: float
    pruning: str = "magnitude"
    nm: tuple[int, int] | None = None
    name: str = "sparseloop-pruned"

    def densities(self, problem: Problem) -> tuple[Density, ...]:
        out = list(densities_of(problem))
        if WEIGHTS in problem.tensor_names:
            kind = "fixed_structured" if self.pruning == "nm" else "hypergeometric"
            d = self.nm[0] / self.nm[1] if self.pruning == "nm" and self.nm else self.density
            out[problem.tensor_index(WEIGHTS)] = Density(kind, float(d))
        return tuple(out)

    def describe(self, problem: Problem, arch: Arch, keep: np.ndarray) -> str:
        """E.g. ``"2:4 DRAM:UOP-UOP-CP Scratchpad:UOP-CP Registers:CP skip MACs of zero
        weights"``."""
        spec = pruned_weights_spec(problem, arch, keep, self.pruning, self.nm)
        what = f"{self.nm[0]}:{self.nm[1]}" if self.pruning == "nm" and self.nm \
            else f"density {self.density:g}"
        parts = [what] + [f"{f.level}:{'-'.join(r.format for r in f.ranks)}"
                          for f in spec.formats]
        parts.append("skip MACs of zero weights" if "skip_on_not_aligned_operands"
                     in spec.compute else "gate MACs of zero weights")
        return " ".join(parts)

    def cost(self, problem: Problem, arch: Arch, mappings: MappingBatch) -> Costs:
        ev = evaluate(problem, arch, mappings)
        dens = self.densities(problem)
        sa = target_sparse_arch(arch)
        groups: dict[bytes, list[int]] = {}
        for i in range(len(mappings)):
            groups.setdefault(mappings.keep[i].tobytes(), []).append(i)
        parts = []
        for rows in groups.values():
            idx = np.asarray(rows)
            sub = mappings if len(groups) == 1 else mappings[idx]
            spec = pruned_weights_spec(problem, arch, sub.keep[0], self.pruning, self.nm)
            parts.append((idx, evaluate_sparseloop(problem, arch, sub, spec, dens, sa,
                                                   evaluation=ev if len(groups) == 1
                                                   else None)))
        sc = parts[0][1] if len(parts) == 1 else merge_rows(parts, len(mappings))
        return costs_of_sparse(sc, ev, arch)



__all__ = ["COUNT_OPS", "DATA_OPS", "FORMAT_OPS", "WEIGHTS", "DensityModel", "PrunedWeights",
           "Sparseloop", "SparseloopCost", "evaluate_sparseloop", "pruned_weights_spec",
           "target_sparse_arch"]
