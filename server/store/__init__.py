"""Documents: the durable SQLite store, resident shards, and Vespa's JSON feed format."""

from server.store.docid import DocumentId, parse_document_id
from server.store.errors import FeedError, StoreError
from server.store.feed_json import read_feed
from server.store.shard import Shard, Snapshot
from server.store.store import Document, DocumentStore, FeedResult, RestartStats, document_types
from server.store.values import DocType, FieldSpec

__all__ = [
    "DocType",
    "Document",
    "DocumentId",
    "DocumentStore",
    "FeedError",
    "FeedResult",
    "FieldSpec",
    "RestartStats",
    "Shard",
    "Snapshot",
    "StoreError",
    "document_types",
    "parse_document_id",
    "read_feed",
]
