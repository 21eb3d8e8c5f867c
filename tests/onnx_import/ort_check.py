"""Small ONNX models checked one document at a time: every graph input is a per-document
attribute, the program runs once for all documents, and each document's outputs must
match the oracle (onnxruntime, or onnx's reference evaluator where onnxruntime lacks the
op) run on that document alone."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import onnx
import pytest
from onnx import helper, numpy_helper
from onnx.reference import ReferenceEvaluator

from cpu_fallback import NumpyBackend
from tensor_ir.onnx_import import import_model
from tensor_ir.verify import verify

ort = pytest.importorskip("onnxruntime")
ort.set_default_logger_severity(3)

N_DOCS = 3


def model_of(
    nodes: onnx.NodeProto | Sequence[onnx.NodeProto],
    inputs: dict[str, np.ndarray],
    opset: int,
    initializers: dict[str, np.ndarray] | None = None,
    outputs: Sequence[str] = ("y",),
) -> onnx.ModelProto:
    """A model of `nodes`; `inputs` gives one document's value of each graph input (for its
    shape and type). Output types come from onnx's shape inference."""
    node_list = [nodes] if isinstance(nodes, onnx.NodeProto) else list(nodes)
    graph = helper.make_graph(
        node_list,
        "m",
        [helper.make_tensor_value_info(k, helper.np_dtype_to_tensor_dtype(v.dtype), list(v.shape))
         for k, v in inputs.items()],
        [onnx.ValueInfoProto(name=o) for o in outputs],
        initializer=[numpy_helper.from_array(np.asarray(v), k) for k, v in (initializers or {}).items()],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], ir_version=10)
    inferred = onnx.shape_inference.infer_shapes(model, strict_mode=True)
    del model.graph.output[:]
    model.graph.output.extend(inferred.graph.output)
    return model


def run_ours(model: onnx.ModelProto, docs: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    imported = import_model(model, name="test")
    verify(imported.program)
    feeds = {k: np.stack([d[k] for d in docs]) for k in docs[0] if k in imported.program.inputs}
    with np.errstate(all="ignore"):
        return NumpyBackend().run(imported.program, feeds, len(docs))


def _oracle(model: onnx.ModelProto, use_reference: bool) -> Any:
    if use_reference:
        ref = ReferenceEvaluator(model)
        return lambda feeds: ref.run(None, feeds)
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return lambda feeds: sess.run(None, feeds)


def check(
    model: onnx.ModelProto,
    docs: list[dict[str, np.ndarray]],
    rtol: float = 1e-5,
    atol: float = 1e-6,
    use_reference: bool = False,
) -> None:
    assert any(not np.array_equal(docs[0][k], d[k]) for d in docs[1:] for k in docs[0]), "documents should differ"
    got = run_ours(model, docs)
    oracle = _oracle(model, use_reference)
    names = [o.name for o in model.graph.output]
    what_op = ",".join(n.op_type for n in model.graph.node)
    for i, doc in enumerate(docs):
        with np.errstate(all="ignore"):
            want = oracle(doc)
        for name, w in zip(names, want, strict=True):
            mine = np.asarray(got[name][i])
            w = np.asarray(w)
            what = f"{what_op} output {name} document {i}"
            assert mine.shape == w.shape, f"{what}: shape {mine.shape}, expected {w.shape}"
            assert mine.dtype == w.dtype, f"{what}: cell type {mine.dtype}, expected {w.dtype}"
            if w.dtype.kind == "f":
                np.testing.assert_allclose(mine.astype(np.float64), w.astype(np.float64), rtol=rtol, atol=atol,
                                           equal_nan=True, err_msg=what)
            else:
                np.testing.assert_array_equal(mine, w, err_msg=what)


def docs_of(rng: np.random.Generator, make: Any, n: int = N_DOCS) -> list[dict[str, np.ndarray]]:
    """`make(rng, i)` gives document i's inputs."""
    return [make(rng, i) for i in range(n)]
