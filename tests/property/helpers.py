"""Shared pieces of the property tests: one-op models, and a comparison of our batched
evaluation with one onnxruntime run per document."""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import onnx
import pytest
from hypothesis import HealthCheck, settings
from onnx import helper, numpy_helper

from cpu_fallback import NumpyBackend
from tensor_ir.onnx_import import import_model
from tensor_ir.verify import verify
from tests.conftest import SEED

ort = pytest.importorskip("onnxruntime")
ort.set_default_logger_severity(3)

N_DOCS = 2

# Fixed examples: derandomize makes hypothesis draw from a seed derived from each test, so a
# run is the same everywhere; SEED (printed in the pytest header) feeds the numpy draws.
PROPERTY = settings(
    # a deeper search, now and then: TENSORRANK_PROPERTY_EXAMPLES=500
    max_examples=int(os.environ.get("TENSORRANK_PROPERTY_EXAMPLES", "40")),
    deadline=None,
    derandomize=True,
    database=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

NP_OF_ONNX = {
    onnx.TensorProto.FLOAT: np.float32,
    onnx.TensorProto.DOUBLE: np.float64,
    onnx.TensorProto.FLOAT16: np.float16,
    onnx.TensorProto.INT8: np.int8,
    onnx.TensorProto.INT16: np.int16,
    onnx.TensorProto.INT32: np.int32,
    onnx.TensorProto.INT64: np.int64,
    onnx.TensorProto.UINT8: np.uint8,
    onnx.TensorProto.UINT16: np.uint16,
    onnx.TensorProto.UINT32: np.uint32,
    onnx.TensorProto.UINT64: np.uint64,
    onnx.TensorProto.BOOL: np.bool_,
}
ONNX_OF_NP = {np.dtype(v): k for k, v in NP_OF_ONNX.items()}


def rng_for(seed: int) -> np.random.Generator:
    return np.random.default_rng([SEED, seed])


def one_op_model(
    op: str,
    inputs: dict[str, np.ndarray],
    n_outputs: int = 1,
    opset: int = 18,
    initializers: dict[str, np.ndarray] | None = None,
    input_order: list[str] | None = None,
    **attrs: Any,
) -> onnx.ModelProto:
    """A model of one node. `inputs` gives one document's value of each graph input (for its
    shape and type); `initializers` are constant operands. Output types are left to inference."""
    initializers = initializers or {}
    order = input_order or [*inputs, *initializers]
    node = helper.make_node(
        op, order, [f"out{i}" for i in range(n_outputs)], name=f"the_{op.lower()}", **attrs
    )
    graph = helper.make_graph(
        [node],
        f"one_{op.lower()}",
        [helper.make_tensor_value_info(k, ONNX_OF_NP[v.dtype], list(v.shape)) for k, v in inputs.items()],
        [onnx.ValueInfoProto(name=f"out{i}") for i in range(n_outputs)],
        initializer=[numpy_helper.from_array(np.asarray(v), k) for k, v in initializers.items()],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], ir_version=8)
    # fill in the output types so the model is complete for onnxruntime and for us
    inferred = onnx.shape_inference.infer_shapes(model, strict_mode=True)
    del model.graph.output[:]
    model.graph.output.extend(inferred.graph.output)
    return model


def check_against_onnxruntime(
    model: onnx.ModelProto,
    docs: list[dict[str, np.ndarray]],
    rtol: float = 1e-5,
    atol: float = 1e-6,
) -> None:
    """Every graph input a per-document attribute; each document's outputs must equal its
    own onnxruntime run (same shape, same cell type, values within tolerance)."""
    imported = import_model(model, name=model.graph.name)
    verify(imported.program)
    feeds = {k: np.stack([d[k] for d in docs]) for k in docs[0] if k in imported.program.inputs}
    got = NumpyBackend().run(imported.program, feeds, len(docs))
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    names = [o.name for o in sess.get_outputs()]
    for i, doc in enumerate(docs):
        want = sess.run(names, doc)
        for name, w in zip(names, want, strict=True):
            mine = np.asarray(got[name][i])
            w = np.asarray(w)
            what = f"{model.graph.node[0].op_type} output {name} document {i}"
            assert mine.shape == w.shape, f"{what}: shape {mine.shape}, onnxruntime {w.shape}"
            assert mine.dtype == w.dtype, f"{what}: cell type {mine.dtype}, onnxruntime {w.dtype}"
            if w.dtype.kind == "f":
                np.testing.assert_allclose(
                    mine.astype(np.float64),
                    w.astype(np.float64),
                    rtol=rtol,
                    atol=atol,
                    equal_nan=True,
                    err_msg=what,
                )
            else:
                np.testing.assert_array_equal(mine, w, err_msg=what)
