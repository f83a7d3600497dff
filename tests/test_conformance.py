"""The analytical model against timeloop-model: 13 conformance cases and 10 Gemmini cases.

Each case is loaded from the reference files (problem, architecture + ERT, mapping) and
evaluated with :func:`cost_models.evaluate`; the expectation is what Timeloop printed
(``timeloop-model.stats.txt`` for the conformance cases, ``cases.json`` for Gemmini).

The reference total energy is ``fJ/compute Total x computes / 1000``: the stats file's
``Energy: ... uJ`` line is rounded to 2 decimals (0.00 uJ for the tutorial cases), while
the fJ/compute figure is rounded to 2 decimals of fJ, i.e. to a few parts per million.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pytest

from cost_models import Evaluation, evaluate
from mapspace.arch_yaml import load_arch
from mapspace.mapping_yaml import load_mapping
from mapspace.problem_yaml import load_problem

sys.path.insert(0, str(Path(__file__).resolve().parent))
from timeloop_stats import parse_stats  # noqa: E402

CONFORMANCE = [
    "ex_eyeriss_like",
    "ex_simba_like",
    "ex_simple_output_stationary",
    "ex_simple_weight_stationary",
    "tut_00-model-conv1d-1level",
    "tut_01-model-conv1d-2level_os",
    "tut_01-model-conv1d-2level_ws",
    "tut_02-model-conv1d+oc-2level_no-tiling",
    "tut_02-model-conv1d+oc-2level_tiling",
    "tut_03-model-conv1d+oc-3level_bypass",
    "tut_03-model-conv1d+oc-3level_no-bypass",
    "tut_04-model-conv1d+oc-3levelspatial_cp",
    "tut_04-model-conv1d+oc-3levelspatial_kp",
]
GEMMINI = [
    "rn50_00_mapperbest", "rn50_01_rand", "rn50_02_rand", "rn50_03_full", "rn50_04_rand",
    "bert_00_mapperbest", "bert_01_rand", "bert_02_rand", "bert_03_full", "bert_04_rand",
]
CASES = [("conformance", c) for c in CONFORMANCE] + [("gemmini", c) for c in GEMMINI]
IDS = [c for _, c in CASES]
#: relative tolerance on the total energy, per suite (the brief's acceptance bound)
ENERGY_TOL = {"conformance": 5e-3, "gemmini": 1e-2}


@dataclass(frozen=True)
class RefTensor:
    reads: int
    fills: int
    updates: int
    tile: int
    instances: int
    energy_pj: float


@dataclass(frozen=True)
class Ref:
    """What Timeloop reported: totals and, per (non-dummy) level, per kept tensor."""

    cycles: int
    energy_pj: float
    component_energy_pj: float      # sum of per-tensor energies + compute (no leakage)
    utilization_pct: float          # as printed (2 decimals)
    computes: int
    levels: dict[str, dict[str, RefTensor]]


@dataclass(frozen=True)
class Case:
    ev: Evaluation
    ref: Ref


def _ref_from_stats(path: Path) -> Ref:
    s = parse_stats(path)
    levels = {
        name: {t: RefTensor(ts.reads, ts.fills, ts.updates, ts.utilized_capacity,
                            ts.utilized_instances, ts.energy_pj)
               for t, ts in lv.tensors.items()}
        for name, lv in s.levels.items()
    }
    comp = s.compute.energy_pj + sum(ts.energy_pj for lv in s.levels.values()
                                     for ts in lv.tensors.values())
    return Ref(cycles=s.summary.cycles,
               energy_pj=s.summary.fj_per_compute["Total"] * s.summary.computes / 1000,
               component_energy_pj=comp, utilization_pct=round(100 * s.summary.utilization, 2),
               computes=s.summary.computes, levels=levels)


def _ref_from_json(c: dict) -> Ref:
    levels: dict[str, dict[str, RefTensor]] = {}
    comp = 0.0
    for name, lv in c["per_level"].items():
        if "Computes (total)" in lv["level_stats"]:
            comp += lv["level_stats"]["Energy (total)"]
            continue
        levels[name] = {}
        for t, d in lv["per_dataspace"].items():
            levels[name][t] = RefTensor(
                d["Scalar reads (per-instance)"], d["Scalar fills (per-instance)"],
                d["Scalar updates (per-instance)"], d["Utilized capacity"],
                d["Utilized instances (max)"], d["Energy (total)"])
            comp += d["Energy (total)"]
    return Ref(cycles=c["cycles"], energy_pj=c["energy_pJ"], component_energy_pj=comp,
               utilization_pct=round(100 * c["utilization"], 2), computes=c["computes"],
               levels=levels)


@cache
def _gemmini_cases(shared: Path) -> dict[str, dict]:
    data = json.loads((shared / "gemmini/cases.json").read_text())
    return {c["case_id"]: c for c in data["cases"]}


@cache
def _load(shared: Path, suite: str, case: str) -> Case:
    if suite == "conformance":
        d = shared / "conformance" / case
        p = load_problem(d / "input.yaml")
        a = load_arch(d / "input.yaml", d / "ERT.yaml")
        m = load_mapping(d / "input.yaml", p, a)
        ref = _ref_from_stats(d / "timeloop-model.stats.txt")
    else:
        g = shared / "gemmini"
        c = _gemmini_cases(shared)[case]
        p = load_problem(g / Path(c["problem_file"]).name)
        a = load_arch(g / "arch.yaml", g / "ERT.yaml")
        m = load_mapping(g / "cases" / case / "mapping.yaml", p, a)
        ref = _ref_from_json(c)
    return Case(evaluate(p, a, m), ref)


@pytest.fixture(params=CASES, ids=IDS)
def case(request: pytest.FixtureRequest, shared_dir: Path) -> tuple[str, Case]:
    suite, name = request.param
    return suite, _load(shared_dir, suite, name)


# ------------------------------------------------------------------ presence
def test_every_reference_case_is_listed(shared_dir: Path) -> None:
    found = sorted(p.parent.name for p in shared_dir.glob("conformance/*/input.yaml"))
    assert found == sorted(CONFORMANCE)
    assert sorted(_gemmini_cases(shared_dir)) == sorted(GEMMINI)
    for c in GEMMINI:
        assert (shared_dir / "gemmini/cases" / c / "mapping.yaml").is_file()


# -------------------------------------------------------------------- totals
def test_valid(case: tuple[str, Case]) -> None:
    _, c = case
    assert bool(c.ev.valid[0]), c.ev.validity.explain(0, c.ev.problem, c.ev.arch)


def test_cycles_exact(case: tuple[str, Case]) -> None:
    _, c = case
    assert int(c.ev.cost.cycles[0]) == c.ref.cycles


def test_computes(case: tuple[str, Case]) -> None:
    _, c = case
    dm = c.ev.movement
    assert int(dm.macs[0] * dm.compute_instances[0]) == c.ref.computes == c.ev.problem.macs


def test_energy_within_tolerance(case: tuple[str, Case]) -> None:
    suite, c = case
    assert float(c.ev.cost.energy[0]) == pytest.approx(c.ref.energy_pj, rel=ENERGY_TOL[suite])


def test_energy_pinned(case: tuple[str, Case]) -> None:
    """The model matches to a few ppm today (the reference itself is rounded to ~ppm)."""
    _, c = case
    rel = abs(float(c.ev.cost.energy[0]) / c.ref.energy_pj - 1)
    assert rel < 1e-4


def test_dynamic_energy_equals_sum_of_components(case: tuple[str, Case]) -> None:
    """Energy without leakage = Timeloop's per-tensor energies + compute energy (each printed
    to 0.01 pJ, so the tolerance is a few hundredths of a pJ per term)."""
    _, c = case
    dyn = float(c.ev.cost.energy[0] - c.ev.cost.leak_energy[0])
    n_terms = 1 + sum(len(t) for t in c.ref.levels.values())
    assert dyn == pytest.approx(c.ref.component_energy_pj, rel=1e-7, abs=0.01 * n_terms)


def test_utilization(case: tuple[str, Case]) -> None:
    _, c = case
    assert round(100 * float(c.ev.cost.utilization[0]), 2) == pytest.approx(
        c.ref.utilization_pct, abs=1e-9)


# ------------------------------------------------------------------ per level
def test_levels_and_kept_tensors(case: tuple[str, Case]) -> None:
    """Timeloop lists every non-dummy level with exactly the tensors the level keeps;
    dummy levels are hidden and keep nothing."""
    _, c = case
    arch, p, keep = c.ev.arch, c.ev.problem, c.ev.movement.keep[0]
    real = {lv.name for lv in arch.levels if not lv.is_dummy}
    assert real == set(c.ref.levels)
    for l, lv in enumerate(arch.levels):
        kept = {p.tensor_names[t] for t in range(p.num_tensors) if keep[l, t]}
        if lv.is_dummy:
            assert kept == set(), lv.name
        else:
            assert kept == set(c.ref.levels[lv.name]), lv.name


def _per_tensor(c: Case):
    arch, p = c.ev.arch, c.ev.problem
    for l, lv in enumerate(arch.levels):
        if lv.is_dummy:
            continue
        for name, ref in c.ref.levels[lv.name].items():
            yield lv.name, name, l, p.tensor_index(name), ref


def test_per_instance_counts_exact(case: tuple[str, Case]) -> None:
    _, c = case
    dm = c.ev.movement
    got, want = {}, {}
    for lvn, tn, l, t, ref in _per_tensor(c):
        got[lvn, tn] = dict(reads=int(dm.reads[0, l, t]), fills=int(dm.fills[0, l, t]),
                            updates=int(dm.updates[0, l, t]))
        want[lvn, tn] = dict(reads=ref.reads, fills=ref.fills, updates=ref.updates)
    assert got == want


def test_utilized_capacity_and_instances(case: tuple[str, Case]) -> None:
    _, c = case
    dm = c.ev.movement
    got = {(lvn, tn): (int(dm.tile[0, l, t]), int(dm.instances[0, l]))
           for lvn, tn, l, t, _ in _per_tensor(c)}
    want = {(lvn, tn): (ref.tile, ref.instances) for lvn, tn, _, _, ref in _per_tensor(c)}
    assert got == want


def test_per_tensor_energy(case: tuple[str, Case]) -> None:
    _, c = case
    e = c.ev.cost.energy_breakdown
    for lvn, tn, l, t, ref in _per_tensor(c):
        assert float(e[0, l, t]) == pytest.approx(ref.energy_pj, rel=1e-6, abs=0.01), (lvn, tn)


def test_stats_dict_agrees_with_arrays(case: tuple[str, Case]) -> None:
    """``Evaluation.stats`` (what the CLI prints) carries the same numbers as the arrays."""
    _, c = case
    st = c.ev.stats(0)
    assert st["cycles"] == c.ref.cycles
    for lv in st["levels"]:
        if lv["name"] not in c.ref.levels:
            assert lv["tensors"] == {}
            continue
        ref = c.ref.levels[lv["name"]]
        assert set(lv["tensors"]) == set(ref)
        for tn, d in lv["tensors"].items():
            r = ref[tn]
            assert (d["reads"], d["fills"], d["updates"], d["tile"]) == (
                r.reads, r.fills, r.updates, r.tile), (lv["name"], tn)
