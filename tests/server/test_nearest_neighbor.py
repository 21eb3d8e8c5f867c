"""Nearest-neighbour features through the server: the ranker's query vectors (the request's
nearest_neighbor map and the default), the squared norms it keeps per column, and a real
`tensorrank serve` subprocess fed and queried over gRPC, hits ordered as numpy says."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from cpu_fallback import NumpyBackend
from proto.tensorrank.v1 import ranking_pb2 as pb
from server.application.package import Application
from server.cli import main
from server.nearest_neighbor import KeptNorms
from server.ranking import Ranker
from server.store.view import ShardView
from tensor_ir.expr.errors import RankingError

from .serving import Server, doc_id, feed, tensor

SCHEMA = """schema nn {
  document nn {
    field embedding type tensor<float>(x[4]) {
      indexing: attribute | index
      attribute {
        distance-metric: angular
      }
    }
    field e2 type tensor<float>(x[4]) {
      indexing: attribute
    }
  }
  rank-profile near {
    inputs {
      query(q) tensor<float>(x[4])
      query(other) tensor<float>(x[4])
    }
    first-phase { expression: closeness(field, embedding) }
    match-features { distance(field, embedding) }
  }
  rank-profile by_default {
    inputs {
      query(qe) tensor<float>(x[4])
    }
    first-phase { expression: closeness(field, e2) }
  }
}
"""
N = 500


def _angle(docs: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Vespa's angular distance, written out: the angle between the vectors."""
    d, v = docs.astype(np.float64), q.astype(np.float64)
    cos = (d @ v) / np.sqrt((d * d).sum(axis=1) * (v @ v))
    return np.arccos(np.clip(cos, -1, 1))


def _euclidean(docs: np.ndarray, q: np.ndarray) -> np.ndarray:
    return np.sqrt(((docs.astype(np.float64) - q.astype(np.float64)) ** 2).sum(axis=1))


def _package(root: Path) -> Path:
    (root / "schemas").mkdir(parents=True)
    (root / "schemas" / "nn.sd").write_text(SCHEMA)
    return root


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Application:
    return Application.load(_package(tmp_path_factory.mktemp("nn") / "app"))


def _shard(rng: np.random.Generator, n: int = 40) -> tuple[ShardView, np.ndarray, np.ndarray]:
    emb = rng.standard_normal((n, 4)).astype(np.float32)
    e2 = rng.standard_normal((n, 4)).astype(np.float32)
    return ShardView([doc_id(f"d{i:03d}", "nn") for i in range(n)], {"embedding": emb, "e2": e2}), emb, e2


def test_the_request_names_the_query_vector_of_a_field(app: Application) -> None:
    rng = np.random.default_rng(7)
    shard, emb, _ = _shard(rng)
    ranker = Ranker(app.schemas["nn"].profiles["near"], NumpyBackend())
    q, other = rng.standard_normal(4).astype(np.float32), rng.standard_normal(4).astype(np.float32)
    for name, vector in (("q", q), ("query(other)", other)):
        result = ranker.rank(shard, {"q": q, "other": other}, hits=10, nearest_neighbor={"embedding": name})
        angle = _angle(emb, vector)
        assert [h.row for h in result.hits] == list(np.argsort(angle, kind="stable")[:10])
        np.testing.assert_allclose([h.score for h in result.hits], 1 / (1 + np.sort(angle)[:10]), rtol=1e-5)
        np.testing.assert_allclose([h.match_features["distance(field, embedding)"] for h in result.hits],
                                   np.sort(angle)[:10], rtol=1e-5)


def test_without_a_name_the_only_query_input_of_the_fields_type_is_used(app: Application) -> None:
    rng = np.random.default_rng(8)
    shard, _, e2 = _shard(rng)
    ranker = Ranker(app.schemas["nn"].profiles["by_default"], NumpyBackend())
    qe = rng.standard_normal(4).astype(np.float32)
    result = ranker.rank(shard, {"qe": qe}, hits=5)
    distance = _euclidean(e2, qe)  # e2 has no distance-metric: euclidean
    assert [h.row for h in result.hits] == list(np.argsort(distance, kind="stable")[:5])
    np.testing.assert_allclose([h.score for h in result.hits], 1 / (1 + np.sort(distance)[:5]), rtol=1e-5)


def test_what_cannot_be_the_query_vector_is_refused_naming_the_field(app: Application) -> None:
    rng = np.random.default_rng(9)
    shard, _, _ = _shard(rng)
    near = Ranker(app.schemas["nn"].profiles["near"], NumpyBackend())
    q = rng.standard_normal(4).astype(np.float32)
    with pytest.raises(RankingError, match=r"field 'embedding'.*is not named.*query\(q\), query\(other\)"):
        near.rank(shard, {"q": q, "other": q}, hits=3)  # two inputs fit: which one is not said
    with pytest.raises(RankingError, match="which the request does not give"):
        near.rank(shard, {"q": q}, hits=3, nearest_neighbor={"embedding": "other"})
    with pytest.raises(RankingError, match=r"no query input query\(nope\)"):
        near.rank(shard, {"q": q}, hits=3, nearest_neighbor={"embedding": "nope"})
    with pytest.raises(RankingError, match=r"'e2'.*no distance or closeness feature for"):
        near.rank(shard, {"q": q}, hits=3, nearest_neighbor={"embedding": "q", "e2": "q"})


def test_norms_are_kept_per_buffer_and_extended_as_rows_arrive() -> None:
    rng = np.random.default_rng(10)
    buffer = rng.standard_normal((100, 8)).astype(np.float32)
    buffer[3] = 0
    norms = KeptNorms()
    assert norms.of(buffer[:0]).shape == (0,)  # an empty shard
    want = (buffer.astype(np.float64) ** 2).sum(axis=1)
    first = norms.of(buffer[:30])
    np.testing.assert_allclose(first, want[:30], rtol=1e-12)
    np.testing.assert_allclose(norms.of(buffer[:100]), want, rtol=1e-12)  # rows appended since
    inverse = norms.of(buffer[:60], "inverse", np.float32)
    assert inverse.dtype == np.float32 and inverse[3] == 0  # 1/|d|, 0 for the zero vector
    np.testing.assert_allclose(np.delete(inverse, 3), 1 / np.sqrt(np.delete(want[:60], 3)), rtol=1e-6)
    other = rng.standard_normal((30, 8)).astype(np.float32)  # another buffer: its own norms
    np.testing.assert_allclose(norms.of(other), (other.astype(np.float64) ** 2).sum(axis=1), rtol=1e-12)
    np.testing.assert_allclose(norms.of(buffer[10:20]), want[10:20], rtol=1e-12)  # not a [:n] view
    del buffer, first
    assert len(norms._kept) == 1  # the freed buffer's norms went with it


# ------------------------------------------------------------------ served over gRPC


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, list[str], np.ndarray]]:
    root = tmp_path_factory.mktemp("nn-serve")
    server = Server(_package(root / "app"), root / "data")
    try:
        rng = np.random.default_rng(20261203)
        emb = rng.standard_normal((N, 4)).astype(np.float32)
        ids = [doc_id(f"doc{i:04d}", "nn") for i in range(N)]
        ops = [pb.FeedOperation(put=pb.Put(id=ids[i], fields={"embedding": tensor(emb[i], "tensor<float>(x[4])"),
                                                              "e2": tensor(emb[i], "tensor<float>(x[4])")}))
               for i in range(N)]
        results = feed(server.stub, ops)
        assert all(r.ok for r in results), [r.error for r in results if not r.ok][:3]
        yield server, ids, emb
    finally:
        server.kill()


def test_served_closeness_orders_hits_as_numpy_does(served: tuple[Server, list[str], np.ndarray]) -> None:
    server, ids, emb = served
    rng = np.random.default_rng(11)
    q, other = rng.standard_normal(4).astype(np.float32), rng.standard_normal(4).astype(np.float32)
    request = pb.RankRequest(schema="nn", rank_profile="near", hits=20,
                             query={"q": tensor(q, "tensor<float>(x[4])"),
                                    "query(other)": tensor(other, "tensor<float>(x[4])")},
                             nearest_neighbor={"embedding": "other"})
    response = server.stub.Rank(request, timeout=30)
    angle = _angle(emb, other)
    order = np.argsort(angle, kind="stable")[:20]
    assert [h.id for h in response.hits] == [ids[i] for i in order]
    for h, i in zip(response.hits, order, strict=True):
        assert h.relevance == pytest.approx(1 / (1 + angle[i]), rel=1e-5)
        got = np.frombuffer(h.match_features["distance(field, embedding)"].values, dtype="<f8")
        assert got[0] == pytest.approx(angle[i], rel=1e-5)
        assert angle[i] <= math.pi


def test_served_default_and_refusal(served: tuple[Server, list[str], np.ndarray]) -> None:
    import grpc

    server, ids, emb = served
    qe = np.array([1, -1, 0.5, 2], np.float32)
    response = server.stub.Rank(pb.RankRequest(schema="nn", rank_profile="by_default", hits=5,
                                               query={"qe": tensor(qe, "tensor<float>(x[4])")}), timeout=30)
    distance = _euclidean(emb, qe)
    assert [h.id for h in response.hits] == [ids[i] for i in np.argsort(distance, kind="stable")[:5]]
    with pytest.raises(grpc.RpcError) as e:
        server.stub.Rank(pb.RankRequest(schema="nn", rank_profile="near", hits=5,
                                        query={"q": tensor(qe, "tensor<float>(x[4])")},
                                        nearest_neighbor={"embeding": "q"}), timeout=30)
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "'embeding'" in (e.value.details() or "")


def test_the_query_command_passes_nearest_neighbor(served: tuple[Server, list[str], np.ndarray],
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    server, ids, emb = served
    q, other = [1.0, 0.0, 0.0, 0.0], [0.0, 0.0, 1.0, -1.0]
    assert main(["query", "--profile", "near", "--schema", "nn", "--query", f"q={json.dumps(q)}",
                 "--query", f"other={json.dumps(other)}", "--nearest-neighbor", "embedding=other", "--hits", "3",
                 "--target", server.address]) == 0
    hits = json.loads(capsys.readouterr().out)["hits"]
    angle = _angle(emb, np.asarray(other, np.float32))
    assert [h["id"] for h in hits] == [ids[i] for i in np.argsort(angle, kind="stable")[:3]]
    assert main(["query", "--profile", "near", "--query", f"q={json.dumps(q)}", "--nearest-neighbor", "embedding",
                 "--target", server.address]) == 1
    assert "expected FIELD=QUERY" in capsys.readouterr().err


def test_the_engine_computes_the_kept_norms_when_it_opens(tmp_path: Path) -> None:
    from server.engine import DeviceInfo, Engine
    from server.metrics import Metrics
    from server.nearest_neighbor import KEPT_NORMS, _owner

    app = _package(tmp_path / "app")
    rng = np.random.default_rng(12)
    emb = rng.standard_normal((30, 4)).astype(np.float32)
    engine = Engine.open(app, tmp_path / "data", NumpyBackend(), DeviceInfo("cpu", "test"), Metrics())
    ops = [{"put": doc_id(f"d{i}", "nn"), "fields": {"embedding": emb[i].tolist(), "e2": emb[i].tolist()}}
           for i in range(30)]
    assert all(r.ok for r in engine.feed(ops, [str(i) for i in range(30)]))
    engine.close()
    engine = Engine.open(app, tmp_path / "data", NumpyBackend(), DeviceInfo("cpu", "test"), Metrics())
    try:
        columns = engine.store.shard("nn").view().columns
        for field, kind in (("embedding", "inverse"), ("e2", "squared")):  # angular, euclidean
            kept = KEPT_NORMS._kept[id(_owner(columns[field]))]
            assert kept.rows[(kind, np.dtype(np.float32))] == 30, field  # before any query
    finally:
        engine.close()


def test_a_real_package_ranks_by_hamming_closeness() -> None:
    # sa-reverse-image-search: closeness(field, embedding_binary) over int8 bits, its query
    # vector by default the profile's only input of the field's type, query(q_bin)
    from tests.shared_data import shared

    app = Application.load(shared("vespa-apps") / "sa-reverse-image-search")  # skips where absent
    profile = app.schemas["image"].profiles["closeness_binary"]
    assert profile.nearest_neighbor["nearestNeighbor(embedding_binary)"].default == "q_bin"
    rng = np.random.default_rng(13)
    n = 200
    bits = rng.integers(-128, 128, (n, 96)).astype(np.int8)
    emb = rng.standard_normal((n, 768)).astype(np.float32)
    import ml_dtypes

    columns = {"embedding_binary": bits, "embedding": emb.astype(ml_dtypes.bfloat16)}
    shard = ShardView([doc_id(f"img{i:03d}", "image") for i in range(n)], columns)
    q_bin = rng.integers(-128, 128, 96).astype(np.int8)
    q = rng.standard_normal(768).astype(np.float32)
    result = Ranker(profile, NumpyBackend()).rank(shard, {"q": q, "q_bin": q_bin}, hits=10)
    hamming = np.unpackbits((bits ^ q_bin).view(np.uint8), axis=1).sum(axis=1)
    order = sorted(range(n), key=lambda i: (hamming[i], shard.ids[i]))[:10]  # ties by id
    assert [h.row for h in result.hits] == order
    for h in result.hits:
        assert h.match_features["distance(field, embedding_binary)"] == hamming[h.row]
        assert h.score == pytest.approx(1 / (1 + hamming[h.row]), rel=1e-12)
        cos = float(q.astype(np.float64) @ columns["embedding"][h.row].astype(np.float64))
        assert h.match_features["closeness_emb"] == pytest.approx(0.5 * (1 + cos), rel=1e-4, abs=1e-4)
