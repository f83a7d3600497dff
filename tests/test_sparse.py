"""Sparse layer (cost_models/sparse.py): one hand-worked case per rule S1-S9 of
cost_models/README.md ("Sparse rules").  Expected numbers are derived in the comments.

The base case is test_rules.py's matmul 4x4x4 on DRAM + Buffer (block 1, one instance,
buffer read 1 / fill 2 / update 3 pJ, leak 0.5 pJ/cycle, MAC 0.25 pJ, datawidth 8 bits):
DRAM loops M4, P4 (innermost first), Buffer loop C4.  Dense counts at the Buffer (rule
N1): Weights reads 64, fills 64; Inputs reads 64, fills 16; Outputs reads 48, updates 64.
Buffer tiles: Weights 4 (C4), Inputs 4 (C4), Outputs 1.  64 MACs, 64 cycles.
"""

from __future__ import annotations

import numpy as np
import pytest
from test_rules import ALL, mapping, two_levels

from cost_models import evaluate
from cost_models.sparse import Action, Format, SparseOptimizations, evaluate_sparse
from mapspace.errors import MapspaceError
from mapspace.mapping import MappingBatch
from mapspace.naive_random import random_mappings
from mapspace.problem import matmul
from targets import load_target

W, I, O = 0, 1, 2          # tensor indices of matmul: Weights, Inputs, Outputs
BUF = 1


def base(buffer_words: int = 1 << 20, read_bw: float | None = None, **density: float):
    p, a = matmul(4, 4, 4), two_levels(buffer_words, read_bw)
    for name, d in density.items():
        p = p.with_tensor(name, density=d)
    m = mapping(p, a, [{"M": 4, "P": 4}, {"C": 4}], ["MP", "C"], [ALL, ALL])
    return p, a, m, evaluate(p, a, m)


def test_S2_S3_S5_bitmask_weights_at_the_buffer():
    # Weights density 0.5, bitmask at the Buffer (1 bit per dense element, 8-bit words).
    # Data: reads 64 * 0.5 = 32, fills 64 * 0.5 = 32.
    # Metadata: reads 64 * 1 bit / 8 = 8 words, fills 64 / 8 = 8 words.
    # Occupancy: ceil(4 * 0.5) = 2 data words + ceil(4 bits / 8) = 1 metadata word = 3;
    #   Buffer usage 3 + 4 (Inputs) + 1 (Outputs) = 8 words.
    # Energy at Buffer/Weights: (32 * 1 + 32 * 2) + (8 * 1 + 8 * 2) = 96 + 24 = 120 pJ,
    #   against 64 * 1 + 64 * 2 = 192 pJ dense: total energy is 72 pJ lower.
    # Cycles unchanged (no skipping): 64.
    p, a, m, ev = base(Weights=0.5)
    opts = SparseOptimizations(formats=(Format("Buffer", "Weights", "bitmask"),))
    sc = evaluate_sparse(ev, opts, mappings=m)
    assert sc.valid[0] and sc.reason[0] == ""
    assert sc.reads[0, BUF, W] == 32 and sc.fills[0, BUF, W] == 32
    assert sc.metadata_reads[0, BUF, W] == 8 and sc.metadata_fills[0, BUF, W] == 8
    assert sc.occupancy[0, BUF, W] == 3 and sc.usage[0, BUF] == 8
    assert sc.energy_breakdown[0, BUF, W] == pytest.approx(120.0)
    assert sc.energy[0] == pytest.approx(ev.cost.energy[0] - 72.0)
    assert sc.cycles[0] == ev.cost.cycles[0] == 64
    # other tensors and the DRAM (uncompressed) are untouched
    assert sc.reads[0, BUF, I] == 64 and sc.reads[0, 0, W] == ev.movement.reads[0, 0, W]
    row = sc.frame().iloc[0]
    assert row["Buffer.Weights.reads"] == 32 and row["Buffer.Weights.metadata"] == 16
    assert row["valid"] and row["cycles"] == 64


def test_S3_csr_metadata():
    # CSR Weights at the Buffer, density 0.5.  The Buffer tile of Weights spans C4 only:
    # one row of 4.  Per tile: 2 nonzeros x ceil(log2 4) = 2 bits + (1 + 1) row pointers x
    # ceil(log2(4 + 1)) = 3 bits = 4 + 6 = 10 bits for 4 dense elements (2.5 bits each).
    # Metadata reads: 64 dense-equivalent reads x 2.5 / 8 = 20 words; occupancy:
    # 2 data words + ceil(10 / 8) = 2 metadata words = 4.
    p, a, m, ev = base(Weights=0.5)
    sc = evaluate_sparse(ev, SparseOptimizations(formats=(Format("Buffer", "Weights", "csr"),)),
                         mappings=m)
    assert sc.metadata_reads[0, BUF, W] == pytest.approx(20.0)
    assert sc.occupancy[0, BUF, W] == 4
    # explicit widths: 4-bit coordinates, 8-bit pointers: (2*4 + 2*8) / 4 = 6 bits/elem
    sc = evaluate_sparse(ev, SparseOptimizations(formats=(
        Format("Buffer", "Weights", "csr", coord_bits=4, pointer_bits=8),)), mappings=m)
    assert sc.metadata_reads[0, BUF, W] == pytest.approx(64 * 6 / 8)
    # COO: one 2-bit coordinate (C, the only axis the tile spans) per nonzero = 1 bit/elem
    sc = evaluate_sparse(ev, SparseOptimizations(formats=(Format("Buffer", "Weights", "coo"),)),
                         mappings=m)
    assert sc.metadata_reads[0, BUF, W] == pytest.approx(64 * 1 / 8)
    with pytest.raises(MapspaceError, match="needs the mappings"):
        evaluate_sparse(ev, SparseOptimizations(formats=(Format("Buffer", "Weights", "csr"),)))


def test_S1_S6_structured_2_4_skip_at_the_mac_halves_macs_and_cycles():
    # 2:4 Weights (exactly 1/2), skip the MAC on Weights: 64 -> 32 MACs, 64 -> 32 cycles.
    # Energy: MACs 64 * 0.25 = 16 -> 8 pJ; leakage 0.5 * 1 * cycles = 32 -> 16 pJ;
    # storage traffic is untouched (no storage action): 24 pJ less in all.
    p, a, m, ev = base()
    opts = SparseOptimizations(actions=(Action("skip", "compute", None, ("Weights",)),))
    sc = evaluate_sparse(ev, opts, {"Weights": (2, 4)}, mappings=m)
    assert sc.macs[0] == 32 and sc.cycles[0] == 32
    assert sc.mac_energy[0] == pytest.approx(8.0) and sc.leak_energy[0] == pytest.approx(16.0)
    assert sc.energy[0] == pytest.approx(ev.cost.energy[0] - 24.0)
    np.testing.assert_array_equal(sc.reads[0], ev.movement.reads[0])


def test_S7_gating_at_the_mac_saves_energy_not_cycles():
    # Gate the MAC on Weights (density 0.5): 32 MACs performed (8 pJ saved), 64 cycles.
    p, a, m, ev = base(Weights=0.5)
    opts = SparseOptimizations(actions=(Action("gate", "compute", None, ("Weights",)),))
    sc = evaluate_sparse(ev, opts, mappings=m)
    assert sc.macs[0] == 32 and sc.cycles[0] == 64
    assert sc.energy[0] == pytest.approx(ev.cost.energy[0] - 8.0)


def test_S4_S7_skip_vs_gate_inputs_on_weights_at_the_buffer():
    # Buffer read bandwidth 1 word/cycle: dense read demand at the Buffer is
    # 64 (W) + 64 (I) + 48 (O) = 176 words -> 176 cycles (rule P5).
    # Skip Inputs on Weights (density 0.5): Inputs reads 64 -> 32, demand 144 -> 144 cycles;
    # energy: 32 fewer reads x 1 pJ, and leakage 0.5 x (176 - 144) = 16 pJ less.
    # Gate instead: the 32 gated reads save their energy but keep their slots: 176 cycles.
    p, a, m, ev = base(read_bw=1.0, Weights=0.5)
    assert ev.cost.cycles[0] == 176
    skip = evaluate_sparse(ev, SparseOptimizations(
        actions=(Action("skip", "Buffer", "Inputs", ("Weights",)),)), mappings=m)
    assert skip.reads[0, BUF, I] == 32 and skip.gated_reads[0, BUF, I] == 0
    assert skip.cycles[0] == 144
    assert skip.energy[0] == pytest.approx(ev.cost.energy[0] - 32.0 - 16.0)
    gate = evaluate_sparse(ev, SparseOptimizations(
        actions=(Action("gate", "Buffer", "Inputs", ("Weights",)),)), mappings=m)
    assert gate.reads[0, BUF, I] == 32 and gate.gated_reads[0, BUF, I] == 32
    assert gate.cycles[0] == 176
    assert gate.energy[0] == pytest.approx(ev.cost.energy[0] - 32.0)


def test_S4_skip_at_a_level_propagates_to_the_inner_levels():
    # Skip Weights on Inputs at DRAM (Inputs density 0.5): DRAM's Weights reads halve, and
    # so do the Buffer's Weights fills and reads (ineffectual Weights never reach it):
    # 64 -> 32 each.  Metadata is not removed by an action at its own level.
    p, a, m, ev = base(Inputs=0.5)
    sc = evaluate_sparse(ev, SparseOptimizations(
        actions=(Action("skip", "DRAM", "Weights", ("Inputs",)),)), mappings=m)
    assert sc.reads[0, 0, W] == ev.movement.reads[0, 0, W] / 2
    assert sc.fills[0, BUF, W] == 32 and sc.reads[0, BUF, W] == 32
    # compressed storage and a skip on the same tensor's own zeros are not counted twice:
    # Inputs reads 64 x 0.5 (Inputs) x 0.5 (Weights) = 16
    sc = evaluate_sparse(ev, SparseOptimizations(
        formats=(Format("Buffer", "Inputs", "bitmask"),),
        actions=(Action("skip", "Buffer", "Inputs", ("Inputs", "Weights")),)),
        {"Weights": 0.5}, mappings=m)
    assert sc.reads[0, BUF, I] == 16
    assert sc.metadata_reads[0, BUF, I] == 64 / 8          # bitmask: unaffected


def test_S4_action_moves_to_the_nearest_outer_keeper():
    # The Buffer bypasses Weights: "skip Weights on Inputs at Buffer" acts at DRAM, the
    # nearest level above that keeps Weights (Sparseloop's rule).  Dense DRAM Weights reads
    # are what the MACs ask through the bypass: 64 -> 32 at Inputs density 0.5.
    p, a = matmul(4, 4, 4).with_tensor("Inputs", density=0.5), two_levels()
    m = mapping(p, a, [{"M": 4, "P": 4}, {"C": 4}], ["MP", "C"], [ALL, ["Inputs", "Outputs"]])
    ev = evaluate(p, a, m)
    assert ev.valid[0] and ev.movement.reads[0, 0, W] == 64
    sc = evaluate_sparse(ev, SparseOptimizations(
        actions=(Action("skip", "Buffer", "Weights", ("Inputs",)),)), mappings=m)
    assert sc.valid[0] and sc.reads[0, 0, W] == 32
    # Weights kept only in the Buffer: an action at DRAM has no level to act at
    m = mapping(p, a, [{"M": 4, "P": 4}, {"C": 4}], ["MP", "C"], [["Inputs", "Outputs"], ALL])
    ev = evaluate(p, a, m)
    assert ev.valid[0]
    sc = evaluate_sparse(ev, SparseOptimizations(
        actions=(Action("skip", "DRAM", "Weights", ("Inputs",)),)), mappings=m)
    assert not sc.valid[0] and "no level at or above DRAM keeps Weights" in sc.reason[0]


def test_S8_output_updates_unchanged_unless_targeted():
    p, a, m, ev = base(Weights=0.5)
    sc = evaluate_sparse(ev, SparseOptimizations(
        actions=(Action("skip", "compute", None, ("Weights",)),
                 Action("skip", "Buffer", "Inputs", ("Weights",)))), mappings=m)
    assert sc.updates[0, BUF, O] == 64 and sc.reads[0, BUF, O] == 48
    sc = evaluate_sparse(ev, SparseOptimizations(
        actions=(Action("skip", "Buffer", "Outputs", ("Weights",)),)), mappings=m)
    assert sc.updates[0, BUF, O] == 32 and sc.reads[0, BUF, O] == 24


def test_S5_compressed_tiles_may_fit_where_dense_ones_do_not():
    # Buffer of 8 words: dense tiles need 4 + 4 + 1 = 9 (invalid).  Bitmask Weights:
    # d 0.5 -> 2 + 1 = 3 words, total 8 (fits); d 0.75 -> ceil(3) + 1 = 4, total 9 (not).
    p, a, m, ev = base(buffer_words=8, Weights=0.5)
    assert not ev.valid[0]
    opts = SparseOptimizations(formats=(Format("Buffer", "Weights", "bitmask"),))
    sc = evaluate_sparse(ev, opts, mappings=m)
    assert sc.valid[0] and sc.usage[0, BUF] == 8
    assert sc.reads[0, BUF, W] == 32 and sc.cycles[0] == 64
    sc = evaluate_sparse(ev, opts, {"Weights": 0.75}, mappings=m)
    assert not sc.valid[0] and "Buffer need 9 words, capacity is 8" in sc.reason[0]
    assert np.isnan(sc.energy[0]) and sc.cycles[0] == 0
    sc = evaluate_sparse(ev, opts)                        # no mappings: cannot re-analyse
    assert not sc.valid[0] and "capacity is 8" in sc.reason[0]


TARGET_KEEP = {       # the targets' usual keep choices (as in test_properties.py)
    "gemmini": {"DRAM": "WIO", "Scratchpad": "WI", "Accumulator": "O", "Registers": "W"},
    "eyeriss-like": {"DRAM": "WIO", "shared_glb": "IO", "ifmap_spad": "I",
                     "weights_spad": "W", "psum_spad": "O"},
    "simba-like": {"DRAM": "WIO", "GlobalBuffer": "IO", "PEInputBuffer": "I",
                   "PEWeightBuffer": "W", "PEAccuBuffer": "O", "PEWeightRegs": "W"},
}


def _keep(a, p) -> np.ndarray:
    usual = next(v for v in TARGET_KEEP.values() if set(v) <= set(a.level_names))
    return np.array([[t.name[0] in usual.get(lv.name, "") for t in p.tensors]
                     for lv in a.levels])


def test_S5_capacity_at_a_confidence_uses_the_hypergeometric_quantile():
    # Weights: 16 elements, 8 nonzeros (density 0.5); a Buffer tile draws 4 of them.
    # P(k nonzeros) = C(8,k) C(8,4-k) / C(16,4) = (70, 448, 784, 448, 70) / 1820, so the
    # CDF is (70, 518, 1302, 1750, 1820) / 1820: the 0.5 quantile is 2, the 0.9 quantile 3,
    # and confidence 1 is the worst case min(4, 8) = 4.  Bitmask metadata adds 1 word.
    p, a, m, ev = base(Weights=0.5)
    opts = SparseOptimizations(formats=(Format("Buffer", "Weights", "bitmask"),))
    for q, words in ((None, 2), (0.5, 2), (0.9, 3), (1.0, 4)):
        sc = evaluate_sparse(ev, opts, mappings=m, confidence=q)
        assert sc.occupancy[0, BUF, W] == words + 1, q
    # structured 2:4 is exact whatever the confidence: ceil(4 x 2/4) = 2
    sc = evaluate_sparse(ev, opts, {"Weights": (2, 4)}, mappings=m, confidence=1.0)
    assert sc.occupancy[0, BUF, W] == 3
    with pytest.raises(MapspaceError, match="confidence"):
        evaluate_sparse(ev, opts, confidence=0.0)


@pytest.mark.parametrize("target", ["gemmini", "eyeriss-like", "simba-like"])
def test_S9_density_one_reproduces_the_dense_model_exactly(target):
    # Every tensor at density 1, uncompressed, with skip and gate actions everywhere:
    # every factor is 1, so counts, cycles and energy are the dense ones bit for bit.
    a = load_target(target)
    p = matmul(8, 16, 8)
    m = random_mappings(p, a, 256, np.random.default_rng(3), _keep(a, p))
    ev = evaluate(p, a, m)
    assert ev.valid.sum() >= 5
    acts = tuple(Action(k, lv.name, "Inputs", ("Weights",)) for k in ("skip", "gate")
                 for lv in a.levels) + (Action("skip", "compute", None, ("Weights",)),
                                        Action("gate", "compute", None, ("Inputs",)))
    sc = evaluate_sparse(ev, SparseOptimizations(actions=acts), mappings=m)
    v = ev.valid
    np.testing.assert_array_equal(sc.valid, v)
    np.testing.assert_array_equal(sc.cycles[v], ev.cost.cycles[v])
    np.testing.assert_array_equal(sc.energy[v], ev.cost.energy[v])
    np.testing.assert_array_equal(sc.level_cycles[v], ev.cost.level_cycles[v])
    np.testing.assert_array_equal(sc.energy_breakdown[v], ev.cost.energy_breakdown[v])
    for ours, dense in ((sc.reads, ev.movement.reads), (sc.fills, ev.movement.fills),
                        (sc.updates, ev.movement.updates)):
        np.testing.assert_array_equal(ours[v], dense[v])
    assert (sc.metadata_reads == 0).all()


def test_S1_bad_inputs_raise():
    p, a, m, ev = base()
    none = SparseOptimizations()
    for bad in (0.0, 1.5, -0.1):
        with pytest.raises(MapspaceError, match=r"density must be in \(0, 1\]"):
            evaluate_sparse(ev, none, {"Weights": bad})
    with pytest.raises(MapspaceError, match="structured density"):
        evaluate_sparse(ev, none, {"Weights": (5, 4)})
    with pytest.raises(MapspaceError, match="unknown tensor"):
        evaluate_sparse(ev, none, {"Bias": 0.5})
    with pytest.raises(MapspaceError, match="format must be one of"):
        evaluate_sparse(ev, SparseOptimizations(formats=(Format("Buffer", "Weights", "rle"),)))
    with pytest.raises(MapspaceError, match="unknown level"):
        evaluate_sparse(ev, SparseOptimizations(formats=(Format("L9", "Weights", "bitmask"),)))
    with pytest.raises(MapspaceError, match="pass the batch that was evaluated"):
        evaluate_sparse(ev, none, mappings=MappingBatch.concat([m, m]))
    with pytest.raises(MapspaceError, match="'skip' or 'gate'"):
        evaluate_sparse(ev, SparseOptimizations(
            actions=(Action("drop", "Buffer", "Inputs", ("Weights",)),)))


def test_batch_rows_equal_single_evaluations():
    a = load_target("gemmini")
    p = matmul(8, 16, 8).with_tensor("Weights", density=0.25)
    m = random_mappings(p, a, 64, np.random.default_rng(5), _keep(a, p))
    assert evaluate(p, a, m).valid.sum() >= 3
    opts = SparseOptimizations(
        formats=(Format("Scratchpad", "Weights", "csr"),),
        actions=(Action("skip", "Scratchpad", "Inputs", ("Weights",)),
                 Action("skip", "compute", None, ("Weights",))))
    sc = evaluate_sparse(evaluate(p, a, m), opts, mappings=m)
    for i in range(len(m)):
        one: MappingBatch = m[i:i + 1]
        si = evaluate_sparse(evaluate(p, a, one), opts, mappings=one)
        assert si.valid[0] == sc.valid[i]
        if sc.valid[i]:
            assert si.cycles[0] == sc.cycles[i] and si.energy[0] == sc.energy[i]
            assert sc.cycles[i] <= evaluate(p, a, one).cost.cycles[0]
