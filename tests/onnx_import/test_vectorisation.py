"""Vectorisation over documents: one evaluation of N documents equals N single-document
onnxruntime runs, for both ways a model can be written:

- with a symbolic batch axis ([batch, 8]): the document axis fills the batch axis, one
  document per batch row;
- with static per-document shapes ([1, 8], or a [4, 6] token matrix with no batch axis):
  every document has that whole shape, and the document axis is added in front.

A query-role input has one value that is broadcast over all documents.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from cpu_fallback import NumpyBackend
from tensor_ir.ir import Role
from tensor_ir.onnx_import import InputBinding, import_model
from tensor_ir.verify import verify
from tests.conftest import SEED

ort = pytest.importorskip("onnxruntime")

N = 50
OPSET = 17


def _weights(rng: np.random.Generator, name: str, shape: tuple[int, ...]) -> onnx.TensorProto:
    return numpy_helper.from_array(rng.normal(size=shape).astype(np.float32), name)


def _ints(name: str, values: list[int]) -> onnx.TensorProto:
    return numpy_helper.from_array(np.array(values, dtype=np.int64), name)


def dense_model(rng: np.random.Generator, x_dims: list[int | str]) -> onnx.ModelProto:
    """score = sum(tanh(x @ W + b), axis 1, keepdims) and probs = softmax(x @ W + b) for x[?, 8]."""
    nodes = [
        helper.make_node("MatMul", ["x", "W"], ["xw"], name="mm"),
        helper.make_node("Add", ["xw", "b"], ["h"], name="bias"),
        helper.make_node("Tanh", ["h"], ["t"], name="tanh"),
        helper.make_node("ReduceSum", ["t", "axis1"], ["score"], name="sum", keepdims=1),
        helper.make_node("Softmax", ["h"], ["probs"], name="softmax", axis=-1),
    ]
    graph = helper.make_graph(
        nodes,
        "dense",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, x_dims)],
        [
            helper.make_tensor_value_info("score", TensorProto.FLOAT, [x_dims[0], 1]),
            helper.make_tensor_value_info("probs", TensorProto.FLOAT, [x_dims[0], 4]),
        ],
        initializer=[_weights(rng, "W", (8, 4)), _weights(rng, "b", (4,)), _ints("axis1", [1])],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], ir_version=8)


def token_model(rng: np.random.Generator) -> onnx.ModelProto:
    """A [4, 6] token matrix per document, no batch axis: attention-style pooling over tokens."""
    nodes = [
        helper.make_node("MatMul", ["tokens", "W"], ["h"], name="proj"),
        helper.make_node("Softmax", ["h"], ["att"], name="over_tokens", axis=0),
        helper.make_node("Mul", ["att", "h"], ["weighted"], name="weigh"),
        helper.make_node("ReduceSum", ["weighted", "axis0"], ["pooled"], name="pool", keepdims=0),
        helper.make_node("Transpose", ["h"], ["ht"], name="t", perm=[1, 0]),
    ]
    graph = helper.make_graph(
        nodes,
        "tokens",
        [helper.make_tensor_value_info("tokens", TensorProto.FLOAT, [4, 6])],
        [
            helper.make_tensor_value_info("pooled", TensorProto.FLOAT, [3]),
            helper.make_tensor_value_info("ht", TensorProto.FLOAT, [3, 4]),
        ],
        initializer=[_weights(rng, "W", (6, 3)), _ints("axis0", [0])],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], ir_version=8)


def query_model(rng: np.random.Generator, batch: int | str) -> onnx.ModelProto:
    """score = sum(q * d, axis 1) + d @ w: q is the query's vector, d the document's."""
    nodes = [
        helper.make_node("Mul", ["q", "d"], ["qd"], name="qd"),
        helper.make_node("ReduceSum", ["qd", "axis1"], ["dot"], name="dot", keepdims=1),
        helper.make_node("MatMul", ["d", "w"], ["lin"], name="lin"),
        helper.make_node("Add", ["dot", "lin"], ["score"], name="score"),
    ]
    graph = helper.make_graph(
        nodes,
        "query_doc",
        [
            helper.make_tensor_value_info("q", TensorProto.FLOAT, [1, 8]),
            helper.make_tensor_value_info("d", TensorProto.FLOAT, [batch, 8]),
        ],
        [helper.make_tensor_value_info("score", TensorProto.FLOAT, [batch, 1])],
        initializer=[_weights(rng, "w", (8, 1)), _ints("axis1", [1])],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], ir_version=8)


def query_tokens_model(rng: np.random.Generator) -> onnx.ModelProto:
    """Static shapes: a [4, 8] token matrix per document scored against the query's [8] vector."""
    nodes = [
        helper.make_node("MatMul", ["d", "q"], ["sims"], name="sims"),
        helper.make_node("ReduceMax", ["sims"], ["best"], name="best", axes=[0], keepdims=0),
    ]
    graph = helper.make_graph(
        nodes,
        "maxsim",
        [
            helper.make_tensor_value_info("q", TensorProto.FLOAT, [8]),
            helper.make_tensor_value_info("d", TensorProto.FLOAT, [4, 8]),
        ],
        [helper.make_tensor_value_info("best", TensorProto.FLOAT, [])],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], ir_version=8)


def run_both(
    model: onnx.ModelProto,
    doc_values: dict[str, np.ndarray],
    query_values: dict[str, np.ndarray] | None = None,
) -> None:
    """Our one batched evaluation against one onnxruntime run per document."""
    query_values = query_values or {}
    bindings = {k: InputBinding(Role.QUERY) for k in query_values}
    imported = import_model(model, bindings, name=model.graph.name)
    verify(imported.program)
    for k, v in doc_values.items():
        assert imported.program.inputs[k].role is Role.ATTRIBUTE
        assert (N, *imported.program.inputs[k].shape) == v.shape, f"{k}: {imported.program.inputs[k].shape}"
    for k in query_values:
        assert imported.program.inputs[k].role is Role.QUERY
    got = NumpyBackend().run(imported.program, {**doc_values, **query_values}, N)
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    names = [o.name for o in sess.get_outputs()]
    for i in range(N):
        feeds: dict[str, Any] = {k: v[i] for k, v in doc_values.items()}
        feeds.update(query_values)
        want = sess.run(names, feeds)
        for name, w in zip(names, want, strict=True):
            assert got[name].shape == (N, *w.shape), f"{name}: {got[name].shape} vs {(N, *w.shape)}"
            np.testing.assert_allclose(got[name][i], w, rtol=1e-5, atol=1e-5, err_msg=f"{name} document {i}")


def test_symbolic_batch_axis() -> None:
    print(f"seed {SEED}")
    rng = np.random.default_rng(SEED)
    model = dense_model(rng, ["batch", 8])
    # per document [1, 8]: the batch axis holds one document
    run_both(model, {"x": rng.normal(size=(N, 1, 8)).astype(np.float32)})


def test_minus_one_batch_axis() -> None:
    rng = np.random.default_rng(SEED + 1)
    model = dense_model(rng, [-1, 8])  # type: ignore[list-item]
    run_both(model, {"x": rng.normal(size=(N, 1, 8)).astype(np.float32)})


def test_static_single_row() -> None:
    rng = np.random.default_rng(SEED + 2)
    model = dense_model(rng, [1, 8])
    run_both(model, {"x": rng.normal(size=(N, 1, 8)).astype(np.float32)})


def test_static_token_matrix() -> None:
    rng = np.random.default_rng(SEED + 3)
    run_both(token_model(rng), {"tokens": rng.normal(size=(N, 4, 6)).astype(np.float32)})


@pytest.mark.parametrize("batch", ["batch", 1])
def test_query_input_broadcast_over_documents(batch: int | str) -> None:
    rng = np.random.default_rng(SEED + 4)
    model = query_model(rng, batch)
    q = rng.normal(size=(1, 8)).astype(np.float32)
    run_both(model, {"d": rng.normal(size=(N, 1, 8)).astype(np.float32)}, {"q": q})


def test_query_vector_against_token_matrices() -> None:
    rng = np.random.default_rng(SEED + 5)
    q = rng.normal(size=8).astype(np.float32)
    run_both(query_tokens_model(rng), {"d": rng.normal(size=(N, 4, 8)).astype(np.float32)}, {"q": q})


def test_documents_are_independent() -> None:
    """Changing one document changes only its own outputs."""
    rng = np.random.default_rng(SEED + 6)
    imported = import_model(token_model(rng), name="tokens")
    x = rng.normal(size=(N, 4, 6)).astype(np.float32)
    before = NumpyBackend().run(imported.program, {"tokens": x}, N)["pooled"]
    x2 = x.copy()
    x2[7] += 1.0
    after = NumpyBackend().run(imported.program, {"tokens": x2}, N)["pooled"]
    changed = np.any(before != after, axis=1)
    assert changed.tolist() == [i == 7 for i in range(N)]
