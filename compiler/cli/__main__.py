"""``python -m compiler.cli``: the ``mapspace`` command."""

from compiler.cli import main

main()
