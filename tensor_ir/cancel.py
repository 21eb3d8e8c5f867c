"""Deadlines for long evaluations: a caller sets one, backends check it between steps.

A context variable, so it follows a request into worker threads (asyncio.to_thread
copies the context) and never leaks into other requests.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from contextvars import ContextVar

from tensor_ir.errors import TensorRankError

_deadline: ContextVar[float | None] = ContextVar("tensorrank_deadline", default=None)


class DeadlineExceeded(TensorRankError):
    """Evaluation stopped because the caller's deadline passed."""


@contextlib.contextmanager
def deadline(at: float | None) -> Iterator[None]:
    """Evaluate under a deadline in time.monotonic() seconds (None: no deadline)."""
    token = _deadline.set(at)
    try:
        yield
    finally:
        _deadline.reset(token)


def check() -> None:
    at = _deadline.get()
    if at is not None and time.monotonic() > at:
        raise DeadlineExceeded("the deadline passed while scoring; evaluation stopped")
