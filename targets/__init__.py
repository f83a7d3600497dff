"""Concrete machines (Timeloop-format YAML + energy tables) and, later, per-target emitters."""

from targets.registry import (
    TARGETS,
    LevelInfo,
    TargetInfo,
    default_constraints,
    list_targets,
    load_target,
    target_info,
)

__all__ = [
    "TARGETS", "LevelInfo", "TargetInfo", "default_constraints", "list_targets", "load_target",
    "target_info",
]
