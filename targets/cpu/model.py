"""A whole model's kernels for the host CPU as ONE TVM module.

:func:`build_kernels` schedules every distinct kernel with :func:`targets.cpu.emit.schedule`,
renames each ``PrimFunc`` to its kernel name, and compiles them together with
``tvm.compile`` into one library (``model.so``, loadable with
``tvm.runtime.load_module``).  Per kernel it writes the replayable trace
(``<name>.trace.py``) and the scheduled TIR (``<name>.tir.py``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mapspace.arch import Arch
from mapspace.mapping import MappingBatch
from mapspace.problem import Problem
from targets.cpu.emit import check_mapping, host_target, schedule, trace_script
from targets.tvm_common import DTYPES, OpSpec, import_tvm, op_spec, output_shape


@dataclass
class CpuKernels:
    """The compiled module and, per kernel name, its op spec; :meth:`call` runs one."""

    lib: Any
    specs: dict[str, OpSpec]
    dtype: str
    files: tuple[Path, ...]
    counters: dict[str, int] = field(default_factory=dict)

    def call(self, name: str, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """``Z = kernel(A, B)`` in the layouts of :mod:`targets.tvm_common`."""
        tvm = import_tvm()
        dev = tvm.cpu(0)
        din, dout = DTYPES[self.dtype]
        out = tvm.runtime.empty(output_shape(self.specs[name]), dout, dev)
        self.lib[name](tvm.runtime.tensor(np.ascontiguousarray(a, din), dev),
                       tvm.runtime.tensor(np.ascontiguousarray(b, din), dev), out)
        self.counters["calls"] = self.counters.get("calls", 0) + 1
        return out.numpy()


def check(problem: Problem, mapping: MappingBatch, arch: Arch) -> None:
    """Raise :class:`MapspaceError` unless ``mapping`` fits ``problem`` on ``arch``."""
    check_mapping(op_spec(problem), mapping, arch)


def build_kernels(kernels: Sequence[tuple[str, Problem, MappingBatch]], arch: Arch, *,
                  dtype: str = "float32", out_dir: str | Path) -> CpuKernels:
    """Schedule and compile ``kernels`` (``(name, problem, mapping)``, names valid C
    identifiers) into ``out_dir/model.so``."""
    tvm = import_tvm()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    funcs, specs, files = {}, {}, []
    for name, problem, mapping in kernels:
        spec = op_spec(problem)
        sch = schedule(spec, mapping, arch, dtype)
        funcs[name] = sch.mod["main"].with_attr("global_symbol", name)
        specs[name] = spec
        (out / f"{name}.trace.py").write_text(trace_script(sch))
        (out / f"{name}.tir.py").write_text(sch.mod.script())
        files += [out / f"{name}.trace.py", out / f"{name}.tir.py"]
    lib = tvm.compile(tvm.IRModule(funcs), target=host_target())
    lib.export_library(str(out / "model.so"))
    files.append(out / "model.so")
    return CpuKernels(lib, specs, dtype, tuple(files))
