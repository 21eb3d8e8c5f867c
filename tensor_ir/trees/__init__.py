"""Tree ensembles as one primitive: the canonical forest (`forest.py`), built once at import
from a `ForestSpec` (`spec.py`) by ONNX-ML's converters and the xgboost() and lightgbm()
features; its layouts (`layout.py`) and its reference evaluation in numpy (`walk.py`)."""

from tensor_ir.trees.errors import MalformedForest
from tensor_ir.trees.forest import Forest, canonical_forest
from tensor_ir.trees.spec import ForestSpec, NodeSpec, TreeSpec
from tensor_ir.trees.walk import evaluate

__all__ = ["Forest", "ForestSpec", "MalformedForest", "NodeSpec", "TreeSpec", "canonical_forest", "evaluate"]
