"""Softmax family, normalizations and Dropout against onnxruntime (or onnx's reference
evaluator where onnxruntime lacks a kernel), three documents with different values each."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from onnx import helper

from tensor_ir.onnx_import import ModelImportError, import_model
from tests.onnx_import.ort_check import check, docs_of, model_of, run_ours


def _x(shape: tuple[int, ...], scale: float = 2.0, dtype: Any = np.float32) -> Any:
    def make(rng: np.random.Generator, i: int) -> dict[str, np.ndarray]:
        return {"x": (rng.normal(size=shape) * scale + i).astype(dtype)}

    return make


# ---------------------------------------------------------------- softmax family


@pytest.mark.parametrize("op", ["Softmax", "LogSoftmax", "Hardmax"])
@pytest.mark.parametrize(("opset", "axis"), [(11, None), (11, 1), (11, 0), (11, -1), (13, None), (13, 1),
                                             (13, 0), (1, 2)])
def test_softmax_family(rng: np.random.Generator, op: str, opset: int, axis: int | None) -> None:
    # opset < 13 softmaxes over every axis from `axis` on (the input coerced to 2-D)
    docs = docs_of(rng, _x((2, 3, 4), scale=3.0))
    attrs = {} if axis is None else {"axis": axis}
    check(model_of(helper.make_node(op, ["x"], ["y"], **attrs), docs[0], opset), docs, atol=1e-6)


def test_softmax_large_values_and_float16(rng: np.random.Generator) -> None:
    docs = docs_of(rng, lambda r, i: {"x": np.array([[1000.0, 1001.0 + i, -1000.0], [0.0, -1e4, 3.0]], np.float32)})
    check(model_of(helper.make_node("Softmax", ["x"], ["y"]), docs[0], 13), docs)
    check(model_of(helper.make_node("LogSoftmax", ["x"], ["y"]), docs[0], 13), docs)
    docs = docs_of(rng, _x((3, 5), dtype=np.float16))
    check(model_of(helper.make_node("Softmax", ["x"], ["y"]), docs[0], 13), docs, rtol=2e-3, atol=1e-3)


def test_hardmax_ties_pick_the_first(rng: np.random.Generator) -> None:
    docs = docs_of(rng, lambda r, i: {"x": np.array([[1, 3, 3, 0], [2, 2, 2, 2], [i, 0, 0, i]], np.float32)})
    check(model_of(helper.make_node("Hardmax", ["x"], ["y"]), docs[0], 13), docs)
    # coerced to 2-D over both axes: one 1 in the whole matrix
    check(model_of(helper.make_node("Hardmax", ["x"], ["y"], axis=0), docs[0], 11), docs)


# ---------------------------------------------------------------- layer-style normalizations


@pytest.mark.parametrize(("axis", "with_bias"), [(-1, True), (1, True), (0, False), (2, False)])
def test_layer_normalization_all_outputs(rng: np.random.Generator, axis: int, with_bias: bool) -> None:
    shape = (2, 3, 4)
    docs = docs_of(rng, _x(shape))
    norm = shape[axis % 3:]
    inits = {"s": rng.normal(size=norm).astype(np.float32)}
    if with_bias:
        inits["b"] = rng.normal(size=norm[-1:]).astype(np.float32)  # broadcast from the right
    node = helper.make_node("LayerNormalization", ["x", "s"] + (["b"] if with_bias else []), ["y", "mean", "inv"],
                            axis=axis, epsilon=1e-3)
    check(model_of(node, docs[0], 17, inits, outputs=("y", "mean", "inv")), docs, atol=1e-5)


def test_layer_normalization_float16_in_float32(rng: np.random.Generator) -> None:
    docs = docs_of(rng, _x((2, 8), dtype=np.float16))
    inits = {"s": np.full((8,), 1.5, np.float16), "b": np.full((8,), 0.25, np.float16)}
    node = helper.make_node("LayerNormalization", ["x", "s", "b"], ["y"])
    check(model_of(node, docs[0], 17, inits), docs, rtol=2e-3, atol=2e-3)


def test_rms_normalization(rng: np.random.Generator) -> None:
    docs = docs_of(rng, _x((2, 3, 4)))
    node = helper.make_node("RMSNormalization", ["x", "s"], ["y"], axis=1, epsilon=1e-4)
    model = model_of(node, docs[0], 23, {"s": rng.normal(size=(3, 4)).astype(np.float32)})
    check(model, docs, atol=1e-5, use_reference=True)


@pytest.mark.parametrize("opset", [9, 15])
def test_batch_normalization(rng: np.random.Generator, opset: int) -> None:
    docs = docs_of(rng, _x((2, 3, 4, 5)))
    inits = {"s": rng.normal(size=3), "b": rng.normal(size=3), "m": rng.normal(size=3),
             "v": rng.uniform(0.5, 2.0, size=3)}
    inits = {k: v.astype(np.float32) for k, v in inits.items()}
    node = helper.make_node("BatchNormalization", ["x", "s", "b", "m", "v"], ["y"], epsilon=1e-3)
    check(model_of(node, docs[0], opset, inits), docs, atol=1e-5)


def test_batch_normalization_with_per_document_statistics(rng: np.random.Generator) -> None:
    def make(r: np.random.Generator, i: int) -> dict[str, np.ndarray]:
        return {"x": r.normal(size=(1, 2, 3)).astype(np.float32), "m": r.normal(size=2).astype(np.float32),
                "v": r.uniform(0.5, 2, size=2).astype(np.float32)}

    docs = docs_of(rng, make)
    inits = {"s": np.array([1.5, -0.5], np.float32), "b": np.array([0.1, 0.2], np.float32)}
    node = helper.make_node("BatchNormalization", ["x", "s", "b", "m", "v"], ["y"])
    check(model_of(node, docs[0], 15, inits), docs, atol=1e-5)


def test_batch_normalization_training_is_refused() -> None:
    x = np.zeros((1, 2, 3), np.float32)
    p = np.ones(2, np.float32)
    node = helper.make_node("BatchNormalization", ["x", "s", "b", "m", "v"], ["y", "rm", "rv"], training_mode=1)
    model = model_of(node, {"x": x}, 15, {"s": p, "b": p, "m": p, "v": p}, outputs=("y", "rm", "rv"))
    with pytest.raises(ModelImportError, match="training_mode=1"):
        import_model(model)


def test_instance_normalization(rng: np.random.Generator) -> None:
    docs = docs_of(rng, _x((2, 3, 4, 2)))
    inits = {"s": rng.normal(size=3).astype(np.float32), "b": rng.normal(size=3).astype(np.float32)}
    node = helper.make_node("InstanceNormalization", ["x", "s", "b"], ["y"], epsilon=1e-3)
    check(model_of(node, docs[0], 6, inits), docs, atol=1e-5)


@pytest.mark.parametrize("opset", [18, 21])
def test_group_normalization(rng: np.random.Generator, opset: int) -> None:
    docs = docs_of(rng, _x((2, 6, 3)))
    n = 3 if opset == 18 else 6  # opset 18: per-group scale and bias; 21: per channel
    inits = {"s": rng.normal(size=n).astype(np.float32), "b": rng.normal(size=n).astype(np.float32)}
    node = helper.make_node("GroupNormalization", ["x", "s", "b"], ["y"], num_groups=3, epsilon=1e-3)
    check(model_of(node, docs[0], opset, inits), docs, atol=1e-5, use_reference=True)


@pytest.mark.parametrize("p", [1, 2])
@pytest.mark.parametrize("axis", [0, -1])
def test_lp_normalization(rng: np.random.Generator, p: int, axis: int) -> None:
    def make(r: np.random.Generator, i: int) -> dict[str, np.ndarray]:
        x = r.normal(size=(3, 4)).astype(np.float32)
        x[1, :] = 0  # a zero row: its norm is 0
        return {"x": x}

    docs = docs_of(rng, make)
    check(model_of(helper.make_node("LpNormalization", ["x"], ["y"], p=p, axis=axis), docs[0], 1), docs)


def test_mean_variance_normalization(rng: np.random.Generator) -> None:
    docs = docs_of(rng, _x((2, 3, 4, 2)))
    # (onnx's strict shape inference needs the axes spelled out)
    node = helper.make_node("MeanVarianceNormalization", ["x"], ["y"], axes=[0, 2, 3])
    check(model_of(node, docs[0], 13), docs, atol=1e-5)
    node = helper.make_node("MeanVarianceNormalization", ["x"], ["y"], axes=[1, 3])
    check(model_of(node, docs[0], 9), docs, atol=1e-5)


@pytest.mark.parametrize("size", [1, 3, 4, 11, 12])
def test_lrn(rng: np.random.Generator, size: int) -> None:
    docs = docs_of(rng, _x((2, 14, 3, 2)))
    node = helper.make_node("LRN", ["x"], ["y"], size=size, alpha=0.01, beta=0.6, bias=1.5)
    model = model_of(node, docs[0], 13)
    if size % 2:
        check(model, docs, atol=1e-6)
        return
    # onnxruntime refuses even sizes (and the reference evaluator loops over the batch, not
    # the channels): onnx's formula worked out with numpy, the longer half of the window after c
    got = run_ours(model, docs)["y"]
    lo, hi = (size - 1) // 2, -(-(size - 1) // 2)
    for i, d in enumerate(docs):
        x = d["x"].astype(np.float64)
        sq = np.stack([np.sum(x[:, max(0, c - lo):c + hi + 1] ** 2, axis=1) for c in range(x.shape[1])], axis=1)
        want = x / (1.5 + 0.01 / size * sq) ** 0.6
        np.testing.assert_allclose(got[i], want, rtol=1e-5, atol=1e-6)


# ---------------------------------------------------------------- Dropout


@pytest.mark.parametrize("opset", [7, 10, 13])
def test_dropout_is_identity_at_inference(rng: np.random.Generator, opset: int) -> None:
    docs = docs_of(rng, _x((3, 4)))
    node = helper.make_node("Dropout", ["x"], ["y", "mask"], **({"ratio": 0.3} if opset < 12 else {}))
    model = model_of(node, docs[0], opset, outputs=("y", "mask"))
    if opset < 10:
        # onnxruntime has no Dropout-7 mask in float: worked out by hand
        got = run_ours(model, docs)
        for i, d in enumerate(docs):
            np.testing.assert_array_equal(got["y"][i], d["x"])
            np.testing.assert_array_equal(got["mask"][i], np.ones((3, 4), np.float32))
        return
    # onnxruntime's Dropout-10 fills the mask with False; onnx (reference, opset 12 on) says True
    check(model, docs, use_reference=opset < 12)


def test_dropout_training_mode_inputs(rng: np.random.Generator) -> None:
    docs = docs_of(rng, _x((3, 4)))
    node = helper.make_node("Dropout", ["x", "r", "t"], ["y", "mask"])
    off = {"r": np.array(0.4, np.float32), "t": np.array(False)}
    check(model_of(node, docs[0], 13, off, outputs=("y", "mask")), docs)
    # training with ratio 0 keeps everything: deterministic, so supported
    zero = {"r": np.array(0.0, np.float32), "t": np.array(True)}
    check(model_of(node, docs[0], 13, zero, outputs=("y", "mask")), docs)
    random = {"r": np.array(0.4, np.float32), "t": np.array(True)}
    with pytest.raises(ModelImportError, match="training_mode=True"):
        import_model(model_of(node, docs[0], 13, random, outputs=("y", "mask")))


def test_layer_normalization_double_keeps_double_precision(rng: np.random.Generator) -> None:
    docs = docs_of(rng, lambda r, i: {"x": (r.normal(size=(2, 6)) * 1e-3 + 1e4).astype(np.float64)})
    inits = {"s": np.ones(6, np.float64)}
    model = model_of(helper.make_node("LayerNormalization", ["x", "s"], ["y"]), docs[0], 17, inits)
    got = run_ours(model, docs)["y"]
    for i, d in enumerate(docs):
        x = d["x"]
        want = (x - x.mean(-1, keepdims=True)) / np.sqrt(x.var(-1, keepdims=True) + 1e-5)
        np.testing.assert_allclose(got[i], want, rtol=1e-6, atol=1e-6)
