"""The stats-file parser reads every reference stats file, with values as printed."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from timeloop_stats import parse_stats  # noqa: E402

_REF = Path(__file__).resolve().parents[2] / "shared/reference/timeloop"
FILES = sorted(str(p.relative_to(_REF)) for p in _REF.glob("**/timeloop-model.stats.txt"))


def test_all_reference_files_found(shared_dir: Path) -> None:
    assert len(list(shared_dir.glob("conformance/*/timeloop-model.stats.txt"))) == 13
    assert len(list(shared_dir.glob("gemmini/cases/*/timeloop-model.stats.txt"))) == 10


@pytest.mark.parametrize("rel", FILES)
def test_parses(shared_dir: Path, rel: str) -> None:
    s = parse_stats(shared_dir / rel)
    assert s.summary.cycles == max([s.compute.cycles, *(lv.cycles for lv in s.levels.values())])
    assert s.summary.computes == s.compute.computes > 0
    assert "Total" in s.summary.fj_per_compute
    parts = sum(v for k, v in s.summary.fj_per_compute.items() if k != "Total")
    assert parts == pytest.approx(s.summary.fj_per_compute["Total"], abs=0.05)
    assert 0 < s.summary.utilization <= 1
    for lv in s.levels.values():
        assert lv.tensors, lv.name


def test_values_against_cases_json(shared_dir: Path) -> None:
    cases = json.loads((shared_dir / "gemmini/cases.json").read_text())["cases"]
    for c in cases:
        s = parse_stats(shared_dir / "gemmini/cases" / c["case_id"] / "timeloop-model.stats.txt")
        assert s.summary.cycles == c["cycles"]
        total = s.summary.fj_per_compute["Total"] * s.summary.computes / 1000
        assert total == pytest.approx(c["energy_pJ"], rel=1e-9)


def test_rn50_00_spot_values(shared_dir: Path) -> None:
    s = parse_stats(shared_dir / "gemmini/cases/rn50_00_mapperbest/timeloop-model.stats.txt")
    assert s.summary.cycles == 451584 and s.summary.energy_uj == 143.54
    dram = s.levels["DRAM"]
    assert dram.size is None and dram.block_size == 8
    assert dram.tensors["Weights"].reads == 147456
    assert dram.tensors["Outputs"].updates == 100352
    assert s.summary.fj_per_compute["Total"] == 1241.67
