"""``mapspace measure`` (compiler/measure.py): the selection is valid, spans the space and is
the same for a seed; rows are written with the dataset's schema and keyed, so re-measuring
adds nothing; failures are recorded rows; a target that cannot run here is refused with one
line.  Small problems, few mappings, short timings (the whole file runs in well under a
minute on two cores)."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import yaml
from click.testing import CliRunner

from compiler.cli import main
from compiler.measure import measure, select
from cost_models.dataset import COLUMNS, KEY, STATUSES, mapping_key, read
from cost_models.interface import ANALYTICAL
from mapspace.problem import conv2d, matmul
from mapspace.problem_yaml import problem_to_dict
from targets.host import num_cores
from targets.registry import get_target

#: short timings: the tests check the bookkeeping, not the numbers
FAST = {"repeat": 2, "warmup": 1, "min_repeat_s": 0.002, "search_budget": 300}


def _cli(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def _one_error_line(res, *words):
    assert res.exit_code == 2, res.output
    lines = [ln for ln in res.output.splitlines() if ln.strip()]
    assert len(lines) == 1, res.output
    assert lines[0].startswith("mapspace measure: error: ")
    for w in words:
        assert w in lines[0], lines[0]


def _check_rows(df, target, n):
    assert list(df.columns) == list(COLUMNS)
    assert len(df) == n
    assert not df.duplicated(subset=list(KEY)).any()
    assert set(df["status"]) <= set(STATUSES)
    assert set(df["target"]) == {target}
    assert (df["selection"].isin(["top-k", "random"])).all()
    assert (df["measured_at"] != "").all()


# ---------------------------------------------------------------------- selection
def test_selection_valid_spanning_and_deterministic():
    p = matmul(64, 64, 64)
    space = get_target("cpu").space(p, "float32")
    a = select(space, 12, seed=3, search_budget=300)
    b = select(space, 12, seed=3, search_budget=300)
    c = select(space, 12, seed=4, search_budget=300)
    keys = [mapping_key(a.mappings, i) for i in range(len(a))]
    assert keys == [mapping_key(b.mappings, i) for i in range(len(b))]
    assert a.selection == b.selection
    assert keys != [mapping_key(c.mappings, i) for i in range(len(c))]
    assert len(set(keys)) == len(keys) == 12
    assert space.valid_mask(a.mappings).all()
    assert a.selection == ("top-k",) * 3 + ("random",) * 9
    edp = ANALYTICAL.cost(p, space.arch, a.mappings).edp
    assert edp[:3].max() <= edp[3:].min()              # top-K are the best
    assert list(edp[:3]) == sorted(edp[:3])
    # stratified: the random ones reach from near the top to the tail of the pool
    pool = ANALYTICAL.cost(p, space.arch,
                           space.decode(space.draw(4096, 3))).edp
    pool = pool[np.isfinite(pool)]
    assert edp[3:].max() > np.quantile(pool, 0.75)
    assert edp[3:].min() < np.quantile(pool, 0.25)
    top = select(space, 5, seed=3, top_k=5, search_budget=300)
    assert top.selection == ("top-k",) * 5


def test_selection_bad_top_k():
    space = get_target("cpu").space(matmul(16, 16, 16), "float32")
    from mapspace.errors import MapspaceError

    with pytest.raises(MapspaceError, match="--top-k"):
        select(space, 4, top_k=5)


# ---------------------------------------------------------------------- measuring
def test_measure_cpu_rows(tmp_path):
    out = tmp_path / "m.parquet"
    res = measure("cpu", matmul(64, 64, 64), n=8, seed=0, out=out, jobs=1, **FAST)
    df = read(out)
    _check_rows(df, "cpu", 8)
    assert (df["status"] == "ok").all(), df["error"].tolist()
    assert (df["measured_s"] > 0).all()
    assert (df["measured_spread"] >= 0).all()
    assert (df["repeats"] == 2).all()
    assert (df["threads"] == num_cores()).all()       # the emitter's thread pool
    assert df["measured_cycles"].isna().all()
    assert df["host"].str.endswith(f"x{num_cores()} cores").all()
    assert (df["a_edp"] > 0).all()
    s = res.summary()
    assert s["rows"] == 8 and s["status"] == {"ok": 8}
    assert s["fastest"]["measured_s"] == df["measured_s"].min()


def test_measure_gemmini_conv_appends_keyed(tmp_path):
    out = tmp_path / "g.parquet"
    p = conv2d(1, 16, 10, 10, 16, 3, 3, name="conv-small")
    measure("gemmini", p, n=8, seed=1, out=out, jobs=2, **FAST)   # the process pool
    first = read(out)
    _check_rows(first, "gemmini", 8)
    assert (first["status"] == "ok").all(), first["error"].tolist()
    assert (first["host"] == "gemmini-timing-model").all()
    assert (first["measured_cycles"] > 0).all()          # the timing model's cycles
    cs = get_target("gemmini").arch().cycle_seconds
    assert np.allclose(first["measured_s"], first["measured_cycles"] * cs)
    assert (first["measured_spread"] == 0).all()
    # the same seed again: the same keys, replaced, nothing appended
    again = measure("gemmini", p, n=8, seed=1, out=out, jobs=1, **FAST)
    second = read(out)
    assert len(second) == again.total_rows == 8
    assert set(second["mapping_key"]) == set(first["mapping_key"])
    # another problem appends
    measure("gemmini", matmul(32, 32, 32), n=2, seed=0, out=out, jobs=1, **FAST)
    third = read(out)
    assert len(third) == 10 and third["problem_key"].nunique() == 2


def test_failures_are_rows(tmp_path, monkeypatch):
    mod = get_target("cpu").emitter_module()
    real_emit = mod.emit
    calls = []

    def emit(problem, mapping, arch, **kw):
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("forced build failure")
        res = real_emit(problem, mapping, arch, **kw)
        if len(calls) == 2:
            return replace(res, correct=False, max_abs_error=1.0)
        return res

    monkeypatch.setattr(mod, "emit", emit)
    out = tmp_path / "f.parquet"
    res = measure("cpu", matmul(32, 32, 32), n=4, seed=0, out=out, jobs=1, **FAST)
    df = read(out)
    _check_rows(df, "cpu", 4)
    st = df["status"].tolist()
    assert st[0] == "build-failed" and "forced build failure" in df["error"][0]
    assert st[1] == "wrong-result" and "differs from numpy" in df["error"][1]
    assert st[2:] == ["ok", "ok"]
    assert df["measured_s"][:2].isna().all() and (df["repeats"][:2] == 0).all()
    assert res.summary()["status"] == {"build-failed": 1, "wrong-result": 1, "ok": 2}
    # a run that fails after the build: run-failed
    monkeypatch.setattr(mod, "emit", real_emit)

    def broken(*a, **k):
        raise RuntimeError("forced run failure")

    monkeypatch.setattr(mod, "run_kernel", broken)
    measure("cpu", matmul(32, 32, 32), n=4, seed=0, out=out, jobs=1, **FAST)
    df = read(out)
    assert len(df) == 4                                   # replaced, keyed
    assert (df["status"] == "run-failed").all()
    assert df["error"].str.contains("forced run failure").all()


# ---------------------------------------------------------------------- the command
def test_cli_problem_yaml_json(tmp_path):
    pf = tmp_path / "p.yaml"
    pf.write_text(yaml.safe_dump(problem_to_dict(matmul(32, 32, 32, name="mm32"))))
    out = tmp_path / "c.parquet"
    res = _cli("measure", "--target", "gemmini", "--problem", pf, "--n", 3, "--seed", 0,
               "--out", out, "--jobs", 1, "--json")
    assert res.exit_code == 0, res.output
    s = json.loads(res.output.strip().splitlines()[-1])
    assert s["rows"] == 3 and s["status"] == {"ok": 3} and s["dataset_rows"] == 3
    df = read(out)
    assert (df["workload"] == "mm32").all()
    text = _cli("measure", "--target", "gemmini", "--problem", pf, "--n", 3, "--seed", 0,
                "--out", out, "--jobs", 1)
    assert text.exit_code == 0, text.output
    assert "3 mappings measured (3 ok)" in text.output
    assert "fastest measured" in text.output and "wrote" in text.output
    assert len(read(out)) == 3


@pytest.mark.parametrize("args,words", [
    (["--target", "eyeriss-like", "--workload", "bert-base/ffn1"],
     ["--target", "eyeriss-like", "cannot be measured here", "no emitter"]),
    (["--target", "nope", "--workload", "bert-base/ffn1"], ["--target", "unknown target"]),
    (["--target", "cpu"], ["--workload", "--problem"]),
    (["--target", "cpu", "--workload", "bert-base/ffn1", "--problem", "p.yaml"],
     ["exactly one"]),
    (["--target", "cpu", "--workload", "nope/op"], ["unknown workload"]),
    (["--target", "cpu", "--problem", "/no/such.yaml"], ["/no/such.yaml"]),
    (["--target", "cpu", "--workload", "bert-base/ffn1", "--dtype", "int8", "--repeat", "0"],
     ["--repeat"]),
    (["--target", "gemmini", "--workload", "bert-base/ffn1", "--dtype", "float32"],
     ["--dtype"]),
])
def test_cli_refuses_bad_input(tmp_path, args, words):
    out = tmp_path / "x.parquet"
    res = _cli("measure", *args, "--n", 4, "--out", out)
    _one_error_line(res, *words)
    assert not out.exists()


def test_cli_refuses_target_without_compiler(tmp_path, monkeypatch):
    monkeypatch.setenv("CC", "no-such-cc-xyz")
    out = tmp_path / "x.parquet"
    res = _cli("measure", "--target", "gemmini", "--workload", "bert-base/ffn1", "--n", 4,
               "--out", out)
    _one_error_line(res, "--target", "cannot be measured here", "no C compiler")
    assert not out.exists()


def test_cli_refuses_a_file_that_is_not_a_dataset(tmp_path):
    out = tmp_path / "x.parquet"
    out.write_text("not parquet")
    res = _cli("measure", "--target", "gemmini", "--workload", "bert-base/ffn1", "--n", 4,
               "--out", out)
    _one_error_line(res, str(out))
    assert out.read_text() == "not parquet"


def test_cli_out_folder_missing(tmp_path):
    out = tmp_path / "missing" / "x.parquet"
    res = _cli("measure", "--target", "cpu", "--workload", "bert-base/ffn1", "--n", 4,
               "--out", out)
    _one_error_line(res, "--out", "does not exist")
    assert not Path(out).parent.exists()


# ---------------------------------------------------------------------- Dask backend
def test_measure_builds_on_a_dask_cluster_give_the_same_rows(tmp_path):
    """``measure(workers=2)``: the builds are tasks on a real 2-worker LocalCluster; the rows
    equal the in-process run's (the timing model is deterministic), measured_at aside."""
    pytest.importorskip("distributed")
    p = conv2d(1, 16, 10, 10, 16, 3, 3, name="conv-small")
    measure("gemmini", p, n=4, seed=2, out=tmp_path / "a.parquet", jobs=1, **FAST)
    measure("gemmini", p, n=4, seed=2, out=tmp_path / "b.parquet", workers=2, **FAST)
    a, b = (read(tmp_path / f).drop(columns=["measured_at"]) for f in ("a.parquet",
                                                                      "b.parquet"))
    assert (a["status"] == "ok").all() and len(a) == 4
    assert a.equals(b)


def test_build_task_sends_the_kernel_back_and_refuses_another_cpu(tmp_path):
    """A worker that cannot see the build folder returns the built artifact's bytes; a CPU
    kernel built on a host other than the one that times it is a build-failed outcome."""
    from compiler.measure import BUILT_ARTIFACT, build_task, host_fingerprint

    g = get_target("gemmini")
    p = matmul(16, 16, 16)
    m = select(g.space(p, g.default_dtype), 1, 0, search_budget=200).mappings
    far = str(tmp_path / "not-here" / "0")             # its parent does not exist
    o, data = build_task(g, p, m[0], g.default_dtype, far, 0, host_fingerprint(g))
    assert o.status == "built" and o.folder == far and data
    assert not (tmp_path / "not-here").exists()
    c = get_target("cpu")
    o, data = build_task(c, p, m[0], c.default_dtype, str(tmp_path / "0"), 0, "another CPU")
    assert o.status == "build-failed" and "another host" in o.error and data is None
    assert not (tmp_path / "0").exists()
    assert BUILT_ARTIFACT["cpu"] == "kernel.so"
