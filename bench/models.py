"""The benchmark models and their application packages, generated with fixed seeds.

mlp_rank:    concat(query[64], doc[64]) -> Gemm 128x256 + Relu -> Gemm 256x64 + Relu -> Gemm 64x1
dot_ffn:     doc[256] * query[256] -> MatMul 256x512 -> Tanh -> MatMul 512x1
lightweight: Sigmoid(doc[16] . w + b)
transformer: ../shared/vespa-models/random_encoder.onnx over 32 tokens per document (a tiny BERT-like
             encoder; dummy_transformer.onnx is not used because its output for one row depends on the
             other rows of the batch, so batched onnxruntime runs would not be the same computation)

Usage: python -m bench.models OUT_DIR
"""

from __future__ import annotations

import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

SEED = 20261126
VESPA_MODELS = Path(__file__).resolve().parents[1].parent / "shared" / "vespa-models"


@dataclass(frozen=True)
class BenchModel:
    name: str
    doc_inputs: dict[str, tuple[int, ...]]  # onnx input -> per-document shape (no batch)
    query_inputs: dict[str, tuple[int, ...]]
    schema: str  # the .sd text
    make: Callable[[Path], None]
    integer_docs: bool = False
    source: Path | None = None  # a model file from outside the repository, when it is one

    def missing(self) -> str | None:
        """Why this model cannot be written here, or None when it can."""
        if self.source is not None and not self.source.is_file():
            return f"{self.name} needs {self.source}, from ../shared beside the repository, which is absent"
        return None


def _weights(rng: np.random.Generator, *shape: int) -> np.ndarray:
    return (rng.standard_normal(shape) / np.sqrt(shape[0])).astype(np.float32)


def _save(graph: onnx.GraphProto, path: Path, opset: int = 17) -> None:
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], producer_name="tensorrank-bench")
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


def make_mlp_rank(path: Path) -> None:
    rng = np.random.default_rng(SEED)
    inits = [
        numpy_helper.from_array(_weights(rng, 128, 256), "w1"),
        numpy_helper.from_array((rng.standard_normal(256) * 0.1).astype(np.float32), "b1"),
        numpy_helper.from_array(_weights(rng, 256, 64), "w2"),
        numpy_helper.from_array((rng.standard_normal(64) * 0.1).astype(np.float32), "b2"),
        numpy_helper.from_array(_weights(rng, 64, 1), "w3"),
        numpy_helper.from_array(np.zeros(1, np.float32), "b3"),
    ]
    nodes = [
        helper.make_node("Concat", ["query", "doc"], ["x"], axis=1),
        helper.make_node("Gemm", ["x", "w1", "b1"], ["h1"]),
        helper.make_node("Relu", ["h1"], ["r1"]),
        helper.make_node("Gemm", ["r1", "w2", "b2"], ["h2"]),
        helper.make_node("Relu", ["h2"], ["r2"]),
        helper.make_node("Gemm", ["r2", "w3", "b3"], ["score"]),
    ]
    g = helper.make_graph(
        nodes, "mlp_rank",
        [helper.make_tensor_value_info("query", TensorProto.FLOAT, ["batch", 64]),
         helper.make_tensor_value_info("doc", TensorProto.FLOAT, ["batch", 64])],
        [helper.make_tensor_value_info("score", TensorProto.FLOAT, ["batch", 1])],
        inits,
    )
    _save(g, path)


def make_dot_ffn(path: Path) -> None:
    rng = np.random.default_rng(SEED + 1)
    inits = [
        numpy_helper.from_array(_weights(rng, 256, 512), "w1"),
        numpy_helper.from_array(_weights(rng, 512, 1), "w2"),
    ]
    nodes = [
        helper.make_node("Mul", ["doc", "query"], ["x"]),
        helper.make_node("MatMul", ["x", "w1"], ["h"]),
        helper.make_node("Tanh", ["h"], ["t"]),
        helper.make_node("MatMul", ["t", "w2"], ["score"]),
    ]
    g = helper.make_graph(
        nodes, "dot_ffn",
        [helper.make_tensor_value_info("doc", TensorProto.FLOAT, ["batch", 256]),
         helper.make_tensor_value_info("query", TensorProto.FLOAT, ["batch", 256])],
        [helper.make_tensor_value_info("score", TensorProto.FLOAT, ["batch", 1])],
        inits,
    )
    _save(g, path)


def make_lightweight(path: Path) -> None:
    rng = np.random.default_rng(SEED + 2)
    inits = [
        numpy_helper.from_array(_weights(rng, 16, 1), "w"),
        numpy_helper.from_array(np.array([0.1], np.float32), "b"),
    ]
    nodes = [
        helper.make_node("MatMul", ["doc", "w"], ["x"]),
        helper.make_node("Add", ["x", "b"], ["y"]),
        helper.make_node("Sigmoid", ["y"], ["score"]),
    ]
    g = helper.make_graph(
        nodes, "lightweight",
        [helper.make_tensor_value_info("doc", TensorProto.FLOAT, ["batch", 16])],
        [helper.make_tensor_value_info("score", TensorProto.FLOAT, ["batch", 1])],
        inits,
    )
    _save(g, path)


def make_transformer(path: Path) -> None:
    shutil.copyfile(VESPA_MODELS / "random_encoder.onnx", path)


def _schema(name: str, fields: dict[str, str], queries: dict[str, str], functions: dict[str, str]) -> str:
    lines = [f"schema {name} {{", f"  document {name} {{"]
    for f, t in fields.items():
        lines.append(f"    field {f} type {t} {{ indexing: attribute }}")
    lines += ["  }", "  rank-profile bench {"]
    if queries:
        lines.append("    inputs {")
        lines += [f"      query({q}) {t}" for q, t in queries.items()]
        lines.append("    }")
    for fn, expr in functions.items():
        lines.append(f"    function {fn}() {{ expression: {expr} }}")
    lines.append(f'    first-phase {{ expression: sum(onnx("{name}.onnx")) }}')
    lines += ["  }", "}", ""]
    return "\n".join(lines)


TOKENS = 32

MODELS: dict[str, BenchModel] = {
    "mlp_rank": BenchModel(
        "mlp_rank", {"doc": (64,)}, {"query": (64,)},
        _schema("mlp_rank", {"embedding": "tensor<float>(x[64])"}, {"q": "tensor<float>(x[64])"},
                {"doc": "rename(attribute(embedding), x, d1)", "query": "rename(query(q), x, d1)"}),
        make_mlp_rank,
    ),
    "dot_ffn": BenchModel(
        "dot_ffn", {"doc": (256,)}, {"query": (256,)},
        _schema("dot_ffn", {"embedding": "tensor<float>(x[256])"}, {"q": "tensor<float>(x[256])"},
                {"doc": "rename(attribute(embedding), x, d1)", "query": "rename(query(q), x, d1)"}),
        make_dot_ffn,
    ),
    "lightweight": BenchModel(
        "lightweight", {"doc": (16,)}, {},
        _schema("lightweight", {"embedding": "tensor<float>(x[16])"}, {},
                {"doc": "rename(attribute(embedding), x, d1)"}),
        make_lightweight,
    ),
    "transformer": BenchModel(
        "transformer",
        {"input_ids": (TOKENS,), "attention_mask": (TOKENS,)}, {},
        _schema("transformer",
                {"tokens": f"tensor<float>(d1[{TOKENS}])", "mask": f"tensor<float>(d1[{TOKENS}])"}, {},
                {"input_ids": "attribute(tokens)", "attention_mask": "attribute(mask)"}),
        make_transformer,
        integer_docs=True,
        source=VESPA_MODELS / "random_encoder.onnx",
    ),
}

# the document field each model input reads, for generating documents
FIELD_OF = {
    "mlp_rank": {"doc": "embedding"},
    "dot_ffn": {"doc": "embedding"},
    "lightweight": {"doc": "embedding"},
    "transformer": {"input_ids": "tokens", "attention_mask": "mask"},
}
QUERY_OF = {"mlp_rank": {"query": "q"}, "dot_ffn": {"query": "q"}, "lightweight": {}, "transformer": {}}


def write_package(model: BenchModel, root: Path) -> Path:
    """An application package for `model` under root/NAME; returns its path."""
    reason = model.missing()
    if reason is not None:
        raise FileNotFoundError(reason)
    app = root / model.name
    (app / "schemas").mkdir(parents=True, exist_ok=True)
    (app / "models").mkdir(parents=True, exist_ok=True)
    (app / "schemas" / f"{model.name}.sd").write_text(model.schema)
    model.make(app / "models" / f"{model.name}.onnx")
    return app


def main(argv: list[str]) -> int:
    out = Path(argv[0] if argv else "bench_models")
    for m in MODELS.values():
        reason = m.missing()
        print(f"skipped: {reason}" if reason else write_package(m, out))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
