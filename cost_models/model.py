"""The analytical model end to end: validity -> data movement -> pricing, for a batch.

``evaluate(problem, arch, mappings)`` returns an :class:`Evaluation` holding the arrays;
``Evaluation.frame()`` is the batch as a pandas DataFrame (one row per mapping) and
``Evaluation.stats(i)`` the per-level, per-tensor breakdown of one mapping.  A single
mapping is a batch of one, so the scalar and batch paths are the same code.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from cost_models.nest import DataMovement
from cost_models.pricing import Cost, Prices
from mapspace.arch import Arch
from mapspace.errors import MapspaceError
from mapspace.mapping import MappingBatch
from mapspace.problem import Problem
from mapspace.validity import Validity

# the numba kernels (cost_models._*_kernel, mapspace.kernels) are imported in the functions
# that run them: numba takes ~0.15 s to import and `import cost_models` stays light


@dataclass(frozen=True)
class Evaluation:
    """Validity, data movement and cost of ``B`` mappings (invalid rows priced as NaN)."""

    problem: Problem
    arch: Arch
    validity: Validity
    movement: DataMovement
    cost: Cost

    def __len__(self) -> int:
        return len(self.validity.valid)

    @property
    def valid(self) -> np.ndarray:
        return self.validity.valid

    def frame(self) -> pd.DataFrame:
        """One row per mapping: ``valid, reasons, cycles, energy_pJ, edp, utilization`` and
        per level and tensor ``<level>.<tensor>.{reads,fills,updates}`` (per instance)."""
        v = self.valid
        nan = np.where(v, 1.0, np.nan)
        cols: dict[str, np.ndarray] = {
            "valid": v,
            "reasons": self.validity.reasons,
            "cycles": np.where(v, self.cost.cycles, -1),
            "energy_pJ": self.cost.energy * nan,
            "edp": self.cost.edp * nan,
            "utilization": self.cost.utilization * nan,
        }
        dm = self.movement
        for l, lv in enumerate(self.arch.levels):
            for t, name in enumerate(self.problem.tensor_names):
                for what, arr in (("reads", dm.reads), ("fills", dm.fills),
                                  ("updates", dm.updates)):
                    cols[f"{lv.name}.{name}.{what}"] = arr[:, l, t]
        return pd.DataFrame(cols)

    def stats(self, i: int = 0) -> dict:
        """Summary and per-level breakdown of mapping ``i`` as plain data (JSON-ready).

        Without an energy table (``arch.energy_known`` false) every energy and the EDP are
        ``None`` (JSON null), not the 0 pJ the zero default would price."""
        dm, c = self.movement, self.cost
        known = self.arch.energy_known

        def pj(x: float) -> float | None:
            return float(x) if known else None
        levels = []
        for l, lv in enumerate(self.arch.levels):
            tensors = {}
            for t, name in enumerate(self.problem.tensor_names):
                if not dm.keep[i, l, t]:
                    continue
                tensors[name] = {
                    "tile": int(dm.tile[i, l, t]),
                    "reads": int(dm.reads[i, l, t]),
                    "fills": int(dm.fills[i, l, t]),
                    "updates": int(dm.updates[i, l, t]),
                    "energy_pJ": pj(c.energy_breakdown[i, l, t]),
                }
            levels.append({
                "name": lv.name,
                "instances": int(dm.instances[i, l]),
                "cycles": int(c.level_cycles[i, l]),
                "tensors": tensors,
            })
        return {
            "valid": bool(self.valid[i]),
            "reasons": self.validity.explain(i, self.problem, self.arch),
            "cycles": int(c.cycles[i]),
            "energy_pJ": pj(c.energy[i]),
            "edp": pj(c.edp[i]),
            "utilization": float(c.utilization[i]),
            "macs": int(dm.macs[i] * dm.compute_instances[i]),
            "mac_energy_pJ": pj(c.mac_energy[i]),
            "leak_energy_pJ": pj(c.leak_energy[i]),
            "compute_instances": int(dm.compute_instances[i]),
            "levels": levels,
        }


def kernel_arrays(problem: Problem, arch: Arch, p: Prices) -> tuple[np.ndarray, ...]:
    """The constant inputs of the compiled evaluation, in kernel argument order: validity
    (sizes, fan-out X/Y, capacity, bits, datawidth), projections (term tables, dense
    coefficients of live terms, read-write flags) and prices."""
    from mapspace.kernels import projection_tables

    L = arch.num_levels
    tdim, tcoef, dense = projection_tables(problem.projections, problem.sizes)
    fan = np.array([arch.fanout(l) for l in range(L)], np.int64).reshape(L, 2)
    cap = np.array([-1 if lv.capacity is None else lv.capacity for lv in arch.levels],
                   np.int64)
    return (np.array(problem.sizes, np.int64), fan[:, 0].copy(), fan[:, 1].copy(), cap,
            np.array([t.bits or 0 for t in problem.tensors], np.int64),
            np.array([lv.datawidth for lv in arch.levels], np.int64),
            tdim, tcoef, dense, np.array([t.read_write for t in problem.tensors]),
            p.block, p.read, p.write, p.update, p.leak, p.clusters, p.read_bw, p.write_bw,
            p.shared_bw, p.mac)


def evaluate(problem: Problem, arch: Arch, mappings: MappingBatch,
             prices: Prices | None = None, static: tuple[np.ndarray, ...] | None = None
             ) -> Evaluation:
    """Evaluate ``B`` mappings in one compiled pass (``cost_models/_evaluate_kernel.py``):
    validity, then data movement and pricing of the valid ones.

    Invalid mappings keep their validity detail; their counts are zero and their costs NaN
    (cycles 0), so the batch never raises.  ``static``: :func:`kernel_arrays` of
    ``(problem, arch, prices)`` when the caller keeps them (a search evaluates hundreds of
    batches of one problem: they cost ~0.3 ms to rebuild per batch).
    """
    from cost_models._evaluate_kernel import evaluate_kernel

    if mappings.num_levels != arch.num_levels or mappings.num_dims != problem.num_dims \
            or mappings.num_tensors != problem.num_tensors:
        raise MapspaceError(
            f"mapping batch has {mappings.num_levels} levels, {mappings.num_dims} dims, "
            f"{mappings.num_tensors} tensors; expected {arch.num_levels}, "
            f"{problem.num_dims}, {problem.num_tensors}", where="evaluate")
    B, L, D = mappings.temporal.shape
    T = problem.num_tensors
    p = prices or Prices.of(arch)
    static = kernel_arrays(problem, arch, p) if static is None else static
    reasons = np.empty(B, np.int64)
    bad_dims = np.empty((B, D), bool)
    over = np.empty((B, L), bool)
    usage = np.empty((B, L), np.int64)
    unkept = np.empty((B, T), bool)
    tile = np.empty((B, L, T), np.int64)
    reads, fills, updates, partition = (np.empty_like(tile) for _ in range(4))
    instances = np.empty((B, L), np.int64)
    macs = np.empty(B, np.int64)
    cinst = np.empty(B, np.int64)
    cycles = np.empty(B, np.int64)
    energy, mac_e, leak = np.empty(B), np.empty(B), np.empty(B)
    level_cycles = np.empty((B, L), np.int64)
    breakdown = np.empty((B, L, T))
    m = mappings
    evaluate_kernel(
        np.ascontiguousarray(m.temporal), np.ascontiguousarray(m.spatial),
        np.ascontiguousarray(m.order), np.ascontiguousarray(m.spatial_x),
        np.ascontiguousarray(m.keep), *static,
        reasons, bad_dims, over, usage, unkept,
        tile, reads, fills, updates, partition, instances, macs, cinst,
        cycles, energy, mac_e, leak, level_cycles, breakdown)
    validity = Validity(valid=reasons == 0, reasons=reasons, bad_dims=bad_dims,
                        over_fanout=over, usage=usage, capacity=static[3], unkept=unkept)
    dm = DataMovement(tile=tile, reads=reads, fills=fills, updates=updates,
                      partition=partition, instances=instances, macs=macs,
                      compute_instances=cinst, keep=m.keep)
    total_macs = macs * cinst
    with np.errstate(divide="ignore", invalid="ignore"):
        utilization = np.where(validity.valid, total_macs / (cycles * p.mac_instances), np.nan)
    cost = Cost(cycles=cycles, energy=energy, edp=energy * 1e-12 * cycles,
                utilization=utilization, mac_energy=mac_e, leak_energy=leak,
                level_cycles=level_cycles, energy_breakdown=breakdown)
    return Evaluation(problem, arch, validity, dm, cost)
