"""Error types of the core layer. Each carries where it happened."""

from __future__ import annotations


class IRError(ValueError):
    """An ill-formed tensor program: wrong shapes, dtypes or attributes for a primitive."""


class EvaluationError(RuntimeError):
    """A program could not be evaluated on the inputs it was given."""
