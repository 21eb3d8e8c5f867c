"""Activation converters against onnxruntime, three documents with different values each."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

from tensor_ir.onnx_import import ModelImportError, import_model
from tests.onnx_import.ort_check import check, docs_of, model_of, run_ours

SHAPE = (3, 7)


def _x(dtype: Any = np.float32, scale: float = 3.0) -> Any:
    def make(rng: np.random.Generator, i: int) -> dict[str, np.ndarray]:
        x = rng.normal(scale=scale, size=SHAPE)
        # extremes where a naive formula overflows, exact zeros, and values near 0
        x[0, :4] = [-60.0, 60.0, 0.0, -1e-4 * (i + 1)]
        return {"x": x.astype(dtype)}

    return make


UNARY_CASES = [
    ("Elu", 6, {"alpha": 0.7}),
    ("Elu", 22, {}),
    ("Selu", 6, {}),
    ("Selu", 22, {"alpha": 1.5, "gamma": 2.0}),
    ("Celu", 12, {"alpha": 1.5}),
    ("LeakyRelu", 6, {"alpha": 0.1}),
    ("LeakyRelu", 16, {}),
    ("ThresholdedRelu", 10, {"alpha": 0.3}),
    ("HardSigmoid", 6, {"alpha": 0.3, "beta": 0.4}),
    ("HardSigmoid", 22, {}),
    ("HardSwish", 14, {}),
    ("Softplus", 13, {}),
    ("Softsign", 13, {}),
    ("Mish", 18, {}),
    ("Gelu", 20, {}),
    ("Gelu", 20, {"approximate": "tanh"}),
    ("Swish", 24, {"alpha": 0.8}),
    ("Shrink", 9, {"lambd": 0.8, "bias": 0.3}),
]


@pytest.mark.parametrize(("op", "opset", "attrs"), UNARY_CASES, ids=lambda v: str(v))
def test_unary_activation_matches_onnxruntime(rng: np.random.Generator, op: str, opset: int,
                                              attrs: dict[str, Any]) -> None:
    docs = docs_of(rng, _x())
    model = model_of(helper.make_node(op, ["x"], ["y"], **attrs), docs[0], opset)
    check(model, docs, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("op", ["Elu", "Celu", "Gelu", "Mish", "Softplus", "HardSwish"])
def test_float16_activations_are_computed_wide_and_rounded_once(rng: np.random.Generator, op: str) -> None:
    docs = docs_of(rng, _x(np.float16, scale=2.0))
    opset = {"Elu": 22, "Celu": 28, "Gelu": 20, "Mish": 22, "Softplus": 22, "HardSwish": 22}[op]
    check(model_of(helper.make_node(op, ["x"], ["y"]), docs[0], opset), docs, rtol=2e-3, atol=1e-3)


def test_shrink_on_integers_truncates_back(rng: np.random.Generator) -> None:
    docs = docs_of(rng, lambda r, i: {"x": r.integers(-6, 7, size=SHAPE).astype(np.int32)})
    model = model_of(helper.make_node("Shrink", ["x"], ["y"], lambd=1.5, bias=0.5), docs[0], 9)
    check(model, docs)


def test_prelu_broadcast_slope(rng: np.random.Generator) -> None:
    docs = docs_of(rng, lambda r, i: {"x": r.normal(size=(2, 3, 4)).astype(np.float32)})
    slope = rng.uniform(0.1, 0.9, size=(3, 1)).astype(np.float32)
    model = model_of(helper.make_node("PRelu", ["x", "slope"], ["y"]), docs[0], 16, {"slope": slope})
    check(model, docs)


def test_prelu_per_document_slope(rng: np.random.Generator) -> None:
    def make(r: np.random.Generator, i: int) -> dict[str, np.ndarray]:
        return {"x": r.normal(size=(2, 4)).astype(np.float32), "slope": r.uniform(0, 1, size=(4,)).astype(np.float32)}

    docs = docs_of(rng, make)
    check(model_of(helper.make_node("PRelu", ["x", "slope"], ["y"]), docs[0], 9), docs)


def test_prelu_before_opset_7_takes_a_channel_slope(rng: np.random.Generator) -> None:
    # onnxruntime has no PRelu-6 kernel: worked out with numpy
    docs = docs_of(rng, lambda r, i: {"x": r.normal(size=(2, 3, 2)).astype(np.float32)})
    slope = np.array([0.1, 0.2, 0.3], dtype=np.float32)
    got = run_ours(model_of(helper.make_node("PRelu", ["x", "slope"], ["y"]), docs[0], 6, {"slope": slope}), docs)
    for i, d in enumerate(docs):
        x = d["x"]
        want = np.where(x < 0, x * slope.reshape(3, 1), x)
        np.testing.assert_allclose(got["y"][i], want, rtol=1e-6)


def test_clip_attributes_before_opset_11(rng: np.random.Generator) -> None:
    docs = docs_of(rng, _x())
    check(model_of(helper.make_node("Clip", ["x"], ["y"], min=-0.5, max=1.25), docs[0], 6), docs)
    # Clip-6 defaults to the float range: no clipping at all
    check(model_of(helper.make_node("Clip", ["x"], ["y"], max=1.25), docs[0], 6), docs)


@pytest.mark.parametrize("bounds", ["both", "min", "max", "none", "min>max"])
def test_clip_constant_bounds(rng: np.random.Generator, bounds: str) -> None:
    docs = docs_of(rng, _x())
    lo, hi = np.array(-0.5, np.float32), np.array(1.25, np.float32)
    if bounds == "min>max":
        lo, hi = hi, lo
    inits = {"lo": lo, "hi": hi}
    names = {"both": ["x", "lo", "hi"], "min": ["x", "lo"], "max": ["x", "", "hi"], "none": ["x"],
             "min>max": ["x", "lo", "hi"]}[bounds]
    check(model_of(helper.make_node("Clip", names, ["y"]), docs[0], 13, inits), docs)


def test_clip_bounds_that_vary_per_document(rng: np.random.Generator) -> None:
    def make(r: np.random.Generator, i: int) -> dict[str, np.ndarray]:
        return {
            "x": r.integers(-20, 20, size=SHAPE).astype(np.int32),
            "lo": np.array(-3 - i, np.int32),
            "hi": np.array(5 + 2 * i, np.int32),
        }

    docs = docs_of(rng, make)
    check(model_of(helper.make_node("Clip", ["x", "lo", "hi"], ["y"]), docs[0], 13), docs)


def test_swiglu_against_the_reference_evaluator(rng: np.random.Generator) -> None:
    # onnxruntime has no SwiGLU kernel yet
    def make(r: np.random.Generator, i: int) -> dict[str, np.ndarray]:
        return {"a": r.normal(scale=3, size=SHAPE).astype(np.float32), "b": r.normal(size=SHAPE).astype(np.float32)}

    docs = docs_of(rng, make)
    model = model_of(helper.make_node("SwiGLU", ["a", "b"], ["y"], alpha=1.3), docs[0], 28)
    check(model, docs, use_reference=True)


def test_unsupported_gelu_approximation_fails_at_import() -> None:
    x = np.zeros(SHAPE, np.float32)
    model = model_of(helper.make_node("Gelu", ["x"], ["y"]), {"x": x}, 20)
    model.graph.node[0].attribute.append(helper.make_attribute("approximate", "sigmoid"))
    with pytest.raises(ModelImportError, match="unsupported approximate='sigmoid'"):
        import_model(model)


def test_float_only_activation_refuses_integers() -> None:
    graph = helper.make_graph(
        [helper.make_node("Elu", ["x"], ["y"])], "m",
        [helper.make_tensor_value_info("x", TensorProto.INT32, [3])],
        [helper.make_tensor_value_info("y", TensorProto.INT32, [3])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    with pytest.raises(ModelImportError, match="needs float cells"):
        import_model(model)


def test_prelu_slope_must_broadcast_to_the_input() -> None:
    x, slope = np.zeros((2, 3, 4), np.float32), np.ones(3, np.float32)
    graph = helper.make_graph(
        [helper.make_node("PRelu", ["x", "slope"], ["y"], name="p")], "m",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(x.shape))],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        initializer=[numpy_helper.from_array(slope, "slope")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 16)])
    with pytest.raises(ModelImportError, match="does not broadcast"):
        import_model(model)
