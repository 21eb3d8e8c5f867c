"""The example rank profile of DESIGN.md, end to end on the numpy backend, with every
score checked against onnxruntime run on the model document by document."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from server.application.package import Application

from .helpers import OrtModel, rank, write_app

# As in DESIGN.md; the second phase, left as "..." there, re-ranks by the model's score
# alone with popularity as a penalty, so that its order differs from the first phase's.
SCHEMA = """schema news {
  document news {
    field embedding type tensor<float>(x[64]) { indexing: attribute }
    field popularity type float { indexing: attribute }
  }
  rank-profile ml {
    inputs { query(q) tensor<float>(x[64]) }
    # my_model.onnx has inputs doc_input[batch,64] and query_input[batch,64]: ONNX axes are
    # d0, d1, ...; the binding may leave out a batch axis, which the document axis fills
    function doc_input() { expression: rename(attribute(embedding), x, d1) }
    function query_input() { expression: rename(query(q), x, d1) }
    first-phase { expression: sum(onnx("my_model.onnx")) + 0.1 * attribute(popularity) }
    second-phase { rerank-count: 100  expression: sum(onnx(my_model).score) - 3 * attribute(popularity) }
    match-features { onnx(my_model).score }
  }
}
"""
N_DOCS = 300
HITS = 120  # more than rerank-count: the rest come by first-phase score


def my_model(rng: np.random.Generator) -> onnx.ModelProto:
    """doc_input * query_input -> MatMul W -> Relu -> MatMul W2 = score[batch, 1]."""
    w = rng.standard_normal((64, 8)).astype(np.float32)
    w2 = rng.standard_normal((8, 1)).astype(np.float32)
    graph = helper.make_graph(
        [
            helper.make_node("Mul", ["doc_input", "query_input"], ["m"]),
            helper.make_node("MatMul", ["m", "W"], ["h"]),
            helper.make_node("Relu", ["h"], ["r"]),
            helper.make_node("MatMul", ["r", "W2"], ["score"]),
        ],
        "my_model",
        [helper.make_tensor_value_info("doc_input", TensorProto.FLOAT, ["batch", 64]),
         helper.make_tensor_value_info("query_input", TensorProto.FLOAT, ["batch", 64])],
        [helper.make_tensor_value_info("score", TensorProto.FLOAT, ["batch", 1])],
        [numpy_helper.from_array(w, "W"), numpy_helper.from_array(w2, "W2")],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_design_example_end_to_end(tmp_path: Path, rng: np.random.Generator) -> None:
    model = my_model(rng)
    app = Application.load(write_app(tmp_path, {"news": SCHEMA}, {"my_model.onnx": model}))
    profile = app.profile("news", "ml")
    assert set(profile.query_inputs) == {"q"}
    assert profile.models == ["models/my_model.onnx"]

    embedding = rng.standard_normal((N_DOCS, 64)).astype(np.float32)
    popularity = rng.random(N_DOCS).astype(np.float32)
    q = rng.standard_normal(64).astype(np.float32)
    result = rank(app, {"embedding": embedding, "popularity": popularity}, {"q": q},
                  schema="news", profile="ml", hits=HITS)

    # onnxruntime, one document at a time
    ort_model = OrtModel(model)
    score = np.array([ort_model.run({"doc_input": embedding[i:i + 1], "query_input": q[None]})["score"][0, 0]
                      for i in range(N_DOCS)], dtype=np.float64)
    first = score + 0.1 * popularity.astype(np.float64)
    second = score - 3 * popularity.astype(np.float64)
    assert result.scores is not None
    np.testing.assert_allclose(result.scores, first, rtol=1e-5, atol=1e-5)

    # the best 100 by first phase, re-ranked by second phase; then the rest by first phase
    ids = np.array([f"doc{i:03d}" for i in range(N_DOCS)])
    by_first = np.lexsort((ids, -first))
    top = by_first[:100]
    reranked = top[np.lexsort((ids[top], -second[top]))]
    want_rows = [*reranked, *by_first[100:HITS]]
    # Vespa's hit collector moves the rest below the re-ranked ones when the second phase
    # scores lower than the first: by the ratio of the two ranges, each at least 1
    old, new = first[top], second[top]
    assert old.min() > new.min()
    scale = max(new.max() - new.min(), 1.0) / max(old.max() - old.min(), 1.0)
    want_scores = [*second[reranked], *(first[by_first[100:HITS]] * scale + new.min() - old.min() * scale)]
    assert [h.row for h in result.hits] == want_rows
    np.testing.assert_allclose([h.score for h in result.hits], want_scores, rtol=1e-5, atol=1e-5)
    assert result.scored == N_DOCS

    for h in result.hits:
        # float32 sums of 64 terms: onnxruntime (MLAS) and BLAS add them in different orders on
        # different hosts, so the tolerance is absolute at the scale of the scores, as above
        np.testing.assert_allclose(h.match_features["onnx(my_model).score"], [[score[h.row]]], rtol=1e-5, atol=1e-5)


def test_design_example_checks(tmp_path: Path, rng: np.random.Generator) -> None:
    """`tensorrank check` on the same package describes the profile."""
    from server.cli import main

    write_app(tmp_path, {"news": SCHEMA}, {"my_model.onnx": my_model(rng)})
    assert main(["check", str(tmp_path)]) == 0
