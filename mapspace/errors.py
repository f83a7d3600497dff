"""The one exception type of the ``mapspace`` package.

Errors are for bad *input* (files, arguments); the hot path reports invalid mappings as
values (``valid`` arrays with reason codes), never by raising.
"""

from __future__ import annotations


class MapspaceError(ValueError):
    """Bad input: one sentence naming the file/argument, the key, what was expected and found.

    ``where`` is the file (or command/function) and ``key`` the offending key path; both are
    optional and, when given, prefix the message so the CLI can print it as is.
    """

    def __init__(self, message: str, *, where: str | None = None, key: str | None = None):
        self.where = where
        self.key = key
        self.detail = message
        prefix = ""
        if where and key:
            prefix = f"{where}: {key}: "
        elif where:
            prefix = f"{where}: "
        elif key:
            prefix = f"{key}: "
        super().__init__(prefix + message)

    def at(self, where: str) -> MapspaceError:
        """Return the same error located in ``where`` (kept if already located)."""
        if self.where:
            return self
        return MapspaceError(self.detail, where=where, key=self.key)


class Interrupted(KeyboardInterrupt):
    """Ctrl-C (SIGINT; SIGTERM too under the CLI) stopped a long computation after some of
    it was finished: ``partial`` holds the finished part (a valid result of its own: the
    samples drawn so far, the best mapping so far, the shapes searched so far) and
    ``done``/``total`` say how far it got (``total`` ``None`` when open-ended).  Code that
    does not look for it sees a ``KeyboardInterrupt``."""

    def __init__(self, partial: object, done: int, total: int | None = None,
                 unit: str = ""):
        super().__init__(f"after {done:,}"
                         + (f" of {total:,}" if total is not None else "")
                         + (f" {unit}" if unit else ""))
        self.partial = partial
        self.done = done
        self.total = total
        self.unit = unit
