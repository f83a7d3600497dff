"""What every ``mapspace`` command shares: the group, the one error format (one line on
stderr, exit code 2), input resolution, option checks, progress and output helpers."""

from __future__ import annotations

import os
import signal
import sys
import threading
from collections.abc import Callable
from contextlib import contextmanager
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


def fail(cmd: str, message: str, code: int = 2) -> None:
    """The one error line: ``mapspace <cmd>: error: <message>`` on stderr, exit ``code``."""
    line = " ".join(str(message).split())  # one line, whatever the message held
    click.echo(f"mapspace {cmd}: error: {line}" if cmd else f"mapspace: error: {line}",
               err=True)
    sys.exit(code)


#: exit code of an interrupted command (128 + SIGINT, as a shell reports Ctrl-C)
EXIT_INTERRUPTED = 130
_signal_seen: list[str] = []


@contextmanager
def _interruptible():
    """SIGINT and SIGTERM raise ``KeyboardInterrupt`` while a command runs (SIGTERM
    otherwise kills Python without a word); the signal's name is kept for the message."""
    def handler(signum: int, _frame: object) -> None:
        _signal_seen.append(signal.Signals(signum).name)
        raise KeyboardInterrupt

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    old = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)
           if signal.getsignal(s) is not signal.SIG_IGN}  # nohup, `cmd &`: stay ignored
    _signal_seen.clear()
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h)


def interrupted(cmd: str, kept: str, stop: object = None) -> None:
    """The one line of an interrupted command: how far it got (``stop``: an
    :class:`mapspace.errors.Interrupted`) and what it kept; exit code 130."""
    name = _signal_seen[-1] if _signal_seen else "SIGINT"
    fail(cmd, f"interrupted ({name})" + (f" {stop}" if stop is not None else "") + f"; {kept}",
         EXIT_INTERRUPTED)


def guarded(cmd: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Turn project errors (bad input) and operating-system errors into one line on stderr
    and exit code 2; Ctrl-C/SIGTERM into one line and exit code 130 (a command that keeps
    a partial result catches :class:`mapspace.errors.Interrupted` itself)."""

    def deco(fn: Callable[..., Any]) -> Callable[..., Any]:
        @wraps(fn)
        def run(*args: Any, **kwargs: Any) -> Any:
            try:
                with _interruptible():
                    return fn(*args, **kwargs)
            except MapspaceError as e:
                fail(cmd, as_options(e, cmd))
            except KeyboardInterrupt:
                interrupted(cmd, "nothing written")
            except MemoryError:
                fail(cmd, "out of memory (give smaller sizes, --samples or --budget)")
            except OSError as e:
                where = f"{e.filename!r}: " if e.filename else ""
                fail(cmd, f"{where}{e.strerror or e}")

        return run

    return deco


#: where an engine error names a function or a keyword, the option the user wrote
WHERE_AS_OPTION = {"make_strategy": "--strategy", "workload": "--workload",
                   "parse_passes": "--passes", "load_target": "--target",
                   "zoo_graph": "MODEL", "sparsify": "--passes"}
KEY_AS_OPTION = {"strategy": "--strategy", "model": "MODEL", "frontend": "--frontend",
                 "budget": "--budget", "time_per_op": "--time-per-op", "seed": "--seed",
                 "top_k": "--top-k", "cost": "--cost", "target": "--target", "seq": "--seq",
                 "objective": "--objective", "time": "--time"}


def as_options(e: MapspaceError, cmd: str) -> str:
    """The message of ``e`` located at the option the user wrote, not at the function or
    keyword inside that raised it (``make_strategy:`` -> ``--strategy:``,
    ``compile: strategy:`` -> ``--strategy:``, ``options: --seed:`` -> ``--seed:``)."""
    where, key = e.where, e.key
    if where in WHERE_AS_OPTION and key in KEY_AS_OPTION:  # zoo_graph: seq: -> --seq:
        where, key = KEY_AS_OPTION[key], None
    elif where in WHERE_AS_OPTION:
        where = WHERE_AS_OPTION[where]
        if where in ("--strategy", "--workload", "--target"):
            key = None
    elif where in ("options", cmd) and key in KEY_AS_OPTION:
        where, key = KEY_AS_OPTION[key], None
    elif where == "options" and key:
        where = None  # "options: --seed: ..." -> "--seed: ..."
    else:
        return str(e)
    return str(MapspaceError(e.detail, where=where, key=key))


class _Group(click.Group):
    """click's group with the one error format: a usage error (unknown option or command,
    a value of the wrong type, a missing argument) is one ``mapspace <cmd>: error:`` line
    with exit code 2, not click's four-line block."""

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True,
             **extra):
        try:
            rv = super().main(args, prog_name or "mapspace", complete_var,
                              standalone_mode=False, **extra)
        except click.exceptions.NoArgsIsHelpError as e:  # a bare `mapspace`: the help
            click.echo(e.ctx.get_help())
            rv = 0
        except click.exceptions.ClickException as e:
            ctx = getattr(e, "ctx", None)
            if ctx is not None:
                cmd = ctx.info_name if ctx.parent is not None else ""
            else:  # some parser errors carry no context: the command is the first word
                words = list(sys.argv[1:] if args is None else args)
                cmd = next((w for w in words if not w.startswith("-")), "")
                cmd = cmd if cmd in self.commands else ""
            hint = ""
            if isinstance(e, click.UsageError):
                hint = f" (see 'mapspace {cmd + ' ' if cmd else ''}--help')"
            fail(cmd, e.format_message() + hint, 2)
        except click.exceptions.Abort:  # Ctrl-C before a command started
            fail("", "interrupted; nothing written", EXIT_INTERRUPTED)
        if not standalone_mode:
            return rv
        sys.exit(rv if isinstance(rv, int) else 0)


@click.group(cls=_Group)
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


def parse_dims(dims) -> dict[str, int]:
    """``--dim NAME=N`` options as ``{NAME: N}``: a name, a size from 1 to 2**31, each
    name once."""
    out: dict[str, int] = {}
    for item in dims or ():
        name, eq, value = str(item).partition("=")
        name = name.strip()
        try:
            n = int(value) if eq else 0
        except ValueError:
            n = 0
        if not name or not 1 <= n <= 2**31:
            raise MapspaceError(f"expected NAME=N with N from 1 to 2**31, found {item!r}",
                                where="--dim")
        if name in out:
            raise MapspaceError(f"{name!r} is given twice", where="--dim")
        out[name] = n
    return out


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


def available_memory() -> int:
    """Bytes this process can still take: the kernel's MemAvailable, less under a cgroup
    (container) limit; the physical memory where neither can be read."""
    avail = None
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    avail = int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    if avail is None:
        try:
            avail = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (OSError, ValueError, AttributeError):
            avail = 1 << 34
    try:
        with open("/sys/fs/cgroup/memory.max") as f:
            limit = f.read().strip()
        with open("/sys/fs/cgroup/memory.current") as f:
            used = int(f.read().strip())
        if limit != "max":
            avail = min(avail, int(limit) - used)
    except (OSError, ValueError):
        pass
    return max(avail, 0)


def _bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB", "PB", "EB"):
        if n < 1000 or unit == "EB":
            return f"{n:,.0f} {unit}" if unit == "B" else f"{n:,.1f} {unit}"
        n /= 1000
    return f"{n:,.1f} EB"


def check_memory(count: int, each: int, *, key: str, unit: str) -> None:
    """Refuse before any work when ``count`` items of about ``each`` bytes do not fit in
    80% of :func:`available_memory` (naming the option ``key`` and the largest count that
    fits)."""
    room = int(0.8 * available_memory())
    if count * each > room:
        raise MapspaceError(f"{count:,} {unit} need about {_bytes(count * each)} of memory "
                            f"({each:,} bytes each); {_bytes(room)} is free for them here: "
                            f"at most {room // each:,}", where="options", key=key)


def sample_bytes(problem, arch) -> int:
    """Peak bytes ``explore`` holds per valid sample: its decisions (drawn, then joined:
    twice), its costs, the table row (and its Parquet copy)."""
    D, L, T = problem.num_dims, arch.num_levels, problem.num_tensors
    decisions = 8 * D + 8 * L * D + L * D + L * T      # factor, order, spatial_x, keep
    row = 8 * (D + 3 * L) + 32                          # table columns + 4 costs
    return 2 * decisions + 2 * row + 32


#: formats ``--plot`` writes (matplotlib's, less those that need more than it ships)
PLOT_FORMATS = ("png", "svg", "svgz", "pdf", "eps", "ps", "jpg", "jpeg", "tif", "tiff", "webp")


def check_outputs(*outputs, inputs: dict | None = None) -> None:
    """Fail before any work when an output cannot be written whole: each of ``outputs``
    (:class:`mapspace.atomic.Output`) is checked, none shares a path with another or with
    one of ``inputs`` (option -> path) (:func:`mapspace.atomic.check_outputs`, the one
    output helper)."""
    from mapspace.atomic import check_outputs as check

    check(*outputs, inputs=inputs)


def output(path: str | None, where: str, *, folder: bool = False, plot: bool = False):
    """An :class:`mapspace.atomic.Output` for ``check_outputs`` (``plot``: one of
    :data:`PLOT_FORMATS` by its suffix, PNG without one)."""
    from mapspace.atomic import Output

    if plot:
        return Output(path, where, formats=PLOT_FORMATS, default_format="png")
    return Output(path, where, folder=folder)


def check_out(path: str | None, what: str) -> None:
    """Fail before any work when ``path`` (one file output) cannot be written."""
    check_outputs(output(path, what))


def atomic_write(path: str, write: Callable[[str], None], where: str = "--out") -> None:
    """Write through a temporary file in the same folder, flushed, then renamed (never
    half-written; OS errors as one line naming ``where``:
    :func:`mapspace.atomic.staged_file`)."""
    from mapspace.atomic import staged_file

    with staged_file(path, where=where) as tmp:
        write(tmp)


def mapping_yaml_text(mappings, problem, arch) -> str:
    from mapspace.mapping_yaml import mapping_to_list

    return yaml.safe_dump({"mapping": mapping_to_list(mappings, problem, arch)},
                          sort_keys=False, default_flow_style=None, width=100)


def edp_plot(edp, title: str, path: str, fmt: str = "png") -> None:
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
    fig.savefig(path, format=fmt, dpi=120)
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
    check_outputs(output(out, "--out", folder=True))
