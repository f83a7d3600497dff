"""Named operators (the workload zoo): BERT, GPT-2, ResNet-50 and MobileNetV2 (depthwise)
layers as Problems.

Names are ``<model>/<layer>``; ``workload(name)`` builds the :class:`Problem` and
``list_workloads()`` lists every name with a one-line description.  Matmuls use Timeloop's
1x1-convolution naming (``P`` rows, ``C`` reduction, ``M`` columns); attention is a batched
matmul over heads.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from mapspace.errors import MapspaceError
from mapspace.problem import Problem, bmm, conv2d, depthwise_conv2d, matmul


@dataclass(frozen=True)
class Workload:
    name: str
    description: str
    build: Callable[[], Problem]


def _bert(prefix: str, hidden: int, heads: int, seq: int) -> list[Workload]:
    hd = hidden // heads
    ffn = 4 * hidden
    p = prefix
    return [
        Workload(
            f"{p}/qkv",
            f"Q, K and V projections fused: {seq}x{hidden} @ {hidden}x{3 * hidden}",
            lambda: matmul(seq, hidden, 3 * hidden, name=f"{p}/qkv"),
        ),
        Workload(
            f"{p}/q-proj",
            f"one of the Q/K/V projections: {seq}x{hidden} @ {hidden}x{hidden}",
            lambda: matmul(seq, hidden, hidden, name=f"{p}/q-proj"),
        ),
        Workload(
            f"{p}/attn-scores",
            f"Q x K^T per head: {heads} x ({seq}x{hd} @ {hd}x{seq})",
            lambda: bmm(heads, seq, hd, seq, name=f"{p}/attn-scores"),
        ),
        Workload(
            f"{p}/attn-context",
            f"softmax(S) x V per head: {heads} x ({seq}x{seq} @ {seq}x{hd})",
            lambda: bmm(heads, seq, seq, hd, name=f"{p}/attn-context"),
        ),
        Workload(
            f"{p}/out-proj",
            f"attention output projection: {seq}x{hidden} @ {hidden}x{hidden}",
            lambda: matmul(seq, hidden, hidden, name=f"{p}/out-proj"),
        ),
        Workload(
            f"{p}/ffn1",
            f"FFN up-projection: {seq}x{hidden} @ {hidden}x{ffn}",
            lambda: matmul(seq, hidden, ffn, name=f"{p}/ffn1"),
        ),
        Workload(
            f"{p}/ffn2",
            f"FFN down-projection: {seq}x{ffn} @ {ffn}x{hidden}",
            lambda: matmul(seq, ffn, hidden, name=f"{p}/ffn2"),
        ),
    ]


def _gpt2() -> list[Workload]:
    hidden, heads, seq, ctx = 768, 12, 512, 512
    hd = hidden // heads
    out = [
        Workload(w.name.replace("bert-base-s512", "gpt2-prefill"), w.description, w.build)
        for w in _bert("gpt2-prefill", hidden, heads, seq)
    ]
    out += [
        Workload(
            "gpt2-decode/qkv",
            f"decode step Q/K/V projection: 1x{hidden} @ {hidden}x{3 * hidden}",
            lambda: matmul(1, hidden, 3 * hidden, name="gpt2-decode/qkv"),
        ),
        Workload(
            "gpt2-decode/attn-scores",
            f"decode q x K-cache^T: {heads} x (1x{hd} @ {hd}x{ctx})",
            lambda: bmm(heads, 1, hd, ctx, name="gpt2-decode/attn-scores"),
        ),
        Workload(
            "gpt2-decode/attn-context",
            f"decode p x V-cache: {heads} x (1x{ctx} @ {ctx}x{hd})",
            lambda: bmm(heads, 1, ctx, hd, name="gpt2-decode/attn-context"),
        ),
        Workload(
            "gpt2-decode/out-proj",
            f"decode output projection: 1x{hidden} @ {hidden}x{hidden}",
            lambda: matmul(1, hidden, hidden, name="gpt2-decode/out-proj"),
        ),
        Workload(
            "gpt2-decode/ffn1",
            f"decode FFN up: 1x{hidden} @ {hidden}x{4 * hidden}",
            lambda: matmul(1, hidden, 4 * hidden, name="gpt2-decode/ffn1"),
        ),
        Workload(
            "gpt2-decode/ffn2",
            f"decode FFN down: 1x{4 * hidden} @ {4 * hidden}x{hidden}",
            lambda: matmul(1, 4 * hidden, hidden, name="gpt2-decode/ffn2"),
        ),
    ]
    return out


#: ResNet-50 v1.5 distinct convolutions: name -> (C, H/W in, M, R, stride, pad)
_RESNET50 = {
    "conv1": (3, 224, 64, 7, 2, 3),
    "conv2_x": (64, 56, 64, 3, 1, 1),
    "conv2_x.reduce": (64, 56, 64, 1, 1, 0),
    "conv2_x.expand": (64, 56, 256, 1, 1, 0),
    "conv2_x.reduce256": (256, 56, 64, 1, 1, 0),
    "conv3_x.first": (128, 56, 128, 3, 2, 1),
    "conv3_x": (128, 28, 128, 3, 1, 1),
    "conv3_x.reduce256": (256, 56, 128, 1, 1, 0),
    "conv3_x.reduce": (512, 28, 128, 1, 1, 0),
    "conv3_x.expand": (128, 28, 512, 1, 1, 0),
    "conv3_x.downsample": (256, 56, 512, 1, 2, 0),
    "conv4_x.first": (256, 28, 256, 3, 2, 1),
    "conv4_x": (256, 14, 256, 3, 1, 1),
    "conv4_x.reduce512": (512, 28, 256, 1, 1, 0),
    "conv4_x.reduce": (1024, 14, 256, 1, 1, 0),
    "conv4_x.expand": (256, 14, 1024, 1, 1, 0),
    "conv4_x.downsample": (512, 28, 1024, 1, 2, 0),
    "conv5_x.first": (512, 14, 512, 3, 2, 1),
    "conv5_x": (512, 7, 512, 3, 1, 1),
    "conv5_x.reduce1024": (1024, 14, 512, 1, 1, 0),
    "conv5_x.reduce": (2048, 7, 512, 1, 1, 0),
    "conv5_x.expand": (512, 7, 2048, 1, 1, 0),
    "conv5_x.downsample": (1024, 14, 2048, 1, 2, 0),
}


def _resnet() -> list[Workload]:
    out = []
    for layer, (C, HW, M, R, s, pad) in _RESNET50.items():
        name = f"resnet50/{layer}"
        desc = f"{R}x{R} conv, stride {s}, {C}->{M} channels, {HW}x{HW} input"

        def build(C=C, HW=HW, M=M, R=R, s=s, pad=pad, name=name) -> Problem:
            return conv2d(1, C, HW, HW, M, R, R, stride=s, padding=pad, name=name)

        out.append(Workload(name, desc, build))
    out.append(
        Workload(
            "resnet50/fc",
            "final fully connected layer: 1x2048 @ 2048x1000",
            lambda: matmul(1, 2048, 1000, name="resnet50/fc"),
        )
    )
    return out


#: MobileNetV2 (224x224) distinct 3x3 depthwise convolutions, padding 1:
#: (input H/W, channels, stride)
_MOBILENETV2_DW = [(112, 32, 1), (112, 96, 2), (56, 144, 1), (56, 144, 2), (28, 192, 1),
                   (28, 192, 2), (14, 384, 1), (14, 576, 1), (14, 576, 2), (7, 960, 1)]


def _mobilenetv2() -> list[Workload]:
    out = []
    for HW, C, s in _MOBILENETV2_DW:
        name = f"mobilenetv2/dw-{HW}x{HW}x{C}" + ("-s2" if s == 2 else "")
        desc = f"3x3 depthwise conv, stride {s}, {C} channels, {HW}x{HW} input"

        def build(HW=HW, C=C, s=s, name=name) -> Problem:
            return depthwise_conv2d(1, C, HW, HW, 3, 3, stride=s, padding=1, name=name)

        out.append(Workload(name, desc, build))
    return out


def _all() -> dict[str, Workload]:
    ws: list[Workload] = []
    for model, hidden, heads in (("bert-base", 768, 12), ("bert-large", 1024, 16)):
        ws += _bert(model, hidden, heads, 512)  # default sequence length 512
        ws += _bert(f"{model}-s128", hidden, heads, 128)
    ws += _gpt2()
    ws += _resnet()
    ws += _mobilenetv2()
    return {w.name: w for w in ws}


WORKLOADS: dict[str, Workload] = _all()


def list_workloads() -> list[Workload]:
    return list(WORKLOADS.values())


def workload(name: str) -> Problem:
    """The :class:`Problem` of a named operator; unknown names list the known ones."""
    try:
        return WORKLOADS[name].build()
    except KeyError:
        raise MapspaceError(
            f"unknown workload {name!r}; known workloads: {', '.join(WORKLOADS)}", where="workload"
        ) from None
