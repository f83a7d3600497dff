"""CLI: ``mapspace explore`` and ``mapspace map`` (happy paths and bad input)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
from click.testing import CliRunner

from compiler.cli import main

BASE = ["--target", "gemmini", "--workload", "bert-base/ffn1"]


def run(*args: str):
    return CliRunner().invoke(main, list(args))


def assert_bad(res, *needles: str) -> None:
    assert res.exit_code == 2, res.output
    err = res.stderr if hasattr(res, "stderr") else res.output
    assert "Traceback" not in err
    lines = [x for x in err.strip().splitlines() if x]
    assert len(lines) == 1, err
    for n in needles:
        assert n in lines[0], (n, lines[0])


def test_explore_writes_parquet_plot_and_json(tmp_path: Path):
    out, plot = tmp_path / "run.parquet", tmp_path / "edp.png"
    res = run("explore", *BASE, "--samples", "2000", "--seed", "0", "--out", str(out),
              "--plot", str(plot), "--json")
    assert res.exit_code == 0, res.output
    s = json.loads(res.stdout)
    for k in ("valid", "seconds", "evals_per_s", "edp_min", "edp_median", "edp_max",
              "spread_orders_of_magnitude", "within_2x_of_best", "best_mapping_yaml"):
        assert k in s
    df = pd.read_parquet(out)
    assert len(df) == s["valid"] == 2000
    assert df["edp"].min() == s["edp_min"] and df["edp"].max() == s["edp_max"]
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    res2 = run("explore", *BASE, "--samples", "2000", "--seed", "0", "--out",
               str(tmp_path / "again.parquet"), "--json")
    again = pd.read_parquet(tmp_path / "again.parquet")
    assert (again["edp"].to_numpy() == df["edp"].to_numpy()).all()
    assert json.loads(res2.stdout)["edp_min"] == s["edp_min"]


def test_explore_human_summary():
    res = run("explore", *BASE, "--samples", "500", "--seed", "1")
    assert res.exit_code == 0, res.output
    assert "valid mappings" in res.stdout and "orders of magnitude" in res.stdout
    assert "mapping:" in res.stdout


def test_explore_bad_sample_counts():
    assert_bad(run("explore", *BASE, "--samples", "0"), "--samples")
    assert_bad(run("explore", *BASE, "--samples", "-5"), "--samples")


def test_explore_unknown_workload_lists_known():
    assert_bad(run("explore", "--target", "gemmini", "--workload", "bert-base/nope",
                   "--samples", "10"), "bert-base/nope", "bert-base/ffn1")


def test_explore_unwritable_output_writes_nothing(tmp_path: Path):
    missing = tmp_path / "no" / "such" / "run.parquet"
    assert_bad(run("explore", *BASE, "--samples", "10", "--out", str(missing)), "--out")
    assert not missing.exists()
    assert_bad(run("explore", *BASE, "--samples", "10", "--out", str(tmp_path)), "--out")
    assert list(tmp_path.iterdir()) == []


def test_explore_constraints_that_empty_the_space(tmp_path: Path):
    c = tmp_path / "c.yaml"
    c.write_text("mapspace_constraints:\n- target: Registers\n  type: temporal\n"
                 "  factors: P=5\n")
    assert_bad(run("explore", *BASE, "--samples", "10", "--constraints", str(c)),
               "P=512", "Registers temporal P=5")


def test_map_random_budget_and_yaml_round_trip(tmp_path: Path):
    from cost_models import evaluate
    from mapspace.mapping_yaml import load_mapping
    from mapspace.workloads import workload
    from targets import load_target

    out = tmp_path / "best.yaml"
    res = run("map", *BASE, "--strategy", "random", "--budget", "3000", "--seed", "2",
              "--out", str(out), "--json")
    assert res.exit_code == 0, res.output
    s = json.loads(res.stdout)
    assert s["evaluations"] == 3000 and s["valid"]
    p, a = workload("bert-base/ffn1"), load_target("gemmini")
    ev = evaluate(p, a, load_mapping(out, p, a))
    assert ev.valid[0]
    assert float(ev.cost.edp[0]) == s["edp"]


def test_map_bad_input():
    assert_bad(run("map", *BASE, "--strategy", "nope", "--budget", "10"), "nope", "random")
    assert_bad(run("map", *BASE, "--budget", "0"), "--budget")
    assert_bad(run("map", *BASE, "--time", "-1"), "--time")
