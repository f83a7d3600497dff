"""Our mapper inside ordinary TVM builds (TVM imported lazily, on first use).

* :func:`mapspace_pipeline` — a Relax pipeline for ``tvm.compile(mod, target,
  relax_pipeline=...)`` that schedules every recognised matmul / bmm / conv2d PrimFunc with
  a mapping from our search and every other PrimFunc with a generic rule
  (``relax_pass.py``); :func:`register_pipeline` names it ``"mapspace"``.
* :func:`schedule_generic` (``generic.py``) -- parallel, vectorised schedules for the
  PrimFuncs that are not MAC ops (softmax, layer norm, elementwise, transposes, pooling).
* :func:`recognize` — the MAC block of a legalized PrimFunc, its op and sizes by our dims.
* MetaSchedule adapters (``metaschedule.py``): :func:`mapspace_space` (our sampler as a
  space generator) and :class:`MapspaceCostModel` (our analytical model as a
  ``PyCostModel``).
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "recognize": "targets.tvm_plugin.recognition",
    "MacBlock": "targets.tvm_plugin.recognition",
    "mapspace_pipeline": "targets.tvm_plugin.relax_pass",
    "mapspace_schedule_pass": "targets.tvm_plugin.relax_pass",
    "schedule_module": "targets.tvm_plugin.relax_pass",
    "register_pipeline": "targets.tvm_plugin.relax_pass",
    "ScheduledFunc": "targets.tvm_plugin.relax_pass",
    "schedule_generic": "targets.tvm_plugin.generic",
    "MappingCache": "targets.tvm_plugin.search",
    "search_mapping": "targets.tvm_plugin.search",
    "mapspace_space": "targets.tvm_plugin.metaschedule",
    "MapspaceCostModel": "targets.tvm_plugin.metaschedule",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'targets.tvm_plugin' has no attribute {name!r}")


__all__ = sorted(_LAZY)
