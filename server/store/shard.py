"""Resident shards: a document type's attribute fields as dense columns on the backend's device.

Per attribute field one column `[capacity, *shape]` of the field's cell type (unset values
are zeros), a host array of document ids, a host validity mask and a document-id -> row
map. Rows `[0, n)` are in use. An attribute with mapped dimensions is kept as each row's
value (a MappedTensor, None where unset) in a host array beside them, which snapshots pad
for ranking on first use (mapped_column.py).

Consistency, RCU style: ranking reads `shard.view()`, an immutable snapshot published by
one reference assignment, and takes no lock. The writer never changes a row that a
published snapshot can see:
  - a put or an update appends the document's new version at row n and beyond, then marks
    the old row dead in the writer's own mask;
  - a snapshot holds views `[:n]` of the columns and ids and its own copy of the mask, so
    rows appended later, and later tombstones, are invisible to it;
  - growth and compaction write into new columns and leave the old ones to the snapshots
    that still use them (freed when the last such snapshot goes).
So a query sees every document as of one moment, each whole, and never a half-written row.
On a GPU backend the column writes and the ranking kernels are ordered on the same stream.

Removals are tombstones. Live rows are compacted into fresh columns when the dead rows
reach a quarter of the used rows (and at least 1024), or when the columns are full; the
capacity doubles when more than three quarters would be in use afterwards. Each
compaction follows at least n/4 removals or replacements, or n/4 appends, so copying
costs O(1) per operation amortised.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from typing import Any, cast

import numpy as np
import numpy.typing as npt

from server.store.errors import StoreError
from server.store.mapped_column import MappedColumns
from server.store.values import FieldSpec
from server.store.view import ShardView
from tensor_ir.backend import Backend

MIN_DEAD_TO_COMPACT = 1024


class ShardMemoryError(StoreError):
    """The device cannot hold the shard a feed would need: out of device memory, nothing stored."""


def capacity_for(rows: int, initial: int) -> int:
    """The capacity for `rows` rows: `initial` doubled until they fill at most three quarters of it."""
    cap = max(1, initial)
    while rows > cap * 3 // 4:
        cap *= 2
    return cap


class Snapshot:
    """One published state of a shard. Never changes after it is published."""

    __slots__ = ("_index", "columns", "documents", "ids", "live", "mapped", "version")

    def __init__(self, version: int, ids: npt.NDArray[np.object_], columns: dict[str, Any],
                 live: npt.NDArray[np.bool_], documents: int, mapped: MappedColumns | None = None) -> None:
        self.version = version
        self.ids = ids
        self.columns = columns
        self.live = live
        self.documents = documents
        self.mapped = mapped
        self._index: dict[str, int] | None = None

    @property
    def rows(self) -> int:
        return len(self.ids)

    def view(self) -> ShardView:
        return ShardView(cast(Sequence[str], self.ids), self.columns, self.live, self.mapped)

    def row_of(self, doc_id: str) -> int | None:
        """The live row holding `doc_id` in this snapshot (the index is built on first use)."""
        if self._index is None:
            rows = np.flatnonzero(self.live)
            self._index = dict(zip(self.ids[rows].tolist(), rows.tolist()))
        return self._index.get(doc_id)


class Shard:
    # the writer's state: rows [0, _n) of the columns are in use, _dead of them tombstones
    _cap: int
    _n: int
    _dead: int
    _ids: npt.NDArray[np.object_]
    _live: npt.NDArray[np.bool_]
    _rows: dict[str, int]  # live document id -> row
    _cols: dict[str, Any]  # field -> column [_cap, *shape] on the backend's device
    _mapped: dict[str, npt.NDArray[np.object_]]  # mapped field -> [_cap] values (MappedTensor | None)
    _snapshot: Snapshot

    def __init__(self, doctype: str, fields: Sequence[FieldSpec], backend: Backend,
                 initial_capacity: int = 1024) -> None:
        self.doctype = doctype
        self.fields = [f for f in fields if f.attribute and not f.is_mapped]  # dense columns
        self.mapped_fields = [f for f in fields if f.attribute and f.is_mapped]
        self.backend = backend
        self._initial = max(1, initial_capacity)
        self._lock = threading.Lock()  # one writer at a time; readers never take it
        self._version = 0
        self._reset(self._initial)
        self._publish()

    # ------------------------------------------------------------------ reading

    def view(self) -> ShardView:
        """What ranking reads: a consistent snapshot of the shard."""
        return self._snapshot.view()

    def snapshot(self) -> Snapshot:
        return self._snapshot

    @property
    def documents(self) -> int:
        return self._snapshot.documents

    @property
    def capacity(self) -> int:
        return self._cap

    @property
    def dead(self) -> int:
        return self._dead

    # ------------------------------------------------------------------ writing

    def load(self, ids: Sequence[str], host_columns: Mapping[str, npt.NDArray[Any]],
             mapped: Mapping[str, Sequence[Any]] | None = None) -> None:
        """Replace the contents with `ids` and their rows of `host_columns` (leading axis: the
        capacity) and, per mapped attribute, of `mapped` (one value or None per id)."""
        n = len(ids)
        cap = max([self._initial, n, *(len(host_columns[f.name]) for f in self.fields)])
        for f in self.fields:
            host = host_columns[f.name]
            if len(host) != cap or host.shape[1:] != f.shape or host.dtype != f.dtype:
                raise ValueError(f"column {f.name}: expected [{cap}, *{list(f.shape)}] {f.dtype}, got "
                                 f"{list(host.shape)} {host.dtype}")
        rows = dict(zip(ids, range(n)))
        if len(rows) != n:
            raise ValueError("document ids repeat")
        for f in self.mapped_fields:
            if len((mapped or {}).get(f.name, ())) != n:
                raise ValueError(f"mapped field {f.name}: expected {n} values")
        columns = {f.name: self.backend.asarray(host_columns[f.name]) for f in self.fields}
        with self._lock:
            self._reset(cap, allocate=False)
            self._cols = columns
            for f in self.mapped_fields:
                self._mapped[f.name][:n] = _objects((mapped or {})[f.name])
            self._ids[:n] = np.array(ids, dtype=object)
            self._live[:n] = True
            self._rows = rows
            self._n = n
            self._publish()

    def apply(self, ids: Sequence[str], blocks: Mapping[str, npt.NDArray[Any]], removes: Sequence[str] = (),
              mapped: Mapping[str, Sequence[Any]] | None = None) -> None:
        """Remove `removes`, then put new versions of the documents `ids`, and publish.

        `blocks` holds for each dense attribute field the documents' values, `[len(ids), *shape]`
        host arrays in the order of `ids`, which must not repeat; `mapped` for each mapped
        attribute their values (MappedTensor, or None where unset) in that order.
        """
        with self._lock:
            for doc_id in removes:
                r = self._rows.pop(doc_id, None)
                if r is not None:
                    self._live[r] = False
                    self._dead += 1
            if ids:
                self._append(ids, blocks, mapped or {})
            if self._dead >= max(MIN_DEAD_TO_COMPACT, self._n // 4):
                self._reallocate(self._n - self._dead)
            self._publish()

    def check_room(self, new_rows: int) -> None:
        """Refuse, before anything is stored, a growth the backend's device cannot hold."""
        if self._n + new_rows <= self._cap:
            return
        available = self.backend.memory_available()
        if available is None:
            return
        cap = capacity_for(self._n - self._dead + new_rows, max(self._initial, self._cap))
        need = cap * sum(int(np.prod(f.shape, dtype=np.int64)) * np.dtype(f.dtype).itemsize for f in self.fields)
        if need > available:
            raise ShardMemoryError(
                f"document type '{self.doctype}': growing the resident shard to {cap:,} rows needs "
                f"{need / 2**20:,.0f} MiB of device memory but {available / 2**20:,.0f} MiB are free"
            )

    def compact(self) -> None:
        with self._lock:
            if self._dead:
                self._reallocate(self._n - self._dead)
                self._publish()

    def _append(self, ids: Sequence[str], blocks: Mapping[str, npt.NDArray[Any]],
                mapped: Mapping[str, Sequence[Any]]) -> None:
        k = len(ids)
        if len(set(ids)) != k:
            raise ValueError("document ids repeat within one apply")
        for f in self.fields:
            b = blocks[f.name]
            if b.shape != (k, *f.shape):
                raise ValueError(f"block of {f.name}: expected shape {[k, *f.shape]}, got {list(b.shape)}")
        for f in self.mapped_fields:
            if len(mapped.get(f.name, ())) != k:
                raise ValueError(f"values of mapped field {f.name}: expected {k}")
        if self._n + k > self._cap:
            self._reallocate(self._n - self._dead + k)
        n = self._n
        rows, live = self._rows, self._live
        for j, doc_id in enumerate(ids, n):
            old = rows.get(doc_id)
            if old is not None:
                live[old] = False
                self._dead += 1
            rows[doc_id] = j
        self._ids[n:n + k] = np.array(ids, dtype=object)
        for f in self.fields:
            self._cols[f.name][n:n + k] = self.backend.asarray(blocks[f.name])
        for f in self.mapped_fields:
            self._mapped[f.name][n:n + k] = _objects(mapped[f.name])
        live[n:n + k] = True
        self._n = n + k

    def _reallocate(self, needed: int) -> None:
        cap = capacity_for(needed, max(self._initial, self._cap))
        n = self._n
        keep = np.flatnonzero(self._live[:n])
        m = len(keep)
        old_cols, old_ids, old_mapped = self._cols, self._ids, self._mapped
        self._reset(cap)
        if m:
            idx = self.backend.asarray(keep) if m != n else None
            for f in self.fields:
                old = old_cols[f.name]
                self._cols[f.name][:m] = old[:n] if idx is None else old[idx]
            for f in self.mapped_fields:
                self._mapped[f.name][:m] = old_mapped[f.name][keep]
            self._ids[:m] = old_ids[keep]
            self._live[:m] = True
            self._rows = dict(zip(self._ids[:m].tolist(), range(m)))
        self._n = m

    def _reset(self, cap: int, allocate: bool = True) -> None:
        self._cap = cap
        self._n = 0
        self._dead = 0
        self._ids = np.empty(cap, dtype=object)
        self._live = np.zeros(cap, dtype=np.bool_)
        self._rows = {}
        self._cols = {}
        self._mapped = {f.name: np.full(cap, None, dtype=object) for f in self.mapped_fields}
        if allocate:
            for f in self.fields:
                self._cols[f.name] = self.backend.asarray(np.zeros((cap, *f.shape), dtype=f.dtype))

    def _publish(self) -> None:
        n = self._n
        self._version += 1
        live = self._live[:n].copy()
        mapped = MappedColumns({name: vals[:n] for name, vals in self._mapped.items()},
                               {f.name: f.type for f in self.mapped_fields if f.type is not None}, live,
                               self.backend) if self.mapped_fields else None
        self._snapshot = Snapshot(self._version, self._ids[:n], {name: col[:n] for name, col in self._cols.items()},
                                  live, n - self._dead, mapped)


def _objects(values: Sequence[Any]) -> npt.NDArray[np.object_]:
    """Values as a 1-d object array (np.array would try to make MappedTensors into numbers)."""
    out = np.empty(len(values), dtype=object)
    for i, v in enumerate(values):
        out[i] = v
    return out
