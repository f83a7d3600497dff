"""Problem YAML: Timeloop v0.4 / v0.3 / bare forms, round trip, and clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from mapspace import MapspaceError, conv2d
from mapspace.problem_yaml import load_problem, problem_from_dict, problem_to_dict
from mapspace.yamlio import dump_yaml, load_yaml

CONFORMANCE = sorted(
    p.name for p in (Path(__file__).resolve().parents[2] / "shared/reference/timeloop/"
                     "conformance").glob("*") if p.is_dir())


def test_gemmini_problems(shared_dir: Path) -> None:
    bert = load_problem(shared_dir / "gemmini/prob_bert_ffn1.yaml")
    assert bert.dims == ("C", "M", "R", "S", "N", "P", "Q")
    assert bert.sizes == (768, 3072, 1, 1, 1, 512, 1)
    assert bert.tensor_names == ("Weights", "Inputs", "Outputs")
    assert bert.tensors[2].read_write and not bert.tensors[0].read_write
    assert bert.macs == 768 * 3072 * 512
    rn = load_problem(shared_dir / "gemmini/prob_resnet50_conv3x.yaml")
    assert rn.size("P") == 28 and rn.size("R") == 3
    # Inputs window: (P-1)*Wstride + (R-1)*Wdilation + 1 = 30 per side.
    assert rn.tensor_size("Inputs") == 128 * 30 * 30
    # The helper builds the same problem (extras aside).
    assert rn == conv2d(1, 128, 30, 30, 128, 3, 3, name="conv2D")


@pytest.mark.parametrize("case", CONFORMANCE)
def test_conformance_problem_round_trip(shared_dir: Path, case: str) -> None:
    p = load_problem(shared_dir / "conformance" / case / "input.yaml")
    again = problem_from_dict(problem_to_dict(p), "round-trip")
    assert again == p and again.extras == p.extras


def test_extras_and_coefficient_override(shared_dir: Path) -> None:
    p = load_problem(shared_dir / "conformance/ex_simba_like/input.yaml")
    assert dict(p.extras) == {"H": 224, "W": 224, "Hpad": 1, "Wpad": 1}
    assert dict(p.coefficients)["Wstride"] == 2  # instance overrides the default of 1


def test_v03_form_and_densities(tmp_path: Path) -> None:
    d = {"problem": {
        "shape": {"name": "mm", "dimensions": ["M", "N", "K"],
                  "data-spaces": [
                      {"name": "A", "projection": ["M", "K"]},
                      {"name": "B", "projection": [[["K"]], [["N"]]]},
                      {"name": "Z", "projection": [[["M"]], [["N"]]], "read-write": True}]},
        "instance": {"M": 4, "N": 8, "K": 2, "densities": {"A": 0.5, "B": {"density": 0.25}}}}}
    p = problem_from_dict(d, "mm.yaml")
    assert p.sizes == (4, 8, 2) and p.tensors[2].read_write
    assert [t.density for t in p.tensors] == [0.5, 0.25, 1.0]
    dump_yaml(problem_to_dict(p), tmp_path / "p.yaml")
    assert load_problem(tmp_path / "p.yaml") == p
    bare = problem_from_dict(d["problem"], "bare.yaml")
    assert bare == p


def _conv_dict() -> dict:
    return problem_to_dict(conv2d(1, 4, 8, 8, 4, 3, 3))


@pytest.mark.parametrize("mutate, key, words", [
    (lambda d: d["problem"]["shape"]["data_spaces"][0]["projection"].append([["X"]]),
     "problem.shape.data_spaces[0].projection[4][0]", "unknown dimension 'X'"),
    (lambda d: d["problem"]["instance"].update(C=0), "problem.instance.C", "positive integer"),
    (lambda d: d["problem"]["instance"].update(C=2.5), "problem.instance.C", "positive integer"),
    (lambda d: d["problem"]["instance"].pop("M"), "problem.instance", "dimension 'M'"),
    (lambda d: d["problem"]["instance"].update(densities={"Foo": 0.5}),
     "problem.instance.densities.Foo", "unknown tensor 'Foo'"),
    (lambda d: d["problem"].pop("shape"), "problem", "'shape'"),
])
def test_bad_problem(mutate, key: str, words: str) -> None:
    d = _conv_dict()
    mutate(d)
    with pytest.raises(MapspaceError) as e:
        problem_from_dict(d, "bad.yaml")
    assert e.value.where == "bad.yaml" and e.value.key == key
    assert words in str(e.value) and str(e.value).startswith(f"bad.yaml: {key}: ")


def test_missing_and_malformed_files(tmp_path: Path) -> None:
    with pytest.raises(MapspaceError, match="nope.yaml: file not found"):
        load_problem(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("problem:\n  shape: [unclosed\n")
    with pytest.raises(MapspaceError) as e:
        load_yaml(bad)
    assert str(bad) in str(e.value) and "line 3" in str(e.value) and "column" in str(e.value)
