"""Constant, ConstantOfShape, Range, the window functions and the refused random ops.

Generated tensors are constants, so each model also carries a per-document input that
the generated value is combined with: the documents differ, and the constant must meet
the document axis correctly.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

from tensor_ir.ir import Op
from tensor_ir.onnx_import import ModelImportError, import_model
from tests.onnx_import.ort_check import check, docs_of, model_of


def _docs(rng: np.random.Generator, shape: tuple[int, ...], dtype: Any = np.float32) -> list[dict[str, np.ndarray]]:
    return docs_of(rng, lambda r, i: {"x": (r.normal(size=shape) * 10).astype(dtype)})


@pytest.mark.parametrize(
    ("attr", "value", "dtype"),
    [
        ("value", numpy_helper.from_array(np.arange(6, dtype=np.float32).reshape(2, 3)), np.float32),
        ("value", numpy_helper.from_array(np.array([1, -2, 3], dtype=np.int32)), np.int32),
        ("value_float", 2.5, np.float32),
        ("value_floats", [1.0, -0.5, 4.0], np.float32),
        ("value_int", 7, np.int64),
        ("value_ints", [1, 2, -3], np.int64),
    ],
)
def test_constant_forms(rng: np.random.Generator, attr: str, value: Any, dtype: Any) -> None:
    docs = _docs(rng, (2, 3), dtype)
    nodes = [helper.make_node("Constant", [], ["c"], **{attr: value}), helper.make_node("Add", ["x", "c"], ["y"])]
    check(model_of(nodes, docs[0], 13), docs)


def test_constant_sparse_value_is_refused() -> None:
    sparse = helper.make_sparse_tensor(
        helper.make_tensor("v", TensorProto.FLOAT, [2], [1.0, 2.0]),
        helper.make_tensor("i", TensorProto.INT64, [2], [0, 3]),
        [5],
    )
    graph = helper.make_graph([helper.make_node("Constant", [], ["y"], sparse_value=sparse)], "m", [],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [5])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    with pytest.raises(ModelImportError, match="unsupported constant form: sparse_value"):
        import_model(model)


def test_constant_strings_are_refused() -> None:
    graph = helper.make_graph([helper.make_node("Constant", [], ["y"], value_strings=["a", "b"])], "m", [],
                              [helper.make_tensor_value_info("y", TensorProto.STRING, [2])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    with pytest.raises(ModelImportError, match="unsupported constant form: value_strings"):
        import_model(model)


@pytest.mark.parametrize("value", [None, np.array([3], np.int32), np.array([1.5], np.float32)])
def test_constant_of_shape_from_a_shape(rng: np.random.Generator, value: np.ndarray | None) -> None:
    dtype = np.float32 if value is None else value.dtype
    docs = _docs(rng, (2, 3), dtype)
    attrs = {} if value is None else {"value": numpy_helper.from_array(value)}
    nodes = [
        helper.make_node("Shape", ["x"], ["s"]),
        helper.make_node("ConstantOfShape", ["s"], ["c"], **attrs),
        helper.make_node("Mul", ["x", "c"], ["y"]),
        helper.make_node("ConstantOfShape", ["empty"], ["scalar"], **attrs),
    ]
    model = model_of(nodes, docs[0], 20, {"empty": np.zeros((0,), np.int64)}, outputs=["y", "scalar"])
    check(model, docs)


@pytest.mark.parametrize(
    ("start", "limit", "delta"),
    [(0, 10, 3), (10, 4, -2), (5, 5, 1), (3, 0, 1), (0.5, 3.0, 0.7), (1.0, -1.0, -0.25)],
)
@pytest.mark.parametrize("opset", [11, 27])
def test_range(rng: np.random.Generator, start: float, limit: float, delta: float, opset: int) -> None:
    dtype = np.float32 if isinstance(start, float) else np.int64
    docs = _docs(rng, (2,), dtype)
    inits = {k: np.array(v, dtype) for k, v in (("s", start), ("l", limit), ("d", delta))}
    # concatenated rather than added: an empty range still meets per-document data
    nodes = [helper.make_node("Range", ["s", "l", "d"], ["r"]), helper.make_node("Concat", ["x", "r"], ["y"], axis=0)]
    # onnxruntime stops at opset 25 or so; the reference evaluator knows Range-27
    check(model_of(nodes, docs[0], opset, inits), docs, use_reference=opset > 21)


def test_range_float16_accumulates_in_float32() -> None:
    # stash_type=1 (float) is Range-27's default for float16: 2049 is not a float16, so
    # an accumulating float16 loop would stall at 2048
    inits = {k: np.array(v, np.float16) for k, v in (("s", 2040.0), ("l", 2060.0), ("d", 2.0))}
    model = model_of(helper.make_node("Range", ["s", "l", "d"], ["y"]), {}, 27, inits)
    got = import_model(model).program.outputs["y"]
    assert got.op is Op.CONSTANT
    np.testing.assert_array_equal(got.value, np.arange(2040.0, 2060.0, 2.0, dtype=np.float32).astype(np.float16))


def test_range_of_document_values_is_refused() -> None:
    model = model_of(helper.make_node("Range", ["s", "l", "d"], ["y"]),
                     {"s": np.array(0, np.int64), "l": np.array(5, np.int64), "d": np.array(1, np.int64)}, 11)
    with pytest.raises(ModelImportError, match="start must be a constant known at deploy time"):
        import_model(model)


@pytest.mark.parametrize("op", ["HannWindow", "HammingWindow", "BlackmanWindow"])
@pytest.mark.parametrize("periodic", [0, 1])
def test_window_functions_expand_to_constants(rng: np.random.Generator, op: str, periodic: int) -> None:
    docs = _docs(rng, (8,))
    nodes = [helper.make_node(op, ["n"], ["w"], periodic=periodic), helper.make_node("Mul", ["x", "w"], ["y"])]
    model = model_of(nodes, docs[0], 17, {"n": np.array(8, np.int64)})
    assert import_model(model).program.op_histogram() == {"join": 1}
    check(model, docs, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    ("op", "inputs", "attrs"),
    [
        ("RandomNormal", [], {"shape": [2]}),
        ("RandomUniform", [], {"shape": [2]}),
        ("RandomNormalLike", ["x"], {}),
        ("RandomUniformLike", ["x"], {}),
        ("Bernoulli", ["x"], {}),
        ("Multinomial", ["x"], {}),
    ],
)
def test_random_ops_are_refused(op: str, inputs: list[str], attrs: dict[str, Any]) -> None:
    graph = helper.make_graph([helper.make_node(op, inputs, ["y"], **attrs)], "m",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2])],
                              [helper.make_tensor_value_info("y", TensorProto.UNDEFINED, None)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 15)])
    with pytest.raises(ModelImportError, match=f"unsupported op: {op} draws random numbers"):
        import_model(model)
