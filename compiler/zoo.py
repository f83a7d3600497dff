"""Built-in whole-model graphs: BERT, GPT-2 (prefill and one decode step), ResNet-50 v1.5.

``zoo_graph(name, seq=None)`` builds one of :data:`ZOO`.  Batch size is 1 everywhere.

Simplifications (none changes a MAC count): BERT has word and position embeddings but no
token-type embedding; GPT-2 omits the causal mask of attention (an add of ``-inf`` above the
diagonal); ResNet-50 folds batch norm into the convolutions (inference), so its convs have
no separate BN op; dropout is absent (inference).
"""

from __future__ import annotations

from collections.abc import Callable
from math import prod

from compiler.errors import CompilerError
from compiler.graph import Graph, Op


class _Builder:
    """Adds ops with generated output names; output shapes are inferred by the graph."""

    def __init__(self, name: str) -> None:
        self.g = Graph(name)

    def param(self, name: str, *shape: int) -> str:
        return self.g.add_param(name, shape)

    def op(self, name: str, kind: str, *inputs: str, n_out: int = 1, **attrs: object) -> str:
        outs = [name] if n_out == 1 else [f"{name}:{i}" for i in range(n_out)]
        self.g.add_op(Op.make(name, kind, inputs, outs, **attrs))
        return outs[0]

    def shape(self, t: str) -> tuple[int, ...]:
        return self.g.tensor(t).shape

    def linear(self, name: str, x: str, n_in: int, n_out: int, bias: bool = True) -> str:
        y = self.op(name, "matmul", x, self.param(f"{name}.weight", n_in, n_out))
        return self.op(f"{name}.bias_add", "add", y, self.param(f"{name}.bias", n_out)) \
            if bias else y

    def layernorm(self, name: str, x: str, n: int) -> str:
        return self.op(name, "layernorm", x, self.param(f"{name}.gamma", n),
                       self.param(f"{name}.beta", n), axis=-1, epsilon=1e-5)

    def heads(self, name: str, x: str, heads: int, perm: tuple[int, ...]) -> str:
        """``[1, s, H]`` -> ``[1, heads, s, H/heads]`` (or ``perm``-ordered)."""
        _, s, h = self.shape(x)
        r = self.op(f"{name}.split_heads", "reshape", x, shape=(1, s, heads, h // heads))
        return self.op(f"{name}.to_heads", "transpose", r, perm=perm)

    def merge_heads(self, name: str, x: str) -> str:
        _, heads, s, hd = self.shape(x)
        t = self.op(f"{name}.from_heads", "transpose", x, perm=(0, 2, 1, 3))
        return self.op(f"{name}.merge_heads", "reshape", t, shape=(1, s, heads * hd))


def _attention(b: _Builder, p: str, q: str, k: str, v: str, hidden: int, heads: int) -> str:
    """Scaled dot-product attention on ``[1, heads, s, hd]`` q/v and ``[1, heads, hd, t]`` k."""
    scores = b.op(f"{p}.scores", "bmm", q, k)
    scale = b.param(f"{p}.scale")  # a scalar, 1/sqrt(head dim)
    scaled = b.op(f"{p}.scale_mul", "mul", scores, scale)
    probs = b.op(f"{p}.softmax", "softmax", scaled, axis=-1)
    ctx = b.op(f"{p}.context", "bmm", probs, v)
    merged = b.merge_heads(p, ctx)
    return b.linear(f"{p}.out_proj", merged, hidden, hidden)


def bert(layers: int, hidden: int, heads: int, seq: int, *, vocab: int = 30522,
         name: str = "bert") -> Graph:
    """BERT encoder: embedding gather (+ position embeddings, layernorm), then per layer
    Q/K/V projections, per-head attention (two bmm), output projection, residual +
    layernorm, FFN (4x hidden, GELU), residual + layernorm (post-LN).

    Per layer the matmul MACs are ``4*seq*hidden^2 + 2*seq*hidden*4*hidden`` and the bmm
    MACs ``2*seq^2*hidden``.
    """
    if hidden % heads:
        raise CompilerError(f"hidden {hidden} is not divisible by heads {heads}", where=name)
    b = _Builder(name)
    ids = b.g.add_input("input_ids", (1, seq), "int64")
    x = b.op("embeddings.word", "gather", b.param("embeddings.word.table", vocab, hidden), ids)
    x = b.op("embeddings.position_add", "add", x,
             b.param("embeddings.position.table", seq, hidden))
    x = b.layernorm("embeddings.layernorm", x, hidden)
    for i in range(layers):
        p = f"layer{i}"
        q = b.heads(f"{p}.q", b.linear(f"{p}.q_proj", x, hidden, hidden), heads, (0, 2, 1, 3))
        k = b.heads(f"{p}.k", b.linear(f"{p}.k_proj", x, hidden, hidden), heads, (0, 2, 3, 1))
        v = b.heads(f"{p}.v", b.linear(f"{p}.v_proj", x, hidden, hidden), heads, (0, 2, 1, 3))
        a = _attention(b, f"{p}.attn", q, k, v, hidden, heads)
        x = b.layernorm(f"{p}.attn_layernorm", b.op(f"{p}.attn_residual", "add", x, a), hidden)
        h = b.op(f"{p}.gelu", "gelu", b.linear(f"{p}.ffn1", x, hidden, 4 * hidden))
        h = b.linear(f"{p}.ffn2", h, 4 * hidden, hidden)
        x = b.layernorm(f"{p}.ffn_layernorm", b.op(f"{p}.ffn_residual", "add", x, h), hidden)
    b.g.add_output(x)
    return b.g.validate()


def gpt2(layers: int = 12, hidden: int = 768, heads: int = 12, seq: int = 512, *,
         decode: bool = False, vocab: int = 50257, name: str = "gpt2") -> Graph:
    """GPT-2 (pre-LN, fused QKV projection split three ways, tied LM head).

    Prefill: ``seq`` tokens, logits for all of them; the causal mask is omitted.  Decode
    (``decode=True``): one token; each layer takes a K and V cache of ``seq`` past tokens
    (inputs ``layer{i}.past_k`` ``[1, heads, hd, seq]`` and ``layer{i}.past_v``
    ``[1, heads, seq, hd]``), concatenates the new token's K/V to it (outputs
    ``present_k``/``present_v``, ``seq + 1`` long) and attends over all ``seq + 1``.
    """
    if hidden % heads:
        raise CompilerError(f"hidden {hidden} is not divisible by heads {heads}", where=name)
    hd = hidden // heads
    b = _Builder(name)
    s = 1 if decode else seq
    ids = b.g.add_input("input_ids", (1, s), "int64")
    pos = b.g.add_input("position_ids", (1, s), "int64")
    wte = b.param("wte", vocab, hidden)
    x = b.op("embeddings.token", "gather", wte, ids)
    x = b.op("embeddings.add", "add", x,
             b.op("embeddings.position", "gather", b.param("wpe", 1024, hidden), pos))
    presents = []
    for i in range(layers):
        p = f"layer{i}"
        h = b.layernorm(f"{p}.ln1", x, hidden)
        qkv = b.linear(f"{p}.qkv_proj", h, hidden, 3 * hidden)
        q, k, v = (f"{p}.qkv_split:{j}" for j in range(3))
        b.op(f"{p}.qkv_split", "split", qkv, n_out=3, axis=-1, sizes=(hidden,) * 3)
        q = b.heads(f"{p}.q", q, heads, (0, 2, 1, 3))
        k = b.heads(f"{p}.k", k, heads, (0, 2, 3, 1))
        v = b.heads(f"{p}.v", v, heads, (0, 2, 1, 3))
        if decode:
            past_k = b.g.add_input(f"{p}.past_k", (1, heads, hd, seq))
            past_v = b.g.add_input(f"{p}.past_v", (1, heads, seq, hd))
            k = b.op(f"{p}.present_k", "concat", past_k, k, axis=3)
            v = b.op(f"{p}.present_v", "concat", past_v, v, axis=2)
            presents += [k, v]
        a = _attention(b, f"{p}.attn", q, k, v, hidden, heads)
        x = b.op(f"{p}.attn_residual", "add", x, a)
        h = b.layernorm(f"{p}.ln2", x, hidden)
        h = b.op(f"{p}.gelu", "gelu", b.linear(f"{p}.ffn1", h, hidden, 4 * hidden))
        x = b.op(f"{p}.ffn_residual", "add", x, b.linear(f"{p}.ffn2", h, 4 * hidden, hidden))
    x = b.layernorm("ln_f", x, hidden)
    logits = b.op("lm_head", "matmul", x, wte, transpose_b=True)
    for t in (logits, *presents):
        b.g.add_output(t)
    return b.g.validate()


def _conv(b: _Builder, name: str, x: str, m: int, k: int, stride: int = 1,
          relu: bool = True) -> str:
    c = b.shape(x)[1]
    y = b.op(name, "conv2d", x, b.param(f"{name}.weight", m, c, k, k), b.param(
        f"{name}.bias", m), strides=(stride, stride), pads=(k // 2,) * 4, dilations=(1, 1),
        group=1)
    return b.op(f"{name}.relu", "relu", y) if relu else y


def resnet50(image: int = 224, classes: int = 1000, *, name: str = "resnet50") -> Graph:
    """ResNet-50 v1.5 (torchvision): conv1 7x7/2 + maxpool 3x3/2, bottleneck stages of
    [3, 4, 6, 3] blocks (1x1 reduce, 3x3 with the stage's stride 2 (v1.5), 1x1 expand 4x;
    a 1x1 strided downsample conv on each stage's first block), residual adds, relu, global
    average pool, flatten and the fully connected layer.  Batch norm is folded into the
    convolutions (each has a bias instead).  4,089,184,256 MACs at 224x224."""
    b = _Builder(name)
    x = b.g.add_input("image", (1, 3, image, image))
    x = _conv(b, "conv1", x, 64, 7, stride=2)
    x = b.op("maxpool", "pool", x, mode="max", kernel=(3, 3), strides=(2, 2), pads=(1,) * 4)
    for s, (width, blocks) in enumerate(((64, 3), (128, 4), (256, 6), (512, 3))):
        for i in range(blocks):
            p = f"layer{s + 1}.{i}"
            stride = 2 if s > 0 and i == 0 else 1
            h = _conv(b, f"{p}.conv1", x, width, 1)
            h = _conv(b, f"{p}.conv2", h, width, 3, stride=stride)
            h = _conv(b, f"{p}.conv3", h, 4 * width, 1, relu=False)
            if i == 0:
                x = _conv(b, f"{p}.downsample", x, 4 * width, 1, stride=stride, relu=False)
            x = b.op(f"{p}.relu", "relu", b.op(f"{p}.residual", "add", x, h))
    x = b.op("avgpool", "pool", x, mode="global_avg")
    x = b.op("flatten", "reshape", x, shape=(1, prod(b.shape(x)[1:])))
    x = b.linear("fc", x, 2048, classes)
    b.g.add_output(x)
    return b.g.validate()


_BUILDERS: dict[str, Callable[[int | None], Graph]] = {
    "bert-base": lambda seq: bert(12, 768, 12, seq or 512, name="bert-base"),
    "bert-large": lambda seq: bert(24, 1024, 16, seq or 512, name="bert-large"),
    "gpt2-prefill": lambda seq: gpt2(12, 768, 12, seq or 512, name="gpt2-prefill"),
    "gpt2-decode": lambda seq: gpt2(12, 768, 12, seq or 512, decode=True, name="gpt2-decode"),
    "resnet50": lambda seq: resnet50(),
}
#: The names :func:`zoo_graph` knows.
ZOO: tuple[str, ...] = tuple(_BUILDERS)


def zoo_graph(name: str, seq: int | None = None) -> Graph:
    """A built-in model graph; ``seq`` is the sequence length of the transformers (the KV
    cache length for ``gpt2-decode``), default 512.  Unknown names list the known ones."""
    if name not in _BUILDERS:
        raise CompilerError(f"unknown model {name!r}; known models: {', '.join(ZOO)}",
                            where="zoo_graph", key="name")
    if seq is not None and (name == "resnet50" or seq < 1):
        raise CompilerError(f"seq {seq} is not valid for {name!r} (a positive sequence "
                            "length for the transformer models only)", where="zoo_graph",
                            key="seq")
    return _BUILDERS[name](seq)
