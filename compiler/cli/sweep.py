"""``mapspace sweep``: a model compiled on every design point of a Gemmini-like base; the
table (Parquet + CSV), the Pareto front against an area proxy and its plot
(:mod:`compiler.sweep`); design points run on an execution backend (``--workers``,
``--cluster``: :mod:`compiler.backend`)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import click

from compiler.cli.common import (
    check_seed_option,
    guarded,
    main,
    progress_bar,
)
from compiler.cli.dataset import backend_options
from mapspace.errors import MapspaceError

# compiler.sweep (pandas, the compile pipeline) and compiler.backend's dask are imported
# inside the command: `mapspace --help` stays fast


def check_model(model: str) -> None:
    from compiler.zoo import ZOO

    if model not in ZOO and not Path(model).is_file():
        raise MapspaceError(f"{model!r} is neither a zoo model ({', '.join(sorted(ZOO))}) "
                            "nor an ONNX file", where="--model")


@main.command("sweep")
@click.option("--model", required=True, help="A zoo model (e.g. bert-base) or an ONNX file.")
@click.option("--base", default="gemmini", show_default=True,
              help="The base design (a Gemmini-like target).")
@click.option("--vary", multiple=True, help="KEY=V1,V2,...: pe (RxC), scratchpad, "
              "accumulator (bytes: 64KiB, 1MiB), dram-bw (words/cycle). Repeat per key.")
@click.option("--passes", default="", help="Graph passes, e.g. fuse.")
@click.option("--objective", default="edp", show_default=True,
              type=click.Choice(["edp", "latency", "energy"]),
              help="What each shape's search and the Pareto front (with the area proxy) "
              "minimise.")
@click.option("--budget", type=int, default=4000, show_default=True,
              help="Search evaluations per distinct shape and design.")
@click.option("--strategy", default="anneal", show_default=True, help="Search strategy.")
@click.option("--seed", type=int, default=0, show_default=True,
              help="Random seed, 0 to 2**63-1.")
@click.option("--seq", type=int, help="Sequence length of a zoo transformer (default 512).")
@backend_options
@click.option("--out", type=click.Path(), help="Folder for sweep.parquet, sweep.csv, "
              "layers.parquet, pareto.png and summary.json.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@guarded("sweep")
def sweep_(model, base, vary, passes, objective, budget, strategy, seed, seq, workers,
           cluster, out, as_json) -> None:
    """Compile a model on every design point; table, Pareto front vs area, plot."""
    from compiler.backend import check_backend_options
    from compiler.sweep import pareto_plot, plan, sweep
    from mapspace.atomic import staged_dir

    check_seed_option(seed)
    check_backend_options(workers, cluster)
    if budget is None or not 1 <= budget <= 1 << 40:
        raise MapspaceError(f"must be 1 to 2**40, found {budget}", where="options",
                            key="--budget")
    if out is not None:
        o = Path(out)
        if (o.exists() and not o.is_dir()) or not o.resolve().parent.is_dir():
            raise MapspaceError("must be a folder whose parent exists", where="--out",
                                key=out)
    check_model(model)
    points = plan(base, vary)  # every design checked before any work
    with progress_bar(as_json) as bar:
        task = bar.add_task(f"{len(points)} design points", total=len(points))
        r = sweep(model, base=base, vary=vary, passes=passes, objective=objective,
                  budget=budget, seed=seed, seq=seq, strategy=strategy, workers=workers,
                  cluster=cluster,
                  progress=lambda done, total, name: bar.update(task, completed=done))
    col = {"edp": "edp", "latency": "cycles", "energy": "energy_pJ"}[objective]
    best = r.table.loc[r.table[col].idxmin()]
    summary = {"model": model, "base": base, "vary": list(vary), "passes": passes,
               "objective": objective, "budget": budget, "strategy": strategy, "seed": seed,
               "seq": seq, "points": len(r.table), "seconds": r.seconds,
               "best": best["design"], "front": r.front["design"].tolist()}
    if out:
        with staged_dir(out) as tmp:
            r.table.to_parquet(tmp / "sweep.parquet", index=False)
            r.table.to_csv(tmp / "sweep.csv", index=False)
            r.layers.to_parquet(tmp / "layers.parquet", index=False)
            pareto_plot(r, tmp / "pareto.png", f"{model}: {len(r.table)} design points "
                        f"({objective} vs area)")
            (tmp / "summary.json").write_text(json.dumps(summary, indent=1))
        summary["out"] = os.fspath(out)
    if as_json:
        click.echo(json.dumps({**summary, "table": r.table.to_dict("records")}))
        return
    t = r.table
    click.echo(f"{model} on {len(t)} design points of {base} in {r.seconds:.1f} s "
               f"({int(t['searches'].sum())} searches, {budget} evaluations each)")
    show = ["design", "area_mm2", "cycles", "energy_pJ", "edp", "utilization", "pareto"]
    click.echo(t[show].to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    click.echo(f"best by {objective}: {best['design']}; Pareto front (area up): "
               + ", ".join(summary["front"]))
    if out:
        click.echo(f"wrote {out}/sweep.parquet, sweep.csv, layers.parquet, pareto.png, "
                   "summary.json")
