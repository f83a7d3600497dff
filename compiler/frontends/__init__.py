"""Front ends: models in, :class:`~compiler.graph.Graph` out (``onnx`` and ``tvm`` are
imported lazily, inside the calls)."""

from compiler.frontends.onnx import SUPPORTED_OPS, from_onnx
from compiler.frontends.relax import SUPPORTED_OPS as RELAX_OPS
from compiler.frontends.relax import from_onnx_via_relax, from_relax

__all__ = ["RELAX_OPS", "SUPPORTED_OPS", "from_onnx", "from_onnx_via_relax", "from_relax"]
