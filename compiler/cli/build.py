"""Commands that compile, emit and run: ``compile``, ``passes``, ``emit``, ``run``."""

from __future__ import annotations

import json
import time
from contextlib import nullcontext
from pathlib import Path

import click
import numpy as np

from compiler.cli.common import (
    atomic_write,
    check_memory,
    check_out_dir,
    check_outputs,
    check_seed_option,
    guarded,
    interrupted,
    main,
    output,
    parse_dims,
    progress_bar,
    rerank_model,
)
from compiler.cli.dataset import backend_options
from mapspace.errors import Interrupted, MapspaceError
from targets.registry import DTYPE_BITS, emitting_targets

# Kept inside the commands, so that `mapspace --help` starts fast: modules that pull pandas
# (cost_models, compiler.explore/emit/measure/pipeline/report), networkx
# (compiler.compiled/emit_model, compiler.passes), rich (0.05-0.08 s a module), matplotlib
# (~0.4 s), and the few that only some commands use (the zoo, the problem and mapping
# YAML readers, mapspace.atomic with shutil/tempfile: ~10 ms together).


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
              "cpsat).")
@click.option("--budget", type=int, help="Evaluations per distinct shape (default: the "
              "mapper's, cost_models.search.DEFAULT_BUDGET); the same seed and budget give the "
              "same report on any machine.")
@click.option("--time-per-op", type=float, default=None,
              help="Also stop each shape's search after this many seconds (off by default: "
              "a time limit makes the result depend on the machine and its load).")
@click.option("--seed", type=int, default=0, show_default=True,
              help="Random seed, 0 to 2**63-1.")
@click.option("--seq", type=int, help="Sequence length of a zoo transformer (default 512).")
@click.option("--dim", "dims", multiple=True, metavar="NAME=N",
              help="Size of a symbolic (dynamic) dimension of an ONNX model, e.g. --dim "
              "batch=1 (repeat for several).")
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
@backend_options
@guarded("compile")
def compile_(model, target, passes, strategy, budget, time_per_op, seed, seq, out,
             as_json, frontend, emit_code, run_code, cost, dims=(), workers=None,
             cluster=None) -> None:
    """Compile MODEL (an ONNX file or a zoo model) for a target: search each distinct MAC
    shape once, cost every op, and write a per-op report into --out.

    With --frontend relax an ONNX file is imported by TVM
    (tvm.relax.frontend.onnx.from_onnx) and the Relax module read by
    compiler.frontends.relax.from_relax; from Python, compile_model(mod, target) takes a
    tvm.IRModule directly."""
    from compiler.backend import check_backend_options
    from compiler.pipeline import compile_model
    from compiler.report import HOST_NOTE, frame, write_report
    from cost_models.search import check_limits

    check_limits(budget, time_per_op, where="options", keys=("--budget", "--time-per-op"))
    check_seed_option(seed)
    check_backend_options(workers, cluster)
    dim_values = parse_dims(dims)
    check_out_dir(out)
    if run_code and not emit_code:
        raise MapspaceError("--run needs --emit", where="--run")
    from targets.registry import get_target

    get_target(target, where="--target")  # an unknown target names the option
    rerank = rerank_model(cost, target, None)
    with progress_bar(as_json) as bar:
        task = bar.add_task(f"scheduling {model}", total=None)

        def progress(done: int, total: int, label: str) -> None:
            bar.update(task, completed=done, total=total, description=f"searched {label}")

        try:
            result = compile_model(model, target, passes=passes, strategy=strategy,
                                   budget=budget, time_per_op=time_per_op, seed=seed, seq=seq,
                                   progress=progress, frontend=frontend, cost=rerank,
                                   dim_values=dim_values, workers=workers,
                                   cluster=cluster)
        except Interrupted as e:  # Ctrl-C/SIGTERM: keep the shapes searched so far
            _write_searched(e, out)
    if run_code:  # the run holds every tensor (float64 at worst), the numpy reference too
        check_memory(sum(t.size for t in result.graph.tensors.values()), 16, key="--run",
                     unit="tensor elements")
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


def _write_searched(stop, out: str) -> None:
    """An interrupted compile: the shapes searched so far (their ops, sizes and best
    mappings) into ``out/searched.yaml`` (staged; the rest of ``out`` untouched), then the
    one line, exit code 130."""
    import yaml

    from mapspace.atomic import staged_dir

    name = "searched.yaml"
    with staged_dir(out, where="--out") as tmp:
        (tmp / name).write_text(yaml.safe_dump(stop.partial, sort_keys=False, width=100,
                                               default_flow_style=None))
    interrupted("compile", f"wrote the best mapping of each to {Path(out) / name} (no report)",
                stop)


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
    check_seed_option(seed)
    check_outputs(output(out, "--out", folder=True), inputs={"--mapping": mapping_path})
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

    check_outputs(output(out, "--out"), inputs={"--inputs": inputs})
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
    graph = model.source_graph or model.graph  # what run() executes
    check_memory(sum(t.size for t in graph.tensors.values()),
                 16 if reference else 8, key="MODEL_DIR", unit="tensor elements")
    t0 = time.perf_counter()
    got = model.run(feeds)
    seconds = time.perf_counter() - t0
    diff = None
    if reference:
        ref = model.run(feeds, reference=True)
        diff = max(float(np.abs(got[t].astype(np.float64) - ref[t]).max()) for t in got)
    atomic_write(out, lambda tmp: np.savez(tmp, **got))
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
