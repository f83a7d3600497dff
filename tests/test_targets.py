"""Built-in targets: every one loads; key numbers are the ones written in their files."""

from __future__ import annotations

from pathlib import Path

import pytest

from mapspace import MapspaceError
from mapspace.arch_yaml import load_arch
from mapspace.problem_yaml import load_problem
from targets import TARGETS, list_targets, load_target

_TARGETS = Path(__file__).resolve().parents[1] / "targets"


@pytest.mark.parametrize("name", list(TARGETS))
def test_every_target_loads(name: str) -> None:
    a = load_target(name)
    assert a.levels[0].depth is None and a.compute.energy > 0
    assert all(lv.energy.read > 0 for lv in a.levels if not lv.is_dummy)


def test_gemmini_variants() -> None:
    g, g128, g256 = (load_target(n) for n in ("gemmini", "gemmini-acc128", "gemmini-acc256"))
    acc = [a.levels[a.level_index("Accumulator")] for a in (g, g128, g256)]
    assert [lv.depth for lv in acc] == [1024, 2048, 4096]
    assert [lv.capacity * lv.instances * 4 for lv in acc] == [64 << 10, 128 << 10, 256 << 10]
    sp = [a.levels[a.level_index("Scratchpad")] for a in (g, g128, g256)]
    assert [lv.capacity for lv in sp] == [256 << 10, 256 << 10, 64 << 10]
    assert g128.levels[0] == g.levels[0] and g256.compute == g.compute


def test_eyeriss_and_simba() -> None:
    e = load_target("eyeriss-like")
    assert e.compute.instances == 168 and (e.compute.mesh_x, e.compute.mesh_y) == (14, 12)
    assert [lv.name for lv in e.levels if lv.is_dummy] == ["inter_PE_column_spatial",
                                                           "inter_PE_spatial"]
    assert e.fanout(e.level_index("inter_PE_column_spatial")) == (14, 1)
    assert e.fanout(e.level_index("inter_PE_spatial")) == (1, 12)
    s = load_target("simba-like")
    assert s.compute.instances == 256 and sum(lv.is_dummy for lv in s.levels) == 3


def test_targets_match_reference(shared_dir: Path) -> None:
    assert load_target("gemmini") == load_arch(shared_dir / "gemmini/arch.yaml",
                                               shared_dir / "gemmini/ERT.yaml")
    d = shared_dir / "conformance/ex_simba_like"
    assert load_target("simba-like") == load_arch(d / "input.yaml", d / "ERT.yaml")


def test_list_targets() -> None:
    infos = {t.name: t for t in list_targets()}
    assert list(infos) == list(TARGETS)
    g = infos["gemmini"]
    assert g.pes == 256 and g.dram_bandwidth == 8
    assert [(lv.name, lv.capacity_words, lv.instances) for lv in g.levels] == [
        ("DRAM", None, 1), ("Scratchpad", 262144, 1), ("Accumulator", 1024, 16),
        ("Registers", 1, 256)]
    assert g.arch_path.is_file() and g.ert_path.is_file()


def test_unknown_target_lists_known_ones() -> None:
    with pytest.raises(MapspaceError) as e:
        load_target("tpu")
    assert "'tpu'" in str(e.value) and all(n in str(e.value) for n in TARGETS)


def test_gemmini_problems_ship() -> None:
    probs = sorted((_TARGETS / "gemmini/problems").glob("*.yaml"))
    assert [p.name for p in probs] == ["prob_bert_ffn1.yaml", "prob_resnet50_conv3x.yaml"]
    assert load_problem(probs[0]).sizes == (768, 3072, 1, 1, 1, 512, 1)
