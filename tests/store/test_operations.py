"""Put, update, remove and get with Vespa's semantics; the JSON forms of values; the feed formats."""

from __future__ import annotations

import io
import json
from typing import Any

import ml_dtypes
import numpy as np
import pytest

from cpu_fallback.backend import NumpyBackend
from server.ranking import Ranker
from server.store import DocumentStore, read_feed

ID = "id:ns:news::1"


def _ok(store: DocumentStore, *ops: Any) -> None:
    results = store.feed_batch(list(ops))
    assert all(r.ok for r in results), [r.error for r in results if not r.ok]


def _fields(store: DocumentStore, doc_id: str = ID) -> dict[str, Any]:
    doc = store.get(doc_id)
    assert doc is not None
    return doc.fields


def _row(store: DocumentStore, doc_id: str = ID) -> dict[str, Any]:
    snap = store.shard("news").snapshot()
    row = snap.row_of(doc_id)
    assert row is not None
    return {k: np.asarray(v[row]) for k, v in snap.columns.items()}


def test_put_every_field_type_and_form(store: DocumentStore) -> None:
    _ok(store, {"put": ID, "fields": {
        "embedding": {"values": [1.5, -2, 3, 4]},
        "matrix": {"values": "0102037F80FF"},  # int8 hex: 1, 2, 3, 127, -128, -1
        "half": {"values": "3F80C000"},  # bfloat16 hex: 1.0, -2.0
        "wide": {"cells": [{"address": {"x": "1"}, "value": 0.1}]},
        "popularity": 0.25, "score": 1e300, "count": -7, "views": 2**62 + 1, "tiny": -128, "flag": True,
        "title": "Hello",
    }})
    f = _fields(store)
    np.testing.assert_array_equal(f["embedding"], np.array([1.5, -2, 3, 4], np.float32))
    np.testing.assert_array_equal(f["matrix"], np.array([[1, 2, 3], [127, -128, -1]], np.int8))
    assert f["half"].dtype == ml_dtypes.bfloat16
    np.testing.assert_array_equal(f["half"].astype(np.float32), [1.0, -2.0])
    np.testing.assert_array_equal(f["wide"], [0.0, 0.1])
    assert f["popularity"].dtype == np.float32 and float(f["popularity"]) == 0.25
    assert float(f["score"]) == 1e300
    assert int(f["count"]) == -7 and int(f["views"]) == 2**62 + 1 and int(f["tiny"]) == -128
    assert bool(f["flag"]) is True and f["title"] == "Hello"
    # the shard holds the attribute fields only, in their cell types
    row = _row(store)
    assert set(row) == {"embedding", "matrix", "half", "popularity", "score", "count", "views", "tiny", "flag"}
    np.testing.assert_array_equal(row["matrix"], f["matrix"])
    assert int(row["views"]) == 2**62 + 1


def test_plain_and_nested_arrays_raw_bytes_and_numpy(store: DocumentStore) -> None:
    _ok(store, {"put": ID, "fields": {
        "embedding": [1, 2, 3, 4], "matrix": [[1, 2, 3], [4, 5, 6]], "wide": np.array([0.5, 0.25]),
        "half": np.array([1, 2], ml_dtypes.bfloat16).tobytes(), "score": np.float64(2.5).tobytes(),
    }})
    f = _fields(store)
    np.testing.assert_array_equal(f["embedding"], [1, 2, 3, 4])
    np.testing.assert_array_equal(f["matrix"], [[1, 2, 3], [4, 5, 6]])
    np.testing.assert_array_equal(f["wide"], [0.5, 0.25])
    np.testing.assert_array_equal(f["half"].astype(np.float32), [1, 2])
    assert float(f["score"]) == 2.5


def test_put_replaces_the_whole_document(store: DocumentStore) -> None:
    _ok(store, {"put": ID, "fields": {"embedding": [1, 2, 3, 4], "title": "a"}})
    _ok(store, {"put": ID, "fields": {"score": 2.0}})
    assert set(_fields(store)) == {"score"}
    np.testing.assert_array_equal(_row(store)["embedding"], [0, 0, 0, 0])  # unset attribute: zeros
    assert store.shard("news").documents == 1


def test_assign_and_clear(store: DocumentStore) -> None:
    _ok(store, {"put": ID, "fields": {"embedding": [1, 2, 3, 4], "title": "a"}})
    _ok(store, {"update": ID, "fields": {"embedding": {"assign": {"values": [4, 3, 2, 1]}}, "title": {"assign": None},
                                         "popularity": {"assign": 0.5}}})
    f = _fields(store)
    np.testing.assert_array_equal(f["embedding"], [4, 3, 2, 1])
    assert "title" not in f and float(f["popularity"]) == 0.5
    np.testing.assert_array_equal(_row(store)["embedding"], [4, 3, 2, 1])


@pytest.mark.parametrize("field, start, ops, expected", [
    ("count", 7, [("increment", 3)], 10),
    ("count", 7, [("decrement", 10)], -3),
    ("count", 7, [("multiply", 3)], 21),
    ("count", 7, [("divide", 2)], 3),  # truncates toward zero, as Vespa's integer fields do
    ("count", -7, [("divide", 2)], -3),
    ("count", 7, [("multiply", 0.5)], 3),
    ("views", 2**62, [("increment", 1)], 2**62 + 1),  # exact, not through a double
    ("score", 1.5, [("multiply", 2), ("increment", 0.25)], 3.25),  # several operations apply in order
    ("score", 1.0, [("divide", 4)], 0.25),
    ("popularity", 1.0, [("decrement", 0.5)], 0.5),
    ("tiny", None, [("increment", 5)], 5),  # an unset field counts as 0
])
def test_arithmetic(store: DocumentStore, field: str, start: Any, ops: list[tuple[str, Any]], expected: Any) -> None:
    _ok(store, {"put": ID, "fields": {} if start is None else {field: start}})
    _ok(store, {"update": ID, "fields": {field: dict(ops)}})
    value = _fields(store)[field]
    assert value.item() == expected
    assert _row(store)[field].item() == expected


def test_tensor_modify(store: DocumentStore) -> None:
    _ok(store, {"put": ID, "fields": {"embedding": [1, 2, 3, 4], "matrix": [[1, 2, 3], [4, 5, 6]]}})

    def modify(field: str, operation: str, cells: Any, **extra: Any) -> None:
        _ok(store, {"update": ID, "fields": {field: {"modify": {"operation": operation, "cells": cells, **extra}}}})

    modify("embedding", "replace", [{"address": {"x": "1"}, "value": 7}, {"address": {"x": 2}, "value": 8}])
    np.testing.assert_array_equal(_fields(store)["embedding"], [1, 7, 8, 4])
    modify("embedding", "add", {"0": 10, "3": -4})  # the short form of a one-dimensional tensor
    np.testing.assert_array_equal(_fields(store)["embedding"], [11, 7, 8, 0])
    modify("matrix", "multiply", [{"address": {"x": "1", "y": "2"}, "value": 3}])
    np.testing.assert_array_equal(_fields(store)["matrix"], [[1, 2, 3], [4, 5, 18]])
    np.testing.assert_array_equal(_row(store)["embedding"], [11, 7, 8, 0])
    # an unset tensor has no cells to modify: ignored, unless create asks for default cells first
    modify("wide", "add", [{"address": {"x": "0"}, "value": 2}])
    assert "wide" not in _fields(store)
    modify("wide", "multiply", [{"address": {"x": "0"}, "value": 2}], create=True)
    np.testing.assert_array_equal(_fields(store)["wide"], [2, 1])  # multiply starts from cells of 1


def test_update_create_makes_a_missing_document(store: DocumentStore) -> None:
    _ok(store, {"update": ID, "create": True, "fields": {"count": {"increment": 1}, "title": {"assign": "new"}}})
    f = _fields(store)
    assert int(f["count"]) == 1 and f["title"] == "new"
    assert store.shard("news").documents == 1


def test_remove(store: DocumentStore) -> None:
    _ok(store, {"put": ID, "fields": {"score": 1.0}}, {"put": "id:ns:news::2", "fields": {"score": 2.0}})
    _ok(store, {"remove": ID}, {"remove": "id:ns:news::never-fed"})  # removing a missing document is fine
    assert store.get(ID) is None and store.get("id:ns:news::2") is not None
    snap = store.shard("news").snapshot()
    assert [str(i) for i, ok in zip(snap.ids, snap.live) if ok] == ["id:ns:news::2"]


def test_operations_on_one_document_apply_in_order_within_a_batch(store: DocumentStore) -> None:
    results = store.feed_batch([
        {"put": ID, "fields": {"count": 1}},
        {"update": ID, "fields": {"count": {"increment": 1}}},
        {"remove": ID},
        {"update": ID, "fields": {"count": {"increment": 1}}},  # the document is gone again
        {"update": ID, "create": True, "fields": {"count": {"increment": 5}}},
        {"update": ID, "fields": {"count": {"multiply": 2}}},
    ])
    assert [r.ok for r in results] == [True, True, True, False, True, True]
    assert int(_fields(store)["count"]) == 10
    assert int(_row(store)["count"]) == 10


def test_document_types_are_separate(store: DocumentStore) -> None:
    _ok(store, {"put": "id:ns:other::1", "fields": {"v": [1, 2]}}, {"put": "id:ns:news::1", "fields": {"score": 3.0}})
    assert store.view("other").size == 1 and store.view("news").size == 1
    np.testing.assert_array_equal(store.view("other").columns["v"][0], [1, 2])
    assert store.count("other") == 1


def test_results_carry_request_ids_and_positions(store: DocumentStore) -> None:
    results = store.feed_batch([{"put": ID, "fields": {}}, {"remove": ID}], request_ids=["a", "b"], start=10)
    assert [(r.index, r.request_id, r.operation, r.doc_id, r.ok) for r in results] == [
        (10, "a", "put", ID, True), (11, "b", "remove", ID, True)]


def test_to_json_renders_vespa_form(store: DocumentStore) -> None:
    _ok(store, {"put": ID, "fields": {"embedding": [1, 2, 3, 4], "count": 3, "title": "t", "flag": False}})
    doc = store.get(ID)
    assert doc is not None
    assert doc.to_json(store.types) == {"id": ID, "fields": {
        "embedding": {"type": "tensor<float>(x[4])", "values": [1.0, 2.0, 3.0, 4.0]},
        "count": 3, "title": "t", "flag": False}}


def test_ranking_reads_the_shard(store: DocumentStore, app: Any) -> None:
    _ok(store,
        {"put": "id:ns:news::a", "fields": {"embedding": [1, 0, 0, 0], "popularity": 0.5}},
        {"put": "id:ns:news::b", "fields": {"embedding": [0, 2, 0, 0]}},
        {"put": "id:ns:news::c", "fields": {"embedding": [0, 0, 3, 0]}},
        {"remove": "id:ns:news::c"},
        {"update": "id:ns:news::a", "fields": {"popularity": {"increment": 1}}})
    ranker = Ranker(app.profile("news", "dot"), NumpyBackend())
    res = ranker.rank(store.view("news"), {"q": [1, 1, 1, 1]})
    assert [(h.id, h.score) for h in res.hits] == [("id:ns:news::a", 2.5), ("id:ns:news::b", 2.0)]


# ---------------------------------------------------------------------------- the feed formats

OPS = [{"put": "id:ns:news::1", "fields": {"score": 1.0}}, {"remove": "id:ns:news::2"}]


def test_read_jsonl() -> None:
    text = "\n" + "\n".join(json.dumps(o) for o in OPS) + "\n\n"
    assert list(read_feed(text)) == OPS
    assert list(read_feed(text.encode())) == OPS
    assert list(read_feed(io.StringIO(text))) == OPS
    assert list(read_feed(io.BytesIO(text.encode()))) == OPS


def test_read_json_array() -> None:
    text = json.dumps(OPS, indent=2)
    assert list(read_feed(text)) == OPS
    assert list(read_feed(io.StringIO(text))) == OPS
    assert list(read_feed("[]")) == []


def test_read_json_array_with_errors() -> None:
    out = list(read_feed('[{"remove": "id:ns:news::1"},\n {"remove": }, {"remove": "id:ns:news::3"}]'))
    assert out[0] == {"remove": "id:ns:news::1"}
    assert str(out[1]) == ("line 2: operation 2 of the JSON array is not valid JSON: Expecting value; the rest of "
                           "the array cannot be read")
    assert len(out) == 2
    out = list(read_feed('[{"remove": "id:ns:news::1"}] x'))
    assert str(out[1]) == "line 1: unexpected text after the end of the JSON array"
    out = list(read_feed('[{"remove": "id:ns:news::1"} {"remove": "id:ns:news::1"}]'))
    assert str(out[1]).startswith("line 1: expected ',' or ']' after operation 1 of the JSON array")


def test_read_jsonl_with_bad_bytes() -> None:
    out = list(read_feed(b'{"remove": "id:ns:news::1"}\n\xff\n{"remove": "id:ns:news::2"}\n'))
    assert out[0] == {"remove": "id:ns:news::1"} and out[2] == {"remove": "id:ns:news::2"}
    assert str(out[1]).startswith("line 2: not UTF-8 text")


def test_feed_streams_in_batches(store: DocumentStore) -> None:
    ops = ({"put": f"id:ns:news::{i}", "fields": {"count": i}} for i in range(25))
    results = list(store.feed(ops, batch_size=4))
    assert [r.index for r in results] == list(range(25)) and all(r.ok for r in results)
    assert store.count("news") == 25 and store.view("news").size == 25


def test_hex_form_of_float_cells(store: DocumentStore) -> None:
    # big-endian IEEE-754 bits per cell, as Vespa writes them: 1.0, -2.0, 0.25, 0.0
    _ok(store, {"put": ID, "fields": {"embedding": {"values": "3F800000C00000003e80000000000000"}}})
    np.testing.assert_array_equal(_fields(store)["embedding"], [1.0, -2.0, 0.25, 0.0])
    bad = store.feed_batch([{"put": ID, "fields": {"embedding": {"values": "3F800000C00000003e8000000000000g"}}}])
    assert bad[0].error == f"{ID}: field 'embedding': 'values' is not a valid hex string"


def test_updates_of_raw_cells_fed_in_the_same_batch(store: DocumentStore) -> None:
    _ok(store,
        {"put": ID, "fields": {"embedding": np.array([1, 2, 3, 4], np.float32).tobytes(),
                               "count": np.int32(5).tobytes()}},
        {"update": ID, "fields": {"embedding": {"modify": {"operation": "multiply", "cells": {"3": 2}}},
                                  "count": {"increment": 1}}})
    np.testing.assert_array_equal(_fields(store)["embedding"], [1, 2, 3, 8])
    assert int(_fields(store)["count"]) == 6
    np.testing.assert_array_equal(_row(store)["embedding"], [1, 2, 3, 8])


def test_a_failed_commit_stores_nothing_and_says_so(store: DocumentStore, monkeypatch: pytest.MonkeyPatch) -> None:
    import sqlite3

    _ok(store, {"put": ID, "fields": {"count": 1}})

    def broken(*args: Any) -> None:
        raise sqlite3.OperationalError("disk I/O error")

    monkeypatch.setattr(store._durable, "write", broken)
    results = store.feed_batch([{"put": "id:ns:news::2", "fields": {"count": 2}}, {"remove": ID},
                                {"put": "id:ns:news::3", "fields": {"count": "x"}}])
    assert [r.ok for r in results] == [False, False, False]
    assert results[0].error == "id:ns:news::2: not stored, the database write failed: disk I/O error"
    assert results[2].error is not None and "expected a number" in results[2].error
    monkeypatch.undo()
    assert store.get("id:ns:news::2") is None and store.get(ID) is not None
    assert store.shard("news").documents == 1
    _ok(store, {"put": "id:ns:news::2", "fields": {"count": 2}})  # and the store goes on
    assert store.count("news") == 2


def test_closed_store_refuses_work(store: DocumentStore) -> None:
    from server.store import StoreError

    store.close()
    with pytest.raises(StoreError, match="closed"):
        store.feed_batch([{"remove": ID}])
    with pytest.raises(StoreError, match="closed"):
        store.get(ID)
