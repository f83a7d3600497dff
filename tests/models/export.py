# ruff: noqa: E501 -- the docstring and the model notes are tables / one-line descriptions
"""Build the real-exporter ONNX / torch.export fixtures (issue 9, item 6).

Every model is built from a config in code with random weights (``torch.manual_seed(0)``),
in eval mode, batch 1, static shapes -- nothing is downloaded from a model hub. For each
model this writes, next to each other:

  NAME.ts.onnx          torch.onnx.export(..., opset_version=17, dynamo=False)   (TorchScript exporter)
  NAME.dynamo.onnx      torch.onnx.export(..., dynamo=True)   (torch.export-based exporter, its default opset 20;
                        for the full-size models its weights go to NAME.dynamo.onnx.data as the exporter writes them)
  NAME.pt2              torch.export.save(torch.export.export(model, args), ...)   (only where Spec.pt2 is set)
  NAME.inputs.npz       the sample input, keys = the ONNX graph input names (the same in both exports)
  NAME.torch_out.npz    the torch (eager) output on that input, keys = the ONNX graph output names
  NAME.check.json       what was exported, how long it took, and onnxruntime-vs-torch errors per export

Environment (a side venv; the project venv has no torch):

  python3.11 -m venv .venv-export
  .venv-export/bin/pip install torch==2.14.1 torchvision==0.29.1 transformers==5.17.0 \\
      onnxscript==0.7.2 onnx==1.19.1 onnxruntime==1.23.2

Commands (from the repository root):

  .venv-export/bin/python tests/models/export.py --small            # fixtures into tests/models/ (committed)
  .venv-export/bin/python tests/models/export.py --full /work/models # full-size, not committed
  .venv-export/bin/python tests/models/export.py --full DIR --only bert_base_128 resnet50

then ``.venv/bin/python tests/models/ops_report.py`` rewrites tests/models/OPS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
OPSET = 17
BERT3 = ["input_ids", "attention_mask", "token_type_ids"]
# GPT-2 without an attention_mask makes transformers 5 look for packed sequences in the
# position ids (torch.diff), which the TorchScript exporter cannot export (aten::diff).
GPT2_IN = ["input_ids", "attention_mask"]


@dataclass
class Spec:
    name: str
    build: object  # () -> nn.Module (already seeded)
    inputs: object  # () -> dict name -> torch.Tensor, in forward-argument order
    outputs: list[str]
    pt2: bool = False
    note: str = ""
    extra: dict = field(default_factory=dict)


class _HFIds(torch.nn.Module):
    """A Hugging Face model called with input_ids only, outputs as a tuple (return_dict=False).
    The forward signature carries the input names, so the dynamo exporter names the graph
    inputs as the TorchScript one does (input_names= is passed to both as well)."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, input_ids):
        return tuple(self.model(input_ids=input_ids, return_dict=False))


class _HFIdsMaskTypes(_HFIds):
    """BERT called as HF's own ONNX export calls it: input_ids, attention_mask, token_type_ids."""

    def forward(self, input_ids, attention_mask, token_type_ids):
        return tuple(
            self.model(
                input_ids=input_ids,
                attention_mask=attention_mask,
                token_type_ids=token_type_ids,
                return_dict=False,
            )
        )


class _HFIdsMask(_HFIds):
    """GPT-2 called as HF's own ONNX export calls it (no past): input_ids, attention_mask."""

    def forward(self, input_ids, attention_mask):
        return tuple(
            self.model(input_ids=input_ids, attention_mask=attention_mask, return_dict=False)
        )


def _wrap(names):
    return {("input_ids",): _HFIds, tuple(GPT2_IN): _HFIdsMask, tuple(BERT3): _HFIdsMaskTypes}[
        tuple(names)
    ]


def _perturb_constant_params(m, scale=0.05):
    """Add seeded N(0, scale) noise to every parameter whose elements are all equal.

    Fresh models initialize biases to 0 and norm weights to 1 (HF BERT/GPT-2: every Linear
    bias; torchvision: the ViT head is all zeros). Left so, a missing or misplaced bias-add
    would go unnoticed by the output checks, and both exporters de-duplicate the identical
    initializers (the TorchScript one then writes an Identity node per copy) -- unlike any
    trained model. Buffers (BN statistics) are left to _randomize_bn / _calibrate_bn."""
    g = torch.Generator().manual_seed(5)
    with torch.no_grad():
        for _, prm in m.named_parameters():
            flat = prm.detach().reshape(-1)
            if flat.numel() > 1 and bool((flat == flat[0]).all()):
                prm.add_(torch.randn(prm.shape, generator=g) * scale)
    return m


def _seeded(fn, calibrate=None):
    def build():
        torch.manual_seed(0)
        m = _perturb_constant_params(fn())
        if calibrate:
            m = _calibrate_bn(m, calibrate)
        m.eval()
        return m

    return build


def _token_inputs(names, seq, vocab, pad=0):
    g = torch.Generator().manual_seed(1)
    out = {}
    for n in names:
        if n == "input_ids":
            out[n] = torch.randint(0, vocab, (1, seq), generator=g, dtype=torch.int64)
        elif n == "attention_mask":
            m = torch.ones(1, seq, dtype=torch.int64)
            if pad:
                m[:, seq - pad :] = 0  # right padding, as a tokenizer writes it
            out[n] = m
        elif n == "token_type_ids":
            t = torch.zeros(1, seq, dtype=torch.int64)
            t[:, seq // 2 :] = 1
            out[n] = t
        else:
            raise KeyError(n)
    return out


def _image_input(shape):
    g = torch.Generator().manual_seed(1)
    return {"input": torch.randn(*shape, generator=g)}


# ---------------------------------------------------------------- small fixtures
def _bert(cfg_kw, names):
    from transformers import BertConfig, BertModel

    def build():
        cfg = BertConfig(**cfg_kw)
        return _wrap(names)(BertModel(cfg))

    return _seeded(build)


def _gpt2(cfg_kw, names=None):
    from transformers import GPT2Config, GPT2Model

    def build():
        cfg = GPT2Config(**cfg_kw)
        return _wrap(names or GPT2_IN)(GPT2Model(cfg))

    return _seeded(build)


BERT_TINY = dict(
    vocab_size=500,
    hidden_size=64,
    num_hidden_layers=2,
    num_attention_heads=2,
    intermediate_size=128,
    max_position_embeddings=32,
    pad_token_id=0,
)
GPT2_TINY = dict(
    vocab_size=500,
    n_embd=64,
    n_layer=2,
    n_head=2,
    n_positions=32,
    n_inner=128,
    use_cache=False,
    bos_token_id=0,
    eos_token_id=0,
)


def _mobilenet_v2_tiny():
    from torchvision.models import mobilenet_v2
    from torchvision.ops import Conv2dNormActivation

    m = mobilenet_v2(width_mult=0.25, num_classes=10)
    # torchvision keeps the last 1x1 conv at 1280 channels for width_mult < 1; narrow it
    # (same op sequence: Conv2dNormActivation with ReLU6, then Dropout + Linear) to keep the
    # fixture small.
    cin = m.features[-1][0].in_channels
    m.features[-1] = Conv2dNormActivation(
        cin, 128, kernel_size=1, norm_layer=torch.nn.BatchNorm2d, activation_layer=torch.nn.ReLU6
    )
    m.classifier[1] = torch.nn.Linear(128, 10)
    m.last_channel = 128
    return m


def _resnet18_narrow(div=16):
    """torchvision ResNet with resnet18's topology (BasicBlock, [2, 2, 2, 2]) and every width
    divided by ``div`` (stem 64/div, stages 64..512/div) -- resnet18 itself is 45 MB."""
    from torchvision.models.resnet import BasicBlock, ResNet

    class NarrowResNet(ResNet):
        def _make_layer(self, block, planes, blocks, stride=1, dilate=False):
            if planes == 64:
                self.inplanes = 64 // div
            return super()._make_layer(block, planes // div, blocks, stride, dilate)

    m = NarrowResNet(BasicBlock, [2, 2, 2, 2], num_classes=10)
    m.conv1 = torch.nn.Conv2d(3, 64 // div, kernel_size=7, stride=2, padding=3, bias=False)
    m.bn1 = torch.nn.BatchNorm2d(64 // div)
    m.fc = torch.nn.Linear(512 // div, 10)
    return m


def _vit_tiny():
    from torchvision.models import VisionTransformer

    return VisionTransformer(
        image_size=32,
        patch_size=8,
        num_layers=2,
        num_heads=4,
        hidden_dim=64,
        mlp_dim=128,
        num_classes=10,
    )


def _calibrate_bn(m, shape, batches=4):
    # torchvision's init (kaiming fan_out, also on depthwise convs) shrinks MobileNetV2's
    # activations to ~1e-9 with fresh BN statistics; set the running statistics from a few
    # seeded random batches, as training would, so the outputs have ordinary magnitudes.
    g = torch.Generator().manual_seed(4)
    for mod in m.modules():
        if isinstance(mod, torch.nn.BatchNorm2d):
            mod.reset_running_stats()
            mod.momentum = None  # cumulative average
    m.train()
    with torch.no_grad():
        for _ in range(batches):
            m(torch.randn(8, *shape[1:], generator=g))
    return m.eval()


def _randomize_bn(m):
    # Fresh BatchNorm has mean 0 / var 1 / weight 1 / bias 0; give it seeded non-trivial
    # statistics so folding BN into Conv is actually exercised by the fixtures.
    g = torch.Generator().manual_seed(2)
    with torch.no_grad():
        for mod in m.modules():
            if isinstance(mod, torch.nn.BatchNorm2d):
                c = mod.num_features
                mod.running_mean.copy_(torch.randn(c, generator=g) * 0.1)
                mod.running_var.copy_(torch.rand(c, generator=g) * 0.5 + 0.75)
                mod.weight.copy_(torch.rand(c, generator=g) * 0.5 + 0.75)
                mod.bias.copy_(torch.randn(c, generator=g) * 0.1)
    return m


SMALL = [
    Spec(
        "bert_tiny",
        _bert(BERT_TINY, BERT3),
        lambda: _token_inputs(BERT3, 16, 500, pad=4),
        ["last_hidden_state", "pooler_output"],
        pt2=True,
        note="HF BertModel (with pooler), 2 layers, hidden 64, 2 heads, ffn 128, vocab 500, seq 16; "
        "inputs input_ids/attention_mask/token_type_ids (last 4 positions padded)",
    ),
    Spec(
        "bert_tiny_ids",
        _bert(BERT_TINY, ["input_ids"]),
        lambda: _token_inputs(["input_ids"], 16, 500),
        ["last_hidden_state", "pooler_output"],
        note="the same BertModel (same weights) called with input_ids only",
    ),
    Spec(
        "gpt2_tiny",
        _gpt2(GPT2_TINY),
        lambda: _token_inputs(GPT2_IN, 16, 500),
        ["last_hidden_state"],
        note="HF GPT2Model, 2 layers, n_embd 64, 2 heads, n_inner 128, vocab 500, seq 16, use_cache=False; "
        "inputs input_ids/attention_mask (all ones)",
    ),
    Spec(
        "mobilenet_v2_tiny",
        _seeded(lambda: _randomize_bn(_mobilenet_v2_tiny())),
        lambda: _image_input((1, 3, 64, 64)),
        ["logits"],
        note="torchvision mobilenet_v2(width_mult=0.25, num_classes=10), last 1x1 conv narrowed 1280->128; "
        "input 1x3x64x64; BN statistics randomized (seeded)",
    ),
    Spec(
        "vit_tiny",
        _seeded(_vit_tiny),
        lambda: _image_input((1, 3, 32, 32)),
        ["logits"],
        note="torchvision VisionTransformer(image 32, patch 8, 2 layers, 4 heads, hidden 64, mlp 128, 10 classes)",
    ),
    Spec(
        "resnet18_narrow",
        _seeded(lambda: _randomize_bn(_resnet18_narrow())),
        lambda: _image_input((1, 3, 64, 64)),
        ["logits"],
        note="torchvision ResNet(BasicBlock, [2,2,2,2]) = resnet18 topology, widths /16 (4..32 channels), "
        "10 classes; input 1x3x64x64; BN statistics randomized (seeded)",
    ),
]


# ---------------------------------------------------------------- full size
def _full_specs():
    from torchvision import models as tvm

    return [
        Spec(
            "bert_base_128",
            _bert({}, BERT3),
            lambda: _token_inputs(BERT3, 128, 30522, pad=16),
            ["last_hidden_state", "pooler_output"],
            pt2=True,
            note="HF BertModel(BertConfig()) = BERT-Base with pooler, seq 128",
        ),
        Spec(
            "bert_base_512",
            _bert({}, BERT3),
            lambda: _token_inputs(BERT3, 512, 30522, pad=64),
            ["last_hidden_state", "pooler_output"],
            note="HF BertModel(BertConfig()), seq 512",
        ),
        Spec(
            "gpt2_128",
            _gpt2(dict(use_cache=False)),
            lambda: _token_inputs(GPT2_IN, 128, 50257),
            ["last_hidden_state"],
            note="HF GPT2Model(GPT2Config(use_cache=False)), seq 128",
        ),
        Spec(
            "vit_b_16",
            _seeded(tvm.vit_b_16),
            lambda: _image_input((1, 3, 224, 224)),
            ["logits"],
            note="torchvision vit_b_16(), 1x3x224x224",
        ),
        Spec(
            "mobilenet_v2",
            _seeded(tvm.mobilenet_v2, calibrate=(1, 3, 224, 224)),
            lambda: _image_input((1, 3, 224, 224)),
            ["logits"],
            note="torchvision mobilenet_v2() (BN running statistics set from 4 seeded random batches of 8), "
            "1x3x224x224",
        ),
        Spec(
            "resnet50",
            _seeded(tvm.resnet50, calibrate=(1, 3, 224, 224)),
            lambda: _image_input((1, 3, 224, 224)),
            ["logits"],
            pt2=True,
            note="torchvision resnet50() (BN running statistics set from 4 seeded random batches of 8), "
            "1x3x224x224",
        ),
    ]


# ---------------------------------------------------------------- export + check
def _ort_check(path, feeds, ref, out_names):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = 2
    sess = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    got = sess.run(None, {i.name: feeds[i.name] for i in sess.get_inputs()})
    names = [o.name for o in sess.get_outputs()]
    res = {"onnx_inputs": [i.name for i in sess.get_inputs()], "onnx_outputs": names, "outputs": {}}
    for i, (n, g) in enumerate(zip(names, got, strict=True)):
        r = ref[out_names[i]]
        if g.shape != r.shape:
            res["outputs"][n] = {"error": f"shape {g.shape} vs torch {r.shape}"}
            continue
        abs_err = float(np.max(np.abs(g.astype(np.float64) - r)))
        scale = float(np.max(np.abs(r))) or 1.0
        res["outputs"][n] = {"max_abs_err": abs_err, "max_rel_err": abs_err / scale}
    res["ok"] = all(
        "max_rel_err" in v and v["max_rel_err"] <= 1e-4 for v in res["outputs"].values()
    )
    return res


def export_one(spec: Spec, out: Path, small: bool, which=("ts", "dynamo", "pt2")):
    print(f"== {spec.name}", flush=True)
    model = spec.build()
    inputs = spec.inputs()
    in_names = list(inputs)
    args = tuple(inputs.values())
    with torch.no_grad():
        ref = model(*args)
    if isinstance(ref, torch.Tensor):
        ref = (ref,)
    ref_np = {
        n: t.detach().numpy().astype(np.float32) for n, t in zip(spec.outputs, ref, strict=True)
    }
    feeds = {n: t.numpy() for n, t in inputs.items()}
    np.savez(out / f"{spec.name}.inputs.npz", **feeds)
    np.savez(out / f"{spec.name}.torch_out.npz", **ref_np)
    report = {
        "name": spec.name,
        "note": spec.note,
        "torch": torch.__version__,
        "params": int(sum(p.numel() for p in model.parameters())),
        "inputs": {n: [str(a.dtype), list(a.shape)] for n, a in feeds.items()},
        "outputs": {n: [str(a.dtype), list(a.shape), float(a.std())] for n, a in ref_np.items()},
        "exports": {},
    }
    for kind in which:
        if kind == "pt2" and not spec.pt2:
            continue
        rec: dict = {}
        t0 = time.time()
        try:
            if kind == "ts":
                path = out / f"{spec.name}.ts.onnx"
                # Not under torch.no_grad(): with grad off, nn.MultiheadAttention (ViT) takes its
                # fused fast path, aten::_native_multi_head_attention, which has no ONNX export.
                torch.onnx.export(
                    model,
                    args,
                    str(path),
                    input_names=in_names,
                    output_names=spec.outputs,
                    opset_version=OPSET,
                    dynamo=False,
                    do_constant_folding=True,
                )
            elif kind == "dynamo":
                path = out / f"{spec.name}.dynamo.onnx"
                for stale in (path, Path(str(path) + ".data")):
                    stale.unlink(missing_ok=True)
                # opset_version left at the exporter's default (20 in torch 2.14): asking it for 17
                # runs ONNX's down-converter, which fails on Conv models (they stay at 18) and
                # writes an invalid GPT-2 (Split without num_outputs) -- see README.md.
                prog = torch.onnx.export(
                    model, args, input_names=in_names, output_names=spec.outputs, dynamo=True
                )
                rec["export_s"] = round(time.time() - t0, 1)
                prog.save(str(path), external_data=not small)
            else:
                path = out / f"{spec.name}.pt2"
                ep = torch.export.export(model, args)
                torch.export.save(ep, str(path))
            rec["seconds"] = round(time.time() - t0, 1)
            rec["files"] = {p.name: p.stat().st_size for p in sorted(out.glob(path.name + "*"))}
            if kind != "pt2":
                rec["check"] = _ort_check(path, feeds, ref_np, spec.outputs)
            else:
                ep2 = torch.export.load(str(path))
                with torch.no_grad():
                    got = ep2.module()(*args)
                got = (got,) if isinstance(got, torch.Tensor) else got
                err = max(
                    float((g - r).abs().max() / (r.abs().max() or 1))
                    for g, r in zip(got, ref, strict=True)
                )
                rec["check"] = {"reload_max_rel_err": err, "ok": err <= 1e-6}
            rec["status"] = "ok"
        except Exception as e:  # record and go on: a failing exporter is a finding
            rec["status"] = "failed"
            rec["error"] = f"{type(e).__name__}: {str(e)[:2000]}"
            rec["traceback"] = traceback.format_exc()[-4000:]
            rec["seconds"] = round(time.time() - t0, 1)
        print(
            f"   {kind}: {rec['status']} {rec.get('seconds')}s "
            f"{json.dumps(rec.get('check', {}).get('outputs', rec.get('check', rec.get('error', ''))))[:400]}",
            flush=True,
        )
        report["exports"][kind] = rec
        (out / f"{spec.name}.check.json").write_text(
            json.dumps(report, indent=1, sort_keys=True) + "\n"
        )
    del model
    return report


def main(argv=None):
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    g = ap.add_mutually_exclusive_group(required=True)
    g.add_argument("--small", action="store_true", help="small fixtures into tests/models/")
    g.add_argument("--full", metavar="DIR", help="full-size models into DIR")
    ap.add_argument("--only", nargs="*", help="only these model names")
    ap.add_argument(
        "--kinds", nargs="*", default=["ts", "dynamo", "pt2"], choices=["ts", "dynamo", "pt2"]
    )
    a = ap.parse_args(argv)
    torch.set_num_threads(int(os.environ.get("EXPORT_THREADS", "2")))
    specs = SMALL if a.small else _full_specs()
    out = HERE if a.small else Path(a.full)
    out.mkdir(parents=True, exist_ok=True)
    if a.only:
        specs = [s for s in specs if s.name in a.only]
    bad = 0
    for s in specs:
        r = export_one(s, out, a.small, tuple(a.kinds))
        bad += sum(v["status"] != "ok" for v in r["exports"].values())
    print(f"done: {bad} failed export(s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
