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


def _builder(target: str) -> Any:
    """``targets.<t>.model`` of a target with an emitter (else ``None``)."""
    return importlib.import_module(f"targets.{EMITTERS[target]}.model") \
        if target in EMITTERS else None


def target_constraints(target: str, problem: Problem, dtype: str = "float32") -> Constraints:
    """The target's constraints for ``problem`` (its model module may add rules per problem:
    gemmini runs a depthwise convolution one channel at a time)."""
    if target == "cpu":
        from targets.cpu import cpu_constraints

        return cpu_constraints(problem, DTYPE_BITS.get(dtype, 32))
    from targets.registry import default_constraints

    base = default_constraints(target)
    hook = getattr(_builder(target), "search_constraints", None)
    return hook(base, problem) if hook else base


def problem_space(target: str, problem: Problem, arch: Arch,
                  constraints: Constraints) -> tuple[Arch, Constraints]:
    """``(arch, constraints)`` with the target's per-problem rules applied (its model
    module's ``search_arch``/``search_constraints`` hooks; unchanged for a target without
    them, and for problems they leave alone): the space ``compile`` searches and prices."""
    hook = getattr(_builder(target), "search_constraints", None)
    return search_arch(target, problem, arch), hook(constraints, problem) if hook else \
        constraints


def search_arch(target: str, problem: Problem, arch: Arch) -> Arch:
    """``arch`` as the emitter can use it for ``problem`` (gemmini: a depthwise tile holds
    one element per scratchpad row); ``arch`` itself when nothing changes."""
    hook = getattr(_builder(target), "search_arch", None)
    return hook(arch, problem) if hook else arch


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


def emittable_mapping(target: str, problem: Problem, mapping: MappingBatch, arch: Arch, *,
                      seed: int = 0, budget: int = 5_000) -> tuple[MappingBatch, str]:
    """``(mapping, "")`` when the target can emit ``mapping``; else a mapping searched in
    the target's own space for ``problem`` (:func:`target_constraints`, :func:`search_arch`;
    tried first when it differs from the plain target's), then with the level the emitter
    found too small made 2x, 4x, 8x smaller (multiple buffering), and the emitter's reason.
    Raises :class:`CompilerError` when none fits."""
    from compiler.errors import CompilerError

    builder = _builder(target)
    try:
        builder.check(problem, mapping, arch)
        return mapping, ""
    except MapspaceError as e:
        why = e.detail
    level = next((lv.name for lv in arch.levels if lv.name.lower() in why.lower()
                  and lv.depth is not None), None)
    cons = target_constraints(target, problem)
    base = search_arch(target, problem, arch)
    # first the target's own space for this problem (when it differs), then smaller levels
    shrinks = ([1] if base is not arch else []) + ([2, 4, 8] if level else [])
    for shrink in shrinks:
        lv = base.levels[base.level_index(level)] if level else None
        small = base if shrink == 1 or lv is None else base.with_level(
            level, multiple_buffering=lv.multiple_buffering * shrink)
        try:
            m = choose_mapping(problem, small, cons, seed=seed, budget=budget)
            builder.check(problem, m, arch)
            how = (f"the {target} constraints for this problem" if shrink == 1
                   else f"1/{shrink} of the {level}")
            return m, f"{why} (re-searched with {how})"
        except MapspaceError:
            continue
    raise CompilerError(f"the {target} emitter cannot run the mapping of {problem.name}: {why}",
                        where="emit")


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
            run: bool = False, arch: Arch | None = None) -> Any:
    """Choose a mapping (unless given) and emit ``problem`` for ``target``.  Files land in
    ``out_dir`` only once everything succeeded (written to a sibling temporary folder, then
    moved); the returned ``EmitResult.files`` name them there."""
    import os
    import shutil
    import tempfile
    from dataclasses import replace

    mod = emitter(target)
    arch = arch or target_arch(target, dtype)
    if mapping is None:
        mapping = choose_mapping(problem, search_arch(target, problem, arch),
                                 target_constraints(target, problem, dtype),
                                 seed=seed, strategy=strategy, budget=budget,
                                 time_limit=time_limit)
        mapping, _ = emittable_mapping(target, problem, mapping, arch, seed=seed)
    if out_dir is None:
        return mod.emit(problem, mapping, arch, dtype=dtype, out_dir=None, run=run, seed=seed)
    out_abs = os.path.abspath(out_dir)
    parent = os.path.dirname(out_abs)
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=".mapspace-emit-", dir=parent)
    try:
        res = mod.emit(problem, mapping, arch, dtype=dtype, out_dir=tmp, run=run, seed=seed)
        os.makedirs(out_abs, exist_ok=True)
        moved = []
        for f in res.files:
            dest = os.path.join(out_abs, os.path.relpath(str(f), tmp))
            os.makedirs(os.path.dirname(dest), exist_ok=True)
            shutil.move(str(f), dest)
            moved.append(Path(dest))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return replace(res, files=tuple(moved))


def run_cli(*, target: str, workload_name: str, mapping_path: str | None,
            strategy: str | None, dtype: str | None, budget: int | None,
            time_limit: float | None, out: str, run: bool, seed: int) -> Any:
    """``mapspace emit``: everything the command does short of printing (the files land in
    ``out`` only once everything succeeded: :func:`emit_op`)."""
    import os

    from mapspace.workloads import workload

    emitter(target)  # an unknown target fails before any other work
    dtype = dtype or ("int8" if target == "gemmini" else "float32")
    if dtype not in DTYPE_BITS:
        raise MapspaceError(f"must be one of {', '.join(DTYPE_BITS)}, found {dtype!r}",
                            where="emit", key="dtype")
    if mapping_path and strategy:
        raise MapspaceError("give either --mapping or --strategy, not both", where="emit")
    out_abs = os.path.abspath(out)
    parent = os.path.dirname(out_abs)
    if os.path.exists(out_abs) and not os.path.isdir(out_abs):
        raise MapspaceError(f"{out!r} exists and is not a folder", where="--out")
    if not os.path.isdir(parent):
        raise MapspaceError(f"folder {parent!r} does not exist", where="--out")
    problem = workload(workload_name)
    arch = target_arch(target, dtype)
    mapping = None
    if mapping_path:
        from mapspace.mapping_yaml import load_mapping

        mapping = load_mapping(mapping_path, problem, arch)
    return emit_op(target, problem, mapping=mapping, dtype=dtype,
                   strategy=strategy or "anneal", budget=budget, time_limit=time_limit,
                   seed=seed, out_dir=out_abs, run=run, arch=arch)
