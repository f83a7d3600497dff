"""Pick a mapping with the cost model alone and hand it to a target's emitter.

Lives in ``compiler`` (not ``targets``) because it uses :func:`compiler.mapper.find_mapping`;
the emitters themselves (``targets.<name>.emit``) import nothing from ``compiler``.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

from mapspace.arch import Arch
from mapspace.constraints import Constraints
from mapspace.errors import MapspaceError
from mapspace.mapping import MappingBatch
from mapspace.problem import Problem

#: targets with an emitter module ``targets.<module>.emit``
EMITTERS = {"cpu": "cpu", "gemmini": "gemmini"}
DTYPE_BITS = {"float32": 32, "int8": 8}


def target_arch(target: str, dtype: str = "float32") -> Arch:
    """The target's :class:`Arch`; the cpu's capacities are in words of ``dtype``."""
    if target == "cpu":
        from targets.cpu import host_arch

        return host_arch(DTYPE_BITS.get(dtype, 32))
    from targets.registry import load_target

    return load_target(target)


def target_constraints(target: str, problem: Problem, dtype: str = "float32") -> Constraints:
    if target == "cpu":
        from targets.cpu import cpu_constraints

        return cpu_constraints(problem, DTYPE_BITS.get(dtype, 32))
    from targets.registry import default_constraints

    return default_constraints(target)


def choose_mapping(problem: Problem, arch: Arch, constraints: Constraints, *, seed: int = 0,
                   strategy: str = "anneal", budget: int | None = None,
                   time_limit: float | None = None, objective: str = "edp") -> MappingBatch:
    """Best mapping the cost model finds (no measurement); a batch of one."""
    from compiler.mapper import check_limits, find_mapping

    check_limits(budget, time_limit, where="emit")
    if budget is None and time_limit is None:
        budget = 20_000
    res = find_mapping(problem, arch, constraints, strategy=strategy, objective=objective,
                       seed=seed, budget=budget, time_limit=time_limit)
    return res.best_mapping


def emitter(target: str) -> Any:
    """The ``targets.<target>.emit`` module; MapspaceError when there is none."""
    if target not in EMITTERS:
        raise MapspaceError(f"no emitter for target {target!r} (emitters: "
                            f"{', '.join(EMITTERS)})", where="emit", key="target")
    name = f"targets.{EMITTERS[target]}.emit"
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as e:
        if e.name in (name, f"targets.{EMITTERS[target]}"):
            raise MapspaceError(f"the {target} emitter ({name}) is not available",
                                where="emit", key="target") from None
        raise


def emit_op(target: str, problem: Problem, *, mapping: MappingBatch | None = None,
            dtype: str = "float32", strategy: str = "anneal", budget: int | None = None,
            time_limit: float | None = None, seed: int = 0, out_dir: str | Path | None = None,
            run: bool = False) -> Any:
    """Choose a mapping (unless given) and emit ``problem`` for ``target``."""
    mod = emitter(target)
    arch = target_arch(target, dtype)
    if mapping is None:
        mapping = choose_mapping(problem, arch, target_constraints(target, problem, dtype),
                                 seed=seed, strategy=strategy, budget=budget,
                                 time_limit=time_limit)
    return mod.emit(problem, mapping, arch, dtype=dtype, out_dir=out_dir, run=run, seed=seed)
