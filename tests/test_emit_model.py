"""Whole-model emission (compiler/emit_model.py, `mapspace compile --emit --run`): every MAC
op gets a kernel, the model runs with them and matches numpy; a corrupted kernel is caught."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

pytest.importorskip("tvm")
onnx = pytest.importorskip("onnx")

from compiler.cli import main  # noqa: E402
from compiler.emit_model import emit_model  # noqa: E402
from compiler.passes.quantize import channel_scales, quantize_values  # noqa: E402
from compiler.pipeline import compile_model  # noqa: E402
from tests import test_onnx as models  # noqa: E402


@pytest.fixture(scope="module")
def transformer_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("m") / "tiny_transformer.onnx"
    from tests.test_execute import _randomised

    # compile --emit --run uses the model's own weights: random ones, not the zeros
    onnx.save(_randomised(models.transformer(seq=16, hidden=32, heads=4), seed=1), str(path))
    return path


@pytest.fixture(scope="module", params=["cpu", "gemmini"])
def emitted(request, transformer_file, tmp_path_factory):
    r = compile_model(str(transformer_file), request.param, passes="fuse", budget=300,
                      time_per_op=None)
    return r, emit_model(r, tmp_path_factory.mktemp("code") / "code", run=True, seed=1)


def test_every_mac_op_has_a_kernel_and_the_model_matches_numpy(emitted):
    result, e = emitted
    mac_ops = {n for n in result.problems}
    assert {op for k in e.kernels for op in k.ops} == mac_ops
    # q/k/v projections share one kernel; out_proj has their shape but is fused with its
    # LayerNorm, so it is searched (and emitted) on its own; ffn1, ffn2 and two bmm shapes
    assert len(e.kernels) == 6
    assert {k.ops for k in e.kernels} >= {("q_proj", "k_proj", "v_proj"), ("out_proj",)}
    assert e.run.correct
    assert e.run.kernel_calls == len(mac_ops) == 8
    assert dict(e.run.host_kinds)["softmax"] == 1 and dict(e.run.host_kinds)["layernorm"] == 1
    if e.target == "gemmini":
        assert e.run.max_abs_error == 0.0           # int8 kernels bit-exact in the model
        assert 15 < e.run.sqnr_db < 60              # int8 vs fp32: quantization noise only
        assert e.run.counters["calls"] == 8
        macs = sum(p.macs for p in result.problems.values())
        assert e.run.counters["macs"] == macs
        assert (e.code_dir / "model").exists() and (e.code_dir / "model.c").exists()
    else:
        assert e.run.max_abs_error < 1e-4 * max(1.0, e.run.reference_max_abs)
        assert (e.code_dir / "model.so").exists()


def _mobilenet_block() -> onnx.ModelProto:
    """An inverted-residual-like block: 1x1 expand, 3x3 depthwise stride 2 pad 1 (13x13 ->
    7x7: sizes not multiples of anything), 3x3 depthwise pad 1, 1x1 project."""
    h = models.helper
    nodes = [
        h.make_node("Conv", ["x", "we", "be"], ["e"], name="expand", kernel_shape=[1, 1]),
        h.make_node("Relu", ["e"], ["er"], name="expand_relu"),
        h.make_node("Conv", ["er", "wd", "bd"], ["d"], name="dw_s2", group=20, strides=[2, 2],
                    pads=[1, 1, 1, 1], kernel_shape=[3, 3]),
        h.make_node("Relu", ["d"], ["dr"], name="dw_relu"),
        h.make_node("Conv", ["dr", "wd2"], ["d2"], name="dw_s1", group=20, pads=[1, 1, 1, 1],
                    kernel_shape=[3, 3]),
        h.make_node("Conv", ["d2", "wp"], ["y"], name="project", kernel_shape=[1, 1]),
    ]
    rng = np.random.default_rng(0)
    shapes = {"we": (20, 6, 1, 1), "be": (20,), "wd": (20, 1, 3, 3), "bd": (20,),
              "wd2": (20, 1, 3, 3), "wp": (8, 20, 1, 1)}
    inits = [onnx.numpy_helper.from_array((0.3 * rng.standard_normal(s)).astype(np.float32), n)
             for n, s in shapes.items()]
    return models._model(nodes, [models._vi("x", 1, 6, 13, 13)], [models._vi("y", 1, 8, 7, 7)],
                         inits)


@pytest.mark.parametrize("target", ["cpu", "gemmini"])
def test_depthwise_model_emitted_and_matches_numpy(target, tmp_path):
    path = tmp_path / "block.onnx"
    onnx.save(_mobilenet_block(), str(path))
    r = compile_model(str(path), target, passes="fuse", budget=300, time_per_op=None)
    e = emit_model(r, tmp_path / "code", run=True, seed=2)
    kinds = {op: k.kind for k in e.kernels for op in k.ops}
    assert kinds["dw_s2"] == kinds["dw_s1"] == "depthwise_conv2d"
    assert set(kinds) == set(r.problems)
    assert e.run.correct and e.run.kernel_calls == 4 and e.run.host_mac_ops == ()
    if target == "gemmini":
        assert e.run.max_abs_error == 0.0
        assert e.run.counters["macs"] == sum(p.macs for p in r.problems.values())
        assert 15 < e.run.sqnr_db < 60
    else:
        assert e.run.max_abs_error < 1e-4 * max(1.0, e.run.reference_max_abs)


def test_cli_compile_emit_run_depthwise_gemmini(tmp_path):
    path = tmp_path / "block.onnx"
    onnx.save(_mobilenet_block(), str(path))
    out = tmp_path / "out"
    res = CliRunner().invoke(main, ["compile", str(path), "--target", "gemmini", "--budget",
                                    "200", "--emit", "--run", "--out", str(out), "--json"])
    assert res.exit_code == 0, res.output
    run = json.loads(res.output)["emit"]["run"]
    assert run["correct"] is True and run["max_abs_error"] == 0.0 and run["kernel_calls"] == 4
    assert "depthwise_conv2d" in (out / "code" / "kernels.csv").read_text()


def test_a_wrong_kernel_is_caught(transformer_file, tmp_path, monkeypatch):
    import targets.cpu.model as cpu_model

    real = cpu_model.CpuKernels.call

    def off_by_one(self, name, a, b):
        z = real(self, name, a, b)
        z.flat[0] += 1.0
        return z

    monkeypatch.setattr(cpu_model.CpuKernels, "call", off_by_one)
    r = compile_model(str(transformer_file), "cpu", budget=200, time_per_op=None)
    e = emit_model(r, tmp_path / "code", run=True)
    assert not e.run.correct and e.run.max_abs_error > 0.1


def test_quantize_is_symmetric_per_channel():
    x = np.array([[1.0, -4.0], [0.5, 2.0]])
    s = channel_scales(x, 8)
    np.testing.assert_allclose(s, [1 / 127, 4 / 127])
    np.testing.assert_array_equal(quantize_values(x, s, 8), [[127, -127], [64, 64]])


def test_cli_compile_emit_run(transformer_file, tmp_path):
    out = tmp_path / "out"
    res = CliRunner().invoke(main, ["compile", str(transformer_file), "--target", "cpu",
                                    "--budget", "200", "--emit", "--run", "--out", str(out),
                                    "--json"])
    assert res.exit_code == 0, res.output
    info = json.loads(res.output)
    assert info["emit"]["run"]["correct"] is True
    assert (out / "code" / "model.so").exists() and (out / "code" / "kernels.csv").exists()
    assert (out / "ops.csv").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp left


def test_cli_emit_errors_leave_nothing(transformer_file, tmp_path):
    out = tmp_path / "out"
    res = CliRunner().invoke(main, ["compile", str(transformer_file), "--target",
                                    "eyeriss-like", "--budget", "100", "--emit", "--out",
                                    str(out)])
    assert res.exit_code == 2 and "no code emitter for target 'eyeriss-like'" in res.output
    assert not out.exists()
    res = CliRunner().invoke(main, ["compile", str(transformer_file), "--budget", "100",
                                    "--run", "--out", str(out)])
    assert res.exit_code == 2 and "--run needs --emit" in res.output
    assert not out.exists()
    assert list(tmp_path.iterdir()) == []
