"""Building and running a Gemmini kernel over the functional Gemmini model
(``targets/gemmini/runtime``): the C compiler and include paths, the operands' Gemmini
layouts (conv2d: activations NHWC, weights ``[S, R, C, M]`` (HWIO), output NHWC; the
operands are transposed around the kernel), the driver program (``runtime/driver.c.in``),
the files an emission writes, and a run compared bit-exactly with numpy.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from mapspace.errors import MapspaceError
from targets.gemmini import depthwise
from targets.tvm_common import (
    EmitResult,
    OpSpec,
    import_tvm,
    input_shapes,
    output_shape,
    random_inputs,
    reference,
)

# tvm is imported inside the functions that use it (import_tvm(), `from tvm import ...`):
# it is heavy (~3 s) and optional, and `import targets` must work without it

RUNTIME = Path(__file__).parent / "runtime"
DRIVER = RUNTIME / "driver.c.in"
_WHERE = "emit gemmini"


def to_gemmini_layout(spec: OpSpec, a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, ...]:
    """Operands in the layouts of :mod:`targets.tvm_common` -> the kernel's Gemmini layouts."""
    if spec.kind == depthwise.KIND:
        return depthwise.to_layout(a, b)
    if spec.kind != "conv2d":
        return a, b
    return (np.ascontiguousarray(a.transpose(0, 2, 3, 1)),
            np.ascontiguousarray(b.transpose(2, 3, 1, 0)))


def from_gemmini_layout(spec: OpSpec, z: np.ndarray) -> np.ndarray:
    """The kernel's output in its Gemmini layout -> the layout of :mod:`targets.tvm_common`."""
    if spec.kind == depthwise.KIND:
        return depthwise.from_layout(z)
    return z if spec.kind != "conv2d" else np.ascontiguousarray(z.transpose(0, 3, 1, 2))


def c_compiler() -> str:
    """Path of the C compiler (``$CC``, else ``gcc``); raises when it is not on PATH."""
    cc = os.environ.get("CC") or "gcc"
    path = shutil.which(cc)
    if path is None:
        raise MapspaceError(f"no C compiler: {cc!r} is not on PATH (set CC or install gcc); "
                            "the Gemmini emitter compiles its kernel with the functional "
                            "Gemmini model", where=_WHERE)
    return path


def include_dirs() -> list[str]:
    """The ``-I`` folders a kernel's C needs: the runtime model, TVM FFI and TVM headers."""
    import tvm
    import tvm_ffi

    return [str(RUNTIME), tvm_ffi.libinfo.find_include_path(),
            str(Path(tvm.__file__).parent / "include")]


def gemmini_shapes(spec: OpSpec) -> list[tuple[int, ...]]:
    """Shapes of (activations, weights, output) in the kernel's Gemmini layouts (conv2d:
    NHWC, HWIO ``[S, R, C, M]``, NHWC output; matmul/bmm as in :mod:`targets.tvm_common`)."""
    if spec.kind == depthwise.KIND:
        return depthwise.shapes(spec)
    if spec.kind == "conv2d":
        s = spec.sizes
        return [(s["N"], spec.H, spec.W, s["C"]), (s["S"], s["R"], s["C"], s["M"]),
                (s["N"], s["Q"], s["P"], s["M"])]
    return [*input_shapes(spec), output_shape(spec)]


def driver_source(kernels: list[tuple[str, list[tuple[int, ...]]]]) -> str:
    """``main.c`` of a program over ``kernels`` (name, Gemmini-layout shapes), in order:
    ``runtime/driver.c.in`` with its kernel table filled in."""
    decls, rows = [], []
    for i, (name, shapes) in enumerate(kernels):
        decls.append(f"int32_t mapspace_kernel_{i}(void *, void *, int32_t, void *);")
        dims = ", ".join(str(len(s)) for s in shapes)
        arr = ", ".join("{" + ", ".join(str(x) for x in s) + "}" for s in shapes)
        rows.append(f'  {{"{name}", mapspace_kernel_{i}, {{{dims}}}, {{{arr}}}}},')
    return (DRIVER.read_text().replace("@DECLS@", "\n".join(decls))
            .replace("@TABLE@", "\n".join(rows)))


def rename_flags(i: int) -> list[str]:
    """gcc flags giving kernel ``i``'s TVM entry point and context the driver's names."""
    return [f"-D__tvm_ffi_main=mapspace_kernel_{i}",
            f"-D__tvm_ffi__library_ctx=mapspace_ctx_{i}"]


def build_cmd(cc: str, out: Path) -> list[str]:
    """The command building ``out/gemmini_kernel`` from ``kernel.c`` and ``main.c``."""
    inc = [f"-I{d}" for d in include_dirs()]
    return [cc, "-O2", "-std=gnu11", "-w", *rename_flags(0), *inc, str(out / "kernel.c"),
            str(out / "main.c"), str(RUNTIME / "gemmini_model.c"), "-o",
            str(out / "gemmini_kernel")]


def c_source(mod: Any) -> str:
    """The C that ``tvm.compile(mod, target="c")`` generates for a lowered module."""
    tvm = import_tvm()
    lib = tvm.compile(mod, target="c")
    return lib.mod.inspect_source()


def write_sources(out: Path, name: str, trace: str, source: str,
                  shapes: list[tuple[int, ...]]) -> list[Path]:
    """Write ``trace.py``, ``kernel.c``, ``main.c`` and a ``Makefile`` for the kernel of
    problem ``name`` into ``out``; the files written."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "trace.py").write_text(f"# schedule trace of {name} on gemmini\n" + trace + "\n")
    (out / "kernel.c").write_text(source)
    (out / "main.c").write_text(driver_source([(name, shapes)]))
    cmd = build_cmd("$(CC)", out)
    rel = [c.replace(str(out) + "/", "") for c in cmd]
    (out / "Makefile").write_text(
        "CC ?= gcc\n\ngemmini_kernel: kernel.c main.c\n\t" + " ".join(rel) + "\n\n"
        "run: gemmini_kernel\n\t./gemmini_kernel 0 .\n")
    return [out / n for n in ("trace.py", "kernel.c", "main.c", "Makefile")]


def run_and_compare(result: EmitResult, spec: OpSpec, cc: str, out: Path,
                    seed: int) -> EmitResult:
    """Build the kernel written in ``out`` with ``cc``, run it on seeded random int8
    operands and compare bit-exactly with numpy: ``result`` with ``correct``,
    ``max_abs_error``, ``seconds`` and ``counters`` filled in and the run's files added."""
    shapes = gemmini_shapes(spec)
    a, b = random_inputs(spec, "int8", seed)
    ref = reference(spec, a, b)
    ga, gb = to_gemmini_layout(spec, a, b)
    ga.tofile(out / "a.bin")
    gb.tofile(out / "b.bin")
    proc = subprocess.run(build_cmd(cc, out), capture_output=True, text=True)
    if proc.returncode != 0:
        raise MapspaceError(f"compiling the Gemmini kernel failed:\n{proc.stderr[-4000:]}",
                            where=_WHERE)
    proc = subprocess.run([str(out / "gemmini_kernel"), "0", str(out)], capture_output=True,
                          text=True)
    if proc.returncode != 0:
        raise MapspaceError(f"the Gemmini kernel failed (exit {proc.returncode}):\n"
                            f"{proc.stderr[-4000:]}", where=_WHERE)
    counters = json.loads((out / "counters.json").read_text())
    lines = [json.loads(x) for x in proc.stdout.splitlines() if "kernel_seconds" in x]
    z = np.fromfile(out / "z.bin", dtype=np.int32).reshape(shapes[2])
    z = from_gemmini_layout(spec, z)
    err = float(np.abs(z.astype(np.int64) - ref.astype(np.int64)).max())
    files = [out / n for n in ("a.bin", "b.bin", "z.bin", "counters.json", "gemmini_kernel")]
    return replace(result, files=result.files + tuple(files), correct=bool(err == 0),
                   max_abs_error=err, seconds=lines[0]["kernel_seconds"] if lines else None,
                   counters=counters)
