"""Mapping YAML: decoding Timeloop directives, round trips, and clear errors."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from mapspace import MapspaceError
from mapspace.arch_yaml import load_arch
from mapspace.mapping_yaml import load_mapping, mapping_from_list, mapping_to_list
from mapspace.problem_yaml import load_problem
from mapspace.yamlio import dump_yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from timeloop_stats import parse_stats  # noqa: E402

_REF = Path(__file__).resolve().parents[2] / "shared/reference/timeloop"
CONFORMANCE = sorted(p.name for p in (_REF / "conformance").glob("*") if p.is_dir())
GEMMINI_CASES = sorted(p.name for p in (_REF / "gemmini/cases").glob("*") if p.is_dir())


def _gemmini(shared_dir: Path, case: str):
    arch = load_arch(shared_dir / "gemmini/arch.yaml", shared_dir / "gemmini/ERT.yaml")
    prob = "prob_bert_ffn1.yaml" if case.startswith("bert") else "prob_resnet50_conv3x.yaml"
    return load_problem(shared_dir / "gemmini" / prob), arch


def test_rn50_00_decodes_to_the_written_factors(shared_dir: Path) -> None:
    p, a = _gemmini(shared_dir, "rn50")
    m = load_mapping(shared_dir / "gemmini/cases/rn50_00_mapperbest/mapping.yaml", p, a)
    assert len(m) == 1
    #                 C  M  R  S  N  P  Q   (levels outermost first)
    expect_t = [[1, 8, 1, 1, 1, 1, 1],    # DRAM
                [2, 1, 3, 1, 1, 1, 1],    # Scratchpad
                [4, 1, 1, 3, 1, 2, 14],   # Accumulator
                [1, 1, 1, 1, 1, 14, 2]]   # Registers
    expect_s = [[1, 1, 1, 1, 1, 1, 1],
                [1, 16, 1, 1, 1, 1, 1],   # Scratchpad -> 16 Accumulator columns over M
                [16, 1, 1, 1, 1, 1, 1],   # Accumulator -> 16 rows over C
                [1, 1, 1, 1, 1, 1, 1]]
    np.testing.assert_array_equal(m.temporal[0], expect_t)
    np.testing.assert_array_equal(m.spatial[0], expect_s)
    assert (m.factors[0].prod(axis=0) == p.sizes).all()
    # split 1 at Scratchpad (permutation MCRSNPQ): M along X; split 0 at Accumulator: all Y.
    assert m.spatial_x[0, 1, p.dim_index("M")] and not m.spatial_x[0, 1, p.dim_index("C")]
    assert not m.spatial_x[0, 2].any()
    # Registers permutation PQCMRSN is innermost first.
    assert [p.dims[d] for d in m.order[0, 3]] == list("PQCMRSN")
    np.testing.assert_array_equal(m.keep[0], [[1, 1, 1], [1, 1, 0], [0, 0, 1], [1, 0, 0]])


@pytest.mark.parametrize("case", GEMMINI_CASES)
def test_gemmini_cases(shared_dir: Path, case: str, tmp_path: Path) -> None:
    p, a = _gemmini(shared_dir, case)
    d = shared_dir / "gemmini/cases" / case
    m = load_mapping(d / "mapping.yaml", p, a)
    assert (m.factors[0].prod(axis=0) == p.sizes).all()
    stats = parse_stats(d / "timeloop-model.stats.txt")
    assert stats.compute.utilized_instances == int(m.spatial[0].prod())
    dump_yaml({"mapping": mapping_to_list(m, p, a)}, tmp_path / "m.yaml")
    assert load_mapping(tmp_path / "m.yaml", p, a).equals(m).all()
    # the same mapping is recorded in cases.json
    cases = {c["case_id"]: c for c in json.loads((shared_dir / "gemmini/cases.json").read_text())
             ["cases"]}
    import yaml
    assert mapping_from_list(yaml.safe_load(cases[case]["mapping_yaml"]), p, a,
                             "cases.json").equals(m).all()


@pytest.mark.parametrize("case", CONFORMANCE)
def test_conformance_mappings(shared_dir: Path, case: str) -> None:
    d = shared_dir / "conformance" / case
    a = load_arch(d / "input.yaml", d / "ERT.yaml")
    p = load_problem(d / "input.yaml")
    m = load_mapping(d / "input.yaml", p, a)
    assert (m.factors[0].prod(axis=0) == p.sizes).all()
    stats = parse_stats(d / "timeloop-model.stats.txt")
    assert stats.compute.utilized_instances == int(m.spatial[0].prod())
    x, y = m.spatial_xy()
    for lvl in range(a.num_levels):
        fx, fy = a.fanout(lvl)
        assert x[0, lvl] <= fx and y[0, lvl] <= fy, a.levels[lvl].name
    again = mapping_from_list(mapping_to_list(m, p, a), p, a, "round-trip")
    assert again.equals(m).all()


def test_eyeriss_dummies_keep_their_own_spatial_factors(shared_dir: Path) -> None:
    d = shared_dir / "conformance/ex_eyeriss_like"
    a, p = load_arch(d / "input.yaml", d / "ERT.yaml"), load_problem(d / "input.yaml")
    m = load_mapping(d / "input.yaml", p, a)
    glb, col = a.level_index("shared_glb"), a.level_index("inter_PE_column_spatial")
    pe = a.level_index("inter_PE_spatial")
    assert (m.spatial[0, glb] == 1).all()
    sp_col = dict(zip(p.dims, m.spatial[0, col], strict=True))
    sp_pe = dict(zip(p.dims, m.spatial[0, pe], strict=True))
    assert sp_col["Q"] == 14 and m.spatial[0, col].prod() == 14
    assert (sp_pe["C"], sp_pe["S"]) == (3, 3) and m.spatial[0, pe].prod() == 9
    x, y = m.spatial_xy()
    assert (x[0, col], y[0, col]) == (14, 1) and (x[0, pe], y[0, pe]) == (1, 9)
    assert not m.keep[0, col].any() and not m.keep[0, pe].any()


def test_dummy_without_datatype_directive_keeps_nothing(shared_dir: Path) -> None:
    p, a = _tut(shared_dir)
    dummy = a.level_index("inter_PE_spatial")
    assert a.levels[dummy].is_dummy
    m = mapping_from_list([], p, a, "m.yaml", check_products=False)
    assert not m.keep[0, dummy].any()
    real = [not lv.is_dummy for lv in a.levels]
    assert m.keep[0, real].all()  # real levels keep everything by default
    m = mapping_from_list([{"target": "inter_PE_spatial", "type": "datatype",
                            "keep": ["Inputs"]}], p, a, "m.yaml", check_products=False)
    assert [p.tensor_names[t] for t in np.flatnonzero(m.keep[0, dummy])] == ["Inputs"]


def _tut(shared_dir: Path):
    d = shared_dir / "conformance/tut_04-model-conv1d+oc-3levelspatial_kp"
    return load_problem(d / "input.yaml"), load_arch(d / "input.yaml", d / "ERT.yaml")


def test_partial_permutation_and_defaults(shared_dir: Path) -> None:
    p, a = _tut(shared_dir)
    lst = [{"target": "GlobalBuffer", "type": "temporal", "factors": "C=32 K=32 R=3 P=0",
            "permutation": "R"},
           {"target": "RegisterFile", "type": "datatype", "bypass": ["Inputs"]}]
    m = mapping_from_list(lst, p, a, "m.yaml")
    gb = a.level_index("GlobalBuffer")
    assert [p.dims[d] for d in m.order[0, gb]] == ["R", "C", "K", "P"]  # rest appended outer
    assert m.temporal[0, gb, p.dim_index("P")] == 16  # 0 means the whole dimension
    assert m.keep[0].sum() == 3 * 3 - 1  # only the bypass listed is dropped


def _bad(shared_dir: Path, directive: dict, key: str, words: str) -> None:
    p, a = _tut(shared_dir)
    with pytest.raises(MapspaceError) as e:
        mapping_from_list({"mapping": [directive]}, p, a, "m.yaml", check_products=False)
    assert e.value.where == "m.yaml" and e.value.key == key, str(e.value)
    assert words in str(e.value) and str(e.value).startswith(f"m.yaml: {key}: ")


@pytest.mark.parametrize("directive, key, words", [
    ({"target": "L2", "type": "temporal"}, "mapping[0].target", "unknown target level 'L2'"),
    ({"target": "GlobalBuffer", "type": "temporal", "factors": "Z4"}, "mapping[0].factors",
     "unknown dimension 'Z'"),
    ({"target": "GlobalBuffer", "type": "temporal", "factors": "C1.5"}, "mapping[0].factors",
     "non-integer factor"),
    ({"target": "GlobalBuffer", "type": "temporal", "permutation": "CQ"},
     "mapping[0].permutation", "unknown dimension 'Q'"),
    ({"target": "GlobalBuffer", "type": "datatype", "keep": ["Psums"]}, "mapping[0].keep[0]",
     "unknown tensor 'Psums'"),
    ({"target": "GlobalBuffer", "type": "spatial", "split": -1}, "mapping[0].split",
     "split"),
    ({"target": "GlobalBuffer", "type": "skew"}, "mapping[0].type", "temporal, spatial"),
])
def test_bad_mapping(shared_dir: Path, directive: dict, key: str, words: str) -> None:
    _bad(shared_dir, directive, key, words)


def test_products_must_match(shared_dir: Path) -> None:
    p, a = _tut(shared_dir)
    with pytest.raises(MapspaceError, match="m.yaml: mapping: .*C: 1 != 32"):
        mapping_from_list([], p, a, "m.yaml")


def test_missing_mapping_file(shared_dir: Path, tmp_path: Path) -> None:
    p, a = _tut(shared_dir)
    with pytest.raises(MapspaceError, match="file not found"):
        load_mapping(tmp_path / "m.yaml", p, a)
