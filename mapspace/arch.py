"""The machine, as a type: storage levels (outermost first) and a compute unit.

All quantities follow Timeloop's conventions: a level's *word* is ``datawidth`` bits, an
access moves one *block* of ``width`` bits (``block_size = width // datawidth`` words), and
capacity is ``depth * block_size`` words per instance.  Bandwidths are words per cycle per
instance (``None`` = unlimited).  Energies are pJ per *vector* access (a block), as in a
Timeloop ERT; the pricing rounds access counts up to whole blocks, as Timeloop does.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import cached_property

from mapspace.errors import MapspaceError


@dataclass(frozen=True)
class ActionEnergy:
    """pJ per vector access of a storage level (read, write = fill, update) and leakage/cycle."""

    read: float = 0.0
    write: float = 0.0
    update: float = 0.0
    leak: float = 0.0


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
        if self.depth is not None and self.depth < 1:
            raise MapspaceError(f"must be positive, found {self.depth!r}", where=where, key="depth")
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
        if self.mesh_x * self.mesh_y != self.instances:
            raise MapspaceError(
                f"meshX x meshY = {self.mesh_x} x {self.mesh_y} does not equal the "
                f"{self.instances} instances", where=f"compute unit {self.name!r}",
            )


@dataclass(frozen=True)
class Arch:
    """Storage levels from outermost (index 0, usually DRAM) to innermost, and the compute.

    ``cycle_seconds`` converts cycles to seconds for reports (Timeloop's
    ``global_cycle_seconds``).  Timeloop ``dummy_storage`` levels are ordinary entries of
    ``levels`` (:attr:`StorageLevel.is_dummy`), at their place in the hierarchy.
    """

    name: str
    levels: tuple[StorageLevel, ...]
    compute: ComputeUnit
    cycle_seconds: float = 1e-9

    def __post_init__(self) -> None:
        where = f"architecture {self.name!r}"
        if not self.levels:
            raise MapspaceError("needs at least one storage level", where=where)
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
