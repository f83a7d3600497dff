"""Commands that read a problem and an architecture: ``targets``, ``workloads``, ``evaluate``,
``explore``, ``map``."""

from __future__ import annotations

import json
from contextlib import ExitStack
from pathlib import Path

import click

from compiler.backend import check_backend_options
from compiler.cli.common import (
    UNKNOWN_ENERGY,
    atomic_write,
    check_memory,
    check_outputs,
    check_seed_option,
    constraints_for,
    edp_plot,
    guarded,
    input_options,
    interrupted,
    learned_info,
    load_inputs,
    main,
    mapping_yaml_text,
    output,
    print_stats,
    progress_bar,
    rerank_model,
    sample_bytes,
)
from compiler.cli.dataset import backend_options, dataset_mode, explore_folder
from mapspace.errors import Interrupted, MapspaceError
from mapspace.space import Mapspace
from targets import list_targets

# Kept inside the commands, so that `mapspace --help` starts fast: modules that pull pandas
# (cost_models, compiler.explore/emit/measure/pipeline/report), networkx
# (compiler.compiled/emit_model, compiler.passes), rich (0.05-0.08 s a module), matplotlib
# (~0.4 s), and the few that only some commands use (the zoo, the problem and mapping
# YAML readers, mapspace.atomic with shutil/tempfile: ~10 ms together).


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@guarded("targets")
def targets(as_json: bool) -> None:
    """List the built-in targets with their key parameters."""
    infos = list_targets()
    if as_json:
        click.echo(json.dumps([{
            "name": t.name, "description": t.description, "pes": t.pes,
            "dram_bandwidth_words_per_cycle": t.dram_bandwidth,
            "levels": [{"name": lv.name, "capacity_words": lv.capacity_words,
                        "word_bits": lv.word_bits, "instances": lv.instances}
                       for lv in t.levels],
        } for t in infos]))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title="built-in targets")
    for col in ("name", "PEs", "DRAM B/W (words/cycle)", "levels (capacity words x instances)",
                "description"):
        table.add_column(col)
    for t in infos:
        levels = ", ".join(
            f"{lv.name} {'inf' if lv.capacity_words is None else lv.capacity_words}"
            f"x{lv.instances} ({lv.word_bits}b)" for lv in t.levels)
        table.add_row(t.name, str(t.pes), str(t.dram_bandwidth or "-"), levels, t.description)
    Console(width=160).print(table)


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def workloads(as_json: bool) -> None:
    """List the named operators of the workload zoo."""
    from mapspace.workloads import list_workloads

    ws = list_workloads()
    if as_json:
        click.echo(json.dumps([{"name": w.name, "description": w.description} for w in ws]))
        return
    for w in ws:
        click.echo(f"{w.name:32s} {w.description}")



@main.command()
@click.option("--arch", type=click.Path(), help="Timeloop architecture YAML (v0.3/v0.4).")
@click.option("--ert", type=click.Path(), help="Timeloop energy reference table YAML.")
@click.option("--problem", type=click.Path(), help="Timeloop problem YAML.")
@click.option("--mapping", type=click.Path(), help="Timeloop mapping YAML.")
@click.option("--input", "input_", type=click.Path(),
              help="Timeloop processed input (architecture + problem + mapping).")
@click.option("--target", help="A built-in target instead of --arch (see `mapspace targets`).")
@click.option("--workload", help="A zoo operator instead of --problem (see `mapspace workloads`).")
@click.option("--sparse-opt", "sparse_opt", type=click.Path(),
              help="Timeloop/Sparseloop sparse_optimizations YAML: evaluate with Timeloop's "
              "sparse model (the section inside --input is used when present).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@guarded("evaluate")
def evaluate(arch, ert, problem, mapping, input_, target, workload, sparse_opt,
             as_json) -> None:
    """Evaluate one mapping with the analytical model (Timeloop semantics); with sparse
    optimizations, with Timeloop's sparse model (Sparseloop)."""
    from cost_models import evaluate as run
    from mapspace.mapping_yaml import load_mapping

    p, a = load_inputs(arch=arch, ert=ert, problem=problem, input_=input_, target=target,
                       workload=workload)
    source = mapping or input_
    if not source:
        raise MapspaceError("a mapping is needed: --mapping M.yaml (or --input)",
                            where="options")
    m = load_mapping(source, p, a)
    sparse = _sparse_inputs(sparse_opt, input_, arch, ert, problem, p, a)
    ev = run(p, a, m)
    stats = ev.stats(0)
    if not stats["valid"] and sparse is None:
        raise MapspaceError("the mapping is invalid: " + "; ".join(stats["reasons"]),
                            where=source)
    if sparse is not None:
        stats = _with_sparse(stats, sparse, p, a, m, ev, source)
    if as_json:
        click.echo(json.dumps({"problem": p.name, "arch": a.name, **stats}))
    else:
        print_stats(stats, p.name, a.name)
        if sparse is not None:
            _print_sparse(stats["sparse"])


def _sparse_inputs(sparse_opt, input_, arch, ert, problem, p, a):
    """(spec, densities, sparse arch) of ``evaluate``, or None when no sparse optimizations
    were given (neither --sparse-opt nor a ``sparse_optimizations`` section in --input)."""
    from cost_models.sparseloop import target_sparse_arch
    from mapspace.sparse_yaml import (
        densities_from_dict,
        densities_of,
        load_sparse_arch,
        sparse_spec_from_dict,
    )
    from mapspace.yamlio import load_yaml

    if sparse_opt == "":                      # e.g. an unset shell variable: not "no file"
        raise MapspaceError("'' is not a file path", where="--sparse-opt")
    doc = load_yaml(sparse_opt) if sparse_opt is not None else None
    where = sparse_opt
    if doc is None and input_:
        full = load_yaml(input_)
        if isinstance(full, dict) and "sparse_optimizations" in full:
            doc, where = full, input_
    if doc is None:
        return None
    spec = sparse_spec_from_dict(doc, p, a, where)
    pfile = problem or input_
    dens = densities_from_dict(load_yaml(pfile), p, pfile) if pfile else densities_of(p)
    afile = arch or input_
    # a built-in target has no metadata storage of its own: metadata in its data storage
    sa = load_sparse_arch(afile, a, ert) if afile else target_sparse_arch(a)
    return spec, dens, sa


def _with_sparse(stats, sparse, p, a, m, ev, source):
    """The dense stats with the sparse model's cycles and energy on top, and its per-level,
    per-tensor accesses under ``sparse``; the dense figures stay under ``dense``."""
    from cost_models.sparseloop import evaluate_sparseloop

    spec, dens, sa = sparse
    r = evaluate_sparseloop(p, a, m, spec, dens, sa, evaluation=ev)
    if not r.valid[0]:
        raise MapspaceError(f"the mapping is invalid: {r.reason[0]}", where=source)
    sp = r.stats(0)
    known = a.energy_known
    dense = {k: stats[k] for k in ("cycles", "energy_pJ", "edp", "utilization")}
    cyc = sp["cycles"]
    return {**stats, "cycles": cyc,
            "energy_pJ": sp["energy_pJ"] if known else None,
            "edp": sp["energy_pJ"] * 1e-12 * cyc if known else None,
            "utilization": sp["actual_computes"] / (a.compute.instances * cyc),
            "mac_energy_pJ": sp["mac_energy_pJ"] if known else None,
            "dense": dense, "sparse": sp}


def _print_sparse(sp: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    con = Console(width=160)
    con.print(f"  sparse model: {sp['actual_computes']:,} actual computes of "
              f"{sp['algorithmic_computes']:,} ({sp['gated_computes']:,} gated, "
              f"{sp['skipped_computes']:,} skipped)")
    table = Table(title="sparse accesses per instance (actual / gated / skipped; metadata "
                  "units = metadata + payload over ranks)")
    cols = ("level", "cycles", "tensor", "reads", "fills", "updates", "md reads", "md fills",
            "md updates", "energy pJ")
    for col in cols:
        table.add_column(col, justify="left" if col in ("level", "tensor") else "right")

    def three(t: dict, op: str) -> str:
        return " / ".join(f"{t[f'{k}_{op}']:,.0f}" for k in ("random", "gated", "skipped"))
    for lv in sp["levels"]:
        first = True
        for name, t in lv["tensors"].items():
            table.add_row(lv["name"] if first else "", f"{lv['cycles']:,}" if first else "",
                          name, three(t, "read"), three(t, "fill"), three(t, "update"),
                          three(t, "metadata_read"), three(t, "metadata_fill"),
                          three(t, "metadata_update"), f"{t['energy_pJ']:,.2f}")
            first = False
    con.print(table)



@main.command()
@input_options
@click.option("--samples", type=int, default=100_000, show_default=True,
              help="Valid mappings to sample.")
@click.option("--seed", type=int, default=0, show_default=True,
              help="Random seed, 0 to 2**63-1.")
@click.option("--out", type=click.Path(), help="X.parquet: every sample in one file; any "
              "other path: a dataset folder (a Parquet file per shard + manifest.json).")
@click.option("--resume", type=click.Path(), help="Continue the dataset folder of an "
              "interrupted run (same options): only its missing shards run.")
@backend_options
@click.option("--plot", type=click.Path(), help="Save a log-scale EDP histogram (PNG/SVG).")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as one JSON object.")
@guarded("explore")
def explore(arch, ert, problem, constraints, target, workload, samples, seed, out, resume,
            workers, cluster, plot, as_json) -> None:
    """Sample valid mappings uniformly and characterise their EDP distribution."""
    from compiler.explore import explore as run
    from mapspace.atomic import staged_file

    if samples is None or samples < 1:
        raise MapspaceError(f"must be a positive integer, found {samples}",
                            where="options", key="--samples")
    check_seed_option(seed)
    folder = dataset_mode(out, resume, workers, cluster)
    check_outputs(output(out, "--out", folder=folder), output(plot, "--plot", plot=True),
                  inputs={"--arch": arch, "--ert": ert, "--problem": problem,
                          "--constraints": constraints})
    p, a = load_inputs(arch=arch, ert=ert, problem=problem, input_=None, target=target,
                       workload=workload)
    if plot and not a.energy_known:
        raise MapspaceError("the EDP histogram needs energies: give --ert with --arch",
                            where="--plot")
    if folder:  # a dataset folder: bounded memory, any backend (compiler/cli/dataset.py)
        s = explore_folder(p, a, constraints_for(target, arch, constraints, p), samples, seed,
                           out=out, resume=resume, workers=workers, cluster=cluster,
                           plot=plot, as_json=as_json)
        return _print_explore(s, s.get("out"), plot, as_json)
    check_memory(samples, sample_bytes(p, a), key="--samples", unit="samples")
    cons = constraints_for(target, arch, constraints, p)
    stop = None
    try:
        with progress_bar(as_json) as bar:
            task = bar.add_task(f"sampling {p.name}", total=samples)
            result = run(p, a, cons, samples, seed,
                         progress=lambda have, drawn: bar.update(task, completed=have))
    except Interrupted as e:  # Ctrl-C/SIGTERM: the samples drawn so far are kept
        result, stop = e.partial, e
    s = result.summary
    best = result.best_mapping()
    s["best_mapping_yaml"] = mapping_yaml_text(best, p, a)
    with ExitStack() as staged:  # both files or neither
        if out:
            tmp = staged.enter_context(staged_file(out, where="--out"))
            result.frame.to_parquet(tmp, index=False)
            s["out"] = out
        if plot:
            tmp = staged.enter_context(staged_file(plot, where="--plot"))
            edp_plot(result.frame["edp"].to_numpy(), f"{p.name} on {a.name}: {s['valid']:,} "
                     "random valid mappings", tmp, output(plot, "--plot", plot=True).format())
            s["plot"] = plot
    if stop is not None:
        wrote = " and ".join(x for x in (out, plot) if x)
        interrupted("explore", f"wrote them to {wrote} (a partial result)" if wrote
                    else "nothing written (no --out)", stop)
    _print_explore(s, out, plot, as_json)


def _print_explore(s: dict, out: str | None, plot: str | None, as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps(s))
        return
    click.echo(f"{s['problem']} on {s['arch']}: {s['valid']:,} valid mappings "
               f"({s['candidates']:,} candidates, acceptance {100 * s['acceptance']:.2f}%) "
               f"in {s['seconds']:.2f} s = {s['evals_per_s']:,.0f} valid/s"
               + (f" (kernels loaded in {s['kernel_load_s']:.2f} s before, not counted)"
                  if "kernel_load_s" in s else ""))
    if s["edp_min"] is None:  # no energy table: rank by cycles, and say so
        click.echo(f"energy and EDP: {UNKNOWN_ENERGY}; cycles: min {s['cycles_min']:,}  "
                   f"median {s['cycles_median']:,.0f}  max {s['cycles_max']:,}")
    else:
        click.echo(f"EDP (J x cycles): min {s['edp_min']:.4g}  median {s['edp_median']:.4g}  "
                   f"max {s['edp_max']:.4g}")
    by = "" if s["ranked_by"] == "edp" else f" (by cycles: energy {UNKNOWN_ENERGY})"
    click.echo(f"spread {s['spread_orders_of_magnitude']:.2f} orders of magnitude; median "
               f"{s['median_over_best']:.0f}x the best; {100 * s['within_2x_of_best']:.3f}% "
               f"within 2x of the best{by}")
    click.echo("best mapping:")
    click.echo(s["best_mapping_yaml"])
    if out:
        click.echo(f"wrote {out}")
    if plot:
        click.echo(f"wrote {plot}")


@main.command("map")
@input_options
@click.option("--strategy", default="anneal", show_default=True,
              help="random, exhaustive, genetic, anneal or cpsat.")
@click.option("--budget", type=int, help="Evaluations to spend.")
@click.option("--time", "time_limit", type=float, help="Seconds to spend.")
@click.option("--objective", default="edp", show_default=True,
              type=click.Choice(["edp", "energy", "latency"]))
@click.option("--seed", type=int, default=0, show_default=True,
              help="Random seed, 0 to 2**63-1.")
@click.option("--cost", default="analytical", show_default=True,
              help="analytical, or learned:MODEL.skops (`mapspace train`): the learned model "
              "picks among the analytical search's top-K mappings.")
@click.option("--out", type=click.Path(), help="Write the best mapping as Timeloop YAML.")
@click.option("--restarts", type=int, default=1, show_default=True,
              help="Independent searches (own seeds, same budget each); the best is kept.")
@click.option("--sparse-opt", "sparse_opt", type=click.Path(),
              help="Timeloop/Sparseloop sparse_optimizations YAML: search under Timeloop's "
              "sparse model (densities from --problem).")
@backend_options
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@guarded("map")
def map_(arch, ert, problem, constraints, target, workload, strategy, budget, time_limit,
         objective, seed, out, as_json, cost, restarts=1, sparse_opt=None, workers=None,
         cluster=None) -> None:
    """Search the mapspace for the best mapping and print it with its stats (with --cost
    learned:M, the learned model's pick among the search's top-K; with --sparse-opt, under
    Timeloop's sparse model)."""
    from cost_models import evaluate as run_eval
    from cost_models.search import ANALYTICAL, check_limits, find_mapping

    check_limits(budget, time_limit, where="options", keys=("--budget", "--time"))
    check_seed_option(seed)
    if restarts is None or not 1 <= restarts <= 4096:
        raise MapspaceError(f"must be 1 to 4096, found {restarts}", where="options",
                            key="--restarts")
    check_backend_options(workers, cluster)
    check_outputs(output(out, "--out"), inputs={"--arch": arch, "--ert": ert,
                                                "--problem": problem,
                                                "--constraints": constraints,
                                                "--sparse-opt": sparse_opt})
    p, a = load_inputs(arch=arch, ert=ert, problem=problem, input_=None, target=target,
                       workload=workload)
    if objective != "latency" and not a.energy_known:
        raise MapspaceError(f"{objective} needs energies: give --ert with --arch, or "
                            "--objective latency", where="options", key="--objective")
    cons = constraints_for(target, arch, constraints, p)
    rerank = rerank_model(cost, target, a)
    sparse = _sparse_inputs(sparse_opt, None, arch, ert, problem, p, a) \
        if sparse_opt is not None else None
    if sparse is not None and rerank is not None:
        raise MapspaceError("a learned model predicts dense cycles: use --cost analytical "
                            "with --sparse-opt", where="options", key="--cost")
    model = ANALYTICAL
    if sparse is not None:
        from cost_models.sparseloop import Sparseloop

        model = Sparseloop(*sparse)
    try:
        if restarts != 1 or workers is not None or cluster is not None:  # on a backend
            from compiler.restarts import map_restarts

            result = map_restarts(Mapspace(p, a, cons), restarts=restarts, seed=seed,
                                  workers=workers, cluster=cluster, strategy=strategy,
                                  objective=objective, budget=budget, time_limit=time_limit,
                                  rerank=rerank, cost_model=model, where="options")[0]
        else:
            result = find_mapping(Mapspace(p, a, cons), model, strategy=strategy,
                                  objective=objective, seed=seed, budget=budget,
                                  time_limit=time_limit, rerank=rerank)
        stop = None
    except Interrupted as e:  # Ctrl-C/SIGTERM: the best mapping so far is kept
        result, stop = e.partial, e
    best = result.best_mapping
    ev = run_eval(p, a, best)
    stats = ev.stats(0)
    if sparse is not None:
        stats = _with_sparse(stats, sparse, p, a, best, ev, sparse_opt)
    text = mapping_yaml_text(best, p, a)
    if out:
        atomic_write(out, lambda tmp: Path(tmp).write_text(text))
    if stop is not None:
        interrupted("map", f"wrote the best mapping so far to {out} ({objective} "
                    f"{result.best_objective:.6g})" if out else "nothing written (no --out)",
                    stop)
    info = {"strategy": strategy, "objective": objective, "seed": seed, "restarts": restarts,
            "evaluations": result.evaluations, "valid_evaluations": result.valid_evaluations,
            "seconds": result.seconds, "stopped_by": result.stopped_by,
            "best_mapping_yaml": text, **stats, **learned_info(cost, rerank, result, p, a)}
    if sparse is not None:
        info["cost"] = "sparseloop"           # the search ran on Timeloop's sparse model
    if as_json:
        click.echo(json.dumps({"problem": p.name, "arch": a.name, **info}))
        return
    model_name = ", sparse model" if sparse is not None else ""
    click.echo(f"{strategy} search ({objective}{model_name}): {result.evaluations:,} evaluations "
               f"({result.valid_evaluations:,} valid) in {result.seconds:.2f} s, stopped by "
               f"{result.stopped_by}")
    print_stats(stats, p.name, a.name)
    if sparse is not None:
        _print_sparse(stats["sparse"])
    if rerank is not None:
        li = info["learned"]
        click.echo(f"learned model ({li['model']}): picked the search's #{li['choice'] + 1} "
                   f"of {li['candidates']}; predicted {li['cycles']:,.0f} cycles, EDP "
                   f"{li['edp']:.4g}")
    click.echo(text)
    if out:
        click.echo(f"wrote {out}")
