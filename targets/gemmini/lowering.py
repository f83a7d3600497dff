"""The lowering pass of a Gemmini emission: a rewrite of the scheduled TIR before
``tvm.compile(..., "c")`` (TVM 0.27 has no Python IR mutator, so it rebuilds the few
statement kinds a schedule holds) that turns the caches into data movement:

* each scratchpad copy block becomes ``mvin`` (activations) / ``mvin2`` (weights) of the
  tile, rows of ``kc``/``mc`` <= 16 elements in Gemmini's row layout.  A conv activation
  window that slides along ``H`` in its placement loop keeps its overlap (rows addressed
  modulo the window) and moves in only the new rows, like Timeloop's sliding-window delta;
  a window sliding along ``W`` (a DRAM loop over ``P`` or ``R``) is reloaded whole, which
  moves more than the model counts;
* the accumulator is tile resident: at the innermost DRAM/Scratchpad loop indexing the
  output, partial sums come back with ``mvin3`` (int32) when a reduction loop outside has
  already run once (Timeloop's first-read elision), and leave with ``mvout`` (int32, full
  accumulator rows) after the loop body; the first compute into an output tile overwrites
  the accumulator, later ones accumulate (bit 30); the full-size init and write-back of
  the logical ``global.acc`` buffer are dropped;
* the compute tile becomes ``gemmini_extended_preload`` + ``compute_preloaded`` /
  ``compute_accumulated`` calls (:meth:`GemminiLowering.compute_tile`, also the
  implementation of the schedule's TensorIntrin).
"""

from __future__ import annotations

from typing import Any

from targets.gemmini.plan import DIM, REDUCE, Geometry

# tvm is imported inside the functions that use it (import_tvm(), `from tvm import ...`):
# it is heavy (~3 s) and optional, and `import targets` must work without it

GARBAGE = 0xFFFFFFFF
ACC_BIT, ACCUMULATE_BIT, FULL_BIT = 1 << 31, 1 << 30, 1 << 29


class GemminiLowering:
    """Rewrite the scheduled TIR into Gemmini intrinsic calls (see the module docstring)."""

    def __init__(self, geo: Geometry, names: dict[int, str], bufs: dict[int, Any]):
        from tvm import tirx

        self.t = tirx
        self.geo = geo
        self.names = names
        self.abuf, self.bbuf, self.zbuf = bufs[0], bufs[1], bufs[2]
        self.drop = set(names.values())
        self.fresh = 0

    # helpers ------------------------------------------------------------------------
    def u32(self, v: int) -> Any:
        return self.t.const(v, "uint32")

    def call(self, name: str, *args: Any) -> Any:
        return self.t.Evaluate(self.t.call_extern("void", name, *args))

    def seq(self, stmts: list[Any]) -> Any:
        stmts = [s for s in stmts if s is not None]
        return stmts[0] if len(stmts) == 1 else self.t.SeqStmt(stmts)

    def loop(self, extent: int, name: str, body_fn) -> Any:
        if extent == 1:
            return body_fn(self.t.const(0, "int32"))
        self.fresh += 1
        v = self.t.Var(f"{name}{self.fresh}", "int32")
        return self.t.For(v, 0, extent, self.t.ForKind.SERIAL, body_fn(v))

    def addr(self, buf: Any, idx: list[Any]) -> Any:
        return self.t.address_of(self.t.BufferLoad(buf, idx))

    def local_addr(self, row: Any, flags: Any) -> Any:
        return self.t.Cast("uint32", row) | flags

    def origin(self, t: int) -> list[Any]:
        """global coordinates of tensor ``t``'s tile origin (loops down to its placement)."""
        g = self.geo
        hi = g.place[t] + 1
        return [sum((g.dim_sum(d, -1, hi) * c for d, c in ax), self.t.const(0, "int32"))
                for ax in g.axes[t]]

    # moves of a whole tile ------------------------------------------------------------
    def phys(self, t: int, local: list[Any], org: list[Any]) -> list[Any]:
        """local axis coordinates -> the ones the scratchpad layout uses (the sliding axis
        modulo its window, see :attr:`Geometry.slide`)."""
        g = self.geo
        if t != 0 or g.slide is None:
            return local
        a = g.slide[0]
        out = list(local)
        out[a] = self.t.floormod(org[a] + local[a], g.ext[0][a])
        return out

    def tile_moves(self, t: int, make) -> Any:
        """loops over tensor ``t``'s tile: leading axes, chunks of <= DIM rows along the
        second-to-last axis, blocks of ``width`` columns; ``make(dram_idx, row, cols, rows)``
        builds one move.  A sliding activation window moves in only its new rows after the
        first iteration of its placement loop."""
        g = self.geo
        ext, w = g.ext[t], g.widths[t]
        org = self.origin(t)
        nlead = len(ext) - 2
        rows_ext = ext[-2]
        nchunk = -(-rows_ext // DIM)
        slide = g.slide if t == 0 else None

        def build(lead: list[Any]) -> Any:
            a = len(lead)
            if a < nlead and slide is not None and slide[0] == a:
                first = g.nest[g.place[0]].var == 0
                lo = self.t.Select(first, 0, ext[a] - slide[1])
                n = self.t.Select(first, ext[a], slide[1])
                self.fresh += 1
                v = self.t.Var(f"h{self.fresh}", "int32")
                return self.t.For(v, 0, n, self.t.ForKind.SERIAL, build(lead + [lo + v]))
            if a < nlead:
                return self.loop(ext[a], "i", lambda v: build(lead + [v]))

            if slide is not None and slide[0] == nlead:     # sliding along W: new rows only
                first = g.nest[g.place[0]].var == 0
                lo = self.t.Select(first, 0, rows_ext - slide[1])
                total = self.t.Select(first, rows_ext, slide[1])
                nch = self.t.Select(first, nchunk, -(-slide[1] // DIM))
            else:
                lo, total, nch = 0, rows_ext, nchunk

            def chunk(ch: Any) -> Any:
                def block(cb: Any) -> Any:
                    local = lead + [lo + ch * DIM, cb * w]
                    if isinstance(total, int) and total <= DIM:
                        rows = total
                    elif isinstance(total, int) and total % DIM == 0:
                        rows = DIM
                    else:
                        rows = self.t.min(DIM, total - ch * DIM)
                    idx = [o + x for o, x in zip(org, local, strict=True)]
                    if slide is None or slide[0] != nlead:
                        return make(idx, g.row_addr(t, self.phys(t, local, org)), w, rows)
                    # the rows may wrap around the window: split the move there
                    ph = self.phys(t, local, org)
                    first_rows = self.t.min(rows, rows_ext - ph[nlead])
                    one = make(idx, g.row_addr(t, ph), w, first_rows)
                    idx2 = list(idx)
                    idx2[nlead] = idx[nlead] + first_rows
                    ph2 = list(ph)
                    ph2[nlead] = self.t.const(0, "int32")
                    two = make(idx2, g.row_addr(t, ph2), w, rows - first_rows)
                    return self.t.IfThenElse(first_rows < rows, self.seq([one, two]), one)
                return self.loop(ext[-1] // w, "cb", block)
            if isinstance(nch, int):
                return self.loop(nch, "ch", chunk)
            self.fresh += 1
            v = self.t.Var(f"ch{self.fresh}", "int32")
            return self.t.For(v, 0, nch, self.t.ForKind.SERIAL, chunk(v))
        return build([])

    def mvin_spad(self, t: int) -> Any:
        buf = self.abuf if t == 0 else self.bbuf
        fn = "gemmini_extended_mvin" if t == 0 else "gemmini_extended_mvin2"
        return self.tile_moves(t, lambda idx, row, cols, rows: self.call(
            fn, self.addr(buf, idx), self.local_addr(row, self.u32(0)), cols, rows))

    def reduce_first(self, lo: int, hi: int) -> Any:
        """all reduction loops at nest positions (lo, hi) are at iteration 0 (None: none)."""
        g = self.geo
        conds = [lp.var == 0 for lp in g.nest[lo + 1:max(hi, 0)]
                 if lp.dim in REDUCE[g.spec.kind] and lp.factor > 1 and not lp.spatial]
        if not conds:
            return None
        c = conds[0]
        for x in conds[1:]:
            c = self.t.And(c, x)
        return c

    def acc_in(self) -> Any:
        first = self.reduce_first(-1, self.geo.place[2])
        if first is None:
            return None
        body = self.tile_moves(2, lambda idx, row, cols, rows: self.call(
            "gemmini_extended_mvin3", self.addr(self.zbuf, idx),
            self.local_addr(row, self.u32(ACC_BIT)), cols, rows))
        return self.t.IfThenElse(self.t.Not(first), body, None)

    def acc_out(self) -> Any:
        return self.tile_moves(2, lambda idx, row, cols, rows: self.call(
            "gemmini_extended_mvout", self.addr(self.zbuf, idx),
            self.local_addr(row, self.u32(ACC_BIT | FULL_BIT)), cols, rows))

    # the compute tile -------------------------------------------------------------------
    def compute_tile(self, gdim: dict[str, Any] | None = None) -> Any:
        """preload + compute calls of one compute tile.  Its position is either the loop
        variables outside it (``gdim`` None, the rewrite) or ``gdim``: the tile's global
        coordinate per dim (the TensorIntrin, which decodes them from buffer offsets)."""
        g = self.geo
        t = self.t
        tp = g.tile_pos
        reg = {lp.dim: lp.factor for lp in g.nest[tp:] if not lp.spatial}
        row_dim = "P"
        a_row_coef = dict(g.axes[0][-2])[row_dim]
        cs = DIM if a_row_coef == 1 else 1
        prow = reg.get(row_dim, 1)
        nchunk = -(-prow // cs)
        others = [d for d in ("N", "Q") if reg.get(d, 1) > 1]
        if gdim is None:
            first_red = self.reduce_first(-1, tp)

            def outer(tn: int, d: str) -> Any:
                return g.dim_sum(d, g.place[tn], tp)
            a_org = self.origin(0)
        else:
            red = [gdim[d] == 0 for d in REDUCE[g.spec.kind]
                   if g.spec.sizes[d] > 1]
            first_red = None
            for x in red:
                first_red = x if first_red is None else t.And(first_red, x)

            def outer(tn: int, d: str) -> Any:
                return t.floormod(gdim[d], g.dim_extent(tn, d))
            a_org = [sum(((gdim[d] - outer(0, d)) * c for d, c in ax), t.const(0, "int32"))
                     for ax in g.axes[0]]
        acc_flag = (self.u32(0) if first_red is None
                    else t.Select(first_red, self.u32(0), self.u32(ACCUMULATE_BIT)))

        def local(tn: int, inner: dict[str, Any]) -> list[Any]:
            out = []
            for ax in g.axes[tn]:
                e: Any = t.const(0, "int32")
                for d, c in ax:
                    e = e + (outer(tn, d) + inner.get(d, 0)) * c
                out.append(e)
            return out

        def body(inner: dict[str, Any], firsts: list[Any]) -> Any:
            rows = prow if nchunk == 1 else t.min(cs, prow - inner[row_dim])
            a_row = g.row_addr(0, self.phys(0, local(0, inner), a_org))
            b_row = g.row_addr(1, local(1, inner))
            c_row = g.row_addr(2, local(2, inner))
            c_addr = self.local_addr(c_row, self.u32(ACC_BIT) | acc_flag)
            kc, mc = g.kc, g.mc
            wa = len(g.axes[0]) - 2
            wraps = g.slide is not None and g.slide[0] == wa and cs > 1
            full_rows = rows
            if wraps:   # the activation rows wrap around a W-sliding window: split there
                ph = self.phys(0, local(0, inner), a_org)
                rows = t.min(full_rows, g.ext[0][wa] - ph[wa])
            pre_w = self.seq([
                self.call("gemmini_extended_preload", self.local_addr(b_row, self.u32(0)),
                          c_addr, mc, kc, mc, rows),
                self.call("gemmini_extended_compute_preloaded", self.local_addr(
                    a_row, self.u32(0)), self.u32(GARBAGE), kc, rows, DIM, DIM)])
            keep_w = self.seq([
                self.call("gemmini_extended_preload", self.u32(GARBAGE), c_addr, mc, kc, mc,
                          rows),
                self.call("gemmini_extended_compute_accumulated", self.local_addr(
                    a_row, self.u32(0)), self.u32(GARBAGE), kc, rows, DIM, DIM)])
            if not firsts:
                out = pre_w
            else:
                c = firsts[0]
                for x in firsts[1:]:
                    c = t.And(c, x)
                out = t.IfThenElse(c, pre_w, keep_w)
            if not wraps:
                return out
            first_rows = rows
            rows = full_rows
            ph2 = list(ph)
            ph2[wa] = t.const(0, "int32")
            a2 = g.row_addr(0, ph2)
            c2 = self.local_addr(c_row + first_rows, self.u32(ACC_BIT) | acc_flag)
            rest = rows - first_rows
            more = self.seq([
                self.call("gemmini_extended_preload", self.u32(GARBAGE), c2, mc, kc, mc, rest),
                self.call("gemmini_extended_compute_accumulated", self.local_addr(
                    a2, self.u32(0)), self.u32(GARBAGE), kc, rest, DIM, DIM)])
            return t.IfThenElse(first_rows < rows, self.seq([out, more]), out)

        def nest_others(i: int, inner: dict[str, Any], firsts: list[Any]) -> Any:
            if i < len(others):
                d = others[i]
                return self.loop(reg[d], d.lower(), lambda v: nest_others(
                    i + 1, {**inner, d: v}, firsts + [v == 0]))
            return self.loop(nchunk, "pc", lambda v: body(
                {**inner, row_dim: v * cs}, firsts + ([v == 0] if nchunk > 1 else [])))
        return nest_others(0, {}, [])

    # the rewrite ------------------------------------------------------------------------
    def config(self) -> list[Any]:
        z_row = self.zbuf.shape[-1] * 4
        a_row = self.abuf.shape[-1]
        b_row = self.bbuf.shape[-1]
        f1 = self.t.const(1.0, "float32")
        return [self.call("gemmini_config_ex", 1, 0, 0),
                self.call("gemmini_extended3_config_ld", a_row, f1, 0, 0),
                self.call("gemmini_extended3_config_ld", b_row, f1, 0, 1),
                self.call("gemmini_extended3_config_ld", z_row, f1, 0, 2),
                self.call("gemmini_config_st", z_row)]

    def rewrite(self, stmt: Any) -> Any:
        t = self.t
        from tvm import s_tir

        g = self.geo
        if isinstance(stmt, t.SeqStmt):
            return self.seq([self.rewrite(s) for s in stmt.seq])
        if isinstance(stmt, s_tir.SBlockRealize):
            blk = stmt.block
            if blk.name_hint in self.drop:
                return t.Evaluate(0)
            if blk.name_hint == "root":
                nb = s_tir.SBlock(blk.iter_vars, blk.reads, blk.writes, blk.name_hint,
                                  self.rewrite(blk.body), blk.init,
                                  [b for b in blk.alloc_buffers
                                   if b.scope() not in ("global.spad", "global.acc")],
                                  blk.match_buffers, blk.annotations)
                return s_tir.SBlockRealize(stmt.iter_values, stmt.predicate, nb)
            return stmt
        if isinstance(stmt, t.For):
            lv = stmt.loop_var
            pos = next((i for i, lp in enumerate(g.nest) if lp.var.same_as(lv)), None)
            if pos is None:
                return t.For(lv, stmt.min, stmt.extent, stmt.kind, self.rewrite(stmt.body),
                             stmt.thread_binding, stmt.annotations)
            if pos == g.tile_pos:
                return self.compute_tile()
            body = self.rewrite(stmt.body)
            pre, post = [], []
            for tn in (0, 1):
                if g.place[tn] == pos:
                    pre.append(self.mvin_spad(tn))
            if g.place[2] == pos:
                pre.append(self.acc_in())
                post.append(self.acc_out())
            loop = t.For(lv, stmt.min, stmt.extent, stmt.kind,
                         self.seq(pre + [body] + post), None, {})
            if pos == 0:
                top = self.config()
                for tn in (0, 1):
                    if g.place[tn] < 0:
                        top.append(self.mvin_spad(tn))
                tail = []
                if g.place[2] < 0:
                    top.append(self.acc_in())
                    tail.append(self.acc_out())
                tail.append(self.call("gemmini_fence"))
                return self.seq(top + [loop] + tail)
            return loop
        return stmt

    def run(self, func: Any) -> Any:
        return func.with_body(self.rewrite(func.body))
