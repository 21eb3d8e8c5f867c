"""Tensor fields with mapped dimensions (issue #13): Vespa's JSON forms parsed to the cells
worked out by hand, fed and returned by Get exactly, kept across a restart, padded per
shard for ranking, refused with the document id, field and reason, and updated in part."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from cpu_fallback.backend import NumpyBackend
from server.application.package import Application
from server.store import DocumentStore
from tensor_ir.expr.mapped_json import mapped_from_json, mapped_to_json
from tensor_ir.expr.tensor_json import TensorValueError
from tensor_ir.expr.types import parse_type
from tensor_ir.mapped import LABELS, MappedTensor

from .conftest import write_app

SD = """schema m {
  document m {
    field cats type tensor<float>(cat{}) { indexing: attribute | summary }
    field toks type tensor<bfloat16>(dt{}, x[2]) { indexing: attribute | summary }
    field pair type tensor<int8>(a{}, b{}) { indexing: summary }
    field wide type tensor<double>(k{}, v{}, x[2]) { indexing: attribute }
    field dense type tensor<float>(x[2]) { indexing: attribute }
  }
}
"""
ID = "id:n:m::1"


def typ(text: str) -> Any:
    return parse_type(text, allow_mapped=True)


def cells_of(v: MappedTensor) -> dict[tuple[str, ...], list[float] | float]:
    return {a: c.astype(np.float64).tolist() for a, c in v.as_dict().items()}


@pytest.fixture
def app(tmp_path: Path) -> Application:
    return Application.load(write_app(tmp_path / "app", {"m": SD}))


@pytest.fixture
def store(tmp_path: Path, app: Application) -> Iterator[DocumentStore]:
    with DocumentStore.open(tmp_path / "data", app, NumpyBackend()) as s:
        yield s


# ---------------------------------------------------------------------- JSON forms

SPARSE = "tensor<float>(cat{})"
MIXED = "tensor<float>(dt{},x[2])"
FORMS: list[tuple[str, Any, dict[tuple[str, ...], Any]]] = [
    (SPARSE, {"cells": [{"address": {"cat": "a"}, "value": 1.5}, {"address": {"cat": "b"}, "value": -2}]},
     {("a",): 1.5, ("b",): -2.0}),
    (SPARSE, {"cells": {"a": 1.5, "b": -2}}, {("a",): 1.5, ("b",): -2.0}),
    (SPARSE, {"a": 1.5, "b": -2}, {("a",): 1.5, ("b",): -2.0}),
    (SPARSE, [{"address": {"cat": "a"}, "value": 3}], {("a",): 3.0}),
    (SPARSE, {"type": "tensor<float>(cat{})", "cells": {"7": 0.25}}, {("7",): 0.25}),
    (SPARSE, {"cells": [{"address": {"cat": 7}, "value": 1}]}, {("7",): 1.0}),  # a whole-number label
    (SPARSE, {}, {}),
    (SPARSE, {"cells": []}, {}),
    ("tensor(a{},b{})", {"cells": [{"address": {"a": "x", "b": "y"}, "value": 2},
                                   {"address": {"b": "x", "a": "y"}, "value": 3}]},
     {("x", "y"): 2.0, ("y", "x"): 3.0}),
    (MIXED, {"blocks": [{"address": {"dt": "t0"}, "values": [1, 2]}, {"address": {"dt": "t1"}, "values": [3, 4]}]},
     {("t0",): [1.0, 2.0], ("t1",): [3.0, 4.0]}),
    (MIXED, {"blocks": {"t0": [1, 2], "t1": [3, 4]}}, {("t0",): [1.0, 2.0], ("t1",): [3.0, 4.0]}),
    (MIXED, {"t0": [1, 2], "t1": [3, 4]}, {("t0",): [1.0, 2.0], ("t1",): [3.0, 4.0]}),
    # hex: the bits of float 1.0 = 3F800000, 2.0 = 40000000, -0.5 = BF000000
    (MIXED, {"t0": "3F80000040000000", "t1": "BF00000000000000"}, {("t0",): [1.0, 2.0], ("t1",): [-0.5, 0.0]}),
    (MIXED, {"blocks": [{"address": {"dt": "t0"}, "values": "3F80000040000000"}]}, {("t0",): [1.0, 2.0]}),
    # full addresses in a mixed type: the cells not given are 0, indexed labels as digits or numbers
    (MIXED, {"cells": [{"address": {"dt": "t0", "x": "1"}, "value": 5}, {"address": {"dt": "t1", "x": 0}, "value": 6}]},
     {("t0",): [0.0, 5.0], ("t1",): [6.0, 0.0]}),
    ("tensor(dt{},x[2],y[2])", {"t0": [[1, 2], [3, 4]]}, {("t0",): [[1.0, 2.0], [3.0, 4.0]]}),
    ("tensor(dt{},x[2],y[2])", {"t0": [1, 2, 3, 4]}, {("t0",): [[1.0, 2.0], [3.0, 4.0]]}),
    ("tensor(k{},v{},x[2])", {"blocks": [{"address": {"k": "a", "v": "b"}, "values": [1, 2]}]},
     {("a", "b"): [1.0, 2.0]}),
]


@pytest.mark.parametrize(("type_", "value", "want"), FORMS, ids=[f"{i}" for i in range(len(FORMS))])
def test_every_json_form_gives_the_cells_worked_out_by_hand(type_: str, value: Any, want: dict[Any, Any]) -> None:
    got = mapped_from_json(value, typ(type_))
    assert cells_of(got) == want
    assert len(got.addresses) == len(want)


def test_cell_types_convert_as_vespa_does() -> None:
    # bfloat16 truncates: 1/3 is 0x3EAAAAAB as a float, 0x3EAA0000 = 0.33203125 truncated
    half = mapped_from_json({"a": [1 / 3, -1 / 3]}, typ("tensor<bfloat16>(dt{},x[2])"))
    assert half.cells.dtype.name == "bfloat16"
    assert half.cells.astype(np.float64).tolist() == [[0.33203125, -0.33203125]]
    tiny = mapped_from_json({"a": 127, "b": -128}, typ("tensor<int8>(cat{})"))
    assert tiny.cells.dtype == np.int8 and tiny.cells.tolist() == [127, -128]
    # int8 hex: FF = -1, 80 = -128
    assert mapped_from_json({"a": "FF80"}, typ("tensor<int8>(dt{},x[2])")).cells.tolist() == [[-1, -128]]
    exact = mapped_from_json({"a": 0.1}, typ("tensor<double>(cat{})"))
    assert exact.cells.dtype == np.float64 and exact.cells.tolist() == [0.1]


BAD_FORMS = [
    (MIXED, {"t0": [1, 2, 3]}, "the block {dt:t0} has 3 cells; a subspace of tensor<float>(dt{},x[2]) has 2 cells"),
    (MIXED, {"cells": [{"address": {"dt": "a", "x": "z"}, "value": 1}]},
     "dimension 'x' has label 'z' but it is indexed in tensor<float>(dt{},x[2]) (labels 0..1)"),
    (MIXED, {"cells": [{"address": {"dt": "a", "x": 2}, "value": 1}]}, "dimension 'x' has label 2 but it is indexed"),
    (MIXED, {"cells": [{"address": {"dt": "a", "y": 0}, "value": 1}]}, "names dimension 'y', which"),
    (MIXED, {"cells": [{"address": {"dt": "a"}, "value": 1}]}, "is missing dimension 'x'"),
    (MIXED, {"blocks": [{"address": {"dt": "a", "x": "0"}, "values": [1, 2]}]}, "names indexed dimension 'x'"),
    (MIXED, {"blocks": [{"address": {"q": "a"}, "values": [1, 2]}]}, "names dimension 'q', which"),
    (MIXED, {"blocks": [{"address": {"dt": "a"}, "values": [1, 2]}, {"address": {"dt": "a"}, "values": [1, 2]}]},
     "the block {dt:a} is given twice"),
    (MIXED, {"t0": "3F800000"}, "has 8 hex digits; a subspace of tensor<float>(dt{},x[2]) needs 16"),
    (MIXED, {"t0": "zz800000zz800000"}, "is not a valid hex string"),
    (MIXED, {"t0": [[1, 2], [3]]}, "nested arrays must be rectangular"),
    (MIXED, {"t0": [1, "2"]}, "the value at {dt:t0} is '2', not a number"),
    (MIXED, {"values": [1, 2]}, "'values' is the form of indexed tensors"),
    (MIXED, {"cells": {"a": 1}}, "'cells' as an object of label: value is for sparse types"),
    (SPARSE, {"blocks": {"a": [1]}}, "'blocks' are for mixed types"),
    (SPARSE, {"cells": [{"address": {"cat": "a"}, "value": 1}, {"address": {"cat": "a"}, "value": 2}]},
     "the cell {cat:a} is given twice"),
    (SPARSE, {"a": float("nan")}, "NaN or infinity is not allowed"),
    (SPARSE, {"a": 1e39}, "a value does not fit cell type float"),
    (SPARSE, {"a": True}, "not a number"),
    (SPARSE, {"type": "tensor<float>(dog{})", "cells": {}}, "the value has type tensor<float>(dog{}), expected"),
    (SPARSE, {"cells": {}, "extra": 1}, "unknown member 'extra'"),
    (SPARSE, 3.0, "expected a tensor of type tensor<float>(cat{})"),
    (SPARSE, {"x" * 1100: 1.0}, "a label of 1100 bytes"),
    ("tensor(a{},b{})", {"x": 1.0}, "is for types with one mapped dimension; tensor(a{},b{}) has 2"),
    ("tensor<int8>(cat{})", {"a": 128}, "a value does not fit cell type int8"),
    ("tensor<int8>(cat{})", {"a": 1.5}, "cell type int8 needs whole numbers"),
]


@pytest.mark.parametrize(("type_", "value", "message"), BAD_FORMS, ids=[f"{i}" for i in range(len(BAD_FORMS))])
def test_bad_json_says_exactly_what_is_wrong(type_: str, value: Any, message: str) -> None:
    with pytest.raises(TensorValueError) as e:
        mapped_from_json(value, typ(type_))
    assert message in str(e.value)


def test_to_json_renders_vespa_default_forms_and_reads_back() -> None:
    t = typ("tensor(a{},b{})")
    v = mapped_from_json([{"address": {"a": "x", "b": "y"}, "value": 2}], t)
    assert mapped_to_json(v) == {"type": "tensor(a{},b{})",
                                 "cells": [{"address": {"a": "x", "b": "y"}, "value": 2.0}]}
    m = mapped_from_json({"q": [1, 2]}, typ(MIXED))
    assert mapped_to_json(m) == {"type": MIXED, "blocks": {"q": [1.0, 2.0]}}
    assert cells_of(mapped_from_json(mapped_to_json(m), typ(MIXED))) == {("q",): [1.0, 2.0]}


# ---------------------------------------------------------------------- feed, Get, restart

DOC = {
    "cats": {"sports": 0.5, "news": -1.25},
    "toks": {"blocks": [{"address": {"dt": "0"}, "values": [1 / 3, 2.0]}, {"address": {"dt": "1"}, "values": [3, 4]}]},
    "pair": {"cells": [{"address": {"a": "x", "b": "y"}, "value": -7}, {"address": {"a": "y", "b": "x"}, "value": 9}]},
    "wide": {"blocks": [{"address": {"k": "p", "v": "q"}, "values": [0.1, 1e300]}]},
    "dense": [1.0, 2.0],
}
# worked out by hand: bfloat16 truncates 1/3 to 0.33203125; double keeps 0.1 and 1e300
GET_JSON = {
    "cats": {"type": "tensor<float>(cat{})", "cells": {"sports": 0.5, "news": -1.25}},
    "toks": {"type": "tensor<bfloat16>(dt{},x[2])", "blocks": {"0": [0.33203125, 2.0], "1": [3.0, 4.0]}},
    "pair": {"type": "tensor<int8>(a{},b{})", "cells": [{"address": {"a": "x", "b": "y"}, "value": -7},
                                                         {"address": {"a": "y", "b": "x"}, "value": 9}]},
    "wide": {"type": "tensor(k{},v{},x[2])", "blocks": [{"address": {"k": "p", "v": "q"},
                                                                  "values": [0.1, 1e300]}]},
    "dense": {"type": "tensor<float>(x[2])", "values": [1.0, 2.0]},
}


def feed(store: DocumentStore, *ops: dict[str, Any]) -> list[Any]:
    return store.feed_batch(list(ops))


def test_feed_then_get_is_exact_and_survives_a_restart(tmp_path: Path, app: Application) -> None:
    with DocumentStore.open(tmp_path / "data", app, NumpyBackend()) as store:
        [r] = feed(store, {"put": ID, "fields": DOC})
        assert r.ok, r.error
        doc = store.get(ID)
        assert doc is not None and doc.to_json(store.types)["fields"] == GET_JSON
    with DocumentStore.open(tmp_path / "data", app, NumpyBackend()) as store:
        doc = store.get(ID)
        assert doc is not None and doc.to_json(store.types)["fields"] == GET_JSON
        toks = doc.fields["toks"]
        assert isinstance(toks, MappedTensor) and toks.cells.dtype.name == "bfloat16"
        pair = doc.fields["pair"]
        assert isinstance(pair, MappedTensor) and pair.cells.dtype == np.int8
        assert cells_of(pair) == {("x", "y"): -7.0, ("y", "x"): 9.0}
        padded = store.view("m").mapped_column("toks")
        assert padded.cells.astype(np.float64).tolist() == [[[0.33203125, 2.0], [3.0, 4.0]]]


def test_an_empty_tensor_is_a_value_and_null_leaves_the_field_unset(store: DocumentStore) -> None:
    assert all(r.ok for r in feed(store, {"put": ID, "fields": {"cats": {}, "toks": None}}))
    doc = store.get(ID)
    assert doc is not None
    assert doc.to_json(store.types)["fields"] == {"cats": {"type": "tensor<float>(cat{})", "cells": {}}}


def rows(store: DocumentStore, field: str) -> dict[str, dict[str, Any]]:
    """The padded column decoded by hand: per live document id, label -> cells of the used slots."""
    view = store.view("m")
    p = view.mapped_column(field)
    assert p.cells.shape[:2] == p.mask.shape and p.mask.shape[0] == view.size
    out: dict[str, dict[str, Any]] = {}
    for r, doc_id in enumerate(view.ids):
        used = [s for s in range(p.capacity) if p.mask[r, s]]
        unused = [s for s in range(p.capacity) if not p.mask[r, s]]
        assert all(int(x) == -1 for d in p.labels.values() for x in d[r, unused])
        assert not np.asarray(p.cells[r, unused], dtype=np.float64).any()
        if view.live is not None and not view.live[r]:
            assert not used  # a dead row has no slot in use
            continue
        dim = next(iter(p.labels))
        out[doc_id] = {LABELS.decode(int(p.labels[dim][r, s])): np.asarray(p.cells[r, s], np.float64).tolist()
                       for s in used}
    return out


def test_the_padded_column_follows_put_overwrite_and_remove(store: DocumentStore) -> None:
    one, two, three = (f"id:n:m::{i}" for i in (1, 2, 3))
    feed(store, {"put": one, "fields": {"cats": {"a": 1, "b": 2, "c": 3}}},
         {"put": two, "fields": {"cats": {"a": 4}}}, {"put": three, "fields": {"dense": [0, 0]}})
    assert rows(store, "cats") == {one: {"a": 1.0, "b": 2.0, "c": 3.0}, two: {"a": 4.0}, three: {}}
    assert store.view("m").mapped_column("cats").capacity == 3
    feed(store, {"put": one, "fields": {"cats": {"z": 9}}})  # the old row of `one` is dead now
    assert rows(store, "cats") == {one: {"z": 9.0}, two: {"a": 4.0}, three: {}}
    assert store.view("m").mapped_column("cats").capacity == 1  # the largest live value: one subspace
    feed(store, {"put": two, "fields": {"cats": {"p": 1, "q": 2}}}, {"remove": one})
    assert rows(store, "cats") == {two: {"p": 1.0, "q": 2.0}, three: {}}
    assert store.view("m").mapped_column("cats").capacity == 2
    feed(store, {"remove": two}, {"remove": three})
    p = store.view("m").mapped_column("cats")
    assert p.capacity == 1 and not p.mask.any()


def test_the_padded_column_is_rebuilt_after_a_restart(tmp_path: Path, app: Application) -> None:
    with DocumentStore.open(tmp_path / "data", app, NumpyBackend()) as store:
        feed(store, {"put": "id:n:m::1", "fields": {"cats": {"a": 1}}},
             {"put": "id:n:m::2", "fields": {"cats": {"b": 2, "c": 3}}}, {"remove": "id:n:m::1"})
    with DocumentStore.open(tmp_path / "data", app, NumpyBackend()) as store:
        assert rows(store, "cats") == {"id:n:m::2": {"b": 2.0, "c": 3.0}}
        assert store.view("m").mapped_column("cats").capacity == 2
        with pytest.raises(KeyError, match="no mapped attribute 'pair'"):
            store.view("m").mapped_column("pair")  # summary only: not resident


BAD_FEEDS = [
    ("toks", {"q": [1, 2, 3]}, "the block {dt:q} has 3 cells"),
    ("toks", {"cells": [{"address": {"dt": "q", "x": "a"}, "value": 1}]},
     "dimension 'x' has label 'a' but it is indexed"),
    ("toks", {"blocks": [{"address": {"dt": "q", "z": "1"}, "values": [1, 2]}]}, "names dimension 'z'"),
    ("cats", {"a": "x"}, "not a number"),
    ("cats", [1.0, 2.0], "each cell needs exactly 'address' and 'value'"),
    ("cats", "not json", "takes a tensor in Vespa's JSON form"),
    ("pair", {"cells": [{"address": {"a": "x"}, "value": 1}]}, "is missing dimension 'b'"),
]


@pytest.mark.parametrize(("field", "value", "message"), BAD_FEEDS, ids=[f"{i}" for i in range(len(BAD_FEEDS))])
def test_bad_values_are_refused_naming_document_and_field_and_nothing_is_stored(
        store: DocumentStore, field: str, value: Any, message: str) -> None:
    [r] = feed(store, {"put": ID, "fields": {"cats": {"ok": 1}, field: value}})
    assert not r.ok and r.error is not None
    assert r.error.startswith(f"{ID}: field '{field}': ") and message in r.error
    assert store.get(ID) is None
    assert store.view("m").size == 0


# ---------------------------------------------------------------------- partial updates


def update(store: DocumentStore, field: str, ops: dict[str, Any], create: bool = False) -> Any:
    op: dict[str, Any] = {"update": ID, "fields": {field: ops}}
    if create:
        op["create"] = True
    [r] = feed(store, op)
    return r


def value(store: DocumentStore, field: str) -> dict[tuple[str, ...], Any] | None:
    doc = store.get(ID)
    v = None if doc is None else doc.fields.get(field)
    return None if v is None else cells_of(v)  # type: ignore[arg-type]


def test_add_puts_and_replaces_subspaces(store: DocumentStore) -> None:
    feed(store, {"put": ID, "fields": {"cats": {"a": 1, "b": 2}, "toks": {"q": [1, 2]}}})
    assert update(store, "cats", {"add": {"cells": [{"address": {"cat": "b"}, "value": 5},
                                                     {"address": {"cat": "c"}, "value": 6}]}}).ok
    assert value(store, "cats") == {("a",): 1.0, ("b",): 5.0, ("c",): 6.0}
    # mixed: a cell of a new subspace makes the subspace, its other cells 0; a block replaces a whole one
    assert update(store, "toks", {"add": {"cells": [{"address": {"dt": "r", "x": "1"}, "value": 7}]}}).ok
    assert update(store, "toks", {"add": {"blocks": {"q": [8, 9]}}}).ok
    assert value(store, "toks") == {("q",): [8.0, 9.0], ("r",): [0.0, 7.0]}
    assert rows(store, "toks") == {ID: {"q": [8.0, 9.0], "r": [0.0, 7.0]}}


def test_add_to_an_unset_field_creates_it(store: DocumentStore) -> None:
    feed(store, {"put": ID, "fields": {"dense": [1, 1]}})
    assert update(store, "cats", {"add": {"cells": {"a": 2}}}).ok
    assert value(store, "cats") == {("a",): 2.0}


def test_remove_drops_the_subspaces_matching_full_or_partial_addresses(store: DocumentStore) -> None:
    feed(store, {"put": ID, "fields": {
        "wide": {"blocks": [{"address": {"k": "a", "v": "x"}, "values": [1, 1]},
                            {"address": {"k": "a", "v": "y"}, "values": [2, 2]},
                            {"address": {"k": "b", "v": "x"}, "values": [3, 3]},
                            {"address": {"k": "c", "v": "z"}, "values": [4, 4]}]},
        "cats": {"a": 1, "b": 2}}})
    assert update(store, "wide", {"remove": {"addresses": [{"k": "a"}, {"k": "c", "v": "z"}]}}).ok
    assert value(store, "wide") == {("b", "x"): [3.0, 3.0]}
    assert update(store, "cats", {"remove": {"addresses": [{"cat": "a"}, {"cat": "nope"}]}}).ok
    assert value(store, "cats") == {("b",): 2.0}
    assert rows(store, "cats") == {ID: {"b": 2.0}}


def test_modify_changes_existing_cells_and_creates_only_when_asked(store: DocumentStore) -> None:
    feed(store, {"put": ID, "fields": {"cats": {"a": 2, "b": 3}, "toks": {"q": [1, 2]}}})
    assert update(store, "cats", {"modify": {"operation": "multiply", "cells": {"a": 4, "missing": 5}}}).ok
    assert value(store, "cats") == {("a",): 8.0, ("b",): 3.0}  # a cell that does not exist is not made
    assert update(store, "cats", {"modify": {"operation": "add", "create": True,
                                             "cells": [{"address": {"cat": "new"}, "value": 5}]}}).ok
    assert value(store, "cats") == {("a",): 8.0, ("b",): 3.0, ("new",): 5.0}
    assert update(store, "toks", {"modify": {"operation": "replace",
                                             "cells": [{"address": {"dt": "q", "x": "1"}, "value": 7}]}}).ok
    assert value(store, "toks") == {("q",): [1.0, 7.0]}
    assert update(store, "toks", {"modify": {"operation": "add", "blocks": {"q": [10, 10]}}}).ok
    assert value(store, "toks") == {("q",): [11.0, 17.0]}
    assert update(store, "toks", {"modify": {"operation": "multiply", "create": True, "blocks": {"r": [3, 4]}}}).ok
    assert value(store, "toks") == {("q",): [11.0, 17.0], ("r",): [3.0, 4.0]}  # created as 1s, then multiplied
    assert update(store, "pair", {"modify": {"operation": "add", "cells": []}}).ok  # unset: ignored
    assert value(store, "pair") is None


BAD_UPDATES = [
    ("cats", {"remove": {"addresses": [{"dog": "a"}]}}, "names dimension 'dog', which"),
    ("toks", {"remove": {"addresses": [{"x": "0"}]}}, "names indexed dimension 'x'"),
    ("cats", {"remove": ["a"]}, "'remove' of tensor cells needs {\"addresses\""),
    ("cats", {"add": {"cells": {"a": "x"}}}, "not a number"),
    ("cats", {"add": None}, "'add' needs tensor cells or blocks"),
    ("toks", {"add": {"blocks": {"q": [1]}}}, "the block {dt:q} has 1 cells"),
    ("cats", {"modify": {"operation": "divide", "cells": {}}}, "'modify' needs an 'operation' of replace"),
    ("cats", {"modify": {"operation": "add"}}, "'modify' needs one of 'cells' or 'blocks'"),
    ("cats", {"modify": {"operation": "add", "cells": {}, "blocks": {}}}, "not both"),
    ("cats", {"modify": {"operation": "add", "cells": [{"address": {"cat": "a", "x": 1}, "value": 1}]}},
     "names dimension 'x'"),
    ("toks", {"modify": {"operation": "add", "cells": [{"address": {"dt": "q", "x": 5}, "value": 1}]}},
     "dimension 'x' has label 5 but it is indexed"),
    ("cats", {"modify": {"operation": "add", "shape": 1, "cells": {}}}, "unknown key 'shape' in 'modify'"),
    ("cats", {"increment": 1}, "'increment' applies to single numeric fields"),
    ("pair", {"modify": {"operation": "add", "create": True, "cells": [
        {"address": {"a": "x", "b": "y"}, "value": 200}]}}, "after modify (add): a value does not fit cell type int8"),
]


@pytest.mark.parametrize(("field", "ops", "message"), BAD_UPDATES, ids=[f"{i}" for i in range(len(BAD_UPDATES))])
def test_bad_updates_are_refused_naming_document_and_field_and_change_nothing(
        store: DocumentStore, field: str, ops: dict[str, Any], message: str) -> None:
    feed(store, {"put": ID, "fields": {"cats": {"a": 1}, "toks": {"q": [1, 2]}}})
    before = store.get(ID)
    assert before is not None
    r = update(store, field, ops)
    assert not r.ok and r.error is not None
    assert r.error.startswith(f"{ID}: field '{field}': ") and message in r.error
    after = store.get(ID)
    assert after is not None and after.to_json(store.types) == before.to_json(store.types)
    assert rows(store, "cats") == {ID: {"a": 1.0}}


def test_add_and_remove_are_still_refused_for_indexed_tensors(store: DocumentStore) -> None:
    feed(store, {"put": ID, "fields": {"dense": [1, 2]}})
    r = update(store, "dense", {"add": {"cells": [{"address": {"x": "0"}, "value": 1}]}})
    assert not r.ok and "'add' of tensor cells applies to mapped dimensions" in str(r.error)
