"""The ``mapspace`` command line: evaluate (every input form), targets, workloads, and the
one-line, exit-code-2 errors for bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from compiler.cli import main

sys.path.insert(0, str(Path(__file__).resolve().parent))
from timeloop_stats import parse_stats  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
GOOD = ROOT / "targets/gemmini/examples/bert_ffn1_good.yaml"
BERT_PROB = ROOT / "targets/gemmini/problems/prob_bert_ffn1.yaml"
TARGET_ARGS = ["evaluate", "--target", "gemmini", "--workload", "bert-base/ffn1"]


def run(*args: str):
    return CliRunner().invoke(main, [str(a) for a in args])


def _bert_00(shared: Path) -> dict:
    cases = json.loads((shared / "gemmini/cases.json").read_text())["cases"]
    return next(c for c in cases if c["case_id"] == "bert_00_mapperbest")


def _component_energy(case: dict) -> float:
    """Timeloop's per-tensor energies + the MAC energy, as recorded in cases.json."""
    total = 0.0
    for lv in case["per_level"].values():
        if "Computes (total)" in lv["level_stats"]:
            total += lv["level_stats"]["Energy (total)"]
        total += sum(d["Energy (total)"] for d in lv["per_dataspace"].values())
    return total


# ---------------------------------------------------------------------- evaluate
def test_evaluate_target_workload_json(shared_dir: Path) -> None:
    r = run(*TARGET_ARGS, "--mapping", GOOD, "--json")
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert {"cycles", "energy_pJ", "edp", "utilization", "levels"} <= set(out)
    ref = _bert_00(shared_dir)
    assert out["cycles"] == 4718592 == ref["cycles"]
    # cases.json's energy_pJ is fJ/compute (printed to 0.01 fJ) x computes: ~2 ppm of
    # rounding; the sum of the per-component energies it records is exact to 0.01 pJ each.
    assert out["energy_pJ"] == pytest.approx(ref["energy_pJ"], rel=1e-5)
    assert out["energy_pJ"] == pytest.approx(_component_energy(ref), rel=1e-6)
    assert out["utilization"] == pytest.approx(ref["utilization"], abs=5e-5)
    assert out["edp"] == pytest.approx(out["energy_pJ"] * 1e-12 * out["cycles"], rel=1e-12)
    assert [lv["name"] for lv in out["levels"]] == ["DRAM", "Scratchpad", "Accumulator",
                                                   "Registers"]
    acc = next(lv for lv in out["levels"] if lv["name"] == "Accumulator")
    want = ref["per_level"]["Accumulator"]["per_dataspace"]["Outputs"]
    assert list(acc["tensors"]) == ["Outputs"] and acc["instances"] == 16
    assert acc["tensors"]["Outputs"]["reads"] == want["Scalar reads (per-instance)"]
    assert acc["tensors"]["Outputs"]["updates"] == want["Scalar updates (per-instance)"]


def test_evaluate_human_output() -> None:
    r = run(*TARGET_ARGS, "--mapping", GOOD)
    assert r.exit_code == 0, r.output
    assert "cycles" in r.stdout and "4,718,592" in r.stdout
    for name in ("DRAM", "Scratchpad", "Accumulator", "Registers"):
        assert name in r.stdout


@pytest.mark.parametrize("case", ["tut_01-model-conv1d-2level_os", "ex_eyeriss_like"])
def test_evaluate_processed_input(shared_dir: Path, case: str) -> None:
    d = shared_dir / "conformance" / case
    r = run("evaluate", "--input", d / "input.yaml", "--ert", d / "ERT.yaml", "--json")
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    s = parse_stats(d / "timeloop-model.stats.txt")
    assert out["cycles"] == s.summary.cycles
    ref_pj = s.summary.fj_per_compute["Total"] * s.summary.computes / 1000
    assert out["energy_pJ"] == pytest.approx(ref_pj, rel=1e-4)
    # Dummy levels are listed but keep nothing; every other level matches the stats file.
    listed = {lv["name"]: lv for lv in out["levels"] if lv["tensors"]}
    assert set(listed) == set(s.levels)


def test_evaluate_arch_ert_problem_mapping(shared_dir: Path) -> None:
    g = shared_dir / "gemmini"
    ref = json.loads((g / "cases.json").read_text())["cases"]
    ref = next(c for c in ref if c["case_id"] == "rn50_02_rand")
    r = run("evaluate", "--arch", g / "arch.yaml", "--ert", g / "ERT.yaml", "--problem",
            g / "prob_resnet50_conv3x.yaml", "--mapping", g / "cases/rn50_02_rand/mapping.yaml",
            "--json")
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert out["cycles"] == ref["cycles"]
    assert out["energy_pJ"] == pytest.approx(ref["energy_pJ"], rel=1e-4)


def test_console_script_subprocess() -> None:
    exe = ROOT / ".venv/bin/mapspace"
    if not exe.is_file():
        pytest.skip(f"console script not installed at {exe}")
    p = subprocess.run([str(exe), *TARGET_ARGS, "--mapping", str(GOOD), "--json"],
                       capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)["cycles"] == 4718592
    bad = subprocess.run([str(exe), "evaluate", "--target", "tpu", "--workload",
                          "bert-base/ffn1", "--mapping", str(GOOD)],
                         capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert bad.returncode == 2 and bad.stdout == ""
    assert bad.stderr.count("\n") == 1 and "Traceback" not in bad.stderr
    assert "'tpu'" in bad.stderr


# ------------------------------------------------------------------ bad input
def _error(r, *must: str) -> str:
    """Exit code 2, nothing on stdout, one line on stderr containing ``must``."""
    assert r.exit_code == 2, (r.exit_code, r.output, r.exception)
    assert r.stdout == ""
    err = r.stderr
    assert err.endswith("\n") and err.count("\n") == 1, err
    assert "Traceback" not in err
    assert err.startswith("mapspace evaluate: error: "), err
    for s in must:
        assert s in err, (s, err)
    return err


def _edit(src: Path, dst: Path, old: str, new: str) -> Path:
    text = src.read_text()
    assert old in text, (old, src)
    dst.write_text(text.replace(old, new, 1))
    return dst


def test_malformed_yaml(tmp_path: Path) -> None:
    f = tmp_path / "broken.yaml"
    f.write_text("mapping:\n  - target: DRAM\n    type: [temporal\n")
    _error(run(*TARGET_ARGS, "--mapping", f), str(f), "malformed YAML", "line")


def test_unknown_dimension_in_mapping(tmp_path: Path) -> None:
    f = _edit(GOOD, tmp_path / "m.yaml", "factors: C1 M96", "factors: X1 M96")
    _error(run(*TARGET_ARGS, "--mapping", f), str(f), "mapping[9].factors", "'X'")


def test_unknown_tensor_in_keep(tmp_path: Path) -> None:
    f = _edit(GOOD, tmp_path / "m.yaml", "keep: [Weights, Inputs]\n", "keep: [Weights, Psums]\n")
    _error(run(*TARGET_ARGS, "--mapping", f), str(f), "mapping[2].keep[1]", "'Psums'")


def test_factors_do_not_multiply_out(tmp_path: Path) -> None:
    f = _edit(GOOD, tmp_path / "m.yaml", "factors: C1 M96", "factors: C2 M96")
    _error(run(*TARGET_ARGS, "--mapping", f), str(f), "mapping", "C: 1536 != 768")


def test_tile_overflows_buffer(tmp_path: Path) -> None:
    """All of C (768) at the Registers level: the weight tile needs 768 words of 1."""
    text = GOOD.read_text()
    for old, new in (("C1 M1 R1 S1 N1 P32", "C768 M1 R1 S1 N1 P32"),
                     ("factors: C16 M1", "factors: C1 M1"), ("factors: C6 M2", "factors: C1 M2"),
                     ("factors: C8 M1", "factors: C1 M1")):
        assert old in text
        text = text.replace(old, new, 1)
    f = tmp_path / "over.yaml"
    f.write_text(text)
    _error(run(*TARGET_ARGS, "--mapping", f), str(f), "Registers", "768", "capacity is 1")


@pytest.mark.parametrize("size", ["-4", "0"])
def test_nonpositive_problem_size(tmp_path: Path, size: str) -> None:
    f = _edit(BERT_PROB, tmp_path / "p.yaml", "M: 3072", f"M: {size}")
    _error(run("evaluate", "--target", "gemmini", "--problem", f, "--mapping", GOOD),
           str(f), "instance.M", size)


def test_missing_file(tmp_path: Path) -> None:
    f = tmp_path / "nope.yaml"
    _error(run(*TARGET_ARGS, "--mapping", f), str(f), "not found")


def test_unknown_target() -> None:
    err = _error(run("evaluate", "--target", "tpu", "--workload", "bert-base/ffn1",
                     "--mapping", GOOD), "'tpu'")
    assert "gemmini" in err and "eyeriss-like" in err


def test_unknown_workload() -> None:
    err = _error(run("evaluate", "--target", "gemmini", "--workload", "bert/zzz",
                     "--mapping", GOOD), "'bert/zzz'")
    assert "bert-base/ffn1" in err and "resnet50/conv3_x" in err


def test_no_mapping() -> None:
    _error(run(*TARGET_ARGS), "--mapping")


# ------------------------------------------------------------- targets/workloads
def test_targets_json() -> None:
    r = run("targets", "--json")
    assert r.exit_code == 0, r.output
    infos = {t["name"]: t for t in json.loads(r.stdout)}
    assert {"gemmini", "gemmini-acc128", "gemmini-acc256", "eyeriss-like",
            "simba-like"} <= set(infos)
    levels = {lv["name"]: lv for lv in infos["gemmini"]["levels"]}
    assert levels["Scratchpad"]["capacity_words"] == 262144
    assert (levels["Accumulator"]["instances"], levels["Accumulator"]["capacity_words"]) == (
        16, 1024)
    assert levels["DRAM"]["capacity_words"] is None
    assert infos["gemmini"]["pes"] == 256


def test_targets_table() -> None:
    r = run("targets")
    assert r.exit_code == 0 and "gemmini-acc256" in r.stdout and "simba-like" in r.stdout


def test_workloads_json() -> None:
    r = run("workloads", "--json")
    assert r.exit_code == 0, r.output
    names = [w["name"] for w in json.loads(r.stdout)]
    assert "bert-base/ffn1" in names and "resnet50/conv3_x" in names
    assert len(names) == len(set(names))
