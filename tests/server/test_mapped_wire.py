"""Mapped and mixed tensors on the wire (proto Tensor.labels), in query inputs, puts and the client.

Oracles: MappedTensors and wire messages (labels, little-endian bytes) written out by hand."""

from __future__ import annotations

import asyncio
import struct
from types import SimpleNamespace
from typing import Any

import ml_dtypes
import numpy as np
import pytest

from proto.tensorrank.v1 import ranking_pb2 as pb
from server.client import ClientError, tensor_message, tensor_value
from server.engine import _field_value
from server.metrics import Metrics
from server.query_args import TensorLiteral, parse_query_args, query_tensors, response_json
from server.query_inputs import query_values
from server.service import RankingService
from server.store.values import DocType, FieldSpec
from server.wire import WireError, decode_tensor, encode_tensor
from tensor_ir.expr.errors import RankingError
from tensor_ir.expr.profile import QueryInput
from tensor_ir.expr.types import TensorType, parse_type
from tensor_ir.mapped import MappedTensor


def T(text: str) -> TensorType:
    return parse_type(text, allow_mapped=True)


def contents(v: MappedTensor) -> dict[tuple[str, ...], list[float]]:
    """Label order means nothing: compare subspaces by address."""
    return {a: np.asarray(v.cells[i], dtype=np.float64).reshape(-1).tolist() for i, a in enumerate(v.addresses)}


def same(got: Any, want: MappedTensor) -> None:
    assert isinstance(got, MappedTensor)
    assert got.type == want.type
    assert got.cells.dtype == want.type.cell.np_dtype
    assert len(got) == len(want)
    assert contents(got) == contents(want)


SPARSE = MappedTensor(T("tensor<float>(cat{})"), (("sports",), ("news",)), np.array([0.5, -2.0], np.float32))
MIXED = MappedTensor(T("tensor<float>(dt{},x[3])"), (("0",), ("7",)),
                     np.array([[1.0, 2.0, 3.0], [-1.0, 0.25, 8.0]], np.float32))


# ---------------------------------------------------------------------- the wire form


def test_sparse_message_is_labels_then_little_endian_cells() -> None:
    msg = encode_tensor(SPARSE, SPARSE.type)
    assert msg.type == "tensor<float>(cat{})"
    assert list(msg.labels) == ["sports", "news"]
    assert msg.values == struct.pack("<2f", 0.5, -2.0)


def test_mixed_message_two_mapped_dims_in_sorted_order() -> None:
    t = T("tensor<double>(user{},movie{},x[2])")  # mapped dims sorted: movie, user
    v = MappedTensor(t, (("heat", "bob"), ("frozen", "alice")), np.array([[1, 2], [3, 4]], np.float64))
    msg = encode_tensor(v, t)
    assert msg.type == "tensor(movie{},user{},x[2])"
    assert list(msg.labels) == ["heat", "bob", "frozen", "alice"]
    assert msg.values == struct.pack("<4d", 1, 2, 3, 4)
    same(decode_tensor(msg, t, "q"), v)


def test_hand_written_message_decodes() -> None:
    msg = pb.Tensor(type="tensor<float>(dt{},x[3])", labels=["7", "0"],
                    values=struct.pack("<6f", -1.0, 0.25, 8.0, 1.0, 2.0, 3.0))
    same(decode_tensor(msg, MIXED.type, "query(qt)"), MIXED)  # another subspace order, the same tensor
    same(decode_tensor(msg, None, "x"), MIXED)  # typed by the message itself


CELL_VALUES = [2.0, -3.0, 100.0]  # exact in every cell type


@pytest.mark.parametrize("cell, fmt", [("float", "<f"), ("double", "<d"), ("int8", "<b"), ("bfloat16", None)])
@pytest.mark.parametrize("dims", ["cat{}", "cat{},x[3]"])
def test_round_trip_every_cell_type(cell: str, fmt: str | None, dims: str) -> None:
    t = T(f"tensor<{cell}>({dims})")
    k = 3 if "x" not in dims else 1
    values = CELL_VALUES if "x" not in dims else [CELL_VALUES]
    labels = ["a", "b", "c"][:k]
    value = MappedTensor.build(t, [((lab,), v) for lab, v in zip(labels, values, strict=True)])
    msg = encode_tensor(value, t)
    if fmt is not None:
        cells = [int(x) for x in CELL_VALUES] if cell == "int8" else CELL_VALUES
        assert msg.values == struct.pack(f"{fmt[0]}3{fmt[1]}", *cells)
    else:  # bfloat16: the top half of each float32, little-endian
        assert msg.values == b"".join(struct.pack("<f", x)[2:] for x in CELL_VALUES)
    assert list(msg.labels) == labels
    back = decode_tensor(pb.Tensor.FromString(msg.SerializeToString()), t, "q")
    assert isinstance(back, MappedTensor)
    assert back.addresses == tuple((lab,) for lab in labels)
    assert np.asarray(back.cells, np.float64).reshape(-1).tolist() == CELL_VALUES
    assert back.cells.dtype == (ml_dtypes.bfloat16 if cell == "bfloat16" else np.dtype(fmt))


def test_empty_mapped_tensor() -> None:
    t = T("tensor<float>(cat{})")
    msg = encode_tensor(MappedTensor.build(t, []), t)
    assert list(msg.labels) == [] and msg.values == b""
    got = decode_tensor(msg, t, "q")
    assert isinstance(got, MappedTensor) and len(got) == 0 and got.cells.shape == (0,)


def test_cells_convert_to_the_expected_cell_type() -> None:
    msg = pb.Tensor(type="tensor<float>(cat{})", labels=["a"], values=struct.pack("<f", 1.5))
    got = decode_tensor(msg, T("tensor<double>(cat{})"), "q")
    same(got, MappedTensor(T("tensor(cat{})"), (("a",),), np.array([1.5])))


@pytest.mark.parametrize("msg, expected, message", [
    (pb.Tensor(type="tensor(a{},b{})", labels=["x", "y", "z"], values=struct.pack("<d", 1)), "tensor(a{},b{})",
     r"q: tensor\(a\{\},b\{\}\) has 2 mapped dimensions, so its labels come 2 per address; got 3 labels"),
    (pb.Tensor(type="tensor<float>(cat{})", labels=["a", "b"], values=struct.pack("<f", 1)), "tensor<float>(cat{})",
     r"q: 2 subspaces of tensor<float>\(cat\{\}\) need 8 bytes \(2 x 1 cells of 4\), got 4"),
    (pb.Tensor(type="tensor<float>(dt{},x[2])", labels=["a"], values=struct.pack("<3f", 1, 2, 3)),
     "tensor<float>(dt{},x[2])", r"need 8 bytes \(1 x 2 cells of 4\), got 12"),
    (pb.Tensor(type="tensor<float>(cat{})", labels=[], values=struct.pack("<f", 1)), "tensor<float>(cat{})",
     r"0 subspaces .* need 0 bytes"),
    (pb.Tensor(type="tensor<float>(cat{})", labels=["a", "b", "a"], values=struct.pack("<3f", 1, 2, 3)),
     "tensor<float>(cat{})", r"q: the address \{cat:a\} is given twice"),
    (pb.Tensor(type="tensor(a{},b{})", labels=["x", "y", "x", "y"], values=struct.pack("<2d", 1, 2)),
     "tensor(a{},b{})", r"the address \{a:x, b:y\} is given twice"),
    (pb.Tensor(type="tensor<float>(tag{})", labels=["a"], values=struct.pack("<f", 1)), "tensor<float>(cat{})",
     r"q: expected tensor<float>\(cat\{\}\), got tensor<float>\(tag\{\}\)"),
    (pb.Tensor(type="tensor<float>(cat[1])", values=struct.pack("<f", 1)), "tensor<float>(cat{})",
     r"expected tensor<float>\(cat\{\}\), got tensor<float>\(cat\[1\]\)"),
    (pb.Tensor(type="tensor<float>(cat{})", labels=["a"], values=struct.pack("<f", 1)), "tensor<float>(cat[1])",
     r"expected tensor<float>\(cat\[1\]\), got tensor<float>\(cat\{\}\)"),
    (pb.Tensor(type="tensor<float>(x[1])", labels=["a"], values=struct.pack("<f", 1)), "tensor<float>(x[1])",
     r"q: tensor<float>\(x\[1\]\) has no mapped dimensions, but the tensor has 1 labels"),
    (pb.Tensor(type="tensor<float>(cat{})", labels=["a" * 1025], values=struct.pack("<f", 1)),
     "tensor<float>(cat{})", "a label of more than 1024 bytes"),
])
def test_malformed_messages_are_refused(msg: pb.Tensor, expected: str, message: str) -> None:
    with pytest.raises(WireError, match=message):
        decode_tensor(msg, T(expected), "q")


def test_dense_tensors_are_unchanged_on_the_wire() -> None:
    t = parse_type("tensor<float>(x[2])")
    msg = encode_tensor(np.array([1.0, 2.0]), t)
    # field 1 (type), then field 2 (values); no field 3: the bytes an old client sends and reads
    type_bytes = b"tensor<float>(x[2])"
    cells = struct.pack("<2f", 1.0, 2.0)
    assert msg.SerializeToString() == bytes([0x0A, len(type_bytes)]) + type_bytes + bytes([0x12, 8]) + cells
    old = pb.Tensor(type="tensor<float>(x[2])", values=cells)
    got = decode_tensor(old, t, "q")
    assert isinstance(got, np.ndarray) and got.tolist() == [1.0, 2.0] and got.dtype == np.float32
    scalar = decode_tensor(pb.Tensor(type="float", values=struct.pack("<f", 2.5)), None, "s")
    assert isinstance(scalar, np.ndarray) and scalar.tolist() == 2.5


def test_encode_refuses_a_value_of_other_dimensions() -> None:
    with pytest.raises(WireError, match=r"a value of tensor<float>\(cat\{\}\) must be a MappedTensor"):
        encode_tensor(np.array([1.0]), T("tensor<float>(cat{})"))
    with pytest.raises(WireError, match=r"got tensor<float>\(cat\{\}\)"):
        encode_tensor(SPARSE, T("tensor<float>(tag{})"))
    with pytest.raises(WireError, match="not valid UTF-8"):
        encode_tensor(MappedTensor.build(SPARSE.type, [(("\ud800",), 1.0)]), SPARSE.type)


def test_mapped_int8_scalar_name_is_not_a_scalar() -> None:
    assert encode_tensor(MappedTensor.build(T("tensor<int8>(c{})"), []), T("tensor<int8>(c{})")).type == \
        "tensor<int8>(c{})"


# ---------------------------------------------------------------------- puts and query inputs


def test_put_value_of_a_mapped_field() -> None:
    t = T("tensor<float>(cat{})")
    spec = FieldSpec("scores", t, True)
    msg = pb.Tensor(type="tensor<float>(cat{})", labels=["a", "b"], values=struct.pack("<2f", 1, 2))
    same(_field_value(spec, msg), MappedTensor(t, (("a",), ("b",)), np.array([1, 2], np.float32)))
    doubles = pb.Tensor(type="tensor(cat{})", labels=["a"], values=struct.pack("<d", 3))
    same(_field_value(spec, doubles), MappedTensor(t, (("a",),), np.array([3], np.float32)))
    untyped = pb.Tensor(labels=["a"], values=struct.pack("<f", 4))
    same(_field_value(spec, untyped), MappedTensor(t, (("a",),), np.array([4], np.float32)))
    with pytest.raises(WireError, match="send its cells as"):
        _field_value(spec, pb.Tensor(type="tensor<int8>(cat{})", labels=["a"], values=b"\x01"))
    with pytest.raises(WireError, match=r"got a value of type 'tensor<float>\(tag\{\}\)'"):
        _field_value(spec, pb.Tensor(type="tensor<float>(tag{})", labels=["a"], values=struct.pack("<f", 1)))
    with pytest.raises(WireError, match="is given twice"):
        _field_value(spec, pb.Tensor(type="tensor<float>(cat{})", labels=["a", "a"], values=bytes(8)))
    dense = FieldSpec("v", parse_type("tensor<float>(x[1])"), True)
    with pytest.raises(WireError, match="no mapped dimensions, but the value has 1 labels"):
        _field_value(dense, pb.Tensor(type="tensor<float>(x[1])", labels=["a"], values=bytes(4)))
    assert _field_value(dense, pb.Tensor(type="tensor<float>(x[1])", values=bytes(4))) == bytes(4)


def _profile(**inputs: tuple[str, Any]) -> Any:
    qi = {n: QueryInput(n, T(t), d, None) for n, (t, d) in inputs.items()}  # type: ignore[arg-type]
    return SimpleNamespace(name="p", query_inputs=qi)


def test_query_values_of_mapped_inputs() -> None:
    prof = _profile(user=("tensor<float>(cat{})", None), qt=("tensor<float>(qt{},x[3])", None),
                    q=("tensor<float>(x[2])", None))
    got = query_values(prof, {"query(user)": SPARSE, "qt": {"0": [1, 2, 3]}, "q": [1, 2]})
    same(got["query(user)"], SPARSE)
    same(got["query(qt)"], MappedTensor(prof.query_inputs["qt"].type, (("0",),), np.array([[1, 2, 3]], np.float32)))
    dense = got["query(q)"]
    assert isinstance(dense, np.ndarray) and dense.tolist() == [1.0, 2.0]
    empty = query_values(prof, {"q": [1, 2]})
    assert isinstance(empty["query(user)"], MappedTensor) and len(empty["query(user)"]) == 0  # not zeros
    with pytest.raises(RankingError, match=r"query\(qt\): tensor<float>\(qt\{\},x\[3\]\): the block \{qt:0\} must "
                                           r"be an array of 3 numbers"):
        query_values(prof, {"qt": {"0": 1.0}})
    with pytest.raises(RankingError, match=r"query\(q\) needs tensor<float>\(x\[2\]\), got a mapped tensor"):
        query_values(prof, {"q": SPARSE})
    with pytest.raises(RankingError, match=r"query\(user\): expected tensor<float>\(cat\{\}\), got tensor<float>\("
                                           r"dt\{\},x\[3\]\)"):
        query_values(prof, {"user": MIXED})


# ---------------------------------------------------------------------- the CLI's values


PROFILE = pb.RankProfileInfo(name="p", inputs=[
    pb.QueryInputInfo(name="query(user)", type="tensor<float>(cat{})"),
    pb.QueryInputInfo(name="qt", type="tensor<float>(qt{},x[2])", has_default=True),
    pb.QueryInputInfo(name="q", type="tensor<float>(x[2])", has_default=True),
])


def _decoded(msg: pb.Tensor) -> dict[tuple[str, ...], list[float]]:
    v = decode_tensor(msg, None, "t")
    assert isinstance(v, MappedTensor)
    return contents(v)


@pytest.mark.parametrize("arg, want", [
    ('user={"a": 1, "b": 2.5}', {("a",): [1.0], ("b",): [2.5]}),
    ('user={"cells": {"a": 1}}', {("a",): [1.0]}),
    ('user={"cells": [{"address": {"cat": "a"}, "value": 3}]}', {("a",): [3.0]}),
    ("user={a:1, b:-2.5e1}", {("a",): [1.0], ("b",): [-25.0]}),
    ("user={{cat:a}:1.0,{cat:'b c'}:2}", {("a",): [1.0], ("b c",): [2.0]}),
    ("user=tensor<float>(cat{}):{x:4}", {("x",): [4.0]}),
    ("user={}", {}),
])
def test_cli_mapped_query_values(arg: str, want: dict[tuple[str, ...], list[float]]) -> None:
    out = query_tensors(PROFILE, parse_query_args([arg]))
    assert out["query(user)"].type == "tensor<float>(cat{})"
    assert _decoded(out["query(user)"]) == want


@pytest.mark.parametrize("arg, want", [
    ('qt={"0": [1, 2], "1": [3, 4]}', {("0",): [1.0, 2.0], ("1",): [3.0, 4.0]}),
    ('qt={"blocks": [{"address": {"qt": "a"}, "values": [5, 6]}]}', {("a",): [5.0, 6.0]}),
    ('qt={"cells": [{"address": {"qt": "a", "x": 1}, "value": 6}]}', {("a",): [0.0, 6.0]}),
    ("qt={0:[1,2], 1:[3,4]}", {("0",): [1.0, 2.0], ("1",): [3.0, 4.0]}),
    ("qt={{qt:a,x:0}:7,{qt:a,x:1}:8}", {("a",): [7.0, 8.0]}),
])
def test_cli_mixed_query_values(arg: str, want: dict[tuple[str, ...], list[float]]) -> None:
    out = query_tensors(PROFILE, {"user": {}, **parse_query_args([arg])})
    assert _decoded(out["query(qt)"]) == want


@pytest.mark.parametrize("values, message", [
    ({"user": {"a": "x"}}, r"query\(user\): tensor<float>\(cat\{\}\): the value at \{cat:a\} is 'x', not a number"),
    ({"user": {"a": float("nan")}}, "NaN"),
    ({"user": [1, 2]}, r"query\(user\): tensor<float>\(cat\{\}\): each cell needs exactly 'address' and 'value'"),
    ({"user": 1.5}, r"query\(user\): tensor<float>\(cat\{\}\) takes a MappedTensor"),
    ({"user": TensorLiteral("{a:1,a:2}", "--query user", "")}, "the label a is given twice"),
    ({"user": TensorLiteral("{{cat:a}:1,{cat:a}:2}", "--query user", "")}, r"the cell \{cat:a\} is given twice"),
    ({"user": TensorLiteral("{a:1", "--query user", "")}, "ends too early"),
    ({"user": TensorLiteral("{a:1}}", "--query user", "")}, "unexpected '}' after the literal"),
    ({"user": TensorLiteral("{{tag:a}:1}", "--query user", "")}, r"the cell address \{tag:a\} names dimension 'tag'"),
    ({"user": TensorLiteral("tensor(tag{}):{a:1}", "--query user", "")}, "the literal has type tensor"),
    ({"user": {}, "qt": {"cells": [{"address": {"qt": "a", "x": 2}, "value": 1}]}}, r"dimension 'x' has label 2 but"),
    ({"user": {}, "qt": {"a": [1, 2, 3]}}, r"query\(qt\): .*: the block \{qt:a\} has 3 cells"),
    ({"user": {}, "q": SPARSE}, r"query\(q\) is tensor<float>\(x\[2\]\), which has no mapped dimensions"),
])
def test_cli_mapped_value_errors(values: dict[str, Any], message: str) -> None:
    with pytest.raises(ClientError, match=message):
        query_tensors(PROFILE, values)


def test_a_literal_for_a_dense_input_is_still_not_json() -> None:
    with pytest.raises(ClientError, match=r"--query q: not valid JSON"):
        query_tensors(PROFILE, {"user": {}, **parse_query_args(["q={a:1}"])})


def test_mapped_match_features_print_as_vespa_json() -> None:
    hit = pb.Hit(id="id:n:d::1", relevance=1.0)
    hit.match_features["f"].CopyFrom(encode_tensor(SPARSE, SPARSE.type))
    out = response_json(pb.RankResponse(hits=[hit]), 1.0)
    assert out["hits"][0]["match_features"]["f"] == {
        "type": "tensor<float>(cat{})",
        "cells": [{"address": {"cat": "sports"}, "value": 0.5}, {"address": {"cat": "news"}, "value": -2.0}]}


# ---------------------------------------------------------------------- the client library


def test_client_conversions() -> None:
    same(tensor_value(tensor_message({"a": 1.0, "b": 2.0}, "tensor<float>(cat{})")),
         MappedTensor(T("tensor<float>(cat{})"), (("a",), ("b",)), np.array([1, 2], np.float32)))
    same(tensor_value(tensor_message({"t0": [1, 2], "t1": np.array([3, 4])}, T("tensor<bfloat16>(dt{},x[2])"))),
         MappedTensor(T("tensor<bfloat16>(dt{},x[2])"), (("t0",), ("t1",)),
                      np.array([[1, 2], [3, 4]], ml_dtypes.bfloat16)))
    two = T("tensor(a{},b{})")
    same(tensor_value(tensor_message({("x", 1): 5.0}, two)), MappedTensor(two, (("x", "1"),), np.array([5.0])))
    same(tensor_value(tensor_message(MIXED, None)), MIXED)
    same(tensor_value(tensor_message(MIXED.as_dict(), MIXED.type)), MIXED)
    dense = tensor_message(np.array([1.0, 2.0]), "tensor<float>(x[2])")
    assert dense.values == struct.pack("<2f", 1, 2) and list(dense.labels) == []
    assert tensor_value(dense).tolist() == [1.0, 2.0]
    assert tensor_value(pb.Tensor(type="string", values="héllo".encode())) == "héllo"


@pytest.mark.parametrize("value, t, message", [
    ({"a": 1.0}, "tensor(a{},b{})", r"^field 'f': tensor\(a\{\},b\{\}\): the short form \{label: ...\}"),
    ({"a": 1.0}, "tensor<float>(dt{},x[2])", r"the block \{dt:a\} must be an array of 2 numbers"),
    ({"a": [1.0]}, "tensor<float>(dt{},x[2])", "2 cells"),
    (SPARSE, "tensor<float>(x[2])", "has no mapped dimensions"),
    ([1.0], None, "give the tensor type"),
    ({"a": 1.0}, "tensor(cat{", "is not a tensor type"),
])
def test_client_conversion_errors(value: Any, t: str | None, message: str) -> None:
    with pytest.raises(ClientError, match=message):
        tensor_message(value, t, "field 'f'")


def test_get_sends_a_stored_mapped_value_with_its_labels() -> None:
    t = T("tensor<float>(dt{},x[3])")
    dense = FieldSpec("v", parse_type("tensor<float>(x[1])"), True)
    doctype = DocType("d", {"dt": FieldSpec("dt", t, True), "v": dense})
    doc = SimpleNamespace(fields={"dt": MIXED, "v": struct.pack("<f", 9)})
    engine = SimpleNamespace(get=lambda doc_id: (doc, doctype))
    state = SimpleNamespace(metrics=Metrics(), max_message_bytes=2**20, require=lambda: engine)
    response = asyncio.run(RankingService(state)._get(pb.GetRequest(id="id:n:d::1")))  # type: ignore[arg-type]
    msg = response.fields["dt"]
    assert (msg.type, list(msg.labels)) == ("tensor<float>(dt{},x[3])", ["0", "7"])
    assert msg.values == struct.pack("<6f", 1, 2, 3, -1, 0.25, 8)
    assert (list(response.fields["v"].labels), response.fields["v"].values) == ([], struct.pack("<f", 9))
