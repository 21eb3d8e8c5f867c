"""The root of every error tensorrank raises on purpose, and the core layer's own errors.

Each layer derives its errors from TensorRankError and makes each carry where it happened
(file:line:column, model and node, document id and field). The server maps every subclass
to a gRPC status in one table (server/status.py); an exception outside this tree reaching
the server is a bug of ours and answers INTERNAL.
"""

from __future__ import annotations


class TensorRankError(Exception):
    """Something tensorrank refuses or cannot do, with a message a person can act on."""


class IRError(TensorRankError, ValueError):
    """An ill-formed tensor program: wrong shapes, dtypes or attributes for a primitive."""


class EvaluationError(TensorRankError, RuntimeError):
    """A program could not be evaluated on the inputs it was given: a missing or misshapen
    input, or a value (an index, say) that the query made invalid."""


class DocumentValueError(EvaluationError):
    """A program could not be evaluated because of a value stored in the documents (an index
    read from an attribute out of range, say): no query could have avoided it."""
