"""Every kind of bad feed operation gets an error naming the document id, the field and what was wrong;
it changes nothing and the good operations of the same feed go on."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

from server.store import DocumentStore, read_feed

ID = "id:ns:news::1"
FIELDS = "embedding, matrix, half, wide, popularity, score, count, views, tiny, flag, title"


def _put(**fields: Any) -> dict[str, Any]:
    return {"put": ID, "fields": fields}


def _upd(field: str, ops: Any, **extra: Any) -> dict[str, Any]:
    return {"update": ID, "fields": {field: ops}, **extra}


BAD: list[tuple[str, Any, str]] = [
    # unknown document type or field
    ("unknown document type", {"put": "id:ns:nosuch::1", "fields": {}},
     "id:ns:nosuch::1: unknown document type 'nosuch' (document types: news, other)"),
    ("unknown field in put", _put(nope=1), f"{ID}: field 'nope': unknown field (document type 'news' has fields: "
                                           f"{FIELDS})"),
    ("unknown field in update", _upd("nope", {"assign": 1}), f"{ID}: field 'nope': unknown field"),
    ("field path update", _upd("embedding{x:1}", {"assign": 1}),
     f"{ID}: field 'embedding{{x:1}}': field paths (struct, map and array elements) are not supported"),
    # wrong shape or cell count
    ("too few cells", _put(embedding=[1, 2, 3]),
     f"{ID}: field 'embedding': tensor<float>(x[4]) has 4 cells (shape [4]) but the value has shape [3]"),
    ("too many values", _put(embedding={"values": [1, 2, 3, 4, 5]}),
     f"{ID}: field 'embedding': tensor<float>(x[4]) has 4 cells (shape [4]) but the value has shape [5]"),
    ("nested shape", _put(matrix=[[1, 2], [3, 4], [5, 6]]),
     f"{ID}: field 'matrix': tensor<int8>(x[2],y[3]) has 6 cells (shape [2, 3]) but the value has shape [3, 2]"),
    ("hex length", _put(embedding={"values": "3f800000"}),
     f"{ID}: field 'embedding': hex string has 8 digits; tensor<float>(x[4]) needs 32"),
    ("raw bytes length", _put(embedding=b"\x00" * 12),
     f"{ID}: field 'embedding': tensor<float>(x[4]) takes 16 bytes of raw little-endian float cells (4 cells), "
     "got 12 bytes"),
    ("numpy shape", _put(embedding=np.zeros((2, 2))),
     f"{ID}: field 'embedding': tensor<float>(x[4]) has 4 cells (shape [4]) but the value has shape [2, 2]"),
    ("cell outside the type", _put(embedding={"cells": [{"address": {"x": "4"}, "value": 1.0}]}),
     f"{ID}: field 'embedding': cell index x:4 is outside 0..3"),
    ("cell address dims", _put(embedding={"cells": [{"address": {"y": "0"}, "value": 1.0}]}),
     f"{ID}: field 'embedding': cell address {{'y': '0'}} must name exactly the dimensions ['x']"),
    ("type member mismatch", _put(embedding={"type": "tensor<float>(x[3])", "values": [1, 2, 3]}),
     f"{ID}: field 'embedding': value has type tensor<float>(x[3]), expected tensor<float>(x[4])"),
    ("scalar given an array", _put(popularity=[1.0]), f"{ID}: field 'popularity': expected a number for float, "
                                                      "got an array"),
    # values that do not fit the cell type
    ("int8 cell too large", _put(matrix=[1, 2, 3, 4, 5, 300]),
     f"{ID}: field 'matrix': a value does not fit cell type int8"),
    ("int8 cell not whole", _put(matrix=[1, 2, 3, 4, 5, 1.5]),
     f"{ID}: field 'matrix': cell type int8 needs whole numbers"),
    ("float cell too large", _put(embedding=[1, 2, 3, 1e39]),
     f"{ID}: field 'embedding': a value does not fit cell type float"),
    # 3.4e38 fits: a fed bfloat16 cell is truncated (as in Vespa), to 3.3895e38
    ("bfloat16 cell too large", _put(half=[1, 1e39]), f"{ID}: field 'half': a value does not fit cell type bfloat16"),
    ("float too large", _put(popularity=1e39), f"{ID}: field 'popularity': 1e+39 does not fit float"),
    ("int too large", _put(count=2**31), f"{ID}: field 'count': 2147483648 does not fit int (-2147483648..2147483647)"),
    ("long too large", _put(views=2**63), f"{ID}: field 'views': 9223372036854775808 does not fit long"),
    ("byte too large", _put(tiny=128), f"{ID}: field 'tiny': 128 does not fit byte (-128..127)"),
    ("int not whole", _put(count=1.5), f"{ID}: field 'count': int needs a whole number, got 1.5"),
    ("bool given a number", _put(flag=1), f"{ID}: field 'flag': expected true or false, got the number 1"),
    ("number given a string", _put(score="1.5"), f"{ID}: field 'score': expected a number for double, got the string"),
    ("string given a number", _put(title=3), f"{ID}: field 'title': expected a string, got the number 3"),
    ("number given a boolean", _put(score=True), f"{ID}: field 'score': expected a number for double, got a boolean"),
    ("tensor given a string", _put(embedding="1,2,3,4"),
     f"{ID}: field 'embedding': expected a tensor of type tensor<float>(x[4]) in Vespa's JSON form"),
    # NaN or infinity
    ("NaN in a tensor", _put(embedding=[1, 2, math.nan, 4]),
     f"{ID}: field 'embedding': NaN or infinity is not allowed"),
    ("infinity in hex", _put(embedding={"values": "3f800000" * 3 + "7f800000"}),
     f"{ID}: field 'embedding': NaN or infinity is not allowed"),
    ("NaN in raw bytes", _put(embedding=np.array([1, 2, 3, np.nan], np.float32).tobytes()),
     f"{ID}: field 'embedding': NaN or infinity is not allowed"),
    ("infinity in numpy", _put(embedding=np.array([1, 2, 3, np.inf])),
     f"{ID}: field 'embedding': NaN or infinity is not allowed"),
    ("NaN scalar", _put(score=math.nan), f"{ID}: field 'score': NaN or infinity is not allowed"),
    ("infinity in cells", _put(wide={"cells": [{"address": {"x": "0"}, "value": math.inf}]}),
     f"{ID}: field 'wide': NaN or infinity is not allowed"),
    # malformed ids
    ("id without prefix", {"put": "news-1", "fields": {}}, "malformed document id 'news-1': must start with 'id:'"),
    ("id with too few parts", {"put": "id:ns:news:1", "fields": {}},
     "malformed document id 'id:ns:news:1': too few ':'-separated parts"),
    ("id with empty namespace", {"put": "id::news::1", "fields": {}},
     "malformed document id 'id::news::1': the namespace is empty"),
    ("id with empty key", {"put": "id:ns:news::", "fields": {}},
     "malformed document id 'id:ns:news::': the user-specific part after the last ':' is empty"),
    ("id with bad key/value", {"put": "id:ns:news:x=1:k", "fields": {}},
     "malformed document id 'id:ns:news:x=1:k': 'x=1' must be empty, n=<number> or g=<group>"),
    ("id with control character", {"put": "id:ns:news::a\nb", "fields": {}}, "control characters are not allowed"),
    ("id not a string", {"put": 42, "fields": {}}, "document id must be a string, got int 42"),
    # the operation itself
    ("no operation", {"fields": {}}, "an operation needs exactly one of 'put', 'update' or 'remove' "
                                     "(found keys 'fields')"),
    ("two operations", {"put": ID, "remove": ID}, f"{ID}: an operation needs exactly one of 'put', 'update' or "
                                                  "'remove' (found 'put' and 'remove')"),
    ("unknown key", {"put": ID, "fields": {}, "id": ID}, f"{ID}: unknown key 'id' in a put operation"),
    ("put without fields", {"put": ID}, f"{ID}: the put operation is missing a 'fields' object"),
    ("fields not an object", {"put": ID, "fields": [1]}, f"{ID}: the put operation has 'fields' that is not an object"),
    ("not an object", [ID], "an operation must be a JSON object with 'put', 'update' or 'remove'"),
    ("create on a put", {"put": ID, "fields": {}, "create": True}, f"{ID}: 'create' applies only to update operations"),
    ("test-and-set condition", {"put": ID, "fields": {}, "condition": "news.count==1"},
     f"{ID}: test-and-set conditions are not supported (condition 'news.count==1'); the operation was not applied"),
    # update operations
    ("update without an operation", _upd("score", 2.0),
     f"{ID}: field 'score': an update needs an operation per field (assign, modify, increment, decrement, "
     "multiply or divide)"),
    ("unknown update operation", _upd("score", {"set": 2.0}), f"{ID}: field 'score': unknown update operation 'set'"),
    ("increment a tensor", _upd("embedding", {"increment": 1}),
     f"{ID}: field 'embedding': 'increment' applies to single numeric fields (int, long, byte, float, double); this "
     "field is tensor<float>(x[4])"),
    ("increment a bool", _upd("flag", {"increment": 1}), f"{ID}: field 'flag': 'increment' applies to single numeric"),
    ("increment by a string", _upd("score", {"increment": "1"}), f"{ID}: field 'score': 'increment' needs a number, "
                                                                 "got '1'"),
    ("modify a scalar", _upd("score", {"modify": {"operation": "add", "cells": []}}),
     f"{ID}: field 'score': 'modify' applies to tensor fields; this field is double"),
    ("modify without operation", _upd("embedding", {"modify": {"cells": []}}),
     f"{ID}: field 'embedding': 'modify' needs an 'operation' of replace, add or multiply, got no operation"),
    ("modify with unknown operation", _upd("embedding", {"modify": {"operation": "divide", "cells": []}}),
     f"{ID}: field 'embedding': 'modify' needs an 'operation' of replace, add or multiply, got operation 'divide'"),
    ("modify outside the type", _upd("embedding", {"modify": {"operation": "replace", "cells": [
        {"address": {"x": "7"}, "value": 1.0}]}}),
     f"{ID}: field 'embedding': cell address: dimension 'x' has label '7' but the type is tensor<float>(x[4]) "
     "(labels 0..3)"),
    ("modify with wrong dimensions", _upd("matrix", {"modify": {"operation": "replace", "cells": [
        {"address": {"x": "0"}, "value": 1.0}]}}),
     f"{ID}: field 'matrix': cell address {{'x': '0'}} must name exactly the dimensions ['x', 'y']"),
    ("modify with a non-number", _upd("embedding", {"modify": {"operation": "add", "cells": [
        {"address": {"x": "0"}, "value": "a"}]}}), f"{ID}: field 'embedding': cell value 'a' is not a number"),
    ("modify with blocks", _upd("embedding", {"modify": {"operation": "add", "blocks": {}}}),
     f"{ID}: field 'embedding': unknown key 'blocks' in 'modify' ('blocks' are for mixed tensors"),
    ("add cells to an indexed tensor", _upd("embedding", {"add": {"cells": []}}),
     f"{ID}: field 'embedding': 'add' of tensor cells applies to mapped dimensions; tensor<float>(x[4]) is indexed: "
     "use 'modify' or 'assign'"),
    ("remove cells from an indexed tensor", _upd("embedding", {"remove": {"addresses": []}}),
     f"{ID}: field 'embedding': 'remove' of tensor cells applies to mapped dimensions"),
    ("assign a bad value", _upd("embedding", {"assign": [1, 2]}),
     f"{ID}: field 'embedding': tensor<float>(x[4]) has 4 cells (shape [4]) but the value has shape [2]"),
    ("create not a boolean", _upd("score", {"assign": 1.0}, create="yes"),
     f"{ID}: 'create' must be true or false, got 'yes'"),
]


@pytest.mark.parametrize("op, message", [(op, msg) for _, op, msg in BAD], ids=[name for name, _, _ in BAD])
def test_bad_operation_is_refused_with_its_message(store: DocumentStore, op: Any, message: str) -> None:
    [r] = store.feed_batch([op])
    assert not r.ok
    assert r.error is not None and message in r.error, r.error
    assert store.get(ID) is None
    assert store.view("news").size == 0


# errors that depend on the stored document: (existing document, update, message)
APPLY_ERRORS: list[tuple[str, dict[str, Any], dict[str, Any], str]] = [
    ("update of a missing document", {}, _upd("score", {"assign": 1.0}) | {"update": "id:ns:news::2"},
     'id:ns:news::2: document not found, nothing updated (add "create": true to create it)'),
    ("increment beyond the type", {"tiny": 127}, _upd("tiny", {"increment": 1}),
     f"{ID}: field 'tiny': result 128 of increment 1 does not fit byte (-128..127)"),
    ("divide by zero", {"score": 2.0}, _upd("score", {"divide": 0}), f"{ID}: field 'score': divide by 0"),
    ("multiply beyond float", {"popularity": 3e38}, _upd("popularity", {"multiply": 10}),
     f"{ID}: field 'popularity': result 3.000000005497756e+39 of multiply 10 does not fit float"),
    ("modify beyond the cell type", {"embedding": [3e38, 0, 0, 0]},
     _upd("embedding", {"modify": {"operation": "add", "cells": [{"address": {"x": "0"}, "value": 3e38}]}}),
     f"{ID}: field 'embedding': after modify (add): a value does not fit cell type float"),
    ("modify an int8 cell to a fraction", {"matrix": [1, 2, 3, 4, 5, 6]},
     _upd("matrix", {"modify": {"operation": "multiply", "cells": [{"address": {"x": "0", "y": "0"}, "value": 0.5}]}}),
     f"{ID}: field 'matrix': after modify (multiply): cell type int8 needs whole numbers"),
]


@pytest.mark.parametrize("fields, update, message", [x[1:] for x in APPLY_ERRORS], ids=[x[0] for x in APPLY_ERRORS])
def test_update_that_cannot_apply_changes_nothing(store: DocumentStore, fields: dict[str, Any],
                                                  update: dict[str, Any], message: str) -> None:
    assert all(r.ok for r in store.feed_batch([_put(title="kept", **fields)]))
    before = store.get(ID)
    [r] = store.feed_batch([update])
    assert not r.ok and r.error is not None and message in r.error, r.error
    after = store.get(ID)
    assert before is not None and after is not None
    assert before.fields.keys() == after.fields.keys()
    for k, v in before.fields.items():
        np.testing.assert_array_equal(np.asarray(after.fields[k]), np.asarray(v))


def test_update_failing_in_its_second_field_changes_nothing(store: DocumentStore) -> None:
    assert store.feed_batch([_put(score=1.0, tiny=127)])[0].ok
    [r] = store.feed_batch([{"update": ID, "fields": {"score": {"assign": 5.0}, "tiny": {"increment": 1}}}])
    assert not r.ok and r.error is not None and "field 'tiny'" in r.error
    doc = store.get(ID)
    assert doc is not None and float(doc.fields["score"]) == 1.0
    assert float(store.view("news").columns["score"][0]) == 1.0


def test_bad_operations_do_not_stop_the_good_ones(store: DocumentStore) -> None:
    ops = [
        {"put": "id:ns:news::a", "fields": {"embedding": [1, 2, 3, 4]}},
        {"put": "id:ns:news::b", "fields": {"embedding": [1, 2, 3]}},  # bad shape
        {"put": "id:ns:news::c", "fields": {"embedding": [5, 6, 7, 8], "title": "c"}},
        {"update": "id:ns:news::a", "fields": {"embedding": {"modify": {"operation": "add", "cells": [
            {"address": {"x": "0"}, "value": 10}]}}}},
        {"update": "id:ns:news::c", "fields": {"nope": {"assign": 1}}},  # unknown field
        {"put": "id:ns:news::d", "fields": {"embedding": np.array([1, 1, 1, np.nan], np.float32).tobytes()}},  # NaN
        {"put": "id:ns:news::e", "fields": {"embedding": np.array([9, 9, 9, 9], np.float32).tobytes()}},
        {"remove": "id:ns:news::c"},
        {"remove": "id:ns:nosuch::c"},  # unknown document type
    ]
    results = store.feed_batch(ops)
    assert [r.ok for r in results] == [True, False, True, True, False, False, True, True, False]
    assert [r.index for r in results] == list(range(len(ops)))
    assert results[5].error == "id:ns:news::d: field 'embedding': NaN or infinity is not allowed"
    a, e = store.get("id:ns:news::a"), store.get("id:ns:news::e")
    assert a is not None and e is not None
    np.testing.assert_array_equal(a.fields["embedding"], [11, 2, 3, 4])
    np.testing.assert_array_equal(e.fields["embedding"], [9, 9, 9, 9])
    for missing in ("b", "c", "d"):
        assert store.get(f"id:ns:news::{missing}") is None
    snap = store.shard("news").snapshot()
    live = sorted(str(i) for i, ok in zip(snap.ids, snap.live) if ok)
    assert live == ["id:ns:news::a", "id:ns:news::e"]


def test_unreadable_json_lines_are_reported_in_place(store: DocumentStore) -> None:
    text = "\n".join([
        '{"put": "id:ns:news::1", "fields": {"score": 1.0}}',
        '{"put": "id:ns:news::2", "fields": {"score": 2.0}',  # missing brace
        '{"put": "id:ns:news::3", "fields": {"score": 3.0}}',
    ])
    results = list(store.feed(read_feed(text)))
    assert [r.ok for r in results] == [True, False, True]
    assert results[1].error == "line 2: not valid JSON: Expecting ',' delimiter at column 50"
    assert results[1].doc_id is None


def test_get_refuses_bad_ids(store: DocumentStore) -> None:
    from server.store import FeedError

    with pytest.raises(FeedError, match="malformed document id 'x'"):
        store.get("x")
    with pytest.raises(FeedError, match="unknown document type 'nosuch'"):
        store.get("id:ns:nosuch::1")


def test_raw_cells_of_a_single_value(store: DocumentStore) -> None:
    [r] = store.feed_batch([_put(score=b"\x00" * 4)])
    assert r.error == (f"{ID}: field 'score': double takes 8 bytes of raw little-endian double cells (1 cells), "
                       "got 4 bytes")
    assert store.feed_batch([_put(score=bytearray(np.float64(2.5).tobytes()), flag=b"\x01")])[0].ok
    doc = store.get(ID)
    assert doc is not None and float(doc.fields["score"]) == 2.5 and bool(doc.fields["flag"])
    [r] = store.feed_batch([_put(flag=b"\x02")])
    assert r.error == f"{ID}: field 'flag': raw bool cells must be bytes 0 or 1"
