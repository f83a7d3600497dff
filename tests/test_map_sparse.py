"""``mapspace map --sparse-opt``: the search runs under Timeloop's sparse model, its figures
are those ``evaluate --sparse-opt`` gives the mapping it writes, and an exhaustive search
is never worse than the shared case's own (Timeloop reference) mapping; and the mapspace
keeps every tensor at the outermost level, as Timeloop's default mapspace does (its bypass
strings are ``X...X1``, ``src/mapping/constraints.cpp``), so every mapping a search writes
loads back."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

REF = Path(__file__).resolve().parents[2] / "shared/reference/sparseloop"


def _cli(*args):
    from click.testing import CliRunner

    from compiler.cli import main

    return CliRunner().invoke(main, [str(a) for a in args])


def _inputs(d: Path) -> list:
    return ["--arch", d / "arch.yaml", "--ert", d / "ERT.yaml", "--problem", d / "problem.yaml"]


@pytest.fixture()
def case() -> Path:
    d = REF / "spmspm_UOPCP_skipping"
    if not d.is_dir():
        pytest.skip(f"Sparseloop reference cases not found at {REF}")
    return d


def test_map_sparse_exhaustive_beats_reference_mapping(case: Path, tmp_path: Path) -> None:
    out = tmp_path / "best.yaml"
    r = _cli("map", *_inputs(case), "--sparse-opt", case / "sparse_opt.yaml",
             "--strategy", "exhaustive", "--out", out, "--json")
    assert r.exit_code == 0, r.output
    got = json.loads(r.output)
    assert "sparse" in got and got["dense"]["cycles"] >= got["cycles"]
    assert got["cost"] == "sparseloop"
    again = _cli("evaluate", *_inputs(case), "--mapping", out, "--sparse-opt",
                 case / "sparse_opt.yaml", "--json")
    assert again.exit_code == 0, again.output
    ev = json.loads(again.output)
    assert (ev["cycles"], ev["energy_pJ"]) == (got["cycles"], got["energy_pJ"])
    ref = _cli("evaluate", *_inputs(case), "--mapping", case / "mapping.yaml",
               "--sparse-opt", case / "sparse_opt.yaml", "--json")
    assert ref.exit_code == 0, ref.output
    assert got["edp"] <= json.loads(ref.output)["edp"]


def test_map_sparse_searches_the_sparse_objective(case: Path) -> None:
    """At 25 % density the sparse model's best mapping differs in EDP from what the dense
    search picks, and is at least as good under the sparse model."""
    args = [*_inputs(case), "--strategy", "exhaustive", "--json"]
    sp = json.loads(_cli("map", *args, "--sparse-opt", case / "sparse_opt.yaml").output)
    dense = _cli("map", *args)
    assert dense.exit_code == 0, dense.output
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        m = Path(tmp) / "dense.yaml"
        m.write_text(json.loads(dense.output)["best_mapping_yaml"])
        r = _cli("evaluate", *_inputs(case), "--mapping", m, "--sparse-opt",
                 case / "sparse_opt.yaml", "--json")
    assert r.exit_code == 0, r.output
    assert sp["edp"] <= json.loads(r.output)["edp"]


def test_map_sparse_bad_inputs(case: Path, tmp_path: Path) -> None:
    bad = tmp_path / "s.yaml"
    bad.write_text("sparse_optimizations:\n  targets:\n  - name: Buffer\n"
                   "    representation_format:\n      data_spaces:\n      - name: A\n"
                   "        ranks:\n        - format: XYZ\n")
    r = _cli("map", *_inputs(case), "--sparse-opt", bad, "--budget", "100")
    assert r.exit_code == 2 and len(r.output.strip().splitlines()) == 1, r.output
    assert "XYZ" in r.output and str(bad) in r.output
    r = _cli("map", *_inputs(case), "--sparse-opt", case / "sparse_opt.yaml", "--cost",
             "learned:/nonexistent.skops", "--budget", "100")
    assert r.exit_code == 2 and len(r.output.strip().splitlines()) == 1, r.output
    for cmd in (["map", *_inputs(case), "--budget", "50"],
                ["evaluate", *_inputs(case), "--mapping", case / "mapping.yaml"]):
        r = _cli(*cmd, "--sparse-opt", "")                 # not silently a dense run
        assert r.exit_code == 2 and "--sparse-opt: '' is not a file path" in r.output, \
            r.output
    before = (case / "sparse_opt.yaml").read_bytes()
    r = _cli("map", *_inputs(case), "--sparse-opt", case / "sparse_opt.yaml", "--out",
             case / "sparse_opt.yaml", "--budget", "100")
    assert r.exit_code == 2 and "--sparse-opt" in r.output, r.output
    assert (case / "sparse_opt.yaml").read_bytes() == before


def test_outermost_level_keeps_every_tensor(case: Path, tmp_path: Path) -> None:
    from mapspace.arch_yaml import load_arch
    from mapspace.constraints import Constraints
    from mapspace.constraints_yaml import constraints_from_list
    from mapspace.errors import MapspaceError
    from mapspace.problem_yaml import load_problem
    from mapspace.space import Mapspace

    a = load_arch(case / "arch.yaml", case / "ERT.yaml")
    p = load_problem(case / "problem.yaml")
    space = Mapspace(p, a, Constraints())
    keep = space.decode(space.draw(2000, 3)).keep
    assert keep[:, 0].all()
    assert not keep[:, 1:].all()                      # the other levels still choose
    out = tmp_path / "m.yaml"
    r = _cli("map", *_inputs(case), "--budget", "3000", "--out", out)
    assert r.exit_code == 0, r.output
    assert _cli("evaluate", *_inputs(case), "--mapping", out).exit_code == 0
    cons = constraints_from_list(
        [{"target": a.level_names[0], "type": "datatype", "keep": [], "bypass": ["A"]}], "c")
    with pytest.raises(MapspaceError, match="cannot bypass 'A'"):
        _ = Mapspace(p, a, cons).keep_fixed
    np.testing.assert_array_equal(Mapspace(p, a, Constraints()).keep_fixed[1][0], True)


def test_a_file_without_sparse_optimizations_is_refused(case: Path) -> None:
    """An architecture file given as --sparse-opt is an error naming its first key, not an
    empty specification (which would print dense figures as sparse ones)."""
    for cmd in (["map", *_inputs(case), "--budget", "50"],
                ["evaluate", *_inputs(case), "--mapping", case / "mapping.yaml"]):
        r = _cli(*cmd, "--sparse-opt", case / "arch.yaml")
        assert r.exit_code == 2 and len(r.output.strip().splitlines()) == 1, r.output
        assert "unknown key 'architecture'" in r.output and "arch.yaml" in r.output


def test_block_size_outside_the_vector_width_table(case: Path, tmp_path: Path) -> None:
    """A compressed tile at a level whose block size Timeloop's vector-width table lacks
    (Timeloop's ``.at`` throws) is an invalid mapping with the level named: one line and
    exit 2 from ``evaluate``, and the same reason from the batched path as from the
    reference (it was a KeyError traceback)."""
    from cost_models.sparseloop import evaluate_sparseloop
    from mapspace.arch_yaml import load_arch
    from mapspace.mapping_yaml import load_mapping
    from mapspace.problem_yaml import load_problem
    from mapspace.sparse_yaml import (
        SparseSpec,
        densities_from_dict,
        load_sparse_arch,
        load_sparse_spec,
    )
    from mapspace.yamlio import load_yaml

    for f in ("ERT.yaml", "problem.yaml", "mapping.yaml", "sparse_opt.yaml"):
        (tmp_path / f).write_bytes((case / f).read_bytes())
    text = (case / "arch.yaml").read_text()
    assert text.count("width: 32\n") == 1                 # BackingStorage: blocks of 4
    (tmp_path / "arch.yaml").write_text(text.replace("width: 32\n", "width: 512\n"))
    r = _cli("evaluate", *_inputs(tmp_path), "--mapping", tmp_path / "mapping.yaml",
             "--sparse-opt", tmp_path / "sparse_opt.yaml")
    assert r.exit_code == 2 and len(r.output.strip().splitlines()) == 1, r.output
    assert "BackingStorage" in r.output and "blocks of 64" in r.output
    a = load_arch(tmp_path / "arch.yaml", tmp_path / "ERT.yaml")
    p = load_problem(tmp_path / "problem.yaml")
    m = load_mapping(tmp_path / "mapping.yaml", p, a)
    full = load_sparse_spec(tmp_path / "sparse_opt.yaml", p, a)
    spec = SparseSpec(formats=full.formats, compute=full.compute)    # the batched path
    dens = densities_from_dict(load_yaml(tmp_path / "problem.yaml"), p, "p")
    sa = load_sparse_arch(tmp_path / "arch.yaml", a, tmp_path / "ERT.yaml")
    fast = evaluate_sparseloop(p, a, m, spec, dens, sa)
    ref = evaluate_sparseloop(p, a, m, spec, dens, sa, fast=False)
    assert not fast.valid[0] and fast.reason[0] == ref.reason[0]
    assert "blocks of 64" in fast.reason[0]
