"""Built-in model graphs: structure and MAC totals against hand-derived figures."""

from __future__ import annotations

import pytest

from compiler.errors import CompilerError
from compiler.zoo import ZOO, bert, gpt2, resnet50, zoo_graph
from mapspace.problem import bmm, matmul


def _macs(g, prefix: str = "") -> int:
    return sum(p.macs for op in g.ops() if op.name.startswith(prefix)
               and (p := g.problem(op)) is not None)


def test_zoo_names_and_unknown():
    assert set(ZOO) == {"bert-base", "bert-large", "gpt2-prefill", "gpt2-decode", "resnet50"}
    with pytest.raises(CompilerError, match="unknown model 'vgg'.*bert-base.*resnet50"):
        zoo_graph("vgg")
    with pytest.raises(CompilerError, match="seq"):
        zoo_graph("resnet50", seq=128)


def test_resnet50_exact_macs():
    # Hand-derived from the layer table (batch 1, 224x224), conv and fc MACs:
    conv1 = 112 * 112 * 64 * 3 * 7 * 7                               # 118,013,952
    block = 3136 * 256 * 64 + 3136 * 64 * 64 * 9 + 3136 * 64 * 256   # 218,365,952 (= every
    first1 = 3136 * 64 * 64 + 3136 * 64 * 64 * 9 + 2 * 3136 * 64 * 256  # later block/stage)
    first = 2 * 3136 * 256 * 128 + 784 * 128 * 128 * 9 + 784 * 128 * 512  # 372,506,624
    assert first == 372_506_624 and block == 218_365_952
    total = conv1 + first1 + 2 * block + 3 * first + (3 + 5 + 2) * block + 2048 * 1000
    assert total == 4_089_184_256
    g = zoo_graph("resnet50")
    s = g.summary()
    assert s.macs == total
    assert dict(s.by_kind)["conv2d"] == 1 + 16 * 3 + 4  # convs + downsamples
    assert dict(s.by_kind)["add"] == 16 + 1              # residuals + fc bias
    assert g.tensor(g.outputs[0]).shape == (1, 1000)
    assert g.tensor("maxpool").shape == (1, 64, 56, 56)
    assert g.tensor("layer4.2.relu").shape == (1, 2048, 7, 7)
    assert 25_500_000 < s.param_elements < 25_600_000  # 25.56M with BN folded to biases


def test_bert_base_per_layer_macs():
    g = zoo_graph("bert-base")
    per_layer = 4 * 512 * 768 * 768 + 2 * 512 * 768 * 3072 + 2 * 12 * 512 * 512 * 64
    assert _macs(g, "layer0.") == per_layer == 4_026_531_840
    assert g.summary().macs == 12 * per_layer
    assert g.problem("layer3.attn.scores") == bmm(12, 512, 64, 512, name="layer3.attn.scores")
    assert g.problem("layer3.ffn1") == matmul(512, 768, 3072, name="layer3.ffn1")
    assert g.tensor(g.outputs[0]).shape == (1, 512, 768)
    kinds = dict(g.summary().by_kind)
    assert kinds["softmax"] == kinds["gelu"] == 12 and kinds["gather"] == 1
    assert kinds["layernorm"] == 2 * 12 + 1


def test_bert_large_and_seq():
    g = zoo_graph("bert-large", seq=128)
    s, h = 128, 1024
    assert g.summary().macs == 24 * (12 * s * h * h + 2 * s * s * h)
    small = bert(2, 64, 4, 16)
    assert small.summary().macs == 2 * (12 * 16 * 64 * 64 + 2 * 16 * 16 * 64)


def test_gpt2_prefill_and_decode():
    h, s, v = 768, 512, 50257
    layer = 12 * s * h * h + 2 * s * s * h
    pre = zoo_graph("gpt2-prefill")
    assert pre.summary().macs == 12 * layer + s * h * v  # + tied LM head
    assert pre.problem("lm_head") == matmul(s, h, v, name="lm_head")
    assert dict(pre.summary().by_kind)["split"] == 12
    dec = zoo_graph("gpt2-decode")
    ctx = s + 1  # 512 cached tokens plus the new one
    assert dec.problem("layer0.attn.scores") == bmm(12, 1, 64, ctx, name="layer0.attn.scores")
    assert dec.tensor("layer0.present_v").shape == (1, 12, ctx, 64)
    assert dec.summary().macs == 12 * (12 * h * h + 2 * ctx * h) + h * v
    assert len(dec.outputs) == 1 + 2 * 12
    assert gpt2(2, 64, 4, 8, decode=True).tensor("lm_head").shape == (1, 1, 50257)


def test_resnet50_other_resolution():
    g = resnet50(image=160, classes=10)
    assert g.tensor(g.outputs[0]).shape == (1, 10)
