"""``mapspace explore`` into a dataset folder (``--out DIR``, ``--resume DIR``,
``--workers N``, ``--cluster ADDRESS``): :func:`compiler.shards.explore_dataset` on an
execution backend, with Ctrl-C keeping the finished shards and printing the command that
resumes."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

import click

from compiler.cli.common import edp_plot, interrupted, mapping_yaml_text, progress_bar
from mapspace.errors import MapspaceError

# compiler.shards (pandas, pyarrow) and dask are imported inside the function


def backend_options(fn):
    """``--workers N`` and ``--cluster ADDRESS`` (:mod:`compiler.backend`)."""
    fn = click.option("--cluster", help="A running Dask scheduler, e.g. tcp://HOST:8786 "
                      "(reached within 5 s or refused).")(fn)
    return click.option("--workers", type=int, help="Start a local Dask cluster of N worker "
                        "processes (default: in this process, on the local cores).")(fn)


def dataset_mode(out: str | None, resume: str | None, workers: int | None,
                 cluster: str | None) -> bool:
    """Whether ``explore`` writes a dataset folder: ``--resume``, a backend option, or an
    ``--out`` that is not a ``.parquet`` file."""
    if resume or workers is not None or cluster is not None:
        return True
    return bool(out) and not str(out).lower().endswith(".parquet")


def resume_command(folder: str) -> str:
    """This command line with ``--out X`` replaced by ``--resume X``."""
    args = sys.argv[1:] if "explore" in sys.argv[1:2] else []
    if not args:
        return f"mapspace explore <the same options> --resume {shlex.quote(folder)}"
    out, i = [], 0
    while i < len(args):
        a = args[i]
        if a in ("--out", "--resume") and i + 1 < len(args):
            i += 2
            continue
        if a.startswith(("--out=", "--resume=")):
            i += 1
            continue
        out.append(a)
        i += 1
    return shlex.join(["mapspace", *out, "--resume", folder])


def explore_folder(p, a, cons, samples: int, seed: int, *, out: str | None,
                   resume: str | None, workers: int | None, cluster: str | None,
                   plot: str | None, as_json: bool) -> dict:
    """Run (or resume) the dataset in ``out``/``resume``; the summary (``best_mapping_yaml``,
    ``out``, ``plot`` added)."""
    from compiler.backend import check_backend_options
    from compiler.shards import explore_dataset, finished_shards, read_dataset
    from mapspace.atomic import staged_file

    check_backend_options(workers, cluster)
    if out and resume:
        raise MapspaceError("give --out DIR for a new run or --resume DIR to continue one, "
                            "not both", where="options", key="--resume")
    if not (out or resume):
        raise MapspaceError("--workers/--cluster write a dataset folder: give --out DIR",
                            where="options", key="--out")
    if out and str(out).lower().endswith(".parquet"):
        raise MapspaceError("--workers/--cluster write a dataset folder, not one .parquet "
                            "file: give --out DIR", where="options", key="--out")
    folder = str(resume or out)
    try:
        with progress_bar(as_json) as bar:
            task = bar.add_task(f"sampling {p.name}", total=samples)
            run = explore_dataset(folder, p, a, cons, samples, seed, resume=bool(resume),
                                  workers=workers, cluster=cluster,
                                  progress=lambda have, drawn: bar.update(task,
                                                                           completed=have))
    except KeyboardInterrupt:
        n = len(finished_shards(Path(folder))) if (Path(folder) / "shards").is_dir() else 0
        interrupted("explore", f"{n} finished shard(s) kept in {folder}; resume with: "
                    f"{resume_command(folder)}")
    s = run.summary
    s["best_mapping_yaml"] = mapping_yaml_text(run.best_mapping, p, a)
    if plot:
        edp = read_dataset(folder, ["edp"])["edp"].to_numpy()
        with staged_file(plot, where="--plot") as tmp:
            edp_plot(edp, f"{p.name} on {a.name}: {s['valid']:,} random valid mappings", tmp,
                     "svg" if str(plot).lower().endswith(".svg") else "png")
        s["plot"] = plot
    return s
