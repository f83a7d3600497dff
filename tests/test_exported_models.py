"""Models as the real exporters write them (``tests/models/``, made by
``tests/models/export.py`` with torch.onnx.export: TorchScript ``*.ts.onnx`` and
torch.export-based ``*.dynamo.onnx``): read, run and compiled, checked against onnxruntime.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

ort = pytest.importorskip("onnxruntime")

from compiler.cli import main  # noqa: E402
from compiler.compiled import CompiledModel  # noqa: E402
from compiler.execute import run_graph  # noqa: E402
from compiler.frontends.onnx import from_onnx  # noqa: E402
from compiler.pipeline import compile_model  # noqa: E402

MODELS = Path(__file__).parent / "models"
FIXTURES = sorted(p.name for p in MODELS.glob("*.onnx"))


def _feeds(path: Path) -> tuple[dict[str, np.ndarray], list[np.ndarray], object]:
    """The saved sample inputs and what onnxruntime computes for them."""
    sess = ort.InferenceSession(str(path))
    names = {i.name for i in sess.get_inputs()}
    base = path.name.split(".")[0]
    with np.load(MODELS / f"{base}.inputs.npz") as z:
        feeds = {k: z[k] for k in z.files if k in names}
    return feeds, sess.run(None, feeds), sess


def _rel(got: np.ndarray, want: np.ndarray) -> float:
    return float(np.abs(got.astype(np.float64) - want).max() / max(np.abs(want).max(), 1e-30))


def test_fixtures_are_there():
    stems = {n.split(".")[0] for n in FIXTURES}
    assert {"bert_tiny", "gpt2_tiny", "mobilenet_v2_tiny", "vit_tiny"} <= stems
    assert any(n.endswith(".dynamo.onnx") for n in FIXTURES)
    assert any(n.endswith(".ts.onnx") for n in FIXTURES)


@pytest.mark.parametrize("name", FIXTURES)
def test_front_end_reads_and_runs_like_onnxruntime(name: str):
    """Every exported model loads (no unsupported-op error), keeps no shape plumbing, and the
    graph run on the host (numpy MACs) matches onnxruntime to 1e-4 relative."""
    path = MODELS / name
    try:
        feeds, want, sess = _feeds(path)
    except Exception as e:  # the exporter wrote a model onnxruntime itself rejects
        pytest.skip(f"onnxruntime cannot load {name}: {str(e)[:120]}")
    g = from_onnx(path)
    left = {op.attr("op_type") for op in g.ops() if op.kind == "host"}
    assert not left & {"Shape", "ConstantOfShape", "Range", "Size", "Constant"}, left
    got = run_graph(g, feeds)
    assert len(g.outputs) == len(want)
    for t, w in zip(g.outputs, want, strict=True):
        assert got[t].shape == w.shape
        assert _rel(got[t], w) <= 1e-4, (t, _rel(got[t], w))


def test_bert_mask_stays_as_host_ops_and_folds_without_it():
    """With an attention_mask input the mask arithmetic stays (host ops that read it); with
    input_ids only, the exporter's mask is a constant and folds away."""
    with_mask = from_onnx(MODELS / "bert_tiny.ts.onnx")
    ids_only = from_onnx(MODELS / "bert_tiny_ids.ts.onnx")
    assert "attention_mask" in with_mask.inputs
    assert sum(op.kind == "host" for op in with_mask.ops()) > \
        sum(op.kind == "host" for op in ids_only.ops())
    for g in (with_mask, ids_only):  # 2 layers: 6 linear + 2 bmm each, plus the pooler
        kinds = [op.kind for op in g.ops()]
        assert kinds.count("bmm") == 4 and kinds.count("matmul") == 13
        assert kinds.count("layernorm") == 5 and kinds.count("gelu") == 2


def test_mobilenet_relu6_and_depthwise():
    g = from_onnx(MODELS / "mobilenet_v2_tiny.ts.onnx")
    kinds = [op.kind for op in g.ops()]
    assert "clip" in kinds and "depthwise_conv2d" in kinds and "host" not in kinds
    clip = next(op for op in g.ops() if op.kind == "clip")
    assert (clip.attr("min"), clip.attr("max")) == (0.0, 6.0)


@pytest.mark.parametrize("name,target", [
    ("bert_tiny.ts.onnx", "cpu"),
    ("bert_tiny.ts.onnx", "gemmini"),
    ("resnet18_narrow.dynamo.onnx", "gemmini"),
])
def test_compiled_model_runs_on_real_inputs(name: str, target: str, tmp_path: Path):
    """compile -> CompiledModel.run with the model's weights: fp32 within 1e-4 of
    onnxruntime on cpu; int8 on gemmini bit-exact against numpy's integer computation, and
    close to onnxruntime (SQNR); the saved --out folder loads and runs identically."""
    path = MODELS / name
    feeds, want, _ = _feeds(path)
    r = compile_model(path, target, budget=300, time_per_op=None)
    assert isinstance(r, CompiledModel)
    got = r.run(feeds)
    outs = r.source_graph.outputs
    if target == "cpu":
        for t, w in zip(outs, want, strict=True):
            assert _rel(got[t], w) <= 1e-4
    else:
        ref = r.run(feeds, reference=True)
        assert all(np.array_equal(got[t], ref[t]) for t in outs)
        w, o = want[0].astype(np.float64), got[outs[0]].astype(np.float64)
        sqnr = 10 * np.log10((w ** 2).sum() / ((o - w) ** 2).sum())
        assert sqnr > 15, sqnr  # int8 per-tensor/per-channel: a real, not a random, result
    from compiler.report import write_report

    write_report(r, tmp_path / "out")
    again = CompiledModel.load(tmp_path / "out").run(feeds)
    assert all(np.array_equal(again[t], got[t]) for t in outs)


def test_run_cli(tmp_path: Path):
    path = MODELS / "resnet18_narrow.ts.onnx"
    feeds, want, _ = _feeds(path)
    run = CliRunner().invoke
    out = tmp_path / "o"
    r = run(main, ["compile", str(path), "--target", "cpu", "--budget", "200",
                   "--out", str(out)])
    assert r.exit_code == 0, r.output
    np.savez(tmp_path / "in.npz", **feeds)
    r = run(main, ["run", str(out), "--inputs", str(tmp_path / "in.npz"), "--out",
                   str(tmp_path / "y.npz"), "--json"])
    assert r.exit_code == 0, r.output
    with np.load(tmp_path / "y.npz") as z:
        assert _rel(z[z.files[0]], want[0]) <= 1e-4
    # bad input: one line, exit 2, nothing written
    np.savez(tmp_path / "bad.npz", **{k: v[..., :-1] for k, v in feeds.items()})
    for args, word in ((["--inputs", str(tmp_path / "bad.npz")], "shape"),
                       (["--inputs", str(tmp_path / "none.npz")], "--inputs"),
                       (["--inputs", str(tmp_path / "in.npz"), "--reference"], None)):
        target = tmp_path / "z.npz"
        r = run(main, ["run", str(tmp_path if word == "x" else out), *args, "--out",
                       str(target)])
        if word is None:
            assert r.exit_code == 0 and target.exists()
            continue
        assert r.exit_code == 2 and word in r.output.strip().splitlines()[-1]
        assert not target.exists()
    r = run(main, ["run", str(tmp_path), "--inputs", str(tmp_path / "in.npz"), "--out",
                   str(tmp_path / "q.npz")])
    assert r.exit_code == 2 and "not a compiled model folder" in r.output
    for damage in ("{not json", "[1, 2]", '{"format": "mapspace-compiled-model/1"}'):
        (out / "model.json").write_text(damage)
        r = run(main, ["run", str(out), "--inputs", str(tmp_path / "in.npz"), "--out",
                       str(tmp_path / "q.npz")])
        assert r.exit_code == 2 and "damaged compiled model" in r.output, r.output
        assert not (tmp_path / "q.npz").exists()


@pytest.mark.parametrize("name", [n for n in FIXTURES if n.endswith(".ts.onnx")])
def test_relax_front_end_gives_the_same_mac_ops(name: str):
    """Through TVM's ONNX importer and the Relax front end, every exported model compiles
    (mask and shape ops are host ops) with the same MAC problems as our ONNX reader."""
    pytest.importorskip("tvm")
    from compiler.frontends.relax import from_onnx_via_relax

    def macs(g):
        return sorted((op.kind, g.problem(op).sizes) for op in g.ops()
                      if g.problem(op) is not None)

    a, b = from_onnx(MODELS / name), from_onnx_via_relax(MODELS / name)
    assert macs(a) == macs(b) and a.macs == b.macs > 0
    if name == "bert_tiny.ts.onnx":  # and runs: mask host ops built from their modules
        feeds, want, _ = _feeds(MODELS / name)
        got = run_graph(b, feeds)
        for t, w in zip(b.outputs, want, strict=True):
            assert _rel(got[t], w) <= 1e-4


def test_torch_export_front_end(tmp_path: Path):
    """A torch.export program (.pt2, and the ExportedProgram object) compiles through TVM's
    importer and the Relax front end to the same MAC problems as the ONNX export, and runs
    like torch itself: on cpu within 1e-4, on gemmini bit-exact against numpy's integer
    computation.  Skipped where torch is not installed (CI)."""
    torch = pytest.importorskip("torch")
    pytest.importorskip("tvm")

    pt2 = MODELS / "bert_tiny.pt2"
    with np.load(MODELS / "bert_tiny.inputs.npz") as z:
        feeds = {k: z[k] for k in z.files}
    with np.load(MODELS / "bert_tiny.torch_out.npz") as z:
        want = [z[k] for k in z.files]
    r = compile_model(pt2, "cpu", budget=300, time_per_op=None)
    onnx_g = from_onnx(MODELS / "bert_tiny.ts.onnx")

    def macs(g):
        return sorted((op.kind, g.problem(op).sizes) for op in g.ops()
                      if g.problem(op) is not None)

    assert macs(r.source_graph) == macs(onnx_g)
    got = r.run({k: feeds[k] for k in r.source_graph.inputs})
    for t, w in zip(r.source_graph.outputs, want, strict=True):
        assert _rel(got[t], w) <= 1e-4
    ep = torch.export.load(str(pt2))
    g = compile_model(ep, "gemmini", budget=300, time_per_op=None)
    x = {k: feeds[k] for k in g.source_graph.inputs}
    a, b = g.run(x), g.run(x, reference=True)
    assert all(np.array_equal(a[t], b[t]) for t in a)


def test_compile_emit_run_cli_on_an_exported_model(tmp_path: Path):
    """`compile --emit --run` on a torch.export-based ONNX file: the model with its own
    weights, every MAC op through a Gemmini kernel, bit-exact against numpy's integers."""
    r = CliRunner().invoke(main, ["compile", str(MODELS / "bert_tiny.dynamo.onnx"),
                                  "--target", "gemmini", "--budget", "200", "--emit", "--run",
                                  "--out", str(tmp_path / "o")])
    assert r.exit_code == 0, r.output
    assert "run: CORRECT" in r.output and "max |error| 0," in r.output
    assert (tmp_path / "o" / "code" / "model").exists()
    assert (tmp_path / "o" / "weights.npz").exists()


def test_external_data_loads_and_its_absence_is_one_error(tmp_path: Path):
    """``model.onnx`` + ``model.onnx.data`` (as the torch.export-based exporter writes big
    models) loads with its weights; without the data file, one error names it."""
    import onnx

    m = onnx.load(str(MODELS / "resnet18_narrow.ts.onnx"))
    path = tmp_path / "r.onnx"
    onnx.save(m, str(path), save_as_external_data=True, all_tensors_to_one_file=True,
              location="r.onnx.data", size_threshold=0)
    assert (tmp_path / "r.onnx.data").stat().st_size > path.stat().st_size
    a, b = from_onnx(path), from_onnx(MODELS / "resnet18_narrow.ts.onnx")
    assert set(a.values) == set(b.values)
    assert all(np.array_equal(a.values[k], b.values[k]) for k in a.values)
    (tmp_path / "r.onnx.data").unlink()
    from compiler.errors import CompilerError

    with pytest.raises(CompilerError, match="external data"):
        from_onnx(path)
