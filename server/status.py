"""The one place that maps errors to gRPC status codes.

Each layer raises its own error type, carrying a message a person can act on; this table
picks the most specific status code for it. Anything not in the table is a bug of ours:
INTERNAL, with the traceback in the server's log.
"""

from __future__ import annotations

import logging

import grpc

from server.engine import BadRequest, NotFound, NotReady, TooLarge, Unsupported
from server.store import FeedError, StoreError
from server.wire import WireError
from tensor_ir.cancel import DeadlineExceeded
from tensor_ir.expr.errors import RankingError

log = logging.getLogger(__name__)

# first match wins: more specific types come before the types they derive from
_CODES: tuple[tuple[type[BaseException], grpc.StatusCode], ...] = (
    (BadRequest, grpc.StatusCode.INVALID_ARGUMENT),
    (WireError, grpc.StatusCode.INVALID_ARGUMENT),  # a tensor's type or bytes
    (RankingError, grpc.StatusCode.INVALID_ARGUMENT),  # a query input missing or of the wrong shape
    (FeedError, grpc.StatusCode.INVALID_ARGUMENT),  # a malformed document id
    (NotFound, grpc.StatusCode.NOT_FOUND),
    (Unsupported, grpc.StatusCode.FAILED_PRECONDITION),
    (DeadlineExceeded, grpc.StatusCode.DEADLINE_EXCEEDED),
    (TooLarge, grpc.StatusCode.RESOURCE_EXHAUSTED),
    (MemoryError, grpc.StatusCode.RESOURCE_EXHAUSTED),  # numpy's and CuPy's out-of-memory errors derive from it
    (NotReady, grpc.StatusCode.UNAVAILABLE),
    (StoreError, grpc.StatusCode.UNAVAILABLE),  # the store closed under a request while shutting down
)


def status_of(exc: BaseException, what: str = "request") -> tuple[grpc.StatusCode, str]:
    """The status code and message for an error that ended `what`."""
    for kind, code in _CODES:
        if isinstance(exc, kind):
            message = str(exc)
            if isinstance(exc, DeadlineExceeded):
                message = "the deadline passed while scoring; scoring was stopped (give the request a longer " \
                          "deadline, or score fewer documents with doc_ids)"
            elif isinstance(exc, MemoryError):
                message = f"out of memory during the {what}: {exc or 'allocation failed'}"
            return code, message or type(exc).__name__
    log.error("internal error in %s", what, exc_info=exc)
    return grpc.StatusCode.INTERNAL, f"internal error in the {what} ({type(exc).__name__}: {exc}); " \
                                     "the server log has the details"
