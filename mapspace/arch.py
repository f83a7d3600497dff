"""The machine, as a type: storage levels (outermost first) and a compute unit.

All quantities follow Timeloop's conventions: a level's *word* is ``datawidth`` bits, an
access moves one *block* of ``width`` bits (``block_size = width // datawidth`` words), and
capacity is ``depth * block_size`` words per instance.  Bandwidths are words per cycle per
instance (``None`` = unlimited).  Energies are pJ per *vector* access (a block), as in a
Timeloop ERT; the pricing rounds access counts up to whole blocks, as Timeloop does.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from functools import cached_property

from mapspace.errors import MapspaceError

# Bounds that keep the int64 kernels exact (the derivation is in mapspace/problem.py): at
# most 2**24 instances per level (a fan-out's distinct-tile enumeration allocates one word
# per child), blocks and word widths up to 2**16 bits, capacities up to 2**48 words (exact
# in float64, compared with tile sizes <= 2**48), bandwidths (words/cycle) either 0 or
# None (unlimited) or at least 2**-14, so that ``count / bandwidth <= 2**62``.
MAX_INSTANCES = 2**24
MAX_BITS = 2**16
MAX_CAPACITY = 2**48
MIN_BANDWIDTH = 2.0**-14
#: Largest energy per action (pJ): 1 kJ, so that energy sums over up to 2**48 accesses per
#: level and tensor, and leakage over 2**62 cycles, stay finite floats (JSON has no inf).
MAX_ENERGY = 1e15


def _energy_ok(v: object) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) \
        and 0 <= v <= MAX_ENERGY


def _check_int(v: object, lo: int, hi: int, where: str, key: str) -> None:
    if not isinstance(v, int) or isinstance(v, bool) or not lo <= v <= hi:
        raise MapspaceError(f"must be an integer from {lo:,} to {hi:,}, found {v!r}",
                            where=where, key=key)


@dataclass(frozen=True)
class ActionEnergy:
    """pJ per vector access of a storage level (read, write = fill, update) and leakage/cycle;
    each from 0 to :data:`MAX_ENERGY`."""

    read: float = 0.0
    write: float = 0.0
    update: float = 0.0
    leak: float = 0.0

    def __post_init__(self) -> None:
        for k in ("read", "write", "update", "leak"):
            v = getattr(self, k)
            if not _energy_ok(v):
                raise MapspaceError(f"must be a number of pJ from 0 to 1e15, found {v!r}",
                                    where="energy", key=k)


@dataclass(frozen=True)
class StorageLevel:
    """One storage level.  ``instances = mesh_x * mesh_y`` (across the whole chip).

    ``cluster_size`` instances share one physical ``width``-bit access (Timeloop's
    ``cluster_size``): energy is charged per utilized cluster.

    ``depth=None`` means unbounded (DRAM).  ``multiple_buffering`` divides the usable
    capacity, like Timeloop's ``effective size``.  A Timeloop ``dummy_storage`` level
    (``cls="dummy_storage"``, see :attr:`is_dummy`) is an ordinary level that a mapping
    normally has bypass every tensor; it exists to carry a spatial fan-out of its own.
    """

    name: str
    cls: str = "SRAM"
    instances: int = 1
    mesh_x: int = 1
    mesh_y: int = 1
    depth: int | None = None
    width: int = 8
    datawidth: int = 8
    read_bandwidth: float | None = None
    write_bandwidth: float | None = None
    shared_bandwidth: float | None = None
    multiple_buffering: float = 1.0
    energy: ActionEnergy = ActionEnergy()
    cluster_size: int = 1

    def __post_init__(self) -> None:
        where = f"architecture level {self.name!r}"
        for k in ("instances", "mesh_x", "mesh_y", "width", "datawidth"):
            v = getattr(self, k)
            if not isinstance(v, int) or v < 1:
                raise MapspaceError(f"must be a positive integer, found {v!r}", where=where, key=k)
        for k, hi in (("instances", MAX_INSTANCES), ("mesh_x", MAX_INSTANCES),
                      ("mesh_y", MAX_INSTANCES), ("datawidth", MAX_BITS),
                      ("cluster_size", MAX_INSTANCES)):
            _check_int(getattr(self, k), 1, hi, where, k)
        _check_int(self.width, 1, MAX_BITS * MAX_BITS, where, "width")
        if self.depth is not None:
            if not isinstance(self.depth, int) or isinstance(self.depth, bool) \
                    or self.depth < 1:
                raise MapspaceError(f"must be positive, found {self.depth!r}", where=where,
                                    key="depth")
            if self.depth * self.block_size > MAX_CAPACITY:
                raise MapspaceError(
                    f"{self.depth:,} x {self.block_size}-word blocks is more than the "
                    f"supported 2**48 = {MAX_CAPACITY:,} words (the 64-bit kernels' range)",
                    where=where, key="depth")
        mb = self.multiple_buffering
        if isinstance(mb, bool) or not isinstance(mb, int | float) or not math.isfinite(mb) \
                or not 1 <= mb <= MAX_CAPACITY:
            raise MapspaceError(f"must be a finite number >= 1, found {mb!r}", where=where,
                                key="multiple_buffering")
        for k in ("read_bandwidth", "write_bandwidth", "shared_bandwidth"):
            v = getattr(self, k)
            if v is None:
                continue
            if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v) \
                    or v < 0 or 0 < v < MIN_BANDWIDTH:
                raise MapspaceError(f"must be 0 (unlimited) or a finite number of words per "
                                    f"cycle from 2**-14, found {v!r}", where=where, key=k)
        if not isinstance(self.energy, ActionEnergy):
            raise MapspaceError(f"expected an ActionEnergy, found {self.energy!r}",
                                where=where, key="energy")
        if self.mesh_x * self.mesh_y != self.instances:
            raise MapspaceError(
                f"meshX x meshY = {self.mesh_x} x {self.mesh_y} does not equal the "
                f"{self.instances} instances", where=where,
            )
        if self.width % self.datawidth and self.width > self.datawidth:
            raise MapspaceError(
                f"width {self.width} is not a multiple of datawidth {self.datawidth}",
                where=where, key="width",
            )

    @property
    def is_dummy(self) -> bool:
        """A Timeloop ``dummy_storage`` level (Timeloop hides these in its reports)."""
        return self.cls == "dummy_storage"

    @property
    def block_size(self) -> int:
        """Words per vector access."""
        return max(1, self.width // self.datawidth)

    @property
    def capacity(self) -> int | None:
        """Usable words per instance (``None`` = unbounded)."""
        if self.depth is None:
            return None
        return int(self.depth * self.block_size / self.multiple_buffering)


@dataclass(frozen=True)
class ComputeUnit:
    """The MAC array: ``instances = mesh_x * mesh_y``; ``energy`` pJ per MAC."""

    name: str = "MACC"
    instances: int = 1
    mesh_x: int = 1
    mesh_y: int = 1
    datawidth: int = 8
    energy: float = 0.0
    leak: float = 0.0

    def __post_init__(self) -> None:
        where = f"compute unit {self.name!r}"
        for k in ("instances", "mesh_x", "mesh_y"):
            _check_int(getattr(self, k), 1, MAX_INSTANCES, where, k)
        _check_int(self.datawidth, 1, MAX_BITS, where, "datawidth")
        for k in ("energy", "leak"):
            if not _energy_ok(getattr(self, k)):
                raise MapspaceError(f"must be a number of pJ from 0 to 1e15, found "
                                    f"{getattr(self, k)!r}", where=where, key=k)
        if self.mesh_x * self.mesh_y != self.instances:
            raise MapspaceError(
                f"meshX x meshY = {self.mesh_x} x {self.mesh_y} does not equal the "
                f"{self.instances} instances", where=where,
            )


@dataclass(frozen=True)
class Arch:
    """Storage levels from outermost (index 0, usually DRAM) to innermost, and the compute.

    ``cycle_seconds`` converts cycles to seconds for reports (Timeloop's
    ``global_cycle_seconds``).  Timeloop ``dummy_storage`` levels are ordinary entries of
    ``levels`` (:attr:`StorageLevel.is_dummy`), at their place in the hierarchy.
    ``energy_known`` is False when no energy table was given (every energy is then the
    0 pJ default, which is not a measurement: reports say "unknown", JSON has null).
    """

    name: str
    levels: tuple[StorageLevel, ...]
    compute: ComputeUnit
    cycle_seconds: float = 1e-9
    energy_known: bool = True

    def __post_init__(self) -> None:
        where = f"architecture {self.name!r}"
        if not self.levels:
            raise MapspaceError("needs at least one storage level", where=where)
        cs = self.cycle_seconds
        if isinstance(cs, bool) or not isinstance(cs, int | float) or not math.isfinite(cs) \
                or cs <= 0:
            raise MapspaceError(f"must be a finite number of seconds > 0, found {cs!r}",
                                where=where, key="cycle_seconds")
        names = [lv.name for lv in self.levels]
        if len(set(names)) != len(names):
            raise MapspaceError(f"duplicate level names in {names}", where=where)
        chain = [*self.levels, self.compute]
        for outer, inner in zip(chain, chain[1:], strict=False):
            if inner.mesh_x % outer.mesh_x or inner.mesh_y % outer.mesh_y:
                raise MapspaceError(
                    f"{inner.name!r} mesh {inner.mesh_x}x{inner.mesh_y} is not a whole "
                    f"multiple of its parent {outer.name!r} mesh {outer.mesh_x}x{outer.mesh_y}",
                    where=where,
                )

    @property
    def num_levels(self) -> int:
        return len(self.levels)

    @cached_property
    def level_names(self) -> tuple[str, ...]:
        return tuple(lv.name for lv in self.levels)

    def level_index(self, name: str) -> int:
        try:
            return self.level_names.index(name)
        except ValueError:
            raise MapspaceError(
                f"unknown level {name!r} (levels are {', '.join(self.level_names)})",
                where=f"architecture {self.name!r}",
            ) from None

    def fanout(self, level: int) -> tuple[int, int]:
        """``(x, y)`` fan-out from one instance of ``level`` to the next inner level/compute."""
        outer = self.levels[level]
        inner = self.levels[level + 1] if level + 1 < self.num_levels else self.compute
        return inner.mesh_x // outer.mesh_x, inner.mesh_y // outer.mesh_y

    def with_level(self, name: str, **changes: object) -> Arch:
        i = self.level_index(name)
        levels = list(self.levels)
        levels[i] = replace(levels[i], **changes)
        return replace(self, levels=tuple(levels))
