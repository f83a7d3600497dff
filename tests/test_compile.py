"""The compile driver (``compiler.pipeline``), its report and ``mapspace compile``: per-op
rows and totals, one search per distinct shape, bit/density attrs, atomic output, and
exit-code-2 errors that leave the output folder untouched."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pandas as pd
import pytest
from click.testing import CliRunner
from onnx import TensorProto, helper, numpy_helper

import compiler.pipeline
from compiler.cli import main
from compiler.graph import Graph, Op
from compiler.pipeline import STEPS, compile_model, lower_op
from compiler.report import FILES, frame, write_report

FAST = ["--strategy", "random", "--budget", "200"]


def _onnx(path: Path, nodes, inits, x_shape, y_shape) -> Path:
    g = helper.make_graph(
        nodes, "t", [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(x_shape))],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, list(y_shape))],
        [numpy_helper.from_array(np.zeros(s, np.float32), n) for n, s in inits])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    onnx.save(m, str(path))
    return path


@pytest.fixture
def mlp(tmp_path: Path) -> Path:
    """Gemm(16x32 -> 64) + Relu + Gemm(64 -> 8)."""
    return _onnx(tmp_path / "mlp.onnx", [
        helper.make_node("Gemm", ["x", "w1", "b1"], ["h"], name="fc1", transB=1),
        helper.make_node("Relu", ["h"], ["a"], name="act"),
        helper.make_node("Gemm", ["a", "w2", "b2"], ["y"], name="fc2"),
    ], [("w1", (64, 32)), ("b1", (64,)), ("w2", (64, 8)), ("b2", (8,))], (16, 32), (16, 8))


@pytest.fixture
def twin(tmp_path: Path) -> Path:
    """Two identical 16x32x32 matmuls with a relu between them."""
    return _onnx(tmp_path / "twin.onnx", [
        helper.make_node("MatMul", ["x", "w1"], ["h"], name="mm1"),
        helper.make_node("Relu", ["h"], ["a"], name="act"),
        helper.make_node("MatMul", ["a", "w2"], ["y"], name="mm2"),
    ], [("w1", (32, 32)), ("w2", (32, 32))], (16, 32), (16, 32))


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def test_steps_are_a_visible_list():
    assert [n for n, _ in STEPS] == ["load", "passes", "lower", "schedule", "cost", "report"]


def test_compile_mlp_writes_report(mlp: Path, tmp_path: Path):
    out = tmp_path / "out"
    r = run("compile", mlp, "--target", "gemmini", *FAST, "--out", out)
    assert r.exit_code == 0, r.output
    assert "fc1" in r.output and "host ops" in r.output
    for f in FILES:
        assert (out / f).stat().st_size > 0
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp left
    df = pd.read_csv(out / "ops.csv")
    assert list(df["op"]) == ["fc1", "act", "fc2", "TOTAL"]
    pq = pd.read_parquet(out / "ops.parquet")
    assert list(pq["op"]) == list(df["op"])
    ops, tot = df.iloc[:-1], df.iloc[-1]
    assert list(ops["on_host"]) == [False, True, False]
    assert list(ops["macs"]) == [16 * 32 * 64, 0, 16 * 64 * 8]
    for col in ("macs", "cycles"):
        assert tot[col] == ops[col].sum()
    assert tot["energy_pJ"] == pytest.approx(ops["energy_pJ"].sum(), rel=1e-12)
    assert (ops.loc[~ops["on_host"], "cycles"] > 0).all()
    assert ops.loc[ops["on_host"], ["cycles", "energy_pJ"]].to_numpy().sum() == 0
    assert "mapping:" in ops["mapping_yaml"].iloc[0]


def test_compile_json(mlp: Path, tmp_path: Path):
    r = run("compile", mlp, *FAST, "--out", tmp_path / "o", "--json")
    assert r.exit_code == 0, r.output
    doc = json.loads(r.output)
    assert [o["op"] for o in doc["ops"]] == ["fc1", "act", "fc2"]
    assert all("mapping_yaml" not in o for o in doc["ops"])
    t = doc["totals"]
    assert t["cycles"] == sum(o["cycles"] for o in doc["ops"])
    assert t["macs"] == sum(o["macs"] for o in doc["ops"])
    assert t["mac_ops"] == 2 and t["host_ops"] == 1 and t["distinct_shapes"] == 2


def test_identical_shapes_are_searched_once(twin: Path, monkeypatch):
    calls = []
    real = compiler.pipeline.find_mapping

    def spy(space, *a, **k):
        calls.append(space.problem.name)
        return real(space, *a, **k)

    monkeypatch.setattr(compiler.pipeline, "find_mapping", spy)  # imported at its top
    res = compile_model(twin, "gemmini", strategy="random", budget=200)
    assert calls == ["mm1"]
    assert res.searches == res.distinct_shapes == 1 and res.mac_ops == 2
    a, b = (r for r in res.rows if not r.on_host)
    assert (a.cycles, a.energy_pJ, a.mapping_yaml) == (b.cycles, b.energy_pJ, b.mapping_yaml)
    assert b.searched_as == "mm1"


def _graph(**attrs) -> Graph:
    g = Graph("g")
    x = g.add_input("x", (16, 32))
    g.add_op(Op.make("mm1", "matmul", [x, g.add_param("w1", (32, 32))], ["h"]))
    g.add_op(Op.make("mm2", "matmul", ["h", g.add_param("w2", (32, 32))], ["y"], **attrs))
    g.add_output("y")
    return g.validate()


def test_bits_and_density_attrs_lower_and_split_groups(monkeypatch):
    g = _graph(weight_bits=4, act_bits=8, weight_density=0.5, fused="relu")
    p = lower_op(g, g.op("mm2"))
    assert p.tensors[p.tensor_index("Weights")].bits == 4
    assert p.tensors[p.tensor_index("Weights")].density == 0.5
    assert p.tensors[p.tensor_index("Inputs")].bits == 8
    assert lower_op(g, g.op("mm1")).tensors[p.tensor_index("Weights")].density == 1.0
    monkeypatch.setattr(compiler.pipeline, "ZOO", (*compiler.pipeline.ZOO, "g"))
    monkeypatch.setattr(compiler.pipeline, "zoo_graph", lambda name, seq=None: g)
    res = compile_model("g", "gemmini", strategy="random", budget=200)
    assert res.searches == 2
    df = frame(res)
    row = df.set_index("op").loc["mm2"]
    assert row["weight_bits"] == 4 and row["weight_density"] == 0.5 and row["fused"] == "relu"


def test_compile_with_passes(mlp: Path, tmp_path: Path):
    pytest.importorskip("compiler.passes.manager")
    out = tmp_path / "o"
    r = run("compile", mlp, *FAST, "--passes", "fuse,quantize=int8,sparsify=2:4", "--out", out)
    assert r.exit_code == 0, r.output
    df = pd.read_parquet(out / "ops.parquet").set_index("op")
    assert "act" not in df.index  # the relu was fused into fc1
    assert df.loc["fc1", "fused"] and df.loc["fc1", "weight_bits"] == 8
    assert df.loc["fc2", "weight_density"] == 0.5
    assert df.loc["TOTAL", "cycles"] == df.drop("TOTAL")["cycles"].sum()


def test_bert_base_distinct_shapes(tmp_path: Path):
    res = compile_model("bert-base", "gemmini", strategy="random", budget=200, seq=32)
    # q/k/v/out projections of all 12 layers share one shape; ffn1; ffn2; the scores bmm
    # (12 x 32x64x32) and the context bmm (12 x 32x32x64) differ at seq 32 (not 64)
    assert res.mac_ops == 12 * 8 and res.distinct_shapes == res.searches == 5
    t = res.totals
    assert t["macs"] == sum(r.macs for r in res.rows)
    assert t["cycles"] == sum(r.cycles for r in res.rows)
    paths = write_report(res, tmp_path / "bert")
    assert all(p.exists() for p in paths)


@pytest.mark.parametrize("bad", ["unknown", "corrupt", "unsupported", "passes"])
def test_bad_input_exits_2_and_writes_nothing(bad: str, tmp_path: Path):
    model = {"unknown": "no-such-model"}.get(bad, tmp_path / "m.onnx")
    extra = []
    if bad == "corrupt":
        model.write_bytes(b"\x08\x07garbage, not a protobuf")
    elif bad == "unsupported":
        _onnx(model, [helper.make_node("GRU", ["x", "w", "r"], ["y"], name="rnn", hidden_size=4)],
              [("w", (1, 12, 4)), ("r", (1, 12, 4))], (2, 1, 4), (2, 1, 1, 4))
    elif bad == "passes":
        model = "bert-base"
        extra = ["--passes", "no_such_pass=1"]
    out = tmp_path / "out"
    out.mkdir()
    r = run("compile", model, *FAST, "--seq", "16", *extra, "--out", out)
    assert r.exit_code == 2, r.output
    err = r.output.strip().splitlines()[-1]
    assert err.startswith("mapspace compile: error:")
    want = {"unknown": "bert-base", "corrupt": "corrupt", "unsupported": "GRU",
            "passes": "pass"}[bad]
    assert want in err
    assert list(out.iterdir()) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["out"] + (["m.onnx"] if bad in ("corrupt", "unsupported") else []))


def test_out_must_be_a_folder(mlp: Path, tmp_path: Path):
    f = tmp_path / "file"
    f.write_text("x")
    r = run("compile", mlp, *FAST, "--out", f)
    assert r.exit_code == 2 and "not a folder" in r.output


def test_passes_command_runs():
    r = run("passes")
    try:
        import compiler.passes.manager  # noqa: F401
    except ImportError:
        assert r.exit_code == 2 and "not available" in r.output
    else:
        assert r.exit_code == 0 and r.output.strip()


def test_unmappable_shape_exits_2(mlp: Path, tmp_path: Path, monkeypatch):
    from mapspace.errors import MapspaceError

    def none_found(problem, *a, **k):
        raise MapspaceError("random found no valid mapping in 200 evaluations", where="map")

    monkeypatch.setattr(compiler.pipeline, "find_mapping", none_found)
    out = tmp_path / "out"
    r = run("compile", mlp, *FAST, "--out", out)
    assert r.exit_code == 2
    assert "op 'fc1'" in r.output and "cannot map" in r.output and "no valid mapping" in r.output
    assert not out.exists()
