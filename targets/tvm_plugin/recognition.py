"""Recognise matmul / batched matmul / conv2d in a TensorIR ``PrimFunc`` (after Relax
legalization and ``FuseTIR``) and name its loops after our dims.

A function is recognised when it holds exactly one *MAC block*: a reduction block whose
body is ``O[out] = O[out] + x[..] * y[..]`` (operands possibly ``Cast``), each of its
iterators bound to one loop of its own nest (``T.axis.remap``), and its loops carrying
nothing else.  The op is read from which iterators index which buffer:

* **matmul**: two spatial iterators ``i`` (in ``x`` only) and ``j`` (in ``y`` only) and
  one reduction ``k`` (in both); either operand may be transposed (``x[k, i]``,
  ``y[j, k]``).  ``P = i``, ``M = j``, ``C = k`` (our ``matmul(M, K, N)``).
* **bmm**: as matmul plus batch iterators indexing the output and both operands
  (``N``); several batch iterators (``[b, h, s, k]``) are fused into one ``N`` loop.
* a matmul whose *activation* has extra leading dims (``x[b, s, k] @ y[k, n]``, what
  ``relax.matmul`` gives for a 3-D by 2-D product) fuses them into ``P``.
* **conv2d** NCHW: output ``[n, f, y, x]``, input ``[n, c, y*s + ry*d, x*s + rx*d]``,
  weight ``[f, c, ry, rx]`` (OIHW) or any other order of those four (HWIO
  ``[ry, rx, c, f]`` is what :func:`targets.tvm_plugin.relax_pass.conv_weights_hwio_pass`
  makes), square stride and dilation.  ``vector_dim`` is ``"M"`` when the weights have the
  output channel innermost (the lanes then span output channels: one weight vector load per
  FMA group, the input a broadcast scalar), else ``"P"`` (the output width).  Padding is
  read from a pad block in the same function (``pad_temp = if_then_else(..., X[.., h - p,
  w - p], 0)``); without one the input is taken as already padded.

Everything else (grouped/depthwise convs, NHWC, non-square strides, fused prologues that
compute an operand in the same function, reductions that are not a MAC, elementwise
functions) is *not* recognised; :func:`recognize` returns ``None`` for it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from math import prod
from typing import Any

from mapspace.errors import MapspaceError
from mapspace.problem import Problem, bmm, conv2d, matmul
from targets.tvm_common import OpSpec, import_tvm, op_spec

# tvm is imported inside the functions that use it (import_tvm(), `from tvm import ...`):
# it is heavy (~3 s) and optional, and `import targets` must work without it


@dataclass(frozen=True)
class MacBlock:
    """A recognised MAC block.

    ``groups`` maps each of our dims to the block iterators (their loop-variable names,
    outermost first) it covers; a dim covering several loops has them fused before
    scheduling.  ``dtype`` is the operands' element type, ``word_bits`` its width;
    ``other_blocks`` the function's other blocks, ``epilogue`` those after the MAC block.
    """

    func: str
    block: str
    spec: OpSpec
    problem: Problem
    groups: dict[str, tuple[str, ...]]
    dtype: str
    other_blocks: tuple[str, ...] = ()
    epilogue: tuple[str, ...] = ()
    #: the output dim the vector lanes span (``None``: the op's default, see targets.cpu)
    vector_dim: str | None = None

    @property
    def kind(self) -> str:
        return self.spec.kind

    @property
    def word_bits(self) -> int:
        m = re.search(r"(\d+)$", self.dtype)
        return int(m.group(1)) if m else 32

    def shape_key(self) -> tuple:
        """What a cached mapping depends on: op kind, sizes, conv geometry, word width."""
        s = self.spec
        return (s.kind, tuple(sorted(s.sizes.items())), s.stride, s.padding, s.dilation,
                s.H, s.W, self.word_bits, self.vector_dim)


# ------------------------------------------------------------------ IR walking
def _blocks(stmt: Any, out: list[tuple[Any, Any]]) -> None:
    """Collect ``(SBlockRealize, SBlock)`` pairs below ``stmt`` (pre-order)."""
    from tvm import s_tir, tirx

    if isinstance(stmt, s_tir.SBlockRealize):
        out.append((stmt, stmt.block))
        _blocks(stmt.block.body, out)
    elif isinstance(stmt, tirx.SeqStmt):
        for s in stmt.seq:
            _blocks(s, out)
    elif hasattr(stmt, "body") and isinstance(getattr(stmt, "body", None), tirx.Stmt):
        _blocks(stmt.body, out)


def leaf_blocks(func: Any) -> list[Any]:
    """The non-root ``SBlock`` nodes of ``func``, in program order."""
    import_tvm()
    found: list[tuple[Any, Any]] = []
    _blocks(func.body, found)
    return [b for _, b in found if b.name_hint != "root"]


def _affine(expr: Any) -> dict[Any, int] | None:
    """``expr`` as ``{Var: coef, None: const}``; ``None`` when not affine in integers."""
    from tvm import tirx

    if isinstance(expr, tirx.Var):
        return {expr: 1}
    if isinstance(expr, tirx.IntImm):
        return {None: int(expr.value)}
    if isinstance(expr, tirx.Add | tirx.Sub):
        a, b = _affine(expr.a), _affine(expr.b)
        if a is None or b is None:
            return None
        sign = 1 if isinstance(expr, tirx.Add) else -1
        out = dict(a)
        for k, v in b.items():
            out[k] = out.get(k, 0) + sign * v
        return {k: v for k, v in out.items() if v != 0}
    if isinstance(expr, tirx.Mul):
        a, b = _affine(expr.a), _affine(expr.b)
        if a is None or b is None:
            return None
        if set(a) == {None}:
            a, b = b, a
        if set(b) != {None}:
            return None
        c = b[None]
        return {k: v * c for k, v in a.items() if v * c != 0}
    if isinstance(expr, tirx.Cast):
        return _affine(expr.value)
    return None


def _load(expr: Any) -> Any | None:
    from tvm import ir, tirx

    while isinstance(expr, tirx.Cast):
        expr = expr.value
    return expr if isinstance(expr, ir.expr.TensorLoad) else None


def _buf(node: Any) -> Any:
    """The buffer (a ``Var`` in TVM 0.27) a load reads or a store writes."""
    return node.source if hasattr(node, "source") else node.buffer


def _mac_operands(block: Any) -> tuple[Any, Any, Any] | None:
    """``(store, x, y)`` when ``block`` is ``O[i] = O[i] + x * y``."""
    from tvm import tirx

    st = block.body
    if not isinstance(st, tirx.BufferStore) or block.init is None:
        return None
    v = st.value
    if not isinstance(v, tirx.Add):
        return None
    for acc, mul in ((v.a, v.b), (v.b, v.a)):
        acc_l = _load(acc)
        while isinstance(mul, tirx.Cast):
            mul = mul.value
        if acc_l is None or not isinstance(mul, tirx.Mul):
            continue
        if not _buf(acc_l).same_as(st.buffer) or len(acc_l.indices) != len(st.indices):
            continue
        if not all(a.same_as(b) for a, b in zip(acc_l.indices, st.indices, strict=True)):
            continue
        x, y = _load(mul.a), _load(mul.b)
        if x is None or y is None:
            return None
        return st, x, y
    return None


def _single_vars(load: Any) -> list[Any] | None:
    out = []
    for e in load.indices:
        a = _affine(e)
        if a is None or len(a) != 1 or next(iter(a.values())) != 1 or None in a:
            return None
        out.append(next(iter(a)))
    return out


def _vars_in(load: Any) -> set[Any]:
    out: set[Any] = set()
    for e in load.indices:
        a = _affine(e)
        if a is not None:
            out |= {k for k in a if k is not None}
    return out


# ---------------------------------------------------------------- recognition
def recognize(func: Any, name: str = "main") -> MacBlock | None:
    """The MAC block of ``func`` and its op, or ``None`` when ``func`` is not one of the
    recognised forms (see the module doc), including symbolic (dynamic) extents."""
    import_tvm()
    try:
        return _recognize(func, name)
    except (TypeError, ValueError, AttributeError, MapspaceError):
        return None   # symbolic shapes (int() of a Var), unexpected IR: not ours


def _recognize(func: Any, name: str) -> MacBlock | None:
    found: list[tuple[Any, Any]] = []
    _blocks(func.body, found)
    macs = []
    for realize, block in found:
        ops = _mac_operands(block)
        if ops is not None:
            macs.append((realize, block, ops))
    if len(macs) != 1:
        return None
    realize, block, (st, x, y) = macs[0]
    # each iterator bound to a distinct plain loop var
    loop_of: dict[Any, str] = {}
    for iv, val in zip(block.iter_vars, realize.iter_values, strict=True):
        if not _is_var(val):
            return None
        loop_of[iv.var] = val.name
    if len(set(loop_of.values())) != len(loop_of):
        return None
    ext = {iv.var: int(iv.dom.extent) for iv in block.iter_vars}
    reduce = {iv.var for iv in block.iter_vars if int(iv.iter_type) == 2}
    spatial = [iv.var for iv in block.iter_vars if iv.var not in reduce]
    if not reduce or any(int(iv.iter_type) not in (0, 2) for iv in block.iter_vars):
        return None
    out_vars = _single_vars(st)
    if out_vars is None or set(out_vars) & reduce:
        return None
    names = [b.name_hint for _, b in found if b.name_hint != "root"]
    others = tuple(n for n in names if n != block.name_hint)
    epilogue = tuple(names[names.index(block.name_hint) + 1:])
    dtype = str(_buf(x).dtype)
    try:
        spec, problem, groups, vdim = _classify(func, found, block, st, x, y, out_vars,
                                                spatial, reduce, ext, name)
    except _NotRecognised:
        return None
    return MacBlock(func=name, block=block.name_hint, spec=spec, problem=problem,
                    groups={d: tuple(loop_of[v] for v in vs) for d, vs in groups.items()},
                    dtype=dtype, other_blocks=others,
                    epilogue=epilogue, vector_dim=vdim)


def _is_var(e: Any) -> bool:
    from tvm import tirx

    return isinstance(e, tirx.Var)


class _NotRecognised(Exception):
    pass


def _classify(func, found, block, st, x, y, out_vars, spatial, reduce, ext, name):
    xs, ys = _single_vars(x), _single_vars(y)
    if xs is not None and ys is not None and len(reduce) == 1:
        return _classify_matmul(x, y, xs, ys, out_vars, spatial, reduce, ext, name)
    if len(reduce) == 3 and len(out_vars) == 4:
        return _classify_conv(func, found, x, y, xs, ys, out_vars, reduce, ext, name)
    raise _NotRecognised


def _classify_matmul(x, y, xs, ys, out_vars, spatial, reduce, ext, name):
    (k,) = reduce
    if k not in xs or k not in ys or len(set(xs)) != len(xs) or len(set(ys)) != len(ys):
        raise _NotRecognised
    sx, sy = set(xs) - {k}, set(ys) - {k}
    if (sx | sy) - set(out_vars) or set(spatial) - set(out_vars):
        raise _NotRecognised
    big = [v for v in out_vars if ext[v] > 1]
    batch = [v for v in out_vars if v in sx and v in sy]
    rows = [v for v in out_vars if v in sx and v not in sy]
    cols = [v for v in out_vars if v in sy and v not in sx]
    if any(v not in batch + rows + cols for v in big):
        raise _NotRecognised   # an output dim indexing no operand (broadcast) of size > 1
    # prefer the operand whose free dims come first in the output as the activation
    if rows and cols and out_vars.index(cols[0]) < out_vars.index(rows[0]):
        rows, cols = cols, rows
    if not rows or not cols:
        raise _NotRecognised
    # the fused groups must be consecutive in the output (and hence in the loop nest)
    for g in (batch, rows, cols):
        pos = [out_vars.index(v) for v in g]
        if pos and pos != list(range(pos[0], pos[0] + len(pos))):
            raise _NotRecognised
    K = ext[k]
    Mr, Nc = prod(ext[v] for v in rows), prod(ext[v] for v in cols)
    if batch and prod(ext[v] for v in batch) > 1:
        B = prod(ext[v] for v in batch)
        problem = bmm(B, Mr, K, Nc, name=name)
        groups = {"N": tuple(batch), "P": tuple(rows), "M": tuple(cols), "C": (k,)}
    else:
        problem = matmul(Mr, K, Nc, name=name)
        groups = {"P": tuple(rows), "M": tuple(cols), "C": (k,)}
    return op_spec(problem), problem, groups, None


def _classify_conv(func, found, x, y, xs, ys, out_vars, reduce, ext, name):
    # the weight is indexed by plain vars, the input by window sums
    if ys is None and xs is not None:
        x, y, xs, ys = y, x, ys, xs
    if ys is None or len(ys) != 4 or len(x.indices) != 4:
        raise _NotRecognised
    n, f, q, p = out_vars
    if set(ys) != {f} | set(reduce) or len(set(ys)) != 4:
        raise _NotRecognised
    ax = [_affine(e) for e in x.indices]
    if any(a is None for a in ax) or ax[0] != {n: 1} or len(ax[1]) != 1 or \
            next(iter(ax[1].values())) != 1:
        raise _NotRecognised
    c = next(iter(ax[1]))
    if c not in reduce:
        raise _NotRecognised
    h, w = ax[2], ax[3]
    if h.get(None) or w.get(None) or len(h) != 2 or len(w) != 2 or q not in h or p not in w:
        raise _NotRecognised
    (ry,), (rx,) = set(h) - {q}, set(w) - {p}
    if {c, ry, rx} != set(reduce):
        raise _NotRecognised
    sh, dh, sw, dw = h[q], h[ry], w[p], w[rx]
    if (sh, dh) != (sw, dw) or sh < 1 or dh < 1:
        raise _NotRecognised
    Hp, Wp = (int(s) for s in _buf(x).shape[2:])
    pad, H, W = _padding(found, _buf(x))
    if pad is None:
        pad, H, W = 0, Hp, Wp
    try:
        problem = conv2d(ext[n], ext[c], H, W, ext[f], ext[rx], ext[ry], stride=sw,
                         padding=pad, dilation=dw, name=name)
        spec = op_spec(problem)
    except MapspaceError as e:
        raise _NotRecognised from e
    if (spec.sizes["P"], spec.sizes["Q"]) != (ext[p], ext[q]):
        raise _NotRecognised
    groups = {"N": (n,), "M": (f,), "Q": (q,), "P": (p,), "C": (c,), "S": (ry,), "R": (rx,)}
    return spec, problem, groups, ("M" if ys[-1].same_as(f) else "P")


def _padding(found, buf) -> tuple[int | None, int, int]:
    """``(pad, H, W)`` of the symmetric pad block producing ``buf``; ``(None, 0, 0)``."""
    from tvm import ir, tirx

    for _, b in found:
        st = b.body
        if not isinstance(st, tirx.BufferStore) or not st.buffer.same_as(buf):
            continue
        v = st.value
        if not (isinstance(v, ir.expr.Call) and v.op.name.endswith("if_then_else")):
            return None, 0, 0
        src = _load(v.args[1])
        if src is None or len(src.indices) != 4:
            return None, 0, 0
        offs = []
        for e in src.indices[2:]:
            a = _affine(e)
            if a is None:
                return None, 0, 0
            offs.append(-a.get(None, 0))
        H, W = (int(s) for s in _buf(src).shape[2:])
        Hp, Wp = (int(s) for s in buf.shape[2:])
        ph, pw = offs
        if ph != pw or Hp != H + 2 * ph or Wp != W + 2 * pw:
            return None, 0, 0
        return ph, H, W
    return None, 0, 0


def loops_by_dim(sch: Any, mac: MacBlock) -> tuple[Any, dict[str, Any]]:
    """``(block, {dim: LoopRV})`` in ``sch`` (working on ``mac``'s function), fusing the
    loops of a dim that covers several iterators."""
    block = sch.get_sblock(mac.block)
    loops = sch.get_loops(block)
    by_name = {sch.get(lp).loop_var.name: lp for lp in loops}
    out: dict[str, Any] = {}
    for d, names in mac.groups.items():
        rvs = [by_name[n] for n in names]
        out[d] = sch.fuse(*rvs) if len(rvs) > 1 else rvs[0]
    return block, out
