"""Pick a mapping with the cost model alone and hand it to a target's emitter.

The target's record (:class:`targets.registry.Target`) gives the arch, the space to search
(:meth:`~targets.registry.Target.space`: default constraints for the problem, per-problem
hooks, and the emitter's extra validity rules, so every searched mapping can be emitted)
and the emitter; this module only drives them.  Lives in ``compiler`` because it writes
the emitted files the way every command does (staged, then moved into place).
"""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path
from typing import Any

from cost_models.interface import CostModel
from cost_models.learned import cost_model_of
from cost_models.search import DEFAULT_STRATEGY, find_mapping
from mapspace.atomic import staged_dir
from mapspace.errors import MapspaceError
from mapspace.mapping import MappingBatch
from mapspace.mapping_yaml import load_mapping
from mapspace.problem import Problem
from mapspace.space import Mapspace
from mapspace.workloads import workload
from targets.registry import Target, get_target

#: evaluations ``emit`` spends when neither a budget nor a time limit is given
EMIT_BUDGET = 20_000


def choose_mapping(space: Mapspace, *, seed: int = 0, strategy: str = DEFAULT_STRATEGY,
                   budget: int | None = None, time_limit: float | None = None,
                   objective: str = "edp", rerank: CostModel | None = None) -> MappingBatch:
    """Best mapping the cost model finds in ``space`` (no measurement); a batch of one.
    ``rerank`` (a learned model, ``--cost learned:M``) picks among the analytical model's
    top-K (:func:`cost_models.search.rerank_top`)."""
    if budget is None and time_limit is None:
        budget = EMIT_BUDGET
    return find_mapping(space, strategy=strategy, objective=objective, seed=seed,
                        budget=budget, time_limit=time_limit, where="emit",
                        rerank=rerank).best_mapping


def emit_op(target: str | Target, problem: Problem, *, mapping: MappingBatch | None = None,
            dtype: str | None = None, strategy: str = DEFAULT_STRATEGY,
            budget: int | None = None, time_limit: float | None = None, seed: int = 0,
            out_dir: str | Path | None = None, run: bool = False,
            cost: str | CostModel | None = None) -> Any:
    """Choose a mapping in the target's space (unless given; ``cost``: ``"analytical"``
    or ``"learned:MODEL.skops"``, see :func:`choose_mapping`) and emit ``problem``.  Files
    land in ``out_dir`` only once everything succeeded (written to a sibling temporary
    folder, then moved); the returned ``EmitResult.files`` name them there.  A given
    mapping the emitter cannot build raises :class:`MapspaceError` with the reason."""
    t = target if isinstance(target, Target) else get_target(target, where="emit")
    mod = t.emitter_module()
    dtype = dtype or t.default_dtype
    arch = t.arch(dtype)
    rerank = cost_model_of(cost, target=t.name, arch=arch, where="emit: cost")
    if mapping is None:
        mapping = choose_mapping(t.space(problem, dtype), seed=seed, strategy=strategy,
                                 budget=budget, time_limit=time_limit, rerank=rerank)
    if out_dir is None:
        return mod.emit(problem, mapping, arch, dtype=dtype, out_dir=None, run=run, seed=seed)
    out_abs = os.path.abspath(out_dir)
    os.makedirs(os.path.dirname(out_abs), exist_ok=True)
    with staged_dir(out_abs, prefix=".mapspace-emit-") as tmp:
        res = mod.emit(problem, mapping, arch, dtype=dtype, out_dir=tmp, run=run, seed=seed)
    moved = tuple(Path(out_abs) / os.path.relpath(str(f), tmp) for f in res.files)
    return replace(res, files=moved)


def run_cli(*, target: str, workload_name: str, mapping_path: str | None,
            strategy: str | None, dtype: str | None, budget: int | None,
            time_limit: float | None, out: str, run: bool, seed: int,
            cost: str | None = None) -> Any:
    """``mapspace emit``: everything the command does short of printing (the files land in
    ``out`` only once everything succeeded: :func:`emit_op`)."""
    t = get_target(target)
    t.emitter_module()  # a target without an emitter fails before any other work
    dtype = dtype or t.default_dtype
    t.word_bits(dtype)  # a dtype the target does not run
    if mapping_path and strategy:
        raise MapspaceError("give either --mapping or --strategy, not both", where="emit")
    rerank = cost_model_of(cost, target=t.name, arch=t.arch(dtype), where="--cost")
    if mapping_path and rerank is not None:
        raise MapspaceError("give either --mapping or --cost learned:..., not both "
                            "(a given mapping is not chosen by a cost model)", where="emit")
    out_abs = os.path.abspath(out)
    parent = os.path.dirname(out_abs)
    if os.path.exists(out_abs) and not os.path.isdir(out_abs):
        raise MapspaceError(f"{out!r} exists and is not a folder", where="--out")
    if not os.path.isdir(parent):
        raise MapspaceError(f"folder {parent!r} does not exist", where="--out")
    problem = workload(workload_name)
    mapping = None
    if mapping_path:
        mapping = load_mapping(mapping_path, problem, t.arch(dtype))
    return emit_op(t, problem, mapping=mapping, dtype=dtype,
                   strategy=strategy or DEFAULT_STRATEGY, budget=budget,
                   time_limit=time_limit, seed=seed, out_dir=out_abs, run=run,
                   cost=rerank)
