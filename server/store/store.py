"""The document store: a durable SQLite database and one resident shard per document type.

A feed batch goes through three steps, and an operation is acknowledged only after the
second:
  1. every operation is checked against the schema; a bad one gets its error and takes no
     further part (the others go on);
  2. the good ones are applied in order inside one SQLite transaction (an update reads the
     document as the batch left it so far) and the transaction commits: this is what makes
     them durable;
  3. the shards get the batch's final document versions and publish a new snapshot.
If the commit fails, nothing of the batch is stored and every operation of it reports the
failure. Writers are serialised; ranking reads shard snapshots and never waits for them.

On open the shards are rebuilt from the database; `restart` says how long that took.
"""

from __future__ import annotations

import fcntl
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np
import numpy.typing as npt

from server.application.package import Application
from server.store import mapped_values
from server.store.docid import parse_document_id
from server.store.durable import Durable
from server.store.errors import FeedError, StoreError
from server.store.operations import Operation, Put, Remove, Update, operation_id, parse_operation
from server.store.shard import Shard, capacity_for
from server.store.values import DocType, FieldValueError, Unchecked, Value
from server.store.view import ShardView
from tensor_ir.backend import Backend
from tensor_ir.expr.profile import FieldDef
from tensor_ir.mapped import MappedTensor

log = logging.getLogger(__name__)

DATABASE = "documents.sqlite3"
LOCK = "documents.lock"
DEFAULT_BATCH = 1024

Schemas = Application | Mapping[str, Mapping[str, FieldDef]] | Mapping[str, DocType]


@dataclass(slots=True)
class FeedResult:
    """The outcome of one operation: `index` is its position in the feed, `request_id` the caller's name for it."""

    index: int
    request_id: str
    doc_id: str | None
    operation: str | None  # put, update, remove; None when the operation could not be read
    ok: bool
    error: str | None = None


@dataclass(frozen=True)
class RestartStats:
    seconds: float
    documents: dict[str, int]  # per document type

    @property
    def total(self) -> int:
        return sum(self.documents.values())


@dataclass(frozen=True)
class Document:
    id: str
    doctype: str
    fields: dict[str, Value]

    def to_json(self, types: Mapping[str, DocType]) -> dict[str, Any]:
        """Vespa's JSON form, as /document/v1 returns it."""
        specs = types[self.doctype].fields
        return {"id": self.id, "fields": {k: specs[k].to_json(v) for k, v in self.fields.items()}}


def document_types(schemas: Schemas) -> dict[str, DocType]:
    if isinstance(schemas, Application):
        return {s.definition.document or name: DocType.of(s.definition.document or name, s.definition.fields)
                for name, s in schemas.schemas.items()}
    out: dict[str, DocType] = {}
    for name, v in schemas.items():
        out[name] = v if isinstance(v, DocType) else DocType.of(name, v)
    return out


class DocumentStore:
    """Use `DocumentStore.open(data_dir, schemas, backend)`; close it (or use `with`) when done."""

    def __init__(self, data_dir: Path, types: dict[str, DocType], durable: Durable, shards: dict[str, Shard],
                 lock_file: IO[bytes], batch_size: int) -> None:
        self.data_dir = data_dir
        self.types = types
        self.batch_size = batch_size
        self._durable = durable
        self._shards = shards
        self._lock_file = lock_file
        self._write_lock = threading.Lock()
        self._closed = False
        self.restart = RestartStats(0.0, {})

    @classmethod
    def open(cls, data_dir: str | os.PathLike[str], schemas: Schemas, backend: Backend, *,
             batch_size: int = DEFAULT_BATCH, initial_capacity: int = 1024) -> DocumentStore:
        path = Path(data_dir)
        try:
            path.mkdir(parents=True, exist_ok=True)
            lock_file = open(path / LOCK, "wb")  # held open (and locked) for the store's lifetime
        except OSError as e:
            raise StoreError(f"data directory {path}: {e.strerror or e}") from None
        try:
            fcntl.flock(lock_file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            lock_file.close()
            raise StoreError(f"data directory {path} is in use by another tensorrank process") from None
        try:
            types = document_types(schemas)
            durable = Durable(path / DATABASE, types)
        except BaseException:
            lock_file.close()
            raise
        shards = {name: Shard(name, list(dt.fields.values()), backend, initial_capacity) for name, dt in types.items()}
        store = cls(path, types, durable, shards, lock_file, batch_size)
        try:
            store.restart = store._rebuild(initial_capacity)
        except BaseException:
            store.close()
            raise
        return store

    def __enter__(self) -> DocumentStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        with self._write_lock:
            if self._closed:
                return
            self._closed = True
            self._durable.close()
            self._lock_file.close()  # releases the directory lock

    # ------------------------------------------------------------------ restart

    def _rebuild(self, initial_capacity: int) -> RestartStats:
        start = time.perf_counter()
        counts: dict[str, int] = {}
        for dt in self.types.values():
            specs = [f for f in dt.attributes if not f.is_mapped]
            mapped_specs = [f for f in dt.attributes if f.is_mapped]
            ids: list[str] = []
            chunks: dict[str, list[npt.NDArray[Any]]] = {f.name: [] for f in specs}
            mapped: dict[str, list[Any]] = {f.name: [] for f in mapped_specs}
            for rows in self._durable.scan(dt, specs + mapped_specs):
                k = len(rows)
                cols = list(zip(*rows))
                ids.extend(cols[0])
                for f, blobs in zip(mapped_specs, cols[1 + len(specs):]):
                    try:
                        mapped[f.name].extend(None if b is None else f.decode(b) for b in blobs)
                    except FieldValueError as e:
                        raise StoreError(f"document type '{dt.name}': {e}") from None
                for f, blobs in zip(specs, cols[1:]):
                    if None in blobs:
                        zero = bytes(f.nbytes)
                        blobs = tuple(zero if b is None else b for b in blobs)
                    try:
                        data = b"".join(blobs)
                    except TypeError:
                        data = b""
                    if len(data) != k * f.nbytes or set(map(len, blobs)) != {f.nbytes}:
                        raise StoreError(f"document type '{dt.name}': a stored value of field '{f.name}' is not "
                                         f"{f.nbytes} bytes of {f.type_text}")
                    chunks[f.name].append(np.frombuffer(data, dtype=f.dtype).reshape(k, *f.shape))
            # counted while reading rather than before: count(*) would cost a scan of its own
            n = len(ids)
            cap = capacity_for(n, initial_capacity)
            host = {}
            for f in specs:
                host[f.name] = column = np.zeros((cap, *f.shape), dtype=f.dtype)
                if n:
                    np.concatenate(chunks[f.name], out=column[:n])
                chunks[f.name].clear()
            self._shards[dt.name].load(ids, host, mapped)
            counts[dt.name] = n
        stats = RestartStats(time.perf_counter() - start, counts)
        log.info("document store %s: rebuilt the shards from %d stored documents (%s) in %.2f s", self.data_dir,
                 stats.total, ", ".join(f"{k}: {v}" for k, v in counts.items()) or "no document types",
                 stats.seconds)
        return stats

    # ------------------------------------------------------------------ feeding

    def feed(self, ops: Iterable[Any], batch_size: int | None = None) -> Iterator[FeedResult]:
        """Feed a stream of operations in batches; yields one result per operation, in order.

        Checking a batch overlaps with committing the one before it (SQLite runs without
        the GIL), so a long feed uses both cores. A result is yielded only once its batch
        has committed; a consumer that stops early may leave its last batch committed unseen.
        A batch is committed when it is full or `ops` ends: a caller whose stream waits for
        acknowledgements before sending more should call `feed_batch` with what has arrived.
        """
        size = batch_size or self.batch_size
        with ThreadPoolExecutor(1, thread_name_prefix="tensorrank-feed") as writer:
            inflight: Future[list[FeedResult]] | None = None
            start = 0
            for batch in _chunks(ops, size):
                rids = [str(start + i) for i in range(len(batch))]
                results: list[FeedResult | None] = [None] * len(batch)
                checked = self._parse(batch, results, rids, start)
                if inflight is not None:
                    yield from inflight.result()
                inflight = writer.submit(self._commit, checked, results, rids, start)
                start += len(batch)
            if inflight is not None:
                yield from inflight.result()

    def feed_batch(self, ops: Sequence[Any], request_ids: Sequence[str] | None = None,
                   start: int = 0) -> list[FeedResult]:
        """Apply operations (Vespa JSON objects, or FeedErrors standing for unreadable ones) and commit them together.

        Field values may also be numpy arrays or raw little-endian cell bytes. Returns a
        result per operation; the successful ones are durable when this returns.
        """
        if request_ids is not None and len(request_ids) != len(ops):
            raise ValueError("request_ids must name every operation")
        rids = [str(start + i) for i in range(len(ops))] if request_ids is None else [str(r) for r in request_ids]
        results: list[FeedResult | None] = [None] * len(ops)
        return self._commit(self._parse(ops, results, rids, start), results, rids, start)

    def _commit(self, checked: tuple[list[int], list[Operation]], results: list[FeedResult | None],
                rids: list[str], start: int) -> list[FeedResult]:
        if checked[1]:
            with self._write_lock:
                if self._closed:
                    raise StoreError("the document store is closed")
                self._apply(*checked, results, rids, start)
        out = [r for r in results if r is not None]
        assert len(out) == len(results)
        return out

    def _parse(self, ops: Sequence[Any], results: list[FeedResult | None], rids: list[str],
               start: int) -> tuple[list[int], list[Operation]]:
        """The operations that passed every check, and their positions in the batch."""
        positions: list[int] = []
        parsed: list[Operation] = []
        unchecked = Unchecked()
        cells = unchecked.cells
        owner: list[int] = []  # position in `parsed` of each of `unchecked`
        types = self.types
        for i, obj in enumerate(ops):
            mark = len(cells)
            try:
                if isinstance(obj, FeedError):
                    raise obj
                op = parse_operation(obj, types, unchecked)
            except FeedError as e:
                unchecked.truncate(mark)
                results[i] = FeedResult(start + i, rids[i], e.doc_id or operation_id(obj), _kind(obj), False, str(e))
                continue
            added = len(cells) - mark
            if added == 1:
                owner.append(len(parsed))
            elif added:
                owner.extend([len(parsed)] * added)
            positions.append(i)
            parsed.append(op)
        if cells:
            failed: dict[int, str] = {}
            for j in unchecked.nonfinite():
                failed.setdefault(owner[j], unchecked.specs[j].name)
            for p, name in failed.items():
                i, op = positions[p], parsed[p]
                err = FeedError("NaN or infinity is not allowed", op.doc_id, name)
                results[i] = FeedResult(start + i, rids[i], op.doc_id, op.kind, False, str(err))
            if failed:
                keep = [p for p in range(len(parsed)) if p not in failed]
                positions, parsed = [positions[p] for p in keep], [parsed[p] for p in keep]
        return positions, parsed

    def _apply(self, positions: list[int], parsed: list[Operation], results: list[FeedResult | None],
               rids: list[str], start: int) -> None:
        # the batch's last version of each document it touches (Remove: gone)
        pending: dict[str, Put | Remove] = {}
        durable = self._durable
        # per document type: stored rows, removed ids, and the rows' field values (for the shards)
        writes: dict[str, tuple[list[tuple[Any, ...]], list[str], list[Mapping[str, Value]]]] = {}
        durable.begin()
        try:
            for i, op in zip(positions, parsed):
                if op.__class__ is Update:
                    try:
                        op = Put(op.doc_id, op.doctype, self._updated(op, pending))
                    except FeedError as e:
                        results[i] = FeedResult(start + i, rids[i], op.doc_id, op.kind, False, str(e))
                        continue
                pending[op.doc_id] = op  # type: ignore[assignment]
            for key, last in pending.items():
                w = writes.get(last.doctype.name)
                if w is None:
                    w = writes[last.doctype.name] = ([], [], [])
                rows, removes, states = w
                state = last.fields
                if state is None:
                    removes.append(key)
                else:
                    get = state.get
                    rows.append((key, *[v.tobytes() if (v := get(n)).__class__ is np.ndarray else
                                        mapped_values.encode(v) if v.__class__ is MappedTensor else v
                                        for n in last.doctype.fields]))
                    states.append(state)
            for name, (rows, removes, _) in writes.items():
                self._shards[name].check_room(len(rows))
                durable.write(self.types[name], rows, removes)
            durable.commit()
        except (sqlite3.Error, StoreError) as e:
            durable.rollback()
            log.error("document store %s: a feed batch was not stored: %s", self.data_dir, e)
            for i, op in zip(positions, parsed):
                if results[i] is None:
                    results[i] = FeedResult(start + i, rids[i], op.doc_id, op.kind, False,
                                            f"{op.doc_id}: not stored, the database write failed: {e}")
            return
        except BaseException:
            durable.rollback()
            raise
        # durable from here on; a failure below leaves the shards behind the database until a restart
        for name, (rows, removes, states) in writes.items():
            dt = self.types[name]
            blocks = {}
            mapped: dict[str, list[Any]] = {}
            for f in dt.attributes:
                if f.is_mapped:
                    mapped[f.name] = [st.get(f.name) for st in states]
                    continue
                j, zero = dt.position(f.name), bytes(f.nbytes)
                data = b"".join([zero if r[j] is None else r[j] for r in rows])
                blocks[f.name] = np.frombuffer(data, dtype=f.dtype).reshape(len(rows), *f.shape)
            self._shards[name].apply([r[0] for r in rows], blocks, removes, mapped)
        for i, op in zip(positions, parsed):
            if results[i] is None:
                results[i] = FeedResult(start + i, rids[i], op.doc_id, op.kind, True)

    def _updated(self, op: Update, pending: Mapping[str, Put | Remove]) -> dict[str, Value]:
        key = op.doc_id
        state = pending[key].fields if key in pending else self._durable.load(op.doctype, key)
        if state is None and not op.create:
            raise FeedError('document not found, nothing updated (add "create": true to create it)', key)
        return op.apply(state)

    # ------------------------------------------------------------------ reading

    def get(self, doc_id: str) -> Document | None:
        """The stored document, or None. Raises FeedError for a malformed id or unknown document type."""
        if self._closed:
            raise StoreError("the document store is closed")
        did = parse_document_id(doc_id)
        dt = self.types.get(did.doctype)
        if dt is None:
            raise FeedError(f"unknown document type '{did.doctype}' (document types: "
                            f"{', '.join(sorted(self.types)) or 'none'})", doc_id)
        fields = self._durable.get(dt, doc_id)
        return None if fields is None else Document(doc_id, dt.name, fields)

    def shard(self, doctype: str) -> Shard:
        s = self._shards.get(doctype)
        if s is None:
            raise KeyError(f"unknown document type '{doctype}' (document types: {', '.join(sorted(self._shards))})")
        return s

    def view(self, doctype: str) -> ShardView:
        """A consistent snapshot of a document type's shard, for ranking."""
        return self.shard(doctype).view()

    def count(self, doctype: str) -> int:
        """Documents stored of a type (read from the database)."""
        return self._durable.count(self.types[doctype])

    def integrity_check(self) -> str:
        """SQLite's integrity check of the database: 'ok' when sound."""
        return self._durable.integrity_check()


def _chunks(items: Iterable[Any], size: int) -> Iterator[list[Any]]:
    batch: list[Any] = []
    for item in items:
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def _kind(obj: Any) -> str | None:
    if isinstance(obj, Mapping):
        kinds = [k for k in ("put", "update", "remove") if k in obj]
        if len(kinds) == 1:
            return kinds[0]
    return None
