"""Hostile input files and numbers (issue 12, item 1): validation at the boundary.

Every case runs the command line as a user would (``click.testing.CliRunner`` on
``compiler.cli.main``, or a subprocess where a regression would hang) and asserts: exit
code 2, exactly one line of output ``mapspace <command>: error: ...`` that names the file
and key (or option), no traceback, no file written.  Where a missing input has an honest
default (no energy table), the output says so on every line that depends on it and
``--json`` has ``null``, never NaN.
"""

from __future__ import annotations

import copy
import math
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from mapspace.arch import ActionEnergy, Arch, ComputeUnit, StorageLevel
from mapspace.errors import MapspaceError
from mapspace.problem import bmm, conv2d, matmul

from .helpers import (
    ARCH,
    ERT,
    MAPPING,
    PROBLEM,
    cli,
    onnx_matmul,
    refused,
    refused_nothing_written,
    refused_proc,
    run_py,
    strict_json,
)


def load(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def dump(obj: Any, path: Path) -> Path:
    path.write_text(yaml.safe_dump(obj, sort_keys=False))
    return path


def problem_with(tmp_path: Path, name: str = "p.yaml", **instance: Any) -> Path:
    d = load(PROBLEM)
    d["problem"]["instance"].update(instance)
    return dump(d, tmp_path / name)


EXPLORE = ["explore", "--arch", ARCH, "--ert", ERT, "--samples", 200]


# ============================================================ integers and overflow
def test_size_2_50_is_refused_not_negative_cycles(tmp_path: Path) -> None:
    """C = 2**50 used to explore "successfully" with negative cycles, energy and EDP."""
    p = problem_with(tmp_path, C=2**50)
    out = tmp_path / "o.parquet"
    refused_nothing_written(tmp_path, "explore", [*EXPLORE[1:], "--problem", p, "--out", out],
                            str(p), "problem.instance.C", "1,125,899,906,842,624")


def test_size_2_63_is_refused_at_once(tmp_path: Path) -> None:
    """C = 2**63 used to hang in the divisor enumeration (subprocess: a hang is killed)."""
    p = problem_with(tmp_path, C=2**63)
    t0 = time.perf_counter()
    r = run_py([*EXPLORE, "--problem", p], timeout=120, cwd=tmp_path)
    refused_proc(r, "explore", str(p), "problem.instance.C")
    assert time.perf_counter() - t0 < 60


def test_sizes_whose_product_overflows_int64_are_refused(tmp_path: Path) -> None:
    """Every size alone fits, their MACs (2**61) do not fit the kernels' headroom."""
    p = problem_with(tmp_path, C=2**40, M=2**20, P=2)
    line = refused_nothing_written(tmp_path, "explore", [*EXPLORE[1:], "--problem", p],
                                   str(p), "problem.instance", "2**48")
    assert "too large" in line


@pytest.mark.parametrize("value, found", [(0, "0"), (-3, "-3"), (True, "True"),
                                          (2.5, "2.5"), ("many", "'many'"), (None, "None")])
def test_bad_sizes_are_refused(tmp_path: Path, value: Any, found: str) -> None:
    p = problem_with(tmp_path, C=value)
    refused_nothing_written(tmp_path, "explore", [*EXPLORE[1:], "--problem", p],
                            str(p), "problem.instance.C", found)


@pytest.mark.parametrize("value", [0, -2, 2**50, True])
def test_bad_stride_coefficient_is_refused(tmp_path: Path, value: Any) -> None:
    p = problem_with(tmp_path, Wstride=value)
    refused_nothing_written(tmp_path, "explore", [*EXPLORE[1:], "--problem", p],
                            str(p), "problem.instance.Wstride")


@pytest.mark.parametrize("value", [0, 2**20, True, 1.5])
def test_bad_tensor_bits_are_refused(tmp_path: Path, value: Any) -> None:
    d = load(PROBLEM)
    d["problem"]["shape"]["data_spaces"][0]["bits"] = value
    p = dump(d, tmp_path / "p.yaml")
    refused_nothing_written(tmp_path, "explore", [*EXPLORE[1:], "--problem", p],
                            str(p), "data_spaces[0].bits")


def test_mapping_factor_2_63_is_refused(tmp_path: Path) -> None:
    """A factor of 2**63 used to raise OverflowError (a traceback)."""
    text = MAPPING.read_text().replace("C1 M96 R1 S1 N1 P2 Q1", f"C1 M{2**63} R1 S1 N1 P2 Q1")
    m = tmp_path / "m.yaml"
    m.write_text(text)
    refused_nothing_written(tmp_path, "evaluate", ["--arch", ARCH, "--ert", ERT, "--problem",
                                                   PROBLEM, "--mapping", m],
                            str(m), "mapping[9].factors", "larger than the size of M")


def test_mapping_factors_whose_product_wraps_are_refused(tmp_path: Path) -> None:
    """Factors that each fit int64 but whose product wraps to the size used to pass."""
    text = MAPPING.read_text().replace("C1 M96 R1 S1 N1 P2 Q1", f"C1 M{2**40} R1 S1 N1 P2 Q1")
    m = tmp_path / "m.yaml"
    m.write_text(text)
    refused(cli("evaluate", "--arch", ARCH, "--ert", ERT, "--problem", PROBLEM, "--mapping", m),
            "evaluate", str(m), "factors")


def _arch_with(tmp_path: Path, level: int, **attrs: Any) -> Path:
    d = load(ARCH)
    d["architecture"]["subtree"][0]["local"][level]["attributes"].update(attrs)
    return dump(d, tmp_path / "a.yaml")


@pytest.mark.parametrize("attrs, key", [
    ({"depth": 2**63 - 1}, "local[1]"),             # used to raise OverflowError
    ({"depth": 2**47, "width": 1024}, "local[1]"),   # 2**54 words: past float64's exact range
    ({"depth": 0}, "local[1]"),
    ({"depth": True}, "local[1].attributes.depth"),
    ({"width": 2**40}, "local[1]"),
    ({"read_bandwidth": float("nan")}, "read_bandwidth"),
    ({"read_bandwidth": -4}, "read_bandwidth"),
    ({"read_bandwidth": 1e-30}, "read_bandwidth"),
    ({"write_bandwidth": float("inf")}, "write_bandwidth"),
    ({"multiple-buffering": 0}, "multiple_buffering"),
    ({"multiple-buffering": float("nan")}, "multiple_buffering"),
    ({"meshX": 2**40, "meshY": 1}, "local[1]"),
])
def test_bad_arch_numbers_are_refused(tmp_path: Path, attrs: dict, key: str) -> None:
    a = _arch_with(tmp_path, 1, **attrs)
    refused_nothing_written(tmp_path, "explore", ["--arch", a, "--ert", ERT, "--problem",
                                                  PROBLEM, "--samples", 10], str(a), key)


def test_arch_instance_range_too_large_is_refused(tmp_path: Path) -> None:
    d = load(ARCH)
    local = d["architecture"]["subtree"][0]["local"]
    local[3]["name"] = f"Registers[1..{2**40}]"
    del local[3]["attributes"]["meshX"], local[3]["attributes"]["meshY"]
    a = dump(d, tmp_path / "a.yaml")
    refused_nothing_written(tmp_path, "explore", ["--arch", a, "--ert", ERT, "--problem",
                                                  PROBLEM, "--samples", 10], str(a), "local[3]")


@pytest.mark.parametrize("value", [float("nan"), 0, -1e-9, float("inf"), "soon"])
def test_bad_cycle_seconds_are_refused(tmp_path: Path, value: Any) -> None:
    d = load(ARCH)
    d["architecture"]["subtree"][0]["attributes"]["global_cycle_seconds"] = value
    a = dump(d, tmp_path / "a.yaml")
    refused_nothing_written(tmp_path, "explore", ["--arch", a, "--ert", ERT, "--problem",
                                                  PROBLEM, "--samples", 10],
                            str(a), "global_cycle_seconds")


@pytest.mark.parametrize("k", [8, 768])
def test_onnx_tensor_of_2_45_rows_is_refused(tmp_path: Path, k: int) -> None:
    """Used to raise OverflowError tracebacks (or report numbers past the int64 range)."""
    model = onnx_matmul(tmp_path / "big.onnx", 2**45, k)
    out = tmp_path / "out"
    refused_nothing_written(tmp_path, "compile", [model, "--out", out, "--time-per-op", 0.5],
                            str(model), "op 'mm'", "2**48")


def test_onnx_zero_size_tensor_names_file_and_node(tmp_path: Path) -> None:
    """The error used to be "matmul: M must be positive, found 0" (no file, no node)."""
    model = onnx_matmul(tmp_path / "zero.onnx", 0)
    out = tmp_path / "out"
    refused_nothing_written(tmp_path, "compile", [model, "--out", out, "--time-per-op", 0.5],
                            str(model), "op 'mm'", "input 'x'", "[0, 8]")


def test_zoo_sequence_too_long_is_refused(tmp_path: Path) -> None:
    out = tmp_path / "out"
    refused_nothing_written(tmp_path, "compile", ["bert-base", "--seq", 2**40, "--out", out,
                                                  "--time-per-op", 0.5], "2**48")


def test_problem_constructors_check_the_int64_bounds() -> None:
    """The same bound for every way in: helpers, zoo, ONNX/Relax lowering, YAML."""
    with pytest.raises(MapspaceError, match="2\\*\\*48"):
        matmul(2**40, 2**20, 8)
    with pytest.raises(MapspaceError, match="2\\*\\*48"):
        bmm(2**20, 2**20, 2**10, 2**10)
    with pytest.raises(MapspaceError, match="2\\*\\*31"):       # a 2**34-element tensor
        matmul(2**17, 2**17, 1)
    with pytest.raises(MapspaceError, match="2\\*\\*48"):
        conv2d(1, 2**20, 2**15, 2**15, 2**4, 3, 3)
    with pytest.raises(MapspaceError):
        matmul(2**49, 1, 1)
    assert matmul(4096, 4096, 4096).macs == 2**36             # large but fine


def test_arch_constructors_check_their_numbers() -> None:
    lv = StorageLevel("DRAM")
    with pytest.raises(MapspaceError, match="depth"):
        StorageLevel("S", depth=2**63 - 1)
    with pytest.raises(MapspaceError, match="read"):
        ActionEnergy(read=float("nan"))
    with pytest.raises(MapspaceError, match="leak"):
        ActionEnergy(leak=-1.0)
    with pytest.raises(MapspaceError, match="energy"):
        ComputeUnit(energy=float("inf"))
    with pytest.raises(MapspaceError, match="instances"):
        ComputeUnit(instances=2**40, mesh_x=2**40)
    with pytest.raises(MapspaceError, match="cycle_seconds"):
        Arch("a", (lv,), ComputeUnit(), cycle_seconds=float("nan"))


# ===================================================================== energy tables
def _ert_with(tmp_path: Path, energy: Any, table: int = 0, action: int = 0) -> Path:
    d = load(ERT)
    d["ERT"]["tables"][table]["actions"][action]["energy"] = energy
    return dump(d, tmp_path / "ert.yaml")


@pytest.mark.parametrize("energy, found", [(float("nan"), "nan"), (-1.0, "-1.0"),
                                           (float("inf"), "inf"), ("-5", "-5"),
                                           (1e300, "1e+300")])
@pytest.mark.parametrize("cmd", ["evaluate", "explore"])
def test_bad_ert_energy_is_refused(tmp_path: Path, energy: Any, found: str, cmd: str) -> None:
    """NaN and negative energies used to become 0, infinite ones to print NaN (exit 0)."""
    e = _ert_with(tmp_path, energy, table=1, action=0)
    extra = ["--mapping", MAPPING] if cmd == "evaluate" else ["--samples", 10]
    line = refused_nothing_written(
        tmp_path, cmd, ["--arch", ARCH, "--ert", e, "--problem", PROBLEM, *extra, "--json"],
        str(e), "ERT.tables[1].actions[0].energy", "gemmini.Scratchpad[1..1]", "'read'")
    assert found in line


def test_bad_compute_energy_is_refused(tmp_path: Path) -> None:
    d = load(ERT)
    mac = next(i for i, t in enumerate(d["ERT"]["tables"]) if "MACC" in t["name"])
    e = _ert_with(tmp_path, float("nan"), table=mac)
    refused_nothing_written(tmp_path, "evaluate", ["--arch", ARCH, "--ert", e, "--problem",
                                                   PROBLEM, "--mapping", MAPPING],
                            str(e), f"ERT.tables[{mac}].actions[0].energy")


def test_ert_matching_no_component_is_refused(tmp_path: Path) -> None:
    d = load(ERT)
    for t in d["ERT"]["tables"]:
        t["name"] = t["name"].replace("gemmini.", "other.X")
    e = dump(d, tmp_path / "ert.yaml")
    refused_nothing_written(tmp_path, "evaluate", ["--arch", ARCH, "--ert", e, "--problem",
                                                   PROBLEM, "--mapping", MAPPING],
                            str(e), "no table matches")


# ============================================ no energy table: say so, JSON null
NO_ERT = ["--arch", ARCH, "--problem", PROBLEM]
UNKNOWN = "unknown (no --ert)"


def test_evaluate_without_ert_says_energy_unknown(tmp_path: Path) -> None:
    r = cli("evaluate", *NO_ERT, "--mapping", MAPPING)
    assert r.exit_code == 0, r.output
    lines = r.output.splitlines()
    assert any(x.split() == ["energy", *UNKNOWN.split()] for x in lines), r.output
    assert any(x.split() == ["EDP", *UNKNOWN.split()] for x in lines), r.output
    assert "0.00 pJ" not in r.output and "0 J*cycles" not in r.output
    assert "4,718,592" in r.output                       # cycles do not depend on energy


def test_evaluate_without_ert_json_has_null(tmp_path: Path) -> None:
    r = cli("evaluate", *NO_ERT, "--mapping", MAPPING, "--json")
    assert r.exit_code == 0, r.output
    s = strict_json(r.output)
    assert s["energy_pJ"] is None and s["edp"] is None
    assert s["mac_energy_pJ"] is None and s["leak_energy_pJ"] is None
    assert all(t["energy_pJ"] is None for lv in s["levels"] for t in lv["tensors"].values())
    assert s["cycles"] == 4718592


def test_evaluate_input_without_ert_says_energy_unknown(tmp_path: Path) -> None:
    """``evaluate --input`` (a processed input: arch + problem + mapping, no ERT key)."""
    inp = dump({**load(ARCH), **load(PROBLEM), **load(MAPPING)}, tmp_path / "input.yaml")
    r = cli("evaluate", "--input", inp, "--json")
    assert r.exit_code == 0, r.output
    s = strict_json(r.output)
    assert s["energy_pJ"] is None and s["edp"] is None
    r = cli("evaluate", "--input", inp)
    assert r.exit_code == 0 and UNKNOWN in r.output, r.output
    with_ert = cli("evaluate", "--input", inp, "--ert", ERT, "--json")
    assert strict_json(with_ert.output)["energy_pJ"] > 0


def test_explore_without_ert_ranks_by_cycles_and_says_so(tmp_path: Path) -> None:
    """Used to report EDP 0 and "100% within 2x of the best"."""
    out = tmp_path / "s.parquet"
    r = cli("explore", *NO_ERT, "--samples", 300, "--json", "--out", out)
    assert r.exit_code == 0, r.output
    s = strict_json(r.output)
    for k in ("edp_min", "edp_median", "edp_max", "energy_min_pJ"):
        assert s[k] is None, k
    assert s["ranked_by"] == "cycles" and s["within_2x_of_best"] < 1.0
    import pandas as pd

    df = pd.read_parquet(out)
    assert df["edp"].isna().all() and df["energy_pJ"].isna().all()
    assert df["cycles"].min() == s["cycles_min"]
    r = cli("explore", *NO_ERT, "--samples", 300)
    assert r.exit_code == 0, r.output
    dependent = [x for x in r.output.splitlines() if "EDP" in x or "within 2x" in x]
    assert dependent and all(UNKNOWN in x for x in dependent), r.output


def test_explore_plot_without_ert_is_refused_before_work(tmp_path: Path) -> None:
    refused_nothing_written(tmp_path, "explore", [*NO_ERT, "--samples", 300, "--plot",
                                                  tmp_path / "edp.png"], "--plot", "--ert")


def test_map_without_ert_refuses_energy_objectives(tmp_path: Path) -> None:
    for obj in ("edp", "energy"):
        refused_nothing_written(tmp_path, "map", [*NO_ERT, "--objective", obj, "--budget",
                                                  200, "--out", tmp_path / "m.yaml"],
                                "--objective", "--ert")
    r = cli("map", *NO_ERT, "--objective", "latency", "--budget", 300, "--json")
    assert r.exit_code == 0, r.output
    s = strict_json(r.output)
    assert s["energy_pJ"] is None and s["edp"] is None and s["cycles"] > 0


def test_arch_round_trip_keeps_energy_unknown() -> None:
    from mapspace.arch_yaml import arch_from_dict, arch_to_dict, load_arch

    a = load_arch(ARCH)
    assert not a.energy_known and load_arch(ARCH, ERT).energy_known
    assert arch_from_dict(arch_to_dict(a), "x.yaml") == a


# ======================================== contradictory, repeated or unknown input
def test_constraint_on_unknown_dimension_is_refused(tmp_path: Path) -> None:
    """Used to be ignored when merged with a target's (lenient) defaults."""
    c = dump({"mapspace_constraints": [{"target": "Scratchpad", "type": "temporal",
                                        "factors": "Z=4"}]}, tmp_path / "c.yaml")
    for base in (["--target", "gemmini", "--workload", "bert-base/ffn1"],
                 ["--arch", ARCH, "--ert", ERT, "--problem", PROBLEM]):
        refused_nothing_written(tmp_path, "explore", [*base, "--constraints", c,
                                                      "--samples", 10],
                                str(c), "mapspace_constraints[0].factors", "'Z'")


def test_constraint_on_unknown_tensor_is_refused(tmp_path: Path) -> None:
    c = dump({"mapspace_constraints": [{"target": "Scratchpad", "type": "datatype",
                                        "keep": ["Weight"]}]}, tmp_path / "c.yaml")
    refused_nothing_written(tmp_path, "map", ["--target", "gemmini", "--workload",
                                              "bert-base/ffn1", "--constraints", c,
                                              "--budget", 100], str(c), "'Weight'")


def _mapping_with(tmp_path: Path, edit) -> Path:
    d = load(MAPPING)
    edit(d["mapping"])
    return dump(d, tmp_path / "m.yaml")


def _evaluate(m: Path) -> list[Any]:
    return ["--arch", ARCH, "--ert", ERT, "--problem", PROBLEM, "--mapping", m]


def _keep_and_bypass(ms: list) -> None:
    ms[1]["keep"] = ["Outputs", "Weights"]       # Accumulator: Weights also in bypass


def _twice_across_directives(ms: list) -> None:
    ms.append({"target": "Accumulator", "type": "datatype", "keep": ["Weights"]})


def _dim_twice(ms: list) -> None:
    ms[9]["factors"] = "C1 M96 R1 S1 N1 P2 Q1 M1"


def _bypass_dram(ms: list) -> None:
    ms[3]["keep"], ms[3]["bypass"] = ["Weights", "Inputs"], ["Outputs"]


def _unknown_key(ms: list) -> None:
    ms[4]["permutations"] = ms[4].pop("permutation")


def _foreign_key(ms: list) -> None:
    ms[0]["factors"] = "C1"


def _temporal_twice(ms: list) -> None:
    ms.append(dict(ms[4]))


def _tensor_twice(ms: list) -> None:
    ms[0]["keep"] = ["Weights", "Weights"]


def _factor_above_size(ms: list) -> None:
    ms[4]["factors"] = "C1 M1 R1 S1 N1 P1024 Q1"


def _non_integer_factor(ms: list) -> None:
    ms[4]["factors"] = "C1 M1 R1 S1 N1 P2.5 Q1"


def _negative_factor(ms: list) -> None:
    ms[4]["factors"] = "C1 M1 R1 S1 N1 P-32 Q1"


def _unknown_tensor(ms: list) -> None:
    ms[0]["keep"] = ["weights"]


@pytest.mark.parametrize("edit, key, says", [
    (_keep_and_bypass, "mapping[1].bypass", "already kept"),
    (_twice_across_directives, "mapping[10].keep", "already bypassed"),
    (_dim_twice, "mapping[9].factors", "'M' is given twice"),
    (_bypass_dram, "mapping[3].bypass", "outermost level DRAM"),
    (_unknown_key, "mapping[4].permutations", "unknown key"),
    (_foreign_key, "mapping[0].factors", "unknown key"),
    (_temporal_twice, "mapping[10]", "second temporal directive"),
    (_tensor_twice, "mapping[0].keep[1]", "given twice"),
    (_factor_above_size, "mapping[4].factors", "larger than the size of P"),
    (_non_integer_factor, "mapping[4].factors", "non-integer factor"),
    (_negative_factor, "mapping[4].factors", "'P-32'"),
    (_unknown_tensor, "mapping[0].keep[0]", "unknown tensor 'weights'"),
])
def test_contradictory_or_unknown_mapping_is_refused(tmp_path: Path, edit, key: str,
                                                     says: str) -> None:
    m = _mapping_with(tmp_path, edit)
    refused_nothing_written(tmp_path, "evaluate", _evaluate(m), str(m), key, says)


def test_key_given_twice_in_a_yaml_mapping_is_refused(tmp_path: Path) -> None:
    p = tmp_path / "p.yaml"
    p.write_text(PROBLEM.read_text().replace("    C: 768\n", "    C: 768\n    C: 64\n"))
    refused_nothing_written(tmp_path, "explore", [*EXPLORE[1:], "--problem", p],
                            str(p), "'C' is given twice")


def test_coefficient_given_twice_is_refused(tmp_path: Path) -> None:
    d = load(PROBLEM)
    d["problem"]["shape"]["coefficients"].append({"name": "Wstride", "default": 2})
    p = dump(d, tmp_path / "p.yaml")
    refused_nothing_written(tmp_path, "explore", [*EXPLORE[1:], "--problem", p],
                            str(p), "coefficients[4]", "'Wstride' is given twice")


# ======================================================================= YAML shape
@pytest.mark.parametrize("text", [
    "[" * 100_000 + "]" * 100_000,                          # crashed the interpreter (C)
    "x: " + "[" * 2000 + "]" * 2000,                        # RecursionError (Python)
    "".join(" " * i + "- \n" for i in range(3000)),         # deep block nesting
    "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(   # 10**9 values through aliases
        f"{c}: &{c} [{', '.join([f'*{p}'] * 10)}]\n"
        for p, c in zip("abcdefgh", "bcdefghi", strict=True)),
    "a: &a {b: *a}\n",                                      # a cyclic structure
], ids=["flow-100k", "flow-2k", "block-3k", "billion-laughs", "cycle"])
def test_pathological_yaml_is_refused(tmp_path: Path, text: str) -> None:
    p = tmp_path / "p.yaml"
    p.write_text(text)
    t0 = time.perf_counter()
    r = run_py([*EXPLORE, "--problem", p], timeout=120, cwd=tmp_path)
    refused_proc(r, "explore", str(p))
    assert time.perf_counter() - t0 < 60


def test_ten_megabyte_mapping_loads_in_seconds(tmp_path: Path) -> None:
    """The pure-Python YAML loader took minutes; libyaml's takes seconds."""
    body = MAPPING.read_text()
    pad = "".join(f"# {'x' * 90}\n" for _ in range(10_000))      # ~1 MB of comments
    m = tmp_path / "big.yaml"
    # a valid mapping, then ~9 MB of list items under a key the loader parses but not uses
    filler = "".join(f"- {{target: DRAM, note: {i}, x: [{', '.join(['1'] * 20)}]}}\n"
                     for i in range(130_000))
    m.write_text(body + pad + "unused:\n" + filler)
    assert m.stat().st_size > 10_000_000
    import resource

    def cpu() -> float:
        u = resource.getrusage(resource.RUSAGE_CHILDREN)
        return u.ru_utime + u.ru_stime

    c0 = cpu()              # the child's CPU time: a shared machine's load stretches the wall
    r = run_py(["evaluate", *_evaluate(m), "--json"], timeout=300, cwd=tmp_path)
    seconds = cpu() - c0
    assert r.returncode == 0, r.stderr
    assert strict_json(r.stdout)["cycles"] == 4718592
    assert seconds < 75, seconds


# ==================================================================== messages
def test_density_error_names_the_files_key(tmp_path: Path) -> None:
    for dens, key in (({"Weights": 2.0}, "problem.instance.densities.Weights"),
                      ({"Weights": {"density": float("nan")}},
                       "problem.instance.densities.Weights.density"),
                      ({"Weights": -0.5}, "problem.instance.densities.Weights"),
                      ({"Weight": 0.5}, "problem.instance.densities.Weight")):
        p = problem_with(tmp_path, densities=dens)
        refused_nothing_written(tmp_path, "explore", [*EXPLORE[1:], "--problem", p],
                                str(p), key)


# ============================================================== numeric options
@pytest.mark.parametrize("seed", [-1, 2**63, 2**64 + 1, 10**30])
@pytest.mark.parametrize("cmd, args", [
    ("explore", ["--target", "gemmini", "--workload", "bert-base/ffn1", "--samples", 10]),
    ("map", ["--target", "gemmini", "--workload", "bert-base/ffn1", "--budget", 10]),
    ("compile", ["bert-base", "--time-per-op", 0.1]),
    ("emit", ["--target", "cpu", "--workload", "bert-base/ffn1"]),
])
def test_seed_out_of_range_is_refused(tmp_path: Path, seed: int, cmd: str,
                                      args: list) -> None:
    """Seeds above 2**64 used to wrap silently onto other seeds (negative ones crashed)."""
    refused_nothing_written(tmp_path, cmd, [*args, "--seed", seed, "--out", tmp_path / "o"],
                            "--seed", "2**63-1")


@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "-1", "0", "1e300", "604801"])
@pytest.mark.parametrize("cmd, args, opt", [
    ("map", ["--target", "gemmini", "--workload", "bert-base/ffn1"], "--time"),
    ("compile", ["bert-base"], "--time-per-op"),
    ("emit", ["--target", "cpu", "--workload", "bert-base/ffn1"], "--time"),
])
def test_time_option_must_be_finite_and_positive(tmp_path: Path, value: str, cmd: str,
                                                 args: list, opt: str) -> None:
    """``--time nan`` (map) and ``--time-per-op nan`` (compile) used to hang."""
    t0 = time.perf_counter()
    refused_nothing_written(tmp_path, cmd, [*args, opt, value, "--out", tmp_path / "o"], opt)
    assert time.perf_counter() - t0 < 30


@pytest.mark.parametrize("budget", ["0", "-5", str(2**40 + 1), str(10**30)])
@pytest.mark.parametrize("cmd, args", [
    ("map", ["--target", "gemmini", "--workload", "bert-base/ffn1"]),
    ("compile", ["bert-base", "--time-per-op", 1]),
])
def test_budget_out_of_range_is_refused(tmp_path: Path, budget: str, cmd: str,
                                        args: list) -> None:
    refused_nothing_written(tmp_path, cmd, [*args, "--budget", budget, "--out",
                                            tmp_path / "o"], "--budget")


def test_check_limits_refuses_nan_for_every_caller() -> None:
    from cost_models.search import check_limits, check_seed

    for t in (math.nan, math.inf, -1.0, 0.0, 1e300, 7 * 24 * 3600 + 1):
        with pytest.raises(MapspaceError):
            check_limits(None, t, where="x")
    for s in (-1, 2**63, True, 1.5):
        with pytest.raises(MapspaceError):
            check_seed(s, where="x")  # type: ignore[arg-type]
    check_limits(10, 0.5, where="x")
    check_seed(2**63 - 1, where="x")


def test_valid_inputs_still_give_the_same_numbers(tmp_path: Path) -> None:
    """The checks change no number: the reference mapping's Timeloop figures."""
    r = cli("evaluate", "--arch", ARCH, "--ert", ERT, "--problem", PROBLEM, "--mapping",
            MAPPING, "--json")
    assert r.exit_code == 0, r.output
    s = strict_json(r.output)
    assert s["cycles"] == 4718592 and s["energy_pJ"] > 0
    d = copy.deepcopy(load(MAPPING))
    assert d["mapping"][3]["target"] == "DRAM"


def test_remembered_scalar_tags_keep_yaml_types(tmp_path: Path) -> None:
    """The loader remembers the tag of each scalar text (speed); quoting and every YAML 1.1
    implicit type still come out as PyYAML's own safe loader gives them, twice in a row."""
    from mapspace.yamlio import load_yaml

    text = ("a: [1, '1', \"1\", 1.5, '1.5', 1e3, 0x10, 0o17, 017, 1_000, 1:30, .inf, -.inf, "
            ".nan, yes, 'yes', no, on, off, true, 'true', null, ~, '~', '', 2001-12-14, "
            "DRAM, 'DRAM', !!str 5, !!int '7', !!float '2', 0b101, +12, -0, 12.]\n")
    p = tmp_path / "types.yaml"
    p.write_text(text)
    want = yaml.safe_load(text)
    for _ in range(2):
        got = load_yaml(p)
        assert repr(got) == repr(want)
