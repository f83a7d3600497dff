"""Front ends: models in, :class:`~compiler.graph.Graph` out (``onnx`` imports lazily)."""

from compiler.frontends.onnx import SUPPORTED_OPS, from_onnx

__all__ = ["SUPPORTED_OPS", "from_onnx"]
