"""``mapspace sweep`` (issue 14): design points, the area proxy, the Pareto front, bad input,
and the same table in-process and on a LocalCluster of 2 worker processes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from compiler.cli import main
from compiler.sweep import (
    PE_UM2,
    SRAM_UM2_PER_BIT,
    Design,
    area_mm2,
    base_design,
    design_arch,
    pareto,
    parse_vary,
    sweep,
)
from mapspace.errors import MapspaceError
from targets import load_target

GEMMINI = load_target("gemmini")
SMALL = ["--model", "bert-base", "--seq", "32", "--budget", "300"]


def run(*args: str):
    return CliRunner().invoke(main, list(args))


def assert_bad(res, *needles: str) -> None:
    assert res.exit_code == 2, res.output
    lines = [x for x in res.stderr.strip().splitlines() if x]
    assert len(lines) == 1 and "Traceback" not in res.stderr, res.stderr
    for n in needles:
        assert n in lines[0], (n, lines[0])


def test_area_figures_from_the_accelergy_tables():
    # Eyeriss shared_glb: 12800 x 64 bit = 348892.5 um^2; intmac 417.0 + LRF 30.62 um^2
    assert SRAM_UM2_PER_BIT == pytest.approx(0.425894165, rel=1e-9)
    assert PE_UM2 == 447.62
    d = Design(16, 16, 256 * 1024, 64 * 1024, 8.0)
    assert area_mm2(d) == pytest.approx((256 * 447.62 + 327_680 * 8 * 0.425894165) / 1e6)


def test_base_design_and_its_arch_are_gemmini():
    b = base_design(GEMMINI)
    assert b == Design(16, 16, 262_144, 65_536, 8.0)
    a = design_arch(GEMMINI, b)
    assert a.levels == GEMMINI.levels and a.compute == GEMMINI.compute


def test_a_32x32_design_hand_checked():
    a = design_arch(GEMMINI, Design(32, 32, 512 * 1024, 128 * 1024, 16.0))
    dram, sp, acc, reg = (a.levels[a.level_index(n)]
                          for n in ("DRAM", "Scratchpad", "Accumulator", "Registers"))
    base_sp = GEMMINI.levels[GEMMINI.level_index("Scratchpad")]
    assert dram.shared_bandwidth == 16.0
    assert (sp.width, sp.depth, sp.capacity) == (256, 16_384, 512 * 1024)
    assert (sp.read_bandwidth, sp.write_bandwidth) == (64, 32)   # 2 and 1 rows a cycle
    assert sp.energy.read == 2 * base_sp.energy.read             # same pJ per word
    assert (acc.instances, acc.mesh_x, acc.depth) == (32, 32, 1024)  # 32 x 1024 x 4 B
    assert (reg.instances, reg.mesh_x, reg.mesh_y) == (1024, 32, 32)
    assert (a.compute.instances, a.compute.mesh_x, a.compute.mesh_y) == (1024, 32, 32)


def test_pareto_front_hand_case():
    area = np.array([1.0, 2.0, 2.0, 3.0, 4.0, 1.5])
    cost = np.array([9.0, 5.0, 6.0, 5.0, 1.0, 9.0])
    # (2,6) is beaten by (2,5); (3,5) by (2,5); (1.5,9) by (1,9)
    assert pareto(area, cost).tolist() == [True, True, False, False, True, False]


def test_parse_vary_and_bad_values():
    v = parse_vary(["pe=8x8,16x16", "scratchpad=64KiB,1MiB", "dram-bw=8,16.5"])
    assert v == {"pe": [(8, 8), (16, 16)], "scratchpad": [65_536, 1 << 20],
                 "dram-bw": [8.0, 16.5]}
    for bad, needle in ((["pe=8"], "ROWSxCOLS"), (["scratchpad=64QB"], "not a size"),
                        (["pe=8x8", "pe=16x16"], "given twice"), (["dram-bw=0"], "bandwidth"),
                        (["banks=2"], "unknown key 'banks'"), (["pe="], "empty sweep"),
                        ([], "empty sweep")):
        with pytest.raises(MapspaceError, match=needle):
            parse_vary(bad)


def test_cli_bad_input_one_line_before_any_work(tmp_path: Path):
    out = tmp_path / "sw"
    assert_bad(run("sweep", *SMALL, "--vary", "banks=2,4", "--out", str(out)),
               "--vary", "unknown key 'banks'", "pe, scratchpad, accumulator, dram-bw")
    assert_bad(run("sweep", *SMALL, "--vary", "pe=32x32", "--vary", "scratchpad=16B",
                   "--out", str(out)), "impossible design pe32x32-sp16B", "32 B")
    assert_bad(run("sweep", *SMALL, "--out", str(out)), "empty sweep")
    assert_bad(run("sweep", *SMALL, "--vary", "accumulator=", "--out", str(out)),
               "empty sweep")
    assert_bad(run("sweep", "--model", "no-such-model", "--vary", "pe=8x8"), "--model")
    assert_bad(run("sweep", *SMALL, "--base", "tpu", "--vary", "pe=8x8", "--out", str(out)),
               "--base: unknown target 'tpu'")
    assert not out.exists()


def test_cli_sweep_table_front_and_plot(tmp_path: Path):
    out = tmp_path / "sw"
    res = run("sweep", *SMALL, "--vary", "pe=8x8,16x16", "--vary",
              "accumulator=64KiB,256KiB", "--passes", "fuse", "--out", str(out), "--json")
    assert res.exit_code == 0, res.output
    s = json.loads(res.stdout)
    t = pd.read_parquet(out / "sweep.parquet")
    assert len(t) == s["points"] == 4
    pd.testing.assert_frame_equal(pd.read_csv(out / "sweep.csv"), t, check_dtype=False)
    assert (out / "pareto.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert t["pareto"].tolist() == pareto(t["area_mm2"], t["edp"]).tolist()
    assert s["front"] == t[t["pareto"]].sort_values("area_mm2")["design"].tolist()
    assert t["area_mm2"].tolist() == [area_mm2(Design(r.pe_rows, r.pe_cols,
                                                      r.scratchpad_bytes,
                                                      r.accumulator_bytes, r.dram_bw))
                                      for r in t.itertuples()]
    layers = pd.read_parquet(out / "layers.parquet")
    for r in t.itertuples():
        lay = layers[layers["design"] == r.design]
        # no shape beats the compute bound (MACs / PEs); the total adds host ops
        assert (lay["cycles_each"] >= lay["macs_each"] / r.pes).all()
        assert (lay["cycles"] == lay["cycles_each"] * lay["ops"]).all()
        assert r.cycles >= lay["cycles"].sum() > 0
        assert r.searches == r.distinct_shapes == len(lay)
    assert summary_on_disk(out)["front"] == s["front"]


def summary_on_disk(out: Path) -> dict:
    return json.loads((out / "summary.json").read_text())


def test_same_table_on_a_local_cluster_of_two_workers():
    distributed = pytest.importorskip("distributed")
    vary = ["pe=8x8,16x16", "dram-bw=8,16"]
    local = sweep("bert-base", vary=vary, seq=32, budget=200)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as lc, distributed.Client(lc) as c:
        remote = sweep("bert-base", vary=vary, seq=32, budget=200, client=c)
    pd.testing.assert_frame_equal(local.table, remote.table)
    pd.testing.assert_frame_equal(local.layers, remote.layers)
