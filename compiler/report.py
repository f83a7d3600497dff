"""The compile report: a per-op DataFrame plus totals, written as CSV, Parquet and a PNG.

``frame(result)`` has one row per op (topological order) and a last ``TOTAL`` row:
``op, kind, shape, problem, shape_group, searched_as, macs, cycles, energy_pJ, edp,
utilization, on_host, mapping_yaml`` and, when any op carries them, the attrs of
:data:`compiler.pipeline.REPORT_ATTRS` (``fused``, bit widths, densities).  When any op was
priced sparse (``sparsify``; :mod:`cost_models.sparse_model`), ``cycles``/``energy_pJ`` are the
sparse prices and ``dense_cycles, dense_energy_pJ, sparse`` are added: the dense price of
the same mapping (an op's own price when it is not sparse; the sums on ``TOTAL``) and the
sparse optimizations priced.  Host ops (every
non-MAC op) are not priced, except softmax/layernorm (a DRAM round trip plus host time,
:mod:`cost_models.fused`).

``write_report(result, out_dir)`` writes ``ops.csv``, ``ops.parquet`` and
``latency_energy.png`` (and, for a :class:`~compiler.compiled.CompiledModel`, the model
itself: ``model.json`` and ``weights.npz``, which ``mapspace run`` loads) into a temporary
folder beside ``out_dir`` and moves them in at the
end, so ``out_dir`` never holds a half-written report.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from compiler.pipeline import REPORT_ATTRS, CompileResult
from mapspace.atomic import staged_dir

# matplotlib is imported in plot(): it is heavy (~0.3 s) and only the plot needs it

FILES = ("ops.csv", "ops.parquet", "latency_energy.png")
HOST_NOTE = ("non-MAC ops run on the host; softmax/layernorm pay a DRAM round trip plus host "
             "time, the others are not priced")


def frame(result: CompileResult, *, totals: bool = True, mapping: bool = True) -> pd.DataFrame:
    """One row per op, plus a ``TOTAL`` row when ``totals`` (see the module docstring)."""
    present = [a for a in REPORT_ATTRS if any(a in dict(r.attrs) for r in result.rows)]
    sparse = any(r.dense_cycles is not None for r in result.rows)
    recs = []
    for r in result.rows:
        rec = {"op": r.name, "kind": r.kind, "shape": r.shape, "problem": r.problem,
               "shape_group": r.shape_group, "searched_as": r.searched_as, "macs": r.macs,
               "cycles": r.cycles, "energy_pJ": r.energy_pJ, "edp": r.edp,
               "utilization": r.utilization, "on_host": r.on_host}
        if sparse:
            rec.update(_dense(r.dense_cycles, r.dense_energy_pJ, r.cycles, r.energy_pJ),
                       sparse=r.sparse)
        attrs = dict(r.attrs)
        for a in present:
            v = attrs.get(a)
            rec[a] = None if v is None else str(v) if a == "fused" else float(v)
        if mapping:
            rec["mapping_yaml"] = r.mapping_yaml
        recs.append(rec)
    if totals:
        t = result.totals
        rec = {"op": "TOTAL", "kind": "", "shape": "", "problem": "",
               "shape_group": -1, "searched_as": "", "macs": t["macs"], "cycles": t["cycles"],
               "energy_pJ": t["energy_pJ"], "edp": t["edp"], "utilization": t["utilization"],
               "on_host": False}
        if sparse:
            rec.update(dense_cycles=sum(x["dense_cycles"] for x in recs),
                       dense_energy_pJ=sum(x["dense_energy_pJ"] for x in recs), sparse="")
        rec.update(dict.fromkeys(present))
        if mapping:
            rec["mapping_yaml"] = ""
        recs.append(rec)
    df = pd.DataFrame.from_records(recs)
    if present:
        for a in present:
            if a != "fused":
                df[a] = df[a].astype("float64")
            else:
                df[a] = df[a].astype("string")
    return df


def _dense(dc: int | None, de: float | None, cycles: int, energy: float) -> dict:
    """An op's dense price: its own when it was not priced sparse."""
    return {"dense_cycles": cycles if dc is None else dc,
            "dense_energy_pJ": energy if de is None else de}


def by_kind(result: CompileResult) -> pd.DataFrame:
    """Cycles and energy summed per op kind (accelerator ops only), largest latency first."""
    df = frame(result, totals=False, mapping=False)
    df = df[~df["on_host"]]
    return (df.groupby("kind")[["cycles", "energy_pJ", "macs"]].sum()
            .sort_values("cycles", ascending=False))


def plot(result: CompileResult, path: str | Path) -> None:
    """Bar plots of latency (cycles) and energy (pJ) by op kind, saved as PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    agg = by_kind(result)
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(9, 4))
    kinds = list(agg.index) or ["(none)"]
    a1.bar(kinds, list(agg["cycles"]) or [0], color="#4472c4")
    a1.set_ylabel("cycles")
    a1.set_title("latency by op type")
    a2.bar(kinds, list(agg["energy_pJ"]) or [0], color="#ed7d31")
    a2.set_ylabel("energy (pJ)")
    a2.set_title("energy by op type")
    fig.suptitle(f"{result.model} on {result.target} ({HOST_NOTE})", fontsize=8)
    fig.tight_layout()
    fig.savefig(str(path), format="png", dpi=110)
    plt.close(fig)


def write_report(result: CompileResult, out_dir: str | Path) -> list[Path]:
    """Write :data:`FILES` into ``out_dir`` (created if missing) all at once: everything is
    written into a temporary folder beside it, then moved in
    (:func:`mapspace.atomic.staged_dir`).  Returns the written paths."""
    out = Path(out_dir).resolve()
    with staged_dir(out) as tmp:
        df = frame(result)
        df.to_csv(tmp / FILES[0], index=False)
        df.to_parquet(tmp / FILES[1], index=False)
        plot(result, tmp / FILES[2])
        names = list(FILES)
        if hasattr(result, "save"):  # a CompiledModel: the model, to run later
            names += [p.name for p in result.save(tmp)]
    return [out / f for f in names]


__all__ = ["FILES", "HOST_NOTE", "by_kind", "frame", "plot", "write_report"]
