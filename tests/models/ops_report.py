# ruff: noqa: E501 -- report text
"""Op-type histograms of exported ONNX files -> tests/models/OPS.md.

Needs only ``onnx`` (runs in the project venv). Weights in external data are not read.

  .venv/bin/python tests/models/ops_report.py                       # tests/models/*.onnx
  .venv/bin/python tests/models/ops_report.py --full /work/models    # and the full-size exports
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from pathlib import Path

import onnx
from onnx import helper

HERE = Path(__file__).resolve().parent

# Op types the brief calls ordinary; everything else is listed as "beyond" in the summary.
BASIC = set(
    """Conv Gemm MatMul Add Mul Relu Softmax LayerNormalization Transpose Reshape Concat Gather
MaxPool AveragePool GlobalAveragePool GlobalMaxPool Split Slice Sub Div Pow Sqrt ReduceMean Constant
Identity Erf Tanh""".split()
)


def _shape(vi):
    t = vi.type.tensor_type
    dims = []
    for d in t.shape.dim:
        dims.append(d.dim_value if d.HasField("dim_value") else (d.dim_param or "?"))
    return helper.tensor_dtype_to_np_dtype(t.elem_type).name, dims


def _hist(nodes, sub: Counter | None = None):
    c = Counter()
    for n in nodes:
        c[(n.domain + "::" if n.domain not in ("", "ai.onnx") else "") + n.op_type] += 1
        if sub is not None:
            for a in n.attribute:
                graphs = [a.g] if a.type == onnx.AttributeProto.GRAPH else list(a.graphs)
                for g in graphs:
                    sub.update(_hist(g.node, sub))
    return c


def _attr_str(a):
    v = helper.get_attribute_value(a)
    if isinstance(v, onnx.TensorProto):
        v = f"tensor{list(v.dims)}"
    elif isinstance(v, bytes):
        v = v.decode()
    elif isinstance(v, list):
        v = [x.decode() if isinstance(x, bytes) else x for x in v]
    s = f"{a.name}={v}"
    return s if len(s) <= 40 else s[:37] + "..."


def _details(g):
    """Per op type: attribute values seen, and for each input position > 0 whether it comes
    from an initializer / Constant node ("const") or is computed in the graph ("computed")."""
    const = {t.name for t in g.initializer}
    const |= {o for n in g.node if n.op_type == "Constant" for o in n.output}
    attrs: dict[str, set] = {}
    srcs: dict[str, Counter] = {}
    for n in g.node:
        op = (n.domain + "::" if n.domain not in ("", "ai.onnx") else "") + n.op_type
        attrs.setdefault(op, set()).update(_attr_str(a) for a in n.attribute)
        c = srcs.setdefault(op, Counter())
        for i, x in enumerate(n.input[1:], start=1):
            if x:
                c[f"in{i}:{'const' if x in const else 'computed'}"] += 1
    return {op: sorted(v) for op, v in attrs.items()}, {op: dict(v) for op, v in srcs.items()}


def describe(path: Path) -> dict:
    m = onnx.load(str(path), load_external_data=False)
    g = m.graph
    sub = Counter()
    hist = _hist(g.node, sub)
    attrs, srcs = _details(g)
    ext = any(t.data_location == onnx.TensorProto.EXTERNAL for t in g.initializer)
    size = path.stat().st_size
    data = Path(str(path) + ".data")
    n_params = 0
    for t in g.initializer:
        k = 1
        for d in t.dims:
            k *= d
        n_params += k
    ins = {i.name: _shape(i) for i in g.input}
    return {
        "file": path.name,
        "bytes": size,
        "data_bytes": data.stat().st_size if data.exists() else 0,
        "external_data": ext,
        "ir_version": m.ir_version,
        "producer": f"{m.producer_name} {m.producer_version}".strip(),
        "opsets": {(o.domain or "ai.onnx"): o.version for o in m.opset_import},
        "inputs": ins,
        "outputs": {o.name: _shape(o) for o in g.output},
        "static": all(isinstance(d, int) and d > 0 for _, s in ins.values() for d in s),
        "nodes": len(g.node),
        "initializers": len(g.initializer),
        "params": n_params,
        "hist": dict(hist.most_common()),
        "attrs": attrs,
        "input_sources": srcs,
        "subgraph_hist": dict(sub.most_common()),
        "functions": {
            f"{f.domain}::{f.name}": dict(_hist(f.node).most_common()) for f in m.functions
        },
        "node_metadata_keys": sorted({p.key for n in g.node for p in n.metadata_props}),
        "value_info": len(g.value_info),
    }


def _fmt_io(d):
    return ", ".join(f"`{n}` {t}{s}" for n, (t, s) in d.items())


def _matrix(descs, title):
    ops = Counter()
    for d in descs:
        ops.update(d["hist"])
    cols = [d["file"].replace(".onnx", "") for d in descs]
    lines = [f"### {title}", "", "| op | " + " | ".join(cols) + " |", "|---|" + "---:|" * len(cols)]
    for op in sorted(ops, key=lambda o: (o in BASIC, o)):
        mark = "" if op in BASIC else " *"
        lines.append(
            f"| {op}{mark} | " + " | ".join(str(d["hist"].get(op, "")) for d in descs) + " |"
        )
    lines.append("| **nodes** | " + " | ".join(str(d["nodes"]) for d in descs) + " |")
    lines.append("")
    return lines


def _attr_table(descs):
    """Attributes and input sources per op type, over both exporters (ts / dynamo)."""
    lines = [
        "### Attributes and input sources per op type",
        "",
        "`inK:const` = input K (K >= 1) is an initializer or a Constant node's output; "
        "`inK:computed` = produced by another node (e.g. a shape computed with Shape/Gather/Concat).",
        "",
        "| op | exporter | attributes seen | input sources (node count) |",
        "|---|---|---|---|",
    ]
    ops = sorted({op for d in descs for op in d["hist"]})
    for op in ops:
        for kind in ("ts", "dynamo"):
            at, src = set(), Counter()
            for d in descs:
                if f".{kind}." in d["file"] and op in d["attrs"]:
                    at.update(d["attrs"][op])
                    src.update(d["input_sources"].get(op, {}))
            if (
                not at
                and not src
                and not any(f".{kind}." in d["file"] and op in d["hist"] for d in descs)
            ):
                continue
            a = ", ".join(f"`{x}`" for x in sorted(at)[:12]) + (" ..." if len(at) > 12 else "")
            lines.append(
                f"| {op} | {kind} | {a} | {', '.join(f'{k} {v}' for k, v in sorted(src.items()))} |"
            )
    lines.append("")
    return lines


NOTES = """## What the histograms mean for a front end (read with the tables below)

- **Two dialects.** TorchScript exports (`.ts`, opset 17, ir 8) keep `Constant` nodes and
  unfolded shape arithmetic even though every input shape is static (`Shape` -> `Gather` ->
  `Unsqueeze`/`Concat` -> `Reshape`/`Expand`; the ViT's `nn.MultiheadAttention` adds
  `Shape`/`Cast`/`Div`/`Sqrt`/`Mod`/`Slice` per layer for head_dim and q/k/v splitting).
  Dynamo exports (`.dynamo`, opset 20, ir 10) have no `Constant`/`Identity`/`Shape` nodes:
  constants and folded shapes are initializers (named `val_N`), but they carry `value_info`
  for every intermediate and per-node `metadata_props` (stack traces, ~180 KB per small file).
- **Attention** is never a fused op (it is torch's SDPA, decomposed): Q and K^T are *each*
  multiplied by a scalar constant (head_dim^-1/4, 0.42 for head_dim 32) before `MatMul`
  (dynamo transposes K by a Reshape/Transpose/Reshape triple) -> `Add` of the additive mask ->
  `Softmax` -> `IsNaN` + `Where` (zeroes rows that were fully masked; present even without an
  attention_mask) -> `MatMul` with V -> `Transpose` + `Reshape`.
- **Masks** (HF, transformers 5): `attention_mask` (int64) becomes a boolean mask through
  `Cast`(to bool) + `And`, then `Where`(mask, 0, -inf) in TorchScript or
  `Where`(mask, 0, -3.4e38) in dynamo, added to the scores. Dynamo indexes the cast mask with
  one `GatherND`; TorchScript builds the same thing from `ConstantOfShape`/`GreaterOrEqual`/
  `LessOrEqual` (GPT-2's causal part)/`Shape`/`Flatten`/`Gather`/`Expand`/`Equal` on
  constants and the mask. Without an attention_mask (`bert_tiny_ids`) the mask is gone, but
  TorchScript still emits `ConstantOfShape`/`Equal`/`Where`/`Expand`/`GatherElements` on
  constants only (the token_type_ids buffer) -- a constant folder removes them.
- **GELU**: TorchScript writes `Div`(sqrt 2) -> `Erf` -> `Add` 1 -> `Mul` -> `Mul` 0.5; dynamo
  writes the opset-20 `Gelu` op (`approximate=none`). GPT-2's tanh GELU is spelled out
  (`Pow` 3, `Mul`, `Add`, `Tanh`) by both.
- **Linear**: `Gemm` only for 2-D operands -- the pooler and classifier heads (`transB=1`),
  and GPT-2's `Conv1D`, which reshapes to 2-D, runs `Gemm` with its (in, out) weight
  (`transB=0`) and reshapes back. `nn.Linear` on 3-D activations is `MatMul` with a
  pre-transposed weight initializer (`onnx::MatMul_N` / `val_N`, not the parameter's name)
  + `Add` of the bias.
- **CNNs**: both exporters fold BatchNorm into Conv (no `BatchNormalization` anywhere); ReLU6
  is `Clip` with min/max as constant inputs; the head is `GlobalAveragePool` + `Flatten` +
  `Gemm` (TorchScript) or `ReduceMean`(axes input, keepdims=1) + `Reshape` + `Gemm` (dynamo).
- **Split** in GPT-2: TorchScript gives sizes as a second input, dynamo (opset 18+) the
  `num_outputs` attribute. `ReduceMean`/`Squeeze`/`Unsqueeze` take axes as inputs (opset 13+/18+).
- No non-default domains (`com.microsoft`, `pkg.onnxscript`), no local functions and no
  subgraphs (If/Loop) appear in any export; all graph inputs are static (batch 1).
"""


def render(groups) -> str:
    out = [
        "# Op-type histograms of the exported fixtures",
        "",
        "Generated by `tests/models/ops_report.py` from the files made by `tests/models/export.py`",
        "(torch 2.14.1, transformers 5.17.0, torchvision 0.29.1, onnxscript 0.7.2; see README.md).",
        "Counts are nodes of the main graph; `*` marks op types beyond the ordinary set",
        "(" + ", ".join(sorted(BASIC)) + ").",
        "Non-default domains are written `domain::Op`. `.ts` = TorchScript exporter (opset 17),",
        "`.dynamo` = torch.export-based exporter (its default opset, 20).",
        "",
        NOTES,
    ]
    for title, descs in groups:
        if not descs:
            continue
        beyond = Counter()
        for d in descs:
            for op in d["hist"]:
                if op not in BASIC:
                    beyond[op] += 1
        out += [f"## {title}", ""]
        out.append(
            "Op types beyond the ordinary set (number of files using each): "
            + ", ".join(f"{op} ({k})" for op, k in sorted(beyond.items()))
            + "."
        )
        doms = sorted({dom for d in descs for dom in d["opsets"]})
        out.append(
            f"Opset domains imported: {', '.join(doms)}. "
            f"Local functions: {sum(len(d['functions']) for d in descs)}. "
            f"Subgraph (If/Loop/Scan) bodies: {sum(sum(d['subgraph_hist'].values()) for d in descs)} nodes."
        )
        out.append("")
        fam: dict[str, list] = {}
        for d in descs:
            fam.setdefault(d["file"].split(".")[0], []).append(d)
        for name, ds in fam.items():
            out += _matrix(ds, name)
        out += _attr_table(descs)
        out += ["### Files", ""]
        for d in descs:
            ext = f" + `.data` {d['data_bytes']:,} B (external data)" if d["external_data"] else ""
            out.append(
                f"- **{d['file']}** — {d['bytes']:,} B{ext}; ir {d['ir_version']}, opsets "
                f"{json.dumps(d['opsets'])}, producer `{d['producer']}`; {d['nodes']} nodes, "
                f"{d['initializers']} initializers ({d['params']:,} values), {d['value_info']} value_info"
            )
            out.append(
                f"  - inputs ({'static' if d['static'] else 'NOT static'}): {_fmt_io(d['inputs'])}"
            )
            out.append(f"  - outputs: {_fmt_io(d['outputs'])}")
            if d["functions"]:
                out.append(f"  - functions: {json.dumps(d['functions'])}")
            if d["subgraph_hist"]:
                out.append(f"  - inside subgraphs: {json.dumps(d['subgraph_hist'])}")
            if d["node_metadata_keys"]:
                out.append(f"  - node metadata_props keys: {', '.join(d['node_metadata_keys'])}")
        out.append("")
    return "\n".join(out) + "\n"


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--full", metavar="DIR", help="also describe DIR/*.onnx (full-size exports)")
    ap.add_argument("--out", default=str(HERE / "OPS.md"))
    ap.add_argument("--json", help="also write the raw descriptions here")
    a = ap.parse_args(argv)
    groups = [
        (
            "Small fixtures (tests/models/, committed)",
            [describe(p) for p in sorted(HERE.glob("*.onnx"))],
        )
    ]
    if a.full:
        groups.append(
            (
                f"Full-size exports ({a.full}, not committed)",
                [describe(p) for p in sorted(Path(a.full).glob("*.onnx"))],
            )
        )
    Path(a.out).write_text(render(groups))
    if a.json:
        Path(a.json).write_text(json.dumps(groups, indent=1))
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
