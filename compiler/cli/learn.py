"""Commands of the measured ground truth and the learned model: ``measure``, ``train``."""

from __future__ import annotations

import json
from typing import Any

import click

from compiler.backend import check_backend_options
from compiler.cli.common import (
    check_memory,
    check_out,
    check_seed_option,
    guarded,
    main,
    progress_bar,
    sample_bytes,
)
from compiler.cli.dataset import backend_options
from mapspace.errors import MapspaceError
from targets.registry import DTYPE_BITS

# Kept inside the commands, so that `mapspace --help` starts fast: modules that pull pandas
# (cost_models, compiler.explore/emit/measure/pipeline/report), networkx
# (compiler.compiled/emit_model, compiler.passes), rich (0.05-0.08 s a module), matplotlib
# (~0.4 s), and the few that only some commands use (the zoo, the problem and mapping
# YAML readers, mapspace.atomic with shutil/tempfile: ~10 ms together).


@main.command("train")
@click.argument("data", nargs=-1, required=True, type=click.Path())
@click.option("--out", required=True, type=click.Path(), help="The model file (.skops).")
@click.option("--target", default=None,
              help="Train on this target's rows (default: the one target in DATA).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@guarded("train")
def train_(data, out, target, seed, as_json) -> None:
    """Train the learned cost model on measured datasets (DATA: Parquet files written by
    `mapspace measure --out`) and save it as a .skops file for --cost learned:FILE.

    It needs at least 50 measured (status ok) rows of the target; it reports the ranking
    quality on held-out workloads (held-out rows with one workload) against the
    analytical model, then fits on every row."""
    from cost_models import dataset
    from cost_models.learned import save, train
    from targets.registry import get_target

    check_out(out, "--out")
    rows = dataset.read(list(data))
    found = sorted(rows["target"].astype(str).unique())
    if target is None:
        if len(found) != 1:
            raise MapspaceError(f"the data holds rows of {len(found)} targets "
                                f"({', '.join(found) or 'none'}); pick one with --target",
                                where="train")
        target = found[0]
    elif target not in found:
        raise MapspaceError(f"no rows of target {target!r} in the data (targets: "
                            f"{', '.join(found) or 'none'})", where="--target")
    model = train(rows, target=target, arch=get_target(target).arch(), seed=seed)
    save(model, out)
    m = dict(model.meta)
    if as_json:
        click.echo(json.dumps({"out": out, **m}))
        return
    click.echo(f"trained a learned cost model for {target} on {m['n_rows']:,} rows of "
               f"{len(m['workloads'])} workloads ({', '.join(m['workloads'])})")
    k = m.get("metrics") or {}
    if k:
        def f(x) -> str:
            return "n/a" if x is None else f"{x:.3f}"

        click.echo(f"held out {k['holdout']} ({k['holdout_rows']} rows): pairwise ranking "
                   f"accuracy learned {f(k['pairwise_learned'])} vs analytical "
                   f"{f(k['pairwise_analytical'])}; Spearman learned "
                   f"{f(k['spearman_learned'])} vs analytical {f(k['spearman_analytical'])}")
    click.echo(f"wrote {out}")


@main.command("measure")
@click.option("--target", required=True, help="cpu or gemmini (a target with an emitter).")
@click.option("--workload", help="A zoo operator (see `mapspace workloads`).")
@click.option("--problem", type=click.Path(), help="Timeloop problem YAML.")
@click.option("--n", "n", type=int, required=True, help="Mappings to measure.")
@click.option("--seed", type=int, default=0, show_default=True,
              help="Random seed, 0 to 2**63-1.")
@click.option("--out", required=True, type=click.Path(),
              help="Parquet dataset (appended to; re-measured rows are replaced).")
@click.option("--top-k", "top_k", type=int, default=None,
              help="How many of the analytical model's best (default n//4).")
@click.option("--objective", default="edp", show_default=True,
              type=click.Choice(["edp", "energy", "latency"]))
@click.option("--dtype", type=click.Choice(list(DTYPE_BITS)), default=None,
              help="Element type (default: the target's first).")
@click.option("--repeat", type=int, default=10, show_default=True,
              help="Timed runs per mapping (cpu).")
@click.option("--warmup", type=int, default=3, show_default=True,
              help="Untimed runs first (cpu).")
@click.option("--jobs", type=int, default=None, help="Parallel builds (default: the cores).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@backend_options
@guarded("measure")
def measure_(target, workload, problem, n, seed, out, top_k, objective, dtype, repeat, warmup,
             jobs, as_json, workers=None, cluster=None) -> None:
    """Build, run and time N mappings that span a target's space (the analytical model's
    top-K and stratified random valid ones); one dataset row each, keyed, appended."""
    from compiler.measure import measurable, measure

    if (problem is None) == (workload is None):
        raise MapspaceError("give exactly one of --workload NAME or --problem P.yaml",
                            where="options")
    check_seed_option(seed)
    check_backend_options(workers, cluster)
    check_out(out, "--out")
    t, _, dt = measurable(target, dtype)  # a target that cannot run here fails first
    from mapspace.problem_yaml import load_problem
    from mapspace.workloads import workload as zoo_workload

    p = load_problem(problem) if problem else zoo_workload(workload)
    if n >= 1:  # the pool it picks from: 32 valid mappings per one measured (at least 1024)
        check_memory(max(1024, 32 * n), sample_bytes(p, t.arch(dt)), key="--n",
                     unit="pooled mappings (32 per --n)")
    with progress_bar(as_json) as bar:
        tasks: dict[str, Any] = {}

        def progress(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = bar.add_task(f"{stage} {p.name}", total=total)
            bar.update(tasks[stage], completed=done)

        res = measure(target, p, n=n, seed=seed, out=out, workload=workload or p.name,
                      dtype=dtype, top_k=top_k, objective=objective, jobs=jobs,
                      repeat=repeat, warmup=warmup, progress=progress, workers=workers,
                      cluster=cluster)
    s = {"target": target, "problem": p.name, "out": str(out), **res.summary()}
    if as_json:
        click.echo(json.dumps(s))
        return
    counts = ", ".join(f"{v} {k}" for k, v in s["status"].items())
    click.echo(f"{p.name} on {target}: {s['rows']} mappings measured ({counts}) from a pool "
               f"of {s['pool']:,} valid; select {s['seconds']['select']:.1f} s, build "
               f"{s['seconds']['build']:.1f} s, time {s['seconds']['time']:.1f} s")
    if "fastest" in s:
        f, b = s["fastest"], s["analytical_best"]
        click.echo(f"fastest measured: {f['measured_s'] * 1e3:.4g} ms ({f['selection']}, "
                   f"analytical rank {f['analytical_rank']} of {s['rows']})")
        if b["measured_rank"] is None:
            click.echo(f"analytical best: not measured ({b['status']})")
        else:
            click.echo(f"analytical best: {b['measured_s'] * 1e3:.4g} ms, measured rank "
                       f"{b['measured_rank']} ({b['measured_s'] / f['measured_s']:.2f}x the "
                       "fastest)")
    click.echo(f"wrote {out} ({s['dataset_rows']} rows)")
