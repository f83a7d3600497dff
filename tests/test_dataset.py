"""The measurement dataset (cost_models/dataset.py): rows round-trip to mappings and
problems, re-measuring a keyed row replaces it, bad files are refused with one error."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from cost_models.dataset import (
    COLUMNS,
    analytical_rows,
    append,
    mapping_key,
    mappings_of,
    problem_key,
    problem_of,
    read,
)
from cost_models.model import evaluate
from mapspace.errors import MapspaceError
from mapspace.workloads import workload
from targets.registry import get_target


def _rows(n=6, seed=0):
    p = workload("bert-base/ffn1")
    space = get_target("gemmini").space(p)
    m, _ = space.sample(200, seed)
    m = m[np.nonzero(space.valid_mask(m))[0][:n]]
    ev = evaluate(p, space.arch, m)
    df = analytical_rows(p, m, ev, target="gemmini", host="timing-model",
                         workload="bert-base/ffn1", selection=["random"] * n,
                         mapping_yaml=[""] * n)
    return p, m, ev, df


def test_rows_round_trip(tmp_path):
    p, m, ev, df = _rows()
    assert list(df.columns) == list(COLUMNS)
    f = tmp_path / "d.parquet"
    append(f, df)
    back = read(f)
    got = mappings_of(back)
    for a in ("temporal", "spatial", "order", "spatial_x", "keep"):
        assert np.array_equal(getattr(got, a), getattr(m, a))
    assert problem_of(back.iloc[0]) == p
    assert back["a_cycles"].tolist() == [float(x) for x in ev.cost.cycles]
    assert back["mapping_key"].tolist() == [mapping_key(m, i) for i in range(len(m))]
    assert (back["problem_key"] == problem_key(p)).all()


def test_append_replaces_keyed_rows(tmp_path):
    _, _, _, df = _rows()
    f = tmp_path / "d.parquet"
    append(f, df)
    again = df.copy()
    again["status"], again["measured_s"] = "ok", 1.5
    both = append(f, pd.concat([again.iloc[:3], _rows(4, seed=9)[3]]))
    assert len(both) == len(read(f)) == len(df) + 4 - len(
        set(_rows(4, seed=9)[3]["mapping_key"]) & set(df["mapping_key"]))
    assert (read(f).set_index("mapping_key").loc[df["mapping_key"][:3], "measured_s"]
            == 1.5).all()


def test_bad_files_refused(tmp_path):
    bad = tmp_path / "x.parquet"
    pd.DataFrame({"a": [1]}).to_parquet(bad)
    with pytest.raises(MapspaceError, match="missing columns"):
        read(bad)
    junk = tmp_path / "y.parquet"
    junk.write_text("not parquet")
    with pytest.raises(MapspaceError, match="cannot read a dataset"):
        read(junk)
    before = junk.read_bytes()
    with pytest.raises(MapspaceError):
        append(junk, _rows(2)[3])
    assert junk.read_bytes() == before
