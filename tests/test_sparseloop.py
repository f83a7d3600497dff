"""Timeloop's sparse model (Sparseloop) against timeloop-model on the shared reference cases
(``../shared/reference/sparseloop``), the rules SL1-SL12 of ``cost_models/README.md`` on
hand-worked cases, and the input checks of ``mapspace/sparse_yaml.py``."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from cost_models.sparseloop import DensityModel, evaluate_sparseloop
from mapspace.arch_yaml import load_arch
from mapspace.mapping_yaml import load_mapping
from mapspace.problem_yaml import load_problem
from mapspace.sparse_yaml import (
    Density,
    SparseSpec,
    densities_from_dict,
    load_sparse_arch,
    load_sparse_spec,
)
from mapspace.yamlio import load_yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from timeloop_stats import parse_stats  # noqa: E402

REF = Path(__file__).resolve().parents[2] / "shared/reference/sparseloop"
CASES = sorted(p.parent.name for p in REF.glob("*/cmd.txt"))


def run_case(d: Path):
    a = load_arch(d / "arch.yaml", d / "ERT.yaml")
    p = load_problem(d / "problem.yaml")
    m = load_mapping(d / "mapping.yaml", p, a)
    opt = d / "sparse_opt.yaml"
    spec = load_sparse_spec(opt, p, a) if opt.exists() else SparseSpec()
    sa = load_sparse_arch(d / "arch.yaml", a, d / "ERT.yaml")
    dens = densities_from_dict(load_yaml(d / "problem.yaml"), p, str(d))
    return p, a, evaluate_sparseloop(p, a, m, spec, dens, sa)


@pytest.fixture
def ref() -> Path:
    if not REF.is_dir():
        pytest.skip(f"Sparseloop reference cases not found at {REF}")
    return REF


def test_twelve_cases_found(ref: Path) -> None:
    assert len(CASES) == 12


@pytest.mark.parametrize("case", CASES)
def test_case_matches_timeloop(ref: Path, case: str) -> None:
    """Cycles exact, energy within 0.5 %, per level and tensor the actual reads, fills and
    updates and the gated and skipped reads equal timeloop-model's stats file."""
    p, a, r = run_case(ref / case)
    s = parse_stats(ref / case / "timeloop-model.stats.txt")
    assert r.valid[0], r.reason[0]
    assert r.cycles[0] == s.summary.cycles
    energy = s.summary.fj_per_compute["Total"] * s.summary.computes / 1000
    assert r.energy[0] == pytest.approx(energy, rel=5e-3)
    assert r.computes[0] == s.compute.computes
    assert r.algorithmic_computes[0] == s.summary.computes
    for name, lv in s.levels.items():
        l = a.level_index(name)
        assert r.level_cycles[0, l] == lv.cycles, name
        for tname, ts in lv.tensors.items():
            t = p.tensor_index(tname)
            got = {k: int(r.accesses[f"random_{k[:-1]}"][0, l, t])
                   for k in ("reads", "fills", "updates")}
            assert got == {"reads": ts.reads, "fills": ts.fills, "updates": ts.updates}, \
                (name, tname)
            if ts.gated is not None:
                assert int(r.accesses["gated_read"][0, l, t]) == ts.gated["reads"]
                assert int(r.accesses["skipped_read"][0, l, t]) == ts.skipped["reads"]
            assert r.energy_breakdown[0, l, t] == pytest.approx(ts.energy_pj, rel=5e-3,
                                                                abs=0.01)


def test_fixed_structured_density_model() -> None:
    """SL1: a tile of n elements holds floor(n d) nonzeros with probability 1 - frac(n d),
    else ceil(n d); conditioned on an enclosing tile, at that tile's density."""
    m = DensityModel(Density("fixed_structured", 0.43), 27)
    assert m.prob(1, 0) == pytest.approx(0.57) and m.prob(1, 1) == pytest.approx(0.43)
    assert m.prob(3, 1) == pytest.approx(0.71) and m.prob(3, 2) == pytest.approx(0.29)
    assert m.prob(3, 0) == 0.0 and m.max_occupancy(3) == 2 and m.min_occupancy(3) == 1
    assert m.prob(4, 0, constraint=(8, 2)) == 0.0           # 4 x 2/8 = 1 exactly
    assert m.prob(2, 0, constraint=(8, 2)) == pytest.approx(0.5)


def test_hypergeometric_density_model() -> None:
    """SL1: hypergeometric: ceil(d N) nonzeros in N; P(k in a tile of n) = C(r,k)C(N-r,n-k)/
    C(N,n); the expectation is n r / N."""
    m = DensityModel(Density("hypergeometric", 0.25), 16)
    assert m.total == 4
    assert m.prob(2, 0) == pytest.approx((12 * 11) / (16 * 15))
    assert m.expected(4) == pytest.approx(1.0)
    assert sum(m.prob(5, k) for k in range(6)) == pytest.approx(1.0)
    assert m.max_occupancy(10) == 4 and m.max_occupancy(3) == 3


def test_density_one_equals_dense(ref: Path) -> None:
    """With every density 1 and no metadata format, gating/skipping saves nothing: the
    sparse model prices a mapping exactly as the dense one.  (Formats at density 1 still
    cost their metadata: here the UOP-CP tiles no longer fit BackingStorage's metadata
    storage, as in Timeloop.)"""
    from cost_models.model import evaluate

    d = ref / "spmspm_UOPCP_skipping"
    a = load_arch(d / "arch.yaml", d / "ERT.yaml")
    p = load_problem(d / "problem.yaml")
    m = load_mapping(d / "mapping.yaml", p, a)
    spec = load_sparse_spec(d / "sparse_opt.yaml", p, a)
    sa = load_sparse_arch(d / "arch.yaml", a, d / "ERT.yaml")
    dense = tuple(Density() for _ in p.tensor_names)
    full = evaluate_sparseloop(p, a, m, spec, dense, sa)
    assert not full.valid[0] and "metadata buffer capacity 512 bits" in full.reason[0]
    r = evaluate_sparseloop(p, a, m, SparseSpec(groups=spec.groups), dense, sa)
    ev = evaluate(p, a, m)
    assert r.cycles[0] == ev.cost.cycles[0]
    np.testing.assert_array_equal(r.accesses["random_read"][0], ev.movement.reads[0])
    np.testing.assert_array_equal(r.accesses["random_fill"][0], ev.movement.fills[0])
    np.testing.assert_array_equal(r.accesses["skipped_read"][0], 0)
    assert r.computes[0] == ev.movement.macs[0] * ev.movement.compute_instances[0]
    assert r.energy[0] == pytest.approx(ev.cost.energy[0], rel=1e-12)


# ------------------------------------------------------------------ the CLI
def _cli(*args):
    from click.testing import CliRunner

    from compiler.cli import main

    return CliRunner().invoke(main, [str(a) for a in args])


def _files(d: Path) -> list:
    return ["evaluate", "--arch", d / "arch.yaml", "--ert", d / "ERT.yaml", "--problem",
            d / "problem.yaml", "--mapping", d / "mapping.yaml"]


def test_cli_evaluate_sparse_json(ref: Path) -> None:
    import json

    d = ref / "dot_gating_SUDU_d0.25"
    r = _cli(*_files(d), "--sparse-opt", d / "sparse_opt.yaml", "--json")
    assert r.exit_code == 0, r.output
    out = json.loads(r.output)
    assert out["cycles"] == 16 and out["energy_pJ"] == pytest.approx(53.8659, abs=1e-3)
    assert out["dense"]["energy_pJ"] == pytest.approx(127.2727, abs=1e-3)
    b = out["sparse"]["levels"][0]["tensors"]["B"]
    assert (b["random_read"], b["gated_read"], b["skipped_read"]) == (4, 12, 0)
    assert out["sparse"]["actual_computes"] == 4
    table = _cli(*_files(d), "--sparse-opt", d / "sparse_opt.yaml")
    assert table.exit_code == 0 and "4 / 12 / 0" in table.output


def test_cli_sparse_section_inside_input(ref: Path, tmp_path: Path) -> None:
    """A processed input carrying ``sparse_optimizations`` is evaluated sparse."""
    import json

    import yaml

    d = ref / "dot_CP_skipping_SCDU_d0.25"
    doc = {}
    for f in ("arch.yaml", "problem.yaml", "mapping.yaml", "sparse_opt.yaml"):
        doc.update(yaml.safe_load((d / f).read_text()))
    (tmp_path / "in.yaml").write_text(yaml.safe_dump(doc))
    r = _cli("evaluate", "--input", tmp_path / "in.yaml", "--ert", d / "ERT.yaml", "--json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)["cycles"] == 4


BAD = [
    ("representation_format:\n      data_spaces:\n      - name: A\n        ranks:\n"
     "        - format: XYZ", "unknown format 'XYZ'"),
    ("action_optimization:\n    - type: zapping\n      options:\n      - target: B\n"
     "        condition_on: [A]", "unknown optimization type 'zapping'"),
    ("action_optimization:\n    - type: skipping\n      options:\n      - target: B\n"
     "        condition_on: [Q]", "unknown tensor 'Q'"),
    ("representation_format:\n      data_spaces:\n      - name: A\n        ranks:\n"
     "        - format: CP\n          flattened_rankIDs: [[M]]", "no dimension of this rank "
     "indexes A"),
]


@pytest.mark.parametrize(("body", "message"), BAD)
def test_cli_bad_sparse_opt(ref: Path, tmp_path: Path, body: str, message: str) -> None:
    d = ref / "dot_CP_skipping_SCDU_d0.25"
    f = tmp_path / "bad.yaml"
    f.write_text(f"sparse_optimizations:\n  targets:\n  - name: Buffer\n    {body}\n")
    r = _cli(*_files(d), "--sparse-opt", f)
    assert r.exit_code == 2, r.output
    assert message in r.output and str(f) in r.output
    assert len(r.output.strip().splitlines()) == 1


def test_cli_bad_density(ref: Path, tmp_path: Path) -> None:
    d = ref / "dot_CP_skipping_SCDU_d0.25"
    text = (d / "problem.yaml").read_text()
    for bad, msg in (("density: 0.25", "density: 1.5"), ("fixed_structured", "lognormal")):
        f = tmp_path / "p.yaml"
        f.write_text(text.replace(bad, msg))
        args = _files(d)
        args[args.index(d / "problem.yaml")] = f
        r = _cli(*args, "--sparse-opt", d / "sparse_opt.yaml")
        assert r.exit_code == 2, r.output
        assert "density" in r.output or "distribution" in r.output


# ------------------------------------------------------- rules on hand-worked cases
def test_SL3_format_occupancy_per_rank() -> None:
    """SL3: per rank, fibers = parent fibers x P(fiber nonempty); CP and B count
    ceil(fiber x P(coordinate nonempty)) nonzeros, RLE the expectation without ceil, UOP
    fiber + 1 offsets per fiber; B stores one bit per coordinate."""
    from cost_models.sparseloop_analysis import format_occupancy
    from mapspace.sparse_yaml import Rank

    m = DensityModel(Density("fixed_structured", 0.25), 16)
    cons = (16, 4)                       # a 16-element tile holding 4 nonzeros
    assert format_occupancy(Rank("CP"), 1, 16, 16, 1, m, cons, 4) == [4, 4, 4, 4]
    assert format_occupancy(Rank("B"), 1, 16, 16, 1, m, cons, 4) == [16.0, 4.0, 4, 4]
    assert format_occupancy(Rank("UOP"), 1, 4, 16, 4, m, cons, 4) == [0.0, 5.0, 4, 4]
    rle = format_occupancy(Rank("RLE", metadata_word_bits=3), 1, 6, 6, 1, m, (6, 3), 4)
    assert rle[:2] == [pytest.approx(3.0), pytest.approx(3.0)] and rle[2] == 3
    # two ranks of 4 x 4 at 4 nonzeros: each 4-fiber holds exactly one (4 x 4/16 = 1)
    assert format_occupancy(Rank("CP"), 4, 4, 4, 1, m, cons, 4)[0] == 4


def _dot(tmp_path: Path, density: float, opt: str):
    d = REF / "dot_dense_DUDU"
    a = load_arch(d / "arch.yaml", d / "ERT.yaml")
    ptext = (REF / "dot_gating_SUDU_d0.25/problem.yaml").read_text().replace(
        "density: 0.25", f"density: {density}")
    (tmp_path / "p.yaml").write_text(ptext)
    p = load_problem(tmp_path / "p.yaml")
    m = load_mapping(d / "mapping.yaml", p, a)
    (tmp_path / "s.yaml").write_text(opt)
    spec = load_sparse_spec(tmp_path / "s.yaml", p, a)
    dens = densities_from_dict(load_yaml(tmp_path / "p.yaml"), p, "p")
    return p, a, evaluate_sparseloop(p, a, m, spec, dens, load_sparse_arch(
        d / "arch.yaml", a, d / "ERT.yaml"))


def test_SL8_compute_gating_charges_full_compute_energy(ref: Path, tmp_path: Path) -> None:
    """SL8/SL11: compute_optimization gating at density 0.5, no storage action: 8 of 16
    computes gated; the ERT has no gated-compute action, so each costs a full compute and
    the energy equals the dense run's (the README's observation), cycles too."""
    from cost_models.model import evaluate

    p, a, r = _dot(tmp_path, 0.5, "sparse_optimizations:\n  targets:\n  - name: mac\n"
                   "    compute_optimization:\n    - type: gating\n")
    assert (r.computes[0], r.gated_computes[0], r.skipped_computes[0]) == (8, 8, 0)
    d = REF / "dot_dense_DUDU"
    ev = evaluate(p, a, load_mapping(d / "mapping.yaml", p, a))
    assert r.energy[0] == pytest.approx(ev.cost.energy[0], rel=1e-12)
    assert r.cycles[0] == ev.cost.cycles[0] == 16


def test_SL5_SL6_gating_vs_skipping(ref: Path, tmp_path: Path) -> None:
    """SL5: at the innermost level the condition tile is one element: P(ineffectual) =
    P(A element empty) = 1 - d.  SL6: read-only targets lose floor(reads x p), the output
    ceil(reads x p) of its reads and floor(updates x p) of its updates.  SL7: gated
    accesses cost no energy but keep their bandwidth slot: (16 A + 16 B + 15 Z) reads at 3
    per cycle -> 16 cycles; skipped ones neither: (16 + 4 + 3) / 3 -> 8 cycles; both remove
    the computes below (4 actual)."""
    body = ("sparse_optimizations:\n  targets:\n  - name: Buffer\n    action_optimization:\n"
            "    - type: {kind}\n      options:\n      - target: B\n        condition_on: [A]\n"
            "    - type: {kind}\n      options:\n      - target: Z\n        condition_on: [A]\n")
    for kind, cycles in (("gating", 16), ("skipping", 8)):
        _, _, r = _dot(tmp_path, 0.25, body.format(kind=kind))
        other = "skipped" if kind == "gating" else "gated"
        own = "gated" if kind == "gating" else "skipped"
        assert r.accesses["random_read"][0, 0, 1] == 4           # B: 16 - floor(12)
        assert r.accesses[f"{own}_read"][0, 0, 1] == 12
        assert r.accesses[f"{other}_read"][0, 0, 1] == 0
        assert r.accesses["random_read"][0, 0, 2] == 3           # Z: 15 - ceil(11.25)
        assert r.accesses["random_update"][0, 0, 2] == 4         # Z: 16 - floor(12)
        assert r.computes[0] == 4 and r.cycles[0] == cycles


def test_SL4_pretiling_bitmask_under_cp_rejected(ref: Path, tmp_path: Path) -> None:
    """SL4: a compressed tensor whose child tile holds more than one element must be
    pretiled: the child's ranks must repeat the parent's innermost ones; a bitmask (B)
    rank under the parent's CP is rejected, naming both levels (as Timeloop does)."""
    d = ref / "spmspm_tiled_UOPCP_skipping"
    a = load_arch(d / "arch.yaml", d / "ERT.yaml")
    p = load_problem(d / "problem.yaml")
    m = load_mapping(d / "mapping.yaml", p, a)
    text = (d / "sparse_opt.yaml").read_text()
    head, tail = text.split("    name: BackingStorage", 1)
    tail = tail.replace("      - name: B\n        ranks:\n        - format: UOP\n"
                        "        - format: CP", "      - name: B\n        ranks:\n"
                        "        - format: UOP\n        - format: B", 1)
    (tmp_path / "s.yaml").write_text(head + "    name: BackingStorage" + tail)
    spec = load_sparse_spec(tmp_path / "s.yaml", p, a)
    r = evaluate_sparseloop(p, a, m, spec, densities_from_dict(
        load_yaml(d / "problem.yaml"), p, "p"), load_sparse_arch(d / "arch.yaml", a,
                                                                 d / "ERT.yaml"))
    assert not r.valid[0]
    assert "pretiling for B required" in r.reason[0] and "BackingStorage Buffer" in r.reason[0]


def test_SL13_pruned_weights_on_gemmini() -> None:
    """SL13 (compile --passes sparsify): on gemmini's BERT FFN1 example mapping, 2:4 weights
    are CP at every keeper (UOP ranks above), half the MACs skipped (free), the other half
    actual; unstructured 50 %: bitmask above the registers, half the MACs gated at a full
    MAC's energy, cycles as dense; both cheaper than dense."""
    from cost_models.model import evaluate
    from cost_models.sparseloop import PrunedWeights
    from mapspace.workloads import workload
    from targets import load_target

    root = Path(__file__).resolve().parents[1]
    a = load_target("gemmini")
    p = workload("bert-base/ffn1")
    m = load_mapping(root / "targets/gemmini/examples/bert_ffn1_good.yaml", p, a)
    ev = evaluate(p, a, m)
    macs = int(ev.movement.macs[0] * ev.movement.compute_instances[0])
    nm = PrunedWeights(0.5, "nm", (2, 4))
    assert nm.describe(p, a, m.keep[0]) == ("2:4 DRAM:UOP-UOP-CP Scratchpad:UOP-CP "
                                            "Registers:CP skip MACs of zero weights")
    c = nm.cost(p, a, m)
    sc = c.detail
    assert sc.computes[0] == macs // 2 and sc.skipped_computes[0] == macs // 2
    assert sc.mac_energy[0] == pytest.approx(macs // 2 * a.compute.energy)
    assert c.cycles[0] < ev.cost.cycles[0] and c.energy_pJ[0] < ev.cost.energy[0]
    u = PrunedWeights(0.5, "magnitude")
    assert u.describe(p, a, m.keep[0]) == ("density 0.5 DRAM:UOP-B Scratchpad:B "
                                           "gate MACs of zero weights")
    cu = u.cost(p, a, m)
    assert cu.detail.gated_computes[0] == macs // 2 and cu.detail.computes[0] == macs // 2
    assert cu.detail.mac_energy[0] == pytest.approx(macs * a.compute.energy)
    assert cu.cycles[0] == ev.cost.cycles[0] and cu.energy_pJ[0] < ev.cost.energy[0]


def test_cli_format_ranks_not_matching_the_mapping(ref: Path, tmp_path: Path) -> None:
    """A format with fewer ranks than the tensor's non-trivial loops at that level needs
    (Timeloop: "more compression ranks needed than supported") is refused: one line naming
    the tensor and level, exit 2."""
    d = ref / "spmspm_UOPCP_skipping"
    text = (d / "sparse_opt.yaml").read_text()
    head, tail = text.split("    name: BackingStorage", 1)
    head = head.replace("      - name: A\n        ranks:\n        - format: UOP\n"
                        "        - format: CP", "      - name: A\n        ranks:\n"
                        "        - format: CP", 1)
    (tmp_path / "s.yaml").write_text(head + "    name: BackingStorage" + tail)
    r = _cli(*_files(d), "--sparse-opt", tmp_path / "s.yaml")
    assert r.exit_code == 2, r.output
    assert "more compression ranks needed" in r.output and "A at BackingStorage" in r.output
    assert len(r.output.strip().splitlines()) == 1


@pytest.mark.parametrize(("body", "message"), [
    ("  - name: Nowhere\n    action_optimization:\n    - type: gating\n      options:\n"
     "      - target: B\n        condition_on: [A]\n", "unknown storage level 'Nowhere'"),
    ("  - name: Buffer\n    action_optimization:\n    - type: spatial_skipping\n"
     "      options:\n      - target: B\n        condition_on: [A]\n",
     "spatial_skipping is not modelled"),
    ("  - name: Buffer\n    representation_format:\n      data_spaces:\n      - name: A\n"
     "        ranks:\n        - format: CP\n        - format: UOP\n",
     "Timeloop supports no uncompressed rank below a compressed one"),
])
def test_cli_more_bad_sparse_opt(ref: Path, tmp_path: Path, body: str, message: str) -> None:
    d = ref / "dot_CP_skipping_SCDU_d0.25"
    f = tmp_path / "bad.yaml"
    f.write_text("sparse_optimizations:\n  targets:\n" + body)
    r = _cli(*_files(d), "--sparse-opt", f)
    assert r.exit_code == 2 and message in r.output, r.output


_WHOLE_TENSOR_MAPPING = """mapping:
- {target: Registers, type: datatype, keep: [Weights], bypass: [Inputs, Outputs]}
- {target: Accumulator, type: datatype, keep: [Outputs], bypass: [Weights, Inputs]}
- {target: Scratchpad, type: datatype, keep: [Weights, Inputs], bypass: [Outputs]}
- {target: DRAM, type: datatype, keep: [Weights, Inputs, Outputs], bypass: []}
- {target: Registers, type: temporal, factors: C1 M1 R1 S1 N1 P1 Q1, permutation: PQRCMNS}
- {target: Accumulator, type: spatial, factors: C8 M1 R1 S1 N1 P1 Q1, permutation: CMRSNPQ,
   split: 0}
- {target: Accumulator, type: temporal, factors: C1 M4 R1 S1 N1 P4 Q1, permutation: QNCMPRS}
- {target: Scratchpad, type: spatial, factors: C1 M16 R1 S1 N1 P1 Q1, permutation: CMRSNPQ,
   split: 7}
- {target: Scratchpad, type: temporal, factors: C8 M1 R1 S1 N1 P2 Q56, permutation: SCPQRNM}
- {target: DRAM, type: temporal, factors: C1 M1 R1 S1 N1 P7 Q1, permutation: RCPMQSN}
"""


def test_SL2_whole_tensor_tile_under_metadata_parent(tmp_path: Path) -> None:
    """SL2: a hypergeometric tile holding the whole tensor (Scratchpad here) under a parent
    with metadata is never empty: priced unconditioned (Timeloop would divide by zero),
    and 30 % unstructured weights lower the energy; MACs are gated, not skipped, so only
    the compressed weight traffic (a bandwidth-bound dense run here) shortens the run."""
    from cost_models.model import evaluate
    from cost_models.sparseloop import PrunedWeights
    from mapspace.workloads import workload
    from targets import load_target

    a = load_target("gemmini")
    p = workload("resnet50/conv2_x.reduce")
    (tmp_path / "m.yaml").write_text(_WHOLE_TENSOR_MAPPING)
    m = load_mapping(tmp_path / "m.yaml", p, a)
    ev = evaluate(p, a, m)
    w = p.tensor_index("Weights")
    assert ev.movement.tile[0, a.level_index("Scratchpad"), w] == p.tensor_size(w)
    c = PrunedWeights(0.3, "magnitude").cost(p, a, m)
    macs = int(ev.movement.macs[0] * ev.movement.compute_instances[0])
    assert c.valid[0] and ev.movement.macs[0] <= c.cycles[0] <= ev.cost.cycles[0]
    assert c.detail.computes[0] + c.detail.gated_computes[0] == macs
    assert np.isfinite(c.energy_pJ[0]) and c.energy_pJ[0] < ev.cost.energy[0]
    assert c.detail.utilized_instances[0, a.level_index("Scratchpad"), w] == 1.0
