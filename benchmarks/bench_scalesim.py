"""SCALE-Sim vs the Gemmini timing model vs the analytical model, layer by layer.

    .venv/bin/python benchmarks/bench_scalesim.py [--budget 2000] [--layers a,b] [--jobs N]

For each layer: (1) the analytical model's cycles for the mapper's best mapping of the
``gemmini`` target (``targets.registry.get_target("gemmini").space(problem)`` searched by
``cost_models.search.find_mapping``); (2) the same mapping emitted to C and run on the
functional Gemmini runtime, whose timing model (targets/gemmini/runtime, README.md "Timing
model") reports cycles and each queue's busy time; (3) SCALE-Sim 3.0.0 (``scalesim`` on
PyPI), an independent cycle-level systolic-array simulator, on its own tiling of the layer:
weight-stationary, a 16x16 array, Gemmini's SRAMs (the 256 KiB scratchpad split into
128 KiB ifmap + 128 KiB filter buffers, the 64 KiB accumulator as the ofmap buffer), 8
words (bytes) per cycle for each of its DRAM interfaces.  SCALE-Sim reports compute cycles
(fill, stream, drain per fold, no memory stalls), its total (with stalls) and the span from
the first DRAM read to the last DRAM write.

BERT layers run as reduced matmuls (q-proj at sequence length 64, one attention head at
sequence length 128; see LAYERS for why); the ResNet-50 convolutions at full size.  SCALE-Sim runs
each layer in its own process (``--jobs``, default: the CPU count).  A table, then one
JSON object on the last line.  README.md (targets/gemmini) explains the differences.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from cost_models import evaluate
from cost_models.search import find_mapping
from mapspace.problem import Problem, matmul
from mapspace.workloads import workload
from targets.gemmini.emit import emit
from targets.registry import get_target

DIM = 16
DRAM_BYTES_PER_CYCLE = 8

#: name -> the matmul run (M rows, K, N) and a note, for BERT layers (reduced: SCALE-Sim
#: builds its per-fold matrices by repeated concatenation, so its run time grows with the
#: square of the folds, ceil(K/16) * ceil(N/16): q-proj's 2,304 folds take ~25 s, ffn1's
#: 9,216 over 6 minutes); for ResNet-50 convolutions, the SCALE-Sim conv row (padded input
#: H, W, filter R, S, channels, filters, stride) of the full layer.
LAYERS: dict[str, tuple] = {
    "bert-base/q-proj": ((64, 768, 768), "seq 64 (of 512)"),
    "bert-base/attn-scores": ((128, 64, 128), "1 head, seq 128"),
    "bert-base/attn-context": ((128, 128, 64), "1 head, seq 128"),
    "bert-base/ffn1": ((32, 768, 3072), "seq 32 (of 512)"),
    "bert-base/ffn2": ((32, 3072, 768), "seq 32 (of 512)"),
    "resnet50/conv1": ((230, 230, 7, 7, 3, 64, 2), "full size"),
    "resnet50/conv3_x": ((30, 30, 3, 3, 128, 128, 1), "full size"),
    "resnet50/conv4_x.reduce": ((14, 14, 1, 1, 1024, 256, 1), "full size"),
}
#: run by default (a few minutes on 2 cores); ffn1/ffn2 with --layers
DEFAULT = ("bert-base/q-proj", "bert-base/attn-scores", "bert-base/attn-context",
           "resnet50/conv1", "resnet50/conv3_x", "resnet50/conv4_x.reduce")

_CONFIG = f"""[general]
run_name = gemmini

[architecture_presets]
ArrayHeight: {DIM}
ArrayWidth: {DIM}
IfmapSramSzkB: 128
FilterSramSzkB: 128
OfmapSramSzkB: 64
IfmapOffset: 0
FilterOffset: 10000000
OfmapOffset: 20000000
Dataflow: ws
Bandwidth: {DRAM_BYTES_PER_CYCLE}
ReadRequestBuffer: 32
WriteRequestBuffer: 32

[layout]
IfmapCustomLayout: False
IfmapSRAMBankBandwidth: {DRAM_BYTES_PER_CYCLE}
IfmapSRAMBankNum: 1
IfmapSRAMBankPort: 2
FilterCustomLayout: False
FilterSRAMBankBandwidth: {DRAM_BYTES_PER_CYCLE}
FilterSRAMBankNum: 1
FilterSRAMBankPort: 2

[sparsity]
SparsitySupport: false
SparseRep: ellpack_block
OptimizedMapping: false
BlockSize: 8
RandomNumberGeneratorSeed: 40

[run_presets]
InterfaceBandwidth: USER
UseRamulatorTrace: False
"""


def problem_for(name: str) -> tuple[Problem, str]:
    """The layer as run here and a note on it (BERT: a matmul of the layer's K and N)."""
    shape, note = LAYERS[name]
    if name.startswith("resnet50/"):
        return workload(name), note
    m, k, n = shape
    full = workload(name)
    s = dict(zip(full.dims, full.sizes, strict=True))
    # the layer's own K (C) and N (M); attention's sequence-length dims are reduced
    kept = {"bert-base/attn-scores": ("C",), "bert-base/attn-context": ("M",)}.get(name,
                                                                                 ("C", "M"))
    assert all({"C": k, "M": n}[d] == s[d] for d in kept), (name, s)
    return matmul(m, k, n, name=f"{name}@{m}x{k}x{n}"), note


def scalesim_row(name: str, p: Problem) -> tuple[bool, str]:
    """(GEMM mode?, the topology CSV row) for SCALE-Sim; its MACs equal the problem's."""
    shape, _ = LAYERS[name]
    if not name.startswith("resnet50/"):
        m, k, n = shape
        return True, f"{name}, {m}, {n}, {k},"   # SCALE-Sim's GEMM row: M, N, K
    h, w, r, sw, c, f, st = shape
    px = ((h - r) // st + 1) * ((w - sw) // st + 1)
    assert px * r * sw * c * f == p.macs, (name, px * r * sw * c * f, p.macs)
    return False, f"{name}, {h}, {w}, {r}, {sw}, {c}, {f}, {st},"


def run_scalesim(name: str, gemm: bool, row: str) -> dict:
    """SCALE-Sim on one layer in a fresh folder: its cycle counts and DRAM accesses."""
    from scalesim.scale_sim import scalesim

    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="scalesim_") as d:
        cfg, topo, layout = Path(d, "gemmini.cfg"), Path(d, "layer.csv"), Path(d, "layout.csv")
        cfg.write_text(_CONFIG)
        header = ("Layer, M, N, K," if gemm else "Layer name, IFMAP Height, IFMAP Width, "
                  "Filter Height, Filter Width, Channels, Num Filter, Strides,")
        topo.write_text(f"{header}\n{row}\n")
        layout.write_text("Layer name, IFMAP Height Intraline Factor,\n")
        s = scalesim(save_disk_space=True, verbose=False, config=str(cfg), topology=str(topo),
                     layout=str(layout), input_type_gemm=gemm)
        s.run_scale(top_path=str(Path(d, "out")))
        layer = s.runner.single_layer_sim_object_list[0]
        overall, total, stalls, _util, _eff, _cutil = layer.get_compute_report_items()
        layer.calc_report_data()
        return {"compute": int(total - stalls), "total": int(total), "stalls": int(stalls),
                "overall": int(overall), "ifmap_dram_reads": int(layer.ifmap_dram_reads),
                "filter_dram_reads": int(layer.filter_dram_reads),
                "ofmap_dram_writes": int(layer.ofmap_dram_writes),
                "seconds": round(time.perf_counter() - t0, 1)}


def ours(p: Problem, budget: int, seed: int) -> dict:
    """The analytical model and the timing model on the mapper's best mapping."""
    target = get_target("gemmini")
    arch = target.arch()
    t0 = time.perf_counter()
    m = find_mapping(target.space(p), budget=budget, seed=seed).best_mapping
    st = evaluate(p, arch, m).stats(0)
    r = emit(p, m, arch, run=True, seed=seed)
    if not r.correct:
        raise SystemExit(f"{p.name}: the emitted kernel is not bit-exact")
    c = r.counters
    return {"analytical": int(st["cycles"]), "cycles": c["cycles"],
            "load_busy": c["load_busy"], "exec_busy": c["exec_busy"],
            "store_busy": c["store_busy"], "dram_busy": c["dram_busy"],
            "mvin_bytes": c["mvin_bytes"], "mvout_bytes": c["mvout_bytes"],
            "seconds": round(time.perf_counter() - t0, 1)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--budget", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--layers", default=",".join(DEFAULT),
                    help=f"comma-separated, of: {', '.join(LAYERS)}")
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    args = ap.parse_args()
    names = [n.strip() for n in args.layers.split(",") if n.strip()]
    probs = {n: problem_for(n) for n in names}
    with ProcessPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        futures = {n: pool.submit(run_scalesim, n, *scalesim_row(n, probs[n][0]))
                   for n in names}
        mine = {}
        for n in names:
            mine[n] = ours(probs[n][0], args.budget, args.seed)
            print(f"timing model: {n} {mine[n]['cycles']:,} cycles", file=sys.stderr)
        sims = {}
        for n, f in futures.items():
            sims[n] = f.result()
            print(f"SCALE-Sim: {n} {sims[n]['total']:,} cycles ({sims[n]['seconds']} s)",
                  file=sys.stderr)
    rows = []
    hdr = (f"{'layer':26s} {'as run':16s} {'MACs':>12s} {'MAC/256':>10s} {'analytical':>10s} "
           f"{'timing':>10s} {'load':>9s} {'exec':>9s} {'store':>9s} {'SS comp':>9s} "
           f"{'SS total':>9s} {'SS span':>9s} {'timing/SS':>9s}")
    print(hdr)
    print("-" * len(hdr))
    for n in names:
        p, note = probs[n]
        o, s = mine[n], sims[n]
        row = {"layer": n, "as_run": note, "macs": p.macs, "compute_bound": p.macs // DIM ** 2,
               "analytical": o["analytical"], "timing": o, "scalesim": s,
               "timing_over_scalesim_total": round(o["cycles"] / s["total"], 3)}
        rows.append(row)
        print(f"{n:26s} {note:16s} {p.macs:12,d} {p.macs // DIM ** 2:10,d} "
              f"{o['analytical']:10,d} {o['cycles']:10,d} {o['load_busy']:9,d} "
              f"{o['exec_busy']:9,d} {o['store_busy']:9,d} {s['compute']:9,d} "
              f"{s['total']:9,d} {s['overall']:9,d} {o['cycles'] / s['total']:9.2f}")
    print("timing = this runtime's timing model on the emitted kernel (load/exec/store: busy "
          "cycles of each queue); SS = SCALE-Sim (comp: no stalls; total: with stalls; span: "
          "first DRAM read to last DRAM write)")
    print(json.dumps({"bench": "scalesim", "scalesim_version": "3.0.0", "layers": rows}))


if __name__ == "__main__":
    main()
