"""Reductions, ArgMax/ArgMin and CumSum/CumProd against onnxruntime, three documents with
different values each; axes both as the older attribute and as the newer input."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from onnx import TensorProto, helper

from tensor_ir.onnx_import import ModelImportError, import_model
from tests.onnx_import.ort_check import check, docs_of, model_of

SHAPE = (2, 3, 4)
REDUCE_OPS = ["ReduceSum", "ReduceMean", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceL1", "ReduceL2",
              "ReduceLogSum", "ReduceLogSumExp", "ReduceSumSquare"]
# the opset where the op's axes moved from an attribute to an input
AXES_INPUT_FROM = {op: 13 if op == "ReduceSum" else 18 for op in REDUCE_OPS}


def _positive(rng: np.random.Generator, i: int, shape: tuple[int, ...] = SHAPE) -> dict[str, np.ndarray]:
    # positive so ReduceLogSum stays finite; spread so ReduceProd is not trivial
    return {"x": rng.uniform(0.5, 2.0 + i, size=shape).astype(np.float32)}


def _reduce_model(op: str, opset: int, x: np.ndarray, axes: list[int] | None, **attrs: Any) -> Any:
    if axes is None:
        return model_of(helper.make_node(op, ["x"], ["y"], **attrs), {"x": x}, opset)
    if opset >= AXES_INPUT_FROM[op]:
        node = helper.make_node(op, ["x", "axes"], ["y"], **attrs)
        return model_of(node, {"x": x}, opset, {"axes": np.array(axes, np.int64)})
    return model_of(helper.make_node(op, ["x"], ["y"], axes=axes, **attrs), {"x": x}, opset)


@pytest.mark.parametrize("keepdims", [1, 0])
@pytest.mark.parametrize("opset", [11, 18])
@pytest.mark.parametrize("op", REDUCE_OPS)
def test_reduce_over_some_axes(rng: np.random.Generator, op: str, opset: int, keepdims: int) -> None:
    docs = docs_of(rng, _positive)
    check(_reduce_model(op, opset, docs[0]["x"], [0, -1], keepdims=keepdims), docs, rtol=1e-5)


@pytest.mark.parametrize("op", REDUCE_OPS)
def test_reduce_over_every_axis_by_default(rng: np.random.Generator, op: str) -> None:
    docs = docs_of(rng, _positive)
    check(_reduce_model(op, 18, docs[0]["x"], None, keepdims=0), docs, rtol=1e-5)


@pytest.mark.parametrize("op", REDUCE_OPS)
def test_noop_with_empty_axes_applies_only_the_elementwise_part(rng: np.random.Generator, op: str) -> None:
    docs = docs_of(rng, _positive)
    node = helper.make_node(op, ["x", "axes"], ["y"], noop_with_empty_axes=1)
    model = model_of(node, docs[0], 18, {"axes": np.array([], np.int64)})
    check(model, docs, rtol=1e-5)


def test_reduce_sum_axes_input_at_opset_13(rng: np.random.Generator) -> None:
    docs = docs_of(rng, _positive)
    check(_reduce_model("ReduceSum", 13, docs[0]["x"], [1], keepdims=0), docs)
    # with no axes input and noop unset, every axis
    check(_reduce_model("ReduceSum", 13, docs[0]["x"], None), docs)


@pytest.mark.parametrize("op", ["ReduceSum", "ReduceMean", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceL1",
                                "ReduceSumSquare", "ReduceL2"])
def test_integer_reductions(rng: np.random.Generator, op: str) -> None:
    # ReduceMean of ints truncates toward zero; ReduceL2 truncates the root
    docs = docs_of(rng, lambda r, i: {"x": r.integers(-9, 10, size=SHAPE).astype(np.int32)})
    check(_reduce_model(op, 18, docs[0]["x"], [1]), docs)


@pytest.mark.parametrize("op", ["ReduceMax", "ReduceMin"])
def test_bool_max_and_min(rng: np.random.Generator, op: str) -> None:
    docs = docs_of(rng, lambda r, i: {"x": r.integers(0, 2, size=SHAPE).astype(np.bool_)})
    check(_reduce_model(op, 20, docs[0]["x"], [2], keepdims=0), docs)


@pytest.mark.parametrize(("op", "dtype"), [("ReduceSum", np.float32), ("ReduceMax", np.float32),
                                           ("ReduceMin", np.float32), ("ReduceProd", np.float32),
                                           ("ReduceLogSum", np.float32), ("ReduceLogSumExp", np.float32),
                                           ("ReduceSumSquare", np.float32), ("ReduceL1", np.float32),
                                           ("ReduceMax", np.int32), ("ReduceMin", np.int64)])
def test_empty_reductions(rng: np.random.Generator, op: str, dtype: Any) -> None:
    # an empty axis: 0 for sums, 1 for products, -inf (or the type's least value) for max,
    # -inf for the log sums. The documents differ in a second, non-empty input.
    def make(r: np.random.Generator, i: int) -> dict[str, np.ndarray]:
        return {"x": np.zeros((2, 0, 3), dtype), "z": np.full(2, i, np.int32)}

    docs = docs_of(rng, make)
    nodes = [helper.make_node(op, ["x", "axes"], ["y"], keepdims=0), helper.make_node("Identity", ["z"], ["zz"])]
    model = model_of(nodes, docs[0], 18, {"axes": np.array([1], np.int64)}, outputs=("y", "zz"))
    check(model, docs)


def test_log_sum_exp_is_stable(rng: np.random.Generator) -> None:
    def make(r: np.random.Generator, i: int) -> dict[str, np.ndarray]:
        x = r.normal(size=(3, 4)).astype(np.float32)
        x[0] = [1000.0, 999.0, -5.0, 1000.0]  # exp overflows without the max shift
        x[1] = -np.inf  # a whole slice of -inf gives -inf, not NaN
        x[2, 0] = np.inf if i else -1000.0
        return {"x": x}

    docs = docs_of(rng, make)
    check(_reduce_model("ReduceLogSumExp", 18, docs[0]["x"], [1], keepdims=0), docs)
    check(_reduce_model("ReduceLogSumExp", 13, docs[0]["x"], [1], keepdims=1), docs)


def test_float16_reductions(rng: np.random.Generator) -> None:
    docs = docs_of(rng, lambda r, i: {"x": r.normal(size=(4, 16)).astype(np.float16)})
    for op in ("ReduceSum", "ReduceMean", "ReduceL2", "ReduceLogSumExp"):
        check(_reduce_model(op, 18, docs[0]["x"], [1]), docs, rtol=2e-3, atol=2e-3)


def test_axes_must_be_known_at_deploy_time(rng: np.random.Generator) -> None:
    x = np.ones(SHAPE, np.float32)
    model = model_of(helper.make_node("ReduceSum", ["x", "axes"], ["y"]), {"x": x, "axes": np.array([1], np.int64)},
                     13)
    with pytest.raises(ModelImportError, match="must be a constant known at deploy time") as e:
        import_model(model)
    assert e.value.needs_constant


def test_out_of_range_axis_is_a_located_error() -> None:
    graph = helper.make_graph(
        [helper.make_node("ReduceMax", ["x"], ["y"], axes=[3], name="rmax")], "m",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(SHAPE))],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    with pytest.raises(ModelImportError, match="axes \\[3\\]") as e:
        import_model(model)
    assert "rmax" in str(e.value)


def _with_ties(rng: np.random.Generator, i: int) -> dict[str, np.ndarray]:
    return {"x": rng.integers(0, 3, size=SHAPE).astype(np.float32) + i}


@pytest.mark.parametrize("opset", [11, 13])
@pytest.mark.parametrize("op", ["ArgMax", "ArgMin"])
@pytest.mark.parametrize(("axis", "keepdims"), [(0, 1), (-1, 0), (1, 1)])
def test_arg_reductions(rng: np.random.Generator, op: str, opset: int, axis: int, keepdims: int) -> None:
    docs = docs_of(rng, _with_ties)
    check(model_of(helper.make_node(op, ["x"], ["y"], axis=axis, keepdims=keepdims), docs[0], opset), docs)


@pytest.mark.parametrize("op", ["ArgMax", "ArgMin"])
def test_arg_reductions_select_last_index(rng: np.random.Generator, op: str) -> None:
    docs = docs_of(rng, _with_ties)
    node = helper.make_node(op, ["x"], ["y"], axis=2, keepdims=0, select_last_index=1)
    check(model_of(node, docs[0], 12), docs)


@pytest.mark.parametrize(("exclusive", "reverse"), [(0, 0), (1, 0), (0, 1), (1, 1)])
@pytest.mark.parametrize(("op", "opset"), [("CumSum", 11), ("CumSum", 14), ("CumProd", 26)])
def test_scans(rng: np.random.Generator, op: str, opset: int, exclusive: int, reverse: int) -> None:
    docs = docs_of(rng, lambda r, i: _positive(r, i))
    node = helper.make_node(op, ["x", "axis"], ["y"], exclusive=exclusive, reverse=reverse)
    for axis in (1, -1):
        check(model_of(node, docs[0], opset, {"axis": np.array(axis, np.int32)}), docs)


def test_integer_cumsum_axis_as_rank_one_int64(rng: np.random.Generator) -> None:
    docs = docs_of(rng, lambda r, i: {"x": r.integers(-50, 50, size=SHAPE).astype(np.int64)})
    node = helper.make_node("CumSum", ["x", "axis"], ["y"], exclusive=1)
    check(model_of(node, docs[0], 14, {"axis": np.array([0], np.int64)}), docs)


def test_float16_sum_of_squares_does_not_overflow_on_the_way(rng: np.random.Generator) -> None:
    # 300^2 is past float16's range, the root of the sum is not
    docs = docs_of(rng, lambda r, i: {"x": np.array([[300.0 + i, -200.0, 3.0]], np.float16)})
    check(_reduce_model("ReduceL2", 18, docs[0]["x"], [1]), docs, rtol=1e-3, atol=0)
