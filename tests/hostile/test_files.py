"""Hostile input files of the other kinds (issue 12, item 6): files that are not regular
(a FIFO would block a reader forever, /dev/zero never ends), binary or foreign content,
and corrupt ``.npz`` inputs, Parquet datasets and ``.skops`` models: one line naming the
file, exit code 2, nothing written, no hang."""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import pytest

from .helpers import ARCH, ERT, MAPPING, PROBLEM, refused_nothing_written, refused_proc, run_py

W = ["--target", "gemmini", "--workload", "bert-base/ffn1"]


@pytest.mark.parametrize("which", ["--problem", "--arch", "--ert", "--mapping"])
def test_a_fifo_as_input_does_not_hang(tmp_path: Path, which: str) -> None:
    fifo = tmp_path / "in.yaml"
    os.mkfifo(fifo)
    files = {"--arch": ARCH, "--ert": ERT, "--problem": PROBLEM, "--mapping": MAPPING,
             which: fifo}
    t0 = time.perf_counter()
    p = run_py(["evaluate", *[x for kv in files.items() for x in kv]], timeout=60,
               cwd=tmp_path)
    refused_proc(p, "evaluate", str(fifo), "not a regular file")
    assert time.perf_counter() - t0 < 60


@pytest.mark.parametrize("content, says", [
    (None, "not a regular file"),                          # /dev/zero: never ends
    (b"\xff\xfe\x00\x01binary", "cannot read the file"),
    (b"root:x:0:0:root:/root:/bin/bash\n", "expected"),
    (b"", "empty"),
], ids=["dev-zero", "binary", "passwd", "empty"])
def test_foreign_content_as_a_problem_is_one_line(tmp_path: Path, content: bytes | None,
                                                  says: str) -> None:
    if content is None:
        path: Path | str = "/dev/zero"
        if not os.path.exists(path):
            pytest.skip("no /dev/zero")
    else:
        path = tmp_path / "p.yaml"
        path.write_bytes(content)
    refused_nothing_written(tmp_path, "evaluate", ["--arch", ARCH, "--ert", ERT, "--problem",
                                                   path, "--mapping", MAPPING],
                            str(path))


def test_corrupt_npz_inputs_are_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "x.npz"
    bad.write_text("not a zip")
    refused_nothing_written(tmp_path, "run", [tmp_path, "--inputs", bad, "--out",
                                              tmp_path / "o.npz"], "--inputs", "x.npz")
    pickled = tmp_path / "p.npz"
    np.savez(pickled, x=np.array([object()], dtype=object))
    refused_nothing_written(tmp_path, "run", [tmp_path, "--inputs", pickled, "--out",
                                              tmp_path / "o.npz"], "--inputs", "p.npz")


def test_corrupt_dataset_and_model_files_are_one_line(tmp_path: Path) -> None:
    data = tmp_path / "d.parquet"
    data.write_text("PAR1 but not really")
    refused_nothing_written(tmp_path, "train", [data, "--out", tmp_path / "m.skops"],
                            str(data))
    refused_nothing_written(tmp_path, "measure", [*W, "--n", 2, "--out", data], str(data))
    model = tmp_path / "m.skops"
    model.write_bytes(b"PK\x03\x04 truncated")
    refused_nothing_written(tmp_path, "map", [*W, "--budget", 10, "--cost",
                                              f"learned:{model}"], "--cost", "m.skops")


def test_dynamic_onnx_dimension_names_the_option_that_sets_it(tmp_path: Path) -> None:
    """The error suggested ``dim_values=``, which the command line had no option for."""
    import json

    from .helpers import cli, onnx_matmul

    model = onnx_matmul(tmp_path / "dyn.onnx", "batch", 64, 32)
    out = tmp_path / "out"
    refused_nothing_written(tmp_path, "compile", [model, "--budget", 20, "--out", out],
                            str(model), "'batch'", "--dim batch=N")
    r = cli("compile", model, "--budget", 20, "--out", out, "--dim", "batch=16", "--json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)["totals"]["macs"] == 16 * 64 * 32
    for bad in ("batch=0", "batch", "=4", "batch=2**40"):
        refused_nothing_written(tmp_path, "compile", [model, "--out", out, "--dim", bad],
                                "--dim")
