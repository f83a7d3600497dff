"""The ``mapspace`` command line.  Every command catches the project's error types once,
prints one line to stderr and exits with code 2; nothing is written half-way."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from functools import wraps
from typing import Any

import click

from mapspace.errors import MapspaceError


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
    from targets import list_targets

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
    from mapspace.arch_yaml import load_arch
    from mapspace.problem_yaml import load_problem

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
        from targets import load_target

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
        from mapspace.workloads import workload as get

        p = get(workload)
    else:
        raise MapspaceError("a problem is needed: --problem P.yaml, --workload NAME or "
                            "--input processed.yaml", where="options")
    return p, a


def _print_stats(stats: dict, problem_name: str, arch_name: str) -> None:
    from rich.console import Console
    from rich.table import Table

    con = Console(width=140)
    con.print(f"[bold]{problem_name}[/bold] on [bold]{arch_name}[/bold]")
    con.print(f"  cycles       {stats['cycles']:,}")
    con.print(f"  energy       {stats['energy_pJ']:,.2f} pJ  ({stats['energy_pJ'] / 1e6:.4f} uJ)")
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
                          f"{t['energy_pJ']:,.1f}")
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


if __name__ == "__main__":
    main()
