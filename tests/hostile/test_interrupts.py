"""Interrupts and faults (issue 12, items 4 and 6): SIGINT and SIGTERM during ``explore``,
``map`` and ``compile`` exit with code 130 and one line, keep the valid partial result
(written through the one output helper) and say so; a ``compile`` killed with SIGKILL
leaves its output folder as it was.

The in-process cases send the signal from inside the work at a chosen point (the n-th
sampler round, cost batch or shape search), so they are deterministic; one subprocess case
sends it from outside, as a shell's Ctrl-C does."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml

from .helpers import CLI_CODE, ROOT, cli, env, files, refused, start_py

W = ["--target", "gemmini", "--workload", "bert-base/ffn1"]
SIGNALS = [signal.SIGINT, signal.SIGTERM]


def _kill_on(n: int, sig: signal.Signals):
    """A function that sends ``sig`` to this process on its ``n``-th call."""
    calls = [0]

    def tick() -> None:
        calls[0] += 1
        if calls[0] == n:
            os.kill(os.getpid(), sig)
    return tick


def _count(line: str, unit: str) -> tuple[int, int]:
    """``after X of Y <unit>`` in the error line, as integers."""
    part = line.split(" after ", 1)[1].split(f" {unit}", 1)[0]
    done, total = part.split(" of ")
    return int(done.replace(",", "")), int(total.replace(",", ""))


@pytest.mark.parametrize("sig", SIGNALS, ids=lambda s: s.name)
def test_explore_interrupted_keeps_the_samples_drawn(tmp_path: Path, monkeypatch,
                                                     sig: signal.Signals) -> None:
    """Ctrl-C used to discard everything (exit 1, "Aborted!")."""
    import compiler.explore as ex

    tick = _kill_on(3, sig)

    class Interrupting(ex.SampleAndPrice):
        def __call__(self, *a: Any, **k: Any):
            out = super().__call__(*a, **k)
            tick()
            return out

    monkeypatch.setattr(ex, "SampleAndPrice", Interrupting)
    out, plot = tmp_path / "s.parquet", tmp_path / "edp.png"
    r = cli("explore", *W, "--samples", 500_000, "--out", out, "--plot", plot)
    line = refused(r, "explore", f"interrupted ({sig.name})", "a partial result", str(out),
                   code=130)
    done, total = _count(line, "samples")
    assert total == 500_000 and 0 < done < total
    df = pd.read_parquet(out)
    assert len(df) == done and (df["cycles"] > 0).all() and (df["energy_pJ"] > 0).all()
    assert plot.read_bytes()[:4] == b"\x89PNG"
    assert sorted(os.listdir(tmp_path)) == ["edp.png", "s.parquet"]


def test_explore_interrupted_before_any_sample_writes_nothing(tmp_path: Path,
                                                              monkeypatch) -> None:
    import compiler.explore as ex

    tick = _kill_on(1, signal.SIGINT)

    class Interrupting(ex.SampleAndPrice):
        def __call__(self, *a: Any, **k: Any):
            tick()
            return super().__call__(*a, **k)

    monkeypatch.setattr(ex, "SampleAndPrice", Interrupting)
    r = cli("explore", *W, "--samples", 1000, "--out", tmp_path / "s.parquet")
    refused(r, "explore", "interrupted (SIGINT)", "nothing written", code=130)
    assert os.listdir(tmp_path) == []


def _interrupt_cost(monkeypatch, n: int, sig: signal.Signals) -> None:
    import cost_models.search as search

    real = search.cost_function
    tick = _kill_on(n, sig)

    def cost_function(*a: Any, **k: Any):
        f = real(*a, **k)

        def cost(m):
            tick()
            return f(m)
        return cost

    monkeypatch.setattr(search, "cost_function", cost_function)


@pytest.mark.parametrize("sig", SIGNALS, ids=lambda s: s.name)
def test_map_interrupted_keeps_the_best_mapping_so_far(tmp_path: Path, monkeypatch,
                                                       sig: signal.Signals) -> None:
    _interrupt_cost(monkeypatch, 20, sig)
    out = tmp_path / "m.yaml"
    r = cli("map", *W, "--strategy", "random", "--budget", 10**9, "--out", out)
    line = refused(r, "map", f"interrupted ({sig.name})", "best mapping so far", str(out),
                   code=130)
    done, total = _count(line, "evaluations")
    assert total == 10**9 and 0 < done < total
    monkeypatch.undo()
    ev = cli("evaluate", *W, "--mapping", out, "--json")      # a valid, complete mapping
    assert ev.exit_code == 0, ev.output
    edp = float(line.rsplit("(edp ", 1)[1].rstrip(")"))
    import json
    assert json.loads(ev.output)["edp"] == pytest.approx(edp, rel=1e-5)


def test_map_interrupted_before_a_valid_mapping_writes_nothing(tmp_path: Path,
                                                               monkeypatch) -> None:
    _interrupt_cost(monkeypatch, 1, signal.SIGTERM)
    r = cli("map", *W, "--budget", 10**6, "--out", tmp_path / "m.yaml")
    refused(r, "map", "interrupted (SIGTERM)", "nothing written", code=130)
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("sig", SIGNALS, ids=lambda s: s.name)
def test_compile_interrupted_keeps_the_shapes_searched(tmp_path: Path, monkeypatch,
                                                       sig: signal.Signals) -> None:
    import compiler.pipeline as pipeline

    real = pipeline.find_mapping
    tick = _kill_on(3, sig)

    def find_mapping(*a: Any, **k: Any):
        tick()
        return real(*a, **k)

    monkeypatch.setattr(pipeline, "find_mapping", find_mapping)
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("the user's")
    r = cli("compile", "bert-base", "--budget", 200, "--out", out)
    line = refused(r, "compile", f"interrupted ({sig.name})", "searched.yaml", "no report",
                   code=130)
    assert _count(line, "distinct shapes") == (2, 5)
    assert sorted(os.listdir(out)) == ["keep.txt", "searched.yaml"]
    assert (out / "keep.txt").read_text() == "the user's"
    doc = yaml.safe_load((out / "searched.yaml").read_text())
    assert doc["distinct_shapes"] == 5 and len(doc["searched"]) == 2
    for shape in doc["searched"]:
        assert shape["ops"] and shape["problem"]
        kinds = {d["type"] for d in shape["mapping"]}
        assert {"temporal", "datatype"} <= kinds
    assert sorted(os.listdir(tmp_path)) == ["out"]


def test_ctrl_c_from_outside_exits_130_with_one_line(tmp_path: Path) -> None:
    """A real SIGINT from another process (as a shell sends on Ctrl-C), mid-run: whatever
    the moment, one line and exit 130; a written Parquet file is whole."""
    out = tmp_path / "s.parquet"
    p = start_py(["explore", *W, "--samples", 3_000_000, "--out", out], cwd=tmp_path)
    time.sleep(8)
    p.send_signal(signal.SIGINT)
    stdout, stderr = p.communicate(timeout=120)
    assert p.returncode == 130, stdout + stderr
    lines = (stdout + stderr).splitlines()
    assert len(lines) == 1 and lines[0].startswith("mapspace explore: error: interrupted "
                                                   "(SIGINT)"), lines
    if "partial" in lines[0]:
        assert len(pd.read_parquet(out)) == _count(lines[0], "samples")[0]
    else:
        assert not out.exists()
    assert all(n == "s.parquet" for n in os.listdir(tmp_path))


def _report_folder(tmp_path: Path) -> Path:
    out = tmp_path / "out"
    (out / "code").mkdir(parents=True)
    (out / "ops.csv").write_text("an older report\n")
    (out / "code" / "k.c").write_text("int main(void) { return 0; }\n")
    return out


def test_compile_killed_mid_search_leaves_its_folder_as_it_was(tmp_path: Path) -> None:
    """SIGKILL (no handler runs) while the shapes are searched."""
    out = _report_folder(tmp_path)
    before = files(tmp_path)
    p = start_py(["compile", "bert-base", "--budget", 10**7, "--out", out], cwd=tmp_path)
    time.sleep(6)
    p.kill()
    p.communicate(timeout=60)
    assert p.returncode == -signal.SIGKILL
    assert files(tmp_path) == before


def test_compile_killed_while_writing_leaves_its_folder_as_it_was(tmp_path: Path) -> None:
    """SIGKILL in the middle of writing the report (after ops.csv and ops.parquet are
    staged, while the plot is drawn): the folder is as it was; only a hidden staging
    folder beside it remains."""
    out = _report_folder(tmp_path)
    before = files(out)
    code = ("import os, signal, sys\n"
            "import compiler.report as report\n"
            "report.plot = lambda *a, **k: os.kill(os.getpid(), signal.SIGKILL)\n"
            + CLI_CODE)
    p = subprocess.run([sys.executable, "-c", code, "compile", "bert-base", "--budget", "200",
                        "--out", str(out)], cwd=tmp_path, capture_output=True, text=True,
                       timeout=600, env=env())
    assert p.returncode == -signal.SIGKILL, p.stdout + p.stderr
    assert files(out) == before
    left = [n for n in os.listdir(tmp_path) if n != "out"]
    assert all(n.startswith(".out.mapspace-") for n in left), left
    assert ROOT.exists()


@pytest.mark.parametrize("sig", SIGNALS, ids=lambda s: s.name)
def test_interrupt_while_starting_is_one_line(tmp_path: Path, sig: signal.Signals) -> None:
    """Ctrl-C in the first tenths of a second (the imports) was a KeyboardInterrupt
    traceback, SIGTERM a silent kill: the executable's entry point (compiler.entry)
    imports the command line inside its guard.  (Python's own start-up, before any of our
    code runs, stays uncovered: the first ~20 ms.)"""
    code = ("import importlib.abc, os, sys; sys.argv[0] = 'mapspace'\n"
            "class Hook(importlib.abc.MetaPathFinder):  # the signal while click is imported\n"
            "    def find_spec(self, name, path, target=None):\n"
            f"        if name == 'click': os.kill(os.getpid(), {int(sig)})\n"
            "sys.meta_path.insert(0, Hook())\n"
            "from compiler.entry import main; main()")
    p = subprocess.run([sys.executable, "-c", code, "explore", *W], cwd=tmp_path, env=env(),
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 130, p.stdout + p.stderr
    assert (p.stdout + p.stderr).splitlines() == [
        "mapspace: error: interrupted while starting; nothing written"]
