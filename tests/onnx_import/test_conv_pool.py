"""Convolution and pooling against onnxruntime (or onnx's reference evaluator where
onnxruntime lacks a kernel), three documents with different values each."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from onnx import helper

from tensor_ir.onnx_import import ModelImportError, import_model
from tests.onnx_import.ort_check import check, docs_of, model_of
from tests.onnx_import.test_linalg import check_with_query_input


def _x(shape: tuple[int, ...], dtype: Any = np.float32) -> Any:
    def make(rng: np.random.Generator, i: int) -> dict[str, np.ndarray]:
        return {"x": rng.normal(size=shape).astype(dtype)}

    return make


# ---------------------------------------------------------------- Conv

CONV_CASES: list[tuple[tuple[int, ...], tuple[int, ...], dict[str, Any]]] = [
    ((1, 2, 7), (3, 2, 3), {}),
    ((1, 2, 7), (3, 2, 3), {"strides": [2], "pads": [1, 2], "dilations": [2]}),
    ((2, 3, 6, 5), (4, 3, 3, 3), {"pads": [1, 1, 1, 1]}),
    ((1, 3, 7, 6), (4, 3, 3, 2), {"strides": [2, 3], "pads": [1, 0, 2, 1]}),
    ((1, 3, 7, 6), (4, 3, 3, 3), {"auto_pad": "SAME_UPPER", "strides": [2, 2]}),
    ((1, 3, 7, 6), (4, 3, 2, 3), {"auto_pad": "SAME_LOWER", "strides": [2, 1]}),
    ((1, 3, 7, 6), (4, 3, 3, 3), {"auto_pad": "VALID", "dilations": [2, 1]}),
    ((1, 4, 5, 5), (6, 2, 3, 3), {"group": 2, "pads": [1, 1, 1, 1]}),
    ((1, 4, 5, 5), (4, 1, 3, 3), {"group": 4, "strides": [2, 2]}),  # depthwise
    ((1, 3, 5, 4), (2, 3, 1, 1), {}),  # pointwise
    ((1, 3, 6, 6), (2, 3, 1, 1), {"strides": [2, 2]}),
    ((1, 2, 4, 5, 3), (3, 2, 2, 3, 2), {"pads": [1, 0, 1, 0, 1, 1], "strides": [1, 2, 1]}),
]


@pytest.mark.parametrize(("xs", "ws", "attrs"), CONV_CASES, ids=str)
@pytest.mark.parametrize("bias", [False, True])
def test_conv(rng: np.random.Generator, xs: tuple[int, ...], ws: tuple[int, ...], attrs: dict[str, Any],
              bias: bool) -> None:
    docs = docs_of(rng, _x(xs))
    inits = {"w": rng.normal(size=ws).astype(np.float32)}
    if bias:
        inits["b"] = rng.normal(size=ws[0]).astype(np.float32)
    node = helper.make_node("Conv", ["x", "w"] + (["b"] if bias else []), ["y"], **attrs)
    check(model_of(node, docs[0], 11, inits), docs, rtol=1e-4, atol=1e-5)


def test_conv_with_per_document_and_query_weights(rng: np.random.Generator) -> None:
    def make(r: np.random.Generator, i: int) -> dict[str, np.ndarray]:
        return {"x": r.normal(size=(1, 2, 5, 5)).astype(np.float32),
                "w": r.normal(size=(3, 2, 3, 3)).astype(np.float32)}

    docs = docs_of(rng, make)
    node = helper.make_node("Conv", ["x", "w"], ["y"], pads=[1, 1, 1, 1], strides=[2, 1])
    check(model_of(node, docs[0], 11), docs, rtol=1e-4, atol=1e-5)
    w = docs[0]["w"]
    check_with_query_input(model_of(node, docs[0], 11), [{"x": d["x"]} for d in docs], {"w": w}, rtol=1e-4)


def test_conv_node_count_does_not_grow_with_the_kernel() -> None:
    x = np.zeros((1, 2, 20, 20), np.float32)
    small = model_of(helper.make_node("Conv", ["x", "w"], ["y"]), {"x": x}, 11,
                     {"w": np.ones((2, 2, 3, 3), np.float32)})
    big = model_of(helper.make_node("Conv", ["x", "w"], ["y"]), {"x": x}, 11, {"w": np.ones((2, 2, 9, 9), np.float32)})
    assert import_model(small).program.size() == import_model(big).program.size() <= 8


def test_conv_bad_group_is_refused() -> None:
    x = np.zeros((1, 3, 4, 4), np.float32)
    model = model_of(helper.make_node("Conv", ["x", "w"], ["y"], group=1), {"x": x}, 11,
                     {"w": np.ones((2, 3, 2, 2), np.float32)})
    model.graph.node[0].attribute[0].i = 2
    with pytest.raises(ModelImportError, match="group=2"):
        import_model(model)


# ---------------------------------------------------------------- ConvTranspose

CONV_T_CASES: list[tuple[tuple[int, ...], tuple[int, ...], dict[str, Any]]] = [
    ((1, 2, 4), (2, 3, 3), {}),
    ((1, 2, 4), (2, 3, 3), {"strides": [2], "pads": [1, 0], "output_padding": [1]}),
    ((1, 2, 3, 4), (2, 3, 3, 2), {"strides": [2, 3]}),
    ((2, 2, 3, 3), (2, 1, 3, 3), {"strides": [2, 2], "pads": [1, 1, 1, 1], "output_padding": [1, 1]}),
    ((1, 2, 3, 3), (2, 2, 2, 2), {"dilations": [2, 2], "strides": [1, 2]}),
    ((1, 4, 3, 3), (4, 2, 3, 3), {"group": 2, "strides": [2, 1]}),
    ((1, 2, 3, 3), (2, 2, 3, 3), {"strides": [3, 2], "output_shape": [10, 8]}),
    ((1, 2, 3, 3), (2, 2, 3, 3), {"strides": [2, 2], "pads": [2, 2, 2, 2]}),  # pads > kernel - 1: a crop
    ((1, 1, 2, 2, 3), (1, 2, 2, 2, 2), {"strides": [2, 1, 2]}),
]


@pytest.mark.parametrize(("xs", "ws", "attrs"), CONV_T_CASES, ids=str)
def test_conv_transpose(rng: np.random.Generator, xs: tuple[int, ...], ws: tuple[int, ...],
                        attrs: dict[str, Any]) -> None:
    docs = docs_of(rng, _x(xs))
    groups = attrs.get("group", 1)
    inits = {"w": rng.normal(size=ws).astype(np.float32), "b": rng.normal(size=ws[1] * groups).astype(np.float32)}
    node = helper.make_node("ConvTranspose", ["x", "w", "b"], ["y"], **attrs)
    check(model_of(node, docs[0], 11, inits), docs, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("auto_pad", ["SAME_UPPER", "SAME_LOWER"])
def test_conv_transpose_same_padding(rng: np.random.Generator, auto_pad: str) -> None:
    # the output is input * stride; SAME_UPPER puts the smaller half of the padding first
    docs = docs_of(rng, _x((1, 1, 3, 3)))
    node = helper.make_node("ConvTranspose", ["x", "w"], ["y"], auto_pad=auto_pad, strides=[2, 2])
    model = model_of(node, docs[0], 11, {"w": rng.normal(size=(1, 2, 3, 3)).astype(np.float32)})
    check(model, docs, rtol=1e-5, atol=1e-5)


# ---------------------------------------------------------------- pooling

POOL_CASES: list[tuple[tuple[int, ...], dict[str, Any]]] = [
    ((1, 2, 9), {"kernel_shape": [3]}),
    ((1, 2, 9), {"kernel_shape": [3], "strides": [2], "pads": [1, 1]}),
    ((2, 3, 6, 7), {"kernel_shape": [2, 2], "strides": [2, 2]}),
    ((1, 2, 7, 7), {"kernel_shape": [3, 3], "strides": [2, 2], "pads": [1, 1, 1, 1]}),
    ((1, 2, 7, 6), {"kernel_shape": [3, 2], "strides": [2, 2], "ceil_mode": 1}),
    ((1, 2, 6, 6), {"kernel_shape": [3, 3], "strides": [3, 3], "pads": [1, 1, 1, 1], "ceil_mode": 1}),
    ((1, 2, 7, 7), {"kernel_shape": [3, 3], "auto_pad": "SAME_UPPER", "strides": [2, 2]}),
    ((1, 2, 7, 7), {"kernel_shape": [2, 3], "auto_pad": "SAME_LOWER"}),
    ((1, 2, 7, 7), {"kernel_shape": [3, 3], "auto_pad": "VALID", "strides": [2, 1]}),
    ((1, 2, 8, 8), {"kernel_shape": [2, 2], "dilations": [2, 2]}),
    ((1, 1, 5, 5, 4), {"kernel_shape": [2, 3, 2], "strides": [1, 2, 2], "pads": [0, 1, 1, 1, 1, 0]}),
]


@pytest.mark.parametrize(("xs", "attrs"), POOL_CASES, ids=str)
def test_max_pool(rng: np.random.Generator, xs: tuple[int, ...], attrs: dict[str, Any]) -> None:
    docs = docs_of(rng, _x(xs))
    check(model_of(helper.make_node("MaxPool", ["x"], ["y"], **attrs), docs[0], 12), docs)


@pytest.mark.parametrize(("xs", "attrs"), POOL_CASES, ids=str)
@pytest.mark.parametrize("storage_order", [0, 1])
def test_max_pool_indices(rng: np.random.Generator, xs: tuple[int, ...], attrs: dict[str, Any],
                          storage_order: int) -> None:
    docs = docs_of(rng, _x(xs))
    node = helper.make_node("MaxPool", ["x"], ["y", "i"], storage_order=storage_order, **attrs)
    check(model_of(node, docs[0], 12, outputs=("y", "i")), docs)


def test_max_pool_integers(rng: np.random.Generator) -> None:
    docs = docs_of(rng, lambda r, i: {"x": r.integers(0, 256, (1, 2, 5, 5)).astype(np.uint8)})
    node = helper.make_node("MaxPool", ["x"], ["y"], kernel_shape=[3, 3], pads=[1, 1, 1, 1])
    check(model_of(node, docs[0], 12), docs)


@pytest.mark.parametrize(("xs", "attrs"), POOL_CASES, ids=str)
@pytest.mark.parametrize("include_pad", [0, 1])
def test_average_pool(rng: np.random.Generator, xs: tuple[int, ...], attrs: dict[str, Any],
                      include_pad: int) -> None:
    docs = docs_of(rng, _x(xs))
    node = helper.make_node("AveragePool", ["x"], ["y"], count_include_pad=include_pad, **attrs)
    check(model_of(node, docs[0], 19), docs, atol=1e-6)


@pytest.mark.parametrize("p", [1, 2, 3])
@pytest.mark.parametrize(("xs", "attrs"), [POOL_CASES[1], POOL_CASES[3], POOL_CASES[6]], ids=str)
def test_lp_pool(rng: np.random.Generator, p: int, xs: tuple[int, ...], attrs: dict[str, Any]) -> None:
    docs = docs_of(rng, _x(xs))
    check(model_of(helper.make_node("LpPool", ["x"], ["y"], p=p, **attrs), docs[0], 11), docs, atol=1e-5)


@pytest.mark.parametrize("op", ["GlobalAveragePool", "GlobalMaxPool", "GlobalLpPool"])
@pytest.mark.parametrize("xs", [(1, 3, 5), (2, 3, 4, 5), (1, 2, 3, 2, 2)], ids=str)
def test_global_pools(rng: np.random.Generator, op: str, xs: tuple[int, ...]) -> None:
    docs = docs_of(rng, _x(xs))
    check(model_of(helper.make_node(op, ["x"], ["y"]), docs[0], 2 if op == "GlobalLpPool" else 1), docs,
          atol=1e-6)


def test_max_unpool_of_max_pool_indices(rng: np.random.Generator) -> None:
    docs = docs_of(rng, _x((1, 2, 4, 5)))
    pool = helper.make_node("MaxPool", ["x"], ["p", "i"], kernel_shape=[2, 2], strides=[2, 2])
    unpool = helper.make_node("MaxUnpool", ["p", "i", "shape"], ["y"], kernel_shape=[2, 2], strides=[2, 2])
    model = model_of([pool, unpool], docs[0], 11, {"shape": np.array([1, 2, 4, 5], np.int64)})
    check(model, docs)
    unpool = helper.make_node("MaxUnpool", ["p", "i"], ["y"], kernel_shape=[2, 2], strides=[2, 2])
    check(model_of([pool, unpool], {"x": docs[0]["x"][..., :4]}, 11),
          [{"x": d["x"][..., :4]} for d in docs])


# ---------------------------------------------------------------- integer convolution


def test_conv_integer(rng: np.random.Generator) -> None:
    docs = docs_of(rng, lambda r, i: {"x": r.integers(0, 256, (1, 2, 5, 5)).astype(np.uint8)})
    inits = {"w": rng.integers(0, 256, (3, 2, 3, 3)).astype(np.uint8), "zx": np.array(12, np.uint8),
             "zw": np.array(130, np.uint8)}
    node = helper.make_node("ConvInteger", ["x", "w", "zx", "zw"], ["y"], pads=[1, 1, 1, 1], strides=[2, 1])
    check(model_of(node, docs[0], 10, inits), docs)


def test_qlinear_conv(rng: np.random.Generator) -> None:
    docs = docs_of(rng, lambda r, i: {"x": r.integers(0, 256, (1, 2, 5, 5)).astype(np.uint8)})
    inits = {
        "sx": np.array(0.05, np.float32), "zx": np.array(10, np.uint8),
        "w": rng.integers(-60, 60, (4, 2, 3, 3)).astype(np.int8),
        "sw": np.array([0.01, 0.02, 0.03, 0.015], np.float32), "zw": np.zeros(4, np.int8),
        "sy": np.array(0.2, np.float32), "zy": np.array(100, np.uint8),
        "b": rng.integers(-500, 500, 4).astype(np.int32),
    }
    node = helper.make_node("QLinearConv", ["x", "sx", "zx", "w", "sw", "zw", "sy", "zy", "b"], ["y"],
                            pads=[1, 1, 1, 1])
    check(model_of(node, docs[0], 10, inits), docs)


@pytest.mark.parametrize("attrs", [{}, {"strides": [2, 1], "pads": [1, 0, 1, 1], "dilations": [1, 2]}], ids=str)
def test_col2im(rng: np.random.Generator, attrs: dict[str, Any]) -> None:
    image, block = np.array([5, 6], np.int64), np.array([2, 3], np.int64)
    strides, dilations = attrs.get("strides", [1, 1]), attrs.get("dilations", [1, 1])
    pads = attrs.get("pads", [0, 0, 0, 0])
    blocks = [(image[i] + pads[i] + pads[2 + i] - (block[i] - 1) * dilations[i] - 1) // strides[i] + 1
              for i in range(2)]
    docs = docs_of(rng, _x((2, 3 * 6, int(np.prod(blocks)))))
    node = helper.make_node("Col2Im", ["x", "image", "block"], ["y"], **attrs)
    check(model_of(node, docs[0], 18, {"image": image, "block": block}), docs, atol=1e-6)
