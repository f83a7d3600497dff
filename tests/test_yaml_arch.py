"""Architecture YAML + ERT: v0.4 trees, processed inputs, v0.3 (gemmini upstream), round trip.

Spec values are checked against the numbers written in the files and against the SPECS that
timeloop-model printed for the same inputs (independent of our loader).
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from mapspace import MapspaceError
from mapspace.arch import ActionEnergy
from mapspace.arch_yaml import arch_from_dict, arch_to_dict, load_arch
from mapspace.yamlio import dump_yaml, load_yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from timeloop_stats import parse_stats  # noqa: E402

CONFORMANCE = sorted(
    p.name for p in (Path(__file__).resolve().parents[2] / "shared/reference/timeloop/"
                     "conformance").glob("*") if p.is_dir())


def test_gemmini(shared_dir: Path) -> None:
    a = load_arch(shared_dir / "gemmini/arch.yaml", shared_dir / "gemmini/ERT.yaml")
    assert a.name == "gemmini" and a.cycle_seconds == 1e-9
    assert a.level_names == ("DRAM", "Scratchpad", "Accumulator", "Registers")
    dram, sp, acc, reg = a.levels
    assert dram.depth is None and dram.capacity is None and dram.block_size == 8
    assert dram.shared_bandwidth == 8
    assert (dram.energy.read, dram.energy.write, dram.energy.update) == (512.0, 512.0, 512.0)
    assert sp.capacity == 262144 and sp.block_size == 16 and sp.instances == 1
    assert (sp.read_bandwidth, sp.write_bandwidth) == (32, 16)
    assert sp.energy.read == 64.0 and sp.energy.write == 72.0
    assert acc.instances == 16 and acc.capacity == 1024 and acc.datawidth == 32
    assert (acc.mesh_x, acc.mesh_y) == (16, 1)
    assert reg.instances == 256 and (reg.mesh_x, reg.mesh_y) == (16, 16) and reg.capacity == 1
    assert reg.cls == "regfile"
    assert a.compute.name == "MACC" and a.compute.instances == 256
    assert (a.compute.mesh_x, a.compute.mesh_y) == (16, 16) and a.compute.energy == 0.40
    assert a.fanout(1) == (16, 1) and a.fanout(2) == (1, 16) and a.fanout(3) == (1, 1)
    assert not any(lv.is_dummy for lv in a.levels)


def test_gemmini_upstream_v03_loads_unchanged(shared_dir: Path) -> None:
    a = load_arch(shared_dir / "gemmini/upstream/arch_default.yaml")
    assert a.level_names == ("DRAM", "Scratchpad", "Accumulator", "Registers")
    dram, sp, acc, reg = a.levels
    assert dram.block_size == 64 and dram.width == 512  # block_size: 64 words of 8 bits
    assert sp.capacity == 262144 and sp.block_size == 16  # entries, width 128 / 8
    assert acc.instances == 16 and acc.capacity == 1024  # instances attribute
    assert reg.instances == 256 and (reg.mesh_x, reg.mesh_y) == (256, 1)  # meshX defaults
    # MACC: no instances attribute; PECols[0..15] x PERows[0..15] gives 256.
    assert a.compute.instances == 256 and (a.compute.mesh_x, a.compute.mesh_y) == (256, 1)
    assert a.compute.energy == 0.0  # no ERT given


def test_simba_dummies_are_levels(shared_dir: Path) -> None:
    d = shared_dir / "conformance/ex_simba_like"
    a = load_arch(d / "input.yaml", d / "ERT.yaml")
    assert a.level_names == ("DRAM", "GlobalBuffer", "inter_PE_spatial", "PEInputBuffer",
                             "inter_distributed_buffers_spatial", "PEWeightBuffer",
                             "PEAccuBuffer", "inter_reg_mac_spatial", "PEWeightRegs")
    dummies = [lv.name for lv in a.levels if lv.is_dummy]
    assert dummies == ["inter_PE_spatial", "inter_distributed_buffers_spatial",
                       "inter_reg_mac_spatial"]
    fan = {lv.name: a.fanout(i) for i, lv in enumerate(a.levels)}
    assert fan["GlobalBuffer"] == (1, 1) and fan["inter_PE_spatial"] == (16, 1)
    assert fan["PEInputBuffer"] == (1, 1) and fan["inter_distributed_buffers_spatial"] == (1, 4)
    assert fan["PEAccuBuffer"] == (1, 1) and fan["inter_reg_mac_spatial"] == (1, 4)
    for name, inst in (("inter_PE_spatial", 1), ("inter_distributed_buffers_spatial", 16),
                       ("inter_reg_mac_spatial", 64)):
        lv = a.levels[a.level_index(name)]
        assert lv.cls == "dummy_storage" and lv.instances == inst
        assert (lv.depth, lv.width, lv.datawidth, lv.capacity) == (1, 1, 1, 1)
        assert lv.energy == ActionEnergy()  # no ERT table for dummies
    assert a.levels[a.level_index("PEWeightRegs")].capacity == 1  # cluster_size 64 -> block 1
    assert a.compute.energy == 0.315 and a.compute.leak == 0.0036


def test_eyeriss_dummies_are_levels(shared_dir: Path) -> None:
    d = shared_dir / "conformance/ex_eyeriss_like"
    a = load_arch(d / "input.yaml", d / "ERT.yaml")
    assert a.level_names == ("DRAM", "shared_glb", "inter_PE_column_spatial",
                             "inter_PE_spatial", "ifmap_spad", "weights_spad", "psum_spad")
    assert [lv.is_dummy for lv in a.levels] == [False, False, True, True, False, False, False]
    col, pe = a.level_index("inter_PE_column_spatial"), a.level_index("inter_PE_spatial")
    assert a.fanout(a.level_index("shared_glb")) == (1, 1)
    assert a.fanout(col) == (14, 1) and a.fanout(pe) == (1, 12)
    assert (a.levels[col].instances, a.levels[pe].instances) == (1, 14)


@pytest.mark.parametrize("case", CONFORMANCE)
def test_conformance_arch_matches_timeloop_specs(shared_dir: Path, case: str) -> None:
    d = shared_dir / "conformance" / case
    a = load_arch(d / "input.yaml", d / "ERT.yaml")
    stats = parse_stats(d / "timeloop-model.stats.txt")
    real = [lv for lv in a.levels if not lv.is_dummy]  # Timeloop hides dummy levels
    assert set(stats.levels) == {lv.name for lv in real}
    for lv in real:
        s = stats.levels[lv.name]
        assert s.size == (None if lv.depth is None else lv.depth * lv.block_size), lv.name
        assert (s.block_size, s.word_bits, s.instances) == (
            lv.block_size, lv.datawidth, lv.instances), lv.name
        if (case, lv.name) == ("ex_simba_like", "PEWeightRegs"):
            continue  # cluster_size 64: Timeloop prints ERT energy / 64 (not modelled)
        assert s.vector_access_energy_pj == pytest.approx(
            max(lv.energy.read, lv.energy.write, lv.energy.update), abs=0.006), lv.name
    assert stats.compute.name == a.compute.name
    assert stats.compute.instances == a.compute.instances


@pytest.mark.parametrize("case", CONFORMANCE)
def test_conformance_arch_round_trip(shared_dir: Path, case: str, tmp_path: Path) -> None:
    d = shared_dir / "conformance" / case
    a = load_arch(d / "input.yaml", d / "ERT.yaml")
    dump_yaml(arch_to_dict(a), tmp_path / "arch.yaml")
    assert load_arch(tmp_path / "arch.yaml") == a


def test_gemmini_round_trip(shared_dir: Path) -> None:
    a = load_arch(shared_dir / "gemmini/arch.yaml", shared_dir / "gemmini/ERT.yaml")
    assert arch_from_dict(arch_to_dict(a), "x.yaml") == a
    up = load_arch(shared_dir / "gemmini/upstream/arch_default.yaml")
    assert arch_from_dict(arch_to_dict(up), "x.yaml") == up


def test_ert_max_over_arguments() -> None:
    d = arch_to_dict(arch_from_dict(_tiny(), "t.yaml"))
    ert = {"ERT": {"version": "0.3", "tables": [{"name": "top.Buf[1..4]", "actions": [
        {"name": "read", "arguments": {"address_delta": 0}, "energy": 1.0},
        {"name": "read", "arguments": {"address_delta": 1}, "energy": 3.0},
        {"name": "write", "energy": 2.0}]}]}}
    a = arch_from_dict(d, "t.yaml", ert, "t.ERT.yaml")
    e = a.levels[1].energy
    assert (e.read, e.write, e.update) == (3.0, 2.0, 2.0)  # update falls back to write


def _tiny() -> dict:
    return {"architecture": {"version": 0.4, "subtree": [{
        "name": "top", "attributes": {"datawidth": 8},
        "local": [
            {"name": "DRAM", "class": "DRAM", "attributes": {"width": 64}},
            {"name": "Buf[1..4]", "class": "SRAM", "attributes": {"depth": 16, "width": 32}},
            {"name": "mac[1..8]", "class": "intmac", "attributes": {"meshX": 4}}]}]}}


def test_inherited_attributes_and_mesh_defaults() -> None:
    a = arch_from_dict(_tiny(), "t.yaml")
    assert a.levels[1].datawidth == 8 and a.levels[1].capacity == 64
    assert (a.levels[1].mesh_x, a.levels[1].mesh_y) == (4, 1)
    assert (a.compute.mesh_x, a.compute.mesh_y) == (4, 2)


@pytest.mark.parametrize("mutate, key, words", [
    (lambda d: d["architecture"]["subtree"][0]["local"][1]["attributes"].update(depth="big"),
     "architecture.subtree[0].local[1].attributes.depth", "expected an integer"),
    (lambda d: d["architecture"]["subtree"][0]["local"][1]["attributes"].update(meshX=3),
     "architecture.subtree[0].local[1].attributes", "meshX x meshY"),
    (lambda d: d["architecture"]["subtree"][0]["local"][1]["attributes"].update(width=12),
     "architecture.subtree[0].local[1].attributes", "not a multiple"),
    (lambda d: d["architecture"]["subtree"][0]["local"].pop(),
     "architecture", "no compute unit"),
    (lambda d: d.pop("architecture"), None, "'architecture'"),
])
def test_bad_arch(mutate, key: str | None, words: str) -> None:
    d = _tiny()
    mutate(d)
    with pytest.raises(MapspaceError) as e:
        arch_from_dict(d, "bad.yaml")
    assert e.value.where == "bad.yaml" and e.value.key == key and words in str(e.value)


def test_missing_arch_file(tmp_path: Path) -> None:
    with pytest.raises(MapspaceError, match="file not found"):
        load_arch(tmp_path / "none.yaml")
    (tmp_path / "a.yaml").write_text("architecture: {subtree: [}\n")
    with pytest.raises(MapspaceError, match=r"a\.yaml: malformed YAML at line 1"):
        load_yaml(tmp_path / "a.yaml")
