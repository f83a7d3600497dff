"""Cost models: data movement (``nest``), its pricing (``pricing``), ``evaluate``, and the
Sparseloop-style sparse layer (``sparse``)."""

from cost_models.model import Evaluation, evaluate
from cost_models.nest import DataMovement, analyze
from cost_models.pricing import Cost, Prices, price
from cost_models.sparse import Action, Format, SparseCost, SparseOptimizations, evaluate_sparse

__all__ = ["Action", "Cost", "DataMovement", "Evaluation", "Format", "Prices", "SparseCost",
           "SparseOptimizations", "analyze", "evaluate", "evaluate_sparse", "price"]
