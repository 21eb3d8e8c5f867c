"""Fields that are neither numbers nor tensors (collections, structs, positions, raw,
references, synthetic fields): fed in Vespa's document JSON, checked against the declared
type with errors naming the document and field, stored without loss across a restart."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from cpu_fallback.backend import NumpyBackend
from server.application.package import Application
from server.store import DocumentStore

from .conftest import write_app

SD = """schema doc {
  document doc {
    field title type string { indexing: summary | index }
    field brand type string { indexing: summary | attribute }
    field tags type array<string> { indexing: summary | attribute }
    field prefs type weightedset<int> { indexing: summary | attribute }
    field props type map<string, float> { indexing: summary }
    struct purchase {
      field item type string {}
      field count type int {}
    }
    field buys type array<purchase> { indexing: summary }
    field where type position { indexing: attribute | summary }
    field rule type predicate { indexing: attribute }
    field blob type raw { indexing: summary }
    field parent type reference<doc> { indexing: attribute }
    field link type uri { indexing: summary }
  }
  field emb type tensor<float>(x[2]) { indexing: input title | embed e5 | attribute }
}
"""
DOC: dict[str, Any] = {
    "title": "red shoes", "brand": "acme", "tags": ["a", "b"], "prefs": {"7": 3, "-2": -1},
    "props": {"k": 1.5, "z": -2}, "buys": [{"item": "x", "count": 2}, {"item": "y"}],
    "where": {"lat": 63.4, "lng": 10.4}, "rule": "gender in [Female]", "blob": "aGVsbG8=",
    "parent": "id:n:doc::2", "link": "https://example.com/a", "emb": [0.5, -1.0],
}


@pytest.fixture
def app(tmp_path: Path) -> Application:
    return Application.load(write_app(tmp_path / "app", {"doc": SD}))


def test_every_kind_round_trips_across_a_restart(tmp_path: Path, app: Application) -> None:
    with DocumentStore.open(tmp_path / "data", app, NumpyBackend()) as store:
        [result] = store.feed([{"put": "id:n:doc::1", "fields": DOC}])
        assert result.ok, result.error
    with DocumentStore.open(tmp_path / "data", app, NumpyBackend()) as store:
        doc = store.get("id:n:doc::1")
        assert doc is not None
        fields = doc.to_json(store.types)["fields"]
    expected = dict(DOC, emb={"type": "tensor<float>(x[2])", "values": [0.5, -1.0]})
    assert fields == expected


@pytest.mark.parametrize(("field", "value", "message"), [
    ("tags", ["a", 3], "expected a string for string at [1], got the number 3"),
    ("tags", "a", "array<string> takes a JSON value (or its text), got the string 'a'"),
    ("prefs", {"x": 1}, "key 'x' of weightedset<int> must be a whole number"),
    ("prefs", {"1": 1.5}, "weight of '1' must be a whole number (int), got the number 1.5"),
    ("props", {"k": "big"}, "expected a finite number for float at {k}, got the string 'big'"),
    ("buys", [{"item": "x", "cnt": 2}], "struct purchase has no field 'cnt' at [0] (fields: item, count)"),
    ("buys", [{"item": "x", "count": 2**40}], "1099511627776 at [0].count does not fit int"),
    ("where", {"lat": 100, "lng": 0}, "position out of range (lat -90..90, lng -180..180)"),
    ("blob", "!!", "raw value is not valid base64"),
    ("parent", "doc-2", "expected a document id ('id:namespace:type::key') for reference<doc>, got the string "
                        "'doc-2'"),
    ("emb", [1.0], "tensor<float>(x[2]) has 2 cells"),
])
def test_values_are_checked_against_the_declared_type(tmp_path: Path, app: Application, field: str, value: Any,
                                                      message: str) -> None:
    with DocumentStore.open(tmp_path / "data", app, NumpyBackend()) as store:
        [result] = store.feed([{"put": "id:n:doc::9", "fields": {field: value}}])
        assert not result.ok
        assert result.error is not None
        assert result.error.startswith(f"id:n:doc::9: field '{field}': {message}"), result.error
        assert store.get("id:n:doc::9") is None


def test_only_numbers_and_tensors_are_resident(app: Application, tmp_path: Path) -> None:
    with DocumentStore.open(tmp_path / "data", app, NumpyBackend()) as store:
        resident = [f.name for f in store.types["doc"].attributes]
    assert resident == ["emb"]
