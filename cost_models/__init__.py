"""Cost models: data movement (``nest``), its pricing (``pricing``), and ``evaluate``."""

from cost_models.model import Evaluation, evaluate
from cost_models.nest import DataMovement, analyze
from cost_models.pricing import Cost, Prices, price

__all__ = ["Cost", "DataMovement", "Evaluation", "Prices", "analyze", "evaluate", "price"]
