"""What every ``mapspace`` command shares: the group, the one error format (one line on
stderr, exit code 2), input resolution, option checks, progress and output helpers."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from functools import wraps
from typing import Any

import click
import numpy as np
import yaml

from mapspace.arch_yaml import load_arch
from mapspace.constraints import NONE
from mapspace.constraints_yaml import load_constraints
from mapspace.errors import MapspaceError
from mapspace.yamlio import load_yaml
from targets import default_constraints, load_target

# Kept inside the commands, so that `mapspace --help` starts fast: modules that pull pandas
# (cost_models, compiler.explore/emit/measure/pipeline/report), networkx
# (compiler.compiled/emit_model, compiler.passes), rich (0.05-0.08 s a module), matplotlib
# (~0.4 s), and the few that only some commands use (the zoo, the problem and mapping
# YAML readers, mapspace.atomic with shutil/tempfile: ~10 ms together).


def fail(cmd: str, message: str) -> None:
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
                fail(cmd, str(e))

        return run

    return deco



@click.group()
@click.version_option(package_name="mapspace")
def main() -> None:
    """mapspace: mapspace exploration and scheduling for DNN accelerators."""


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


def check_seed_option(seed: int) -> None:
    from cost_models.search import check_seed

    check_seed(seed, where="options", key="--seed")


def progress_bar(as_json: bool):
    """A transient progress bar on a terminal; silent otherwise (``--json``, pipes, tests:
    even a disabled rich Progress prints an empty line when it stops)."""
    from rich.console import Console
    from rich.progress import Progress

    quiet = as_json or not sys.stdout.isatty()
    return Progress(transient=True, disable=quiet, console=Console(quiet=quiet))


def print_stats(stats: dict, problem_name: str, arch_name: str) -> None:
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



def constraints_for(target: str | None, arch_path: str | None, constraints: str | None,
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


def check_out(path: str | None, what: str) -> None:
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


def atomic_write(path: str, write: Callable[[str], None]) -> None:
    """Write through a temporary file in the same folder, then rename (never half-written:
    :func:`mapspace.atomic.staged_file`)."""
    from mapspace.atomic import staged_file

    with staged_file(path) as tmp:
        write(tmp)


def mapping_yaml_text(mappings, problem, arch) -> str:
    from mapspace.mapping_yaml import mapping_to_list

    return yaml.safe_dump({"mapping": mapping_to_list(mappings, problem, arch)},
                          sort_keys=False, default_flow_style=None, width=100)


def edp_plot(edp, title: str, path: str) -> None:
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


INPUT_OPTIONS = [
    click.option("--arch", type=click.Path(), help="Timeloop architecture YAML."),
    click.option("--ert", type=click.Path(), help="Timeloop energy reference table YAML."),
    click.option("--problem", type=click.Path(), help="Timeloop problem YAML."),
    click.option("--constraints", type=click.Path(), help="Timeloop mapspace constraints YAML "
                 "(added to the target's defaults)."),
    click.option("--target", help="A built-in target (see `mapspace targets`)."),
    click.option("--workload", help="A zoo operator (see `mapspace workloads`)."),
]


def input_options(fn):
    for opt in reversed(INPUT_OPTIONS):
        fn = opt(fn)
    return fn



def rerank_model(cost: str, target: str | None, arch):
    """The model ``--cost`` names (``None``: analytical), checked against the target (or,
    for an arch file, the arch's name) and the arch's levels."""
    from cost_models.learned import cost_model_of

    return cost_model_of(cost, target=target, arch=arch, where="--cost")


def learned_info(cost: str, rerank, result, p, a) -> dict:
    """``cost`` and, with a learned model, what it chose and predicts (for ``map``)."""
    if rerank is None:
        return {"cost": cost}
    c = rerank.cost(p, a, result.best_mapping)
    return {"cost": cost, "learned": {
        "model": cost.split(":", 1)[1], "choice": int(result.rerank_choice or 0),
        "candidates": 0 if result.top is None else len(result.top),
        "cycles": float(c.cycles[0]), "edp": float(c.edp[0])}}


def check_out_dir(out: str) -> None:
    """Fail before any work when the report folder ``out`` cannot be created or written."""
    path = os.path.abspath(out)
    if os.path.exists(path) and not os.path.isdir(path):
        raise MapspaceError(f"{out!r} exists and is not a folder", where="--out")
    folder = path if os.path.isdir(path) else os.path.dirname(path)
    if not os.path.isdir(folder):
        raise MapspaceError(f"folder {folder!r} does not exist", where="--out")
    if not os.access(folder, os.W_OK):
        raise MapspaceError(f"folder {folder!r} is not writable", where="--out")

