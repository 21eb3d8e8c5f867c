"""Restart: the shards are rebuilt from the database, and the store says how long that took."""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path

import numpy as np
import pytest

from cpu_fallback.backend import NumpyBackend
from server.application.package import Application
from server.store import DocumentStore, StoreError
from server.store.store import DATABASE

from .conftest import NEWS_SD, write_app


def _snapshot_contents(store: DocumentStore, doctype: str) -> dict[str, dict[str, list[float]]]:
    snap = store.shard(doctype).snapshot()
    return {str(snap.ids[r]): {k: np.asarray(v[r]).tolist() for k, v in snap.columns.items()}
            for r in np.flatnonzero(snap.live)}


def test_restart_rebuilds_the_shards(tmp_path: Path, app: Application, caplog: pytest.LogCaptureFixture) -> None:
    data = tmp_path / "data"
    rng = np.random.default_rng(7)
    with DocumentStore.open(data, app, NumpyBackend(), initial_capacity=8) as store:
        ops = [{"put": f"id:ns:news::{i}", "fields": {"embedding": rng.standard_normal(4).tolist(), "count": i,
                                                       "title": f"t{i}"}} for i in range(300)]
        ops += [{"remove": f"id:ns:news::{i}"} for i in range(0, 300, 3)]
        ops += [{"update": f"id:ns:news::{i}", "fields": {"count": {"increment": 1000}}} for i in range(1, 300, 3)]
        ops += [{"put": "id:ns:other::x", "fields": {"v": [1, 2]}}]
        assert all(r.ok for r in store.feed(ops, batch_size=64))
        before = {t: _snapshot_contents(store, t) for t in ("news", "other")}
    caplog.set_level(logging.INFO, logger="server.store")
    with DocumentStore.open(data, app, NumpyBackend(), initial_capacity=8) as store:
        assert {t: _snapshot_contents(store, t) for t in ("news", "other")} == before
        assert store.restart.documents == {"news": 200, "other": 1} and store.restart.total == 201
        assert store.restart.seconds >= 0
        assert store.shard("news").capacity == 512 and store.shard("news").dead == 0
        assert store.integrity_check() == "ok"
        doc = store.get("id:ns:news::4")
        assert doc is not None and int(doc.fields["count"]) == 1004 and doc.fields["title"] == "t4"
    assert any("rebuilt the shards from 201 stored documents (news: 200, other: 1) in" in r.getMessage()
               for r in caplog.records)


def test_database_is_wal_with_full_sync(tmp_path: Path, app: Application) -> None:
    with DocumentStore.open(tmp_path / "data", app, NumpyBackend()) as store:
        conn = store._durable._conn
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL


def test_a_data_directory_serves_one_store(tmp_path: Path, app: Application) -> None:
    with DocumentStore.open(tmp_path / "data", app, NumpyBackend()):
        with pytest.raises(StoreError, match="is in use by another tensorrank process"):
            DocumentStore.open(tmp_path / "data", app, NumpyBackend())
    DocumentStore.open(tmp_path / "data", app, NumpyBackend()).close()  # free again after close


def test_a_changed_field_type_is_refused(tmp_path: Path, app: Application) -> None:
    with DocumentStore.open(tmp_path / "data", app, NumpyBackend()) as store:
        assert store.feed_batch([{"put": "id:ns:news::1", "fields": {"embedding": [1, 2, 3, 4]}}])[0].ok
    changed = Application.load(write_app(tmp_path / "app2", {"news": NEWS_SD.replace("x[4]", "x[8]")}))
    with pytest.raises(StoreError, match=r"field 'embedding' of document type 'news' is stored as tensor<float>"
                                         r"\(x\[4\]\) but the schema now declares tensor<float>\(x\[8\]\)"):
        DocumentStore.open(tmp_path / "data", changed, NumpyBackend())


def test_a_new_field_starts_unset(tmp_path: Path, app: Application) -> None:
    with DocumentStore.open(tmp_path / "data", app, NumpyBackend()) as store:
        assert store.feed_batch([{"put": "id:ns:news::1", "fields": {"count": 3}}])[0].ok
    added = Application.load(write_app(tmp_path / "app2", {"news": NEWS_SD.replace(
        "field title type string", "field extra type tensor<float>(x[2]) { indexing: attribute }\n"
                                   "    field title type string")}))
    with DocumentStore.open(tmp_path / "data", added, NumpyBackend()) as store:
        doc = store.get("id:ns:news::1")
        assert doc is not None and set(doc.fields) == {"count"}
        assert store.view("news").columns["extra"].tolist() == [[0.0, 0.0]]


def test_stored_bytes_of_the_wrong_size_are_refused(tmp_path: Path, app: Application) -> None:
    with DocumentStore.open(tmp_path / "data", app, NumpyBackend()) as store:
        assert store.feed_batch([{"put": "id:ns:news::1", "fields": {"embedding": [1, 2, 3, 4]}}])[0].ok
    conn = sqlite3.connect(tmp_path / "data" / DATABASE)
    conn.execute('UPDATE "docs_news" SET "f_embedding" = x\'00\'')
    conn.commit()
    conn.close()
    with pytest.raises(StoreError, match="a stored value of field 'embedding' is not 16 bytes of tensor<float>"):
        DocumentStore.open(tmp_path / "data", app, NumpyBackend())
