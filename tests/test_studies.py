"""compiler.studies: block selection, fusion comparison, breakdowns and re-pricing at other bit
widths (the helpers of notebooks/02_fusion_quant_sparsity.ipynb)."""

from __future__ import annotations

import pytest

from compiler.pipeline import compile_model
from compiler.studies import (
    CATEGORIES,
    block_cost,
    category_breakdown,
    ffn_ops,
    fusion_comparison,
    level_energy,
    mha_ops,
    op_category,
    with_bits,
)
from mapspace.errors import MapspaceError
from targets import load_target

SEARCH = {"strategy": "random", "budget": 3000, "time_per_op": None, "seed": 0}


@pytest.fixture(scope="module")
def base():
    return compile_model("bert-base", "gemmini", seq=128, **SEARCH)


def test_blocks(base):
    assert mha_ops(base) == {f"layer0.{n}" for n in (
        "q_proj", "q_proj.bias_add", "k_proj", "k_proj.bias_add", "v_proj", "v_proj.bias_add",
        "attn.scores", "attn.scale_mul", "attn.softmax", "attn.context",
        "attn.from_heads", "attn.merge_heads", "attn.out_proj", "attn.out_proj.bias_add")}
    assert ffn_ops(base, 3) == {f"layer3.{n}" for n in (
        "ffn1", "ffn1.bias_add", "ffn2", "ffn2.bias_add", "ffn_residual", "ffn_layernorm")}
    c = block_cost(base, ffn_ops(base))
    rows = {r.name: r for r in base.rows}
    assert c["cycles"] == sum(rows[n].cycles for n in ffn_ops(base))
    assert c["macs"] == 2 * 128 * 768 * 3072


def test_categories(base):
    assert op_category("layer0.ffn1", "matmul") == "FFN"
    assert op_category("layer0.q_proj", "matmul") == "projections"
    assert op_category("layer0.attn.scores", "bmm") == "attention bmm"
    assert op_category("layer0.gelu", "gelu") == "other"
    b = category_breakdown(base)
    assert set(b.index) <= set(CATEGORIES)
    t = base.totals
    assert b.cycles.sum() == t["cycles"] and b.energy_pJ.sum() == pytest.approx(t["energy_pJ"])
    assert b.loc["attention bmm", "macs"] == 12 * 2 * 128 * 128 * 768


def test_level_energy_adds_up(base):
    fused = compile_model("bert-base", "gemmini", passes="fuse=softmax", seq=128, **SEARCH)
    for r in (base, fused):
        df = level_energy(r, mha_ops(r))
        parts = df[list(load_target("gemmini").level_names) + ["MAC", "leak"]].sum(axis=1)
        assert parts.to_numpy() == pytest.approx(df.energy_pJ.to_numpy())
    df = level_energy(base, mha_ops(base))
    assert df.loc["layer0.attn.softmax", "DRAM"] == df.loc["layer0.attn.softmax", "energy_pJ"]
    assert "layer0.attn.scale_mul" not in df.index  # free host ops are left out


def test_fusion_comparison_direction():
    c = fusion_comparison("gemmini", "softmax", seq=512, strategy="random", budget=30000,
                          time_per_op=None, seed=0)
    assert c.block == "mha" and c.latency_change < -0.05  # survey: ~22% lower
    with pytest.raises(ValueError):
        fusion_comparison("gemmini", "gelu")


def test_with_bits(base):
    names = {"layer0.ffn1", "layer0.attn.scores"}
    same = with_bits(base, {"Weights": 8, "Inputs": 8}, names, budget=3000)
    assert set(same.index) == names
    wide = {"Weights": 32, "Inputs": 32, "Outputs": 32}
    with pytest.raises(MapspaceError):  # a 32-bit weight does not fit the 8-bit PE register
        with_bits(base, wide, names, budget=3000)
    arch = load_target("gemmini").with_level("Registers", width=32, datawidth=32)
    fp32 = with_bits(base, wide, names, arch=arch, budget=3000)
    scaled = with_bits(base, wide, names, arch=arch, budget=3000, word_scaled=True)
    # bits change capacities only; word_scaled prices 4 DRAM words per 32-bit element
    assert scaled.DRAM.to_numpy() == pytest.approx(4 * fp32.DRAM.to_numpy())
    assert scaled.Registers.to_numpy() == pytest.approx(fp32.Registers.to_numpy())  # 32-bit
    assert fp32.MAC.to_numpy() == pytest.approx(same.MAC.to_numpy())
    parts = scaled[list(arch.level_names) + ["MAC", "leak"]].sum(axis=1)
    assert parts.to_numpy() == pytest.approx(scaled.energy_pJ.to_numpy())
