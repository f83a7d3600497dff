"""Issue 13: searches stop on a budget by default (same seed and budget, same report), the
default search reaches the shipped best-known EDPs, and the prime-factor moves of the
default strategy are exactly the one-prime moves between two slots."""

from __future__ import annotations

import inspect
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import yaml
from click.testing import CliRunner

from compiler.cli import main
from compiler.pipeline import compile_model, distinct_spaces
from cost_models import evaluate
from cost_models.search import DEFAULT_BUDGET, DEFAULT_STRATEGY
from mapspace import matmul
from mapspace.mapping_yaml import mapping_from_list
from mapspace.naive_random import prime_factors
from mapspace.search.operators import local_moves
from mapspace.space import Mapspace
from targets import default_constraints, load_target

BEST_KNOWN = Path(__file__).resolve().parents[1] / "benchmarks" / "data" / "best_known.yaml"


def _compile_cli(out: Path, *extra: str):
    return CliRunner().invoke(main, ["compile", "bert-base", "--seq", "32", "--budget", "800",
                                     "--out", str(out), "--json", *extra])


def test_compile_twice_gives_bit_identical_reports(tmp_path: Path):
    a, b = tmp_path / "a", tmp_path / "b"
    for out in (a, b):
        res = _compile_cli(out)
        assert res.exit_code == 0, res.output
    files = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
    assert files and files == sorted(p.relative_to(b) for p in b.rglob("*") if p.is_file())
    for f in files:
        assert (a / f).read_bytes() == (b / f).read_bytes(), f


def test_searching_commands_default_to_a_budget():
    # no wall-clock limit unless asked for: compile_model and every CLI command that searches
    assert inspect.signature(compile_model).parameters["time_per_op"].default is None
    for cmd, key in (("compile", "time_per_op"), ("map", "time_limit"), ("emit", "time_limit")):
        opt = {p.name: p for p in main.commands[cmd].params}[key]
        assert not isinstance(opt.default, int | float), (cmd, opt.default)  # None or unset
    # and the search then spends exactly the default budget on every distinct shape
    r = compile_model("bert-base", "gemmini", seq=32)
    assert r.evaluations == DEFAULT_BUDGET * len({row.shape_group for row in r.rows
                                                  if not row.on_host})


def test_renamed_strategy_is_refused_with_its_new_name(tmp_path: Path):
    res = _compile_cli(tmp_path / "x", "--strategy", "optimal")
    assert res.exit_code == 2
    assert "'optimal' was renamed 'cpsat'" in res.output and "Traceback" not in res.output


def test_default_compile_of_bert_base_is_within_1pct_of_best_known():
    table = yaml.safe_load(BEST_KNOWN.read_text())
    best = {r["op"]: r for r in table["layers"] if r["model"] == "bert-base"}
    r = compile_model("bert-base", "gemmini")               # the defaults: seq 512, budget
    searched = {row.searched_as: row for row in r.rows if not row.on_host}
    assert set(searched) == set(best)
    for op, row in searched.items():
        ref = best[op]
        assert {k: v for k, v in ref["sizes"].items() if v > 1} == {
            k: int(v) for k, v in (x.split("=") for x in row.problem.split())}, op
        assert row.edp <= 1.01 * ref["edp"], (op, DEFAULT_STRATEGY, row.edp, ref["edp"])


def test_best_known_table_matches_the_model():
    """Every row of the shipped table names a distinct shape compile searches, and its
    mapping is valid in that shape's space and prices at the recorded EDP and cycles (a
    cost-model change that moves them means the table must be regenerated)."""
    table = yaml.safe_load(BEST_KNOWN.read_text())
    rows = {(r["model"], r["op"]): r for r in table["layers"]}
    seen = set()
    for model in {m for m, _ in rows}:
        for names, space in distinct_spaces(model, "gemmini"):
            r = rows[(model, names[0])]
            seen.add((model, names[0]))
            assert r["sizes"] == dict(zip(space.problem.dims, space.problem.sizes, strict=True))
            m = mapping_from_list(r["mapping"], space.problem, space.arch, str(BEST_KNOWN))
            ev = evaluate(space.problem, space.arch, m)
            assert ev.valid[0] and space.screen(m)[0][0], (model, names[0])
            assert float(ev.cost.edp[0]) == pytest.approx(r["edp"], rel=1e-12)
            assert int(ev.cost.cycles[0]) == r["cycles"]
    assert seen == set(rows)


def _brute_moves(table: np.ndarray, size: int) -> list[set[int]]:
    """Per row, the rows equal to it but for one prime moved from one slot to another."""
    index = {tuple(r): i for i, r in enumerate(table.tolist())}
    out = []
    for r in table.tolist():
        found = set()
        for p in set(prime_factors(size)):
            for a in range(len(r)):
                for b in range(len(r)):
                    if a != b and r[a] % p == 0:
                        q = list(r)
                        q[a] //= p
                        q[b] *= p
                        if tuple(q) in index:
                            found.add(index[tuple(q)])
        out.append(found)
    return out


@pytest.mark.parametrize("shape", [(64, 48, 36), (12, 96, 30)])
def test_local_moves_are_exactly_the_one_prime_moves(shape):
    p = matmul(*shape)
    space = Mapspace(p, load_target("gemmini"), default_constraints("gemmini"))
    moves = local_moves(space)
    for d, (table, m) in enumerate(zip(space.tables, moves, strict=True)):
        want = _brute_moves(table, p.sizes[d])
        got = [set(row[row >= 0].tolist()) for row in m]
        assert got == want, p.dims[d]
        # no row listed twice, valid entries first
        for row in m:
            k = int((row >= 0).sum())
            assert (row[:k] >= 0).all() and (row[k:] == -1).all()
            assert max(Counter(row[:k].tolist()).values(), default=1) == 1
