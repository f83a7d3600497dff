"""The learned cost model (cost_models/learned.py): features, training, ranking quality,
model files and what they refuse, ``mapspace train`` and ``--cost learned:M``, and
MetaSchedule's cost model learning from its measurements.

The data are synthetic: rows of the real dataset schema (``cost_models.dataset``) for
mappings drawn from gemmini's space, "measured" as the analytical cycles times a penalty
that depends on the mapping (:func:`penalty`), so the truth is known.
"""

from __future__ import annotations

import json
import zipfile
from functools import cache
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from compiler.cli import main
from cost_models import dataset, learned
from cost_models.model import evaluate
from cost_models.search import find_mapping
from mapspace.errors import MapspaceError
from mapspace.mapping import MappingBatch
from mapspace.problem import conv2d, matmul
from targets.registry import get_target

TARGET = get_target("gemmini")
ARCH = TARGET.arch()
PROBLEMS = (matmul(64, 256, 96, name="mm"), conv2d(1, 32, 16, 16, 64, 3, 3, name="conv"),
            matmul(128, 128, 128, name="mm2"), matmul(256, 64, 64, name="mm3"))


def penalty(m: MappingBatch) -> np.ndarray:
    """What the analytical model misses, by construction: loops kept in the scratchpad
    level cost extra, and so does an innermost scratchpad loop over dim 0."""
    lt = np.log2(m.temporal)
    return 1.0 + 3.0 * lt[:, 1].sum(1) / (1 + lt.sum((1, 2))) + 0.5 * (m.order[:, 1, 0] == 0)


def constant(m: MappingBatch) -> np.ndarray:
    """A monotone function of the analytical cycles: 3x them."""
    return np.full(len(m), 3.0)


@cache
def rows(problem_index: int, n: int = 120, seed: int = 0, how: str = "penalty",
         target: str = "gemmini") -> pd.DataFrame:
    """``n`` valid mappings of ``PROBLEMS[problem_index]`` as measured dataset rows."""
    p = PROBLEMS[problem_index]
    space = TARGET.space(p)
    m, _ = space.sample(4 * n, seed + 17 * problem_index)
    m = m[np.flatnonzero(space.valid_mask(m))]
    m = m[np.flatnonzero(evaluate(p, ARCH, m).valid)[:n]]
    ev = evaluate(p, ARCH, m)
    df = dataset.analytical_rows(p, m, ev, target=target, host="synthetic", workload=p.name,
                                 selection=["random"] * len(m), mapping_yaml=[""] * len(m))
    df["status"] = "ok"
    df["measured_cycles"] = ev.cost.cycles * {"penalty": penalty, "constant": constant}[how](m)
    return df


def data(indices=(0, 1, 2, 3), how: str = "penalty", n: int = 120) -> pd.DataFrame:
    return pd.concat([rows(i, n, 0, how) for i in indices], ignore_index=True)


@cache
def trained(how: str = "penalty", indices: tuple[int, ...] = (0, 1, 2, 3)) -> learned.Learned:
    return learned.train(data(indices, how), target="gemmini", arch=ARCH)


def learned_for_conformance(problem) -> learned.Learned:
    """The model the conformance suite runs (trained on all four synthetic workloads)."""
    return trained()


# --------------------------------------------------------------------------- features
def test_features_deterministic_finite_and_named():
    p = PROBLEMS[1]
    m, _ = TARGET.space(p).sample(300, 3)          # valid and invalid rows
    ev = evaluate(p, ARCH, m)
    a, b = learned.evaluation_features(ev, m), learned.evaluation_features(ev, m)
    assert a.shape == (300, len(learned.feature_names(ARCH.num_levels)))
    assert np.isfinite(a).all() and np.array_equal(a, b)
    assert not np.isclose(a[ev.valid].std(axis=0), 0).all()
    # a row's features are its own: row i of the batch == the batch of one
    for i in (0, 7, 123):
        one = learned.evaluation_features(evaluate(p, ARCH, m[i:i + 1]), m[i:i + 1])
        assert np.array_equal(one[0], a[i])


def test_dataset_features_equal_evaluation_features():
    """Training (from a dataset's stored analytical columns) and prediction (from a fresh
    evaluation) see the same numbers."""
    df = data((0, 1))
    X = learned.dataset_features(df)
    for p in PROBLEMS[:2]:
        sel = (df["workload"] == p.name).to_numpy()
        m = dataset.mappings_of(df[sel])
        assert np.array_equal(X[sel], learned.evaluation_features(evaluate(p, ARCH, m), m))


# --------------------------------------------------------------------------- training
def test_learned_ranks_held_out_workload_better_than_analytical():
    model = learned.train(data((0, 1, 3)), target="gemmini", arch=ARCH)
    held = rows(2, 200, 5)                       # mm2: never seen in training
    m = dataset.mappings_of(held)
    c = model.cost(PROBLEMS[2], ARCH, m)
    assert c.valid.all()
    truth = held["measured_cycles"].to_numpy()
    g = np.zeros(len(held))
    acc_learned = learned.pairwise_accuracy(c.cycles, truth, g)
    acc_analytical = learned.pairwise_accuracy(held["a_cycles"].to_numpy(), truth, g)
    assert acc_learned > acc_analytical + 0.03, (acc_learned, acc_analytical)
    k = model.meta["metrics"]                   # train's own holdout says the same
    assert k["holdout_rows"] > 0 and k["pairwise_learned"] > k["pairwise_analytical"]


def test_meta_records_what_the_model_is_for():
    meta = trained().meta
    assert meta["target"] == "gemmini" and meta["arch"] == ARCH.name
    assert meta["levels"] == list(ARCH.level_names)
    assert meta["feature_version"] == learned.FEATURE_VERSION and meta["format"] == learned.FORMAT
    assert meta["workloads"] == sorted(p.name for p in PROBLEMS)
    assert meta["n_rows"] == 4 * 120 and meta["hosts"] == ["synthetic"]


def test_costs_respect_the_compute_bound_and_analytical_energy():
    p = PROBLEMS[0]
    m, _ = TARGET.space(p).sample(200, 9)
    c = trained().cost(p, ARCH, m)
    a = evaluate(p, ARCH, m)
    assert np.array_equal(c.valid, a.valid) and np.array_equal(c.reasons, a.validity.reasons)
    v = c.valid
    assert (c.cycles[v] >= learned.compute_bound(p, ARCH)).all()
    np.testing.assert_array_equal(c.energy_pJ[v], a.cost.energy[v])
    np.testing.assert_allclose(c.edp[v], c.energy_pJ[v] * 1e-12 * c.cycles[v], rtol=1e-15)


def test_training_is_deterministic():
    a, b = learned.train(data((0, 1)), target="gemmini", arch=ARCH), \
        learned.train(data((0, 1)), target="gemmini", arch=ARCH)
    X = learned.dataset_features(data((2,)))
    assert np.array_equal(a.log_ratio(X), b.log_ratio(X))


def test_too_few_rows_refused():
    few = rows(0, 120).iloc[:learned.MIN_ROWS - 1]
    with pytest.raises(MapspaceError, match=f"{learned.MIN_ROWS - 1} measured.*at least "
                                            f"{learned.MIN_ROWS}"):
        learned.train(few, target="gemmini", arch=ARCH)
    failed = rows(0, 120).copy()
    failed.loc[failed.index[60:], "status"] = "build-failed"   # only ok rows count
    with pytest.raises(MapspaceError, match="at least"):
        learned.train(failed.iloc[11:], target="gemmini", arch=ARCH)
    learned.train(rows(0, 120).iloc[:learned.MIN_ROWS], target="gemmini", arch=ARCH)


def test_rows_of_another_target_do_not_count():
    with pytest.raises(MapspaceError, match="0 measured"):
        learned.train(data((0,)), target="cpu", arch=get_target("cpu").arch())


# --------------------------------------------------------------------------- files
def test_save_load_round_trip(tmp_path):
    model = trained()
    path = learned.save(model, tmp_path / "m.skops")
    back = learned.load(path, target="gemmini", arch=ARCH)
    assert dict(back.meta) == json.loads(json.dumps(dict(model.meta)))
    for p in PROBLEMS[:2]:
        m, _ = TARGET.space(p).sample(200, 4)
        a, b = model.cost(p, ARCH, m), back.cost(p, ARCH, m)
        assert np.array_equal(a.cycles, b.cycles) and np.array_equal(a.edp, b.edp,
                                                                     equal_nan=True)


def test_wrong_target_arch_or_feature_version_refused(tmp_path):
    path = learned.save(trained(), tmp_path / "m.skops")
    with pytest.raises(MapspaceError, match="trained for target 'gemmini', not 'cpu'"):
        learned.load(path, target="cpu")
    with pytest.raises(MapspaceError, match="trained for arch 'gemmini'"):
        learned.load(path, arch=get_target("cpu").arch())
    with pytest.raises(MapspaceError, match="levels"):   # same name, other levels
        learned.load(path, target="gemmini", arch=get_target("cpu").arch())
    old = learned.Learned(trained().regressor, {**trained().meta, "feature_version": 0})
    learned.save(old, tmp_path / "old.skops")
    with pytest.raises(MapspaceError, match="feature version 0.*version 1: retrain"):
        learned.load(tmp_path / "old.skops")
    with pytest.raises(MapspaceError, match="levels"):   # and at prediction time
        trained().cost(PROBLEMS[0], get_target("cpu").arch(), MappingBatch(
            *(np.ones((1, 5, 7), np.int64),) * 3, np.ones((1, 5, 7), bool),
            np.ones((1, 5, 3), bool)))


MARKER: list[str] = []


class Evil:
    """A type no model file may hold: building it would run code."""

    def __setstate__(self, state):
        MARKER.append("executed")
        Path(state["path"]).write_text("executed")


def test_unknown_types_refused_and_never_built(tmp_path):
    import skops.io as sio

    hit = tmp_path / "hit"
    ev = Evil()
    ev.path = str(hit)
    sio.dump({"meta": dict(trained().meta), "regressor": ev}, tmp_path / "evil.skops")
    with pytest.raises(MapspaceError, match="refusing to load.*Evil"):
        learned.load(tmp_path / "evil.skops")
    assert not hit.exists() and not MARKER
    # a real model file whose schema was edited to name a function
    good = learned.save(trained(), tmp_path / "m.skops")
    bad = tmp_path / "tampered.skops"
    with zipfile.ZipFile(good) as zi, zipfile.ZipFile(bad, "w") as zo:
        for item in zi.infolist():
            body = zi.read(item.filename)
            if item.filename == "schema.json":
                text = body.decode()
                assert "TreePredictor" in text
                body = text.replace('"TreePredictor"', '"system"', 1).replace(
                    '"sklearn.ensemble._hist_gradient_boosting.predictor"', '"os"', 1).encode()
            zo.writestr(item, body)
    with pytest.raises(MapspaceError, match=r"refusing to load.*os\.system"):
        learned.load(bad)


def test_corrupt_or_foreign_files_refused(tmp_path):
    import skops.io as sio

    good = learned.save(trained(), tmp_path / "m.skops").read_bytes()
    cases = {"garbage.skops": b"not a zip at all", "truncated.skops": good[:len(good) // 2],
             "empty.skops": b""}
    for name, body in cases.items():
        (tmp_path / name).write_bytes(body)
        with pytest.raises(MapspaceError, match="not a readable .skops model file"):
            learned.load(tmp_path / name)
    sio.dump({"weights": [1, 2, 3]}, tmp_path / "other.skops")
    with pytest.raises(MapspaceError, match="not a mapspace learned cost model"):
        learned.load(tmp_path / "other.skops")
    with pytest.raises(MapspaceError, match="no such model file"):
        learned.load(tmp_path / "missing.skops")
    with pytest.raises(MapspaceError, match="not a regular file"):   # a device, a folder
        learned.load("/dev/null")
    with pytest.raises(MapspaceError, match="not a regular file"):
        learned.load(tmp_path)


def test_cost_spec():
    assert learned.cost_model_of(None) is None and learned.cost_model_of("analytical") is None
    for bad in ("learned", "learned:", "tvm:x", "Analytical"):
        with pytest.raises(MapspaceError, match="--cost: expected analytical or learned:"):
            learned.cost_model_of(bad)


# --------------------------------------------------------------------------- re-ranking
def test_rerank_picks_the_learned_best_of_the_top_k():
    space = TARGET.space(PROBLEMS[0])
    model = trained()
    plain = find_mapping(space, budget=3000, seed=2, top_k=16)
    assert plain.top is not None and len(plain.top) == 16
    assert plain.best_objective == plain.top_objective[0]
    assert (np.diff(plain.top_objective) >= 0).all()
    r = find_mapping(space, budget=3000, seed=2, rerank=model, top_k=16)
    obj = model.cost(space.problem, space.arch, r.top).edp
    assert r.rerank_choice == int(np.argmin(obj)) and r.reranked_by == "learned"
    assert np.array_equal(r.best_mapping.temporal, r.top[r.rerank_choice].temporal)
    assert r.best_objective == r.top_objective[r.rerank_choice]


def test_rerank_by_a_monotone_model_changes_nothing():
    space = TARGET.space(PROBLEMS[0])
    model = trained("constant")
    for obj in ("edp", "latency"):
        a = find_mapping(space, budget=3000, seed=1, objective=obj)
        b = find_mapping(space, budget=3000, seed=1, objective=obj, rerank=model)
        assert b.rerank_choice == 0
        for f in ("temporal", "spatial", "order", "spatial_x", "keep"):
            assert np.array_equal(getattr(a.best_mapping, f), getattr(b.best_mapping, f))


# --------------------------------------------------------------------------- CLI
def _write_data(tmp_path, how="penalty", indices=(0, 1, 2, 3), n=120) -> Path:
    path = tmp_path / f"{how}.parquet"
    dataset.append(path, data(indices, how, n))
    return path


def test_cli_train_then_map_with_the_learned_model(tmp_path):
    r = CliRunner()
    d = _write_data(tmp_path, "constant")
    out = r.invoke(main, ["train", str(d), "--out", str(tmp_path / "m.skops")])
    assert out.exit_code == 0, out.output
    assert "480 rows of 4 workloads" in out.output and "pairwise ranking accuracy" in out.output
    base = ["map", "--target", "gemmini", "--workload", "bert-base/ffn1", "--budget", "2000",
            "--json"]
    a = r.invoke(main, base)
    b = r.invoke(main, base + ["--cost", f"learned:{tmp_path / 'm.skops'}"])
    assert a.exit_code == 0 and b.exit_code == 0, b.output
    ja, jb = json.loads(a.output), json.loads(b.output)
    assert ja["cost"] == "analytical" and jb["learned"]["choice"] == 0
    assert ja["best_mapping_yaml"] == jb["best_mapping_yaml"]     # monotone: same pick


def test_cli_bad_inputs_are_one_line(tmp_path):
    r = CliRunner()
    d = _write_data(tmp_path, "penalty", (0,), 120)
    model = tmp_path / "m.skops"
    assert r.invoke(main, ["train", str(d), "--out", str(model)]).exit_code == 0
    few = tmp_path / "few.parquet"
    dataset.append(few, rows(0, 120).iloc[:20])
    cases = [
        (["train", str(few), "--out", str(tmp_path / "x.skops")], "at least 50"),
        (["train", str(d), "--out", str(tmp_path / "x.skops"), "--target", "cpu"],
         "no rows of target 'cpu'"),
        (["map", "--target", "gemmini", "--workload", "bert-base/ffn1", "--cost", "fancy"],
         "--cost: expected analytical or learned:"),
        (["map", "--target", "cpu", "--workload", "bert-base/ffn1", "--cost",
          f"learned:{model}"], "trained for target 'gemmini', not 'cpu'"),
        (["map", "--target", "gemmini", "--workload", "bert-base/ffn1", "--cost",
          f"learned:{tmp_path / 'nope.skops'}"], "no such model file"),
        (["compile", "bert-base", "--target", "cpu", "--out", str(tmp_path / "c"),
          "--cost", f"learned:{model}"], "trained for target 'gemmini', not 'cpu'"),
        (["emit", "--target", "cpu", "--workload", "bert-base/ffn1", "--out",
          str(tmp_path / "e"), "--cost", f"learned:{model}"], "trained for target"),
    ]
    for args, msg in cases:
        out = r.invoke(main, args)
        assert out.exit_code == 2, (args, out.output)
        lines = out.output.strip().splitlines()
        assert len(lines) == 1 and msg in lines[0], (args, out.output)
    assert not (tmp_path / "x.skops").exists() and not (tmp_path / "c").exists()


def test_cli_refuses_bad_model_files_and_data(tmp_path):
    """The issue's bad inputs through the commands: a corrupt, a tampered (foreign type) and
    an old-feature-version model on --cost, a file that is not a dataset and an out-of-range
    seed on train -- each one line naming the option or file, exit 2, nothing written."""
    import skops.io as sio

    r = CliRunner()
    (tmp_path / "corrupt.skops").write_bytes(b"PK\x03\x04 truncated")
    ev = Evil()
    ev.path = str(tmp_path / "hit")
    sio.dump({"meta": dict(trained().meta), "regressor": ev}, tmp_path / "evil.skops")
    learned.save(learned.Learned(trained().regressor, {**trained().meta,
                                                       "feature_version": 0}),
                 tmp_path / "old.skops")
    (tmp_path / "notdata.parquet").write_text("rows")
    d = _write_data(tmp_path, "penalty", (0,), 120)
    base = ["map", "--target", "gemmini", "--workload", "bert-base/ffn1", "--budget", "200"]
    cases = [
        (base + ["--cost", f"learned:{tmp_path / 'corrupt.skops'}"],
         ["--cost", "corrupt.skops", "not a readable .skops model file"]),
        (base + ["--cost", f"learned:{tmp_path / 'evil.skops'}"],
         ["--cost", "evil.skops", "refusing to load", "Evil"]),
        (base + ["--cost", f"learned:{tmp_path / 'old.skops'}"],
         ["feature version 0", "retrain"]),
        (["train", str(tmp_path / "notdata.parquet"), "--out", str(tmp_path / "x.skops")],
         ["notdata.parquet", "cannot read a dataset"]),
        (["train", str(d), "--out", str(tmp_path / "x.skops"), "--seed", "-1"], ["seed"]),
    ]
    for args, words in cases:
        out = r.invoke(main, args)
        assert out.exit_code == 2, (args, out.output)
        lines = out.output.strip().splitlines()
        assert len(lines) == 1 and all(w in lines[0] for w in words), (args, out.output)
    assert not (tmp_path / "x.skops").exists() and not (tmp_path / "hit").exists()
    assert not MARKER


def test_compile_with_the_learned_model(tmp_path):
    from compiler.pipeline import compile_model

    model = learned.save(trained(), tmp_path / "m.skops")
    kw = dict(strategy="random", budget=300, seq=32, time_per_op=None)
    a = compile_model("bert-base", "gemmini", **kw)
    b = compile_model("bert-base", "gemmini", cost=f"learned:{model}", **kw)
    assert [r.name for r in a.rows] == [r.name for r in b.rows]
    assert all(r.cycles > 0 for r in b.rows if not r.on_host)
    with pytest.raises(MapspaceError, match="cost: expected analytical"):
        compile_model("bert-base", "gemmini", cost="nope")
    with pytest.raises(MapspaceError, match="trained for target 'gemmini', not 'cpu'"):
        compile_model("bert-base", "cpu", cost=trained())


# --------------------------------------------------------------------------- MetaSchedule
def test_metaschedule_cost_model_learns_from_measurements(tmp_path):
    tvm = pytest.importorskip("tvm")
    from tvm import s_tir

    from targets.tvm_common import op_spec, prim_func
    from targets.tvm_plugin import recognize
    from targets.tvm_plugin.metaschedule import (
        MapspaceCostModel,
        apply_recorded,
        candidate_mappings,
        predict_scores,
    )
    from targets.tvm_plugin.search import cpu_target

    mod = tvm.IRModule({"main": prim_func(op_spec(matmul(64, 64, 64))).with_attr(
        "global_symbol", "main")})
    mac = recognize(mod["main"])
    arch, _ = cpu_target(mac.word_bits, mac.problem)
    maps = candidate_mappings(mac, 24, select="random", pool=1024, budget=200)
    schs = []
    for i in range(len(maps)):
        s = s_tir.Schedule(mod)
        apply_recorded(s, mac, maps[i])
        schs.append(s)
    cyc = evaluate(mac.problem, arch, maps).cost.cycles.astype(float)
    secs = cyc * arch.cycle_seconds * penalty(maps) * 5
    from tvm.s_tir import meta_schedule as ms

    ctx = ms.TuneContext(mod=mod, target="llvm", num_threads=1)
    args = ms.arg_info.ArgInfo.from_prim_func(mod["main"])
    cands = [ms.MeasureCandidate(s, args) for s in schs]
    res = [ms.runner.RunnerResult(run_secs=[float(x)], error_msg=None) for x in secs]
    cm = MapspaceCostModel(min_rows=20)
    before = cm.predict(ctx, cands)
    np.testing.assert_array_equal(before, predict_scores(mod, schs))   # analytical
    cm.update(ctx, cands[:12], res[:12])
    assert cm.learned is None and len(cm.rows) == 12 and len(cm.history) == 12
    cm.update(ctx, cands[12:], res[12:])
    assert cm.learned is not None and len(cm.rows) == 24
    assert cm.learned.meta["target"] == "cpu" and cm.learned.meta["n_rows"] == 24
    after = cm.predict(ctx, cands)
    assert (after > 0).all() and not np.array_equal(after, before)
    cm.save(str(tmp_path / "ms.skops"))
    cm2 = MapspaceCostModel()
    cm2.load(str(tmp_path / "ms.skops"))
    np.testing.assert_array_equal(cm2.predict(ctx, cands), after)
