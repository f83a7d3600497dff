"""One error format for everything the CLI prints on failure (issue 12, item 5), click's
usage errors included, and the resource limits checked before any work (item 3): every
command, every kind of usage error, one ``mapspace <cmd>: error: ...`` line naming the
option as the user wrote it, exit code 2."""

from __future__ import annotations

from pathlib import Path

import pytest

from compiler.cli import main

from .helpers import cli, refused, refused_nothing_written

COMMANDS = sorted(main.commands)
W = ["--target", "gemmini", "--workload", "bert-base/ffn1"]


@pytest.mark.parametrize("cmd", COMMANDS)
def test_unknown_option_is_one_line(cmd: str) -> None:
    """click's own usage errors were 4-line blocks ("Usage: ... Try ... Error: ...")."""
    refused(cli(cmd, "--no-such-option"), cmd, "No such option: --no-such-option",
            f"mapspace {cmd} --help")


#: an option of each command that takes an integer
INT_OPTIONS = {"explore": "--samples", "map": "--budget", "compile": "--budget",
               "emit": "--budget", "measure": "--n", "train": "--seed"}


@pytest.mark.parametrize("cmd, opt", sorted(INT_OPTIONS.items()))
@pytest.mark.parametrize("value", ["abc", "1.5", "10**12", ""])
def test_bad_integer_is_one_line(cmd: str, opt: str, value: str) -> None:
    refused(cli(cmd, opt, value), cmd, f"'{opt}'")


@pytest.mark.parametrize("cmd, args, says", [
    ("compile", [], "Missing argument 'MODEL'"),
    ("run", [], "Missing argument 'MODEL_DIR'"),
    ("train", [], "Missing argument 'DATA...'"),
    ("emit", ["--target", "cpu"], "Missing option '--workload'"),
    ("measure", ["--target", "cpu"], "Missing option '--n'"),
    ("explore", ["--samples"], "'--samples' requires an argument"),
    ("map", ["--objective", "speed"], "'speed' is not one of"),
    ("emit", ["--target", "tpu", "--workload", "x", "--out", "o"], "'tpu' is not one of"),
])
def test_missing_or_bad_argument_is_one_line(cmd: str, args: list, says: str) -> None:
    refused(cli(cmd, *args), cmd, says)


def test_unknown_command_is_one_line() -> None:
    refused(cli("no-such-command"), "", "No such command 'no-such-command'")


def test_help_and_version_still_work() -> None:
    r = cli("--help")
    assert r.exit_code == 0 and "Commands:" in r.output
    r = cli("explore", "--help")
    assert r.exit_code == 0 and "--samples" in r.output
    r = cli("--version")
    assert r.exit_code == 0 and "version" in r.output
    r = cli()
    assert r.exit_code == 0 and "Usage:" in r.output


@pytest.mark.parametrize("cmd, args, says", [
    ("map", [*W, "--strategy", "hill-climb", "--budget", 10], "--strategy: unknown"),
    ("emit", ["--target", "cpu", "--workload", "bert-base/ffn1", "--strategy", "x", "--out",
              "o"], "--strategy: unknown"),
    ("compile", ["bert-base", "--strategy", "x", "--out", "o"], "--strategy: unknown"),
    ("compile", ["bert-base", "--target", "tpu", "--out", "o"], "--target: unknown target"),
    ("compile", ["no-such-model", "--out", "o"], "MODEL: unknown model"),
    ("compile", ["bert-base", "--passes", "bogus", "--out", "o"], "--passes: bogus"),
    ("compile", ["bert-base", "--passes", "quantize=int8,quantize=int4", "--out", "o"],
     "--passes: quantize=int4: pass 'quantize' is given twice"),
    ("compile", ["bert-base", "--seq", 0, "--out", "o"], "--seq: seq 0 is not valid"),
    ("explore", ["--target", "gemmini", "--workload", "nope"], "--workload: unknown"),
    ("explore", [*W, "--seed", "-1"], "--seed: must be"),
    ("map", [*W, "--cost", "nonsense"], "--cost: expected"),
])
def test_messages_name_the_option_not_the_function(tmp_path: Path, cmd: str, args: list,
                                                   says: str) -> None:
    """Errors used to say ``make_strategy:``, ``compile: strategy:`` or ``options:``."""
    line = refused_nothing_written(tmp_path, cmd, args, says).split(": error: ", 1)[1]
    for inner in ("make_strategy", "parse_passes", "options:", "compile: "):
        assert inner not in line, line


# ------------------------------------------------------------------- limits (item 3)
def test_samples_beyond_memory_are_refused_with_the_limit(tmp_path: Path) -> None:
    """``explore --samples 10**12`` grew to 7 GB in 40 s with no check."""
    line = refused_nothing_written(tmp_path, "explore", [*W, "--samples", 10**12, "--out",
                                                         tmp_path / "s.parquet"],
                                   "--samples", "1,000,000,000,000", "at most")
    most = int(line.rsplit("at most ", 1)[1].split()[0].replace(",", ""))
    assert 1000 < most < 10**12
    r = cli("explore", *W, "--samples", 500, "--json")   # small counts are untouched
    assert r.exit_code == 0, r.output


def test_measure_pool_beyond_memory_is_refused(tmp_path: Path) -> None:
    refused_nothing_written(tmp_path, "measure", ["--target", "gemmini", "--workload",
                                                  "bert-base/ffn1", "--n", 10**12, "--out",
                                                  tmp_path / "m.parquet"], "--n", "at most")


def test_run_without_emit_is_refused_before_the_search(tmp_path: Path) -> None:
    refused_nothing_written(tmp_path, "compile", ["bert-base", "--run", "--out",
                                                  tmp_path / "o"], "--run needs --emit")


def test_bytes_per_sample_matches_what_explore_holds() -> None:
    """The estimate behind the --samples check, against the arrays explore really keeps."""
    from compiler.cli.common import sample_bytes
    from compiler.explore import explore
    from mapspace.workloads import workload
    from targets import default_constraints, load_target

    p, a = workload("bert-base/ffn1"), load_target("gemmini")
    r = explore(p, a, default_constraints("gemmini", p), 1000, 0)
    d = r.decisions
    held = sum(x.nbytes for x in (d.factor, d.order, d.spatial_x, d.keep)) / 1000
    row = r.frame.memory_usage(index=False).sum() / 1000
    est = sample_bytes(p, a)
    assert 2 * held + 2 * row <= est <= 2 * held + 2 * row + 64


def test_a_space_with_no_valid_mapping_is_refused_not_drawn_for_hours() -> None:
    """A utilization constraint no mapping meets used to keep explore drawing up to 2e9
    candidates; now it stops after ``EMPTY_AFTER`` (2,097,152; here 131,072 for speed)."""
    import time

    from compiler.explore import CHUNK, EMPTY_AFTER, ROUND_CHUNKS, explore
    from mapspace.arch_yaml import load_arch
    from mapspace.constraints_yaml import constraints_from_list
    from mapspace.errors import MapspaceError
    from mapspace.problem import matmul

    from .helpers import ARCH, ERT

    a = load_arch(ARCH, ERT)
    cons = constraints_from_list([{"target": "Scratchpad", "type": "utilization",
                                   "min": 0.999}], "c.yaml")
    t0 = time.perf_counter()
    with pytest.raises(MapspaceError, match="no valid mapping among 131,072 candidates"):
        explore(matmul(3, 5, 7), a, cons, 10, 0, empty_after=2 * ROUND_CHUNKS * CHUNK)
    assert time.perf_counter() - t0 < 60
    assert EMPTY_AFTER == 2_097_152


def test_a_space_with_no_valid_mapping_is_refused_by_a_dataset_explore(tmp_path: Path) -> None:
    """``explore --out DIR`` (the sharded dataset) stops the same way: it used to write empty
    shards until 2e9 candidates; now one error with the diagnosis and the new folder removed."""
    from compiler.explore import CHUNK, ROUND_CHUNKS
    from compiler.shards import explore_dataset
    from mapspace.arch_yaml import load_arch
    from mapspace.constraints_yaml import constraints_from_list
    from mapspace.errors import MapspaceError
    from mapspace.problem import matmul

    from .helpers import ARCH, ERT

    a = load_arch(ARCH, ERT)
    cons = constraints_from_list([{"target": "Scratchpad", "type": "utilization",
                                   "min": 0.999}], "c.yaml")
    with pytest.raises(MapspaceError, match="no valid mapping among 131,072 candidates"):
        explore_dataset(tmp_path / "d", matmul(3, 5, 7), a, cons, 10, 0, shard_chunks=2,
                        empty_after=2 * ROUND_CHUNKS * CHUNK)
    assert not (tmp_path / "d").exists()


def test_run_beyond_memory_is_refused_before_emitting(tmp_path: Path) -> None:
    """``compile --emit --run`` of a model whose tensors do not fit: one line naming --run
    and the limit, before any code is emitted or run (x[rows, 1024] @ w[1024, 1024])."""
    from compiler.cli.common import available_memory

    from .helpers import onnx_matmul

    rows = 2**21                                # x and y: 2**31 elements each
    if 2 * rows * 1024 * 16 <= 0.8 * available_memory():
        pytest.skip("this machine could hold it")
    model = onnx_matmul(tmp_path / "big.onnx", rows, 1024, 1024)
    refused_nothing_written(tmp_path, "compile", [model, "--budget", 500,
                                                  "--emit", "--run", "--out", tmp_path / "o"],
                            "--run", "tensor elements", "at most")
