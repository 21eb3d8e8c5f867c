"""The durable store: one embedded SQLite database under the data directory.

WAL journal with synchronous=FULL: COMMIT returns only after the write-ahead log is on
disk, so an acknowledged operation survives a process kill and a power loss. One table
per document type, one row per document, one column per field: the raw little-endian
cells as a BLOB (TEXT for strings, NULL for unset). A `fields` table remembers each
field's type so a schema that changes a stored field's type is refused at open instead
of misreading bytes.
"""

from __future__ import annotations

import re
import sqlite3
import threading
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from server.store.errors import StoreError
from server.store.values import DocType, FieldSpec, FieldValueError, Value

FORMAT = "1"
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _table(doctype: str) -> str:
    return _quote(f"docs_{doctype}")


def _column(field: str) -> str:
    return _quote(f"f_{field}")


class Durable:
    def __init__(self, path: Path, types: Mapping[str, DocType]) -> None:
        self.path = path
        self.types = dict(types)
        for name in self.types:
            if not _IDENT.match(name):
                raise StoreError(f"document type name '{name}' cannot name a table (letters, digits and '_' only)")
        self._conn = self._connect()
        self._read_lock = threading.Lock()
        try:
            self._init_schema()
            self._reader = self._connect()
        except BaseException:
            self._conn.close()
            raise
        self._sql: dict[str, tuple[str, str, str]] = {}
        for dt in self.types.values():
            cols = ", ".join(_column(f) for f in dt.fields)
            marks = ", ".join("?" for _ in range(len(dt.fields) + 1))
            table = _table(dt.name)
            self._sql[dt.name] = (
                f"INSERT OR REPLACE INTO {table} (id{', ' if cols else ''}{cols}) VALUES ({marks})",
                f"DELETE FROM {table} WHERE id = ?",
                f"SELECT {cols or 'NULL'} FROM {table} WHERE id = ?",
            )

    def _connect(self) -> sqlite3.Connection:
        try:
            conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            conn.execute("PRAGMA page_size=16384")  # takes effect only while the database is empty
            mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                conn.close()
                raise StoreError(f"{self.path}: SQLite could not switch to WAL mode (got '{mode}')")
            conn.execute("PRAGMA synchronous=FULL")
            conn.execute("PRAGMA busy_timeout=10000")
            conn.execute("PRAGMA cache_size=-65536")
            # checkpoints copy the log into the database; fewer, larger ones cost less per document
            conn.execute("PRAGMA wal_autocheckpoint=4096")
            return conn
        except sqlite3.Error as e:
            raise StoreError(f"{self.path}: cannot open the document database: {e}") from None

    def _init_schema(self) -> None:
        c = self._conn
        try:
            c.execute("BEGIN IMMEDIATE")
            c.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
            c.execute("CREATE TABLE IF NOT EXISTS fields (doctype TEXT NOT NULL, field TEXT NOT NULL, "
                      "type TEXT NOT NULL, PRIMARY KEY (doctype, field))")
            row = c.execute("SELECT value FROM meta WHERE key = 'format'").fetchone()
            if row is None:
                c.execute("INSERT INTO meta VALUES ('format', ?)", (FORMAT,))
            elif row[0] != FORMAT:
                raise StoreError(f"{self.path}: stored in format {row[0]}, this version reads format {FORMAT}")
            for dt in self.types.values():
                c.execute(f"CREATE TABLE IF NOT EXISTS {_table(dt.name)} (id TEXT NOT NULL UNIQUE)")
                stored = dict(c.execute("SELECT field, type FROM fields WHERE doctype = ?", (dt.name,)).fetchall())
                for spec in dt.fields.values():
                    old = stored.get(spec.name)
                    if old is None:
                        sql_type = "TEXT" if spec.is_string else "BLOB"
                        c.execute(f"ALTER TABLE {_table(dt.name)} ADD COLUMN {_column(spec.name)} {sql_type}")
                        c.execute("INSERT INTO fields VALUES (?, ?, ?)", (dt.name, spec.name, spec.type_text))
                    elif old != spec.type_text:
                        raise StoreError(
                            f"field '{spec.name}' of document type '{dt.name}' is stored as {old} but the schema "
                            f"now declares {spec.type_text}; changing a stored field's type needs an empty data "
                            f"directory (or a new field name) and a re-feed")
            c.execute("COMMIT")
        except BaseException as e:
            if c.in_transaction:
                c.execute("ROLLBACK")
            if isinstance(e, sqlite3.Error):
                raise StoreError(f"{self.path}: cannot prepare the document database: {e}") from None
            raise

    # ------------------------------------------------------------------ writing (one writer at a time)

    def begin(self) -> None:
        self._conn.execute("BEGIN IMMEDIATE")

    def commit(self) -> None:
        self._conn.execute("COMMIT")

    def rollback(self) -> None:
        if self._conn.in_transaction:
            self._conn.execute("ROLLBACK")

    def load(self, dt: DocType, doc_id: str) -> dict[str, Value] | None:
        """A document as stored (inside the writer's transaction)."""
        row = self._conn.execute(self._sql[dt.name][2], (doc_id,)).fetchone()
        return None if row is None else _decode(dt, row)

    def write(self, dt: DocType, rows: Sequence[tuple[Any, ...]], removes: Sequence[str]) -> None:
        """Store documents as rows (id, *stored values in field order) and delete `removes`."""
        insert, delete, _ = self._sql[dt.name]
        if removes:
            self._conn.executemany(delete, [(i,) for i in removes])
        if rows:
            self._conn.executemany(insert, rows)

    # ------------------------------------------------------------------ reading

    def get(self, dt: DocType, doc_id: str) -> dict[str, Value] | None:
        with self._read_lock:
            row = self._reader.execute(self._sql[dt.name][2], (doc_id,)).fetchone()
        return None if row is None else _decode(dt, row)

    def count(self, dt: DocType) -> int:
        with self._read_lock:
            return int(self._reader.execute(f"SELECT count(*) FROM {_table(dt.name)}").fetchone()[0])

    def scan(self, dt: DocType, specs: Sequence[FieldSpec], chunk: int = 65536) -> Iterator[list[tuple[Any, ...]]]:
        """All documents as rows (id, *stored values of `specs`), in chunks, from one read transaction."""
        cols = "".join(", " + _column(s.name) for s in specs)
        with self._read_lock:
            cur = self._reader.execute("BEGIN")
            try:
                cur = self._reader.execute(f"SELECT id{cols} FROM {_table(dt.name)} ORDER BY rowid")
                while rows := cur.fetchmany(chunk):
                    yield rows
            finally:
                self._reader.execute("COMMIT")

    def integrity_check(self) -> str:
        with self._read_lock:
            rows = self._reader.execute("PRAGMA integrity_check").fetchall()
        return "\n".join(str(r[0]) for r in rows)

    def close(self) -> None:
        with self._read_lock:
            self._reader.close()
        self._conn.close()


def _decode(dt: DocType, row: Sequence[Any]) -> dict[str, Value]:
    out: dict[str, Value] = {}
    for spec, stored in zip(dt.fields.values(), row):
        if stored is None:
            continue
        try:
            value = spec.decode(stored)
        except FieldValueError as e:
            raise StoreError(f"document type '{dt.name}': {e}") from None
        if value is not None:
            out[spec.name] = value
    return out
