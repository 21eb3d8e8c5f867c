"""The error of a forest that cannot be evaluated as given."""

from __future__ import annotations

from tensor_ir.errors import TensorRankError


class MalformedForest(TensorRankError, ValueError):
    """A tree ensemble refused at deploy: a child out of range, a cycle, a feature beyond the
    input, an unknown mode. The message names the model, the tree and node, and the attribute."""
