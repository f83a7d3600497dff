"""mapspace core types: Problem, Arch, MappingBatch, and the space of mappings."""

from mapspace.arch import ActionEnergy, Arch, ComputeUnit, StorageLevel
from mapspace.errors import MapspaceError
from mapspace.mapping import MappingBatch, single
from mapspace.problem import Problem, Tensor, Term, bmm, conv2d, depthwise_conv2d, matmul

__all__ = [
    "ActionEnergy", "Arch", "ComputeUnit", "MappingBatch", "MapspaceError", "Problem",
    "StorageLevel", "Tensor", "Term", "bmm", "conv2d", "depthwise_conv2d", "matmul", "single",
]
