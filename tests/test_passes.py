"""Graph passes (compiler/passes): fuse, quantize + SQNR, sparsify, the pass manager."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from compiler.errors import CompilerError
from compiler.graph import MAC_KINDS
from compiler.passes import (
    PASSES,
    annotated_problem,
    describe,
    fuse,
    op_sqnr,
    parse_passes,
    problem_bits,
    quantize,
    run_passes,
    sparsify,
    sqnr,
)
from compiler.zoo import bert, zoo_graph

LAYERS = 2


@pytest.fixture(scope="module")
def bert_small():
    return bert(LAYERS, 768, 12, 128, name="bert-base")


@pytest.fixture(scope="module")
def resnet():
    return zoo_graph("resnet50")


def _fused(g):
    return Counter(op.attr("fused") for op in g.ops() if op.attr("fused"))


def _snapshot(g):
    return [op for op in g.ops()], g.tensors, len(g)


# ------------------------------------------------------------------ fuse
def test_fuse_bert_counts_per_layer(bert_small):
    before = _snapshot(bert_small)
    f = fuse(bert_small)
    assert _snapshot(bert_small) == before  # input untouched
    assert _fused(f) == {("scale", "softmax"): LAYERS,
                         ("bias", "residual", "layernorm"): 2 * LAYERS,
                         ("bias", "gelu"): LAYERS}
    # per layer: scale_mul, softmax; 3 + 3 for the two layernorm chains; 2 for bias+gelu
    assert len(f) == len(bert_small) - 10 * LAYERS
    assert f.macs == bert_small.macs
    f.validate()
    for i in range(LAYERS):
        p = f"layer{i}"
        s = f.op(f"{p}.attn.scores")
        assert s.kind == "bmm" and s.attr("row_complete_dim") == "M"
        assert s.outputs == (f"{p}.attn.softmax",)
        assert "M" in f.problem(s).dims
        for name in (f"{p}.attn.out_proj", f"{p}.ffn2"):
            op = f.op(name)
            assert op.kind == "matmul" and op.attr("row_complete_dim") == "M"
            assert len(op.inputs) == 3 and op.inputs[2] == f"{name}.bias"
        ffn1 = f.op(f"{p}.ffn1")
        assert ffn1.attr("fused") == ("bias", "gelu") and ffn1.attr("row_complete_dim") is None
        assert ffn1.outputs == (f"{p}.gelu",)
        for gone in (f"{p}.attn.softmax", f"{p}.gelu", f"{p}.ffn_layernorm"):
            assert gone not in f.nx
    # the residual is a real dependency edge of the fused out-projection
    assert "layer0.attn.out_proj" in {o.name for o in f.successors("embeddings.layernorm")}


def test_fuse_full_bert_base_and_idempotent():
    g = zoo_graph("bert-base", seq=128)
    f = fuse(g)
    assert _fused(f) == {("scale", "softmax"): 12, ("bias", "residual", "layernorm"): 24,
                         ("bias", "gelu"): 12}
    assert len(fuse(f)) == len(f)


def test_fuse_resnet_conv_bias_relu(resnet):
    f = fuse(resnet)
    # conv1 + (conv1, conv2) of each of the 16 bottlenecks; conv3/downsample feed the add
    assert _fused(f) == {("bias", "relu"): 1 + 2 * 16}
    assert len(f) == len(resnet) - 33
    assert f.macs == resnet.macs
    assert f.op("conv1").outputs == ("conv1.relu",)
    assert f.op("layer1.0.conv3").attr("fused") is None
    assert f.op("fc").attr("fused") is None  # bias alone is not an epilogue fusion


def test_fuse_switches_and_other_consumers(bert_small):
    f = fuse(bert_small, softmax=False, layernorm=False)
    assert _fused(f) == {("bias", "gelu"): LAYERS}
    # GPT-2 is pre-LN: the residual sum also feeds the next residual, so no layernorm fusion
    # except the last layer's into ln_f
    g = fuse(zoo_graph("gpt2-prefill", seq=16))
    c = _fused(g)
    assert c[("bias", "residual", "layernorm")] == 1
    assert g.op("layer11.ffn2").outputs == ("ln_f",)


# ------------------------------------------------------------------ quantize
@pytest.mark.parametrize("bits", [8, 4])
def test_quantize_sets_bits_and_scales(bert_small, bits):
    before = _snapshot(bert_small)
    q = quantize(bert_small, bits)
    assert _snapshot(bert_small) == before
    macs = [op for op in q.ops() if op.kind in MAC_KINDS]
    assert macs and all(op.attr("weight_bits") == bits and op.attr("act_bits") == bits
                        and op.attr("out_bits") == 32 for op in macs)
    ffn1 = q.op("layer0.ffn1")
    assert len(ffn1.attr("weight_scales")) == 3072
    assert all(s > 0 for s in ffn1.attr("weight_scales")) and ffn1.attr("act_scale") > 0
    assert len(q.op("layer0.attn.scores").attr("weight_scales")) == 1
    assert problem_bits(ffn1) == {"Weights": bits, "Inputs": bits, "Outputs": 32}
    p = annotated_problem(q, "layer0.ffn1")
    assert {t.name: t.bits for t in p.tensors} == {"Weights": bits, "Inputs": bits,
                                                   "Outputs": 32}
    assert q.op("embeddings.layernorm").attr("weight_bits") is None
    assert problem_bits(bert_small.op("layer0.ffn1")) == {}


def test_quantize_deterministic_and_calibration(resnet):
    a, b = quantize(resnet, 8, seed=3), quantize(resnet, 8, seed=3)
    assert [op.attrs for op in a.ops()] == [op.attrs for op in b.ops()]
    w = np.zeros((64, 3, 7, 7))
    w[:, 0, 0, 0] = np.arange(1, 65)
    q = quantize(resnet, 8, calibration={"conv1.weight": w, "image": np.full(4, -2.54)})
    conv1 = q.op("conv1")
    np.testing.assert_allclose(conv1.attr("weight_scales"), np.arange(1, 65) / 127)
    assert conv1.attr("act_scale") == pytest.approx(2.54 / 127)
    with pytest.raises(CompilerError, match="calibration"):
        quantize(resnet, 8, calibration={"conv1.weight": np.zeros(3)})
    with pytest.raises(CompilerError, match="calibration"):
        quantize(resnet, 8, calibration={"nope": np.zeros(3)})
    with pytest.raises(CompilerError, match="bits"):
        quantize(resnet, 6)


def test_sqnr_int8_vs_int4(bert_small, resnet):
    # uniform quantizer: SQNR ~ 6.02 * bits + c, so int8 - int4 ~ 24 dB
    for g, name in ((bert_small, "layer0.ffn1"), (bert_small, "layer1.attn.scores"),
                    (resnet, "layer2.0.conv2")):
        s8, s4 = op_sqnr(g, name, 8), op_sqnr(g, name, 4)
        assert s8 > 30
        assert s4 < s8
        assert s8 - s4 == pytest.approx(24, abs=6)
    s = sqnr(quantize(bert_small, 4))
    vals = [op.attr("sqnr_db") for op in s.ops() if op.kind in MAC_KINDS]
    assert vals and all(5 < v < 25 for v in vals)
    s8 = sqnr(bert_small, 8)
    assert all(op.attr("sqnr_db") > 30 for op in s8.ops() if op.kind in MAC_KINDS)
    with pytest.raises(CompilerError, match="no MACs"):
        op_sqnr(bert_small, "layer0.gelu")


# ------------------------------------------------------------------ sparsify
def test_sparsify_nm_and_magnitude(bert_small):
    before = _snapshot(bert_small)
    s = sparsify(bert_small, nm=(2, 4))
    assert _snapshot(bert_small) == before
    ffn1 = s.op("layer0.ffn1")
    assert ffn1.attr("weight_density") == 0.5 and ffn1.attr("nm") == (2, 4)
    assert s.op("layer0.attn.scores").attr("weight_density") is None  # bmm: no weights
    p = annotated_problem(s, ffn1)
    assert {t.name: t.density for t in p.tensors}["Weights"] == 0.5
    m = sparsify(bert_small, density=0.3)
    assert m.op("layer0.q_proj").attr("weight_density") == 0.3
    assert m.op("layer0.q_proj").attr("pruning") == "magnitude"


@pytest.mark.parametrize(("kwargs", "key"), [
    (dict(density=0.0), "density"), (dict(density=1.5), "density"),
    (dict(nm=(4, 4)), "nm"), (dict(nm=(3, 2)), "nm"), (dict(nm=(0, 4)), "nm"),
    (dict(), "density/nm"), (dict(density=0.5, nm=(2, 4)), "density/nm"),
])
def test_sparsify_errors(bert_small, kwargs, key):
    with pytest.raises(CompilerError) as e:
        sparsify(bert_small, **kwargs)
    assert e.value.key == key and "sparsify" in str(e.value)


# ------------------------------------------------------------------ manager
def test_parse_and_run_passes(resnet):
    specs = parse_passes("fuse,quantize=int8,sparsify=2:4")
    assert specs == [("fuse", {}), ("quantize", {"bits": 8}), ("sparsify", {"nm": (2, 4)})]
    assert parse_passes("quantize=int4, sparsify=0.25,fuse=softmax+bias_act") == [
        ("quantize", {"bits": 4}), ("sparsify", {"density": 0.25}),
        ("fuse", {"softmax": True, "layernorm": False, "bias_act": True})]
    g = run_passes(resnet, specs)
    assert g is not resnet and len(g) == len(resnet) - 33
    conv = g.op("layer1.0.conv1")
    assert conv.attr("fused") == ("bias", "relu") and conv.attr("weight_bits") == 8
    assert conv.attr("weight_density") == 0.5
    assert len(run_passes(resnet, [])) == len(resnet)


@pytest.mark.parametrize(("text", "item"), [
    ("fuse,foo", "foo"), ("quantize=int3", "quantize=int3"), ("sparsify=4:2", "sparsify=4:2"),
    ("sparsify=2:x", "sparsify=2:x"), ("sparsify=0", "sparsify=0"), ("sparsify", "sparsify"),
    ("fuse=softmx", "fuse=softmx"), ("fuse,,quantize", "passes"),
])
def test_parse_errors_name_item(text, item):
    with pytest.raises(CompilerError) as e:
        parse_passes(text)
    assert e.value.key == item
    if text == "fuse,foo":
        assert all(name in str(e.value) for name in PASSES)


def test_describe():
    d = describe()
    assert [n for n, _ in d] == list(PASSES) and {"fuse", "quantize", "sparsify"} <= set(PASSES)
    assert all(isinstance(e, str) and e and "\n" not in e for _, e in d)
