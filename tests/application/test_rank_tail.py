"""Ranking through a monotone tail: with score = f(g(doc)), the numpy backend computes g for
every document and f for the few that can win. The hits, their scores and the tie-breaks
are those of the whole first-phase program over every document."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

import cpu_fallback.backend
import tensor_ir.backend
from cpu_fallback import NumpyBackend
from gpu_engine.backend import CupyBackend
from server.application.package import Application
from server.ranking import Ranker, RankResult
from server.store.view import ShardView
from tests.conftest import SEED

from .helpers import OrtModel, write_app

N = 100_000
SCHEMA = """schema s {
  document s {
    field embedding type tensor<float>(x[16]) { indexing: attribute }
    field bonus type double { indexing: attribute }
  }
  rank-profile p {
    inputs { query(shift) double: 0 }
    function doc() { expression: rename(attribute(embedding), x, d1) }
    first-phase { expression: sum(onnx("lightweight.onnx")) * 2 + query(shift) }
  }
  rank-profile rerank inherits p {
    second-phase { rerank-count: 20  expression: attribute(bonus) }
  }
}
"""


W = (np.random.default_rng(SEED).standard_normal((16, 1)) / 4).astype(np.float32)


def lightweight() -> Any:
    """Sigmoid(doc[16] . w + b), as bench/models.py's lightweight model."""
    inits = [numpy_helper.from_array(W, "w"),
             numpy_helper.from_array(np.array([0.1], np.float32), "b")]
    nodes = [helper.make_node("MatMul", ["doc", "w"], ["x"]), helper.make_node("Add", ["x", "b"], ["y"]),
             helper.make_node("Sigmoid", ["y"], ["score"])]
    graph = helper.make_graph(nodes, "lightweight",
                              [helper.make_tensor_value_info("doc", TensorProto.FLOAT, ["batch", 16])],
                              [helper.make_tensor_value_info("score", TensorProto.FLOAT, ["batch", 1])], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Application:
    root = tmp_path_factory.mktemp("app")
    return Application.load(write_app(root, {"s": SCHEMA}, {"lightweight.onnx": lightweight()}))


@pytest.fixture(scope="module")
def shard() -> ShardView:
    rng = np.random.default_rng(SEED)
    emb = rng.standard_normal((N, 16)).astype(np.float32)
    # 15 best documents, in different blocks, all scoring sigmoid(> 20) = 1.0: ties broken by id
    emb[rng.choice(N, 15, replace=False)] = np.sign(W[:, 0]) * rng.uniform(20, 40, (15, 1)).astype(np.float32)
    return ShardView([f"doc{i:06d}" for i in range(N)], {"embedding": emb, "bonus": rng.random(N)})


def hits(result: RankResult) -> list[tuple[str, float, int]]:
    return [(h.id, h.score, h.row) for h in result.hits]


def tail_docs(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Document counts the tail programs are run for, from here on."""
    counts: list[int] = []
    original = tensor_ir.backend.run_tail

    def spy(tail: Any, feeds: Any, head: Any) -> Any:
        counts.append(int(head.shape[0]))
        return original(tail, feeds, head)

    monkeypatch.setattr(tensor_ir.backend, "run_tail", spy)
    monkeypatch.setattr(cpu_fallback.backend, "run_tail", spy)
    return counts


@pytest.mark.parametrize(("profile", "query", "count", "offset"), [
    ("p", {}, 10, 0), ("p", {"shift": -0.5}, 12, 5), ("rerank", {"shift": 1.0}, 12, 3),
])
def test_tail_path_gives_the_hits_of_scoring_every_document(app: Application, shard: ShardView,
                                                             monkeypatch: pytest.MonkeyPatch, profile: str,
                                                             query: dict[str, float], count: int,
                                                             offset: int) -> None:
    ranker = Ranker(app.profile("s", profile), NumpyBackend())
    assert ranker.head_tail is not None
    whole = Ranker(app.profile("s", profile), NumpyBackend())
    whole.head_tail = None  # today's path: the first phase over every document
    counts = tail_docs(monkeypatch)
    got = ranker.rank(shard, query, hits=count, offset=offset)
    assert counts and sum(counts) < N // 4  # the tail ran on block maxima and a few blocks
    want = whole.rank(shard, query, hits=count, offset=offset)
    assert hits(got) == hits(want)
    assert hits(ranker.rank(shard, query, hits=count, offset=offset, all_scores=True)) == hits(want)
    assert got.scored == want.scored == N


def test_tied_best_documents_come_in_id_order_with_onnxruntime_scores(app: Application, shard: ShardView) -> None:
    result = Ranker(app.profile("s", "p"), NumpyBackend()).rank(shard, {"shift": 0.25}, hits=20)
    emb = shard.columns["embedding"]
    tied = np.flatnonzero(np.abs(emb).min(axis=1) >= 20)
    assert len(tied) == 15
    assert [h.row for h in result.hits[:15]] == tied.tolist()
    assert all(h.score == 2.25 for h in result.hits[:15])
    rows = [h.row for h in result.hits[13:]]  # two of the ties, then the next best
    ort = OrtModel(lightweight()).run({"doc": emb[rows]})["score"].reshape(-1).astype(np.float64)
    np.testing.assert_allclose([h.score for h in result.hits[13:]], ort * 2 + 0.25, rtol=1e-6)


def test_live_masks_rows_and_small_shards_run_the_tail_over_every_document(app: Application, shard: ShardView,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    ranker = Ranker(app.profile("s", "p"), NumpyBackend())
    whole = Ranker(app.profile("s", "p"), NumpyBackend())
    whole.head_tail = None
    counts = tail_docs(monkeypatch)
    live = np.random.default_rng(SEED).random(N) > 0.01
    masked = ShardView(shard.ids, shard.columns, live)
    small = ShardView(shard.ids[:5000], {k: v[:5000] for k, v in shard.columns.items()})
    empty = ShardView([], {k: v[:0] for k, v in shard.columns.items()})
    rows = list(range(0, N, 7))
    for view, subset, scored in ((masked, None, N), (shard, rows, len(rows)), (small, None, 5000), (empty, None, 0)):
        counts.clear()
        got = ranker.rank(view, {}, hits=10, rows=subset)
        assert hits(got) == hits(whole.rank(view, {}, hits=10, rows=subset))
        assert counts == [scored]  # the blocks would not pay, or cannot skip removed documents


def test_every_score_reported_is_the_same_number(app: Application, shard: ShardView) -> None:
    ranker = Ranker(app.profile("s", "p"), NumpyBackend())
    result = ranker.rank(shard, {"shift": 0.5}, hits=10, all_scores=True)
    assert result.scores is not None
    assert hits(result) == hits(ranker.rank(shard, {"shift": 0.5}, hits=10))
    assert [h.score for h in result.hits] == result.scores[[h.row for h in result.hits]].tolist()


def test_backends_without_a_cheaper_selection_keep_the_whole_program(app: Application) -> None:
    backend = CupyBackend.emulated()
    assert not backend.selects_through_tail
    assert Ranker(app.profile("s", "p"), backend).head_tail is None
