"""A whole model's Gemmini kernels as ONE C program over the functional Gemmini model.

:func:`build_kernels` lowers every distinct kernel with :func:`targets.gemmini.schedule.lower`,
writes its C (``kernel_<i>.c``, TVM's entry point renamed ``mapspace_kernel_<i>`` at
compile time), a driver with the kernel table (``model.c``, from
``runtime/driver.c.in``) and a ``Makefile``, and links them with the runtime model into
one program, ``model``: ``./model K DIR`` runs kernel ``K`` on ``DIR/a.bin``/``b.bin``.
:meth:`GemminiKernels.call` does that from Python and sums the intrinsic counters.
"""

from __future__ import annotations

import json
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mapspace.arch import Arch
from mapspace.errors import MapspaceError
from mapspace.mapping import MappingBatch
from mapspace.problem import Problem
from targets.gemmini.build import (
    RUNTIME,
    c_compiler,
    driver_source,
    from_gemmini_layout,
    gemmini_shapes,
    include_dirs,
    rename_flags,
    to_gemmini_layout,
)
from targets.gemmini.depthwise import constraints as search_constraints
from targets.gemmini.depthwise import search_arch
from targets.gemmini.plan import check
from targets.gemmini.schedule import lower
from targets.tvm_common import OpSpec, import_tvm, op_spec

_WHERE = "emit gemmini model"
#: per-problem search space the compiler uses (depthwise: one channel at a time)
__all__ = ["GemminiKernels", "build_kernels", "check", "search_arch", "search_constraints"]


@dataclass
class GemminiKernels:
    """The built program and its kernels; :meth:`call` runs one, ``counters`` sums them."""

    program: Path
    index: dict[str, int]
    specs: dict[str, OpSpec]
    files: tuple[Path, ...]
    counters: dict[str, int] = field(default_factory=dict)

    def call(self, name: str, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """``Z = kernel(A, B)`` (int8 operands in the layouts of :mod:`targets.tvm_common`,
        int32 result), run by the program on the functional model."""
        spec = self.specs[name]
        ga, gb = to_gemmini_layout(spec, a.astype(np.int8), b.astype(np.int8))
        with tempfile.TemporaryDirectory(prefix="gemmini_call_") as d:
            ga.tofile(f"{d}/a.bin")
            gb.tofile(f"{d}/b.bin")
            proc = subprocess.run([str(self.program), str(self.index[name]), d],
                                  capture_output=True, text=True)
            if proc.returncode != 0:
                raise MapspaceError(f"kernel {name} failed (exit {proc.returncode}): "
                                    f"{proc.stderr.strip()[-2000:]}", where=_WHERE)
            z = np.fromfile(f"{d}/z.bin", dtype=np.int32).reshape(gemmini_shapes(spec)[2])
            for k, v in json.loads(Path(f"{d}/counters.json").read_text()).items():
                self.counters[k] = self.counters.get(k, 0) + int(v)
        self.counters["calls"] = self.counters.get("calls", 0) + 1
        return from_gemmini_layout(spec, z)


def build_kernels(kernels: Sequence[tuple[str, Problem, MappingBatch]], arch: Arch, *,
                  dtype: str = "int8", out_dir: str | Path) -> GemminiKernels:
    """Lower ``kernels`` (``(name, problem, mapping)``) and build one program in
    ``out_dir`` (see the module docstring).  Missing C compiler or a failed build raise
    :class:`MapspaceError`."""
    if dtype != "int8":
        raise MapspaceError(f"gemmini runs int8 kernels, not {dtype!r}", where=_WHERE)
    if not kernels:
        raise MapspaceError("no kernels to build", where=_WHERE)
    tvm = import_tvm()
    cc = c_compiler()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    table, files, index, specs = [], [], {}, {}
    for i, (name, problem, mapping) in enumerate(kernels):
        sch, mod, _ = lower(problem, mapping, arch)
        src = tvm.compile(mod, target="c").mod.inspect_source()
        (out / f"kernel_{i}.c").write_text(f"/* {name}: {problem.name} */\n" + src)
        (out / f"kernel_{i}.trace.py").write_text(f"# schedule trace of {name}\n{sch.trace}\n")
        files += [out / f"kernel_{i}.c", out / f"kernel_{i}.trace.py"]
        spec = op_spec(problem)
        table.append((name, gemmini_shapes(spec)))
        index[name], specs[name] = i, spec
    (out / "model.c").write_text(driver_source(table))
    inc = [f"-I{d}" for d in include_dirs()]
    flags = ["-O2", "-std=gnu11", "-w"]
    rules, objs = [], []
    for i in range(len(kernels)):
        rules.append((f"kernel_{i}.o", [f"kernel_{i}.c"],
                      [*flags, *rename_flags(i), *inc, "-c"]))
        objs.append(f"kernel_{i}.o")
    rules.append(("model.o", ["model.c"], [*flags, *inc, "-c"]))
    rules.append(("gemmini_model.o", [str(RUNTIME / "gemmini_model.c")], [*flags, *inc, "-c"]))
    objs += ["model.o", "gemmini_model.o"]
    mk = ["CC ?= gcc", "", "model: " + " ".join(objs), "\t$(CC) -o model " + " ".join(objs), ""]
    for target, srcs, fl in rules:
        mk += [f"{target}: {' '.join(srcs)}", f"\t$(CC) {' '.join(fl)} {srcs[0]} -o {target}",
               ""]
        proc = subprocess.run([cc, *fl, srcs[0], "-o", target], cwd=out, capture_output=True,
                              text=True)
        if proc.returncode != 0:
            raise MapspaceError(f"compiling {srcs[0]} failed: {proc.stderr.strip()[-3000:]}",
                                where=_WHERE)
    (out / "Makefile").write_text("\n".join(mk))
    proc = subprocess.run([cc, "-o", "model", *objs], cwd=out, capture_output=True, text=True)
    if proc.returncode != 0:
        raise MapspaceError(f"linking the model program failed: {proc.stderr.strip()[-3000:]}",
                            where=_WHERE)
    for o in objs:
        (out / o).unlink(missing_ok=True)
    files += [out / "model.c", out / "Makefile", out / "model"]
    return GemminiKernels(out / "model", index, specs, tuple(files))
