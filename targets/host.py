"""What the host machine offers to every target that runs on it: the cores we may use.

Both the ``cpu`` target (its core fan-out, :func:`targets.cpu.host_arch`) and the TVM
runtime set-up (the size of TVM's CPU thread pool, :func:`targets.tvm_common.host_threads`)
need this count; it lives here so that neither of them imports the other for it.
"""

from __future__ import annotations

import os


def num_cores() -> int:
    """The CPUs in our affinity mask (``os.cpu_count()`` where there is none), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # pragma: no cover - non-Linux
        return max(1, os.cpu_count() or 1)
