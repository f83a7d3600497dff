"""The timing model of the functional Gemmini runtime (targets/gemmini/runtime, README.md
"Timing model"): hand-written intrinsic sequences run by a tiny C interpreter against the
runtime, each checked against a closed form computed here from the documented rules --
one tile (the dependency chain), a stream of independent tiles (loads overlap computes;
compute-bound and load-bound), a DMA-bound loop (bandwidth-bound and latency-bound) -- and
an emitted bert-base/ffn1 kernel against the analytical model."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

RUNTIME = Path(__file__).resolve().parent.parent / "targets" / "gemmini" / "runtime"
DIM = 16
ACC = 1 << 31
FULL = 1 << 29
GARBAGE = 0xFFFFFFFF

# A line-oriented interpreter: one intrinsic per line, local addresses in hex; mvins read
# and mvouts write one static DRAM buffer.  "params" prints the timing parameters.  At the
# end: a fence and the counters as JSON.
_HARNESS = r"""
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "gemmini_model.h"
static int32_t dram[1 << 20];
int main(void) {
  char op[32];
  unsigned long x, y;
  int a, b, c, d;
  while (scanf("%31s", op) == 1) {
    if (!strcmp(op, "params")) {
      struct gemmini_timing t;
      gemmini_timing_get(&t);
      printf("{\"dram_bytes_per_cycle\": %u, \"dma_latency\": %u, \"dma_max_bytes\": %u, "
             "\"dma_inflight\": %u, \"rs_ld\": %u, \"rs_ex\": %u, \"rs_st\": %u}\n",
             t.dram_bytes_per_cycle, t.dma_latency, t.dma_max_bytes, t.dma_inflight,
             t.rs_ld, t.rs_ex, t.rs_st);
      return 0;
    } else if (!strcmp(op, "config_ld")) {
      if (scanf("%lu %d", &x, &a) != 2) return 2;
      gemmini_extended3_config_ld(x, 1.0f, 0, a);
    } else if (!strcmp(op, "mvin") || !strcmp(op, "mvin2") || !strcmp(op, "mvin3")) {
      if (scanf("%lx %d %d", &x, &a, &b) != 3) return 2;
      if (op[4] == '2') gemmini_extended_mvin2(dram, (uint32_t)x, a, b);
      else if (op[4] == '3') gemmini_extended_mvin3(dram, (uint32_t)x, a, b);
      else gemmini_extended_mvin(dram, (uint32_t)x, a, b);
    } else if (!strcmp(op, "mvout")) {
      if (scanf("%lx %d %d", &x, &a, &b) != 3) return 2;
      gemmini_extended_mvout(dram, (uint32_t)x, a, b);
    } else if (!strcmp(op, "preload")) {
      if (scanf("%lx %lx %d %d %d %d", &x, &y, &a, &b, &c, &d) != 6) return 2;
      gemmini_extended_preload((uint32_t)x, (uint32_t)y, a, b, c, d);
    } else if (!strcmp(op, "compute_preloaded") || !strcmp(op, "compute_accumulated")) {
      if (scanf("%lx %lx %d %d %d %d", &x, &y, &a, &b, &c, &d) != 6) return 2;
      if (op[8] == 'p') gemmini_extended_compute_preloaded((uint32_t)x, (uint32_t)y, a, b, c, d);
      else gemmini_extended_compute_accumulated((uint32_t)x, (uint32_t)y, a, b, c, d);
    } else {
      fprintf(stderr, "unknown op %s\n", op);
      return 2;
    }
  }
  gemmini_fence();
  gemmini_counters_json(stdout);
  return 0;
}
"""

# Gemmini defaults (README.md "Timing model"); the closed forms below use these names
L = 100            # dma_latency
SPAD_READ = 4      # spad_read_delay
DRAIN = SPAD_READ + 2 * DIM - 1 + 1 + 2   # + mesh_output_delay + acc_latency = 38


@pytest.fixture(scope="module")
def harness(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("timing")
    (d / "h.c").write_text(_HARNESS)
    exe = d / "h"
    cc = os.environ.get("CC") or "gcc"
    subprocess.run([cc, "-O2", "-std=gnu11", "-I", str(RUNTIME), str(d / "h.c"),
                    str(RUNTIME / "gemmini_model.c"), "-o", str(exe)], check=True)
    return exe


def run(exe: Path, lines: list[str], **params: int) -> dict:
    env = {**os.environ, "GEMMINI_TIMING": ",".join(f"{k}={v}" for k, v in params.items())}
    proc = subprocess.run([str(exe)], input="\n".join(lines) + "\n", env=env,
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def mvin(addr: int, cols: int = DIM, rows: int = DIM, op: str = "mvin") -> str:
    return f"{op} {addr:x} {cols} {rows}"


def preload(b: int, c: int) -> str:
    return f"preload {b:x} {c:x} {DIM} {DIM} {DIM} {DIM}"


def compute(a: int, op: str = "compute_preloaded") -> str:
    return f"{op} {a:x} {GARBAGE:x} {DIM} {DIM} {DIM} {DIM}"


def mvout(addr: int, cols: int = DIM, rows: int = DIM) -> str:
    return f"mvout {addr:x} {cols} {rows}"


ONE_TILE = [mvin(0), mvin(16, op="mvin2"), preload(16, ACC), compute(0),
            mvout(ACC | FULL)]


def test_defaults_match_arch_yaml(harness):
    """The C defaults: DRAM bytes/cycle is arch.yaml's DRAM shared_bandwidth; the rest are
    Gemmini's default config (GemminiConfigs.scala / Configs.scala)."""
    from targets import load_target

    dram = next(lv for lv in load_target("gemmini").levels if lv.name == "DRAM")
    p = json.loads(subprocess.run([str(harness)], input="params\n", capture_output=True,
                                  text=True, env={k: v for k, v in os.environ.items()
                                                  if k != "GEMMINI_TIMING"}).stdout)
    assert p == {"dram_bytes_per_cycle": int(dram.shared_bandwidth), "dma_latency": L,
                 "dma_max_bytes": 64, "dma_inflight": 16, "rs_ld": 8, "rs_ex": 16, "rs_st": 4}


def test_one_tile_is_its_dependency_chain(harness):
    """mvin A, mvin2 B, preload B -> C(acc), compute A, mvout C (int32): nothing overlaps
    but the two mvins, so the total is the chain, term by term (issue cycles 0; a window of
    64 TileLink requests, so the second mvin's requests need not wait for the first's)."""
    c = run(harness, ONE_TILE, issue_cycles=0, dma_inflight=64)
    row_in = DIM // 8                       # 16 B int8 row at 8 B/cycle
    a_done = L + DIM * row_in               # 16 requests, one per cycle, channel-bound
    b_done = a_done + DIM * row_in          # B's data follows A's on the channel
    feed_pre = DIM                          # single preload: B's 16 rows into the array
    feed_cmp = DIM                          # compute: A's 16 rows
    c_done = b_done + feed_pre + feed_cmp + DRAIN   # results written into the accumulator
    row_out = DIM * 4 // 8                  # 64 B int32 row at 8 B/cycle
    total = c_done + SPAD_READ + DIM * row_out + L  # last write acknowledged
    print(f"\none tile: cycles {c['cycles']} (closed form {total})")
    assert c["cycles"] == total == 2 * L + 266
    assert c["load_busy"] == b_done
    assert c["exec_busy"] == feed_pre + feed_cmp
    assert c["store_busy"] == total - c_done
    assert c["dram_busy"] == 2 * DIM * row_in + DIM * row_out
    assert c["dma_read_reqs"] == 2 * DIM and c["dma_write_reqs"] == DIM
    # Gemmini's 16 requests in flight: B's request j is sent when A's request j returns, so
    # B's data arrives one latency after A's instead of right behind it
    d = run(harness, ONE_TILE, issue_cycles=0)
    b_window = a_done + L + row_in
    assert d["cycles"] == total - b_done + b_window == 3 * L + 236


@pytest.mark.parametrize("n", [1, 2, 8])
def test_stream_compute_bound_loads_overlap(harness, n):
    """Two weight blocks, then n independent A tiles (each its own scratchpad rows and
    accumulator rows), each multiplied by both blocks.  16 B/cycle: a tile's load takes 16
    cycles, its two computes 32, so after the first A arrives the array never waits: each
    preload is fed with the previous compute's rows (perform_mul_pre) and
    total = first loads + one single preload + 2n computes + drain."""
    lines = [mvin(0, op="mvin2"), mvin(16, op="mvin2")]
    for i in range(n):
        a = 64 + 16 * i
        lines += [mvin(a), preload(0, ACC | (32 * i)), compute(a),
                  preload(16, ACC | (32 * i + 16)), compute(a)]
    c = run(harness, lines, issue_cycles=0, dma_latency=10, dram_bytes_per_cycle=16,
            rs_ld=64, rs_ex=64, rs_st=64)
    lat, row = 10, 1
    first_a = lat + 3 * DIM * row           # B0, B1, A0: 48 rows, one per cycle
    total = first_a + DIM + 2 * n * DIM + DRAIN
    loads = lat + (n + 2) * DIM * row
    print(f"\nstream n={n} compute-bound: cycles {c['cycles']} (closed form {total}), "
          f"load_busy {c['load_busy']}, exec_busy {c['exec_busy']}")
    assert c["cycles"] == total
    assert c["exec_busy"] == DIM + 2 * n * DIM
    assert c["load_busy"] == loads
    if n >= 2:  # the queues overlap: run one after the other they would take longer
        assert c["cycles"] < c["load_busy"] + c["exec_busy"] + DRAIN


@pytest.mark.parametrize("n", [2, 8])
def test_stream_load_bound_computes_overlap(harness, n):
    """The same stream at 4 B/cycle: a tile's load takes 64 cycles, its computes 32, so the
    array waits for each A and total = all loads + the last tile's 2 computes + drain."""
    lines = [mvin(0, op="mvin2"), mvin(16, op="mvin2")]
    for i in range(n):
        a = 64 + 16 * i
        lines += [mvin(a), preload(0, ACC | (32 * i)), compute(a),
                  preload(16, ACC | (32 * i + 16)), compute(a)]
    c = run(harness, lines, issue_cycles=0, dma_latency=10, dram_bytes_per_cycle=4,
            rs_ld=64, rs_ex=64, rs_st=64)
    lat, row = 10, 4
    loads = lat + (n + 2) * DIM * row
    total = loads + 2 * DIM + DRAIN
    print(f"\nstream n={n} load-bound: cycles {c['cycles']} (closed form {total})")
    assert c["cycles"] == total
    assert c["load_busy"] == loads
    assert c["cycles"] < c["load_busy"] + c["exec_busy"] + DRAIN


def test_stream_default_reservation_station_only_slower(harness):
    """With Gemmini's 8/16/4 reservation-station entries the host stalls in program order:
    never faster than with ample entries."""
    lines = [mvin(0, op="mvin2"), mvin(16, op="mvin2")]
    for i in range(16):
        a = 64 + 16 * i
        lines += [mvin(a), preload(0, ACC | (32 * i)), compute(a),
                  preload(16, ACC | (32 * i + 16)), compute(a), mvout(ACC | FULL | (32 * i))]
    ample = run(harness, lines, rs_ld=64, rs_ex=64, rs_st=64)
    gemmini = run(harness, lines)
    assert gemmini["cycles"] >= ample["cycles"]


@pytest.mark.parametrize("n", [1, 4, 12])
def test_dma_bound_loop_bandwidth(harness, n):
    """n mvins of 16 rows x 64 int8 columns: one 64 B TileLink request per row, 8 cycles of
    DRAM each; 16 in flight cover the latency (16 x 64 B > 100 cycles x 8 B/cycle), so
    total = config issue + latency + bytes / bandwidth."""
    c = run(harness, ["config_ld 64 0"] + [mvin(64 * i, cols=64) for i in range(n)])
    total_bytes = n * DIM * 64
    total = 1 + L + total_bytes // 8
    print(f"\nDMA bandwidth-bound n={n}: cycles {c['cycles']} (closed form {total})")
    assert c["cycles"] == total
    assert c["dram_busy"] == total_bytes // 8
    assert c["load_busy"] == total - 1 and c["exec_busy"] == 0


@pytest.mark.parametrize("n", [1, 4, 12])
def test_dma_bound_loop_latency(harness, n):
    """n mvins of 16 x 16 int8: 16 B requests (2 cycles of DRAM) but only 16 in flight with
    a 100-cycle latency (Little's law: 16 x 16 B / 102 cycles = 2.5 B/cycle < 8), so each
    mvin costs a latency: request k = 16j + i returns at (j+1) L + (j+i+1) t, and
    total = n L + (n + 15) t."""
    c = run(harness, [mvin(16 * i) for i in range(n)])
    t = 2
    total = n * L + (n + 15) * t
    print(f"\nDMA latency-bound n={n}: cycles {c['cycles']} (closed form {total}), "
          f"{n * 256 / c['cycles']:.2f} B/cycle")
    assert c["cycles"] == total


def test_unknown_parameter_aborts(harness):
    proc = subprocess.run([str(harness)], input=mvin(0), capture_output=True, text=True,
                          env={**os.environ, "GEMMINI_TIMING": "dram_bandwidth=8"})
    assert proc.returncode != 0 and "unknown parameter" in proc.stderr


# --------------------------------------------------------------------------- end to end
def test_bert_ffn1_emitted_cycles_vs_analytical(tmp_path):
    """An emitted bert-base/ffn1 mapping: the timing model's cycles are at least the
    analytical model's compute-bound cycles (MACs / 256) and within a plausible factor; the
    array is busy at least MACs / 256 cycles; the DRAM channel moves exactly the bytes the
    mvins and mvouts move."""
    pytest.importorskip("tvm")
    from cost_models import evaluate
    from cost_models.search import find_mapping
    from mapspace.workloads import workload
    from targets.gemmini.emit import emit
    from targets.registry import get_target

    target = get_target("gemmini")
    arch = target.arch()
    p = workload("bert-base/ffn1")
    m = find_mapping(target.space(p), budget=3000, seed=0).best_mapping
    analytical = evaluate(p, arch, m).stats(0)["cycles"]
    r = emit(p, m, arch, out_dir=tmp_path, run=True)
    assert r.correct
    c = r.counters
    bound = p.macs / (DIM * DIM)
    print(f"\nbert-base/ffn1: timing model {c['cycles']:,} cycles, analytical "
          f"{analytical:,.0f}, compute bound {bound:,.0f} (x{c['cycles'] / analytical:.2f}); "
          f"load {c['load_busy']:,} exec {c['exec_busy']:,} store {c['store_busy']:,} "
          f"dram {c['dram_busy']:,}")
    assert c["cycles"] >= analytical >= bound
    assert c["cycles"] <= 5 * analytical
    assert c["exec_busy"] >= bound
    assert c["dram_busy"] == (c["mvin_bytes"] + c["mvout_bytes"]) // 8
    assert max(c["load_busy"], c["exec_busy"], c["store_busy"]) <= c["cycles"]


def test_whole_model_program_sums_cycles(tmp_path):
    """The whole-model program (targets/gemmini/model.py) reports the counters of every
    call summed, cycles included."""
    pytest.importorskip("tvm")
    import numpy as np

    from cost_models.search import find_mapping
    from mapspace.problem import matmul
    from targets.gemmini.model import build_kernels
    from targets.registry import get_target

    target = get_target("gemmini")
    p = matmul(40, 48, 32, name="mm")
    m = find_mapping(target.space(p), budget=300, seed=0).best_mapping
    k = build_kernels([("mm", p, m)], target.arch(), out_dir=tmp_path)
    rng = np.random.default_rng(0)
    a = rng.integers(-8, 8, (40, 48), dtype=np.int8)
    b = rng.integers(-8, 8, (48, 32), dtype=np.int8)
    z = k.call("mm", a, b)
    np.testing.assert_array_equal(z, a.astype(np.int32) @ b.astype(np.int32))
    one = k.counters["cycles"]
    assert one >= p.macs / 256 and one > 0
    k.call("mm", a, b)
    assert k.counters["cycles"] == 2 * one and k.counters["calls"] == 2
