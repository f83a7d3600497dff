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

from cost_models.nest import DataMovement, analyze
from cost_models.pricing import Cost, Prices, price
from mapspace.arch import Arch
from mapspace.mapping import MappingBatch
from mapspace.problem import Problem
from mapspace.validity import Validity, check


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
        """Summary and per-level breakdown of mapping ``i`` as plain data (JSON-ready)."""
        dm, c = self.movement, self.cost
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
                    "energy_pJ": float(c.energy_breakdown[i, l, t]),
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
            "energy_pJ": float(c.energy[i]),
            "edp": float(c.edp[i]),
            "utilization": float(c.utilization[i]),
            "macs": int(dm.macs[i] * dm.compute_instances[i]),
            "mac_energy_pJ": float(c.mac_energy[i]),
            "leak_energy_pJ": float(c.leak_energy[i]),
            "compute_instances": int(dm.compute_instances[i]),
            "levels": levels,
        }


def evaluate(problem: Problem, arch: Arch, mappings: MappingBatch,
             prices: Prices | None = None, validity: Validity | None = None) -> Evaluation:
    """Evaluate ``B`` mappings; shapes are checked by :class:`MappingBatch`.

    Invalid mappings are analysed with their factors clamped to 1 so the batch never
    raises; their costs are reported as NaN by :meth:`Evaluation.frame`.  ``validity`` is
    the result of :func:`mapspace.validity.check` on these mappings when the caller already
    has it (it is not recomputed).
    """
    if mappings.num_levels != arch.num_levels or mappings.num_dims != problem.num_dims \
            or mappings.num_tensors != problem.num_tensors:
        from mapspace.errors import MapspaceError
        raise MapspaceError(
            f"mapping batch has {mappings.num_levels} levels, {mappings.num_dims} dims, "
            f"{mappings.num_tensors} tensors; expected {arch.num_levels}, "
            f"{problem.num_dims}, {problem.num_tensors}", where="evaluate")
    if validity is None:
        validity = check(problem, arch, mappings)
    safe = mappings
    if not validity.valid.all():
        safe = MappingBatch(np.maximum(mappings.temporal, 1), np.maximum(mappings.spatial, 1),
                            mappings.order, mappings.spatial_x, mappings.keep)
    dm = analyze(problem, arch, safe)
    return Evaluation(problem, arch, validity, dm, price(arch, dm, prices))
