"""Write files and folders so that nothing is ever half-written: the one output helper of
every command.

Everything is written into a temporary sibling first (same folder, so the same file
system), flushed to the disk (``fsync``) and renamed into place only when the writing
block finishes without an error; on an error the temporary is removed and the
destination is left as it was.

- :func:`check_outputs` -- before any work: every output path can be written (its folder
  exists and takes a new file; an existing target is a regular file, or a folder for a
  folder output), a format its suffix names is known, no two outputs share a path and no
  output is one of the inputs;
- :func:`staged_file` -- a temporary path beside a file, renamed onto it (keeping the mode
  of the file it replaces);
- :func:`staged_dir` -- an empty temporary folder beside a folder: renamed into place when
  the folder does not exist yet (or ``replace=True``), else each file it holds replaces its
  counterpart in the folder (other files there are kept).

Operating-system errors (permissions, a full disk, a read-only file system, ``/sys``)
become one :class:`MapspaceError` naming the option and the path.
"""

from __future__ import annotations

import os
import shutil
import stat
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from mapspace.errors import MapspaceError

__all__ = ["Output", "check_outputs", "staged_dir", "staged_file"]


def _kind(mode: int) -> str:
    for test, name in ((stat.S_ISDIR, "a folder"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device"), (stat.S_ISFIFO, "a FIFO"),
                       (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return name
    return "not a regular file"


def _os_error(e: OSError, path: str, where: str) -> MapspaceError:
    why = e.strerror or str(e)
    return MapspaceError(f"cannot write {path!r}: {why}", where=where)


def _probe(folder: str, path: str, where: str) -> None:
    """A new file can be made in ``folder`` (``os.access`` says yes to root even where the
    file system says no: ``/sys``, a read-only mount)."""
    if not os.path.isdir(folder):
        raise MapspaceError(f"folder {folder!r} does not exist (for {path!r})", where=where)
    try:
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".mapspace-probe-")
    except OSError as e:
        raise MapspaceError(f"cannot write into folder {folder!r}: {e.strerror or e}",
                            where=where) from None
    os.close(fd)
    os.unlink(tmp)


def _destination(path: str | os.PathLike, where: str, *, folder: bool = False) -> str:
    """The real path ``path`` names (through links), refused when it is something other
    than a regular file (a folder with ``folder=True``) or a link to nothing."""
    p = os.fspath(path)
    if p == "" or p.endswith(os.sep) and not folder:
        raise MapspaceError(f"{p!r} is not a file path", where=where)
    real = os.path.realpath(p)
    parent = os.path.dirname(real)
    try:
        longest = os.pathconf(parent, "PC_NAME_MAX") if os.path.isdir(parent) else 255
    except (OSError, ValueError):
        longest = 255
    if len(os.fsencode(os.path.basename(real))) > longest:
        raise MapspaceError(f"the name {os.path.basename(real)[:40]!r}... is longer than the "
                            f"{longest} bytes a file name may have here", where=where)
    if os.path.lexists(p) and not os.path.exists(real):
        raise MapspaceError(f"{p!r} is a link to nothing ({real!r}); it would be replaced",
                            where=where)
    if os.path.exists(real):
        mode = os.stat(real).st_mode
        if folder and not stat.S_ISDIR(mode):
            what = "a file" if stat.S_ISREG(mode) else _kind(mode)
            raise MapspaceError(f"{p!r} exists and is {what}, not a folder", where=where)
        if not folder and not stat.S_ISREG(mode):
            raise MapspaceError(f"{p!r} exists and is {_kind(mode)}, not a regular file; it "
                                "would be replaced", where=where)
    return real


@dataclass(frozen=True)
class Output:
    """One output a command will write: ``path`` as the user gave it, the option naming it
    (``where``), a folder or a file, and the formats its suffix may name (``formats``:
    lower-case suffixes without the dot; ``None``: any; a path without a suffix takes
    ``default_format``)."""

    path: str | os.PathLike | None
    where: str
    folder: bool = False
    formats: tuple[str, ...] | None = None
    default_format: str | None = None

    def format(self) -> str | None:
        """The format the suffix names (lower case), or ``default_format`` without one."""
        suffix = os.path.splitext(os.fspath(self.path or ""))[1]
        return suffix[1:].lower() if suffix else self.default_format


def check_outputs(*outputs: Output, inputs: dict[str, str | os.PathLike | None] | None = None
                  ) -> None:
    """Refuse, before any work, outputs that cannot be written whole: see the module doc.
    ``inputs`` maps an option (``--problem``) to the file it names; ``None`` paths (an
    option not given) are skipped."""
    seen: dict[str, str] = {}
    folders: set[str] = set()      # of the outputs: an input may sit in a folder output
    written: set[str] = set()
    for name, p in (inputs or {}).items():
        if p is not None and os.path.exists(os.fspath(p)):
            seen.setdefault(os.path.realpath(os.fspath(p)), f"the {name} file")
    for o in outputs:
        if o.path is None:
            continue
        p = os.fspath(o.path)
        real = _destination(p, o.where, folder=o.folder)
        if o.formats is not None:
            fmt = o.format()
            if fmt not in o.formats:
                raise MapspaceError(f"{p!r}: unknown format {fmt or '(no suffix)'!r}; the "
                                    f"suffix names it: {', '.join(o.formats)}", where=o.where)
        other = seen.get(real)
        if other is None:  # a path inside a folder output, or a folder around an earlier path
            other = next((w for r, w in seen.items() if r in written and (
                (o.folder and r.startswith(real + os.sep))
                or (r in folders and real.startswith(r + os.sep)))), None)
        if other is not None:
            raise MapspaceError(f"{p!r} is also {other}; it would be overwritten (give "
                                "another path)", where=o.where)
        seen[real] = o.where
        written.add(real)
        if o.folder:
            folders.add(real)
        parent = os.path.dirname(real)
        _probe(parent, p, o.where)
        if o.folder and os.path.isdir(real) and not os.access(real, os.W_OK | os.X_OK):
            # (not probed: a folder given as an output stays untouched until the end)
            raise MapspaceError(f"folder {p!r} is not writable", where=o.where)


def _fsync(path: str | os.PathLike, folder: bool = False) -> None:
    """Flush ``path`` to the disk (a folder: its entries; some file systems refuse)."""
    fd = os.open(path, os.O_RDONLY | (os.O_DIRECTORY if folder else 0))
    try:
        os.fsync(fd)
    except OSError:
        if not folder:
            raise
    finally:
        os.close(fd)


def _umask() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return umask


def _new_mode() -> int:
    return 0o666 & ~_umask()


@contextmanager
def staged_file(path: str | os.PathLike, *, prefix: str = ".mapspace-",
                where: str = "write") -> Iterator[str]:
    """A temporary path in ``path``'s folder, with ``path``'s suffix, to write to; flushed
    and renamed onto ``path`` (through a link: onto the file it names) when the block exits
    normally, with the mode of the file it replaces (a new file: ``0666`` less the umask);
    removed in every case.

    An existing ``path`` that is not a regular file (a folder, a device, a FIFO, a socket,
    a link to nothing) is refused with :class:`MapspaceError` before anything is staged;
    an ``OSError`` while staging, writing or renaming becomes one too (``where``: the
    option)."""
    p = os.fspath(path)
    real = _destination(p, where)
    folder = os.path.dirname(real)
    try:
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=prefix, suffix=os.path.splitext(p)[1])
    except OSError as e:
        raise _os_error(e, p, where) from None
    os.close(fd)
    try:
        yield tmp
        mode = stat.S_IMODE(os.stat(real).st_mode) if os.path.exists(real) else _new_mode()
        os.chmod(tmp, mode)
        _fsync(tmp)
        os.replace(tmp, real)
        _fsync(folder, folder=True)
    except OSError as e:
        raise _os_error(e, p, where) from None
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


@contextmanager
def staged_dir(dest: str | os.PathLike, *, prefix: str | None = None,
               beside: str | os.PathLike | None = None, replace: bool = False,
               where: str = "--out") -> Iterator[Path]:
    """An empty temporary folder to fill; its content goes into ``dest`` when the block
    exits normally, and it is removed in every case.

    The folder is made in ``beside`` (default: ``dest``'s parent, which must exist; it
    must be on ``dest``'s file system) and named ``prefix`` + random letters (default
    prefix ``.<dest name>.mapspace-``).  On success every file in it is flushed, then it is
    renamed to ``dest`` (with the permissions a new folder gets, or those of the folder it
    replaces) when ``dest`` does not exist, or when ``replace`` is set (the old ``dest`` is
    removed first); otherwise every file in it is moved onto the same relative path in
    ``dest`` (replacing what is there, keeping its mode), one rename each.  An
    ``OSError`` becomes a :class:`MapspaceError` naming ``where``.
    """
    dest = Path(_destination(dest, where, folder=True))
    parent = Path(beside).resolve() if beside is not None else dest.parent
    try:
        tmp = Path(tempfile.mkdtemp(dir=parent, prefix=prefix or f".{dest.name}.mapspace-"))
    except OSError as e:
        raise _os_error(e, str(dest), where) from None
    try:
        yield tmp
        for root, _, files in os.walk(tmp):
            for f in files:
                _fsync(Path(root) / f)
        old_mode = stat.S_IMODE(os.stat(dest).st_mode) if dest.exists() else None
        if replace and dest.exists():
            shutil.rmtree(dest)
        if not dest.exists():
            os.chmod(tmp, old_mode if old_mode is not None else 0o777 & ~_umask())
            os.replace(tmp, dest)
            _fsync(dest.parent, folder=True)
        else:
            for root, _, files in os.walk(tmp):
                for f in files:
                    src = Path(root) / f
                    target = dest / src.relative_to(tmp)
                    target.parent.mkdir(parents=True, exist_ok=True)
                    if target.is_file():
                        os.chmod(src, stat.S_IMODE(os.stat(target).st_mode))
                    os.replace(src, target)
            _fsync(dest, folder=True)
    except OSError as e:
        raise _os_error(e, str(dest), where) from None
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
