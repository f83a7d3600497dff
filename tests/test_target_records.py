"""Target records (targets/registry.py): a toy target added from a temporary folder runs
through ``map`` and ``compile``; ``compile`` and ``emit`` search the same space; the
Gemmini emitter's row rule is seen by the search as a reason flag, so searched and sampled
valid mappings always emit."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from compiler.cli import main
from compiler.pipeline import compile_model
from cost_models.search import find_mapping
from mapspace.errors import MapspaceError
from mapspace.problem import matmul
from mapspace.space import Mapspace
from mapspace.validity import Reason
from mapspace.workloads import workload
from targets import default_constraints, load_target
from targets.registry import TARGETS, Target, emitting_targets, get_target, register, unregister

TOY_ARCH = """\
architecture:
  version: '0.4'
  subtree:
  - name: toy
    attributes: {technology: "40nm", global_cycle_seconds: 1e-9}
    local:
    - name: DRAM[1..1]
      class: DRAM
      attributes: {width: 32, datawidth: 8, shared_bandwidth: 4}
    - name: Buffer[1..1]
      class: SRAM
      attributes: {depth: 256, width: 32, datawidth: 8, read_bandwidth: 8, write_bandwidth: 8}
    - name: MAC[1..4]
      class: intmac
      attributes: {datawidth: 8, meshX: 4}
"""
TOY_ERT = """\
ERT:
  version: '0.4'
  tables:
  - name: toy.DRAM[1..1]
    actions: [{name: read, energy: 200.0}, {name: write, energy: 200.0},
              {name: update, energy: 200.0}, {name: leak, energy: 0.0}]
  - name: toy.Buffer[1..1]
    actions: [{name: read, energy: 4.0}, {name: write, energy: 4.0},
              {name: update, energy: 4.0}, {name: leak, energy: 0.0}]
  - name: toy.MAC[1..4]
    actions: [{name: compute, energy: 0.5}, {name: leak, energy: 0.0}]
"""
#: the toy's hooks module: one extra rule (no more than 2 of the 4 MACs along M)
TOY_HOOKS = """\
import numpy as np
from mapspace.validity import Rule

def rules(problem, arch):
    m = problem.dim_index("M") if "M" in problem.dims else None
    def admits(p, a, batch):
        if m is None:
            return np.ones(len(batch), bool)
        return batch.spatial[:, :, m].prod(axis=1) <= 2
    return (Rule("toy-m-lanes", admits, "at most 2 MACs along M"),)
"""


@pytest.fixture
def toy(tmp_path, monkeypatch):
    """The toy target: one folder (arch.yaml, ERT.yaml, a hooks module) plus one record."""
    folder = tmp_path / "toy_target"
    folder.mkdir()
    (folder / "arch.yaml").write_text(TOY_ARCH)
    (folder / "ERT.yaml").write_text(TOY_ERT)
    (folder / "toy_hooks.py").write_text(TOY_HOOKS)
    monkeypatch.syspath_prepend(str(folder))
    register(Target("toy", "a 4-MAC toy accelerator", folder, hooks="toy_hooks"))
    yield "toy"
    unregister("toy")
    sys.modules.pop("toy_hooks", None)


def test_toy_target_map_and_compile(toy, tmp_path):
    r = CliRunner().invoke(main, ["targets", "--json"])
    assert r.exit_code == 0 and "toy" in [t["name"] for t in json.loads(r.output)]
    r = CliRunner().invoke(main, ["map", "--target", "toy", "--workload", "bert-base/ffn1",
                                  "--strategy", "random", "--budget", "300", "--json"])
    assert r.exit_code == 0, r.output
    res = json.loads(r.output)
    assert res["arch"] == "toy" and res["valid"] and res["macs"] == 512 * 768 * 3072
    # 4 MACs: at least MACs / 4 cycles
    assert res["cycles"] >= 512 * 768 * 3072 // 4
    out = tmp_path / "out"
    r = CliRunner().invoke(main, ["compile", "bert-base", "--target", "toy", "--seq", "16",
                                  "--budget", "300", "--strategy", "random", "--out",
                                  str(out)])
    assert r.exit_code == 0, r.output
    assert (out / "ops.csv").exists()
    res = compile_model("bert-base", "toy", budget=300, strategy="random", seq=16)
    assert res.mappings
    for name, m in res.mappings.items():  # the toy's rule holds for every searched mapping
        assert m.spatial[0, :, res.problems[name].dim_index("M")].prod() <= 2
    with pytest.raises(MapspaceError, match="no emitter for target 'toy'"):
        get_target("toy").emitter_module()
    assert "toy" not in emitting_targets()


def test_toy_rule_is_a_reason_flag(toy):
    p = matmul(16, 32, 8)
    space = get_target("toy").space(p)
    m, _ = space.sample(500, seed=0)
    ok, reasons = space.screen(m)
    wide = m.spatial[:, :, p.dim_index("M")].prod(axis=1) > 2
    assert wide.any() and (ok == ~wide).all()
    assert (reasons[wide] == int(Reason.TARGET)).all() and (reasons[~wide] == 0).all()
    best = find_mapping(space, strategy="random", budget=500).best_mapping
    assert best.spatial[0, :, p.dim_index("M")].prod() <= 2


def test_unknown_target_names_the_option():
    with pytest.raises(MapspaceError, match=r"--target: unknown target 'nope'"):
        get_target("nope")
    assert set(emitting_targets()) == {"cpu", "gemmini"}
    assert TARGETS["gemmini"].default_dtype == "int8" and TARGETS["cpu"].tvm_target == "llvm"


def test_compile_and_emit_search_the_same_space():
    """The cpu's compile space is its constraints *for the problem* (vector lanes over M),
    as emit's (before, compile searched the problem-free defaults)."""
    p = workload("bert-base/ffn1")
    t = get_target("cpu")
    c_compile = default_constraints("cpu", p)
    assert c_compile == t.constraints(p, "float32") == t.space(p).constraints
    assert c_compile != default_constraints("cpu")
    res = compile_model("bert-base", "cpu", budget=200, strategy="random", seq=16)
    m = res.mappings["layer0.ffn1"] if "layer0.ffn1" in res.mappings else \
        next(iter(res.mappings.values()))
    prob = res.problems["layer0.ffn1"] if "layer0.ffn1" in res.problems else \
        next(iter(res.problems.values()))
    lanes = prob.dim_index("M")
    spatial_lanes = m.spatial[0, -1]                 # the register level's fan-out
    assert all(f == 1 for d, f in enumerate(spatial_lanes) if d != lanes)


def test_gemmini_row_rule_flags_what_the_emitter_refuses():
    """A mapping the word-based model accepts but Gemmini's row-organised scratchpad cannot
    hold (channel blocks narrower than 16) is refused by the rule with Reason.TARGET."""
    from targets.gemmini.model import check

    arch, problem = load_target("gemmini"), matmul(512, 3072, 768, name="ffn2")
    space = get_target("gemmini").space(problem)
    batch, _ = Mapspace(problem, arch, default_constraints("gemmini")).sample(400, seed=3)
    valid = np.nonzero(space.valid_mask(batch) | ~space.screen(batch)[0])[0]
    ok, reasons = space.screen(batch)
    refused = 0
    for i in valid[:200]:
        try:
            check(problem, batch[int(i):int(i) + 1], arch)
            assert ok[i]
        except MapspaceError as e:
            assert not ok[i] and reasons[i] == int(Reason.TARGET), str(e)
            refused += 1
    assert refused > 0


def test_10k_valid_gemmini_mappings_emit(tmp_path):
    """10K mappings valid in gemmini's space (cost model + rules) of three shapes: every
    one passes the emitter's geometry, and a sample builds and runs bit-exact."""
    from targets.gemmini.emit import emit
    from targets.gemmini.model import check

    t = get_target("gemmini")
    shapes = [workload("bert-base/ffn2"), workload("resnet50/conv3_x"),
              workload("mobilenetv2/dw-28x28x192-s2")]
    total, rng = 0, np.random.default_rng(0)
    for k, p in enumerate(shapes):
        space = t.space(p)
        got, seed = [], 0
        while sum(len(g) for g in got) < 3334:
            m, _ = space.sample(8192, seed)
            seed += 1
            idx = np.nonzero(space.valid_mask(m))[0]
            got.append(m[idx])
        n = sum(len(g) for g in got)
        total += n
        for g in got:
            for i in range(len(g)):
                check(p, g[i:i + 1], t.arch())  # raises on any capacity failure
        for i in rng.choice(len(got[0]), 2, replace=False):
            r = emit(p, got[0][int(i):int(i) + 1], t.arch(), out_dir=tmp_path / f"{k}_{i}",
                     run=True)
            assert r.correct
    assert total >= 10_000


def test_old_out_of_space_mapping_is_refused_by_emit(tmp_path):
    """``emit --mapping`` with a mapping the emitter cannot build: one clear error, no
    re-search behind the user's back."""
    from compiler.emit import emit_op

    p = workload("mobilenetv2/dw-28x28x192-s2")
    plain = find_mapping(Mapspace(p, load_target("gemmini"), default_constraints("gemmini")),
                         budget=500).best_mapping
    assert plain.spatial.max() > 1
    with pytest.raises(MapspaceError, match="one channel at a time"):
        emit_op("gemmini", p, mapping=plain, out_dir=tmp_path / "x")
    assert not (tmp_path / "x").exists()


def test_folder_path_and_dtypes():
    t = get_target("gemmini")
    assert t.path == Path(__file__).resolve().parents[1] / "targets" / "gemmini"
    with pytest.raises(MapspaceError, match="runs int8, not 'float32'"):
        t.arch("float32")
    assert get_target("cpu").arch("int8").levels[0].datawidth == 8
