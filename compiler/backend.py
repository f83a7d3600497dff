"""Execution backends: where a run's independent tasks (explore shards, sweep design points)
execute.  No home-made cluster, queue or RPC: the two distributed backends are Dask's.

* **in-process** (the default, no set-up): tasks run one after another in this process;
  the compiled kernels inside each task use the local cores (numba threads);
* ``workers=N`` (``--workers N``): a ``dask.distributed.LocalCluster`` of ``N`` worker
  processes, one thread each (each worker's numba kernels run on one thread, so ``N``
  workers use ``N`` cores);
* ``cluster="tcp://HOST:PORT"`` (``--cluster``): a running Dask scheduler; its workers must
  import this package (same version) and, for ``explore`` datasets, nothing else: results
  come back to this process, which writes every file;
* ``client=`` from Python: a ``distributed.Client`` the caller made; with none of the three
  given, the active Dask client when the caller made one (``distributed`` already
  imported and a default client set), else in-process; ``client=False``: in-process.

Dask is imported only when a distributed backend is used (``import compiler`` stays light).
Tasks are submitted in a bounded window (results stream back; memory stays bounded); a
task lost with its worker (killed, crashed) is re-run by the Dask scheduler on another
worker, and since every task is a pure function of its arguments (fixed seeds), the
result is the same.  A task that raises is not retried: its error is re-raised here.
"""

from __future__ import annotations

import re
import sys
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from mapspace.errors import MapspaceError

#: seconds to reach a ``--cluster`` scheduler before giving up
CONNECT_TIMEOUT_S = 5
#: most local worker processes
MAX_WORKERS = 256
_ADDRESS = re.compile(r"^(tcp|tls|ucx)://[A-Za-z0-9.\-\[\]:]+:\d{1,5}$")


@dataclass(frozen=True)
class Backend:
    """Where tasks run: ``kind`` is ``"in-process"``, ``"local-cluster"``, ``"cluster"``
    or ``"client"``; ``workers`` the worker count (1 in-process)."""

    kind: str
    workers: int
    client: Any = None          # a distributed.Client, None in-process

    @property
    def label(self) -> str:
        if self.kind == "in-process":
            return "in-process"
        return f"{self.kind} ({self.workers} worker{'s' if self.workers != 1 else ''})"

    def window(self) -> int:
        """Tasks kept in flight: two per worker (one running, one queued)."""
        return 1 if self.client is None else max(2, 2 * self.workers)

    def imap(self, fn: Callable[..., Any], args: Iterable[tuple], *,
             name: str = "task") -> Iterator[tuple[int, Any]]:
        """``(i, fn(*args_i))`` for each ``args_i`` (numbered from 0) as they finish, at
        most :meth:`window` in flight; ``args`` is pulled lazily, so a caller can stop
        yielding new tasks once it has enough."""
        it = enumerate(args)
        if self.client is None:
            for i, a in it:
                yield i, fn(*a)
            return
        from distributed import as_completed

        pending: dict[Any, int] = {}
        ac = as_completed(loop=self.client.loop)  # not the default client's
        token = uuid.uuid4().hex[:12]

        def submit() -> bool:
            nxt = next(it, None)
            if nxt is None:
                return False
            i, a = nxt
            fut = self.client.submit(fn, *a, pure=False, key=f"{name}-{token}-{i}")
            pending[fut] = i
            ac.add(fut)
            return True

        try:
            for _ in range(self.window()):
                if not submit():
                    break
            for fut in ac:
                i = pending.pop(fut)
                yield i, fut.result()  # a task's own error is re-raised here
                submit()
        finally:
            for fut in pending:
                fut.cancel()


def check_backend_options(workers: int | None, cluster: str | None) -> None:
    """``--workers`` 1..MAX_WORKERS, ``--cluster`` a Dask address, not both (MapspaceError,
    before any work)."""
    if workers is not None and cluster is not None:
        raise MapspaceError("give --workers N (a local cluster) or --cluster ADDRESS, not both",
                            where="options", key="--workers")
    if workers is not None and not 1 <= workers <= MAX_WORKERS:
        raise MapspaceError(f"must be 1 to {MAX_WORKERS}, found {workers}", where="options",
                            key="--workers")
    if cluster is not None and not _ADDRESS.match(cluster):
        raise MapspaceError(f"must be a Dask scheduler address such as tcp://HOST:8786, "
                            f"found {cluster!r}", where="options", key="--cluster")


def _active_client() -> Any:
    if "distributed" not in sys.modules:   # nobody made a client: do not import dask
        return None
    from distributed import default_client

    try:
        return default_client()
    except ValueError:
        return None


@contextmanager
def backend(workers: int | None = None, cluster: str | None = None,
            client: Any = None) -> Iterator[Backend]:
    """The backend for these options (see the module doc), closed on exit (a local cluster
    is shut down; a caller's client and a remote scheduler are left running)."""
    check_backend_options(workers, cluster)
    if client is False:                    # in this process, even with an active client
        yield Backend("in-process", 1)
        return
    client = client if client is not None else (
        _active_client() if workers is None and cluster is None else None)
    if client is not None:
        yield Backend("client", max(1, len(client.scheduler_info().get("workers", {}))), client)
        return
    if workers is None and cluster is None:
        yield Backend("in-process", 1)
        return
    import logging

    from distributed import Client, LocalCluster

    if cluster is not None:
        try:
            c = Client(cluster, timeout=CONNECT_TIMEOUT_S, set_as_default=False)
        except Exception as e:  # refused, timed out, or not a Dask scheduler at all
            raise MapspaceError(f"cannot reach a Dask scheduler at {cluster} within "
                                f"{CONNECT_TIMEOUT_S} s ({type(e).__name__})",
                                where="options", key="--cluster") from None
        try:
            yield Backend("cluster", max(1, len(c.scheduler_info().get("workers", {}))), c)
        finally:
            c.close()
        return
    # one thread per worker process, and numba/BLAS on one thread inside it
    lc = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                      dashboard_address=None, silence_logs=logging.ERROR,
                      env={"NUMBA_NUM_THREADS": "1", "OMP_NUM_THREADS": "1",
                           "OPENBLAS_NUM_THREADS": "1"})
    c = Client(lc, set_as_default=False)  # never the caller's active client
    try:
        yield Backend("local-cluster", int(workers), c)
    finally:
        c.close()
        lc.close()


__all__ = ["CONNECT_TIMEOUT_S", "MAX_WORKERS", "Backend", "backend", "check_backend_options"]
