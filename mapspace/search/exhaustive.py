"""Exhaustive search of a small mapspace, loop orders taken up to unit loops.

Algorithm (all in batches, deterministic, no randomness):

1. *Bases.*  Walk every combination of factorization-table rows (``itertools.product``
   order over the dimensions, last dimension fastest).  For each, expand the X/Y choice of
   every dimension whose spatial factor is above 1 at a level with a free 2-D split (other
   dimensions go along X: a factor of 1 occupies no PE, so its side does not matter), then
   every free keep/bypass choice.  With ``prune`` each base is decoded with a canonical loop
   order and checked by :func:`mapspace.validity.check`; bases that overflow a level's
   capacity or fan-out (or keep a tensor nowhere) are dropped before any order is expanded,
   since validity does not depend on the loop order.
2. *Orders up to unit loops.*  A loop of factor 1 iterates once, so where it sits in a
   level's order changes no tile, reuse distance, access count, cycle or energy: costs
   depend only on the relative order of the loops with factor above 1 (the test suite checks
   this against :func:`cost_models.model.evaluate`).  Per level the order is therefore the
   constraint's fixed innermost prefix, then each permutation of the non-unit free loops,
   then the unit free loops in ascending dimension order.  A base with ``k_l`` non-unit
   free loops at level ``l`` yields ``prod_l k_l!`` candidates.
3. *Refusal.*  The candidates are counted first (step 1 only); if they exceed ``limit`` the
   first :meth:`Exhaustive.ask` raises :class:`MapspaceError` with the count.
"""

from __future__ import annotations

from collections.abc import Iterator
from itertools import permutations
from math import factorial, prod

import numpy as np

from mapspace.errors import MapspaceError
from mapspace.space import Decisions, Mapspace
from mapspace.validity import check

_FACT = np.array([factorial(k) for k in range(21)], np.int64)


class Exhaustive:
    """Every candidate of the space (see module docstring), ``batch`` per :meth:`ask`,
    then ``None``.  :meth:`count` gives their number without evaluating any."""

    name = "exhaustive"

    def __init__(self, space: Mapspace, batch: int = 65536, prune: bool = True,
                 limit: float = 5e7):
        self.space = space
        self.batch = batch
        self.prune = prune
        self.limit = limit
        self._stream: Iterator[Decisions] | None = None
        self._perms: dict[tuple[int, bytes], np.ndarray] = {}

    # ----------------------------------------------------------------- public
    def count(self, stop_above: float | None = None) -> int:
        """Number of candidates the enumeration yields; stops counting early (returning a
        partial count above ``stop_above``) once that is exceeded."""
        total = 0
        for _, n_orders, _ in self._bases():
            total += int(n_orders.sum())
            if stop_above is not None and total > stop_above:
                break
        return total

    def ask(self) -> Decisions | None:
        if self._stream is None:
            n = self.count(stop_above=self.limit)
            if n > self.limit:
                raise MapspaceError(
                    f"the pruned space has more than {n:,} candidates, above the limit of "
                    f"{int(self.limit):,}; use a sampling strategy or raise limit",
                    where="Exhaustive")
            self._stream = self._batches()
        return next(self._stream, None)

    def tell(self, decisions: Decisions, objective: np.ndarray, valid: np.ndarray) -> None:
        """Nothing to learn: the enumeration is fixed."""

    # ---------------------------------------------------------------- private
    def _canonical_order(self) -> np.ndarray:
        """``int64[L, D]``: each level's prefix, then the free dimensions ascending."""
        D = self.space.problem.num_dims
        return np.array([list(p) + [d for d in range(D) if d not in p]
                         for p in self.space.order_prefix], np.int64).reshape(-1, D)

    def _bases(self) -> Iterator[tuple[Decisions, np.ndarray, np.ndarray]]:
        """Chunks of ``(bases, orders int64[N], non-unit free loops bool[N, L, D])``."""
        sp = self.space
        L, D = sp.arch.num_levels, sp.problem.num_dims
        sizes = [len(t) for t in sp.tables]
        fixed_k, value_k = sp.keep_fixed
        free_k = np.argwhere(~fixed_k)
        n_keep = 1 << len(free_k)
        keeps = np.broadcast_to(value_k, (n_keep, *value_k.shape)).copy()
        bits = (np.arange(n_keep)[:, None] >> np.arange(len(free_k))) & 1
        keeps[:, free_k[:, 0], free_k[:, 1]] = bits.astype(bool)
        canon = self._canonical_order()
        in_prefix = np.zeros((L, D), bool)
        for l, p in enumerate(sp.order_prefix):
            in_prefix[l, list(p)] = True
        sx_default = np.ones((L, D), bool)
        for l in range(L):
            fixed = sp.split(l)
            if fixed is not None:
                sx_default[l] = fixed
        free_xy = [l for l in range(L) if sp.split(l) is None]
        chunk = max(1, self.batch // n_keep)
        total = prod(sizes)
        for start in range(0, total, chunk):
            flat = np.arange(start, min(total, start + chunk), dtype=np.int64)
            n = len(flat)
            fidx = np.stack(np.unravel_index(flat, sizes), axis=1).astype(np.int64) if D \
                else np.zeros((n, 0), np.int64)
            dec = Decisions(fidx, np.broadcast_to(canon, (n, L, D)).copy(),
                            np.broadcast_to(sx_default, (n, L, D)).copy(),
                            np.broadcast_to(keeps[0], (n, *keeps.shape[1:])).copy())
            dec = _expand_xy(dec, sp.decode(dec).spatial, free_xy)
            r = np.repeat(np.arange(len(dec)), n_keep)
            dec = Decisions(dec.factor[r], dec.order[r], dec.spatial_x[r],
                            np.tile(keeps, (len(dec), 1, 1)))
            m = sp.decode(dec)
            if self.prune:
                ok = check(sp.problem, sp.arch, m).valid
                dec, m = dec.take(np.nonzero(ok)[0]), m[np.nonzero(ok)[0]]
            nonunit = (m.temporal > 1) & ~in_prefix
            yield dec, _FACT[nonunit.sum(axis=2)].prod(axis=1), nonunit

    def _perm_table(self, level: int, nonunit: np.ndarray) -> np.ndarray:
        """``int64[k!, D]``: the orders of ``level`` whose non-unit free loops are ``nonunit``."""
        key = (level, nonunit.tobytes())
        if key not in self._perms:
            prefix = list(self.space.order_prefix[level])
            D = len(nonunit)
            nu = [d for d in range(D) if nonunit[d] and d not in prefix]
            unit = [d for d in range(D) if not nonunit[d] and d not in prefix]
            self._perms[key] = np.array([prefix + list(p) + unit for p in permutations(nu)],
                                        np.int64).reshape(-1, D)
        return self._perms[key]

    def _pieces(self) -> Iterator[Decisions]:
        """Every candidate, in pieces of at most ``batch`` rows."""
        for dec, _, nonunit in self._bases():
            N, L, D = nonunit.shape
            if N == 0:
                continue
            groups, inverse = np.unique(nonunit.reshape(N, L * D), axis=0, return_inverse=True)
            for g, sig in enumerate(groups.reshape(-1, L, D)):
                rows = np.nonzero(inverse.reshape(-1) == g)[0]
                perms = [self._perm_table(l, sig[l]) for l in range(L)]
                radix = [len(p) for p in perms]
                K = prod(radix)
                for s in range(0, len(rows) * K, self.batch):
                    flat = np.arange(s, min(len(rows) * K, s + self.batch), dtype=np.int64)
                    base, o = np.divmod(flat, K)
                    idx = np.unravel_index(o, radix)
                    order = np.stack([perms[l][idx[l]] for l in range(L)], axis=1)
                    b = rows[base]
                    yield Decisions(dec.factor[b], order, dec.spatial_x[b], dec.keep[b])

    def _batches(self) -> Iterator[Decisions]:
        """Pieces regrouped into batches of exactly ``batch`` rows (the last may be short)."""
        buf: list[Decisions] = []
        held = 0
        for piece in self._pieces():
            buf.append(piece)
            held += len(piece)
            if held >= self.batch:
                joined = Decisions.concat(buf)
                for s in range(0, len(joined) - self.batch + 1, self.batch):
                    yield joined.take(np.arange(s, s + self.batch))
                rest = len(joined) % self.batch
                buf = [joined.take(np.arange(len(joined) - rest, len(joined)))] if rest else []
                held = rest
        if held:
            yield Decisions.concat(buf)


def _expand_xy(dec: Decisions, spatial: np.ndarray, free_xy: list[int]) -> Decisions:
    """Each row once per X/Y assignment of its dimensions with spatial factor above 1 at the
    levels in ``free_xy`` (``spatial: int64[N, L, D]``)."""
    if not free_xy:
        return dec
    N, _, D = spatial.shape
    nonunit = (spatial[:, free_xy, :] > 1).reshape(N, -1)
    k = nonunit.sum(axis=1)
    parts = []
    for kk in np.unique(k):
        rows = np.nonzero(k == kk)[0]
        reps = 1 << int(kk)
        r = np.repeat(rows, reps)
        bits = ((np.arange(reps)[:, None] >> np.arange(kk)) & 1).astype(bool)
        sx = dec.spatial_x[r].copy()
        at, pos = np.nonzero(nonunit[r])
        fl, d = np.divmod(pos, D)
        sx[at, np.asarray(free_xy)[fl], d] = np.tile(bits, (len(rows), 1)).reshape(-1)
        parts.append(Decisions(dec.factor[r], dec.order[r], sx, dec.keep[r]))
    return Decisions.concat(parts)
