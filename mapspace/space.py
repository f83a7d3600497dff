"""The mapspace: every mapping of a problem onto an arch that the constraints allow.

A mapping is decoded from *decisions* (:class:`Decisions`), one choice per independent
axis of the space:

* per dimension, a row of its factorization table: the ordered factors over the *slots*
  (each level's temporal loop, and the spatial fan-out of each level that has one) that
  satisfy the per-slot bounds of the constraints and the fan-out of each spatial slot;
* per level, the loop order (innermost first): the constraint's fixed innermost prefix, then
  any permutation of the remaining dimensions;
* per level with a two-dimensional fan-out, whether each dimension's spatial factor goes
  along X or Y (unless a ``split`` fixes it);
* per level and tensor, keep or bypass (unless the constraints fix it; dummy levels keep
  nothing, the outermost level keeps every tensor).

Sampling every axis uniformly and rejecting what is invalid (fan-out products, capacity,
minimum utilization) samples *valid* mappings uniformly.  :meth:`Mapspace.size` counts the
space exactly (Python integers).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property, lru_cache
from math import factorial, prod

import numpy as np

from mapspace.arch import Arch
from mapspace.constraint_check import satisfies
from mapspace.constraints import NONE, Constraints, FactorBound
from mapspace.constraints_yaml import resolve
from mapspace.errors import MapspaceError
from mapspace.mapping import MappingBatch
from mapspace.problem import Problem
from mapspace.validity import Reason, Rule, check

# mapspace.sampler_kernels is imported in decode()/draw(): numba takes ~0.15 s to import
# and `import mapspace` stays light


@dataclass(frozen=True)
class Decisions:
    """Choices of ``B`` mappings: ``factor: int64[B, D]`` rows of the factorization tables,
    ``order: int64[B, L, D]``, ``spatial_x: bool[B, L, D]``, ``keep: bool[B, L, T]``."""

    factor: np.ndarray
    order: np.ndarray
    spatial_x: np.ndarray
    keep: np.ndarray

    def __len__(self) -> int:
        return self.factor.shape[0]

    def take(self, idx: np.ndarray) -> Decisions:
        return Decisions(self.factor[idx], self.order[idx], self.spatial_x[idx], self.keep[idx])

    @staticmethod
    def concat(parts: list[Decisions]) -> Decisions:
        return Decisions(*(np.concatenate([getattr(p, f) for p in parts])
                           for f in ("factor", "order", "spatial_x", "keep")))


@dataclass(frozen=True)
class SpaceSize:
    """Exact counts (Python ints).  ``factorizations`` honours per-slot bounds only;
    ``factor_spatial`` pairs factorizations with X/Y choices that fit every fan-out;
    ``orders`` counts raw loop orders, ``distinct_orders`` orders up to loops of factor 1
    (summed over the fan-out-feasible factorizations)."""

    factorizations: int
    spatial_choices: int
    factor_spatial: int
    orders: int
    bypass: int
    total: int
    distinct_total: int

    def as_dict(self) -> dict[str, int]:
        return {k: int(v) for k, v in self.__dict__.items()}


def _divisors(n: int) -> list[int]:
    small = [d for d in range(1, int(n ** 0.5) + 1) if n % d == 0]
    return sorted(set(small + [n // d for d in small]))


class Mapspace:
    """The space of mappings of ``problem`` on ``arch`` under ``constraints``.

    Construction only stores its arguments; tables are built on first use.
    """

    def __init__(self, problem: Problem, arch: Arch, constraints: Constraints = NONE,
                 rules: tuple[Rule, ...] = ()):
        self.problem = problem
        self.arch = arch
        self.constraints = constraints
        self.rules = tuple(rules)

    def screen(self, m: MappingBatch) -> tuple[np.ndarray, np.ndarray]:
        """``(admitted bool[B], reasons int64[B])``: what the sampler cannot build in, as
        values — the minimum-utilization constraints (:attr:`Reason.CONSTRAINT`) and the
        target's extra :attr:`rules` (:attr:`Reason.TARGET`).  Structural validity and
        capacity are the cost model's (``Costs.valid``)."""
        ok = np.ones(len(m), bool)
        reasons = np.zeros(len(m), np.int64)
        if self._has_utilization:
            sat = satisfies(self.constraints, self.problem, self.arch, m)
            reasons |= np.where(sat, 0, int(Reason.CONSTRAINT))
            ok &= sat
        for rule in self.rules:
            fine = np.asarray(rule.admits(self.problem, self.arch, m), bool)
            reasons |= np.where(fine, 0, int(Reason.TARGET))
            ok &= fine
        return ok, reasons

    @property
    def _has_utilization(self) -> bool:
        return any(dv.min_utilization is not None for dv in self.constraints.directives)

    @property
    def screens(self) -> bool:
        """Whether :meth:`screen` can reject anything (else it admits every mapping)."""
        return bool(self.rules) or self._has_utilization

    def valid_mask(self, m: MappingBatch) -> np.ndarray:
        """``bool[B]``: valid on the arch (:func:`mapspace.validity.check`) and admitted by
        :meth:`screen` — what the search counts as valid under the analytical model."""
        ok = check(self.problem, self.arch, m).valid
        if self.screens and ok.any():
            idx = np.nonzero(ok)[0]
            ok[idx] &= self.screen(m[idx])[0]
        return ok

    @cached_property
    def resolved(self) -> Constraints:
        """The constraints checked against the problem and arch (names that the problem
        lacks dropped unless strict); raises :class:`MapspaceError` for bad names."""
        return resolve(self.constraints, self.problem, self.arch)

    # ------------------------------------------------------------ structure
    @cached_property
    def slots(self) -> tuple[tuple[int, bool], ...]:
        """``(level, is_spatial)`` for every slot: temporal slots first, then fan-outs."""
        L = self.arch.num_levels
        sp = tuple((l, True) for l in range(L) if self.arch.fanout(l) != (1, 1))
        return tuple((l, False) for l in range(L)) + sp

    def _known(self, name: str, kind: str, where: str) -> bool:
        names = self.problem.dims if kind == "dim" else self.problem.tensor_names
        if name in names:
            return True
        if self.constraints.strict:
            raise MapspaceError(f"unknown {'dimension' if kind == 'dim' else 'tensor'} "
                                f"{name!r} (known: {', '.join(names)})", where=where)
        return False

    def _level(self, name: str, where: str) -> int:
        try:
            return self.arch.level_index(name)
        except MapspaceError:
            raise MapspaceError(f"unknown level {name!r} (levels are "
                                f"{', '.join(self.arch.level_names)})", where=where) from None

    @cached_property
    def _bounds(self) -> dict[tuple[int, bool, int], list[FactorBound]]:
        out: dict[tuple[int, bool, int], list[FactorBound]] = {}
        for dv in self.resolved.directives:
            if dv.kind not in ("temporal", "spatial"):
                continue
            where = dv.source or f"constraints on {dv.target}"
            l = self._level(dv.target, where)
            spatial = dv.kind == "spatial"
            for b in dv.factors:
                if self._known(b.dim, "dim", where):
                    out.setdefault((l, spatial, self.problem.dim_index(b.dim)), []).append(b)
        return out

    def _slot_limit(self, level: int, spatial: bool, dim: int) -> int:
        if not spatial:
            return self.problem.sizes[dim]
        fx, fy = self.arch.fanout(level)
        x = self.split(level)
        if x is not None:
            return fx if x[dim] else fy
        return max(fx, fy)

    def split(self, level: int) -> np.ndarray | None:
        """``bool[D]`` X/Y of each dimension if a spatial ``split`` (or a 1-D fan-out) fixes it."""
        fx, fy = self.arch.fanout(level)
        D = self.problem.num_dims
        if fx == 1 or fy == 1:
            return np.full(D, fy == 1)
        for dv in self.resolved.on(self.arch.levels[level].name, "spatial"):
            if dv.split is not None and dv.permutation is not None:
                x = np.zeros(D, bool)
                for i, name in enumerate(dv.permutation):
                    if name in self.problem.dims and i < dv.split:
                        x[self.problem.dim_index(name)] = True
                return x
        return None

    @cached_property
    def tables(self) -> tuple[np.ndarray, ...]:
        """Per dimension, ``int64[F_d, S]``: every allowed ordered factorization over slots."""
        out = []
        for d, size in enumerate(self.problem.sizes):
            allowed = []
            for (l, sp) in self.slots:
                lim = self._slot_limit(l, sp, d)
                bounds = self._bounds.get((l, sp, d), [])
                allowed.append([f for f in _divisors(size)
                                if f <= lim and all(b.allows(f) for b in bounds)])
            rows = _table(size, tuple(tuple(a) for a in allowed))
            if not rows:
                raise MapspaceError(
                    f"no factorization of {self.problem.dims[d]}={size} satisfies the "
                    f"constraints ({self._describe_bounds(d)})", where="mapspace")
            out.append(np.array(rows, np.int64).reshape(len(rows), len(self.slots)))
            out[-1].flags.writeable = False
        return tuple(out)

    def _describe_bounds(self, d: int) -> str:
        parts = []
        for (l, sp, dd), bs in self._bounds.items():
            if dd == d:
                kind = "spatial" if sp else "temporal"
                parts += [f"{self.arch.levels[l].name} {kind} {b.dim}{b.op}{b.value}" for b in bs]
        return "; ".join(parts) or "fan-out limits"

    @cached_property
    def order_prefix(self) -> tuple[tuple[int, ...], ...]:
        """Per level, the dimensions a ``permutation`` constraint fixes innermost, in order."""
        out = []
        for lv in self.arch.levels:
            prefix: tuple[int, ...] = ()
            for dv in self.resolved.on(lv.name, "temporal"):
                if dv.permutation:
                    prefix = tuple(self.problem.dim_index(n) for n in dv.permutation
                                   if n in self.problem.dims)
            out.append(prefix)
        return tuple(out)

    @cached_property
    def keep_fixed(self) -> tuple[np.ndarray, np.ndarray]:
        """``(fixed: bool[L, T], value: bool[L, T])``."""
        L, T = self.arch.num_levels, self.problem.num_tensors
        fixed = np.zeros((L, T), bool)
        value = np.zeros((L, T), bool)
        for l, lv in enumerate(self.arch.levels):
            if lv.is_dummy:
                fixed[l] = True
        if not self.arch.levels[0].is_dummy:
            # the outermost level is the backing store of every tensor (Timeloop's default
            # bypass string is "X...X1": src/mapping/constraints.cpp)
            fixed[0] = value[0] = True
        for dv in self.resolved.directives:
            if dv.kind != "datatype":
                continue
            where = dv.source or f"constraints on {dv.target}"
            l = self._level(dv.target, where)
            for names, v in ((dv.keep, True), (dv.bypass, False)):
                for n in names:
                    if self._known(n, "tensor", where):
                        t = self.problem.tensor_index(n)
                        if l == 0 and not v and not self.arch.levels[0].is_dummy:
                            raise MapspaceError(
                                f"the outermost level {dv.target} holds every tensor and "
                                f"cannot bypass {n!r}", where=where, key="bypass")
                        fixed[l, t] = True
                        value[l, t] = v
        return fixed, value

    # -------------------------------------------------------------- decoding
    @cached_property
    def flat_tables(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """The tables for the compiled decoder: ``(flat rows, offset per dimension, level per
        slot, is-spatial per slot)``."""
        flat = np.concatenate([t.ravel() for t in self.tables]) if self.tables else \
            np.zeros(0, np.int64)
        sizes = [t.size for t in self.tables]
        offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
        level = np.array([l for l, _ in self.slots], np.int64)
        spatial = np.array([sp for _, sp in self.slots], bool)
        return flat.astype(np.int64), offsets, level, spatial

    def decode(self, dec: Decisions) -> MappingBatch:
        """The mappings these decisions describe (compiled gather from the tables)."""
        from mapspace.sampler_kernels import decode_kernel

        B = len(dec)
        L, D = self.arch.num_levels, self.problem.num_dims
        temporal = np.empty((B, L, D), np.int64)
        spatial = np.empty((B, L, D), np.int64)
        decode_kernel(np.ascontiguousarray(dec.factor), *self.flat_tables, temporal, spatial)
        return MappingBatch(temporal, spatial, dec.order, dec.spatial_x, dec.keep)

    # -------------------------------------------------------------- sampling
    @cached_property
    def sampler_args(self) -> tuple[np.ndarray, ...]:
        """The space's axes for the compiled sampler (table sizes, order prefixes, fixed X/Y
        and keep choices)."""
        L, D = self.arch.num_levels, self.problem.num_dims
        sizes = np.array([len(t) for t in self.tables], np.int64)
        prefix_len = np.array([len(p) for p in self.order_prefix], np.int64)
        order_init = np.zeros((L, D), np.int64)
        for l, prefix in enumerate(self.order_prefix):
            order_init[l] = list(prefix) + [d for d in range(D) if d not in prefix]
        free_len = D - prefix_len
        xy_free = np.array([self.split(l) is None for l in range(L)], bool)
        x_fixed = np.stack([self.split(l) if self.split(l) is not None else np.ones(D, bool)
                            for l in range(L)]) if L else np.zeros((0, D), bool)
        fixed_k, value_k = self.keep_fixed
        return sizes, prefix_len, order_init, free_len, xy_free, x_fixed, ~fixed_k, value_k

    def draw(self, n: int, seed: int, first_chunk: int = 0) -> Decisions:
        """``n`` decisions drawn uniformly from every axis of the space (compiled).

        Candidates come in chunks of 4096 with their own random streams derived from
        ``(seed, chunk index)``, so the result does not depend on the number of threads;
        ``first_chunk`` continues a previous draw.
        """
        from mapspace.sampler_kernels import sample_kernel

        L, D, T = self.arch.num_levels, self.problem.num_dims, self.problem.num_tensors
        factor = np.empty((n, D), np.int64)
        order = np.empty((n, L, D), np.int64)
        spatial_x = np.empty((n, L, D), bool)
        keep = np.empty((n, L, T), bool)
        sample_kernel(np.uint64(seed % (1 << 64)), first_chunk, *self.sampler_args,
                      factor, order, spatial_x, keep)
        return Decisions(factor, order, spatial_x, keep)

    def random_decisions(self, n: int, rng: np.random.Generator) -> Decisions:
        """``n`` uniform decisions with the seed taken from ``rng`` (for search strategies)."""
        return self.draw(n, int(rng.integers(0, 2**63 - 1)))

    def sample(self, n: int, seed: int) -> tuple[MappingBatch, Decisions]:
        """``n`` mappings drawn uniformly from the (unfiltered) space."""
        dec = self.draw(n, seed)
        return self.decode(dec), dec

    # ---------------------------------------------------------------- sizes
    def size(self) -> SpaceSize:
        """Exact counts of the space (before capacity, which depends on the tiles)."""
        L, D = self.arch.num_levels, self.problem.num_dims
        raw_f = prod(len(t) for t in self.tables)
        fan_levels = [l for l in range(L) if self.arch.fanout(l) != (1, 1)]
        free_xy = [l for l in fan_levels if self.split(l) is None]
        spatial_choices = 2 ** (D * len(free_xy))
        orders = prod(factorial(D - len(p)) for p in self.order_prefix)
        fixed_k, _ = self.keep_fixed
        bypass = 2 ** int((~fixed_k).sum())
        fs, distinct_orders_sum = self._count_factor_spatial(fan_levels, free_xy)
        return SpaceSize(
            factorizations=raw_f, spatial_choices=spatial_choices, factor_spatial=fs,
            orders=orders, bypass=bypass, total=fs * orders * bypass,
            distinct_total=distinct_orders_sum * bypass,
        )

    def _count_factor_spatial(self, fan_levels: list[int], free_xy: list[int]
                              ) -> tuple[int, int]:
        """DP over dimensions: (factorization, X/Y) pairs within every fan-out, and the sum
        over them of the number of loop orders up to unit loops."""
        L = self.arch.num_levels
        prefix = self.order_prefix
        fan = {l: self.arch.fanout(l) for l in fan_levels}
        slot_of = {l: s for s, (l, sp) in enumerate(self.slots) if sp}
        # state: (x, y products per fan level..., non-unit free loops per level...) -> count
        states: dict[tuple[int, ...], int] = {tuple([1, 1] * len(fan_levels) + [0] * L): 1}
        for d, table in enumerate(self.tables):
            groups: dict[tuple[int, ...], int] = {}
            for row in table:
                options: list[list[tuple[int, int]]] = []
                for l in fan_levels:
                    f = int(row[slot_of[l]])
                    if l in free_xy:
                        options.append([(f, 1), (1, f)])
                    else:
                        x = self.split(l)
                        options.append([(f, 1)] if x[d] else [(1, f)])
                units = tuple(int(row[s] > 1 and d not in prefix[l])
                              for s, (l, sp) in enumerate(self.slots) if not sp)
                for combo in _product(options):
                    key = tuple(v for xy in combo for v in xy) + units
                    groups[key] = groups.get(key, 0) + 1
            new: dict[tuple[int, ...], int] = {}
            nf = len(fan_levels)
            for st, c in states.items():
                for g, gc in groups.items():
                    ok = True
                    nxt = list(st)
                    for i, l in enumerate(fan_levels):
                        x, y = st[2 * i] * g[2 * i], st[2 * i + 1] * g[2 * i + 1]
                        if x > fan[l][0] or y > fan[l][1]:
                            ok = False
                            break
                        nxt[2 * i], nxt[2 * i + 1] = x, y
                    if not ok:
                        continue
                    for j in range(L):
                        nxt[2 * nf + j] = st[2 * nf + j] + g[2 * nf + j]
                    key = tuple(nxt)
                    new[key] = new.get(key, 0) + c * gc
            states = new
        total = sum(states.values())
        nf = len(fan_levels)
        distinct = sum(c * prod(factorial(k) for k in st[2 * nf:]) for st, c in states.items())
        return total, distinct


@lru_cache(maxsize=256)
def _table(size: int, allowed: tuple[tuple[int, ...], ...]) -> tuple[tuple[int, ...], ...]:
    """Every ordered factorization of ``size`` with factor ``i`` in ``allowed[i]`` (cached)."""
    rows: list[tuple[int, ...]] = []
    _factorizations([list(a) for a in allowed], 0, size, (), rows)
    return tuple(rows)


def _factorizations(allowed: list[list[int]], i: int, rest: int, acc: tuple[int, ...],
                    rows: list[tuple[int, ...]]) -> None:
    """Append every ``acc + (f_i, ..., f_last)`` with ``f_j in allowed[j]`` multiplying
    to ``rest``."""
    if i == len(allowed) - 1:
        if rest in allowed[i]:
            rows.append(acc + (rest,))
        return
    for f in allowed[i]:
        if rest % f == 0:
            _factorizations(allowed, i + 1, rest // f, acc + (f,), rows)


def _product(options: list[list[tuple[int, int]]]):
    if not options:
        yield ()
        return
    head, *rest = options
    for h in head:
        for r in _product(rest):
            yield (h, *r)
