"""Full-size exported models through the ONNX, Relax and torch.export front ends: MAC
totals against an independent count, and HF BERT-Base's MAC ops against the zoo's
``bert-base``, op for op (problem, cycles, energy).

    .venv/bin/python benchmarks/bench_frontends.py /work/models

The models are made by ``tests/models/export.py --full DIR`` (needs torch, transformers and
torchvision).  Last line: one JSON object.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

#: independent MAC counts (BERT-Base: the zoo's per-layer count x 12 plus the pooler)
EXPECTED = {
    "bert_base_128": 12 * 931_135_488 + 768 * 768,
    "bert_base_512": 12 * 4_026_531_840 + 768 * 768,
    "resnet50": 4_089_184_256,
}


def _macs(g):
    return sorted((op.kind, g.problem(op).sizes) for op in g.ops() if g.problem(op) is not None)


def _same_report_as_zoo(path: Path | str, seq: int) -> bool:
    """HF BERT-Base's MAC rows (problem, cycles, energy), in order, equal the zoo
    ``bert-base`` report's, but for the pooler (one more 1x768x768 matmul at the end)."""
    from compiler.pipeline import compile_model

    rows = []
    for model in (path, "bert-base"):
        r = compile_model(model, "gemmini", budget=2000, time_per_op=None, seq=seq)
        rows.append([(x.problem, x.cycles, x.energy_pJ) for x in r.rows if not x.on_host])
    hf, zoo = rows
    return hf[:-1] == zoo and hf[-1][0] == "C=768 M=768"


def main(folder: str) -> dict:
    from compiler.frontends.onnx import from_onnx
    from compiler.frontends.relax import from_onnx_via_relax

    out = {}
    for path in sorted(Path(folder).glob("*.onnx")):
        stem = path.name.split(".")[0]
        row = {}
        for fe, read in (("onnx", from_onnx), ("relax", from_onnx_via_relax)):
            t0 = time.perf_counter()
            try:
                g = read(path)
                row[fe] = {"macs": g.macs, "seconds": round(time.perf_counter() - t0, 1),
                           "host_ops": sum(op.kind == "host" for op in g.ops()),
                           "mac_ops": len(_macs(g))}
                row.setdefault("problems", {})[fe] = _macs(g)
            except Exception as e:  # report, go on with the next model
                row[fe] = {"error": f"{type(e).__name__}: {str(e)[:200]}"}
        probs = row.pop("problems", {})
        row["front_ends_agree"] = len(probs) == 2 and probs["onnx"] == probs["relax"]
        if stem in EXPECTED:
            row["expected_macs"] = EXPECTED[stem]
        if stem.startswith("bert_base_") and "onnx" in probs:
            row["zoo_report_equal"] = _same_report_as_zoo(path, int(stem.rsplit("_", 1)[1]))
        out[path.name] = row
        print(path.name, json.dumps(row), flush=True)
    for path in sorted(Path(folder).glob("*.pt2")):  # the torch.export front end
        from compiler.frontends.torch import from_exported_program, load_exported_program

        t0 = time.perf_counter()
        try:
            g = from_exported_program(load_exported_program(path))
            row = {"torch": {"macs": g.macs, "seconds": round(time.perf_counter() - t0, 1),
                             "host_ops": sum(op.kind == "host" for op in g.ops()),
                             "mac_ops": len(_macs(g))}}
        except Exception as e:  # torch missing, or an import failure: report it
            row = {"torch": {"error": f"{type(e).__name__}: {str(e)[:200]}"}}
        stem = path.name.split(".")[0]
        if stem in EXPECTED:
            row["expected_macs"] = EXPECTED[stem]
        if stem.startswith("bert_base_") and "error" not in row["torch"]:
            row["zoo_report_equal"] = _same_report_as_zoo(path, int(stem.rsplit("_", 1)[1]))
        out[path.name] = row
        print(path.name, json.dumps(row), flush=True)
    return out


if __name__ == "__main__":
    res = main(sys.argv[1] if len(sys.argv) > 1 else "/work/models")
    print(json.dumps(res))
