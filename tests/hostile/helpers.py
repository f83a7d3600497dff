"""What the hostile-input suite shares: the CLI in-process or in a subprocess, and the
assertions every hostile case makes (exit code, one ``mapspace <cmd>: error:`` line, no
traceback, nothing changed outside the output path, within a time limit)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
from click.testing import CliRunner

from compiler.cli import main

ROOT = Path(__file__).resolve().parents[2]
GEMMINI = ROOT / "targets/gemmini"
ARCH = GEMMINI / "arch.yaml"
ERT = GEMMINI / "ERT.yaml"
PROBLEM = GEMMINI / "problems/prob_bert_ffn1.yaml"
MAPPING = GEMMINI / "examples/bert_ffn1_good.yaml"
#: the command line a subprocess runs (``python -c`` on the package, no entry point needed)
CLI_CODE = "import sys; from compiler.cli import main; sys.argv[0] = 'mapspace'; main()"


def cli(*args: Any):
    """The CLI in-process (``CliRunner``: stdout and stderr together in ``output``)."""
    return CliRunner().invoke(main, [str(a) for a in args])


def files(folder: Path) -> dict[str, tuple[int, int, int]]:
    """Every path under ``folder`` with its size, modification time and mode."""
    out = {}
    for p in folder.rglob("*"):
        st = p.lstat()
        out[str(p.relative_to(folder))] = (st.st_size, st.st_mtime_ns, st.st_mode)
    return out


def one_line(output: str, cmd: str, *needles: str) -> str:
    """``output`` is one ``mapspace <cmd>: error: ...`` line holding every needle."""
    assert "Traceback" not in output, output
    lines = output.splitlines()
    assert len(lines) == 1, output
    prefix = f"mapspace {cmd}: error: " if cmd else "mapspace: error: "
    assert lines[0].startswith(prefix), output
    for n in needles:
        assert n in lines[0], (n, lines[0])
    return lines[0]


def refused(r, cmd: str, *needles: str, code: int = 2) -> str:
    """Exit ``code`` (2: bad input), one error line holding every needle, no traceback."""
    assert r.exit_code == code, r.output
    assert r.exception is None or isinstance(r.exception, SystemExit), repr(r.exception)
    return one_line(r.output, cmd, *needles)


def refused_nothing_written(tmp_path: Path, cmd: str, args: list[Any], *needles: str) -> str:
    """``refused`` plus: the folder holding the inputs and the output path is unchanged."""
    before = files(tmp_path)
    line = refused(cli(cmd, *args), cmd, *needles)
    assert files(tmp_path) == before
    return line


def strict_json(text: str) -> Any:
    """``json.loads`` that refuses NaN and Infinity (not JSON)."""
    def bad(c: str) -> None:
        raise ValueError(f"not JSON: {c}")
    return json.loads(text, parse_constant=bad)


def env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT)}


def run_py(args: list[Any], timeout: float, cwd: Path, **kw: Any
           ) -> subprocess.CompletedProcess:
    """The CLI in a subprocess, for cases that used to hang (killed after ``timeout``)."""
    return subprocess.run([sys.executable, "-c", CLI_CODE, *map(str, args)], cwd=cwd,
                          capture_output=True, text=True, timeout=timeout, env=env(), **kw)


def start_py(args: list[Any], cwd: Path) -> subprocess.Popen:
    """The CLI in a subprocess left running (to signal it)."""
    return subprocess.Popen([sys.executable, "-c", CLI_CODE, *map(str, args)], cwd=cwd,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env())


def refused_proc(p: subprocess.CompletedProcess, cmd: str, *needles: str,
                 code: int = 2) -> str:
    assert p.returncode == code, p.stdout + p.stderr
    return one_line(p.stdout + p.stderr, cmd, *needles)


def onnx_matmul(path: Path, rows: Any, k: Any = 8, n: int = 8) -> Path:
    """An ONNX file of one MatMul ``x[rows, k] @ w[k, n]`` (``rows``/``k``: a number or a
    symbolic dimension's name; ``w`` zeros of ``k`` rows when ``k`` is a number)."""
    import onnx
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [rows, k])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [rows, n])
    kw = k if isinstance(k, int) and 0 <= k <= 4096 else 8
    w = helper.make_tensor("w", TensorProto.FLOAT, [kw, n],
                           np.zeros(max(kw * n, 0), np.float32))
    node = helper.make_node("MatMul", ["x", "w"], ["y"], name="mm")
    onnx.save(helper.make_model(helper.make_graph([node], "g", [x], [y], [w])), path)
    return path
