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
    onnx.save(models.transformer(seq=16, hidden=32, heads=4), str(path))
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


def test_unemittable_gemmini_mapping_is_re_searched():
    """A mapping the word-based model accepts but Gemmini's row-organised scratchpad cannot
    hold (channel blocks narrower than 16) gets a re-searched mapping that fits."""
    from compiler.emit import emittable_mapping
    from mapspace import matmul
    from mapspace.errors import MapspaceError
    from mapspace.space import Mapspace
    from targets import default_constraints, load_target
    from targets.gemmini.model import check

    arch, problem = load_target("gemmini"), matmul(512, 3072, 768, name="ffn2")
    space = Mapspace(problem, arch, default_constraints("gemmini"))
    batch, _ = space.sample(400, seed=3)
    bad = None
    for i in range(len(batch)):
        try:
            check(problem, batch[i : i + 1], arch)
        except MapspaceError as e:
            if "rows" in str(e):
                bad = batch[i : i + 1]
                break
    assert bad is not None, "no row-overflowing mapping among the samples"
    fixed, why = emittable_mapping("gemmini", problem, bad, arch, budget=2000)
    assert "rows" in why and "re-searched" in why
    check(problem, fixed, arch)  # does not raise
    same, why2 = emittable_mapping("gemmini", problem, fixed, arch)
    assert same is fixed and why2 == ""
