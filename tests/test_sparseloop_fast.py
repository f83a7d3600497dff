"""The batched fast path of Timeloop's sparse model (``cost_models/sparseloop_fast.py``)
equals the per-mapping reference (``evaluate_sparseloop(..., fast=False)``) field for field,
bit for bit, on random mappings (valid and invalid) of the shared Sparseloop cases' designs
under their formats and other densities, and of ``compile``'s pruned weights on gemmini."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from cost_models.sparseloop import (
    PrunedWeights,
    evaluate_sparseloop,
    pruned_weights_spec,
    target_sparse_arch,
)
from mapspace.arch_yaml import load_arch
from mapspace.mapping_yaml import load_mapping
from mapspace.naive_random import random_mappings
from mapspace.problem_yaml import load_problem
from mapspace.sparse_yaml import (
    Density,
    SparseSpec,
    densities_from_dict,
    load_sparse_arch,
    load_sparse_spec,
)
from mapspace.yamlio import load_yaml

REF = Path(__file__).resolve().parents[2] / "shared/reference/sparseloop"
CASES = sorted(p.parent.name for p in REF.glob("*/sparse_opt.yaml"))
FIELDS = ("valid", "reason", "cycles", "energy", "edp", "computes", "gated_computes",
          "skipped_computes", "algorithmic_computes", "mac_energy", "leak_energy",
          "utilized_instances", "level_cycles", "energy_breakdown")


def assert_same(a, b) -> None:
    for f in FIELDS:
        x, y = getattr(a, f), getattr(b, f)
        assert x.dtype == y.dtype, f
        assert np.array_equal(x, y, equal_nan=x.dtype.kind == "f"), f
    assert a.accesses.keys() == b.accesses.keys()
    for op in a.accesses:
        assert np.array_equal(a.accesses[op], b.accesses[op]), op


def both(p, a, m, spec, dens, sa):
    fast = evaluate_sparseloop(p, a, m, spec, dens, sa)
    ref = evaluate_sparseloop(p, a, m, spec, dens, sa, fast=False)
    assert_same(fast, ref)
    return ref


def _design(case: str):
    """(folder, arch, problem, the reference mapping's keep flags) of a shared case."""
    d = REF / case
    if not d.is_dir():
        pytest.skip(f"Sparseloop reference cases not found at {REF}")
    a = load_arch(d / "arch.yaml", d / "ERT.yaml")
    p = load_problem(d / "problem.yaml")
    return d, a, p, load_mapping(d / "mapping.yaml", p, a).keep[0]


def draw(p, a, n: int, rng, keep):
    """``n`` random valid mappings (by rejection) and ``n // 4`` unchecked ones."""
    from mapspace.mapping import MappingBatch
    from mapspace.naive_random import random_valid

    m, _ = random_valid(p, a, n, int(rng.integers(1 << 30)), keep, chunk=20_000,
                        max_draws=2_000_000)
    return MappingBatch.concat([m, random_mappings(p, a, n // 4, rng, keep)])


@pytest.mark.parametrize("case", CASES)
def test_fast_equals_reference_on_case_designs(case: str) -> None:
    """Each case's arch, formats and compute optimizations (storage gating/skipping
    dropped: those specs take the reference path), random mappings with the case's keep
    flags and with 30 % of them flipped, under the case's densities, fixed-structured 0.3
    and hypergeometric 0.4 (fewer mappings for the full Eyeriss conv layers, whose
    reference analysis takes ~50 ms a mapping)."""
    d, a, p, keep = _design(case)
    spec = load_sparse_spec(d / "sparse_opt.yaml", p, a)
    spec = SparseSpec(formats=spec.formats, compute=spec.compute)
    sa = load_sparse_arch(d / "arch.yaml", a, d / "ERT.yaml")
    rng = np.random.default_rng(len(case))
    n = 8 if case.startswith("eyeriss") else 100
    flipped = keep ^ (rng.random(keep.shape) < 0.3)
    batches = [draw(p, a, n, rng, keep), random_mappings(p, a, n, rng, flipped)]
    given = densities_from_dict(load_yaml(d / "problem.yaml"), p, str(d))
    n_valid = 0
    for dens in (given, (Density("fixed_structured", 0.3),) * p.num_tensors,
                 (Density("hypergeometric", 0.4),) * p.num_tensors):
        for m in batches:
            n_valid += int(both(p, a, m, spec, dens, sa).valid.sum())
    assert n_valid > 0


@pytest.mark.parametrize("pruning", ["nm", "magnitude"])
def test_fast_equals_reference_on_pruned_weights(pruning: str) -> None:
    """``compile``'s pruned weights (2:4 and unstructured 50 %) on gemmini, 300 random
    mappings of a small matmul under the keep flags every level keeps everything and one
    with Registers keeping only weights."""
    from mapspace.workloads import workload
    from targets import load_target

    arch = load_target("gemmini")
    p = workload("gpt2-decode/attn-scores")
    pw = PrunedWeights(0.5, pruning, (2, 4) if pruning == "nm" else None)
    dens, sa = pw.densities(p), target_sparse_arch(arch)
    rng = np.random.default_rng(7)
    keep = load_mapping(Path(__file__).resolve().parents[1]
                        / "targets/gemmini/examples/bert_ffn1_good.yaml",
                        workload("bert-base/ffn1"), arch).keep[0]
    keep2 = keep.copy()
    keep2[arch.level_index("Scratchpad"), p.tensor_index("Weights")] = False
    n_valid = 0
    for k in (keep, keep2):
        m = draw(p, arch, 100, rng, k)
        spec = pruned_weights_spec(p, arch, k, pw.pruning, pw.nm)
        n_valid += int(both(p, arch, m, spec, dens, sa).valid.sum())
    assert n_valid > 0


def test_hypergeometric_window_equals_whole_range() -> None:
    """``DensityModel.occupancies`` evaluates a window around the mode: the same
    occupancies and probabilities as the whole range lo..hi with the same 1e-13 cut."""
    from cost_models.sparseloop_analysis import DensityModel

    rng = np.random.default_rng(3)
    for _ in range(200):
        N = int(rng.choice([7, 100, 1000, 30_000, 100_000]))
        dm = DensityModel(Density("hypergeometric", float(rng.choice([0.01, 0.3, 0.5, 1.0,
                                                                       rng.random()]))), N)
        size = int(rng.integers(1, N + 1))
        lo, hi = dm.min_occupancy(size), dm.max_occupancy(size)
        k, p = dm._hypergeom_pmf(lo, hi, size)
        keep = p > p.max() * 1e-13
        want = [(int(a), float(b)) for a, b in zip(k[keep], p[keep], strict=True)]
        assert dm.occupancies(size, lo, hi) == want


def _random_formats(p, a, rng) -> SparseSpec:
    """Formats of 1-4 random ranks (B, CP, UOP, RLE, UB; some flattened over random
    dimension groups, half inner-to-outer) for random tensors at random levels."""
    from mapspace.sparse_yaml import Rank, TensorFormat

    out = []
    for lv in a.level_names:
        for t in p.tensor_names:
            if rng.random() < 0.5:
                continue
            ranks = []
            for _ in range(int(rng.integers(1, 5))):
                flat = ()
                if rng.random() < 0.4:
                    dims = rng.permutation(p.num_dims)
                    cut = int(rng.integers(1, p.num_dims + 1))
                    flat = tuple(tuple(int(d) for d in g)
                                 for g in (dims[:cut], dims[cut:]) if len(g))
                ranks.append(Rank(str(rng.choice(["B", "CP", "UOP", "RLE", "UB"])),
                                  flattened=flat))
            out.append(TensorFormat(lv, t, tuple(ranks), inner_to_outer=bool(rng.random() < .5)))
    return SparseSpec(formats=tuple(out))


@pytest.mark.parametrize("case", CASES)
def test_format_kernel_equals_define_formats(case: str) -> None:
    """The compiled rank-to-loop assignment (``cost_models/_formats_kernel.py``) gives the
    fiber and subtile shapes of ``MappingAnalysis.define_formats`` on every kept tile, and
    fails exactly where it raises (pretiling misaligned, too few ranks, rank count), on
    random mappings of the case's design under its own formats and 40 random format
    specifications (ranks, flattening, rank order)."""
    from cost_models import evaluate
    from cost_models.sparseloop import _context
    from cost_models.sparseloop_analysis import AnalysisFailed, MappingAnalysis
    from cost_models.sparseloop_fast import _fibers

    d, a, p, keep = _design(case)
    rng = np.random.default_rng(len(case) + 1)
    specs = [load_sparse_spec(d / "sparse_opt.yaml", p, a)]
    specs += [_random_formats(p, a, rng) for _ in range(40)]
    m = random_mappings(p, a, 60, rng, keep)
    dm = evaluate(p, a, m).movement
    kinds = {0: 0, 1: 0, 2: 0, 3: 0}
    for spec in specs:
        if not spec.formats:
            continue
        ctx = _context(p, a, spec, None, None)
        tensors = sorted({t for (_, t) in ctx.formats})
        R = max(len(f.ranks) for f in ctx.formats.values())
        rows = np.arange(len(m))
        fiber, subtile, status = _fibers(ctx, m, dm, rows, tensors, R)
        for i in range(len(m)):
            an = MappingAnalysis(ctx, m, i, dm, m.keep[i], tensors)
            try:
                an.define_formats(tensors)
                want = 0
            except AnalysisFailed as e:
                msg = str(e)
                want = 1 if "pretiling" in msg else 2 if "more compression" in msg else 3
            assert status[i] == want, (i, msg if want else "")
            kinds[want] += 1
            if want:
                continue
            for ti, t in enumerate(tensors):
                for s in range(a.num_levels):
                    tl = an.tiles[t][s]
                    if not tl.shape:
                        continue
                    nr = len(tl.fiber)
                    assert fiber[i, ti, s, :nr].tolist() == tl.fiber
                    assert subtile[i, ti, s, :nr + 1].tolist() == tl.md_subtile
    assert kinds[0] > 0


def test_compiled_lgamma_is_pythons() -> None:
    """The tile kernel's ``lgamma`` (CPython's Lanczos ``m_lgamma``) equals
    ``math.lgamma`` bit for bit, on integers up to 10^8 (the hypergeometric model's
    arguments) and on reals (the C library's differs in the last place on many)."""
    import math

    from cost_models._tiles_kernel import lgamma

    rng = np.random.default_rng(11)
    xs = np.concatenate([np.arange(1.0, 20_000.0), rng.integers(1, 10**8, 20_000) * 1.0,
                         rng.uniform(1e-3, 1e4, 20_000)])
    got = np.array([lgamma(x) for x in xs])
    want = np.array([math.lgamma(x) for x in xs])
    assert np.array_equal(got, want)


def test_unique_rows_groups_exactly_even_on_hash_collisions(monkeypatch) -> None:
    """Distinct tiles are grouped by a hash; a collision falls back to the exact sort, so
    rows are grouped as ``np.unique(axis=0)`` groups them either way."""
    import cost_models.sparseloop_fast as fast

    rng = np.random.default_rng(5)
    keys = rng.integers(0, 4, (500, 5)).astype(np.int64)
    for collide in (False, True):
        if collide:
            monkeypatch.setattr(fast, "_row_hash", lambda k: np.zeros(len(k), np.uint64))
        uniq, inv = fast._unique_rows(keys)
        assert np.array_equal(uniq[inv], keys)
        assert len(uniq) == len(np.unique(keys, axis=0))
