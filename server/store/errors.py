"""The store's errors: one per operation (FeedError) and one for the store itself (StoreError)."""

from __future__ import annotations

from tensor_ir.errors import TensorRankError


class FeedError(TensorRankError, ValueError):
    """A feed operation that was refused: says which document, which field and what was wrong.

    A refused operation changes nothing; the other operations of the same feed go on.
    """

    def __init__(self, message: str, doc_id: str | None = None, field: str | None = None) -> None:
        self.message = message
        self.doc_id = doc_id
        self.field = field
        parts = [p for p in (doc_id, f"field '{field}'" if field else None) if p]
        super().__init__(": ".join([*parts, message]))


class StoreError(TensorRankError, RuntimeError):
    """The store cannot be opened or written: the data directory, the database or the schema."""
