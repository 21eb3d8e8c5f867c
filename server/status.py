"""The one place that maps errors to gRPC status codes.

Every error tensorrank raises on purpose derives from tensor_ir.errors.TensorRankError, and
every one of its classes has a row in STATUS (tests/server/test_status_table.py walks the
whole class tree and fails on one without). An error is looked up by its own class first,
then by its bases. Anything else reaching the server is a bug of ours: INTERNAL, with the
traceback in the server's log.
"""

from __future__ import annotations

import logging

import grpc

from gpu_engine.expressions import RenderError
from gpu_engine.nvrtc_check import NvrtcError
from server.application.errors import SchemaError
from server.client import ClientError, FeedInterrupted, ServerUnavailable
from server.engine import BadRequest, NotFound, NotReady, RequestError, TooLarge, Unsupported
from server.feed_file import UnreadableFeed
from server.store import FeedError, StoreError
from server.store.shard import ShardMemoryError
from server.store.values import FieldValueError
from server.wire import WireError
from tensor_ir.cancel import DeadlineExceeded
from tensor_ir.errors import DocumentValueError, EvaluationError, IRError, TensorRankError
from tensor_ir.expr.errors import RankingError
from tensor_ir.expr.tensor_json import TensorValueError
from tensor_ir.expr.types import TypeSyntaxError
from tensor_ir.expr.values import MappedUnsupported
from tensor_ir.mapped import LabelError
from tensor_ir.onnx_import.context import UndeclaredAttributeError
from tensor_ir.onnx_import.errors import ModelImportError
from tensor_ir.onnx_import.registry import RegistryError
from tensor_ir.trees import MalformedForest

log = logging.getLogger(__name__)

C = grpc.StatusCode

STATUS: dict[type[BaseException], grpc.StatusCode] = {
    # a malformed request: the client can fix it
    BadRequest: C.INVALID_ARGUMENT,
    WireError: C.INVALID_ARGUMENT,  # a tensor's type or bytes
    TypeSyntaxError: C.INVALID_ARGUMENT,  # a tensor type string
    TensorValueError: C.INVALID_ARGUMENT,  # a tensor in Vespa's JSON forms
    LabelError: C.INVALID_ARGUMENT,  # a mapped tensor's label (too long, an address given twice)
    FieldValueError: C.INVALID_ARGUMENT,  # a document field's value
    FeedError: C.INVALID_ARGUMENT,  # a feed operation or document id
    RankingError: C.INVALID_ARGUMENT,  # a query input missing or of the wrong shape
    EvaluationError: C.INVALID_ARGUMENT,  # a query value the program cannot take (an index out of range)
    # a package sent for deployment that is invalid (no request sends one yet; the deploy RPC will)
    SchemaError: C.INVALID_ARGUMENT,
    ModelImportError: C.INVALID_ARGUMENT,
    MalformedForest: C.INVALID_ARGUMENT,  # a tree ensemble's model file (xgboost(), lightgbm(), ONNX-ML)
    NotFound: C.NOT_FOUND,
    # the request is fine, the state is not: an abstract profile, documents whose values the program refuses
    Unsupported: C.FAILED_PRECONDITION,
    DocumentValueError: C.FAILED_PRECONDITION,
    DeadlineExceeded: C.DEADLINE_EXCEEDED,
    TooLarge: C.RESOURCE_EXHAUSTED,
    ShardMemoryError: C.RESOURCE_EXHAUSTED,  # the device cannot hold the shard a feed needs
    MemoryError: C.RESOURCE_EXHAUSTED,  # numpy's and CuPy's out-of-memory errors derive from it
    NotReady: C.UNAVAILABLE,
    StoreError: C.UNAVAILABLE,  # the store closed under a request while shutting down
    # never raised by a request's own input: in the server these are bugs of ours
    IRError: C.INTERNAL,  # programs are built and verified at deploy
    MappedUnsupported: C.INTERNAL,  # found when a profile compiles, at deploy
    RegistryError: C.INTERNAL,
    UndeclaredAttributeError: C.INTERNAL,  # a converter asking for an attribute its op does not have
    RenderError: C.INTERNAL,  # can_fuse accepts only what the renderer expresses
    NvrtcError: C.INTERNAL,  # the NVRTC check is a tool of the tests, not of requests
    RequestError: C.INTERNAL,  # only its subclasses are raised
    ClientError: C.INTERNAL,  # the client library's errors: raised in clients, not in the server
    ServerUnavailable: C.INTERNAL,
    FeedInterrupted: C.INTERNAL,
    UnreadableFeed: C.INTERNAL,  # the feed-file reader's own, caught inside it
    TensorRankError: C.INTERNAL,
}


def code_of(exc: BaseException) -> grpc.StatusCode | None:
    """The status for `exc` by its class or nearest base with a row; None for foreign errors."""
    for cls in type(exc).__mro__:
        code = STATUS.get(cls)
        if code is not None:
            return code
    return None


def status_of(exc: BaseException, what: str = "request") -> tuple[grpc.StatusCode, str]:
    """The status code and message for an error that ended `what`."""
    code = code_of(exc)
    if code is not None and code is not C.INTERNAL:
        message = str(exc)
        if isinstance(exc, DeadlineExceeded):
            message = "the deadline passed while scoring; scoring was stopped (give the request a longer " \
                      "deadline, or score fewer documents with doc_ids)"
        elif isinstance(exc, MemoryError):
            message = f"out of memory during the {what}: {exc or 'allocation failed'}"
        return code, message or type(exc).__name__
    log.error("internal error in %s", what, exc_info=exc)
    return C.INTERNAL, f"internal error in the {what} ({type(exc).__name__}: {exc}); " \
                       "the server log has the details"
