"""Hardware design-space sweeps: a model compiled on every design point of a Gemmini-like
base, a table, and the Pareto front against an area proxy.

``sweep(model, vary=["pe=8x8,16x16", "scratchpad=64KiB,256KiB", ...])`` builds the
cartesian product of the ``--vary`` values over the base target's design
(:func:`base_design`), checks every point before any work (:func:`design_arch`), and
compiles the model on each with :func:`compiler.pipeline.compile_model` -- one search per
distinct shape and design, shared by the model's identical layers, with an explicit
evaluation budget and seed (deterministic).  Design points are tasks on the execution
backend (:mod:`compiler.backend`).

**What a design point changes** (the base's other figures stay):

* ``pe=RxC`` -- a ``R x C`` weight-stationary array: ``R*C`` PEs and registers, ``C``
  accumulator columns.  As in Gemmini (``DIM``-wide rows), the scratchpad row is ``C``
  INT8 words: its per-access width, read/write bandwidth (rows per cycle as the base) and
  per-access energy (same energy per word) scale with ``C``;
* ``scratchpad=BYTES`` -- scratchpad capacity (a whole number of ``C``-byte rows, at least
  ``R`` of them: one weight block of the array);
* ``accumulator=BYTES`` -- accumulator capacity over its ``C`` columns (32-bit words, a
  whole number of ``C x 4``-byte rows);
* ``dram-bw=WORDS`` -- DRAM bandwidth in words (bytes) per cycle (it also prices the host
  round trip of unfused softmax/LayerNorm, :func:`cost_models.fused.host_nonlinear_cost`).

Energies per word are the base's at every size (the ERT is not rescaled with capacity):
what a larger SRAM costs is in the area proxy.  The design's emitter rules (Gemmini's
``DIM = 16`` rows) are not applied: a sweep explores designs that have no emitter.

**Area proxy** (:func:`area_mm2`), from Accelergy area reference tables (ART) shipped with
the Accelergy-Project/timeloop-accelergy-exercises reference outputs (45 nm; copies in
``/work/shared/reference/sparseloop/*/ART.yaml``):

* SRAM: :data:`SRAM_UM2_PER_BIT` = 348,892.5 um^2 / (12,800 x 64 bit) = 0.42589 um^2 per
  bit -- Eyeriss's 100 KiB ``shared_glb`` (CACTI-derived through Accelergy); the 256 KiB
  ``SMEM`` of the sparse-tensor-core example gives 0.408 (with its metadata bits), so a
  constant per-bit figure is within 5 % over this range;
* PE: :data:`PE_UM2` = 417.0 um^2 (``intmac``, 8-bit multiplier, 16-bit adder) + 30.62
  um^2 (an 8-bit register, the example's ``LRF``) = 447.62 um^2.

Scratchpad and accumulator bits are priced at the SRAM figure; DRAM, wires and control are
not in the proxy.
"""

from __future__ import annotations

import functools
import itertools
import math
import re
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd

from compiler.backend import backend
from compiler.pipeline import compile_model
from mapspace.arch import ActionEnergy, Arch
from mapspace.errors import MapspaceError
from targets import load_target
from targets.registry import Target, get_target, register, unregister

#: um^2 per SRAM bit (Accelergy ART, Eyeriss shared_glb, 45 nm; see the module doc)
SRAM_UM2_PER_BIT = 348_892.5 / (12_800 * 64)
#: um^2 per PE: intmac (417.0) + an 8-bit register (30.62), Accelergy ART, 45 nm
PE_UM2 = 417.0 + 30.62
#: the --vary keys
VARY_KEYS: tuple[str, ...] = ("pe", "scratchpad", "accumulator", "dram-bw")
#: the objectives (the column of the Pareto front)
OBJECTIVES: dict[str, str] = {"edp": "edp", "latency": "cycles", "energy": "energy_pJ"}
#: evaluations per distinct shape and design unless told
DEFAULT_BUDGET = 4000
MAX_POINTS = 4096
_LEVELS = ("DRAM", "Scratchpad", "Accumulator", "Registers")
_UNITS = {"b": 1, "kib": 1 << 10, "kb": 1000, "mib": 1 << 20, "mb": 1000 ** 2}


@dataclass(frozen=True)
class Design:
    """One design point: a ``pe_rows x pe_cols`` array, SRAM bytes, DRAM words/cycle."""

    pe_rows: int
    pe_cols: int
    scratchpad_bytes: int
    accumulator_bytes: int
    dram_bw: float

    @property
    def name(self) -> str:
        return (f"pe{self.pe_rows}x{self.pe_cols}-sp{_size(self.scratchpad_bytes)}"
                f"-acc{_size(self.accumulator_bytes)}-bw{self.dram_bw:g}")

    @property
    def pes(self) -> int:
        return self.pe_rows * self.pe_cols

    @property
    def sram_bytes(self) -> int:
        return self.scratchpad_bytes + self.accumulator_bytes


def _size(n: int) -> str:
    for unit, k in (("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n % k == 0:
            return f"{n // k}{unit}"
    return f"{n}B"


def area_mm2(d: Design) -> float:
    """The area proxy of a design, mm^2 (PEs and SRAM bits; see the module doc)."""
    return (d.pes * PE_UM2 + 8 * d.sram_bytes * SRAM_UM2_PER_BIT) / 1e6


def parse_bytes(text: str, key: str) -> int:
    """``64KiB``, ``1MiB``, ``512B``, ``1000`` -> bytes (KB/MB decimal); MapspaceError."""
    m = re.fullmatch(r"\s*(\d+)\s*([A-Za-z]*)\s*", text)
    if not m or m.group(2).lower() not in (*_UNITS, ""):
        raise MapspaceError(f"{text!r} is not a size (e.g. 64KiB, 1MiB, 512B)",
                            where="--vary", key=key)
    n = int(m.group(1)) * _UNITS[m.group(2).lower() or "b"]
    if not 1 <= n <= 1 << 40:
        raise MapspaceError(f"{text!r} must be 1 B to 1 TiB", where="--vary", key=key)
    return n


def _parse_value(key: str, text: str) -> object:
    if key == "pe":
        m = re.fullmatch(r"\s*(\d+)\s*[xX]\s*(\d+)\s*", text)
        if not m or not all(1 <= int(g) <= 1024 for g in m.groups()):
            raise MapspaceError(f"{text!r} is not an array ROWSxCOLS of 1..1024 each "
                                "(e.g. 16x16)", where="--vary", key="pe")
        return int(m.group(1)), int(m.group(2))
    if key in ("scratchpad", "accumulator"):
        return parse_bytes(text, key)
    try:
        bw = float(text)
    except ValueError:
        bw = math.nan
    if not (math.isfinite(bw) and 2 ** -14 <= bw <= 2 ** 20):
        raise MapspaceError(f"{text!r} is not a bandwidth in words per cycle "
                            "(2**-14 .. 2**20)", where="--vary", key="dram-bw")
    return bw


def parse_vary(vary: list[str] | tuple[str, ...]) -> dict[str, list[object]]:
    """``["pe=8x8,16x16", "dram-bw=8,16"]`` -> values per key (MapspaceError naming the
    key for an unknown key, a key given twice, a bad or empty value)."""
    out: dict[str, list[object]] = {}
    for item in vary:
        key, eq, values = item.partition("=")
        key = key.strip()
        if key not in VARY_KEYS:
            raise MapspaceError(f"unknown key {key!r} in {item!r} (keys: "
                                f"{', '.join(VARY_KEYS)})", where="--vary")
        if not eq or not values.strip():
            raise MapspaceError(f"{key} has no values (e.g. {key}=...,...): an empty sweep",
                                where="--vary", key=key)
        if key in out:
            raise MapspaceError(f"{key} is given twice", where="--vary", key=key)
        vals = [_parse_value(key, v) for v in values.split(",") if v.strip()]
        if not vals:
            raise MapspaceError(f"{key} has no values: an empty sweep", where="--vary",
                                key=key)
        out[key] = list(dict.fromkeys(vals))
    if not out:
        raise MapspaceError("an empty sweep: give at least one --vary KEY=V1,V2,... (keys: "
                            f"{', '.join(VARY_KEYS)})", where="--vary")
    return out


def base_design(arch: Arch) -> Design:
    """The design point of a Gemmini-like arch (levels DRAM, Scratchpad, Accumulator,
    Registers); MapspaceError for another shape of arch."""
    missing = [n for n in _LEVELS if n not in arch.level_names]
    if missing:
        raise MapspaceError(f"a sweep needs a Gemmini-like base with levels "
                            f"{', '.join(_LEVELS)}; {arch.name!r} lacks {', '.join(missing)}",
                            where="--base")
    dram, sp, acc, _ = (arch.levels[arch.level_index(n)] for n in _LEVELS)
    bw = dram.shared_bandwidth or dram.read_bandwidth
    return Design(arch.compute.mesh_y, arch.compute.mesh_x,
                  int(sp.depth * sp.width // 8),
                  int(acc.instances * acc.depth * acc.width // 8), float(bw or 0))


def designs(base: Design, values: dict[str, list[object]]) -> list[Design]:
    """The cartesian product of the values over ``base`` (keys in :data:`VARY_KEYS`
    order, the last varying fastest)."""
    keys = [k for k in VARY_KEYS if k in values]
    out = []
    for combo in itertools.product(*(values[k] for k in keys)):
        d = base
        for k, v in zip(keys, combo, strict=True):
            if k == "pe":
                d = replace(d, pe_rows=v[0], pe_cols=v[1])  # type: ignore[index]
            elif k == "scratchpad":
                d = replace(d, scratchpad_bytes=v)
            elif k == "accumulator":
                d = replace(d, accumulator_bytes=v)
            else:
                d = replace(d, dram_bw=v)
        out.append(d)
    if len(out) > MAX_POINTS:
        raise MapspaceError(f"{len(out)} design points; at most {MAX_POINTS}", where="--vary")
    return out


def design_arch(base: Arch, d: Design) -> Arch:
    """``base`` changed to design ``d`` (see the module doc); MapspaceError naming the
    design when it is impossible."""
    b = base_design(base)
    R, C = d.pe_rows, d.pe_cols
    dram, sp, acc, reg = (base.levels[base.level_index(n)] for n in _LEVELS)

    def bad(why: str) -> MapspaceError:
        return MapspaceError(f"impossible design {d.name}: {why}", where="--vary")

    if d.scratchpad_bytes % C or d.scratchpad_bytes // C < R:
        raise bad(f"the scratchpad is organised in rows as wide as the array ({C} B for "
                  f"{C} columns) and must hold a whole number of them, at least {R} (one "
                  f"{R}x{C} weight block); {d.scratchpad_bytes} B is "
                  + ("not a whole number of rows" if d.scratchpad_bytes % C else
                     f"{d.scratchpad_bytes // C} row(s)"))
    acc_row = C * acc.width // 8
    if d.accumulator_bytes % acc_row:
        raise bad(f"the accumulator's rows span the {C} array columns ({acc_row} B of "
                  f"{acc.width}-bit words); {d.accumulator_bytes} B is not a whole number "
                  "of them")
    scale = C / b.pe_cols

    def wider(e: ActionEnergy) -> ActionEnergy:
        return ActionEnergy(e.read * scale, e.write * scale, e.update * scale, e.leak * scale)

    levels = list(base.levels)
    levels[base.level_index("DRAM")] = replace(
        dram, shared_bandwidth=d.dram_bw if dram.shared_bandwidth is not None else None,
        read_bandwidth=dram.read_bandwidth if dram.shared_bandwidth is not None else d.dram_bw)
    levels[base.level_index("Scratchpad")] = replace(
        sp, width=C * sp.datawidth, depth=d.scratchpad_bytes * 8 // (C * sp.datawidth),
        read_bandwidth=sp.read_bandwidth * scale if sp.read_bandwidth else None,
        write_bandwidth=sp.write_bandwidth * scale if sp.write_bandwidth else None,
        energy=wider(sp.energy))
    levels[base.level_index("Accumulator")] = replace(
        acc, instances=C, mesh_x=C, depth=d.accumulator_bytes // acc_row)
    levels[base.level_index("Registers")] = replace(reg, instances=R * C, mesh_x=C,
                                                    mesh_y=R)
    compute = replace(base.compute, instances=R * C, mesh_x=C, mesh_y=R)
    try:
        return replace(base, name=f"{base.name}-{d.name}", levels=tuple(levels),
                       compute=compute)
    except MapspaceError as e:
        raise bad(str(e)) from None


# ------------------------------------------------------------------ one design (a task)
def _design_arch_for(arch: Arch, _bits: int) -> Arch:
    return arch


def run_design(model: str, base: str, d: Design, *, passes: str, budget: int, seed: int,
               seq: int | None, strategy: str, objective: str = "edp"
               ) -> tuple[dict, list[dict]]:
    """Compile ``model`` on design ``d``: the design's row and its distinct shapes'."""
    arch = design_arch(load_target(base), d)
    name = f"sweep:{d.name}"
    register(Target(name, f"sweep point {d.name}", get_target(base).folder,
                    arch_for=functools.partial(_design_arch_for, arch)))
    try:
        r = compile_model(model, name, passes=passes, strategy=strategy, budget=budget,
                          time_per_op=None, seed=seed, seq=seq, objective=objective,
                          client=False)  # inside a task: no nested tasks on a worker
    finally:
        unregister(name)
    t = r.totals if isinstance(r.totals, dict) else r.totals()
    row = {"design": d.name, **asdict(d), "pes": d.pes, "sram_bytes": d.sram_bytes,
           "area_mm2": area_mm2(d), "cycles": int(t["cycles"]),
           "energy_pJ": float(t["energy_pJ"]), "edp": float(t["edp"]),
           "utilization": float(t["utilization"]), "distinct_shapes": t["distinct_shapes"],
           "searches": t["searches"], "evaluations": r.evaluations}
    layers: dict[int, dict] = {}
    for op in r.rows:
        if op.on_host:
            continue
        g = layers.setdefault(op.shape_group, {
            "design": d.name, "shape_group": op.shape_group, "op": op.searched_as,
            "kind": op.kind, "problem": op.problem, "ops": 0, "fused": "",
            "macs_each": int(op.macs), "cycles_each": int(op.cycles), "cycles": 0, "energy_pJ": 0.0,
            "utilization": float(op.utilization)})
        g["ops"] += 1
        g["cycles"] += int(op.cycles)
        g["energy_pJ"] += float(op.energy_pJ)
        g["fused"] = ",".join(dict(op.attrs).get("fused", ()) or ())
    return row, list(layers.values())


# ------------------------------------------------------------------ the sweep
@dataclass(frozen=True)
class SweepResult:
    """The design table (one row per point, ``pareto`` marks the front), the per-shape
    table, and the objective column."""

    table: pd.DataFrame
    layers: pd.DataFrame
    objective: str
    seconds: float

    @property
    def front(self) -> pd.DataFrame:
        return self.table[self.table["pareto"]].sort_values("area_mm2")


def pareto(area: np.ndarray, cost: np.ndarray) -> np.ndarray:
    """``bool[n]``: points no other point beats on both (smaller or equal on both, smaller
    on one)."""
    area, cost = np.asarray(area, float), np.asarray(cost, float)
    le = (area[None, :] <= area[:, None]) & (cost[None, :] <= cost[:, None])
    lt = (area[None, :] < area[:, None]) | (cost[None, :] < cost[:, None])
    return ~(le & lt).any(axis=1)


def plan(base: str, vary: list[str] | tuple[str, ...]) -> list[tuple[Design, Arch]]:
    """Every design point with its arch, checked (MapspaceError before any work)."""
    arch = get_target(base, where="--base").arch()
    points = designs(base_design(arch), parse_vary(vary))
    return [(d, design_arch(arch, d)) for d in points]


def sweep(model: str, *, base: str = "gemmini", vary: list[str] | tuple[str, ...],
          passes: str = "", objective: str = "edp", budget: int = DEFAULT_BUDGET,
          seed: int = 0, seq: int | None = None, strategy: str = "anneal",
          workers: int | None = None, cluster: str | None = None, client: object = None,
          progress: Callable[[int, int, str], None] | None = None) -> SweepResult:
    """Compile ``model`` on every design point (see the module doc)."""
    import time

    if objective not in OBJECTIVES:
        raise MapspaceError(f"must be one of {', '.join(OBJECTIVES)}, found {objective!r}",
                            where="--objective")
    if not 1 <= budget <= 1 << 40:
        raise MapspaceError(f"must be 1 to 2**40, found {budget}", where="--budget")
    t0 = time.perf_counter()
    points = plan(base, vary)
    rows: dict[int, dict] = {}
    layers: dict[int, list[dict]] = {}
    with backend(workers, cluster, client) as be:
        args = ((model, base, d, passes, budget, seed, seq, strategy, objective)
                for d, _ in points)
        for i, (row, lay) in be.imap(_run, args, name="sweep-design"):
            rows[i], layers[i] = row, lay
            if progress:
                progress(len(rows), len(points), row["design"])
    table = pd.DataFrame([rows[i] for i in range(len(points))])
    col = OBJECTIVES[objective]
    table["pareto"] = pareto(table["area_mm2"].to_numpy(), table[col].to_numpy())
    lay = pd.DataFrame([x for i in range(len(points)) for x in layers[i]])
    return SweepResult(table, lay, objective, time.perf_counter() - t0)


def _run(model: str, base: str, d: Design, passes: str, budget: int, seed: int,
         seq: int | None, strategy: str, objective: str) -> tuple[dict, list[dict]]:
    return run_design(model, base, d, passes=passes, budget=budget, seed=seed, seq=seq,
                      strategy=strategy, objective=objective)


def pareto_plot(result: SweepResult, path: str | Path, title: str = "") -> None:
    """Objective against the area proxy, every point, the front joined (PNG/SVG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t, col = result.table, OBJECTIVES[result.objective]
    fig, ax = plt.subplots(figsize=(7, 4.5))
    ax.scatter(t["area_mm2"], t[col], s=18, c="0.6", label="design points")
    f = result.front
    ax.plot(f["area_mm2"], f[col], "o-", c="C3", label="Pareto front")
    for _, r in f.iterrows():
        ax.annotate(r["design"], (r["area_mm2"], r[col]), fontsize=6,
                    xytext=(3, 3), textcoords="offset points")
    ax.set_xlabel("area proxy (mm^2, 45 nm: PEs + SRAM bits)")
    ax.set_ylabel({"edp": "EDP (J x cycles)", "latency": "cycles",
                   "energy": "energy (pJ)"}[result.objective])
    ax.set_yscale("log")
    ax.margins(x=0.25)                      # room for the labels of the outermost points
    ax.set_title(title or f"{len(t)} design points")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


__all__ = ["DEFAULT_BUDGET", "OBJECTIVES", "PE_UM2", "SRAM_UM2_PER_BIT", "VARY_KEYS", "Design",
           "SweepResult", "area_mm2", "base_design", "design_arch", "designs", "parse_bytes",
           "parse_vary", "pareto", "pareto_plot", "plan", "run_design", "sweep"]
