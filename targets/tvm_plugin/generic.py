"""Parallel, vectorised schedules for the PrimFuncs that are not MAC ops (TVM imported lazily).

After ``FuseTIR`` a whole model's non-MAC work sits in PrimFuncs such as ``softmax``,
``fused_mean_subtract`` (a decomposed layer norm), ``fused_reshape_transpose``,
``max_pool2d`` or ``fused_add_relu``.  TVM 0.27's CPU pipeline lowers them as they are:
one serial, scalar loop nest.  :func:`schedule_generic` tries these rules in turn on a fresh
schedule each and keeps the first that applies (a rule that raises is skipped):

1. ``injective`` -- every block spatial (elementwise, broadcast, transpose, reshape, pad,
   take): producers inlined into their consumers; each remaining block's loops fused, the
   innermost ``lanes`` of the last loop vectorised and the rest run across the cores;
2. ``row-reduction`` -- TVM's own dlight CPU rule :class:`tvm.s_tir.dlight.cpu.Reduction`
   (softmax, layer norm, RMS norm: reduction and injective blocks over the same leading
   spatial axes): the rows in parallel, each row's blocks computed under it, injective
   blocks vectorised, reductions split and unrolled;
3. ``gemv`` -- dlight's :class:`tvm.s_tir.dlight.cpu.GEMV`;
4. ``reduction`` -- any other function with reduction blocks (pooling, ``mean``, ``sum``,
   ``max``): spatial producers (a pool's pad) inlined into it and spatial consumers (an
   average's divide) into it from behind; per block the leading spatial loops fused and
   run in parallel, and, where the innermost spatial loop can be moved under the reduction
   loops, that loop vectorised.

:func:`schedule_spatial` (rule 1 for one block) also runs a MAC function's epilogue when
it cannot be inlined into the accumulators' write-back.  Nothing here changes what is
computed: only loop structure, so outputs equal TVM's default build up to the order of
floating-point reductions (the dlight rule keeps each row's reduction order).
"""

from __future__ import annotations

from typing import Any

from targets.tvm_common import import_tvm

#: a loop nest with fewer iterations than this is not worth waking the thread pool
PARALLEL_MIN = 4096
#: rule names, in the order they are tried
RULES = ("injective", "row-reduction", "gemv", "reduction")


def vector_lanes(target: Any = None, bits: int = 32) -> int:
    """fp32 lanes of the target's vectors (``llvm_get_vector_width``), 8 when unknown."""
    import_tvm()
    width = 0
    if target is not None:
        try:
            from tvm.target.codegen import llvm_get_vector_width

            width = int(llvm_get_vector_width(target))
        except Exception:  # noqa: BLE001 - not an llvm target: a safe default
            width = 0
    return max((width if width > 0 else 256) // bits, 2)


def _extent(sch: Any, loop: Any) -> int | None:
    ext = sch.get(loop).extent
    try:
        return int(ext)
    except (TypeError, ValueError):
        return None


def _is_spatial(sch: Any, block: Any) -> bool:
    return all(int(iv.iter_type) == 0 for iv in sch.get(block).iter_vars)


def _leaf_blocks(sch: Any) -> list:
    """The blocks directly under the function's root block, in program order."""
    return list(sch.get_child_blocks(sch.get_sblock("root")))


def _realize(stmt: Any, name: str) -> Any:
    """The ``SBlockRealize`` of the block called ``name`` below ``stmt`` (or ``None``)."""
    from tvm import s_tir, tirx

    if isinstance(stmt, s_tir.SBlockRealize):
        if stmt.block.name_hint == name:
            return stmt
        return _realize(stmt.block.body, name)
    if isinstance(stmt, tirx.SeqStmt):
        for s in stmt.seq:
            got = _realize(s, name)
            if got is not None:
                return got
        return None
    body = getattr(stmt, "body", None)
    return _realize(body, name) if isinstance(body, tirx.Stmt) else None


def _inline_producers(sch: Any, blocks: list) -> list:
    """Inline every spatial block that is not the function's output into its consumers
    (forward), repeatedly; returns the blocks left."""
    left = list(blocks)
    changed = True
    while changed:
        changed = False
        for b in list(left[:-1]):
            if not _is_spatial(sch, b):
                continue
            try:
                sch.compute_inline(b)
            except Exception:  # noqa: BLE001 - an output, or not inlinable: keep it
                continue
            left.remove(b)
            changed = True
    return left


def _inline_consumers(sch: Any, blocks: list) -> list:
    """Inline spatial blocks after a reduction into it from behind (``reverse_compute_inline``)."""
    left = list(blocks)
    for b in reversed(list(left)):
        if b is left[0] or not _is_spatial(sch, b):
            continue
        try:
            sch.reverse_compute_inline(b)
        except Exception:  # noqa: BLE001 - not inlinable: keep it
            continue
        left.remove(b)
    return left


def schedule_spatial(sch: Any, block: Any, lanes: int, *, parallel: bool = True) -> bool:
    """Schedule one spatial block: its loops fused into ``[parallel] x [vector lanes]``
    (the lanes split off the innermost loop when its extent is a multiple of ``lanes``,
    else that loop kept serial).  Returns whether anything was done."""
    loops = sch.get_loops(block)
    exts = [_extent(sch, lp) for lp in loops]
    if not loops or any(e is None for e in exts):
        return False
    total = 1
    for e in exts:
        total *= e
    vec = None
    inner = loops[-1]
    if exts[-1] % lanes == 0 and exts[-1] >= lanes:
        outer_last, vec = sch.split(inner, factors=[None, lanes])
        outer = list(loops[:-1]) + ([outer_last] if exts[-1] > lanes else [])
    elif 4 <= exts[-1] < lanes:
        vec = inner
        outer = list(loops[:-1])
    else:
        outer = list(loops)
    if vec is not None:
        sch.vectorize(vec)
    if parallel and outer and total >= PARALLEL_MIN:
        fused = sch.fuse(*outer) if len(outer) > 1 else outer[0]
        if (_extent(sch, fused) or 1) > 1:
            sch.parallel(fused)
    return vec is not None or (parallel and total >= PARALLEL_MIN)


def _rule_injective(sch: Any, lanes: int) -> bool:
    blocks = _leaf_blocks(sch)
    if not blocks or not all(_is_spatial(sch, b) for b in blocks):
        return False
    done = False
    for b in _inline_producers(sch, blocks):
        done = schedule_spatial(sch, b, lanes) or done
    return done


def _schedule_reduction_block(sch: Any, block: Any, lanes: int) -> bool:
    """Leading spatial loops fused and parallel; the innermost spatial loop moved under the
    reduction loops and vectorised when the block's loops are ``spatial... reduce...``."""
    tvm = import_tvm()
    loops = sch.get_loops(block)
    exts = [_extent(sch, lp) for lp in loops]
    if not loops or any(e is None for e in exts):
        return False
    # per loop: 0 spatial, 2 reduction -- loops bound one-to-one to plain iterators only
    realize = _realize(sch.mod["main"].body, sch.get(block).name_hint)
    if realize is None:
        return False
    kind_of = {}
    for iv, val in zip(realize.block.iter_vars, realize.iter_values, strict=True):
        if not isinstance(val, tvm.tirx.Var):
            return False
        kind_of[val.name] = int(iv.iter_type)
    kinds = [kind_of.get(sch.get(lp).loop_var.name, -1) for lp in loops]
    if -1 in kinds and exts[kinds.index(-1)] != 1:
        return False
    kinds = [0 if k == -1 else k for k in kinds]
    if 2 not in kinds:
        return False
    first_r = kinds.index(2)
    if any(k == 0 for k in kinds[first_r:]):
        return False          # spatial loops inside the reduction: leave as it is
    n_sp = first_r
    if n_sp == 0:
        return False
    sp, red = list(loops[:n_sp]), list(loops[n_sp:])
    total = 1
    for e in exts[:n_sp]:
        total *= e
    vec_loop = None
    last = exts[n_sp - 1]
    width = next((w for w in (lanes, lanes // 2, 4) if w >= 4 and last % w == 0), None)
    if width is not None and total // width >= 1:
        o, vec_loop = sch.split(sp[-1], factors=[None, width])
        sp = sp[:-1] + [o]
        sch.reorder(*sp, *red, vec_loop)
    fused = sch.fuse(*sp) if len(sp) > 1 else sp[0]
    work = total
    for e in exts[n_sp:]:
        work *= e
    if work >= PARALLEL_MIN and (_extent(sch, fused) or 1) > 1:
        sch.parallel(fused)
    if vec_loop is not None:
        try:
            sch.vectorize(vec_loop)       # the init stays in the block: a guarded store
        except Exception:  # noqa: BLE001 - the vectorizer refuses this body: leave it serial
            pass
    return True


def _rule_reduction(sch: Any, lanes: int) -> bool:
    blocks = _leaf_blocks(sch)
    if not blocks or all(_is_spatial(sch, b) for b in blocks):
        return False
    blocks = _inline_producers(sch, blocks)
    blocks = _inline_consumers(sch, blocks)
    done = False
    for b in blocks:
        if _is_spatial(sch, b):
            done = schedule_spatial(sch, b, lanes) or done
        else:
            done = _schedule_reduction_block(sch, b, lanes) or done
    return done


def _dlight(rule_cls: Any, func: Any, target: Any) -> Any:
    out = rule_cls().apply(func, target, False)
    if isinstance(out, list):
        out = out[0] if out else None
    return out


def schedule_generic(func: Any, target: Any) -> tuple[Any, str] | None:
    """``(scheduled func, rule name)`` for a non-MAC PrimFunc, or ``None`` when no rule
    applies (symbolic extents, opaque blocks, ...) -- then TVM's default lowering stays."""
    tvm = import_tvm()
    from tvm import s_tir
    from tvm.s_tir import dlight

    lanes = vector_lanes(target)
    mod = tvm.IRModule({"main": func})
    for rule in RULES:
        try:
            if rule in ("row-reduction", "gemv"):
                cls = dlight.cpu.Reduction if rule == "row-reduction" else dlight.cpu.GEMV
                with target:
                    sch = _dlight(cls, func, target)
                if sch is None:
                    continue
                return sch.mod["main"], rule
            sch = s_tir.Schedule(mod)
            ok = (_rule_injective if rule == "injective" else _rule_reduction)(sch, lanes)
        except Exception:  # noqa: BLE001 - this rule does not fit: try the next
            continue
        if ok:
            return sch.mod["main"], rule
    return None
