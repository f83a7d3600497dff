"""PyTorch front end: a ``torch.export`` program -> Relax -> :class:`Graph`.

``from_exported_program(ep)`` imports an ``ExportedProgram`` with TVM's own importer
(``tvm.relax.frontend.torch.from_exported_program``; weights become Relax constants, so
they are the graph's param values), decomposes training-style ops into their inference
form (``relax.transform.DecomposeOpsForInference``: a ``batch_norm`` becomes a scale and a
shift), folds what has constant arguments (``relax.transform.FoldConstant``) and reads the
module with
:func:`compiler.frontends.relax.from_relax`.  ``load_exported_program(path)`` reads a
``.pt2`` file written by ``torch.export.save``.

torch is optional (``pip install -e .[torch]``): it is imported only inside these calls, and
:func:`is_exported_program` answers without importing it.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from compiler.errors import CompilerError
from compiler.frontends.relax import from_relax
from compiler.graph import Graph

_NEEDS = "the PyTorch front end needs torch (pip install -e '.[torch]', torch==2.14.1)"


def is_exported_program(obj: object) -> bool:
    """Whether ``obj`` is a ``torch.export.ExportedProgram`` (without importing torch: one
    can only exist when torch is imported already)."""
    torch = sys.modules.get("torch")
    export = getattr(torch, "export", None) if torch is not None else None
    ep = getattr(export, "ExportedProgram", None) if export is not None else None
    return ep is not None and isinstance(obj, ep)


def load_exported_program(path: str | Path) -> Any:
    """The ``ExportedProgram`` in a ``.pt2`` file (raises :class:`CompilerError` for a
    missing or unreadable file, or when torch is not installed)."""
    where = str(path)
    if not Path(path).is_file():
        raise CompilerError("no such .pt2 file", where=where)
    try:
        import torch
    except ImportError:
        raise CompilerError(_NEEDS, where=where) from None
    try:
        return torch.export.load(str(path))
    except Exception as e:  # zip/pickle/version errors of torch's loader
        raise CompilerError(f"not a readable torch.export program ({type(e).__name__}: "
                            f"{str(e).strip().splitlines()[0] if str(e).strip() else ''})",
                            where=where) from None


def from_exported_program(ep: Any, *, name: str | None = None, where: str = "torch") -> Graph:
    """Read a ``torch.export.ExportedProgram`` (see the module docstring)."""
    if not is_exported_program(ep):
        raise CompilerError(f"expected a torch.export.ExportedProgram, found "
                            f"{type(ep).__name__}", where=where)
    try:
        import tvm
        from tvm import relax
        from tvm.relax.frontend.torch import from_exported_program as tvm_import
    except ImportError as e:
        raise CompilerError(f"the PyTorch front end needs Apache TVM: {e}", where=where) \
            from None
    try:
        mod = tvm_import(ep)
    except Exception as e:
        msg = str(e).strip().splitlines()
        raise CompilerError(f"TVM's torch.export importer failed: {type(e).__name__}: "
                            f"{msg[-1] if msg else ''}", where=where) from None
    # inference forms (batch_norm -> scale and shift), then constant arguments folded
    mod = tvm.transform.Sequential([relax.transform.DecomposeOpsForInference(),
                                    relax.transform.FoldConstant()])(mod)
    try:
        return from_relax(mod, name=name or "torch")
    except CompilerError as e:
        raise CompilerError(e.detail, where=where, key=e.key) from None


__all__ = ["from_exported_program", "is_exported_program", "load_exported_program"]
