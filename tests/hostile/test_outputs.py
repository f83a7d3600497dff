"""Hostile output paths (issue 12, item 2): one helper writes every output
(:mod:`mapspace.atomic`): non-regular targets, two outputs on one path, an output on an
input, unknown plot formats, unwritable, full and read-only locations are refused with one
line and exit code 2 before any work, nothing half-written, the mode of a replaced file
kept."""

from __future__ import annotations

import os
import socket
import stat
import subprocess
from pathlib import Path
from typing import Any

import pytest

from mapspace.atomic import Output, check_outputs, staged_dir, staged_file
from mapspace.errors import MapspaceError

from .helpers import ARCH, ERT, PROBLEM, cli, files, refused, refused_nothing_written, run_py

W = ["--target", "gemmini", "--workload", "bert-base/ffn1"]
#: (command, arguments before --out, the output's suffix, a folder output)
FILE_OUTPUTS = [
    ("explore", [*W, "--samples", 20], ".parquet"),
    ("map", [*W, "--budget", 20], ".yaml"),
    ("run", ["no-model-dir", "--inputs", "no.npz"], ".npz"),
    ("train", ["no-data.parquet"], ".skops"),
    ("measure", ["--target", "gemmini", "--workload", "bert-base/ffn1", "--n", 2], ".parquet"),
]
DIR_OUTPUTS = [
    ("compile", ["bert-base", "--budget", 20]),
    ("emit", ["--target", "cpu", "--workload", "bert-base/ffn1", "--budget", 20]),
]


def _fifo(tmp_path: Path, suffix: str) -> Path:
    p = tmp_path / f"pipe{suffix}"
    os.mkfifo(p)
    return p


def _socket(tmp_path: Path, suffix: str) -> Path:
    p = tmp_path / f"s{suffix}"
    s = socket.socket(socket.AF_UNIX)
    s.bind(str(p))
    s.close()
    return p


def _dangling(tmp_path: Path, suffix: str) -> Path:
    p = tmp_path / f"link{suffix}"
    p.symlink_to(tmp_path / "nowhere" / f"x{suffix}")
    return p


def _folder(tmp_path: Path, suffix: str) -> Path:
    p = tmp_path / f"d{suffix}"
    p.mkdir()
    return p


TARGETS = {"fifo": (_fifo, "a FIFO"), "socket": (_socket, "a socket"),
           "dangling-link": (_dangling, "a link to nothing"), "folder": (_folder, "a folder")}


@pytest.mark.parametrize("kind", TARGETS)
@pytest.mark.parametrize("cmd, args, suffix", FILE_OUTPUTS, ids=[c[0] for c in FILE_OUTPUTS])
def test_non_regular_file_target_is_refused(tmp_path: Path, kind: str, cmd: str, args: list,
                                            suffix: str) -> None:
    """``--out`` at a FIFO (or a device) used to be replaced by a regular file, exit 0."""
    make, says = TARGETS[kind]
    target = make(tmp_path, suffix)
    refused_nothing_written(tmp_path, cmd, [*args, "--out", target], "--out", says)


@pytest.mark.parametrize("cmd, args, suffix", FILE_OUTPUTS[:2], ids=["explore", "map"])
def test_device_is_refused_and_kept(tmp_path: Path, cmd: str, args: list, suffix: str) -> None:
    """As root, ``--out /dev/full`` replaced the device node with a regular file."""
    for dev in ("/dev/null", "/dev/full"):
        if not os.path.exists(dev):
            continue
        before = os.stat(dev)
        refused(cli(cmd, *args, "--out", dev), cmd, "--out", "a character device")
        after = os.stat(dev)
        assert stat.S_ISCHR(after.st_mode) and after.st_rdev == before.st_rdev


@pytest.mark.parametrize("cmd, args", DIR_OUTPUTS, ids=[c[0] for c in DIR_OUTPUTS])
@pytest.mark.parametrize("kind", ["fifo", "file", "dangling-link"])
def test_folder_output_on_a_non_folder_is_refused(tmp_path: Path, cmd: str, args: list,
                                                  kind: str) -> None:
    if kind == "file":
        target = tmp_path / "out"
        target.write_text("a file")
    else:
        target = TARGETS[kind][0](tmp_path, "")
    refused_nothing_written(tmp_path, cmd, [*args, "--out", target], "--out")


def test_two_outputs_on_one_path_are_refused(tmp_path: Path) -> None:
    """``--out same.png --plot same.png`` wrote the Parquet, then the PNG over it."""
    same = tmp_path / "same.png"
    refused_nothing_written(tmp_path, "explore", [*W, "--samples", 20, "--out", same,
                                                  "--plot", same], "--plot", "--out")
    sub = tmp_path / "sub"
    sub.mkdir()
    refused_nothing_written(tmp_path, "explore", [*W, "--samples", 20, "--out", same,
                                                  "--plot", sub / ".." / "same.png"], "--plot")


@pytest.mark.parametrize("cmd, extra, inp", [
    ("explore", ["--samples", 20], "--problem"),
    ("map", ["--budget", 20], "--problem"),
    ("map", ["--budget", 20], "--ert"),
])
def test_output_on_an_input_is_refused(tmp_path: Path, cmd: str, extra: list,
                                       inp: str) -> None:
    # a Parquet --out is one file (any other path: a dataset folder), whatever its content
    a, e, p = (tmp_path / n for n in ("a.yaml", "e.yaml",
                                      "p.parquet" if cmd == "explore" else "p.yaml"))
    for src, dst in ((ARCH, a), (ERT, e), (PROBLEM, p)):
        dst.write_bytes(src.read_bytes())
    out = {"--problem": p, "--ert": e}[inp]
    refused_nothing_written(tmp_path, cmd, ["--arch", a, "--ert", e, "--problem", p, *extra,
                                            "--out", out], "--out", f"the {inp} file")


def test_unknown_plot_format_is_refused_before_any_work(tmp_path: Path) -> None:
    """``--out p.parquet --plot edp.xyz`` wrote the Parquet, then crashed on the format."""
    refused_nothing_written(tmp_path, "explore", [*W, "--samples", 20, "--out",
                                                  tmp_path / "p.parquet", "--plot",
                                                  tmp_path / "edp.xyz"], "--plot", "'xyz'")


def test_plot_without_a_suffix_is_a_png(tmp_path: Path) -> None:
    """A plot path without an extension always crashed (the staged file's name was read
    as the format)."""
    r = cli("explore", *W, "--samples", 20, "--plot", tmp_path / "edp")
    assert r.exit_code == 0, r.output
    assert (tmp_path / "edp").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert sorted(os.listdir(tmp_path)) == ["edp"]


def test_explore_writes_both_files_or_neither(tmp_path: Path, monkeypatch) -> None:
    """A failure while writing the plot leaves the Parquet file as it was too."""
    import compiler.cli.analyse as analyse

    out = tmp_path / "p.parquet"
    out.write_text("old")

    def full(*_: Any, **__: Any) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(analyse, "edp_plot", full)
    before = files(tmp_path)
    r = cli("explore", *W, "--samples", 20, "--out", out, "--plot", tmp_path / "e.png")
    refused(r, "explore", "--plot", "No space left on device")
    assert files(tmp_path) == before


UNWRITABLE = [
    ("explore", [*W, "--samples", 20], "/sys/x.parquet"),
    ("map", [*W, "--budget", 20], "/sys/kernel/m.yaml"),
    ("compile", ["bert-base", "--budget", 20], "/sys/out"),
    ("emit", ["--target", "cpu", "--workload", "bert-base/ffn1"], "/sys/out"),
    ("explore", [*W, "--samples", 20], "/no/such/folder/x.parquet"),
]


@pytest.mark.parametrize("cmd, args, out", UNWRITABLE, ids=[f"{c}-{o}" for c, _, o in UNWRITABLE])
def test_unwritable_location_is_one_line_before_any_work(cmd: str, args: list,
                                                         out: str) -> None:
    """Used to be tracebacks (PermissionError from mkstemp) after the whole search."""
    if out.startswith("/sys") and not os.path.isdir("/sys"):
        pytest.skip("no /sys here")
    refused(cli(cmd, *args, "--out", out), cmd, "--out")


def _mount_tmpfs(path: Path, options: str) -> None:
    path.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)],
                       capture_output=True)
    if r.returncode != 0:
        pytest.skip("cannot mount a tmpfs here (not root)")


def _umount(path: Path) -> None:
    subprocess.run(["umount", str(path)], capture_output=True)


def test_full_disk_is_one_line_and_leaves_nothing(tmp_path: Path) -> None:
    """A full file system (a 64 KiB tmpfs) while writing: ENOSPC as one line, exit 2, the
    old file kept, no temporary left."""
    disk = tmp_path / "disk"
    _mount_tmpfs(disk, "size=64k")
    try:
        old = disk / "p.parquet"
        old.write_text("old")
        before = files(disk)
        r = cli("explore", *W, "--samples", 3000, "--out", old)
        refused(r, "explore", "--out", "No space left on device")
        assert files(disk) == before
    finally:
        _umount(disk)


def test_read_only_file_system_is_refused_before_any_work(tmp_path: Path) -> None:
    disk = tmp_path / "ro"
    _mount_tmpfs(disk, "size=64k,ro")
    try:
        refused(cli("map", *W, "--budget", 20, "--out", disk / "m.yaml"), "map", "--out",
                "Read-only file system")
    finally:
        _umount(disk)


def test_file_size_limit_is_one_line_and_keeps_the_old_file(tmp_path: Path) -> None:
    """An OS write error on any machine (no root needed): RLIMIT_FSIZE of 8 KiB makes the
    Parquet write fail with EFBIG; Python ignores SIGXFSZ, so it is an OSError."""
    import resource

    out = tmp_path / "p.parquet"
    out.write_text("old")
    before = files(tmp_path)

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (8192, 8192))

    p = run_py(["explore", *W, "--samples", 3000, "--out", out], timeout=300, cwd=tmp_path,
               preexec_fn=limit)
    assert p.returncode == 2, p.stdout + p.stderr
    lines = (p.stdout + p.stderr).splitlines()
    assert len(lines) == 1 and lines[0].startswith("mapspace explore: error: --out: "), lines
    assert "File too large" in lines[0] and "Traceback" not in p.stderr
    assert files(tmp_path) == before


def test_replaced_file_keeps_its_mode_and_links_are_written_through(tmp_path: Path) -> None:
    out = tmp_path / "m.yaml"
    out.write_text("old")
    os.chmod(out, 0o640)
    link = tmp_path / "link.yaml"
    link.symlink_to(out.name)
    r = cli("map", *W, "--budget", 20, "--out", link)
    assert r.exit_code == 0, r.output
    assert link.is_symlink() and out.read_text().startswith("mapping:")
    assert stat.S_IMODE(os.stat(out).st_mode) == 0o640
    new = tmp_path / "new.yaml"
    assert cli("map", *W, "--budget", 20, "--out", new).exit_code == 0
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(os.stat(new).st_mode) == 0o666 & ~umask     # not mkstemp's 0600
    assert sorted(os.listdir(tmp_path)) == ["link.yaml", "m.yaml", "new.yaml"]


# ------------------------------------------------------------ the helper itself
def test_check_outputs_refuses_what_it_should(tmp_path: Path) -> None:
    a = tmp_path / "a.txt"
    a.write_text("x")
    check_outputs(Output(a, "--out"), Output(tmp_path / "b.png", "--plot", formats=("png",)))
    with pytest.raises(MapspaceError, match="--plot: .*also --out"):
        check_outputs(Output(a, "--out"), Output(str(a), "--plot"))
    with pytest.raises(MapspaceError, match="the --problem file"):
        check_outputs(Output(a, "--out"), inputs={"--problem": a})
    with pytest.raises(MapspaceError, match="unknown format 'jpg'"):
        check_outputs(Output(tmp_path / "b.jpg", "--plot", formats=("png",)))
    with pytest.raises(MapspaceError, match="--out: .*also --report"):
        check_outputs(Output(tmp_path / "r", "--report", folder=True),
                      Output(tmp_path / "r" / "x.csv", "--out"))
    assert sorted(os.listdir(tmp_path)) == ["a.txt"]


def test_staged_writers_turn_os_errors_into_one_error(tmp_path: Path) -> None:
    out = tmp_path / "a.txt"
    out.write_text("old")
    with pytest.raises(MapspaceError, match="--out: cannot write .*No space"), \
            staged_file(out, where="--out"):
        raise OSError(28, "No space left on device")
    with pytest.raises(MapspaceError, match="--out: cannot write .*Permission denied"), \
            staged_dir(tmp_path / "d", where="--out") as tmp:
        (tmp / "x").write_text("x")
        raise OSError(13, "Permission denied")
    assert out.read_text() == "old" and sorted(os.listdir(tmp_path)) == ["a.txt"]


@pytest.mark.parametrize("name, says", [("x" * 300 + ".yaml", "longer than"),
                                        ("", "not a file path")], ids=["too-long", "empty"])
def test_impossible_file_names_are_refused_before_any_work(tmp_path: Path, name: str,
                                                           says: str) -> None:
    """A name over NAME_MAX failed only after the search (ENAMETOOLONG at the rename)."""
    out = str(tmp_path / name) if name else ""
    refused_nothing_written(tmp_path, "map", [*W, "--budget", 20, "--out", out], "--out", says)
