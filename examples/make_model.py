"""Writes examples/news/models/news_mlp.onnx, the ranking model of the bundled example.

    python examples/make_model.py [--out PATH]

The model is a small MLP over a query and a document embedding:

    concat(query_input[batch, 32], doc_input[batch, 32])  ->  Gemm 64x64 + Relu  ->  Gemm 64x1  =  score[batch, 1]

Its weights are constructed rather than trained, so that the ranking it produces is
legible in the demo: the 64 hidden units are 16 random unit directions p_k (fixed seed)
times four ReLUs, which compute |p_k.(q+d)| and |p_k.(q-d)|; the output layer sums
|p_k.(q+d)| - |p_k.(q-d)|, a similarity of query and document in 16 random projections
(large when d is close to q, about 0 when unrelated, negative when opposed). A small
seeded perturbation of every weight keeps it a generic dense model rather than one with
exact zeros that a converter could special-case.

The committed .onnx is this script's output byte for byte (tests/examples checks it), so
the package works without running the script. Everything is computed with element-wise
numpy in float64 and rounded once to float32, never through BLAS, so the bytes do not
depend on the machine.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

SEED = 20261126
DIM = 32  # embedding size of queries and documents
DIRECTIONS = 16  # random projections; 4 hidden units each
HIDDEN = 4 * DIRECTIONS
OPSET = 17
IR_VERSION = 8  # what onnxruntime and the importer both read; set explicitly so onnx upgrades do not change bytes
DEFAULT_OUT = Path(__file__).resolve().parent / "news" / "models" / "news_mlp.onnx"


def weights(seed: int = SEED) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    p = rng.standard_normal((DIRECTIONS, DIM))
    p = p / np.sqrt((p * p).sum(axis=1, keepdims=True))
    # W1 is [in=64, out=64]: rows 0..31 read the query, rows 32..63 the document
    w1 = np.zeros((2 * DIM, HIDDEN))
    w2 = np.zeros((HIDDEN, 1))
    for k in range(DIRECTIONS):
        for j, (sq, sd, out) in enumerate([(1, 1, 1), (-1, -1, 1), (1, -1, -1), (-1, 1, -1)]):
            unit = 4 * k + j
            w1[:DIM, unit] = sq * p[k]
            w1[DIM:, unit] = sd * p[k]
            w2[unit, 0] = out / DIRECTIONS
    w1 += 0.01 * rng.standard_normal(w1.shape)
    w2 += 0.001 * rng.standard_normal(w2.shape)
    b1 = 0.001 * rng.standard_normal(HIDDEN)
    b2 = np.zeros(1)
    return {name: a.astype(np.float32) for name, a in (("W1", w1), ("b1", b1), ("W2", w2), ("b2", b2))}


def make_model(seed: int = SEED) -> onnx.ModelProto:
    w = weights(seed)
    graph = helper.make_graph(
        [
            helper.make_node("Concat", ["query_input", "doc_input"], ["x"], axis=1, name="concat"),
            helper.make_node("Gemm", ["x", "W1", "b1"], ["h"], name="hidden"),
            helper.make_node("Relu", ["h"], ["r"], name="relu"),
            helper.make_node("Gemm", ["r", "W2", "b2"], ["score"], name="out"),
        ],
        "news_mlp",
        [helper.make_tensor_value_info("query_input", TensorProto.FLOAT, ["batch", DIM]),
         helper.make_tensor_value_info("doc_input", TensorProto.FLOAT, ["batch", DIM])],
        [helper.make_tensor_value_info("score", TensorProto.FLOAT, ["batch", 1])],
        [numpy_helper.from_array(a, name) for name, a in w.items()],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              producer_name="tensorrank examples/make_model.py", producer_version="1")
    model.ir_version = IR_VERSION
    model.doc_string = (f"News ranking MLP: concat(query[{DIM}], doc[{DIM}]) -> Gemm {2 * DIM}x{HIDDEN} + Relu "
                        f"-> Gemm {HIDDEN}x1. Made by examples/make_model.py, seed {seed}.")
    onnx.checker.check_model(model)
    return model


def model_bytes(seed: int = SEED) -> bytes:
    return make_model(seed).SerializeToString()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    ap.add_argument("--seed", type=int, default=SEED)
    args = ap.parse_args()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_bytes(model_bytes(args.seed))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
