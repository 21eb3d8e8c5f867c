"""Building application packages in a test's tmp_path, ranking them on the numpy backend,
and running the same models in onnxruntime for the expected numbers."""

from __future__ import annotations

import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

from cpu_fallback import NumpyBackend
from server.application.package import Application
from server.ranking import Ranker, RankResult
from server.store.view import ShardView
from tests.shared_data import VESPA_MODELS as VESPA_MODELS  # the tests of this folder import it from here


def strange_names_model() -> onnx.ModelProto:
    """The shape of Vespa's strange_names.onnx, made here so tests need no ../shared: inputs
    `input:0` and `input/1` [2], outputs `foo/bar` = their sum and `-baz:0` = their difference."""
    vi = helper.make_tensor_value_info
    graph = helper.make_graph(
        [helper.make_node("Add", ["input:0", "input/1"], ["foo/bar"]),
         helper.make_node("Sub", ["input:0", "input/1"], ["-baz:0"])],
        "strange_names",
        [vi("input:0", TensorProto.FLOAT, [2]), vi("input/1", TensorProto.FLOAT, [2])],
        [vi("foo/bar", TensorProto.FLOAT, [2]), vi("-baz:0", TensorProto.FLOAT, [2])],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 12)])


def mnist_softmax_model() -> onnx.ModelProto:
    """The shape of Vespa's mnist_softmax.onnx (a TensorFlow export: weights listed as graph
    inputs with initializers, opset 4): add:0[-1, 10] = Placeholder:0[-1, 784] x Variable:0 +
    Variable_1:0, with weights of a fixed seed."""
    rng = np.random.default_rng(784)
    w = numpy_helper.from_array(rng.standard_normal((784, 10)).astype(np.float32), "Variable:0")
    b = numpy_helper.from_array(rng.standard_normal(10).astype(np.float32), "Variable_1:0")
    vi = helper.make_tensor_value_info
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["Placeholder:0", "Variable:0"], ["MatMul:0"]),
         helper.make_node("Add", ["MatMul:0", "Variable_1:0"], ["add:0"])],
        "mnist_softmax",
        [vi("Variable_1:0", TensorProto.FLOAT, [10]), vi("Variable:0", TensorProto.FLOAT, [784, 10]),
         vi("Placeholder:0", TensorProto.FLOAT, [-1, 784])],
        [vi("add:0", TensorProto.FLOAT, [-1, 10])],
        [b, w],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 4)], ir_version=3)


# models the tests build themselves in place of the files of ../shared/vespa-models
GENERATED = {"strange_names.onnx": strange_names_model, "mnist_softmax.onnx": mnist_softmax_model}


def write_app(root: Path, schemas: Mapping[str, str], models: Mapping[str, Path | onnx.ModelProto] | None = None,
              files: Mapping[str, str | bytes] | None = None) -> Path:
    """An application package: schemas/NAME.sd, models/FILE, and any other files."""
    (root / "schemas").mkdir(parents=True, exist_ok=True)
    for name, text in schemas.items():
        (root / "schemas" / f"{name}.sd").write_text(text, encoding="utf-8")
    for name, model in (models or {}).items():
        target = root / "models" / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(model, onnx.ModelProto):
            onnx.save(model, target)
        else:
            shutil.copy(model, target)
    for name, content in (files or {}).items():
        target = root / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            target.write_bytes(content)
        else:
            target.write_text(content, encoding="utf-8")
    return root


def rank(app: Application, columns: Mapping[str, npt.NDArray[Any]], query: Mapping[str, Any] | None = None,
         schema: str = "s", profile: str = "p", hits: int = 10, **kwargs: Any) -> RankResult:
    n = len(next(iter(columns.values())))
    shard = ShardView([f"doc{i:03d}" for i in range(n)], dict(columns))
    return Ranker(app.profile(schema, profile), NumpyBackend()).rank(shard, query or {}, hits=hits,
                                                                     all_scores=True, **kwargs)


def float_outputs(model: onnx.ModelProto) -> onnx.ModelProto:
    """A copy whose bfloat16 outputs are cast to float: onnxruntime's Python API cannot
    return bfloat16 arrays. The cast is exact."""
    m = onnx.ModelProto()
    m.CopyFrom(model)
    for out in m.graph.output:
        if out.type.tensor_type.elem_type == TensorProto.BFLOAT16:
            inner = f"{out.name}__bf16"
            for node in m.graph.node:
                node.output[:] = [inner if o == out.name else o for o in node.output]
            m.graph.node.append(helper.make_node("Cast", [inner], [out.name], to=TensorProto.FLOAT))
            out.type.tensor_type.elem_type = TensorProto.FLOAT
    return m


class OrtModel:
    """One model in onnxruntime, fed numpy arrays (bfloat16 ones too)."""

    def __init__(self, model: Path | onnx.ModelProto) -> None:
        proto = onnx.load(model) if isinstance(model, Path) else model
        self.session = ort.InferenceSession(float_outputs(proto).SerializeToString(),
                                            providers=["CPUExecutionProvider"])
        self.outputs = [o.name for o in self.session.get_outputs()]

    def run(self, feeds: Mapping[str, npt.NDArray[Any]]) -> dict[str, npt.NDArray[Any]]:
        values = {}
        for name, arr in feeds.items():
            if arr.dtype.name == "bfloat16":
                values[name] = ort.OrtValue.ortvalue_from_numpy_with_onnx_type(arr.view(np.uint16),
                                                                              TensorProto.BFLOAT16)
            else:
                values[name] = ort.OrtValue.ortvalue_from_numpy(np.ascontiguousarray(arr))
        out = self.session.run_with_ort_values(self.outputs, values)
        return {name: np.asarray(v.numpy()) for name, v in zip(self.outputs, out, strict=True)}
