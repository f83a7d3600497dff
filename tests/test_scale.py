"""Scale-out (issue 14): explore into a dataset folder of deterministic shards, on the
in-process backend and on a real Dask LocalCluster of 2 worker processes.

The reference for every dataset is :func:`compiler.explore.explore` (the first ``samples``
valid candidates in draw order, one process): the dataset must equal its frame row for
row, whatever the backend, the shard size, a killed worker or an interruption."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

from compiler.cli import main
from compiler.explore import explore
from compiler.shards import (
    MANIFEST,
    SHARDS,
    differences,
    explore_dataset,
    read_dataset,
    read_manifest,
)
from mapspace.errors import MapspaceError
from mapspace.workloads import workload
from targets import default_constraints, load_target

P = workload("bert-base/ffn1")
A = load_target("gemmini")
C = default_constraints("gemmini", P)
N = 9000          # ~4 shards of one chunk (acceptance ~58 %)
SEED = 5


@pytest.fixture(scope="module")
def reference() -> pd.DataFrame:
    r = explore(P, A, C, N, SEED)
    return r.frame, r.summary


def shard_files(out: Path, hidden: bool = True) -> list[str]:
    """Every file in the shards folder (``hidden``: the writer's temporaries too)."""
    return sorted(f for f in os.listdir(out / SHARDS) if hidden or not f.startswith("."))


def test_dataset_equals_single_process_explore(tmp_path: Path, reference):
    frame, summary = reference
    for chunks in (1, 3, 16):  # any shard size: the same rows
        out = tmp_path / f"ds{chunks}"
        run = explore_dataset(out, P, A, C, N, SEED, shard_chunks=chunks)
        pd.testing.assert_frame_equal(read_dataset(out), frame)
        # the candidates drawn depend on the shard size (explore draws rounds of 16 chunks)
        skip = {"seconds", "evals_per_s", "kernel_load_s"} | (
            set() if chunks == 16 else {"candidates", "acceptance"})
        for k, v in summary.items():
            if k not in skip:
                assert run.summary[k] == v, k
        assert run.summary["candidates"] == run.shards * chunks * 4096
        assert shard_files(out) == [f"shard-{k:06d}.parquet" for k in range(run.shards)]
        best = frame.iloc[[frame["edp"].to_numpy().argmin()]]
        assert run.summary["edp_min"] == best["edp"].iloc[0]
    assert read_manifest(out)["state"]["rows"] == N


def test_interrupted_then_resumed_is_identical(tmp_path: Path, reference):
    frame, _ = reference
    out = tmp_path / "ds"
    calls = []

    def stop_after_two(have, drawn):
        calls.append(have)
        if len(calls) == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        explore_dataset(out, P, A, C, N, SEED, shard_chunks=1, progress=stop_after_two)
    assert shard_files(out) == ["shard-000000.parquet", "shard-000001.parquet"]
    assert not read_manifest(out)["state"]["complete"]
    run = explore_dataset(out, P, A, C, N, SEED, shard_chunks=1, resume=True)
    assert run.ran == run.shards - 2            # only the missing shards ran
    pd.testing.assert_frame_equal(read_dataset(out), frame)
    again = explore_dataset(out, P, A, C, N, SEED, shard_chunks=1, resume=True)
    assert again.ran == 0 and again.summary["edp_median"] == run.summary["edp_median"]


def test_resume_with_a_different_configuration_is_refused(tmp_path: Path):
    out = tmp_path / "ds"
    explore_dataset(out, P, A, C, 3000, SEED, shard_chunks=1)
    with pytest.raises(MapspaceError, match=r"seed: 5 there, 6 now"):
        explore_dataset(out, P, A, C, 3000, 6, shard_chunks=1, resume=True)
    other = workload("bert-base/ffn2")
    with pytest.raises(MapspaceError, match=r"problem\.problem\.instance\.C: 768 there, 3072 now"):
        explore_dataset(out, other, A, default_constraints("gemmini", other), 3000, SEED,
                        shard_chunks=1, resume=True)
    with pytest.raises(MapspaceError, match="exists; continue that run with --resume"):
        explore_dataset(out, P, A, C, 3000, SEED, shard_chunks=1)
    assert differences({"a": {"b": [1, 2]}}, {"a": {"b": [1, 3]}}) == ["a.b[1]: 2 there, 3 now"]


def test_cli_dataset_resume_refused_names_the_difference(tmp_path: Path):
    base = ["explore", "--target", "gemmini", "--workload", "bert-base/ffn1"]
    out = tmp_path / "ds"
    r = CliRunner().invoke(main, [*base, "--samples", "2000", "--out", str(out), "--json"])
    assert r.exit_code == 0, r.output
    s = json.loads(r.stdout)
    assert s["valid"] == 2000 and s["out"] == str(out) and "best_mapping_yaml" in s
    r = CliRunner().invoke(main, [*base, "--samples", "4000", "--resume", str(out)])
    assert r.exit_code == 2
    assert r.stderr.strip() == (f"mapspace explore: error: --resume: {out}: the run there "
                                "has a different configuration: samples: 2000 there, 4000 now")
    assert (out / MANIFEST).is_file() and len(shard_files(out)) == 1
    other = tmp_path / "not-a-dataset"
    r = CliRunner().invoke(main, [*base, "--samples", "2000", "--resume", str(other)])
    assert r.exit_code == 2 and not other.exists()
    assert r.stderr.strip() == (f"mapspace explore: error: --resume: {other}: not an explore "
                                "dataset folder (no readable manifest.json: FileNotFoundError)")


def test_unreachable_cluster_fails_fast_and_writes_nothing(tmp_path: Path):
    out = tmp_path / "ds"
    t0 = time.monotonic()
    r = CliRunner().invoke(main, ["explore", "--target", "gemmini", "--workload",
                                  "bert-base/ffn1", "--out", str(out), "--cluster",
                                  "tcp://127.0.0.1:1"])
    assert time.monotonic() - t0 < 10
    assert r.exit_code == 2
    assert r.stderr.startswith("mapspace explore: error: --cluster: cannot reach a Dask "
                               "scheduler at tcp://127.0.0.1:1")
    assert not out.exists()


def test_imports_leave_dask_unloaded():
    code = ("import sys, compiler, mapspace, compiler.cli, compiler.shards, compiler.sweep; "
            "print([m for m in ('dask', 'distributed') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.strip()
    assert out == "[]"


def test_workers_option_starts_its_own_local_cluster(tmp_path: Path, reference):
    """workers=2 with no Dask client anywhere: a LocalCluster of its own, shut down after;
    no default client is left behind."""
    distributed = pytest.importorskip("distributed")
    frame, _ = reference
    run = explore_dataset(tmp_path / "ds", P, A, C, N, SEED, shard_chunks=1, workers=2)
    assert run.summary["backend"] == "local-cluster (2 workers)"
    pd.testing.assert_frame_equal(read_dataset(tmp_path / "ds"), frame)
    with pytest.raises(ValueError):
        distributed.default_client()


# ------------------------------------------------------------------ a real LocalCluster
@pytest.fixture(scope="module")
def cluster():
    distributed = pytest.importorskip("distributed")
    lc = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None,
                                  env={"NUMBA_NUM_THREADS": "1"})
    client = distributed.Client(lc)
    yield client
    client.close()
    lc.close()


def test_local_cluster_worker_killed_mid_run(tmp_path: Path, cluster):
    """SIGKILL a worker while the scheduler has a shard running on it: the scheduler re-runs
    the lost shard elsewhere; every shard is present exactly once and the dataset equals
    the single-process one."""
    n = 30_000  # ~13 one-chunk shards
    frame = explore(P, A, C, n, SEED).frame
    out = tmp_path / "ds"
    killed: list[int] = []
    done = threading.Event()

    def kill_a_busy_worker():  # polls the scheduler while the run goes on
        while not done.is_set() and not killed:
            busy = [w for w, keys in cluster.processing().items()
                    if any(str(k).startswith("explore-shard") for k in keys)]
            if busy:
                for pid in cluster.run(os.getpid, workers=busy[:1]).values():
                    os.kill(pid, signal.SIGKILL)
                    killed.append(pid)
            time.sleep(0.005)

    killer = threading.Thread(target=kill_a_busy_worker)
    killer.start()
    try:
        run = explore_dataset(out, P, A, C, n, SEED, shard_chunks=1, client=cluster)
    finally:
        done.set()
        killer.join()
    assert killed, "no worker was ever busy"
    assert run.summary["backend"].startswith("client")
    pd.testing.assert_frame_equal(read_dataset(out), frame)
    assert shard_files(out) == [f"shard-{k:06d}.parquet" for k in range(run.shards)]
    lost = cluster.run_on_scheduler(lambda dask_scheduler: [
        t[0] for t in dask_scheduler.transition_log
        if str(t[0]).startswith("explore-shard") and t[1] == "processing"
        and t[2] in ("released", "waiting", "no-worker")])
    assert lost, "the killed worker held no running shard"


def test_local_cluster_interrupted_and_resumed(tmp_path: Path, cluster, reference):
    frame, _ = reference
    out = tmp_path / "ds"
    calls = []

    def stop(have, drawn):
        calls.append(have)
        if len(calls) == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        explore_dataset(out, P, A, C, N, SEED, shard_chunks=1, client=cluster,
                        progress=stop)
    kept = {int(f[6:12]) for f in shard_files(out, hidden=False)}
    assert kept
    # resumed on the active client (the cluster's); kept shards are not run again
    run = explore_dataset(out, P, A, C, N, SEED, shard_chunks=1, resume=True)
    assert run.summary["backend"].startswith("client")
    assert run.ran >= len(set(range(run.shards)) - kept)
    assert run.summary["shards_run"] == run.ran
    pd.testing.assert_frame_equal(read_dataset(out), frame)
    assert shard_files(out) == [f"shard-{k:06d}.parquet" for k in range(run.shards)]


def test_a_worker_that_cannot_see_the_folder_returns_the_rows(tmp_path: Path, reference):
    """Remote workers without the folder send the rows back (the caller writes them); with
    the folder visible they write the shard themselves and send only its metadata."""
    from compiler.shards import run_shard, shard_path

    frame, _ = reference
    rows, meta = run_shard(P, A, C, SEED, 0, 1, "k", str(tmp_path / "not-here"))
    assert meta == {"shard": 0, "first_chunk": 0, "chunks": 1, "candidates": 4096,
                    "valid": len(rows), "rows": len(rows)}
    pd.testing.assert_frame_equal(rows, frame.iloc[:len(rows)])
    (tmp_path / "ds" / SHARDS).mkdir(parents=True)
    none, meta2 = run_shard(P, A, C, SEED, 0, 1, "k", str(tmp_path / "ds"))
    assert none is None and meta2 == meta
    pd.testing.assert_frame_equal(pd.read_parquet(shard_path(tmp_path / "ds", 0)), rows)


def test_compile_searches_on_a_local_cluster_equal_in_process(cluster):
    """compile_model's distinct shapes as tasks on 2 workers: the same report as in this
    process (``client=False`` forces in-process while a client is active)."""
    from compiler.pipeline import compile_model

    local = compile_model("bert-base", "gemmini", passes="fuse", seq=32, budget=300,
                          client=False)
    remote = compile_model("bert-base", "gemmini", passes="fuse", seq=32, budget=300,
                           client=cluster)
    assert remote.searches == local.searches == local.distinct_shapes
    assert [(r.name, r.cycles, r.energy_pJ, r.mapping_yaml) for r in remote.rows] == \
        [(r.name, r.cycles, r.energy_pJ, r.mapping_yaml) for r in local.rows]
    assert remote.evaluations == local.evaluations


def test_map_restarts_on_a_local_cluster(cluster):
    """map --restarts: restart i is find_mapping with restart_seed(seed, i); the best by
    objective (ties: lowest index) is kept, the same on 2 workers as in this process."""
    from compiler.restarts import map_restarts, restart_seed
    from cost_models.search import find_mapping
    from mapspace.space import Mapspace

    space = Mapspace(P, A, C)
    alone = [find_mapping(space, seed=restart_seed(3, i), budget=400) for i in range(3)]
    assert restart_seed(3, 0) == 3
    local, objs = map_restarts(space, restarts=3, seed=3, budget=400, client=False)
    remote, objs2 = map_restarts(space, restarts=3, seed=3, budget=400, client=cluster)
    assert objs == objs2 == [r.best_objective for r in alone]
    best = min(range(3), key=lambda i: (objs[i], i))
    for r in (local, remote):
        assert r.best_objective == alone[best].best_objective
        assert (r.best_mapping.temporal == alone[best].best_mapping.temporal).all()
        assert r.evaluations == sum(a.evaluations for a in alone)
    one, _ = map_restarts(space, restarts=1, seed=3, budget=400, client=False)
    assert one.best_objective == alone[0].best_objective


def test_cli_ctrl_c_keeps_shards_and_prints_the_resume_command(tmp_path: Path):
    """SIGINT while shards are being written: exit 130, one line naming the kept shards and
    the command that resumes; that command finishes the run with the single-process rows."""
    import shlex

    out = tmp_path / "ds"
    args = ["explore", "--target", "gemmini", "--workload", "bert-base/ffn1", "--samples",
            "600000", "--seed", "2", "--out", str(out)]
    proc = subprocess.Popen([sys.executable, "-m", "compiler.cli", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    t0 = time.monotonic()
    while not (out / SHARDS).is_dir() or not shard_files(out, hidden=False):
        assert proc.poll() is None and time.monotonic() - t0 < 120
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    kept = len(shard_files(out))
    assert kept >= 1
    assert err.startswith(f"mapspace explore: error: interrupted (SIGINT); {kept} finished "
                          f"shard(s) kept in {out}; resume with: mapspace explore ")
    command = shlex.split(err.split("resume with: ")[1])
    assert command[-2:] == ["--resume", str(out)] and "--out" not in command
    done = subprocess.run([sys.executable, "-m", "compiler.cli", *command[1:], "--json"],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["shards_run"] < json.loads(done.stdout)["shards"]
    ref = explore(P, A, C, 600_000, 2).frame
    pd.testing.assert_frame_equal(read_dataset(out), ref)


def test_cluster_address_of_a_running_scheduler(tmp_path: Path, cluster, reference):
    """--cluster tcp://HOST:PORT: a running scheduler reached by its address (here the
    LocalCluster's); the caller's active client stays the default."""
    import distributed

    frame, _ = reference
    address = cluster.scheduler.address
    assert address.startswith("tcp://")
    run = explore_dataset(tmp_path / "ds", P, A, C, N, SEED, shard_chunks=1, cluster=address)
    assert run.summary["backend"] == "cluster (2 workers)"
    pd.testing.assert_frame_equal(read_dataset(tmp_path / "ds"), frame)
    assert distributed.default_client() is cluster
