"""CoSA-style search: a CP-SAT model of the factorization in log space, then local polish.

``CpSat(space, seed)`` (strategy ``cpsat``; it was called ``optimal``, which it is not:
see below) follows CoSA (Huang et al., ISCA'21, "CoSA: Scheduling by
Constrained Optimization for Spatial Accelerators") and runs in two phases behind the
ordinary ask/tell protocol:

1. **Solve.**  A CP-SAT model chooses every dimension's factorization over the slots of
   the :class:`~mapspace.space.Mapspace` (each level's temporal loop, each fan-out).
   Products become sums in log space, every log a scaled integer (``round(K * log2 x)``).
   Up to ``top_k`` distinct factorizations are collected.  Every improving solution a
   solve reports is kept (solution callback), then excluded by a no-good before the next
   solve, which uses the next of a few objective weightings (``WEIGHTS``).  The first solve
   gets 40% of ``time_limit`` and later ones share the rest.  If the first solve finds
   nothing, the model is solved again without an objective.  Each one is decoded with a small
   set of loop orders per level (its *stationarity* choices) and handed out by ``ask``.
2. **Polish.**  Best-first local search under the true cost returned by ``tell``.  Take the
   best evaluated mapping not yet expanded and evaluate its whole neighbourhood; repeat
   until ``polish_budget`` evaluations.  Neighbours: one dimension's factorization row
   changed by moving one prime factor between two slots, one loop moved or swapped within
   a level, one X/Y choice flipped, one free keep/bypass flipped.

Formulation (``T_d`` = the space's table of dimension ``d``, ``S`` slots):

* **Variables.**  Per dimension, a one-hot Boolean per table row when ``|T_d| <= ROW_LIMIT``
  (100), so only factorizations in the tables are legal, per-slot bounds included.
  ``ROW_LIMIT`` is small because long one-hot sums in every log expression stall CP-SAT:
  with 2913-row tables on eyeriss-like it found no solution in 5 s.  Otherwise
  CoSA's prime allocation: integer ``e[d, p, s]``, how many copies of prime ``p`` go to
  slot ``s``.  This is equivalent to CoSA's one-hot Boolean per prime instance, without
  its symmetry, and is bounded per slot by the smallest and largest exponent the table
  uses.  A solution whose row is missing from the table is dropped at decoding.
  ``lf[d, s]``, the log factor, is linear in either form.  Each free X/Y split has a
  Boolean per dimension.  Each level's *stationary tensor* ``st[l, t]`` is one-hot.
* **Fan-out.**  ``sum_d lf[d, s] <= log2 fanout`` along X and along Y.
* **Capacity.**  For every kept tensor ``t`` at a bounded level ``l``,
  ``log2 words_t(l) <= log2(capacity / n_kept)``.  A shared buffer is split evenly, which
  is a sufficient condition for the sum of the tiles to fit.  ``log2 tile`` is the sum
  over the tensor's axes of ``log2 span``.  A one-dimension axis spans ``ext_d(l)``, the
  product of ``d``'s factors at ``l`` and every inner level (N1), and is exact in either
  form.  A sliding-window axis ``1 + sum c_i (ext_i - 1)`` is exact when both of its
  dimensions are row-encoded and the pair table is small: a Boolean per pair of rows,
  linked to the two one-hots.  Otherwise it uses the upper bound ``prod c_i ext_i``
  (``1 + sum(a_i - 1) <= prod a_i`` for ``a_i >= 1``), which is conservative.
  Constraints use ``K = 2**24``, with slack for rounding.  The log constraints are exact
  for capacities below about ``2**20`` words.
* **Keep/bypass.**  Fixed keeps are taken from the space.  A free choice is a Boolean
  ``k[l, t]``, rewarded by ``KEEP_BONUS`` each: the level's default is to keep whatever
  the constraints allow.  Capacity and the traffic term of ``(t, l)`` are enforced only
  when it is kept, a shared level's capacity is split over every tensor it *may* keep, and
  every tensor is kept somewhere.  Polish flips single keep choices.
* **Objective** (``K = 1000``), CoSA's weighted sum:
  ``w_u * (-U) + w_c * C + w_t * sum_{l >= 1, t kept} e(t, l) * R(t, l)``.
  ``U`` is the sum of the spatial ``lf`` (utilization).  ``C`` is the sum of the temporal
  ``lf`` (log of the compute cycles).  ``R(t, l)`` is the traffic proxy: ``log2 tile`` plus
  the log of the loops above ``l`` that refetch the tile.  Those loops are every loop
  relevant to ``t`` (temporal and spatial, i.e. the distinct tiles), the irrelevant
  temporal loops of levels above ``l - 1``, and the irrelevant loops of level ``l - 1``
  unless ``t`` is that level's stationary tensor (its irrelevant loops innermost: rule N4).
  ``e(t, l)`` is an integer weight from 1 to 8: the per-word energy of reading the parent
  plus filling ``l``, relative to the largest such term.
* **Loop orders** are not CP variables beyond stationarity.  Each solution is decoded with,
  per level, the orders that sort the non-unit loops by relevance to an ordered pair of
  tensors: loops irrelevant to the first tensor innermost, ties broken by the second
  (one order per pair, duplicates removed).  The model's own stationary choice comes
  first.  Combinations across levels are capped at ``ORDER_CAP`` per solution.

Determinism: CP-SAT runs single-threaded with ``random_seed = seed`` (with two workers the
order in which solutions reach the callback varied between runs).  ``time_limit`` is spent
in CP-SAT's *deterministic* time, so the number of solves does not depend on how busy the
machine is; wall time (ten times the share + 5 s) is only a safety net.  A run is therefore
reproducible unless the safety net cuts a solve short.  The local search
is deterministic given the costs it is told.
"""

from __future__ import annotations

import heapq
import itertools
import time
from math import log2

import numpy as np

from mapspace.naive_random import prime_factors
from mapspace.space import Decisions, Mapspace
from mapspace.validity import check

# ortools is imported in _solve(): it is heavy and only this strategy needs it

ROW_LIMIT = 100           # one Boolean per table row up to this many rows
PAIR_LIMIT = 128          # exact sliding-window spans up to this many row pairs
POLISH_BATCH = 256        # evaluations per polish ask (neighbourhoods of the best points)
MIN_SOLVE = 0.05          # seconds: the shortest CP-SAT solve worth starting
ORDER_CAP = 36            # loop-order combinations decoded per CP solution
OBJ_K = 1000              # objective scale: round(OBJ_K * log2 x)
CON_K = 1 << 24           # constraint scale
KEEP_BONUS = 64 * OBJ_K   # objective reward per free keep choice taken
WEIGHTS = ((1, 1, 1), (1, 1, 4), (4, 4, 1), (1, 2, 2))   # (utilization, compute, traffic)


def _lg(x: float, k: int) -> int:
    return int(round(k * log2(x))) if x > 0 else 0


class CpSat:
    """CoSA-style constrained optimisation then local polish (see module docstring).

    Not an optimality proof: the CP model optimises CoSA's weighted proxy (utilization,
    compute, a traffic estimate) over factorizations, with loop orders limited to a few
    stationarity choices per level and shared buffers split evenly, so its optimum need not
    be the best mapping under the analytical model (BERT-Base q-proj, latency objective:
    75% utilization where ``anneal`` finds 100%); the polish only improves locally.

    ``time_limit``: seconds for the CP phase; ``top_k``: distinct factorizations taken
    from the CP model; ``polish_budget``: evaluations spent by the local search.
    """

    name = "cpsat"

    def __init__(self, space: Mapspace, seed: int, time_limit: float = 5.0, top_k: int = 64,
                 polish_budget: int = 20_000):
        self.space = space
        self.seed = seed
        self.time_limit = time_limit
        self.top_k = top_k
        self.polish_budget = polish_budget
        self._ready = False

    # ------------------------------------------------------------ protocol
    def ask(self) -> Decisions | None:
        if not self._ready:
            self._setup()
        if self._queue:
            out, self._queue = self._queue[:512], self._queue[512:]
            return self._pack(out)
        if self._polish_evals >= self.polish_budget:
            return None
        batch = self._polish_batch(self.polish_budget - self._polish_evals)
        if not batch:
            return None
        self._polish_evals += len(batch)
        return self._pack(batch)

    def tell(self, decisions: Decisions, objective: np.ndarray, valid: np.ndarray) -> None:
        for i in range(len(decisions)):
            key = self._key(decisions.factor[i], decisions.order[i],
                            decisions.spatial_x[i], decisions.keep[i])
            obj = float(objective[i])
            if valid[i] and np.isfinite(obj):
                self._tick += 1
                heapq.heappush(self._pool, (obj, self._tick, key))
                if obj < self.best_objective:
                    self.best_objective = obj

    # --------------------------------------------------------------- setup
    def _setup(self) -> None:
        sp = self.space
        self._ready = True
        self._L, self._D = sp.arch.num_levels, sp.problem.num_dims
        self._T = sp.problem.num_tensors
        self._tables = sp.tables
        self._slots = sp.slots
        self._sslot = {l: s for s, (l, isp) in enumerate(self._slots) if isp}
        self._prefix = sp.order_prefix
        self._split = [sp.split(l) for l in range(self._L)]
        self._fan = [sp.arch.fanout(l) for l in range(self._L)]
        self._free_xy = [self._fan[l] != (1, 1) and self._split[l] is None
                         for l in range(self._L)]
        fixed, value = sp.keep_fixed
        self.keep_fixed = fixed
        self._keep_value = value
        self._rel = sp.problem.relevance
        self._row_index = [{tuple(int(v) for v in r): i for i, r in enumerate(t)}
                           for t in self._tables]
        self._nbr_cache: dict[tuple[int, int], list[int]] = {}
        self._store: dict[bytes, tuple] = {}
        self._pool: list[tuple[float, int, bytes]] = []
        self._tick = 0
        self._polish_evals = 0
        self.best_objective = float("inf")
        self.cp_solutions = 0
        self.cp_seconds = 0.0
        self.cp_status = ""
        self.cp_candidates = 0
        self._queue: list[bytes] = []
        t0 = time.perf_counter()
        cands: list[tuple] = []
        for rows, xy, stat, keep in self._solve():
            cands += self._decode(rows, xy, stat, keep)
        self.cp_seconds = time.perf_counter() - t0
        self._queue = self._admit(cands)
        self.cp_candidates = len(self._queue)

    # ------------------------------------------------------------ CP model
    def _solve(self) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        from ortools.sat.python import cp_model

        m = _Model(self, cp_model)
        found: dict[bytes, tuple[np.ndarray, ...]] = {}

        class Collect(cp_model.CpSolverSolutionCallback):
            def on_solution_callback(cb) -> None:
                sol = m.read(cb)
                key = sol[0].tobytes()
                if key not in found and len(found) < self.top_k:
                    found[key] = sol
                    m.pending.append(m.values(cb))

        # budget in CP-SAT's deterministic time, so the number of solves (and the result)
        # does not depend on how busy the machine is
        left = self.time_limit
        k = 0
        while len(found) < self.top_k and left > 1e-3:
            # the first solve gets 40% of the time, later ones share the rest evenly
            share = 0.4 * left if k == 0 else left / max(1, self.top_k - len(found))
            share = max(share, min(left, MIN_SOLVE))
            solver = cp_model.CpSolver()
            solver.parameters.random_seed = self.seed
            solver.parameters.num_workers = 1
            solver.parameters.interleave_search = True
            solver.parameters.max_deterministic_time = share
            solver.parameters.max_time_in_seconds = 10 * share + 5.0
            m.model.minimize(m.objective(WEIGHTS[k % len(WEIGHTS)]))
            k += 1
            status = solver.solve(m.model, Collect())
            if status == cp_model.UNKNOWN and not found:
                m.model.clear_objective()  # no solution in time: settle for a feasible one
                status = solver.solve(m.model, Collect())
            self.cp_status = solver.status_name(status).lower()
            if not m.pending:
                break                      # infeasible, or nothing more within the time
            m.exclude_pending()
            left -= max(solver.response_proto.deterministic_time, 1e-3)
        self.cp_solutions = len(found)
        # a prime allocation outside the table has row -1: dropped
        return [sol for sol in found.values() if sol[0].min() >= 0]

    # ------------------------------------------------------------ decoding
    def _decode(self, rows: np.ndarray, xy: np.ndarray, stat: np.ndarray,
                keep: np.ndarray) -> list[tuple]:
        """Candidates (factor rows, order, spatial_x, keep) for one CP solution."""
        temporal = self._temporal(rows)
        per_level = []
        for l in range(self._L):
            free = [d for d in range(self._D) if temporal[l, d] > 1 and d not in self._prefix[l]]
            firsts = [int(stat[l])] + [t for t in range(self._T) if t != int(stat[l])]
            seen: list[tuple[int, ...]] = []
            for t1 in firsts:
                for t2 in [t for t in range(self._T) if t != t1] or [t1]:
                    o = tuple(sorted(free, key=lambda d, a=t1, b=t2: (bool(self._rel[a, d]),
                                                                    bool(self._rel[b, d]))))
                    if o not in seen:
                        seen.append(o)
            per_level.append(seen)
        combos = list(itertools.islice(itertools.product(*per_level), ORDER_CAP))
        out = []
        for combo in combos:
            order = np.array([self._full_order(l, list(c), temporal) for l, c in enumerate(combo)],
                             np.int64)
            out.append((rows.copy(), order, xy.copy(), keep.copy()))
        return out

    def _temporal(self, rows: np.ndarray) -> np.ndarray:
        t = np.ones((self._L, self._D), np.int64)
        for d in range(self._D):
            t[:, d] = self._tables[d][rows[d], :self._L]
        return t

    def _full_order(self, l: int, nonunit: list[int], temporal: np.ndarray) -> list[int]:
        pre = list(self._prefix[l])
        rest = [d for d in range(self._D) if d not in pre and d not in nonunit]
        return pre + nonunit + rest

    # ---------------------------------------------------- canonical points
    def _canon(self, rows, order, sx, keep) -> tuple:
        """Unit loops outermost in index order; X for dims without a spatial factor."""
        temporal = self._temporal(rows)
        order = np.array([self._full_order(
            l, [int(d) for d in order[l] if temporal[l, d] > 1 and d not in self._prefix[l]],
            temporal) for l in range(self._L)], np.int64)
        sx = sx.copy()
        for l in range(self._L):
            if self._free_xy[l]:
                s = self._sslot[l]
                for d in range(self._D):
                    if self._tables[d][rows[d], s] == 1:
                        sx[l, d] = True
        return (np.asarray(rows, np.int64), order, sx.astype(bool), keep.astype(bool))

    @staticmethod
    def _key(rows, order, sx, keep) -> bytes:
        return (np.asarray(rows, np.int64).tobytes() + np.asarray(order, np.int64).tobytes()
                + np.asarray(sx, bool).tobytes() + np.asarray(keep, bool).tobytes())

    def _admit(self, cands: list[tuple], limit: int | None = None) -> list[bytes]:
        """Canonicalise, drop seen and structurally invalid points; keys of the new ones."""
        new: dict[bytes, tuple] = {}
        for c in cands:
            p = self._canon(*c)
            k = self._key(*p)
            if k not in self._store and k not in new:
                new[k] = p
        if not new:
            return []
        keys = list(new)
        dec = self._pack_points([new[k] for k in keys])
        ok = check(self.space.problem, self.space.arch, self.space.decode(dec)).valid
        out = []
        for k, good in zip(keys, ok, strict=True):
            self._store[k] = new[k]
            if good and (limit is None or len(out) < limit):
                out.append(k)
        return out

    def _pack_points(self, pts: list[tuple]) -> Decisions:
        return Decisions(np.stack([p[0] for p in pts]).astype(np.int64),
                         np.stack([p[1] for p in pts]).astype(np.int64),
                         np.stack([p[2] for p in pts]).astype(bool),
                         np.stack([p[3] for p in pts]).astype(bool))

    def _pack(self, keys: list[bytes]) -> Decisions:
        return self._pack_points([self._store[k] for k in keys])

    # -------------------------------------------------------------- polish
    def _polish_batch(self, room: int) -> list[bytes]:
        """Neighbourhoods of the best unexpanded points, at least ``POLISH_BATCH`` of them
        (fewer when the pool runs dry), at most ``room``."""
        batch: list[bytes] = []
        while self._pool and len(batch) < min(POLISH_BATCH, room):
            cands: list[tuple] = []
            while self._pool and len(cands) < 4 * POLISH_BATCH:
                _, _, key = heapq.heappop(self._pool)
                cands += self._neighbours(self._store[key])
            batch += self._admit(cands, limit=room - len(batch))
        return batch

    def _row_neighbours(self, d: int, r: int) -> list[int]:
        """Rows of dimension ``d`` that move one prime factor of row ``r`` to another slot."""
        hit = self._nbr_cache.get((d, r))
        if hit is not None:
            return hit
        row = [int(v) for v in self._tables[d][r]]
        out: list[int] = []
        for a, fa in enumerate(row):
            for p in sorted(set(prime_factors(fa))):
                for b in range(len(row)):
                    if b == a:
                        continue
                    new = list(row)
                    new[a] //= p
                    new[b] *= p
                    j = self._row_index[d].get(tuple(new))
                    if j is not None and j not in out:
                        out.append(j)
        self._nbr_cache[(d, r)] = out
        return out

    def _neighbours(self, p: tuple) -> list[tuple]:
        rows, order, sx, keep = p
        temporal = self._temporal(rows)
        out: list[tuple] = []
        for d in range(self._D):                       # move one prime between slots
            for r in self._row_neighbours(d, int(rows[d])):
                nr = rows.copy()
                nr[d] = r
                out.append((nr, order, sx, keep))
                nt = self._temporal(nr)
                for l in range(self._L):               # a new loop also tried innermost
                    if nt[l, d] > 1 and temporal[l, d] == 1 and d not in self._prefix[l]:
                        o = order.copy()
                        o[l] = self._full_order(
                            l, [d] + [int(e) for e in order[l] if temporal[l, e] > 1
                                      and e not in self._prefix[l]], nt)
                        out.append((nr, o, sx, keep))
                for l in range(self._L):               # a new spatial factor also along Y
                    s = self._sslot.get(l)
                    if s is not None and self._free_xy[l] and \
                            self._tables[d][r, s] > 1 and self._tables[d][rows[d], s] == 1:
                        x = sx.copy()
                        x[l, d] = not x[l, d]
                        out.append((nr, order, x, keep))
        for l in range(self._L):                       # move or swap loops within a level
            nu = [int(e) for e in order[l] if temporal[l, e] > 1 and e not in self._prefix[l]]
            for i, j in itertools.permutations(range(len(nu)), 2):
                moved = list(nu)
                moved.insert(j, moved.pop(i))
                swapped = list(nu)
                swapped[i], swapped[j] = swapped[j], swapped[i]
                for new in (moved, swapped):
                    o = order.copy()
                    o[l] = self._full_order(l, new, temporal)
                    out.append((rows, o, sx, keep))
            if self._free_xy[l]:                       # flip X/Y
                for d in range(self._D):
                    if self._tables[d][rows[d], self._sslot[l]] > 1:
                        x = sx.copy()
                        x[l, d] = not x[l, d]
                        out.append((rows, order, x, keep))
        for l, t in zip(*np.nonzero(~self.keep_fixed), strict=True):   # flip keep
            k = keep.copy()
            k[l, t] = not k[l, t]
            out.append((rows, order, sx, k))
        return out


class _Model:
    """The CP-SAT model of one :class:`CpSat` (see the module docstring)."""

    def __init__(self, opt: CpSat, cp_model) -> None:
        self.opt, self.cp = opt, cp_model
        sp = opt.space
        self.model = m = cp_model.CpModel()
        self.pending: list[list[tuple[object, int | None]]] = []
        L, D, T, S = opt._L, opt._D, opt._T, len(opt._slots)
        self.keep: dict[tuple[int, int], object] = {}   # (l, t) -> literal or bool
        bonus = []
        for l in range(L):
            for t in range(T):
                if opt.keep_fixed[l, t]:
                    self.keep[(l, t)] = bool(opt._keep_value[l, t])
                else:
                    self.keep[(l, t)] = v = m.new_bool_var(f"k{l}_{t}")
                    bonus.append(v)
        for t in range(T):
            lits = [self.keep[(l, t)] for l in range(L)]
            if not any(v is True for v in lits):
                m.add_bool_or([v for v in lits if v is not False])
        self.bonus = KEEP_BONUS * sum(bonus)
        keep = np.array([[self.keep[(l, t)] is not False for t in range(T)] for l in range(L)])
        self.rows: list[list | None] = []
        self.primes: list[dict | None] = []
        lf_obj: list[list] = []   # [d][s] linear expressions, objective scale
        lf_con: list[list] = []   # constraint scale
        ext_con: list[list] = []  # [d][l] log ext_d(l), constraint scale
        ext_obj: list[list] = []  # objective scale
        inner = [[s for s, (ll, _) in enumerate(opt._slots) if ll >= l] for l in range(L)]
        for d, table in enumerate(opt._tables):
            if len(table) <= ROW_LIMIT:
                b = [m.new_bool_var(f"r{d}_{i}") for i in range(len(table))]
                m.add_exactly_one(b)
                self.rows.append(b)
                self.primes.append(None)
                lo = [sum(_lg(table[i, s], OBJ_K) * b[i] for i in range(len(b))) for s in range(S)]
                lc = [sum(_lg(table[i, s], CON_K) * b[i] for i in range(len(b)))
                      for s in range(S)]
                ex = [sum(_lg(int(np.prod(table[i, inner[l]])), CON_K) * b[i]
                          for i in range(len(b))) for l in range(L)]
                eo = [sum(_lg(int(np.prod(table[i, inner[l]])), OBJ_K) * b[i]
                          for i in range(len(b))) for l in range(L)]
            else:
                self.rows.append(None)
                ev: dict[tuple[int, int], object] = {}
                size = sp.problem.sizes[d]
                for p in sorted(set(prime_factors(size))):
                    val = _valuation(table, p)
                    mult = prime_factors(size).count(p)
                    for s in range(S):
                        ev[(p, s)] = m.new_int_var(int(val[:, s].min()), int(val[:, s].max()),
                                                   f"e{d}_{p}_{s}")
                    m.add(sum(ev[(p, s)] for s in range(S)) == mult)
                self.primes.append(ev)
                lo = [sum(_lg(p, OBJ_K) * v for (p, ss), v in ev.items() if ss == s)
                      for s in range(S)]
                lc = [sum(_lg(p, CON_K) * v for (p, ss), v in ev.items() if ss == s)
                      for s in range(S)]
                ex = [sum(lc[s] for s in inner[l]) for l in range(L)]
                eo = [sum(lo[s] for s in inner[l]) for l in range(L)]
            lf_obj.append(lo)
            lf_con.append(lc)
            ext_con.append(ex)
            ext_obj.append(eo)
        self.ext_con, self.ext_obj = ext_con, ext_obj
        # X/Y of free splits, and the fan-out limits
        self.xy: dict[tuple[int, int], object] = {}
        for l in range(L):
            s = opt._sslot.get(l)
            if s is None:
                continue
            fx, fy = opt._fan[l]
            tol = D
            if opt._split[l] is not None:
                xs = [d for d in range(D) if opt._split[l][d]]
                ys = [d for d in range(D) if not opt._split[l][d]]
                m.add(sum(lf_con[d][s] for d in xs) <= _lg(fx, CON_K) + tol)
                m.add(sum(lf_con[d][s] for d in ys) <= _lg(fy, CON_K) + tol)
                continue
            px, py = [], []
            for d in range(D):
                x = m.new_bool_var(f"x{l}_{d}")
                self.xy[(l, d)] = x
                hi = _lg(sp.problem.sizes[d], CON_K) + 1
                ax, ay = m.new_int_var(0, hi, ""), m.new_int_var(0, hi, "")
                m.add(ax + ay == lf_con[d][s])
                m.add(ax == 0).only_enforce_if(~x)
                m.add(ay == 0).only_enforce_if(x)
                px.append(ax)
                py.append(ay)
            m.add(sum(px) <= _lg(fx, CON_K) + tol)
            m.add(sum(py) <= _lg(fy, CON_K) + tol)
        # capacity, and the log tile sizes (objective scale) for the traffic proxy
        self.pairs: dict[tuple[int, int], list] = {}
        tile_obj = {}
        for l, lv in enumerate(sp.arch.levels):
            kept = [t for t in range(T) if keep[l, t]]
            for t in kept:
                tcon, tobj = self._log_tile(t, l, inner)
                tile_obj[(t, l)] = tobj
                if lv.capacity is None:
                    continue
                bits = sp.problem.tensors[t].bits
                scale = bits / lv.datawidth if bits else 1.0
                limit = lv.capacity / len(kept) / scale
                if limit < 1:                    # the tensor cannot fit
                    m.add_bool_or([~self.keep[(l, t)]] if self.keep[(l, t)] is not True else [])
                    continue
                c = m.add(tcon <= _lg(limit, CON_K) + 4 * D)
                if self.keep[(l, t)] is not True:
                    c.only_enforce_if(self.keep[(l, t)])
        # stationarity and the objective's parts
        self.stat = [[m.new_bool_var(f"st{l}_{t}") for t in range(T)] for l in range(L)]
        for l in range(L):
            m.add_exactly_one(self.stat[l])
        temporal_slots = [s for s, (_, isp) in enumerate(opt._slots) if not isp]
        spatial_slots = [s for s, (_, isp) in enumerate(opt._slots) if isp]
        self.U = sum(lf_obj[d][s] for d in range(D) for s in spatial_slots)
        self.C = sum(lf_obj[d][s] for d in range(D) for s in temporal_slots)
        energy = {}
        for l in range(1, L):
            for t in range(T):
                if not keep[l, t]:
                    continue
                par = max((q for q in range(l) if keep[q, t]), default=0)
                lp, lc_ = sp.arch.levels[par], sp.arch.levels[l]
                energy[(t, l)] = lp.energy.read / lp.block_size + lc_.energy.write / lc_.block_size
        emax = max(energy.values(), default=1.0) or 1.0
        traffic = []
        for (t, l), e in energy.items():
            w = max(1, round(8 * e / emax))
            rel = opt._rel[t]
            term = tile_obj[(t, l)]
            term = term + sum(lf_obj[d][s] for d in range(D)
                              for s, (ll, isp) in enumerate(opt._slots) if ll < l and rel[d])
            term = term + sum(lf_obj[d][ll] for d in range(D) for ll in range(l - 1)
                              if not rel[d])
            irr = [lf_obj[d][l - 1] for d in range(D) if not rel[d]]
            if irr:
                hi = sum(_lg(s, OBJ_K) for s in sp.problem.sizes) + 1
                z = m.new_int_var(0, hi, f"irr{t}_{l}")
                m.add(z >= sum(irr)).only_enforce_if(~self.stat[l - 1][t])
                term = term + z
            if self.keep[(l, t)] is not True:
                hi = 4 * L * sum(_lg(s, OBJ_K) + 1 for s in sp.problem.sizes) + 64 * OBJ_K
                v = m.new_int_var(0, hi, f"tr{t}_{l}")
                m.add(v >= term).only_enforce_if(self.keep[(l, t)])
                term = v
            traffic.append(w * term)
        self.traffic = sum(traffic)

    def _log_tile(self, t: int, l: int, inner) -> tuple:
        """(constraint-scale, objective-scale) linear expressions of ``log2 tile``.  Sums are
        built with ``x = x + y``: OR-Tools' ``SumArray`` adds in place on ``+=``, which
        changed the shared per-dimension extents (``ext_con``) under every later use."""
        opt = self.opt
        proj = opt.space.problem.projections[t]
        con, obj = 0, 0
        for axis in proj:
            dims = [d for d in range(opt._D) if axis[d]]
            if len(dims) == 1:
                d = dims[0]
                con = con + self.ext_con[d][l]
                obj = obj + self.ext_obj[d][l]
                continue
            a, b = dims[0], dims[-1]
            if len(dims) == 2 and self.rows[a] is not None and self.rows[b] is not None \
                    and len(self.rows[a]) * len(self.rows[b]) <= PAIR_LIMIT:
                z = self._pair(a, b)
                ta, tb = opt._tables[a], opt._tables[b]
                ca, cb = int(axis[a]), int(axis[b])
                spans = {(i, j): 1 + ca * (int(np.prod(ta[i, inner[l]])) - 1)
                         + cb * (int(np.prod(tb[j, inner[l]])) - 1) for (i, j) in z}
                con = con + sum(_lg(spans[k], CON_K) * v for k, v in z.items())
                obj = obj + sum(_lg(spans[k], OBJ_K) * v for k, v in z.items())
            else:
                for d in dims:
                    c = int(axis[d])
                    con = con + self.ext_con[d][l] + _lg(c, CON_K)
                    obj = obj + self.ext_obj[d][l] + _lg(c, OBJ_K)
        return con, obj

    def _pair(self, a: int, b: int) -> dict[tuple[int, int], object]:
        if (a, b) in self.pairs:
            return self.pairs[(a, b)]
        m = self.model
        ra, rb = self.rows[a], self.rows[b]
        z = {(i, j): m.new_bool_var(f"p{a}_{b}_{i}_{j}") for i in range(len(ra))
             for j in range(len(rb))}
        for i in range(len(ra)):
            m.add(sum(z[(i, j)] for j in range(len(rb))) == ra[i])
        for j in range(len(rb)):
            m.add(sum(z[(i, j)] for i in range(len(ra))) == rb[j])
        self.pairs[(a, b)] = z
        return z

    def objective(self, w: tuple[int, int, int]):
        return -w[0] * self.U + w[1] * self.C + w[2] * self.traffic - self.bonus

    def values(self, src) -> list[tuple[object, int | None]]:
        """The factorization in a solution: chosen row literals (value ``None``) and
        exponent variables with their values."""
        out = []
        for d in range(self.opt._D):
            if self.rows[d] is not None:
                if len(self.rows[d]) > 1:
                    out += [(v, None) for v in self.rows[d] if src.value(v)]
            else:
                out += [(v, int(src.value(v))) for v in self.primes[d].values()]
        return out

    def read(self, solver) -> tuple[np.ndarray, ...]:
        opt = self.opt
        rows = np.zeros(opt._D, np.int64)
        for d in range(opt._D):
            if self.rows[d] is not None:
                rows[d] = next(i for i, v in enumerate(self.rows[d]) if solver.value(v))
            else:
                row = [1] * len(opt._slots)
                for (p, s), v in self.primes[d].items():
                    row[s] *= p ** int(solver.value(v))
                rows[d] = opt._row_index[d].get(tuple(row), -1)
        xy = np.ones((opt._L, opt._D), bool)
        for l in range(opt._L):
            if opt._split[l] is not None:
                xy[l] = opt._split[l]
        for (l, d), v in self.xy.items():
            xy[l, d] = bool(solver.value(v))
        stat = np.array([next(t for t, v in enumerate(s) if solver.value(v)) for s in self.stat])
        keep = np.array([[v if isinstance(v, bool) else bool(solver.value(v))
                          for t, v in sorted((t, v) for (ll, t), v in self.keep.items() if ll == l)]
                         for l in range(opt._L)], bool).reshape(opt._L, opt._T)
        return rows, xy, stat, keep

    def exclude_pending(self) -> None:
        """No-goods: later solutions differ from every collected one in at least one
        dimension's factorization."""
        m = self.model
        for sol in self.pending:
            lits = []
            for v, val in sol:
                if val is None:                # a chosen table row: its negation
                    lits.append(~v)
                else:                          # an exponent: a literal for "differs"
                    b = m.new_bool_var("")
                    m.add(v != val).only_enforce_if(b)
                    lits.append(b)
            m.add_bool_or(lits)
        self.pending = []


def _valuation(table: np.ndarray, p: int) -> np.ndarray:
    """``int64[F, S]``: exponent of prime ``p`` in every entry of ``table``."""
    out = np.zeros(table.shape, np.int64)
    t = table.copy()
    while True:
        hit = t % p == 0
        if not hit.any():
            return out
        out += hit
        t = np.where(hit, t // p, t)
