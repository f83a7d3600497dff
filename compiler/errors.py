"""The one exception type of the ``compiler`` package (a :class:`MapspaceError`, so the CLI's
single ``except MapspaceError`` catches it)."""

from __future__ import annotations

from mapspace.errors import MapspaceError


class CompilerError(MapspaceError):
    """Bad model input or an inconsistent graph: names the file or op/node and what is wrong.

    ``where`` is the file, function or ``op 'name'``; ``key`` the offending attribute/tensor.
    """

    def at(self, where: str) -> CompilerError:
        if self.where:
            return self
        return CompilerError(self.detail, where=where, key=self.key)
