"""The ``mapspace`` command line: the group in :mod:`compiler.cli.common`, the commands in
:mod:`compiler.cli.analyse`, :mod:`compiler.cli.build` and :mod:`compiler.cli.learn`
(importing them registers them on :data:`main`).  Every command catches the project's
error types once, prints one line to stderr and exits with code 2; nothing is written
half-way.  A new command goes in one of these modules (or a new one imported here)."""

from compiler.cli import analyse, build, learn, sweep  # noqa: F401  (registers the commands)
from compiler.cli.common import main

__all__ = ["main"]
