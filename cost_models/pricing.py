"""Pricing: data-movement counts -> cycles, energy (pJ), EDP, utilization (Timeloop rules).

Pure functions over :class:`~cost_models.nest.DataMovement`; no loop-nest knowledge here.

* Energy of a level and tensor: each action's per-instance count is rounded up to whole
  vector accesses (``ceil(count / block_size)``), priced at the ERT's per-vector energy
  (reads at ``read``, fills at ``write``, updates at ``update``) and multiplied by the
  utilized clusters (``min(utilized instances, instances / cluster_size)``; with no
  clustering, the utilized instances).  Leakage: the ERT's per-cycle ``leak`` times the
  run's cycles times the level's *utilized* instances.  MACs: compute energy per MAC times
  the MACs; Timeloop charges the MAC array no leakage.  Networks cost nothing (Timeloop's
  inferred legacy networks default to zero wire, router and adder energy).
* Cycles of a level: the compute cycles (MACs per compute instance), stretched when the
  per-instance traffic needs more than the level's bandwidth: reads against
  ``read_bandwidth``, fills + updates against ``write_bandwidth``, all of them against
  ``shared_bandwidth`` (words per cycle).  The run takes the slowest level.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cost_models.nest import DataMovement
from mapspace.arch import Arch

# cost_models._pricing_kernel is imported in price(): numba takes ~0.15 s to import and
# `import cost_models` stays light


@dataclass(frozen=True)
class Prices:
    """Per-level arrays from an :class:`~mapspace.arch.Arch` (``L`` levels)."""

    block: np.ndarray        # int64[L] words per vector access
    read: np.ndarray         # float64[L] pJ per vector read
    write: np.ndarray        # float64[L] pJ per vector fill
    update: np.ndarray       # float64[L] pJ per vector update
    leak: np.ndarray         # float64[L] pJ per cycle per instance
    clusters: np.ndarray     # int64[L] physical clusters (instances / cluster_size)
    read_bw: np.ndarray      # float64[L] words/cycle/instance (inf = unlimited)
    write_bw: np.ndarray
    shared_bw: np.ndarray
    mac: float               # pJ per MAC
    mac_instances: int

    @staticmethod
    def of(arch: Arch) -> Prices:
        lv = arch.levels
        inf = float("inf")

        def bw(x: float | None) -> float:
            return inf if x is None or x <= 0 else float(x)

        return Prices(
            block=np.array([x.block_size for x in lv], np.int64),
            read=np.array([x.energy.read for x in lv]),
            write=np.array([x.energy.write for x in lv]),
            update=np.array([x.energy.update for x in lv]),
            leak=np.array([x.energy.leak for x in lv]),
            clusters=np.array([max(1, x.instances // x.cluster_size) for x in lv], np.int64),
            read_bw=np.array([bw(x.read_bandwidth) for x in lv]),
            write_bw=np.array([bw(x.write_bandwidth) for x in lv]),
            shared_bw=np.array([bw(x.shared_bandwidth) for x in lv]),
            mac=arch.compute.energy, mac_instances=arch.compute.instances,
        )


@dataclass(frozen=True)
class Cost:
    """Costs of ``B`` mappings.  ``energy_breakdown: float64[B, L, T]`` pJ per level and
    tensor (dynamic), ``level_cycles: int64[B, L]``; the rest ``[B]``."""

    cycles: np.ndarray
    energy: np.ndarray
    edp: np.ndarray
    utilization: np.ndarray
    mac_energy: np.ndarray
    leak_energy: np.ndarray
    level_cycles: np.ndarray
    energy_breakdown: np.ndarray


def price(arch: Arch, dm: DataMovement, prices: Prices | None = None) -> Cost:
    """Cycles, energy (pJ), EDP (J x cycles) and utilization from data movement.

    Runs compiled and in parallel over the batch (``cost_models/_pricing_kernel.py``).
    """
    from cost_models._pricing_kernel import pricing_kernel

    p = prices or Prices.of(arch)
    B, L, T = dm.reads.shape
    cycles = np.zeros(B, np.int64)
    energy = np.zeros(B)
    mac_energy = np.zeros(B)
    leak = np.zeros(B)
    level_cycles = np.zeros((B, L), np.int64)
    breakdown = np.zeros((B, L, T))
    pricing_kernel(dm.reads, dm.fills, dm.updates, dm.instances, dm.macs, dm.compute_instances,
                   p.block, p.read, p.write, p.update, p.leak, p.clusters, p.read_bw,
                   p.write_bw, p.shared_bw, p.mac, cycles, energy, mac_energy, leak,
                   level_cycles, breakdown)
    total_macs = dm.macs * dm.compute_instances
    # in floats: cycles x instances may pass 2**63 (the same value when exact, below 2**53)
    utilization = total_macs / (cycles * float(p.mac_instances))
    edp = energy * 1e-12 * cycles
    return Cost(cycles=cycles, energy=energy, edp=edp, utilization=utilization,
                mac_energy=mac_energy, leak_energy=leak, level_cycles=level_cycles,
                energy_breakdown=breakdown)
