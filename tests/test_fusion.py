"""Fusion pricing (compiler.fusion_cost) and the survey's fusion directions on Gemmini.

Kim et al. 2023 ("Full Stack Optimization of Transformer Inference") report, for BERT-Base
at sequence 512 on Gemmini: fusing Q x K^T with softmax lowers MHA latency (~22%), fusing
FFN2 with LayerNorm raises FFN latency at the 64 KiB accumulator (~27%).  Our analytical
model reproduces the first direction.  The second does not come out: a compute-bound
schedule of FFN2 with the 768-wide row complete in the accumulator exists (48 columns x
up to 21 rows per accumulator instance, weights/inputs tiled through the scratchpad, DRAM
traffic under its bandwidth), so the fused FFN2 costs the same cycles and fusion only
removes the host round trip of LayerNorm.  The test pins what holds.
"""

from __future__ import annotations

import re

import pytest

from compiler.errors import CompilerError
from compiler.fusion_cost import (
    HOST_ELEMENTS_PER_CYCLE,
    fused_nonlinear_cost,
    host_nonlinear_cost,
    needs_row,
    row_complete_constraints,
)
from compiler.mapper import find_mapping
from compiler.passes.fuse import fuse
from compiler.pipeline import compile_model, lower_op
from compiler.studies import block_cost, ffn_ops, mha_ops
from compiler.zoo import zoo_graph
from mapspace.errors import MapspaceError
from targets import default_constraints, load_target

SEQ = 512
SEARCH = {"strategy": "random", "budget": 30000, "time_per_op": None, "seed": 0}


def test_row_complete_constraints_directives():
    arch = load_target("gemmini")
    c = row_complete_constraints(arch, "M")
    assert not c.strict
    got = {(d.target, d.kind, d.factors[0].dim, d.factors[0].op, d.factors[0].value)
           for d in c.directives}
    assert got == {("DRAM", "temporal", "M", "=", 1), ("Scratchpad", "temporal", "M", "=", 1)}
    cs = row_complete_constraints(arch, "M", spatial=True)
    assert ("Scratchpad", "spatial") in {(d.target, d.kind) for d in cs.directives}
    with pytest.raises(CompilerError):
        row_complete_constraints(load_target("eyeriss-like"), "M")


def test_nonlinear_prices():
    arch = load_target("gemmini")
    h = host_nonlinear_cost(1024, arch)  # DRAM: 512 pJ per 8-word access, 8 words/cycle
    assert h.energy_pJ == pytest.approx(1024 * 2 * 64.0)
    assert h.cycles == 2 * 1024 // 8 + int(1024 / HOST_ELEMENTS_PER_CYCLE)
    f = fused_nonlinear_cost(1024, arch)  # accumulator read 2.2 + write 2.6 pJ per word
    assert f.cycles == 0 and f.energy_pJ == pytest.approx(1024 * (2.2 + 2.6))
    assert needs_row(("scale", "softmax")) and not needs_row(("bias", "gelu"))
    assert not needs_row(None)


def test_no_fitting_row_tile_raises():
    g = fuse(zoo_graph("bert-base", SEQ))
    p = lower_op(g, g.op("layer0.ffn2"))
    tiny = load_target("gemmini").with_level("Accumulator", depth=16)  # 16 < 768/16 cols
    cons = default_constraints("gemmini").merged(row_complete_constraints(tiny, "M"))
    with pytest.raises(MapspaceError):
        find_mapping(p, tiny, cons, strategy="random", budget=2000)


def _cycles(res, names) -> int:
    return int(block_cost(res, names)["cycles"])


_mha, _ffn = mha_ops, ffn_ops  # layer 0's MHA / FFN op names (compiler.studies)


@pytest.fixture(scope="module")
def runs():
    return {p: compile_model("bert-base", "gemmini", passes=p, seq=SEQ, **SEARCH)
            for p in ("", "fuse=softmax", "fuse=layernorm")}


def test_unfused_nonlinear_ops_cost_a_round_trip(runs):
    rows = {r.name: r for r in runs[""].rows}
    sm = rows["layer0.attn.softmax"]
    assert sm.on_host and sm.cycles == host_nonlinear_cost(12 * SEQ * SEQ, load_target(
        "gemmini")).cycles
    assert rows["layer0.ffn_layernorm"].energy_pJ > 0
    assert rows["layer0.gelu"].cycles == 0  # other host ops stay free


def test_fused_ops_keep_rows_in_the_accumulator(runs):
    rows = {r.name: r for r in runs["fuse=layernorm"].rows}
    y = rows["layer0.ffn2"].mapping_yaml
    for lvl in ("DRAM", "Scratchpad"):
        line = next(ln for ln in y.splitlines()
                    if f"target: {lvl}, type: temporal" in ln)
        assert re.search(r"\bM1\b", line), line
    assert "layer0.ffn_layernorm" not in rows


def test_softmax_fusion_lowers_mha_latency(runs):
    base, fused = runs[""], runs["fuse=softmax"]
    ratio = _cycles(fused, _mha(fused)) / _cycles(base, _mha(base))
    assert ratio < 0.95  # survey: ~22% lower; ours ~13% lower


def test_layernorm_fusion_on_ffn_in_our_model(runs):
    base, fused = runs[""], runs["fuse=layernorm"]
    b = {r.name: r for r in base.rows}
    f = {r.name: r for r in fused.rows}
    # the row-complete constraint never makes FFN2's own loop nest faster ...
    assert f["layer0.ffn2"].cycles >= b["layer0.ffn2"].cycles
    # ... but (unlike the survey's +27%) a full-row schedule fits the 64 KiB accumulator
    # at no extra cycles: fused FFN latency stays within 5% of unfused
    ratio = _cycles(fused, _ffn(fused)) / _cycles(base, _ffn(base))
    assert 0.95 < ratio < 1.05
