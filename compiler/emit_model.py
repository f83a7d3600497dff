"""Code for every MAC op of a compiled model, and a whole-model run checked against numpy.

``emit_model(result, code_dir, run=True)`` takes a :class:`~compiler.pipeline.CompileResult`:

* ops that share a problem and a mapping share one kernel (``k0``, ``k1``, ...); each
  kernel is built by the target (``targets.<t>.model.build_kernels``): for ``cpu`` one TVM
  module ``model.so`` with a function per kernel, for ``gemmini`` one C program ``model``
  over the functional Gemmini model with a kernel table; ``kernels.csv`` lists which ops
  use which kernel;
* depthwise convolutions are MAC ops with kernels too (gemmini: one channel at a time
  through the array, as Gemmini's ``tiled_conv_dw``); every non-MAC op (softmax, LayerNorm,
  GELU, adds, reshapes, ...) and any MAC op no emitter can express (asymmetric padding,
  non-square strides) run **on the host in numpy** — the run reports them;
* ``run=True`` executes the model as read by the front end (``result.source_graph``; fusion
  keeps MAC op names, so every MAC op finds its kernel) on seeded random inputs and the
  model's own weights (seeded random ones, :func:`compiler.execute.random_values`, for a
  zoo model, which has none), once with the kernels and once with numpy for
  the MAC ops, and compares the outputs.  ``cpu`` kernels compute in fp32 (compared with a
  tolerance against float64 numpy); ``gemmini`` kernels are int8: each MAC op quantizes its
  activations per tensor and its weights per output channel (symmetric, to ±127; a
  depthwise convolution per channel), runs the kernel and dequantizes; the reference does
  the same quantization with exact integer numpy products, so the two runs must agree bit
  for bit.  The int8 run's SQNR against the fp32
  numpy model is reported as well.
"""

from __future__ import annotations

import csv
import math
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from compiler.errors import CompilerError
from compiler.execute import random_values, run_graph
from compiler.graph import MAC_KINDS, Op
from compiler.lowering import shape_key
from compiler.passes.quantize import channel_scales, quantize_values, tensor_scale
from mapspace.errors import MapspaceError
from mapspace.problem import Problem
from targets.registry import emitting_targets, get_target
from targets.tvm_common import op_spec, reference


@dataclass(frozen=True)
class KernelInfo:
    """One emitted kernel: its name, op kind, problem sizes and the ops that call it."""

    name: str
    kind: str
    problem: str
    ops: tuple[str, ...]


@dataclass(frozen=True)
class ModelRun:
    """A whole-model run with the emitted kernels against the numpy reference."""

    outputs: tuple[str, ...]
    correct: bool
    max_abs_error: float
    reference_max_abs: float
    kernel_calls: int
    host_kinds: tuple[tuple[str, int], ...]   # non-MAC op kinds run in numpy on the host
    host_mac_ops: tuple[str, ...]             # MAC ops without a kernel (run in numpy)
    sqnr_db: float | None                     # gemmini: int8 model vs the fp32 model
    seconds: float
    counters: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class ModelEmission:
    """What :func:`emit_model` wrote and, with ``run``, the check of the whole model."""

    target: str
    dtype: str
    code_dir: Path
    kernels: tuple[KernelInfo, ...]
    files: tuple[Path, ...]
    run: ModelRun | None = None

    def summary(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "target": self.target, "dtype": self.dtype, "code_dir": str(self.code_dir),
            "kernels": len(self.kernels),
            "mac_ops": sum(len(k.ops) for k in self.kernels)}
        if self.run is not None:
            r = self.run
            out["run"] = {"correct": r.correct, "max_abs_error": r.max_abs_error,
                          "reference_max_abs": r.reference_max_abs,
                          "kernel_calls": r.kernel_calls, "host_ops": dict(r.host_kinds),
                          "host_mac_ops": list(r.host_mac_ops), "sqnr_db": r.sqnr_db,
                          "seconds": r.seconds, "counters": r.counters}
        return out


def _kind(problem: Problem) -> str | None:
    """The emittable op kind of ``problem``; ``None`` for ops the emitters cannot express
    (they run on the host)."""
    try:
        return op_spec(problem).kind
    except MapspaceError:
        return None


def _kernels(result: Any) -> tuple[list[tuple[str, Problem, Any]], dict[str, str],
                                   list[KernelInfo]]:
    """Distinct (problem, mapping) pairs -> kernels ``k<i>``; op name -> kernel name."""
    groups: dict[tuple, list[str]] = {}
    kinds: dict[tuple, str] = {}
    for name, p in result.problems.items():
        if (kind := _kind(p)) is not None:
            key = (shape_key(p), id(result.mappings[name]))
            groups.setdefault(key, []).append(name)
            kinds[key] = kind
    kernels, kernel_of, infos = [], {}, []
    for i, (key, names) in enumerate(groups.items()):
        p = result.problems[names[0]]
        k = f"k{i}"
        kernels.append((k, p, result.mappings[names[0]]))
        infos.append(KernelInfo(k, kinds[key], "x".join(str(s) for s in p.sizes), tuple(names)))
        kernel_of.update(dict.fromkeys(names, k))
    return kernels, kernel_of, infos


def _int8_mac(kernel):
    """A MAC hook running ``kernel(op, problem, qa, qb) -> int32`` on operands quantized as
    the quantize pass does (symmetric, ±127): activations per tensor, weights per output
    channel."""
    def mac(op: Op, problem: Problem, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        spec = op_spec(problem)
        sa = tensor_scale(a, 8)
        if spec.kind == "matmul":        # B[C, M]: a scale per output column
            sb = channel_scales(b, 8)
        elif spec.kind == "conv2d":      # W[M, C, S, R]: a scale per filter
            sb = channel_scales(b.reshape(b.shape[0], -1).T, 8).reshape(-1, 1, 1, 1)
        elif spec.kind == "depthwise_conv2d":  # W[C, S, R]: a scale per channel's filter
            sb = channel_scales(b.reshape(b.shape[0], -1).T, 8).reshape(-1, 1, 1)
        else:                            # bmm: both operands are activations
            sb = tensor_scale(b, 8)
        qa = quantize_values(a, sa, 8).astype(np.int8)
        qb = quantize_values(b, sb, 8).astype(np.int8)
        z = kernel(op, problem, qa, qb).astype(np.float64)
        conv = spec.kind in ("conv2d", "depthwise_conv2d")
        return z * sa * (sb.reshape(1, -1, 1, 1) if conv else sb)

    return mac


@dataclass(frozen=True)
class BuiltModel:
    """The kernels of a compiled model, built (:func:`build_model`)."""

    target: str
    dtype: str
    code_dir: Path
    kernels: tuple[KernelInfo, ...]
    kernel_of: dict[str, str]   # MAC op name -> kernel name
    built: Any                  # the target's build: ``.call(kernel, a, b)``, ``.files``
    files: tuple[Path, ...]


def build_model(result: Any, code_dir: str | Path, *, seed: int = 0) -> BuiltModel:
    """Build every kernel of ``result`` into ``code_dir`` (see the module docstring).
    Raises :class:`CompilerError` for a target without a model emitter or a model without a
    graph or without a MAC op the target can run."""
    target = result.target
    t = get_target(target, where="compile --emit")
    if t.kernels is None:
        raise CompilerError(f"no code emitter for target {target!r} (emitters: "
                            f"{', '.join(emitting_targets())})", where="compile --emit",
                            key="target")
    if result.graph is None:
        raise CompilerError("the compile result carries no graph", where="compile --emit")
    dtype = str(t.default_dtype)
    kernels, kernel_of, infos = _kernels(result)
    if not kernels:
        raise CompilerError(f"model {result.model!r} has no MAC op {target} can run",
                            where="compile --emit")
    out = Path(code_dir)
    out.mkdir(parents=True, exist_ok=True)
    # compile searched each mapping in the target's space, emitter rules included
    arch = t.arch(dtype)
    builder = t.kernel_builder()
    built = builder.build_kernels(kernels, arch, dtype=dtype, out_dir=out)
    with open(out / "kernels.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["kernel", "kind", "problem", "ops"])
        for k in infos:
            w.writerow([k.name, k.kind, k.problem, " ".join(k.ops)])
    files = (*built.files, out / "kernels.csv")
    return BuiltModel(target, dtype, out, tuple(infos), kernel_of, built, files)


def model_mac(result: Any, built: BuiltModel | None,
              calls: list[int] | None = None) -> Callable:
    """The MAC hook of :func:`compiler.execute.run_graph` for ``result``'s target: each MAC op
    through its kernel in ``built`` (``None``: numpy in its place; a MAC op without a kernel
    always runs in numpy), int8-quantized on an int8 target (see the module docstring).
    ``calls[0]`` counts kernel calls."""
    def on_kernel(op: Op, problem: Problem, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        if built is None or op.name not in built.kernel_of:
            return reference(op_spec(problem), a, b)
        if calls is not None:
            calls[0] += 1
        return built.built.call(built.kernel_of[op.name], a, b)

    if get_target(result.target).default_dtype == "int8":
        return _int8_mac(on_kernel)
    if built is None:
        return lambda op, p, a, b: reference(op_spec(p), a.astype(np.float64),
                                             b.astype(np.float64))
    return lambda op, p, a, b: on_kernel(op, p, a.astype(np.float32), b.astype(np.float32))


def emit_model(result: Any, code_dir: str | Path, *, run: bool = False,
               seed: int = 0) -> ModelEmission:
    """Build every kernel of ``result`` into ``code_dir``; with ``run``, check the whole
    model (see the module docstring).  Raises :class:`CompilerError` for a target without
    a model emitter or a model without a graph."""
    b = build_model(result, code_dir, seed=seed)
    model_run = _run(result, b, seed) if run else None
    return ModelEmission(b.target, b.dtype, b.code_dir, b.kernels, b.files, model_run)


def _run(result: Any, b: BuiltModel, seed: int) -> ModelRun:
    graph = result.source_graph or result.graph
    values = random_values(graph, seed) | graph.values  # the model's own weights, if any
    calls = [0]
    t0 = time.perf_counter()
    got = run_graph(graph, values, mac=model_mac(result, b, calls))
    want = run_graph(graph, values, mac=model_mac(result, None))
    fp32 = run_graph(graph, values) if b.dtype == "int8" else None
    seconds = time.perf_counter() - t0
    err = max(float(np.abs(got[t].astype(np.float64) - want[t]).max()) for t in want)
    ref_max = max(float(np.abs(want[t]).max()) for t in want)
    if b.dtype == "int8":
        correct = all(np.array_equal(got[t], want[t]) for t in want)
    else:
        correct = all(np.allclose(got[t], want[t], rtol=1e-3,
                                  atol=1e-4 * max(1.0, float(np.abs(want[t]).max())))
                      for t in want)
    sqnr = None
    if fp32 is not None:
        sig = sum(float((fp32[t].astype(np.float64) ** 2).sum()) for t in fp32)
        noise = sum(float(((got[t] - fp32[t]).astype(np.float64) ** 2).sum()) for t in fp32)
        sqnr = 10 * math.log10(sig / noise) if noise > 0 else math.inf
    ops = graph.ops()
    host = Counter(op.kind for op in ops if op.kind not in MAC_KINDS)
    host_macs = tuple(op.name for op in ops
                      if op.kind in MAC_KINDS and op.name not in b.kernel_of)
    return ModelRun(tuple(want), bool(correct), err, ref_max, calls[0],
                    tuple(sorted(host.items())), host_macs, sqnr, seconds,
                    dict(getattr(b.built, "counters", {})))
