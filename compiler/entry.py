"""The ``mapspace`` executable (``[project.scripts]``): the command line is imported inside
:func:`main`, so that Ctrl-C or SIGTERM while it starts (numpy, click, yaml: a few tenths of
a second) is the same one line and exit code 130 as later, not a traceback."""

from __future__ import annotations

import signal
import sys


def _stop(signum: int, _frame: object) -> None:
    raise KeyboardInterrupt


def main() -> None:
    if signal.getsignal(signal.SIGTERM) is not signal.SIG_IGN:
        signal.signal(signal.SIGTERM, _stop)
    try:
        from compiler.cli import main as cli
    except KeyboardInterrupt:
        sys.stderr.write("mapspace: error: interrupted while starting; nothing written\n")
        sys.exit(130)
    cli()
