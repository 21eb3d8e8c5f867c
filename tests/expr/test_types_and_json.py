"""Vespa tensor type strings and Vespa's JSON forms of tensor values."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from tensor_ir.dtypes import CellType
from tensor_ir.expr.tensor_json import TensorValueError, tensor_from_json
from tensor_ir.expr.types import TypeSyntaxError, parse_type


@pytest.mark.parametrize(("text", "cell", "dims", "canonical"), [
    ("tensor<float>(y[2],x[3])", CellType.FLOAT32, (("x", 3), ("y", 2)), "tensor<float>(x[3],y[2])"),
    ("tensor(x[1])", CellType.FLOAT64, (("x", 1),), "tensor(x[1])"),
    ("tensor<double>(d0[1], d1[784])", CellType.FLOAT64, (("d0", 1), ("d1", 784)), "tensor(d0[1],d1[784])"),
    ("  tensor < bfloat16 > ( a [ 4 ] )", CellType.BFLOAT16, (("a", 4),), "tensor<bfloat16>(a[4])"),
    ("tensor<int8>(x[8])", CellType.INT8, (("x", 8),), "tensor<int8>(x[8])"),
    ("double", CellType.FLOAT64, (), "double"),
    ("float", CellType.FLOAT32, (), "float"),
    ("tensor()", CellType.FLOAT64, (), "double"),
])
def test_parse_type(text: str, cell: CellType, dims: tuple[tuple[str, int], ...], canonical: str) -> None:
    t = parse_type(text)
    assert (t.cell, t.dims, str(t)) == (cell, dims, canonical)


@pytest.mark.parametrize(("text", "message"), [
    ("tensor<float>(x{})", "mapped dimension 'x{}' is not supported"),
    ("tensor(x[])", "indexed dimension 'x[]' needs a size"),
    ("tensor(x[0])", "must have a positive size"),
    ("tensor<int>(x[2])", "unknown Vespa cell type 'int'"),
    ("tensor(x[2],x[3])", "dimension names repeat"),
    ("tensor(x[2]", "is not a tensor type"),
    ("matrix(x[2])", "is not a tensor type"),
    ("tensor(2[x])", "'2[x]' is not a dimension"),
])
def test_bad_types(text: str, message: str) -> None:
    with pytest.raises(TypeSyntaxError, match=message.replace("[", r"\[").replace("{", r"\{")):
        parse_type(text)


X2Y2 = parse_type("tensor<float>(x[2],y[2])")


@pytest.mark.parametrize(("value", "want"), [
    ({"values": [1, 2, 3, 4]}, [[1, 2], [3, 4]]),
    ({"values": [[1, 2], [3, 4]]}, [[1, 2], [3, 4]]),
    ([[1, 2], [3, 4]], [[1, 2], [3, 4]]),
    ({"type": "tensor<float>(y[2],x[2])", "values": [1, 2, 3, 4]}, [[1, 2], [3, 4]]),
    # hex: big-endian cells, as Vespa writes them: 3f800000 is 1.0f, c0000000 is -2.0f
    ({"values": "3f800000c00000000000000040400000"}, [[1, -2], [0, 3]]),
    ({"cells": [{"address": {"x": "1", "y": "0"}, "value": 5}, {"address": {"x": 0, "y": 1}, "value": -1}]},
     [[0, -1], [5, 0]]),
])
def test_tensor_json_forms(value: Any, want: Any) -> None:
    got = tensor_from_json(value, X2Y2)
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, np.asarray(want, dtype=np.float32))


def test_scalar_and_narrow_cells() -> None:
    assert tensor_from_json(2.5, parse_type("double")).tolist() == 2.5
    b = tensor_from_json({"values": "3f80c000"}, parse_type("tensor<bfloat16>(x[2])"))
    assert b.astype(np.float32).tolist() == [1.0, -2.0]
    i = tensor_from_json([127, -128], parse_type("tensor<int8>(x[2])"))
    assert i.dtype == np.int8 and i.tolist() == [127, -128]


@pytest.mark.parametrize(("value", "type_", "message"), [
    ({"values": [1, 2, 3]}, "tensor<float>(x[2],y[2])", "has 4 cells (shape [2, 2]) but the value has shape [3]"),
    ({"values": [[1, 2, 3], [4]]}, "tensor<float>(x[2],y[2])", "nested arrays must be rectangular"),
    ({"type": "tensor(x[4])", "values": [1, 2, 3, 4]}, "tensor<float>(x[2],y[2])", "value has type tensor(x[4])"),
    ({"values": [1, float("nan")]}, "tensor(x[2])", "NaN or infinity is not allowed"),
    ({"values": "3f80"}, "tensor<float>(x[2])", "hex string has 4 digits; tensor<float>(x[2]) needs 16"),
    ({"values": "zz800000"}, "tensor<float>(x[1])", "not a valid hex string"),
    ([300], "tensor<int8>(x[1])", "does not fit cell type int8"),
    ([1.5], "tensor<int8>(x[1])", "needs whole numbers"),
    ([1e39], "tensor<float>(x[1])", "does not fit cell type float"),
    ({"cells": [{"address": {"x": "2"}, "value": 1}]}, "tensor(x[2])", "cell index x:2 is outside 0..1"),
    ({"cells": [{"address": {"y": "0"}, "value": 1}]}, "tensor(x[2])", "must name exactly the dimensions ['x']"),
    ({"cells": [{"address": {"x": "a"}, "value": 1}]}, "tensor(x[2])", "label 'a' of 'x' is not an index"),
    ({"cells": [{"address": {"x": "0"}, "value": "1"}]}, "tensor(x[2])", "cell value '1' is not a number"),
    ({"cells": [{"address": {"x": "0"}}]}, "tensor(x[2])", "each cell needs 'address' and 'value'"),
    ({"blocks": []}, "tensor(x[2])", "'blocks' (mixed tensors) are not supported"),
    ({"other": 1}, "tensor(x[2])", "expected 'values' or 'cells'"),
    (3.0, "tensor(x[2])", "got a number"),
    (True, "double", "got a boolean"),
    ("text", "double", "in Vespa's JSON form"),
])
def test_bad_tensor_json(value: Any, type_: str, message: str) -> None:
    with pytest.raises(TensorValueError) as err:
        tensor_from_json(value, parse_type(type_))
    assert message in str(err.value)
