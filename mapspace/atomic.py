"""Write files and folders so that nothing is ever half-written.

Everything is written into a temporary sibling first (same folder, so the same file
system) and renamed into place only when the writing block finishes without an error; on
an error the temporary is removed and the destination is left as it was.

- :func:`staged_file` -- a temporary path beside a file, renamed onto it;
- :func:`staged_dir` -- an empty temporary folder beside a folder: renamed into place when
  the folder does not exist yet (or ``replace=True``), else each file it holds replaces its
  counterpart in the folder (other files there are kept).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from mapspace.errors import MapspaceError

__all__ = ["staged_dir", "staged_file"]


@contextmanager
def staged_file(path: str | os.PathLike, *, prefix: str = ".mapspace-",
                where: str = "write") -> Iterator[str]:
    """A temporary path in ``path``'s folder, with ``path``'s suffix, to write to; renamed
    onto ``path`` when the block exits normally, removed in every case.

    An existing ``path`` that is not a regular file (a folder, a device, a FIFO, a broken
    link) is refused with :class:`MapspaceError` before anything is staged.
    """
    path = os.fspath(path)
    if os.path.lexists(path) and not os.path.isfile(path):
        raise MapspaceError(f"{path!r} exists and is not a regular file (a folder, device, "
                            "FIFO or broken link); it would be replaced", where=where)
    folder = os.path.dirname(os.path.abspath(path)) or "."
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=prefix, suffix=os.path.splitext(path)[1])
    os.close(fd)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


@contextmanager
def staged_dir(dest: str | os.PathLike, *, prefix: str | None = None,
               beside: str | os.PathLike | None = None,
               replace: bool = False) -> Iterator[Path]:
    """An empty temporary folder to fill; its content goes into ``dest`` when the block
    exits normally, and it is removed in every case.

    The folder is made in ``beside`` (default: ``dest``'s parent, which must exist; it
    must be on ``dest``'s file system) and named ``prefix`` + random letters (default
    prefix ``.<dest name>.mapspace-``).  On success it is renamed to ``dest`` (with the
    permissions a new folder gets) when ``dest`` does not exist, or when ``replace`` is
    set (the old ``dest`` is removed first); otherwise every file in it is moved onto the
    same relative path in ``dest`` (replacing what is there), one rename each.
    """
    dest = Path(dest).resolve()
    parent = Path(beside).resolve() if beside is not None else dest.parent
    tmp = Path(tempfile.mkdtemp(dir=parent, prefix=prefix or f".{dest.name}.mapspace-"))
    try:
        yield tmp
        if replace and dest.exists():
            shutil.rmtree(dest)
        if not dest.exists():
            umask = os.umask(0)
            os.umask(umask)
            os.chmod(tmp, 0o777 & ~umask)  # mkdtemp makes it private
            os.replace(tmp, dest)
        else:
            for root, _, files in os.walk(tmp):
                for f in files:
                    src = Path(root) / f
                    target = dest / src.relative_to(tmp)
                    target.parent.mkdir(parents=True, exist_ok=True)
                    os.replace(src, target)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
