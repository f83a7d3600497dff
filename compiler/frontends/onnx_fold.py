"""Static shapes and constant folding for ONNX models as exporters write them.

``fold_model(model, dim_values, where) -> ModelProto`` turns what ``torch.onnx.export``
(TorchScript or ``torch.export`` based) and Hugging Face exports produce into a graph whose
shape and mask plumbing is gone:

1. local functions are inlined (``onnx.inliner``);
2. symbolic graph-input dimensions take their values from ``dim_values``;
3. until nothing changes: ``onnx.shape_inference.infer_shapes(data_prop=True)``, then every
   node whose inputs are all constants (initializers, ``Constant`` nodes, earlier folds) is
   evaluated once with ONNX's own reference implementation (``onnx.reference``) and replaced
   by its result; ``Shape`` and ``Size`` of a tensor whose shape is static fold the same
   way.  So ``Shape -> Gather -> Unsqueeze -> Concat -> Reshape`` becomes a constant target
   shape, ``ConstantOfShape``/``Range``/``Expand`` of static sizes become constants, and a
   causal or padding mask computed from constants is a constant;
4. ``Identity``, inference ``Dropout`` and ``Cast`` to a tensor's own type are dropped
   (their readers read the input), so recognised chains are seen through them.

Nothing is folded that reads a graph input: a mask computed from an ``attention_mask``
input stays as host ops, with inferred shapes.  Random ops are never folded.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from compiler.errors import CompilerError

#: ops never evaluated at compile time (their value is not a function of their inputs)
_NEVER_FOLD = frozenset({"RandomNormal", "RandomNormalLike", "RandomUniform",
                         "RandomUniformLike", "Multinomial", "Bernoulli", "If", "Loop",
                         "Scan"})
#: a folded constant larger than this stays a computation (it would bloat the graph)
MAX_FOLD_ELEMENTS = 1 << 26


def opset_of(model: Any) -> int:
    """The default-domain opset a model imports (1 when it imports none)."""
    for o in model.opset_import:
        if o.domain in ("", "ai.onnx"):
            return int(o.version)
    return 1


def _static_shape(vi: Any) -> tuple[int, ...] | None:
    t = vi.type.tensor_type
    if not t.HasField("shape"):
        return None
    dims = []
    for d in t.shape.dim:
        if not d.HasField("dim_value"):
            return None
        dims.append(int(d.dim_value))
    return tuple(dims)


def _bind_inputs(model: Any, dims: Mapping[str, int], where: str) -> None:
    """Give symbolic dims of graph inputs their values (in place)."""
    init = {t.name for t in model.graph.initializer}
    for vi in model.graph.input:
        if vi.name in init:
            continue
        for d in vi.type.tensor_type.shape.dim:
            if d.HasField("dim_value"):
                continue
            sym = d.dim_param or "?"
            if d.dim_param in dims:
                v = int(dims[d.dim_param])
                d.Clear()
                d.dim_value = v
            else:
                raise CompilerError(
                    f"graph input {vi.name!r} has a symbolic dimension {sym!r}; give it a "
                    f"size: --dim {sym}=N (Python: dim_values={{{sym!r}: N}})", where=where)


def _evaluate(node: Any, args: list[np.ndarray | None], opset: int) -> list[np.ndarray] | None:
    """The node's outputs computed by ``onnx.reference``, or ``None`` when it cannot be."""
    from onnx import helper
    from onnx.reference import ReferenceEvaluator

    names = [f"i{j}" if a is not None else "" for j, a in enumerate(args)]
    n = helper.make_node(node.op_type, names, [f"o{j}" for j in range(len(node.output))],
                         domain=node.domain)
    n.attribute.extend(node.attribute)
    try:
        ev = ReferenceEvaluator(n, opsets={"": opset})
        outs = ev.run(None, {nm: a for nm, a in zip(names, args, strict=True) if nm})
    except Exception:  # an op or attribute the reference does not implement: keep the node
        return None
    return [np.asarray(o) for o in outs]


def _shape_value(node: Any, shape: tuple[int, ...]) -> np.ndarray:
    """What ``Shape`` (with its ``start``/``end``) or ``Size`` gives for a static shape."""
    from onnx import helper

    if node.op_type == "Size":
        return np.array(int(np.prod(shape, dtype=np.int64)), np.int64)
    a = {x.name: helper.get_attribute_value(x) for x in node.attribute}
    rank = len(shape)
    start, end = int(a.get("start", 0)), int(a.get("end", rank))
    start = min(max(start + rank if start < 0 else start, 0), rank)
    end = min(max(end + rank if end < 0 else end, 0), rank)
    return np.array(shape[start:end], np.int64)


def _fold_once(model: Any, opset: int) -> bool:
    """One pass of constant folding over ``model`` (in place); True when it changed it."""
    from onnx import numpy_helper

    g = model.graph
    consts: dict[str, np.ndarray] = {t.name: numpy_helper.to_array(t) for t in g.initializer}
    shapes = {vi.name: s for vi in (*g.input, *g.value_info, *g.output)
              if (s := _static_shape(vi)) is not None}
    inputs = {vi.name for vi in g.input} - set(consts)
    keep, folded = [], False
    for node in g.node:
        outs = None
        if node.domain in ("", "ai.onnx") and node.op_type not in _NEVER_FOLD:
            live = [t for t in node.input if t]
            if node.op_type in ("Shape", "Size") and node.input[0] in shapes \
                    and node.input[0] not in consts:
                outs = [_shape_value(node, shapes[node.input[0]])]
            elif all(t in consts and t not in inputs for t in live):
                outs = _evaluate(node, [consts[t] if t else None for t in node.input], opset)
        if outs is not None and len(outs) == len(node.output) \
                and all(o.size <= MAX_FOLD_ELEMENTS for o in outs):
            for name, v in zip(node.output, outs, strict=True):
                if name:
                    consts[name] = v
            folded = True
            continue
        keep.append(node)
    if not folded:
        return False
    used = {t for n in keep for t in n.input} | {o.name for o in g.output}
    old = {t.name for t in g.initializer}
    new_init = [numpy_helper.from_array(np.asarray(consts[t]), t) for t in consts
                if t in used and t not in old]
    kept_init = [t for t in g.initializer if t.name in used]
    del g.node[:]
    g.node.extend(keep)
    del g.initializer[:]
    g.initializer.extend(kept_init + new_init)
    # values of folded tensors are initializers now; drop their stale value_info
    names = {t.name for t in g.initializer}
    vis = [vi for vi in g.value_info if vi.name not in names]
    del g.value_info[:]
    g.value_info.extend(vis)
    return True


def _drop_noops(model: Any) -> None:
    """Remove ``Identity``, inference ``Dropout`` and ``Cast`` to the type a tensor already
    has (in place): their consumers read the input instead, so patterns see through them.
    A node whose output is a graph output stays."""
    g = model.graph
    elem = {vi.name: vi.type.tensor_type.elem_type
            for vi in (*g.input, *g.value_info, *g.output)}
    elem.update({t.name: t.data_type for t in g.initializer})
    outputs = {o.name for o in g.output}
    read = {t for n in g.node for t in n.input}
    alias: dict[str, str] = {}
    keep = []
    for n in g.node:
        src = alias.get(n.input[0], n.input[0]) if n.input else ""
        noop = n.op_type == "Identity" or (
            n.op_type == "Cast" and elem.get(n.input[0]) and elem.get(n.input[0]) == elem.get(
                n.output[0])) or (
            n.op_type == "Dropout" and len([t for t in n.input if t]) == 1
            and not any(o in read or o in outputs for o in n.output[1:] if o))
        if noop and n.domain in ("", "ai.onnx") and n.output[0] not in outputs:
            alias[n.output[0]] = src
            continue
        keep.append(n)
    if not alias:
        return
    for n in keep:
        for j, t in enumerate(n.input):
            if t in alias:
                n.input[j] = alias[t]
    del g.node[:]
    g.node.extend(keep)


def _check_initializers(model: Any, where: str) -> None:
    """Every initializer has non-negative dimensions and as much data as they say (numpy
    would raise deep inside the import otherwise)."""
    from onnx import helper

    for t in model.graph.initializer:
        dims = list(t.dims)
        if any(d < 0 for d in dims):
            raise CompilerError(f"initializer {t.name!r} has a negative dimension {dims}",
                                where=where)
        if t.data_location != 0 or not t.raw_data:  # external or typed-field data
            continue
        try:
            size = helper.tensor_dtype_to_np_dtype(t.data_type).itemsize
        except (KeyError, TypeError, ValueError):
            continue
        if len(t.raw_data) != size * int(np.prod(dims, dtype=object)):
            raise CompilerError(f"initializer {t.name!r} of shape {dims} holds "
                                f"{len(t.raw_data):,} bytes, not {size} per element",
                                where=where)


def fold_model(model: Any, dim_values: Mapping[str, int] | None, where: str) -> Any:
    """A copy of ``model`` with static shapes inferred and constant subgraphs folded (see
    the module docstring).  Raises :class:`CompilerError` when shape inference fails."""
    import onnx
    from onnx import inliner, shape_inference

    m = onnx.ModelProto()
    m.CopyFrom(model)
    if m.functions:
        m = inliner.inline_local_functions(m)
    _bind_inputs(m, dict(dim_values or {}), where)
    _check_initializers(m, where)
    opset = opset_of(m)
    for _ in range(16):  # each round folds at least one node; real models need 2-4
        try:
            m = shape_inference.infer_shapes(m, data_prop=True)
        except Exception as e:
            raise CompilerError(f"ONNX shape inference failed: {e}", where=where) from None
        if not _fold_once(m, opset):
            break
    _drop_noops(m)
    return m
