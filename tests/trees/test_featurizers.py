"""The ai.onnx.ml featurisers against onnxruntime, and ZipMap's refusal."""

from __future__ import annotations

from typing import Any

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from cpu_fallback import NumpyBackend
from tensor_ir.onnx_import import ModelImportError, import_model
from tests.trees.test_onnx_trees import ours

ort = pytest.importorskip("onnxruntime")


def model(op: str, inputs: list[tuple[str, int, list[int]]], out_type: int = TensorProto.FLOAT,
          **attrs: Any) -> onnx.ModelProto:
    node = helper.make_node(op, [n for n, _, _ in inputs], ["Y"], domain="ai.onnx.ml", name=f"the_{op}", **attrs)
    graph = helper.make_graph([node], op, [helper.make_tensor_value_info(n, t, s) for n, t, s in inputs],
                              [helper.make_tensor_value_info("Y", out_type, None)])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("ai.onnx.ml", 3)],
                             ir_version=9)


def run_ort(m: onnx.ModelProto, x: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    sess = ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"])
    out: np.ndarray[Any, Any] = sess.run(None, {"X": x})[0]
    return out


CASES = [
    ("Scaler", {"offset": [0.5, -1.0, 2.0], "scale": [2.0, 0.5, -1.0]}),
    ("Scaler", {"offset": [1.0], "scale": [3.0]}),
    ("Imputer", {"imputed_value_floats": [9.0, 8.0, 7.0], "replaced_value_float": float("nan")}),
    ("Imputer", {"imputed_value_floats": [5.0], "replaced_value_float": 0.0}),
    ("LinearRegressor", {"coefficients": [1.0, -2.0, 0.5, 0.25, 3.0, -1.0], "intercepts": [0.5, -0.5], "targets": 2}),
    ("Binarizer", {"threshold": 0.25}),
]


@pytest.mark.parametrize("op,attrs", CASES, ids=[f"{c[0]}{i}" for i, c in enumerate(CASES)])
def test_featurizer_matches_onnxruntime(op: str, attrs: dict[str, Any], rng: np.random.Generator) -> None:
    x = rng.choice(np.array([0.0, 0.25, 1.0, -2.0, 0.7, 3.0]), size=(8, 3)).astype(np.float32)
    if op == "Imputer":
        x[rng.random(x.shape) < 0.3] = np.nan
    m = model(op, [("X", TensorProto.FLOAT, [8, 3])], **attrs)
    got = ours(m, x)
    np.testing.assert_allclose(got, run_ort(m, x).reshape(8, -1), rtol=1e-6, atol=1e-6)


def test_feature_vectorizer_pads_and_cuts(rng: np.random.Generator) -> None:
    a = rng.normal(size=(4, 3)).astype(np.float32)
    b = rng.normal(size=(4, 1)).astype(np.float32)
    node = helper.make_node("FeatureVectorizer", ["A", "B"], ["Y"], domain="ai.onnx.ml", inputdimensions=[2, 3])
    graph = helper.make_graph([node], "fv", [helper.make_tensor_value_info("A", TensorProto.FLOAT, [4, 3]),
                                             helper.make_tensor_value_info("B", TensorProto.FLOAT, [4, 1])],
                              [helper.make_tensor_value_info("Y", TensorProto.FLOAT, None)])
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("ai.onnx.ml", 1)],
                          ir_version=9)
    sess = ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"])
    want = sess.run(None, {"A": a, "B": b})[0]
    imported = import_model(m, name="fv.onnx")
    got = NumpyBackend().compile(imported.program).run({"A": a[None], "B": b[None]}, 1)["Y"][0]
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(got, np.concatenate([a[:, :2], b, np.zeros((4, 2), np.float32)], axis=1))


def test_zipmap_is_refused_saying_how_to_convert() -> None:
    node = helper.make_node("ZipMap", ["X"], ["Y"], domain="ai.onnx.ml", classlabels_int64s=[0, 1], name="zm")
    seq = helper.make_sequence_type_proto(helper.make_map_type_proto(TensorProto.INT64,
                                                                     helper.make_tensor_type_proto(1, [])))
    graph = helper.make_graph([node], "z", [helper.make_tensor_value_info("X", TensorProto.FLOAT, [2, 2])],
                              [helper.make_value_info("Y", seq)])
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("ai.onnx.ml", 1)],
                          ir_version=9)
    with pytest.raises(ModelImportError, match="zipmap=False") as e:
        import_model(m, name="classifier.onnx")
    assert "zm" in str(e.value) and "classifier.onnx" in str(e.value)


@pytest.mark.parametrize("norm", ["MAX", "L1", "L2"])
def test_normalizer_matches_onnxruntime(norm: str) -> None:
    """MAX divides by max(x), as the spec writes it (negative rows flip sign); a zero row stays 0."""
    x = np.array([[-3, -1, -2], [0, 0, 0], [1, -4, 2], [0.5, 0.25, 0]], np.float32)
    m = model("Normalizer", [("X", TensorProto.FLOAT, [4, 3])], norm=norm)
    got = ours(m, x)
    np.testing.assert_allclose(got, run_ort(m, x), rtol=1e-6, atol=1e-7)
    if norm == "MAX":
        np.testing.assert_allclose(got[0], [3.0, 1.0, 2.0])


def test_one_hot_encoder_matches_onnxruntime() -> None:
    x = np.array([[1, 4], [5, 3]], np.int64)
    m = model("OneHotEncoder", [("X", TensorProto.INT64, [2, 2])], cats_int64s=[1, 3, 5], zeros=1)
    got = ours(m, x)
    np.testing.assert_array_equal(got, run_ort(m, x).reshape(2, -1))


@pytest.mark.parametrize("kind", ["attributes", "tensors"])
def test_label_encoder_on_numbers_matches_onnxruntime(kind: str) -> None:
    x = np.array([[1, 7, 3], [2, 3, 9]], np.int64)
    if kind == "attributes":
        node = helper.make_node("LabelEncoder", ["X"], ["Y"], domain="ai.onnx.ml", keys_int64s=[1, 2, 3],
                                values_floats=[0.5, -1.0, 2.5], default_float=-7.0)
        opset, out = 2, TensorProto.FLOAT
    else:
        node = helper.make_node("LabelEncoder", ["X"], ["Y"], domain="ai.onnx.ml",
                                keys_tensor=numpy_helper.from_array(np.array([3, 9], np.int64)),
                                values_tensor=numpy_helper.from_array(np.array([30, 90], np.int64)),
                                default_tensor=numpy_helper.from_array(np.array([-1], np.int64)))
        opset, out = 4, TensorProto.INT64
    graph = helper.make_graph([node], "le", [helper.make_tensor_value_info("X", TensorProto.INT64, [2, 3])],
                              [helper.make_tensor_value_info("Y", out, None)])
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("ai.onnx.ml", opset)],
                          ir_version=9)
    np.testing.assert_array_equal(ours(m, x).reshape(2, 3), run_ort(m, x))
