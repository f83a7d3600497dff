"""Generated hostile inputs (issue 12, item 6): hypothesis mutates valid YAML trees (a
problem, an architecture, an energy table, a mapping, constraints, a processed input) and
draws ONNX shapes, and every one goes through the command line as a user would give it.

The property, for every input: the command either succeeds with sound numbers (strict
JSON: no NaN or Infinity; cycles a positive integer, energies finite and >= 0,
utilization in [0, 1]) or refuses with exit code 2 and exactly one
``mapspace <cmd>: error: ...`` line naming the file; never a traceback, never a file
changed outside the output path, never longer than the time limit.  ``derandomize``
makes every run try the same cases (a failure reproduces; ``max_examples`` says how many).
"""

from __future__ import annotations

import copy
import math
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from .helpers import ARCH, ERT, MAPPING, PROBLEM, cli, files, one_line, onnx_matmul, strict_json

#: seconds one hostile case may take (the slowest valid ones take ~3 s on a busy machine)
TIME_LIMIT = 60
#: hostile cases tried per input kind (the whole file: 7 kinds)
EXAMPLES = {"problem": 40, "arch": 40, "ert": 40, "mapping": 50, "constraints": 30,
            "input": 30, "onnx": 25}

SCALARS = [0, -1, 1, 2, 3, 7, 2**31, 2**48, 2**50, 2**63 - 1, 2**63, 2**64 + 1, -2**63,
           10**30, True, False, None, "", "x", "C", "M", "Weights", "1e3", "0x10", "nan",
           ".inf", "DRAM", "C1 M1", "C0", float("nan"), float("inf"), float("-inf"), -0.0,
           0.5, 1e308, 5e-324, [], {}, [[]], {"a": None}]
scalar = st.one_of(st.sampled_from(SCALARS), st.integers(), st.floats(),
                   st.text(max_size=6))
hostile = st.one_of(scalar, st.recursive(
    scalar, lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=4), c,
                                                                max_size=3),
    max_leaves=5))


def _slots(node: Any, out: list) -> list:
    """Every (container, key) in a YAML tree, depth first."""
    if isinstance(node, dict):
        for k, v in node.items():
            out.append((node, k))
            _slots(v, out)
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out.append((node, i))
            _slots(v, out)
    return out


def mutate(data: st.DataObject, doc: Any) -> Any:
    """``doc`` with one to three hostile edits: a value replaced, a key or item removed,
    an item repeated, a key renamed, or the whole tree replaced."""
    doc = copy.deepcopy(doc)
    for _ in range(data.draw(st.integers(1, 3), label="edits")):
        slots = _slots(doc, [])
        op = data.draw(st.sampled_from(["replace", "replace", "replace", "delete", "repeat",
                                        "rename", "root"]), label="op")
        if op == "root" or not slots:
            return data.draw(hostile, label="root")
        parent, key = slots[data.draw(st.integers(0, len(slots) - 1), label="slot")]
        if op == "replace":
            parent[key] = data.draw(hostile, label="value")
        elif op == "delete":
            del parent[key]
        elif op == "repeat" and isinstance(parent, list):
            parent.insert(key, copy.deepcopy(parent[key]))
        elif op == "rename" and isinstance(parent, dict):
            new = data.draw(st.sampled_from(["", "x", "C", "name", "factors", "keep",
                                             "bypass", "energy", "depth", "instance"]))
            parent[new] = parent.pop(key)
    return doc


def _dump(doc: Any, path: Path) -> Path:
    path.write_text(yaml.safe_dump(doc, sort_keys=False, allow_unicode=True))
    return path


def _sound(stats: dict) -> None:
    """The numbers a success prints are ones a model can produce."""
    assert isinstance(stats["cycles"], int) and stats["cycles"] > 0, stats["cycles"]
    for k in ("energy_pJ", "edp"):
        v = stats.get(k)
        assert v is None or (math.isfinite(v) and v >= 0), (k, v)
    u = stats.get("utilization")
    assert u is None or 0 <= u <= 1 + 1e-9, u


def hostile_case(folder: Path, cmd: str, args: list) -> Any:
    """Run one case; assert the property (module doc); the parsed JSON of a success.  A
    refusal names one of the files given (or an option)."""
    before = files(folder)
    t0 = time.perf_counter()
    r = cli(cmd, *args)
    assert time.perf_counter() - t0 < TIME_LIMIT
    assert r.exit_code in (0, 2), (r.exit_code, r.output, repr(r.exception))
    assert r.exception is None or isinstance(r.exception, SystemExit), repr(r.exception)
    if r.exit_code == 2:
        line = one_line(r.output, cmd)
        named = [str(a) for a in args if isinstance(a, Path)]
        assert any(n in line for n in named) or ": --" in line, line
        assert files(folder) == before
        return None
    return strict_json(r.output)


HYP = settings(derandomize=True, deadline=None, database=None,
               suppress_health_check=[HealthCheck.function_scoped_fixture,
                                      HealthCheck.too_slow, HealthCheck.data_too_large])


def _load(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def _inputs(folder: Path) -> dict[str, Path]:
    """Writable copies of the valid inputs in ``folder``."""
    out = {}
    for name, src in (("arch", ARCH), ("ert", ERT), ("problem", PROBLEM),
                      ("mapping", MAPPING)):
        out[name] = folder / f"{name}.yaml"
        out[name].write_bytes(src.read_bytes())
    return out


def _evaluate(f: dict[str, Path]) -> list:
    return ["--arch", f["arch"], "--ert", f["ert"], "--problem", f["problem"], "--mapping",
            f["mapping"], "--json"]


@pytest.mark.parametrize("kind", ["arch", "ert", "mapping"])
def test_mutated_yaml_through_evaluate(tmp_path: Path, kind: str) -> None:
    f = _inputs(tmp_path)
    valid = _load(f[kind])

    @settings(HYP, max_examples=EXAMPLES[kind])
    @given(data=st.data())
    def case(data: st.DataObject) -> None:
        _dump(mutate(data, valid), f[kind])
        s = hostile_case(tmp_path, "evaluate", _evaluate(f))
        if s is not None:
            _sound(s)

    case()


def test_mutated_problem_through_map(tmp_path: Path) -> None:
    """A problem that stays valid is searched (a bounded budget) and priced."""
    f = _inputs(tmp_path)
    valid = _load(f["problem"])

    @settings(HYP, max_examples=EXAMPLES["problem"])
    @given(data=st.data())
    def case(data: st.DataObject) -> None:
        _dump(mutate(data, valid), f["problem"])
        s = hostile_case(tmp_path, "map", ["--arch", f["arch"], "--ert", f["ert"],
                                           "--problem", f["problem"], "--budget", 20,
                                           "--strategy", "random", "--json"])
        if s is not None:
            _sound(s)

    case()


def test_mutated_constraints_through_map(tmp_path: Path) -> None:
    f = _inputs(tmp_path)
    c = tmp_path / "c.yaml"
    valid = {"mapspace_constraints": [
        {"target": "Scratchpad", "type": "temporal", "factors": "R1 S1"},
        {"target": "Accumulator", "type": "spatial", "factors": "C16 M16"},
        {"target": "Registers", "type": "datatype", "keep": ["Weights"],
         "bypass": ["Inputs", "Outputs"]},
        {"target": "Scratchpad", "type": "utilization", "min": 0.5}]}

    @settings(HYP, max_examples=EXAMPLES["constraints"])
    @given(data=st.data())
    def case(data: st.DataObject) -> None:
        _dump(mutate(data, valid), c)
        s = hostile_case(tmp_path, "map", ["--arch", f["arch"], "--ert", f["ert"],
                                           "--problem", f["problem"], "--constraints", c,
                                           "--budget", 30, "--json"])
        if s is not None:
            _sound(s)

    case()


def test_mutated_processed_input_through_evaluate(tmp_path: Path) -> None:
    """``evaluate --input``: architecture, problem and mapping in one file."""
    inp = tmp_path / "input.yaml"
    valid = {**_load(ARCH), **_load(PROBLEM), **_load(MAPPING)}

    @settings(HYP, max_examples=EXAMPLES["input"])
    @given(data=st.data())
    def case(data: st.DataObject) -> None:
        _dump(mutate(data, valid), inp)
        s = hostile_case(tmp_path, "evaluate", ["--input", inp, "--ert", ERT, "--json"])
        if s is not None:
            _sound(s)

    case()


dim = st.one_of(st.integers(-2, 8), st.sampled_from([0, 1, 7, 64, 768, 2**16, 2**31, 2**45,
                                                     2**62, -2**40]),
                st.integers(-2**63, 2**63 - 1), st.sampled_from(["batch", "n", ""]))


def test_onnx_shapes_through_compile(tmp_path: Path) -> None:
    """A MatMul ``x[rows, k] @ w[kw, n]`` of drawn (possibly symbolic, zero, negative or
    huge) dimensions: compiled with sound totals, or refused naming the file."""
    out = tmp_path / "out"

    @settings(HYP, max_examples=EXAMPLES["onnx"])
    @given(rows=dim, k=dim, n=st.sampled_from([1, 8, 64, 0, -1]))
    def case(rows: Any, k: Any, n: int) -> None:
        model = onnx_matmul(tmp_path / "m.onnx", rows, k, n)
        s = hostile_case(tmp_path, "compile", [model, "--budget", 20, "--out", out,
                                               "--json"])
        if s is not None:
            t = s["totals"]
            assert t["cycles"] > 0 and math.isfinite(t["energy_pJ"]) and t["energy_pJ"] >= 0
            assert (out / "ops.csv").exists()

    case()


def test_the_suite_counts() -> None:
    """The closing note's figures: hostile cases generated here and the input kinds."""
    assert sum(EXAMPLES.values()) == 255 and len(EXAMPLES) == 7
