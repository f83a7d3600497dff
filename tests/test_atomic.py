"""mapspace.atomic: staged writes land whole or not at all, and leave no temporaries."""

import os
import stat

import pytest

from mapspace.atomic import staged_dir, staged_file
from mapspace.errors import MapspaceError


def test_staged_file_replaces_on_success(tmp_path):
    out = tmp_path / "a.txt"
    out.write_text("old")
    with staged_file(out) as tmp:
        assert tmp.endswith(".txt") and os.path.dirname(tmp) == str(tmp_path)
        with open(tmp, "w") as f:
            f.write("new")
        assert out.read_text() == "old"          # nothing visible before the block ends
    assert out.read_text() == "new"
    assert sorted(os.listdir(tmp_path)) == ["a.txt"]


def test_staged_file_keeps_the_old_file_on_error(tmp_path):
    out = tmp_path / "a.txt"
    out.write_text("old")
    with pytest.raises(RuntimeError), staged_file(out) as tmp:
        with open(tmp, "w") as f:
            f.write("half")
        raise RuntimeError("boom")
    assert out.read_text() == "old"
    assert sorted(os.listdir(tmp_path)) == ["a.txt"]


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs here")
def test_staged_file_refuses_a_non_regular_file(tmp_path):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    with pytest.raises(MapspaceError, match="not a regular file"), staged_file(fifo):
        pass
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)
    with pytest.raises(MapspaceError, match="not a regular file"), staged_file(tmp_path):
        pass
    assert sorted(os.listdir(tmp_path)) == ["pipe"]


def test_staged_dir_creates_a_missing_folder_with_ordinary_permissions(tmp_path):
    out = tmp_path / "out"
    with staged_dir(out) as tmp:
        (tmp / "sub").mkdir()
        (tmp / "sub" / "x").write_text("x")
        (tmp / "y").write_text("y")
        assert not out.exists()
    assert (out / "sub" / "x").read_text() == "x" and (out / "y").read_text() == "y"
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(os.stat(out).st_mode) == 0o777 & ~umask
    assert sorted(os.listdir(tmp_path)) == ["out"]


def test_staged_dir_merges_into_an_existing_folder(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep").write_text("kept")
    (out / "y").write_text("old")
    with staged_dir(out) as tmp:
        (tmp / "y").write_text("new")
        (tmp / "sub").mkdir()
        (tmp / "sub" / "z").write_text("z")
    assert (out / "keep").read_text() == "kept" and (out / "y").read_text() == "new"
    assert (out / "sub" / "z").read_text() == "z"
    assert sorted(os.listdir(tmp_path)) == ["out"]


def test_staged_dir_replace_and_beside(tmp_path):
    out = tmp_path / "out"
    (out / "code").mkdir(parents=True)
    (out / "code" / "stale").write_text("stale")
    with staged_dir(out / "code", beside=tmp_path, replace=True, prefix=".code-") as tmp:
        assert tmp.parent == tmp_path.resolve() and tmp.name.startswith(".code-")
        (tmp / "fresh").write_text("fresh")
    assert sorted(os.listdir(out / "code")) == ["fresh"]
    assert sorted(os.listdir(tmp_path)) == ["out"]


def test_staged_dir_leaves_the_folder_alone_on_error(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "y").write_text("old")
    with pytest.raises(RuntimeError), staged_dir(out) as tmp:
        (tmp / "y").write_text("new")
        raise RuntimeError("boom")
    assert (out / "y").read_text() == "old"
    assert sorted(os.listdir(tmp_path)) == ["out"]
    with pytest.raises(RuntimeError), staged_dir(tmp_path / "new") as tmp:
        (tmp / "y").write_text("new")
        raise RuntimeError("boom")
    assert sorted(os.listdir(tmp_path)) == ["out"]
