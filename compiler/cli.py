"""The ``mapspace`` command line.  Every command catches the project's error types once,
prints one line to stderr and exits with code 2; nothing is written half-way."""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable
from contextlib import nullcontext
from functools import wraps
from pathlib import Path
from typing import Any

import click
import numpy as np
import yaml

from mapspace.arch_yaml import load_arch
from mapspace.constraints import NONE
from mapspace.constraints_yaml import load_constraints
from mapspace.errors import MapspaceError
from mapspace.space import Mapspace
from mapspace.yamlio import load_yaml
from targets import default_constraints, list_targets, load_target
from targets.registry import DTYPE_BITS, emitting_targets

# Kept inside the commands, so that `mapspace --help` starts fast: modules that pull pandas
# (cost_models, compiler.explore/emit/measure/pipeline/report), networkx
# (compiler.compiled/emit_model, compiler.passes), rich (0.05-0.08 s a module), matplotlib
# (~0.4 s), and the few that only some commands use (the zoo, the problem and mapping
# YAML readers, mapspace.atomic with shutil/tempfile: ~10 ms together).


def _fail(cmd: str, message: str) -> None:
    click.echo(f"mapspace {cmd}: error: {message}", err=True)
    sys.exit(2)


def guarded(cmd: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Turn project errors (bad input) into one line on stderr and exit code 2."""

    def deco(fn: Callable[..., Any]) -> Callable[..., Any]:
        @wraps(fn)
        def run(*args: Any, **kwargs: Any) -> Any:
            try:
                return fn(*args, **kwargs)
            except MapspaceError as e:
                _fail(cmd, str(e))

        return run

    return deco


@click.group()
@click.version_option(package_name="mapspace")
def main() -> None:
    """mapspace: mapspace exploration and scheduling for DNN accelerators."""


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


def load_inputs(*, arch: str | None, ert: str | None, problem: str | None,
                input_: str | None, target: str | None, workload: str | None):
    """Resolve (Problem, Arch) from files, a processed input, a target or a workload."""
    from mapspace.problem_yaml import load_problem
    from mapspace.workloads import workload as zoo_workload

    if input_:
        if arch or problem:
            raise MapspaceError("--input already holds the architecture and the problem; "
                                "drop --arch/--problem", where="options")
        return load_problem(input_), load_arch(input_, ert)
    if arch and target:
        raise MapspaceError("give either --arch or --target, not both", where="options")
    if problem and workload:
        raise MapspaceError("give either --problem or --workload, not both", where="options")
    if arch:
        a = load_arch(arch, ert)
    elif target:
        if ert:
            raise MapspaceError("--ert goes with --arch; a --target has its own energy table",
                                where="options")
        a = load_target(target)
    else:
        raise MapspaceError("an architecture is needed: --arch A.yaml, --target NAME or "
                            "--input processed.yaml", where="options")
    if problem:
        p = load_problem(problem)
    elif workload:
        p = zoo_workload(workload)
    else:
        raise MapspaceError("a problem is needed: --problem P.yaml, --workload NAME or "
                            "--input processed.yaml", where="options")
    return p, a


#: what every line that depends on the energy says when no energy table was given
UNKNOWN_ENERGY = "unknown (no --ert)"


def _check_seed(seed: int) -> None:
    from cost_models.search import check_seed

    check_seed(seed, where="options", key="--seed")


def _progress(as_json: bool):
    """A transient progress bar on a terminal; silent otherwise (``--json``, pipes, tests:
    even a disabled rich Progress prints an empty line when it stops)."""
    from rich.console import Console
    from rich.progress import Progress

    quiet = as_json or not sys.stdout.isatty()
    return Progress(transient=True, disable=quiet, console=Console(quiet=quiet))


def _print_stats(stats: dict, problem_name: str, arch_name: str) -> None:
    from rich.console import Console
    from rich.table import Table

    con = Console(width=140)
    con.print(f"[bold]{problem_name}[/bold] on [bold]{arch_name}[/bold]")
    con.print(f"  cycles       {stats['cycles']:,}")
    if stats["energy_pJ"] is None:  # no energy table: never print the 0 pJ default
        con.print(f"  energy       {UNKNOWN_ENERGY}")
        con.print(f"  EDP          {UNKNOWN_ENERGY}")
    else:
        con.print(f"  energy       {stats['energy_pJ']:,.2f} pJ  "
                  f"({stats['energy_pJ'] / 1e6:.4f} uJ)")
        con.print(f"  EDP          {stats['edp']:.6g} J*cycles")
    con.print(f"  utilization  {100 * stats['utilization']:.2f}%  "
              f"({stats['compute_instances']} PEs used, {stats['macs']:,} MACs)")
    table = Table(title="per level and tensor (words per instance)")
    for col in ("level", "inst", "cycles", "tensor", "tile", "reads", "fills", "updates",
                "energy pJ"):
        table.add_column(col, justify="right" if col not in ("level", "tensor") else "left")
    for lv in stats["levels"]:
        first = True
        for name, t in lv["tensors"].items():
            table.add_row(lv["name"] if first else "", str(lv["instances"]) if first else "",
                          f"{lv['cycles']:,}" if first else "", name, f"{t['tile']:,}",
                          f"{t['reads']:,}", f"{t['fills']:,}", f"{t['updates']:,}",
                          "unknown" if t["energy_pJ"] is None else f"{t['energy_pJ']:,.1f}")
            first = False
    con.print(table)


@main.command()
@click.option("--arch", type=click.Path(), help="Timeloop architecture YAML (v0.3/v0.4).")
@click.option("--ert", type=click.Path(), help="Timeloop energy reference table YAML.")
@click.option("--problem", type=click.Path(), help="Timeloop problem YAML.")
@click.option("--mapping", type=click.Path(), help="Timeloop mapping YAML.")
@click.option("--input", "input_", type=click.Path(),
              help="Timeloop processed input (architecture + problem + mapping).")
@click.option("--target", help="A built-in target instead of --arch (see `mapspace targets`).")
@click.option("--workload", help="A zoo operator instead of --problem (see `mapspace workloads`).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@guarded("evaluate")
def evaluate(arch, ert, problem, mapping, input_, target, workload, as_json) -> None:
    """Evaluate one mapping with the analytical model (Timeloop semantics)."""
    from cost_models import evaluate as run
    from mapspace.mapping_yaml import load_mapping

    p, a = load_inputs(arch=arch, ert=ert, problem=problem, input_=input_, target=target,
                       workload=workload)
    source = mapping or input_
    if not source:
        raise MapspaceError("a mapping is needed: --mapping M.yaml (or --input)",
                            where="options")
    m = load_mapping(source, p, a)
    ev = run(p, a, m)
    stats = ev.stats(0)
    if not stats["valid"]:
        raise MapspaceError("the mapping is invalid: " + "; ".join(stats["reasons"]),
                            where=source)
    if as_json:
        click.echo(json.dumps({"problem": p.name, "arch": a.name, **stats}))
    else:
        _print_stats(stats, p.name, a.name)


def _constraints(target: str | None, arch_path: str | None, constraints: str | None,
                 problem=None):
    """Target defaults for ``problem`` (or the architecture file's own constraints) plus a
    user file."""
    base = NONE
    if target:
        base = default_constraints(target, problem)
    elif arch_path:
        doc = load_yaml(arch_path)
        keys = ("architecture_constraints", "mapspace_constraints", "constraints")
        if isinstance(doc, dict) and any(k in doc for k in keys):
            base = load_constraints(arch_path, strict=False)
    if constraints:
        base = base.merged(load_constraints(constraints))
    return base


def _check_out(path: str | None, what: str) -> None:
    """Fail before any work when ``path`` cannot be written."""
    if not path:
        return
    folder = os.path.dirname(os.path.abspath(path)) or "."
    if not os.path.isdir(folder):
        raise MapspaceError(f"folder {folder!r} does not exist", where=what)
    if not os.access(folder, os.W_OK):
        raise MapspaceError(f"folder {folder!r} is not writable", where=what)
    if os.path.isdir(path):
        raise MapspaceError(f"{path!r} is a folder, expected a file path", where=what)
    if os.path.lexists(path) and not os.path.isfile(path):
        raise MapspaceError(f"{path!r} exists and is not a regular file (a device, FIFO or "
                            "broken link); it would be replaced", where=what)


def _atomic_write(path: str, write: Callable[[str], None]) -> None:
    """Write through a temporary file in the same folder, then rename (never half-written:
    :func:`mapspace.atomic.staged_file`)."""
    from mapspace.atomic import staged_file

    with staged_file(path) as tmp:
        write(tmp)


def _mapping_yaml(mappings, problem, arch) -> str:
    from mapspace.mapping_yaml import mapping_to_list

    return yaml.safe_dump({"mapping": mapping_to_list(mappings, problem, arch)},
                          sort_keys=False, default_flow_style=None, width=100)


def _edp_plot(edp, title: str, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    bins = np.logspace(np.log10(edp.min()), np.log10(edp.max()) + 1e-9, 60)
    ax.hist(edp, bins=bins, color="#4472c4")
    ax.set_xscale("log")
    ax.set_xlabel("EDP (J x cycles), log scale")
    ax.set_ylabel("mappings")
    ax.set_title(title)
    ax.axvline(edp.min(), color="k", lw=1, ls="--", label=f"best {edp.min():.3g}")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, format=path.rsplit(".", 1)[-1] if "." in path else "png", dpi=120)
    plt.close(fig)


_INPUT_OPTIONS = [
    click.option("--arch", type=click.Path(), help="Timeloop architecture YAML."),
    click.option("--ert", type=click.Path(), help="Timeloop energy reference table YAML."),
    click.option("--problem", type=click.Path(), help="Timeloop problem YAML."),
    click.option("--constraints", type=click.Path(), help="Timeloop mapspace constraints YAML "
                 "(added to the target's defaults)."),
    click.option("--target", help="A built-in target (see `mapspace targets`)."),
    click.option("--workload", help="A zoo operator (see `mapspace workloads`)."),
]


def _inputs(fn):
    for opt in reversed(_INPUT_OPTIONS):
        fn = opt(fn)
    return fn


@main.command()
@_inputs
@click.option("--samples", type=int, default=100_000, show_default=True,
              help="Valid mappings to sample.")
@click.option("--seed", type=int, default=0, show_default=True,
              help="Random seed, 0 to 2**63-1.")
@click.option("--out", type=click.Path(), help="Parquet file for every sample and its costs.")
@click.option("--plot", type=click.Path(), help="Save a log-scale EDP histogram (PNG/SVG).")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as one JSON object.")
@guarded("explore")
def explore(arch, ert, problem, constraints, target, workload, samples, seed, out, plot,
            as_json) -> None:
    """Sample valid mappings uniformly and characterise their EDP distribution."""
    from compiler.explore import explore as run

    if samples is None or samples < 1:
        raise MapspaceError(f"must be a positive integer, found {samples}",
                            where="options", key="--samples")
    _check_seed(seed)
    _check_out(out, "--out")
    _check_out(plot, "--plot")
    p, a = load_inputs(arch=arch, ert=ert, problem=problem, input_=None, target=target,
                       workload=workload)
    if plot and not a.energy_known:
        raise MapspaceError("the EDP histogram needs energies: give --ert with --arch",
                            where="--plot")
    cons = _constraints(target, arch, constraints, p)
    with _progress(as_json) as bar:
        task = bar.add_task(f"sampling {p.name}", total=samples)
        result = run(p, a, cons, samples, seed,
                     progress=lambda have, drawn: bar.update(task, completed=have))
    s = result.summary
    best = result.best_mapping()
    s["best_mapping_yaml"] = _mapping_yaml(best, p, a)
    if out:
        _atomic_write(out, lambda tmp: result.frame.to_parquet(tmp, index=False))
        s["out"] = out
    if plot:
        _atomic_write(plot, lambda tmp: _edp_plot(result.frame["edp"].to_numpy(),
                                                  f"{p.name} on {a.name}: {s['valid']:,} "
                                                  "random valid mappings", tmp))
        s["plot"] = plot
    if as_json:
        click.echo(json.dumps(s))
        return
    click.echo(f"{p.name} on {a.name}: {s['valid']:,} valid mappings "
               f"({s['candidates']:,} candidates, acceptance {100 * s['acceptance']:.2f}%) "
               f"in {s['seconds']:.2f} s = {s['evals_per_s']:,.0f} valid/s")
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
@_inputs
@click.option("--strategy", default="anneal", show_default=True,
              help="random, exhaustive, genetic, anneal or optimal.")
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
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@guarded("map")
def map_(arch, ert, problem, constraints, target, workload, strategy, budget, time_limit,
         objective, seed, out, as_json, cost) -> None:
    """Search the mapspace for the best mapping and print it with its stats (with --cost
    learned:M, the learned model's pick among the search's top-K)."""
    from cost_models import evaluate as run_eval
    from cost_models.search import check_limits, find_mapping

    check_limits(budget, time_limit, where="options", keys=("--budget", "--time"))
    _check_seed(seed)
    _check_out(out, "--out")
    p, a = load_inputs(arch=arch, ert=ert, problem=problem, input_=None, target=target,
                       workload=workload)
    if objective != "latency" and not a.energy_known:
        raise MapspaceError(f"{objective} needs energies: give --ert with --arch, or "
                            "--objective latency", where="options", key="--objective")
    cons = _constraints(target, arch, constraints, p)
    rerank = _rerank_model(cost, target, a)
    result = find_mapping(Mapspace(p, a, cons), strategy=strategy, objective=objective,
                          seed=seed, budget=budget, time_limit=time_limit, rerank=rerank)
    best = result.best_mapping
    stats = run_eval(p, a, best).stats(0)
    text = _mapping_yaml(best, p, a)
    if out:
        _atomic_write(out, lambda tmp: open(tmp, "w").write(text))
    info = {"strategy": strategy, "objective": objective, "seed": seed,
            "evaluations": result.evaluations, "valid_evaluations": result.valid_evaluations,
            "seconds": result.seconds, "stopped_by": result.stopped_by,
            "best_mapping_yaml": text, **stats, **_learned_info(cost, rerank, result, p, a)}
    if as_json:
        click.echo(json.dumps({"problem": p.name, "arch": a.name, **info}))
        return
    click.echo(f"{strategy} search ({objective}): {result.evaluations:,} evaluations "
               f"({result.valid_evaluations:,} valid) in {result.seconds:.2f} s, stopped by "
               f"{result.stopped_by}")
    _print_stats(stats, p.name, a.name)
    if rerank is not None:
        li = info["learned"]
        click.echo(f"learned model ({li['model']}): picked the search's #{li['choice'] + 1} "
                   f"of {li['candidates']}; predicted {li['cycles']:,.0f} cycles, EDP "
                   f"{li['edp']:.4g}")
    click.echo(text)
    if out:
        click.echo(f"wrote {out}")


def _rerank_model(cost: str, target: str | None, arch):
    """The model ``--cost`` names (``None``: analytical), checked against the target (or,
    for an arch file, the arch's name) and the arch's levels."""
    from cost_models.learned import cost_model_of

    return cost_model_of(cost, target=target, arch=arch, where="--cost")


def _learned_info(cost: str, rerank, result, p, a) -> dict:
    """``cost`` and, with a learned model, what it chose and predicts (for ``map``)."""
    if rerank is None:
        return {"cost": cost}
    c = rerank.cost(p, a, result.best_mapping)
    return {"cost": cost, "learned": {
        "model": cost.split(":", 1)[1], "choice": int(result.rerank_choice or 0),
        "candidates": 0 if result.top is None else len(result.top),
        "cycles": float(c.cycles[0]), "edp": float(c.edp[0])}}


def _check_out_dir(out: str) -> None:
    """Fail before any work when the report folder ``out`` cannot be created or written."""
    path = os.path.abspath(out)
    if os.path.exists(path) and not os.path.isdir(path):
        raise MapspaceError(f"{out!r} exists and is not a folder", where="--out")
    folder = path if os.path.isdir(path) else os.path.dirname(path)
    if not os.path.isdir(folder):
        raise MapspaceError(f"folder {folder!r} does not exist", where="--out")
    if not os.access(folder, os.W_OK):
        raise MapspaceError(f"folder {folder!r} is not writable", where="--out")


def _compile_table(result) -> None:
    from rich.console import Console
    from rich.table import Table

    con = Console(width=160)
    table = Table(title=f"{result.model} on {result.target}: accelerator ops")
    for col in ("op", "kind", "problem", "MACs", "cycles", "energy pJ", "util %", "searched as"):
        table.add_column(col, justify="right" if col in ("MACs", "cycles", "energy pJ",
                                                          "util %") else "left")
    for r in result.rows:
        if r.on_host:
            continue
        table.add_row(r.name, r.kind, r.problem, f"{r.macs:,}", f"{r.cycles:,}",
                      f"{r.energy_pJ:,.0f}", f"{100 * r.utilization:.1f}",
                      "" if r.searched_as == r.name else r.searched_as)
    con.print(table)
    host = [r for r in result.rows if r.on_host]
    if host:
        kinds = sorted({r.kind for r in host})
        con.print(f"{len(host)} host ops ({', '.join(kinds)}): softmax/layernorm pay a DRAM "
                  "round trip plus host time; the others are not priced")
    t = result.totals
    con.print(f"[bold]total[/bold]: {t['ops']} ops ({t['mac_ops']} on the accelerator, "
              f"{t['distinct_shapes']} distinct shapes searched), {t['macs']:,} MACs, "
              f"{t['cycles']:,} cycles, {t['energy_pJ'] / 1e6:,.3f} uJ, EDP {t['edp']:.4g} "
              f"J*cycles, utilization {100 * t['utilization']:.1f}%, {t['seconds']:.1f} s")
    sparse = [r for r in result.rows if r.dense_cycles is not None]
    if sparse:
        dc = sum(r.cycles if r.dense_cycles is None else r.dense_cycles for r in result.rows)
        de = sum(r.energy_pJ if r.dense_energy_pJ is None else r.dense_energy_pJ
                 for r in result.rows)
        con.print(f"sparse: {len(sparse)} ops priced sparse ({sparse[0].sparse}); dense "
                  f"price of the same mappings {dc:,} cycles, {de / 1e6:,.3f} uJ")


@main.command("compile")
@click.argument("model")
@click.option("--target", default="gemmini", show_default=True,
              help="A built-in target (see `mapspace targets`).")
@click.option("--passes", default="", help="Graph passes, e.g. fuse,quantize=int8,sparsify=2:4 "
              "(see `mapspace passes`).")
@click.option("--strategy", default="anneal", show_default=True,
              help="Search strategy per distinct shape (random, exhaustive, genetic, anneal, "
              "optimal).")
@click.option("--budget", type=int, help="Evaluations per distinct shape.")
@click.option("--time-per-op", type=float, default=2.0, show_default=True,
              help="Seconds of search per distinct shape.")
@click.option("--seed", type=int, default=0, show_default=True,
              help="Random seed, 0 to 2**63-1.")
@click.option("--seq", type=int, help="Sequence length of a zoo transformer (default 512).")
@click.option("--out", "out", type=click.Path(), required=True,
              help="Folder for ops.csv, ops.parquet and latency_energy.png.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object (no mapping text).")
@click.option("--frontend", type=click.Choice(["onnx", "relax"]), default="onnx",
              show_default=True,
              help="Reader of an ONNX MODEL: onnx (ours) or relax (TVM's ONNX importer, then "
              "the Relax front end; needs Apache TVM).")
@click.option("--emit", "emit_code", is_flag=True,
              help="Also write code for every MAC op into --out/code (cpu: one TVM module; "
              "gemmini: one C program over the functional Gemmini model).")
@click.option("--run", "run_code", is_flag=True,
              help="With --emit: run the whole model with the emitted kernels on random "
              "inputs and check it against numpy (non-MAC ops run on the host in numpy).")
@click.option("--cost", default="analytical", show_default=True,
              help="analytical, or learned:MODEL.skops (`mapspace train`): the learned model "
              "picks among the analytical search's top-K mappings.")
@guarded("compile")
def compile_(model, target, passes, strategy, budget, time_per_op, seed, seq, out,
             as_json, frontend, emit_code, run_code, cost) -> None:
    """Compile MODEL (an ONNX file or a zoo model) for a target: search each distinct MAC
    shape once, cost every op, and write a per-op report into --out.

    With --frontend relax an ONNX file is imported by TVM
    (tvm.relax.frontend.onnx.from_onnx) and the Relax module read by
    compiler.frontends.relax.from_relax; from Python, compile_model(mod, target) takes a
    tvm.IRModule directly."""
    from compiler.pipeline import compile_model
    from compiler.report import HOST_NOTE, frame, write_report
    from cost_models.search import check_limits

    check_limits(budget, time_per_op, where="options", keys=("--budget", "--time-per-op"))
    _check_seed(seed)
    _check_out_dir(out)
    rerank = _rerank_model(cost, target, None)
    with _progress(as_json) as bar:
        task = bar.add_task(f"scheduling {model}", total=None)

        def progress(done: int, total: int, label: str) -> None:
            bar.update(task, completed=done, total=total, description=f"searched {label}")

        result = compile_model(model, target, passes=passes, strategy=strategy, budget=budget,
                               time_per_op=time_per_op, seed=seed, seq=seq, progress=progress,
                               frontend=frontend, cost=rerank)
    if run_code and not emit_code:
        raise MapspaceError("--run needs --emit", where="options", key="--run")
    with _staged_code(out, emit_code) as code:  # moved into --out/code after the report
        emission = _emit_model(result, code, run_code, seed) if code else None
        paths = write_report(result, out)
    if emission is not None:
        paths += _code_paths(emission, out)
    if as_json:
        rows = frame(result, totals=False, mapping=False)
        click.echo(json.dumps({
            "model": result.model, "target": result.target, "passes": result.passes,
            "strategy": result.strategy, "cost": cost, "evaluations": result.evaluations,
            "steps": dict(result.step_seconds), "totals": result.totals, "note": HOST_NOTE,
            "files": [str(p) for p in paths],
            "ops": json.loads(rows.to_json(orient="records")),
            **({"emit": emission.summary()} if emission is not None else {}),
        }))
    else:
        _compile_table(result)
        if emission is not None:
            _emission_summary(emission)
        for p in paths:
            click.echo(f"wrote {p}")
    if emission is not None and emission.run is not None and not emission.run.correct:
        raise SystemExit(1)


def _staged_code(out: str, emit: bool):
    """With ``--emit``, a temporary folder beside ``out`` for the code, moved to
    ``out/code`` (replacing an older one) when the block succeeds, removed otherwise
    (:func:`mapspace.atomic.staged_dir`); else a block yielding ``None``."""
    from mapspace.atomic import staged_dir

    if not emit:
        return nullcontext()
    dest = Path(out).resolve()
    return staged_dir(dest / "code", beside=dest.parent, replace=True,
                      prefix=".mapspace-code-")


def _emit_model(result, code_dir, run: bool, seed: int):
    from compiler.emit_model import emit_model

    return emit_model(result, code_dir, run=run, seed=seed)


def _code_paths(emission, out: str) -> list:
    """Where the emitted files are once the code folder is moved into ``out``."""
    dest = Path(out).resolve() / "code"
    return [dest / f.relative_to(emission.code_dir) for f in emission.files]


def _emission_summary(emission) -> None:
    click.echo(f"emitted {len(emission.kernels)} {emission.target} kernels "
               f"({emission.dtype}) for {sum(len(k.ops) for k in emission.kernels)} MAC ops")
    r = emission.run
    if r is None:
        return
    host = ", ".join(f"{k} {n}" for k, n in r.host_kinds)
    click.echo(f"run: {'CORRECT' if r.correct else 'MISMATCH'} against numpy "
               f"(max |error| {r.max_abs_error:.3g}, outputs up to {r.reference_max_abs:.3g}); "
               f"{r.kernel_calls} kernel calls, {r.seconds:.1f} s")
    click.echo(f"  on the host (numpy): {host}"
               + (f"; MAC ops without a kernel: {', '.join(r.host_mac_ops)}"
                  if r.host_mac_ops else ""))
    if r.sqnr_db is not None:
        click.echo(f"  int8 model vs fp32 model: SQNR {r.sqnr_db:.1f} dB")
    if "mvin_bytes" in r.counters:
        c = r.counters
        click.echo(f"  gemmini intrinsics: mvin {c.get('mvin', 0):,} "
                   f"({c['mvin_bytes']:,} B), mvout {c.get('mvout', 0):,} "
                   f"({c.get('mvout_bytes', 0):,} B), preload {c.get('preload', 0):,}, "
                   f"compute {c.get('compute_preloaded', 0) + c.get('compute_accumulated', 0):,}")


@main.command("passes")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@guarded("passes")
def passes_(as_json: bool) -> None:
    """List the graph passes `mapspace compile --passes` accepts."""
    try:
        from compiler.passes.manager import describe
    except ImportError:
        raise MapspaceError("graph passes are not available in this build",
                            where="passes") from None
    info = describe()
    if isinstance(info, str):
        items = [(line, "") for line in info.splitlines() if line.strip()]
    elif isinstance(info, dict):
        items = [(str(k), str(v)) for k, v in info.items()]
    else:
        items = [(str(x[0]), str(x[1]) if len(x) > 1 else "") if isinstance(x, tuple | list)
                 else (str(x), "") for x in info]
    if as_json:
        click.echo(json.dumps([{"name": n, "description": d} for n, d in items]))
        return
    for n, d in items:
        click.echo(f"{n:24s} {d}".rstrip())


@main.command("emit")
@click.option("--target", required=True, type=click.Choice(emitting_targets()))
@click.option("--workload", "workload_name", required=True, help="e.g. bert-base/ffn1")
@click.option("--mapping", "mapping_path", type=click.Path(), default=None,
              help="Timeloop mapping YAML (else the cost model picks one).")
@click.option("--strategy", default=None, help="Search strategy when no --mapping (anneal).")
@click.option("--dtype", type=click.Choice(list(DTYPE_BITS)), default=None,
              help="Element type (default: the target's first; cpu float32, gemmini int8).")
@click.option("--budget", type=int, default=None, help="Search evaluations.")
@click.option("--time", "time_limit", type=float, default=None, help="Search seconds.")
@click.option("--out", required=True, help="Folder for the trace, source and module.")
@click.option("--run", "run_", is_flag=True, help="Build, run, check against numpy, time.")
@click.option("--seed", type=int, default=0, help="Random seed, 0 to 2**63-1.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.option("--cost", default="analytical", show_default=True,
              help="analytical, or learned:MODEL.skops (`mapspace train`): the learned model "
              "picks among the analytical search's top-K mappings.")
@guarded("emit")
def emit_(target, workload_name, mapping_path, strategy, dtype, budget, time_limit, out, run_,
          seed, as_json, cost) -> None:
    """Schedule one workload for a target through TVM: trace, source, module (and a run)."""
    from compiler.emit import run_cli
    from cost_models.search import check_limits

    check_limits(budget, time_limit, where="options", keys=("--budget", "--time"))
    _check_seed(seed)
    res = run_cli(target=target, workload_name=workload_name, mapping_path=mapping_path,
                  strategy=strategy, dtype=dtype, budget=budget, time_limit=time_limit,
                  out=out, run=run_, seed=seed, cost=cost)
    if as_json:
        click.echo(json.dumps(res.summary()))
        return
    from rich.console import Console

    con = Console(width=120)
    con.print(f"[bold]{res.op}[/bold] ({res.kind}, {res.dtype}) on {res.target}")
    for f in res.files:
        con.print(f"  wrote {f}")
    if res.correct is not None:
        con.print(f"  correct: {res.correct} (max abs error {res.max_abs_error:.3g})")
    if res.seconds is not None:
        con.print(f"  kernel time: {res.seconds * 1e3:.3f} ms (median)")
    for k, v in res.counters.items():
        con.print(f"  {k}: {v}")


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

    _check_out(out, "--out")
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
@guarded("measure")
def measure_(target, workload, problem, n, seed, out, top_k, objective, dtype, repeat, warmup,
             jobs, as_json) -> None:
    """Build, run and time N mappings that span a target's space (the analytical model's
    top-K and stratified random valid ones); one dataset row each, keyed, appended."""
    from compiler.measure import measurable, measure

    if (problem is None) == (workload is None):
        raise MapspaceError("give exactly one of --workload NAME or --problem P.yaml",
                            where="options")
    _check_seed(seed)
    _check_out(out, "--out")
    measurable(target, dtype)  # a target that cannot run here fails before any work
    from mapspace.problem_yaml import load_problem
    from mapspace.workloads import workload as zoo_workload

    p = load_problem(problem) if problem else zoo_workload(workload)
    with _progress(as_json) as bar:
        tasks: dict[str, Any] = {}

        def progress(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = bar.add_task(f"{stage} {p.name}", total=total)
            bar.update(tasks[stage], completed=done)

        res = measure(target, p, n=n, seed=seed, out=out, workload=workload or p.name,
                      dtype=dtype, top_k=top_k, objective=objective, jobs=jobs,
                      repeat=repeat, warmup=warmup, progress=progress)
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


@main.command("run")
@click.argument("model_dir", type=click.Path())
@click.option("--inputs", "inputs", type=click.Path(), required=True,
              help="An .npz file with one array per model input (by input name).")
@click.option("--out", "out", type=click.Path(), required=True,
              help="The .npz file to write the outputs into (by output name).")
@click.option("--reference", is_flag=True,
              help="Also run numpy in place of the kernels and report the largest difference "
              "(int8 targets: must be bit-identical).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@guarded("run")
def run_(model_dir, inputs, out, reference, as_json) -> None:
    """Run a compiled model (the --out folder of `mapspace compile`) on the inputs in an
    .npz file, with the model's own weights: MAC ops through the target's kernels, the rest
    on the host.  Writes the outputs as .npz."""
    from compiler.compiled import CompiledModel

    _check_out(out, "--out")
    if not out.endswith(".npz"):
        raise MapspaceError(f"expected a .npz path, found {out!r}", where="--out")
    try:
        with np.load(inputs, allow_pickle=False) as z:
            feeds = {k: z[k] for k in z.files}
    except FileNotFoundError:
        raise MapspaceError(f"no such file {inputs!r}", where="--inputs") from None
    except (OSError, ValueError) as e:
        raise MapspaceError(f"{inputs!r} is not a readable .npz file ({e})",
                            where="--inputs") from None
    model = CompiledModel.load(model_dir)
    t0 = time.perf_counter()
    got = model.run(feeds)
    seconds = time.perf_counter() - t0
    diff = None
    if reference:
        ref = model.run(feeds, reference=True)
        diff = max(float(np.abs(got[t].astype(np.float64) - ref[t]).max()) for t in got)
    _atomic_write(out, lambda tmp: np.savez(tmp, **got))
    summary = {"model": model.model, "target": model.target, "seconds": seconds,
               "outputs": {k: list(v.shape) for k, v in got.items()}, "out": out,
               **({"max_abs_difference_vs_numpy": diff} if diff is not None else {})}
    if as_json:
        click.echo(json.dumps(summary))
        return
    click.echo(f"ran {model.model} on {model.target} in {seconds:.2f} s")
    for k, v in got.items():
        click.echo(f"  {k}: {list(v.shape)} {v.dtype}")
    if diff is not None:
        click.echo(f"  largest difference from numpy in place of the kernels: {diff:.3g}")
    click.echo(f"wrote {out}")


if __name__ == "__main__":
    main()
