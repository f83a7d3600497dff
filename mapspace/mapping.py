"""How a problem runs on an arch: per storage level, temporal and spatial loop factors,
temporal loop order, the X/Y split of the spatial loops, and which tensors the level keeps.

Everything is a :class:`MappingBatch` of ``B`` mappings held as numpy arrays (struct of
arrays); one mapping is ``B == 1``.  Level index 0 is the outermost level (DRAM), as in
:class:`~mapspace.arch.Arch`.

Shapes (``L`` levels, ``D`` dimensions, ``T`` tensors):

========== ================ =============================================================
field      shape / dtype    meaning
========== ================ =============================================================
temporal   int64[B, L, D]   factor of dim ``d`` in level ``l``'s temporal loops
spatial    int64[B, L, D]   factor of dim ``d`` in the fan-out below level ``l``
order      int64[B, L, D]   level ``l``'s temporal loops, innermost first (dim indices)
spatial_x  bool[B, L, D]    spatial factor of dim ``d`` at level ``l`` goes along X (else Y)
keep       bool[B, L, T]    level ``l`` keeps tensor ``t`` (else bypasses it)
========== ================ =============================================================
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mapspace.errors import MapspaceError


@dataclass(frozen=True)
class MappingBatch:
    """``B`` mappings as arrays; shapes in the module docstring, checked once here."""

    temporal: np.ndarray
    spatial: np.ndarray
    order: np.ndarray
    spatial_x: np.ndarray
    keep: np.ndarray

    def __post_init__(self) -> None:
        t = self.temporal
        if t.ndim != 3:
            raise MapspaceError(f"temporal must be int64[B, L, D], found shape {t.shape}",
                                where="MappingBatch")
        B, L, D = t.shape
        for name, dt in (("spatial", np.int64), ("order", np.int64), ("spatial_x", np.bool_)):
            a = getattr(self, name)
            if a.shape != (B, L, D) or a.dtype != dt:
                raise MapspaceError(
                    f"{name} must be {np.dtype(dt).name}[{B}, {L}, {D}], found "
                    f"{a.dtype.name}{list(a.shape)}", where="MappingBatch")
        if t.dtype != np.int64:
            raise MapspaceError(f"temporal must be int64, found {t.dtype}", where="MappingBatch")
        if self.keep.ndim != 3 or self.keep.shape[:2] != (B, L) or self.keep.dtype != np.bool_:
            raise MapspaceError(
                f"keep must be bool[{B}, {L}, T], found {self.keep.dtype.name}"
                f"{list(self.keep.shape)}", where="MappingBatch")

    # ----------------------------------------------------------------- shape
    def __len__(self) -> int:
        return self.temporal.shape[0]

    @property
    def num_levels(self) -> int:
        return self.temporal.shape[1]

    @property
    def num_dims(self) -> int:
        return self.temporal.shape[2]

    @property
    def num_tensors(self) -> int:
        return self.keep.shape[2]

    def __getitem__(self, idx: int | slice | np.ndarray) -> MappingBatch:
        """Rows of the batch; an integer gives a batch of one (the scalar mapping)."""
        if isinstance(idx, int | np.integer):
            idx = slice(int(idx), int(idx) + 1) if idx != -1 else slice(-1, None)
        return MappingBatch(
            temporal=self.temporal[idx], spatial=self.spatial[idx], order=self.order[idx],
            spatial_x=self.spatial_x[idx], keep=self.keep[idx],
        )

    @staticmethod
    def concat(batches: list[MappingBatch]) -> MappingBatch:
        return MappingBatch(
            **{f: np.concatenate([getattr(b, f) for b in batches])
               for f in ("temporal", "spatial", "order", "spatial_x", "keep")}
        )

    # ------------------------------------------------------------- derived
    @property
    def factors(self) -> np.ndarray:
        """``int64[B, L, D]``: temporal x spatial factor per level and dim."""
        return self.temporal * self.spatial

    def extents(self) -> np.ndarray:
        """``int64[B, L+1, D]``: per-dimension extent of each level's tile.

        Level ``l``'s tile spans the temporal and spatial factors of ``l`` and of every
        inner level; index ``L`` is a single MAC (all ones).
        """
        f = self.factors
        inner = np.cumprod(f[:, ::-1, :], axis=1)[:, ::-1, :]
        return np.concatenate([inner, np.ones_like(f[:, :1, :])], axis=1)

    def spatial_xy(self) -> tuple[np.ndarray, np.ndarray]:
        """``(x, y)``: ``int64[B, L]`` products of the spatial factors along X and along Y."""
        x = np.where(self.spatial_x, self.spatial, 1).prod(axis=2)
        y = np.where(self.spatial_x, 1, self.spatial).prod(axis=2)
        return x, y

    def equals(self, other: MappingBatch) -> np.ndarray:
        """``bool[B]``: row-wise equality (loop order compared only where it matters is the
        caller's business; this compares the arrays as stored)."""
        same = np.ones(len(self), dtype=bool)
        for f in ("temporal", "spatial", "order", "spatial_x", "keep"):
            a, b = getattr(self, f), getattr(other, f)
            same &= (a == b).reshape(len(self), -1).all(axis=1)
        return same


def single(temporal: np.ndarray, spatial: np.ndarray, order: np.ndarray,
           spatial_x: np.ndarray, keep: np.ndarray) -> MappingBatch:
    """A batch of one from per-mapping arrays (``[L, D]`` / ``[L, T]``)."""
    return MappingBatch(
        temporal=np.asarray(temporal, dtype=np.int64)[None],
        spatial=np.asarray(spatial, dtype=np.int64)[None],
        order=np.asarray(order, dtype=np.int64)[None],
        spatial_x=np.asarray(spatial_x, dtype=bool)[None],
        keep=np.asarray(keep, dtype=bool)[None],
    )
