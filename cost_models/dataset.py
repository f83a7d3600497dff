"""Measured mappings as a dataset: one row per (target, host, problem, mapping).

What ``mapspace measure`` writes and ``mapspace train`` reads (Parquet).  A row holds:

* the keys — ``target``, ``host`` (the machine the row was measured on: for ``cpu`` its
  CPU model and core count, for ``gemmini`` the timing model's name), ``problem_key`` and
  ``mapping_key`` (stable hashes, :func:`problem_key`, :func:`mapping_key`); re-measuring
  a keyed row replaces it (:func:`append`);
* the problem — ``workload`` (its name), ``problem_json`` (Timeloop problem fields,
  :func:`mapspace.problem_yaml.problem_to_dict`);
* the mapping — ``L``, ``D``, ``T`` and the :class:`~mapspace.mapping.MappingBatch`
  arrays flattened (``temporal``, ``spatial``, ``order``: ``int64[L*D]``; ``spatial_x``:
  ``bool[L*D]``; ``keep``: ``bool[L*T]``), ``mapping_yaml`` (Timeloop mapping YAML) and
  ``selection`` (``"top-k"`` or ``"random"``);
* the analytical model's figures — ``a_cycles``, ``a_energy_pJ``, ``a_edp``,
  ``a_utilization``, ``a_level_cycles`` (``int64[L]``), and per level and tensor
  ``a_tile``, ``a_reads``, ``a_fills``, ``a_updates`` (``int64[L*T]``, per instance);
* the measurement — ``status`` (``"ok"``, ``"build-failed"``, ``"run-failed"``,
  ``"wrong-result"``), ``error`` (why, else ``""``), ``measured_s`` (median seconds of the
  timed runs; NaN unless ok), ``measured_spread`` (``(p75 - p25) / median`` of the timed
  runs), ``repeats``, ``threads``, ``measured_cycles`` (cycles where the target counts
  them, e.g. the Gemmini timing model; NaN otherwise) and ``measured_at`` (ISO time).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd

from cost_models.model import Evaluation
from mapspace.atomic import staged_file
from mapspace.errors import MapspaceError
from mapspace.mapping import MappingBatch
from mapspace.problem import Problem
from mapspace.problem_yaml import problem_from_dict, problem_to_dict

#: the columns that identify a row
KEY: tuple[str, ...] = ("target", "host", "problem_key", "mapping_key")
#: the measurement statuses
STATUSES: tuple[str, ...] = ("ok", "build-failed", "run-failed", "wrong-result")
#: every column, in order
COLUMNS: tuple[str, ...] = (
    *KEY, "workload", "problem_json", "L", "D", "T", "temporal", "spatial", "order",
    "spatial_x", "keep", "mapping_yaml", "selection",
    "a_cycles", "a_energy_pJ", "a_edp", "a_utilization", "a_level_cycles",
    "a_tile", "a_reads", "a_fills", "a_updates",
    "status", "error", "measured_s", "measured_spread", "repeats", "threads",
    "measured_cycles", "measured_at")


def problem_key(problem: Problem) -> str:
    """A stable hash of what makes two problems the same (not the name)."""
    d = problem_to_dict(problem)
    d.pop("name", None)
    return hashlib.sha1(json.dumps(d, sort_keys=True, default=str).encode()).hexdigest()[:16]


def mapping_key(m: MappingBatch, i: int = 0) -> str:
    """A stable hash of mapping ``i`` of ``m`` (its factors, orders, splits and keeps)."""
    h = hashlib.sha1()
    for a in (m.temporal[i], m.spatial[i], m.order[i], m.spatial_x[i], m.keep[i]):
        h.update(np.ascontiguousarray(a).astype(np.int64).tobytes())
    return h.hexdigest()[:16]


def analytical_rows(problem: Problem, mappings: MappingBatch, ev: Evaluation, *,
                    target: str, host: str, workload: str, selection: Iterable[str],
                    mapping_yaml: Iterable[str]) -> pd.DataFrame:
    """The key, problem, mapping and analytical columns of ``B`` mappings (the measured
    columns empty: status ``""``, NaN figures)."""
    B, L, D = mappings.temporal.shape
    T = problem.num_tensors
    dm, c = ev.movement, ev.cost
    pj = json.dumps(problem_to_dict(problem), sort_keys=True, default=str)
    pk = problem_key(problem)
    sel, yml = list(selection), list(mapping_yaml)
    rows = []
    for i in range(B):
        rows.append({
            "target": target, "host": host, "problem_key": pk,
            "mapping_key": mapping_key(mappings, i), "workload": workload,
            "problem_json": pj, "L": L, "D": D, "T": T,
            "temporal": mappings.temporal[i].ravel().tolist(),
            "spatial": mappings.spatial[i].ravel().tolist(),
            "order": mappings.order[i].ravel().tolist(),
            "spatial_x": mappings.spatial_x[i].ravel().tolist(),
            "keep": mappings.keep[i].ravel().tolist(),
            "mapping_yaml": yml[i], "selection": sel[i],
            "a_cycles": float(c.cycles[i]), "a_energy_pJ": float(c.energy[i]),
            "a_edp": float(c.edp[i]), "a_utilization": float(c.utilization[i]),
            "a_level_cycles": c.level_cycles[i].tolist(),
            "a_tile": dm.tile[i].ravel().tolist(), "a_reads": dm.reads[i].ravel().tolist(),
            "a_fills": dm.fills[i].ravel().tolist(),
            "a_updates": dm.updates[i].ravel().tolist(),
            "status": "", "error": "", "measured_s": np.nan, "measured_spread": np.nan,
            "repeats": 0, "threads": 0, "measured_cycles": np.nan, "measured_at": "",
        })
    return pd.DataFrame(rows, columns=list(COLUMNS))


def mappings_of(df: pd.DataFrame) -> MappingBatch:
    """The :class:`MappingBatch` of rows that share one ``L, D, T`` (one problem/arch)."""
    if df.empty:
        raise MapspaceError("no rows", where="dataset")
    shapes = df[["L", "D", "T"]].drop_duplicates()
    if len(shapes) != 1:
        raise MapspaceError("rows of different levels/dims/tensors; select one problem",
                            where="dataset")
    L, D, T = (int(x) for x in shapes.iloc[0])
    B = len(df)

    def arr(col: str, shape: tuple[int, ...], dtype: type) -> np.ndarray:
        return np.array([np.asarray(v, dtype) for v in df[col]], dtype).reshape(B, *shape)

    return MappingBatch(arr("temporal", (L, D), np.int64), arr("spatial", (L, D), np.int64),
                        arr("order", (L, D), np.int64), arr("spatial_x", (L, D), bool),
                        arr("keep", (L, T), bool))


def problem_of(row: pd.Series) -> Problem:
    """The :class:`Problem` of one row."""
    return problem_from_dict(json.loads(row["problem_json"]), "dataset problem_json")


def read(paths: str | Path | Iterable[str | Path]) -> pd.DataFrame:
    """Rows of one or more dataset files, checked for the columns (one clear error naming
    the file and the missing columns)."""
    ps = [paths] if isinstance(paths, (str, Path)) else list(paths)
    frames = []
    for p in ps:
        try:
            df = pd.read_parquet(p)
        except (OSError, ValueError) as e:
            raise MapspaceError(f"cannot read a dataset: {e}", where=str(p)) from None
        missing = [c for c in COLUMNS if c not in df.columns]
        if missing:
            raise MapspaceError(f"not a mapspace measurement dataset: missing columns "
                                f"{', '.join(missing)}", where=str(p))
        frames.append(df[list(COLUMNS)])
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=COLUMNS)


def append(path: str | Path, rows: pd.DataFrame) -> pd.DataFrame:
    """Write ``rows`` into the dataset at ``path`` (created if missing), replacing rows with
    the same key; atomic (nothing half-written).  Returns the whole dataset."""
    p = Path(path)
    old = read(p) if p.exists() else pd.DataFrame(columns=COLUMNS)
    both = pd.concat([old, rows[list(COLUMNS)]], ignore_index=True) if len(old) else \
        rows[list(COLUMNS)].reset_index(drop=True)
    both = both.drop_duplicates(subset=list(KEY), keep="last").reset_index(drop=True)
    with staged_file(p, where="--out") as tmp:
        both.to_parquet(tmp, index=False)
    return both


__all__ = ["COLUMNS", "KEY", "STATUSES", "analytical_rows", "append", "mapping_key",
           "mappings_of", "problem_key", "problem_of", "read"]
