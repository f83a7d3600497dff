"""Mapspace constraints: Timeloop YAML forms, resolve against problem/arch, target defaults,
and the vectorised ``satisfies`` check."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from mapspace import MapspaceError, matmul
from mapspace.arch_yaml import load_arch
from mapspace.constraint_check import satisfies
from mapspace.constraints import Constraints, FactorBound
from mapspace.constraints_yaml import (
    constraints_from_list,
    constraints_to_list,
    load_constraints,
    resolve,
)
from mapspace.mapping import MappingBatch
from mapspace.mapping_yaml import load_mapping
from mapspace.problem_yaml import load_problem
from mapspace.workloads import workload
from mapspace.yamlio import dump_yaml
from targets import TARGETS, default_constraints, load_target

_REF = Path(__file__).resolve().parents[2] / "shared/reference/timeloop"
GEMMINI_CASES = sorted(p.name for p in (_REF / "gemmini/cases").glob("*") if p.is_dir())
GEMMINI_ARCH = Path(__file__).resolve().parents[1] / "targets/gemmini/arch.yaml"


def _strip(c: Constraints) -> tuple:
    return tuple(replace(d, source="") for d in c.directives)


def _one(c: Constraints, target: str, kind: str):
    (d,) = c.on(target, kind)  # type: ignore[arg-type]
    return d


# ------------------------------------------------------------------ parsing
def test_upstream_gemmini_mapspace_v03(shared_dir: Path) -> None:
    c = load_constraints(shared_dir / "gemmini/upstream/mapspace.yaml")
    assert len(c.directives) == 10 and c.strict
    acc = _one(c, "Accumulator", "spatial")
    assert FactorBound("C", "<=", 16) in acc.factors
    assert FactorBound("K", "=", 1) in acc.factors and acc.permutation == ("Q", "K", "C")
    assert acc.split is None
    regs = _one(c, "Registers", "datatype")              # type: bypass -> datatype
    assert regs.keep == ("Weights",) and regs.bypass == ("Outputs", "Inputs")
    assert _one(c, "Registers", "temporal").permutation == tuple("PQRSCKN")
    assert _one(c, "DRAM", "temporal").factors == ()
    assert FactorBound("K", "<=", 16) in _one(c, "Scratchpad", "spatial").factors
    assert acc.source.endswith("mapspace.yaml: mapspace_constraints[5]")


def test_upstream_k_bounds_dropped_when_not_strict(shared_dir: Path) -> None:
    prob = load_problem(shared_dir / "gemmini/prob_bert_ffn1.yaml")
    arch = load_target("gemmini")
    c = load_constraints(shared_dir / "gemmini/upstream/mapspace.yaml", strict=False)
    r = resolve(c, prob, arch)
    acc = _one(r, "Accumulator", "spatial")
    assert [f.dim for f in acc.factors] == ["R", "S", "P", "Q", "C", "N"]
    assert acc.permutation == ("Q", "C")
    assert FactorBound("C", "<=", 16) in acc.factors
    sp = _one(r, "Scratchpad", "spatial")
    assert all(f.op == "=" and f.value == 1 for f in sp.factors)   # K<=16 is gone
    assert "K" not in _one(r, "Registers", "temporal").permutation
    with pytest.raises(MapspaceError) as e:
        resolve(load_constraints(shared_dir / "gemmini/upstream/mapspace.yaml"), prob, arch)
    assert e.value.where.endswith("mapspace.yaml")
    assert e.value.key == "mapspace_constraints[4].factors" and "'K'" in str(e.value)


def test_gemmini_arch_constraints() -> None:
    c = load_constraints(GEMMINI_ARCH, strict=False)
    acc = _one(c, "Accumulator", "spatial")
    assert acc.split == 0 and acc.permutation == tuple("CMRSNPQ")
    assert {f.dim for f in acc.factors} == set("MRSNPQ")
    sp = _one(c, "Scratchpad", "spatial")
    assert {f.dim for f in sp.factors} == set("CRSNPQ") and sp.split is None
    assert _one(c, "Scratchpad", "datatype").keep == ("Weights", "Inputs")
    assert _one(c, "Accumulator", "datatype").keep == ("Outputs",)
    assert _one(c, "Registers", "datatype").bypass == ("Inputs", "Outputs")
    assert _one(c, "DRAM", "datatype").keep == ("Weights", "Inputs", "Outputs")
    assert {(f.dim, f.op, f.value) for f in _one(c, "Registers", "temporal").factors} == {
        (d, "=", 1) for d in "CMRS"}
    assert c.source.endswith("arch.yaml")


@pytest.mark.parametrize("variant", ["gemmini_acc128", "gemmini_acc256"])
def test_gemmini_variants_carry_the_same_constraints(variant: str) -> None:
    path = GEMMINI_ARCH.parents[1] / variant / "arch.yaml"
    assert _strip(load_constraints(path)) == _strip(load_constraints(GEMMINI_ARCH))


def test_forms_and_spellings(tmp_path: Path) -> None:
    lst = [{"target": "Scratchpad", "type": "spatial", "factors": ["C=1,M<=16", "P>=2"],
            "permutation": ["M", "C"], "split": 1},
           {"target": "DRAM", "type": "temporal", "factors": "C 4 M = 2  # comment",
            "permutation": "M, C"},
           {"target": "Registers", "type": "datatype", "keep": ["Weights"]},
           {"target": "Registers", "type": "utilization", "min": 0.5}]
    c = constraints_from_list(lst, "x.yaml")
    sp = _one(c, "Scratchpad", "spatial")
    assert sp.factors == (FactorBound("C", "=", 1), FactorBound("M", "<=", 16),
                          FactorBound("P", ">=", 2))
    assert sp.permutation == ("M", "C") and sp.split == 1
    dram = _one(c, "DRAM", "temporal")
    assert dram.factors == (FactorBound("C", "=", 4), FactorBound("M", "=", 2))
    assert dram.permutation == ("M", "C")
    assert _one(c, "Registers", "utilization").min_utilization == 0.5
    want = _strip(c)
    for wrapped in ({"mapspace_constraints": {"targets": lst}},
                    {"architecture_constraints": {"targets": lst}},
                    {"mapspace": {"constraints": lst}},
                    {"constraints": {"targets": lst}},
                    {"targets": lst}):
        assert _strip(constraints_from_list(wrapped, "x.yaml")) == want
    split = {"architecture_constraints": {"targets": lst[:2]}, "mapspace_constraints": lst[2:],
             "mapping": [], "mapspace": {"template": "uber"}}
    assert _strip(constraints_from_list(split, "x.yaml")) == want
    nested = [{"target": "Scratchpad", "constraints": [
        {"type": "spatial", "attributes": {"factors": "C=1"}}]}]
    assert _one(constraints_from_list(nested, "x.yaml"), "Scratchpad", "spatial").factors == (
        FactorBound("C", "=", 1),)


def test_round_trip(shared_dir: Path, tmp_path: Path) -> None:
    for c in (load_constraints(shared_dir / "gemmini/upstream/mapspace.yaml"),
              load_constraints(GEMMINI_ARCH, strict=False),
              constraints_from_list([{"target": "L", "type": "utilization", "min": 0.25},
                                     {"target": "L", "type": "spatial", "factors": "C>=2",
                                      "min_utilization": 0.5}], "u.yaml")):
        lst = constraints_to_list(c)
        assert _strip(constraints_from_list(lst, "rt", c.strict)) == _strip(c)
        dump_yaml({"mapspace_constraints": lst}, tmp_path / "c.yaml")
        assert _strip(load_constraints(tmp_path / "c.yaml")) == _strip(c)


# ------------------------------------------------------------------ bad input
def _bad(tmp_path: Path, lst: list, key: str, words: str) -> None:
    path = tmp_path / "bad.yaml"
    dump_yaml({"mapspace_constraints": lst}, path)
    with pytest.raises(MapspaceError) as e:
        load_constraints(path)
    assert e.value.where == str(path) and e.value.key == key, str(e.value)
    assert words in str(e.value)


def test_bad_inputs(tmp_path: Path) -> None:
    sp = {"target": "Scratchpad", "type": "spatial"}
    _bad(tmp_path, [{**sp, "factors": "C=<1"}], "mapspace_constraints[0].factors",
         "malformed factor term 'C=<1'")
    _bad(tmp_path, [{**sp, "factors": "C=1.5"}], "mapspace_constraints[0].factors",
         "not an integer")
    _bad(tmp_path, [{**sp, "factors": "C=0"}], "mapspace_constraints[0].factors", "positive")
    _bad(tmp_path, [{**sp, "factors": ["C=1", "M=2", "C<=4"]}],
         "mapspace_constraints[0].factors[2]", "'C' is bounded twice")
    _bad(tmp_path, [sp, {"target": "DRAM", "type": "temporary"}],
         "mapspace_constraints[1].type", "unknown constraint type 'temporary'")
    _bad(tmp_path, [{"target": "DRAM", "type": "bypass", "keep": ["Inputs"],
                     "bypass": ["Inputs"]}], "mapspace_constraints[0].bypass",
         "'Inputs' is both kept and bypassed")
    _bad(tmp_path, [{"target": "DRAM", "type": "bypass", "keep": ["Inputs"]},
                    {"target": "DRAM", "type": "datatype", "bypass": ["Inputs"]}],
         "mapspace_constraints[1].bypass", "both kept and bypassed at level 'DRAM'")
    _bad(tmp_path, [{**sp, "split": -1}], "mapspace_constraints[0].split", "split")
    _bad(tmp_path, [{"target": "DRAM", "type": "utilization", "min": 2}],
         "mapspace_constraints[0].min", "between 0 and 1")
    _bad(tmp_path, [{"type": "temporal"}], "mapspace_constraints[0].target", "level name")


def test_resolve_errors() -> None:
    arch, prob = load_target("gemmini"), workload("bert-base/ffn1")
    c = constraints_from_list([{"target": "DRAM", "type": "temporal"},
                               {"target": "GlobalBuffer", "type": "temporal"}], "u.yaml")
    with pytest.raises(MapspaceError) as e:
        resolve(c, prob, arch)
    assert e.value.where == "u.yaml" and e.value.key == "[1].target"
    assert "DRAM, Scratchpad, Accumulator, Registers" in str(e.value)
    c = constraints_from_list({"constraints": [{"target": "DRAM", "type": "bypass",
                                                "keep": ["Psums"]}]}, "t.yaml")
    with pytest.raises(MapspaceError) as e:
        resolve(c, prob, arch)
    assert e.value.key == "constraints[0].keep" and "unknown tensor 'Psums'" in str(e.value)
    assert resolve(replace(c, strict=False), prob, arch).directives[0].keep == ()
    c = constraints_from_list([{"target": "Registers", "type": "spatial", "factors": "C=2"}],
                              "s.yaml")
    with pytest.raises(MapspaceError) as e:
        resolve(c, prob, arch)
    assert e.value.key == "[0].factors" and "no spatial fan-out" in str(e.value)
    ok = constraints_from_list([{"target": "Registers", "type": "spatial", "factors": "C<=2"},
                                {"target": "Scratchpad", "type": "spatial",
                                 "factors": "M=99999"}], "s.yaml")
    assert _one(resolve(ok, prob, arch), "Scratchpad", "spatial").factors == (
        FactorBound("M", "=", 3072),)                    # clamped to the size, as Timeloop


# ------------------------------------------------------------------ target defaults
@pytest.mark.parametrize("target", list(TARGETS))
@pytest.mark.parametrize("wl", ["bert-base/ffn1", "bert-base/attn-scores", "resnet50/conv3_x"])
def test_default_constraints_resolve(target: str, wl: str) -> None:
    c = default_constraints(target)
    assert not c.strict and c.directives
    prob, arch = workload(wl), load_target(target)
    r = resolve(c, prob, arch)
    for d in r.directives:
        assert d.target in arch.level_names
        assert all(f.dim in prob.dims for f in d.factors)
        assert set(d.keep) | set(d.bypass) <= set(prob.tensor_names)
    dummies = [lv.name for lv in arch.levels if lv.is_dummy]
    for name in dummies:
        (d,) = r.on(name, "datatype")
        assert d.keep == () and set(d.bypass) == set(prob.tensor_names)


def test_eyeriss_defaults_match_the_conformance_mapping(shared_dir: Path) -> None:
    import yaml
    inp = yaml.safe_load((shared_dir / "conformance/ex_eyeriss_like/input.yaml").read_text())
    want = {m["target"]: set(m["keep"]) for m in inp["mapping"] if m["type"] == "datatype"}
    got = {d.target: set(d.keep) for d in default_constraints("eyeriss-like").directives}
    assert got == want


@pytest.mark.parametrize("case", GEMMINI_CASES)
def test_gemmini_reference_mappings_satisfy_the_defaults(shared_dir: Path, case: str) -> None:
    arch = load_arch(shared_dir / "gemmini/arch.yaml", shared_dir / "gemmini/ERT.yaml")
    prob = load_problem(shared_dir / "gemmini" / (
        "prob_bert_ffn1.yaml" if case.startswith("bert") else "prob_resnet50_conv3x.yaml"))
    m = load_mapping(shared_dir / f"gemmini/cases/{case}/mapping.yaml", prob, arch)
    assert satisfies(default_constraints("gemmini"), prob, arch, m).tolist() == [True]


# ------------------------------------------------------------------ satisfies
def _batch(prob, arch, B: int = 1) -> MappingBatch:
    L, D, T = arch.num_levels, prob.num_dims, prob.num_tensors
    t = np.ones((B, L, D), dtype=np.int64)
    t[:, 0] = prob.sizes
    return MappingBatch(temporal=t, spatial=np.ones((B, L, D), dtype=np.int64),
                        order=np.tile(np.arange(D), (B, L, 1)),
                        spatial_x=np.ones((B, L, D), dtype=bool),
                        keep=np.ones((B, L, T), dtype=bool))


def _with(b: MappingBatch, **arrays: np.ndarray) -> MappingBatch:
    return replace(b, **arrays)


def test_satisfies_rules() -> None:
    arch = load_target("gemmini")
    prob = matmul(64, 64, 64)                           # dims C M R S N P Q
    C, M, P = (prob.dims.index(d) for d in "CMP")
    b = _batch(prob, arch, 4)
    chk = lambda lst, batch: satisfies(constraints_from_list(lst, "t"), prob, arch,  # noqa: E731
                                       batch).tolist()
    # factor bounds, temporal and spatial
    t, s = b.temporal.copy(), b.spatial.copy()
    s[1, 2, C], t[1, 0, C] = 16, 4                      # row 1: Accumulator spatial C16
    s[2, 2, C], t[2, 0, C] = 32, 2
    s[3, 1, M], t[3, 0, M] = 4, 16
    bb = _with(b, temporal=t, spatial=s)
    assert chk([{"target": "Accumulator", "type": "spatial", "factors": "C<=16"}], bb) == [
        True, True, False, True]
    assert chk([{"target": "Accumulator", "type": "spatial", "factors": "C>=16"}], bb) == [
        False, True, True, False]
    assert chk([{"target": "Scratchpad", "type": "spatial", "factors": "M=1"}], bb) == [
        True, True, True, False]
    assert chk([{"target": "DRAM", "type": "temporal", "factors": "C=64"}], bb) == [
        True, False, False, True]
    # permutation: listed non-unit loops innermost, in order; unit loops ignored
    t, o = b.temporal.copy(), b.order.copy()
    t[:, 0] = 1
    t[:, 0, [C, M, P]] = 64
    o[0, 0] = [P, C, M] + [d for d in range(7) if d not in (P, C, M)]   # P C M ...
    o[1, 0] = [0 + 2, P, 3, C, M, 4, 6]                 # R P S C M N Q: units between
    o[2, 0] = [C, P, M] + [d for d in range(7) if d not in (P, C, M)]   # C before P
    o[3, 0] = [P, M, C] + [d for d in range(7) if d not in (P, C, M)]   # M before C
    perm = [{"target": "DRAM", "type": "temporal", "permutation": "PC"}]
    assert chk(perm, _with(b, temporal=t, order=o)) == [True, True, False, False]
    # split: Accumulator C (and M) along X/Y
    s, x = b.spatial.copy(), b.spatial_x.copy()
    s[:, 2, C] = 4
    s[:, 2, M] = 2
    x[0, 2] = False                                     # both Y
    x[1, 2, C] = True                                   # C X, M Y
    x[2, 2] = True                                      # both X
    x[3, 2, M] = False
    x[3, 2, C] = True
    x[1, 2, M] = False
    bs = _with(b, spatial=s, spatial_x=x)
    assert chk([{"target": "Accumulator", "type": "spatial", "split": 0}], bs) == [
        True, False, False, False]
    assert chk([{"target": "Accumulator", "type": "spatial", "permutation": "CM",
                 "split": 1}], bs) == [False, True, False, True]
    assert chk([{"target": "Accumulator", "type": "spatial", "permutation": "C",
                 "split": 1}], bs) == [False, True, False, True]     # unlisted M -> Y
    assert chk([{"target": "Accumulator", "type": "spatial", "split": 1}], bs) == [
        True, True, False, True]                        # one X slot, six Y slots
    # keep / bypass
    k = b.keep.copy()
    k[1, 1, prob.tensor_index("Outputs")] = False
    assert chk([{"target": "Scratchpad", "type": "bypass", "bypass": ["Outputs"]}],
               _with(b, keep=k)) == [False, True, False, False]
    assert chk([{"target": "Scratchpad", "type": "bypass", "keep": ["Outputs"]}],
               _with(b, keep=k)) == [True, False, True, True]
    # utilization: Accumulator fan-out is 16 (Y); MACs are 256
    s = b.spatial.copy()
    s[0, 2, C], s[1, 2, C], s[2, 2, C] = 4, 8, 16
    s[2, 1, M] = 16
    bu = _with(b, spatial=s)
    assert chk([{"target": "Accumulator", "type": "utilization", "min": 0.5}], bu) == [
        False, True, True, False]
    assert chk([{"target": "MACC", "type": "utilization", "min": 1.0}], bu) == [
        False, False, True, False]
    assert chk([{"target": "Accumulator", "type": "spatial", "min_utilization": 0.25}],
               bu) == [True, True, True, False]
