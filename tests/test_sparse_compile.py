"""Sparse pricing inside ``mapspace compile`` (cost_models.sparse_model): the default sparse
optimizations, a hand-computed 2:4 matmul, and bert-base with ``--passes sparsify=2:4``."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

from compiler.cli import main
from compiler.pipeline import compile_model
from compiler.report import frame
from cost_models import evaluate
from cost_models.search import find_mapping
from cost_models.sparse import Action, Format, evaluate_sparse
from cost_models.sparse_model import Sparse, default_sparse_optimizations
from mapspace.problem import matmul
from mapspace.space import Mapspace
from targets import default_constraints, load_target


def test_default_optimizations():
    arch = load_target("gemmini")
    keep = ("DRAM", "Scratchpad", "Registers")
    o = default_sparse_optimizations(arch, "nm", (2, 4), keep)
    assert o.formats == (Format("DRAM", "Weights", "nm", coord_bits=2),
                         Format("Scratchpad", "Weights", "nm", coord_bits=2))
    assert o.actions == (Action("skip", "Scratchpad", "Weights", ("Weights",)),
                         Action("skip", "compute", None, ("Weights",)))
    u = default_sparse_optimizations(arch, "magnitude", None, keep)
    assert {f.kind for f in u.formats} == {"bitmask"}
    assert u.actions[-1] == Action("gate", "compute", None, ("Weights",))


def test_2_4_matmul_hand_computed():
    # Z[64, 32] = A[64, 128] B[128, 32]: weights 128 x 32 = 4096, everything fits on chip
    p = matmul(64, 128, 32)
    arch = load_target("gemmini")
    m = find_mapping(Mapspace(p, arch, default_constraints("gemmini")), strategy="random",
                     budget=3000, seed=0).best_mapping
    ev = evaluate(p, arch, m)
    w, dram = p.tensor_index("Weights"), arch.level_index("DRAM")
    dense_reads = int(ev.movement.reads[0, dram, w])
    assert dense_reads == 128 * 32  # weights fetched from DRAM once
    model = Sparse.pruned_weights(0.5, "nm", (2, 4))
    sp = model.cost(p, arch, m)
    assert sp.valid[0] and model.describe(p, arch, m.keep[0]).startswith("2:4 nm@DRAM,Scratchpad")
    # MACs: 64 x 128 x 32 = 262144 dense, half performed (skipped at the MAC)
    assert sp.detail.macs[0] == pytest.approx(262144 / 2)
    opts = default_sparse_optimizations(arch, "nm", (2, 4), ("DRAM", "Scratchpad", "Registers"))
    sc = evaluate_sparse(ev, opts, {"Weights": (2, 4)}, mappings=m)
    # DRAM weight traffic: 4096 x 2/4 = 2048 nonzero words, plus 2-bit positions of the
    # 2048 nonzeros = 4096 bits = 512 eight-bit words of metadata
    assert sc.reads[0, dram, w] == pytest.approx(2048)
    assert sc.metadata_reads[0, dram, w] == pytest.approx(512)
    # DRAM energy of the weights: 8-word (64-bit) accesses at 512 pJ: (256 + 64) x 512
    assert sc.energy_breakdown[0, dram, w] == pytest.approx((2048 / 8 + 512 / 8) * 512.0)
    assert ev.cost.energy_breakdown[0, dram, w] == pytest.approx(4096 / 8 * 512.0)
    assert sp.energy_pJ[0] < float(ev.cost.energy[0]) and sp.cycles[0] <= int(ev.cost.cycles[0])


@pytest.fixture(scope="module")
def bert():
    kw = dict(strategy="random", budget=200, time_per_op=None, seed=0, seq=32)
    return {p: compile_model("bert-base", "gemmini", passes=p, **kw)
            for p in ("", "sparsify=2:4", "sparsify=0.5")}


def test_sparsify_2_4_lowers_bert_energy_and_latency(bert):
    dense, nm = bert[""], bert["sparsify=2:4"]
    assert nm.totals["energy_pJ"] < dense.totals["energy_pJ"]
    assert nm.totals["cycles"] < dense.totals["cycles"]
    assert nm.totals["macs"] == dense.totals["macs"]  # the report's MACs stay dense
    df = frame(nm, mapping=False).set_index("op")
    assert df.loc["TOTAL", "dense_cycles"] == df.drop("TOTAL")["dense_cycles"].sum()
    q = df.loc["layer0.q_proj"]
    assert q["sparse"].startswith("2:4") and q["energy_pJ"] < q["dense_energy_pJ"]
    s = df.loc["layer0.attn.scores"]  # bmm of two activations: not pruned, priced dense
    assert s["sparse"] == "" and s["cycles"] == s["dense_cycles"]
    assert "dense_cycles" not in frame(dense, mapping=False).columns


def test_unstructured_sparsity_is_gated_not_skipped(bert):
    u = {r.name: r for r in bert["sparsify=0.5"].rows}
    q = u["layer0.q_proj"]
    assert "gate MACs of zero weights" in q.sparse and q.energy_pJ < q.dense_energy_pJ
    assert q.cycles <= q.dense_cycles


def test_cli_compile_sparsify_report(tmp_path: Path):
    out = tmp_path / "o"
    r = CliRunner().invoke(main, ["compile", "bert-base", "--target", "gemmini", "--strategy",
                                  "random", "--budget", "100", "--seq", "16", "--passes",
                                  "sparsify=2:4", "--out", str(out)])
    assert r.exit_code == 0, r.output
    df = pd.read_csv(out / "ops.csv").set_index("op")
    assert {"dense_cycles", "dense_energy_pJ", "sparse"} <= set(df.columns)
    assert df.loc["TOTAL", "energy_pJ"] < df.loc["TOTAL", "dense_energy_pJ"]


def test_level_energy_of_sparse_ops(bert):
    from compiler.studies import level_energy

    nm = bert["sparsify=2:4"]
    le = level_energy(nm, ["layer0.q_proj"]).loc["layer0.q_proj"]
    parts = sum(le[c] for c in ("DRAM", "Scratchpad", "Accumulator", "Registers", "MAC", "leak"))
    row = next(r for r in nm.rows if r.name == "layer0.q_proj")
    assert parts == pytest.approx(row.energy_pJ) and le["energy_pJ"] == pytest.approx(
        row.energy_pJ)
    assert row.energy_pJ < row.dense_energy_pJ
