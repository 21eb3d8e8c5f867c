"""`tensorrank serve` as a real subprocess: feed over gRPC, rank, and check every score
against onnxruntime run on the model one document at a time; then the refusals, the
reflection service, deadlines and metrics, all on the same server."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass

import grpc
import numpy as np
import onnx
import pytest
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase

from proto.tensorrank.v1 import ranking_pb2 as pb
from tests.application.helpers import OrtModel

from .serving import DIM, RERANK, Server, doc_id, feed, metric, tensor, write_package

N_JSON = 300  # fed as Vespa JSON
N_BINARY = 3700  # fed as binary puts: with the others, enough that the heavy profile takes a while
MAX_HITS = 500
UPDATED, REMOVED = 7, 11


@dataclass
class Served:
    server: Server
    model: onnx.ModelProto
    ids: list[str]  # live news documents
    embedding: dict[str, np.ndarray]
    popularity: dict[str, np.float32]
    views: dict[str, int]
    titles: dict[str, str]


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    rng = np.random.default_rng(20261126)
    root = tmp_path_factory.mktemp("serve")
    app, model = write_package(root / "app", rng)
    server = Server(app, root / "data", "--max-hits", str(MAX_HITS), "--max-message-mb", "1", metrics=True)
    try:
        n = N_JSON + N_BINARY
        emb = rng.standard_normal((n, DIM)).astype(np.float32)
        pop = rng.random(n).astype(np.float32)
        ids = [doc_id(f"doc{i:05d}") for i in range(n)]
        ops = []
        for i in range(n):
            if i < N_JSON:
                op = {"put": ids[i], "fields": {"embedding": {"values": emb[i].tolist()},
                                                "popularity": float(pop[i]), "views": 10**10 + i,
                                                "title": f"title {i} ✓"}}
                ops.append(pb.FeedOperation(request_id=f"json-{i}", json=json.dumps(op)))
            else:
                fields = {"embedding": tensor(emb[i], f"tensor<float>(x[{DIM}])"),
                          "popularity": tensor(pop[i], "float")}
                ops.append(pb.FeedOperation(request_id=f"bin-{i}", put=pb.Put(id=ids[i], fields=fields)))
        ops.append(pb.FeedOperation(json=json.dumps({"update": ids[UPDATED],
                                                     "fields": {"popularity": {"assign": 0.25}}})))
        ops.append(pb.FeedOperation(remove=pb.Remove(id=ids[REMOVED])))
        ops += [pb.FeedOperation(put=pb.Put(id=doc_id(i, "other"), fields={"v": tensor([i, 1], "tensor<float>(x[2])")}))
                for i in range(5)]
        results = feed(server.stub, ops)
        assert len(results) == len(ops)
        assert all(r.ok for r in results), [r.error for r in results if not r.ok][:3]
        assert [r.request_id for r in results[:2]] == ["json-0", "json-1"]
        assert results[n].request_id == str(n)  # no request_id given: the position in the stream
        pop[UPDATED] = 0.25
        live = [i for i in range(n) if i != REMOVED]
        yield Served(
            server, model, [ids[i] for i in live], {ids[i]: emb[i] for i in live}, {ids[i]: pop[i] for i in live},
            {ids[i]: 10**10 + i for i in live if i < N_JSON}, {ids[i]: f"title {i} ✓" for i in live if i < N_JSON},
        )
    finally:
        server.kill()


def _query(rng_seed: int = 5) -> np.ndarray:
    return np.random.default_rng(rng_seed).standard_normal(DIM).astype(np.float32)


def _rank(s: Served, **kw: object) -> pb.RankResponse:
    q = kw.pop("q", _query())
    request = pb.RankRequest(schema="news", rank_profile="ml", hits=20,
                             query={"query(q)": tensor(q, f"tensor<float>(x[{DIM}])")})
    for k, v in kw.items():
        if k == "doc_ids":
            request.doc_ids.extend(v)
        else:
            setattr(request, k, v)
    response: pb.RankResponse = s.server.stub.Rank(request, timeout=60)
    return response


def _ort_scores(s: Served, q: np.ndarray) -> dict[str, float]:
    ort = OrtModel(s.model)
    return {i: float(ort.run({"doc_input": s.embedding[i][None], "query_input": q[None]})["score"][0, 0])
            for i in s.ids}


def test_scores_match_onnxruntime_document_by_document(served: Served) -> None:
    s, q = served, _query()
    response = _rank(s, q=q, hits=120, all_scores=True)
    score = _ort_scores(s, q)
    first = {i: score[i] + 0.1 * float(s.popularity[i]) for i in s.ids}
    second = {i: score[i] - 3 * float(s.popularity[i]) for i in s.ids}

    assert response.coverage == pb.Coverage(documents=len(s.ids), scored=len(s.ids), full=True)
    assert sorted(response.scored_ids) == sorted(s.ids)
    np.testing.assert_allclose(response.scores, [first[i] for i in response.scored_ids], rtol=1e-5, atol=1e-5)

    # the best RERANK by first phase, re-ranked by second phase, then the rest by first phase; ties by id
    by_first = sorted(s.ids, key=lambda i: (-first[i], i))
    top = sorted(by_first[:RERANK], key=lambda i: (-second[i], i))
    want = [*top, *by_first[RERANK:120]]
    assert [h.id for h in response.hits] == want
    # Vespa's hit collector: the second phase scored these lower than the first did, so the
    # rest move below them, by the ratio of the two ranges (each at least 1)
    old, new = np.array([first[i] for i in top]), np.array([second[i] for i in top])
    assert old.min() > new.min()
    scale = max(new.max() - new.min(), 1.0) / max(old.max() - old.min(), 1.0)
    rest = [first[i] * scale + new.min() - old.min() * scale for i in by_first[RERANK:120]]
    np.testing.assert_allclose([h.relevance for h in response.hits], [second[i] for i in top] + rest,
                               rtol=1e-5, atol=1e-5)
    for h in response.hits:
        f = h.match_features
        assert f["onnx(my_model).score"].type == "tensor<float>(d0[1],d1[1])"
        np.testing.assert_allclose(np.frombuffer(f["onnx(my_model).score"].values, "<f4"), [score[h.id]],
                                   rtol=1e-5, atol=1e-5)
        assert f["attribute(popularity)"].type == "double"
        assert np.frombuffer(f["attribute(popularity)"].values, "<f8")[0] == pytest.approx(s.popularity[h.id])
    assert response.scoring_ms > 0


def test_offset_pages_and_doc_ids(served: Served) -> None:
    s, q = served, _query(6)
    everything = [h.id for h in _rank(s, q=q, hits=40).hits]
    page = _rank(s, q=q, hits=10, offset=25)
    assert [h.id for h in page.hits] == everything[25:35]

    subset = s.ids[100:130]
    response = _rank(s, q=q, hits=5, doc_ids=subset, all_scores=True)
    assert response.coverage.scored == 30 and response.coverage.documents == len(s.ids)
    assert response.scored_ids == subset
    score = _ort_scores(s, q)
    np.testing.assert_allclose(response.scores, [score[i] + 0.1 * float(s.popularity[i]) for i in subset],
                               rtol=1e-5, atol=1e-5)
    # all 30 are within the rerank count: ordered by the second phase
    second = {i: score[i] - 3 * float(s.popularity[i]) for i in subset}
    assert [h.id for h in response.hits] == sorted(subset, key=lambda i: (-second[i], i))[:5]


def test_a_query_chosen_index_in_range(served: Served) -> None:
    # the `pick` model's table is [10, 20, 30, 40]; document i of `other` has v = [i, 1]
    r = served.server.stub.Rank(pb.RankRequest(schema="other", rank_profile="pick", hits=5,
                                               query={"i": tensor([2.0], "tensor<float>(d0[1])")}), timeout=30)
    assert [(h.id, h.relevance) for h in r.hits] == [(doc_id(i, "other"), 30.0 + i + 1) for i in (4, 3, 2, 1, 0)]


def test_ties_are_broken_by_document_id(served: Served) -> None:
    s = served
    response = s.server.stub.Rank(pb.RankRequest(rank_profile="dot", schema="news", hits=15,
                                                 query={"q": tensor(np.zeros(DIM), f"tensor<float>(x[{DIM}])")}))
    assert [h.id for h in response.hits] == sorted(s.ids)[:15]
    assert all(h.relevance == 0 for h in response.hits)


def test_get_returns_fields_as_tensors(served: Served) -> None:
    s = served
    i = s.ids[3]
    doc = s.server.stub.Get(pb.GetRequest(id=i))
    assert doc.found
    assert set(doc.fields) == {"embedding", "popularity", "views", "title"}
    assert doc.fields["embedding"].type == f"tensor<float>(x[{DIM}])"
    np.testing.assert_array_equal(np.frombuffer(doc.fields["embedding"].values, "<f4"), s.embedding[i])
    assert doc.fields["popularity"].type == "float"
    assert np.frombuffer(doc.fields["popularity"].values, "<f4")[0] == s.popularity[i]
    assert doc.fields["views"].type == "long"
    assert int(np.frombuffer(doc.fields["views"].values, "<i8")[0]) == s.views[i]
    assert doc.fields["title"].type == "string"
    assert doc.fields["title"].values.decode() == s.titles[i]

    updated = s.server.stub.Get(pb.GetRequest(id=doc_id(f"doc{UPDATED:05d}")))
    assert np.frombuffer(updated.fields["popularity"].values, "<f4")[0] == np.float32(0.25)
    binary = s.server.stub.Get(pb.GetRequest(id=s.ids[-1]))
    assert set(binary.fields) == {"embedding", "popularity"}  # unset fields are left out
    assert s.server.stub.Get(pb.GetRequest(id=doc_id(f"doc{REMOVED:05d}"))) == pb.GetResponse(found=False)
    assert s.server.stub.Get(pb.GetRequest(id=doc_id("never-fed"))) == pb.GetResponse(found=False)


def test_get_application(served: Served) -> None:
    info = served.server.stub.GetApplication(pb.GetApplicationRequest())
    assert info.device == "cpu" and info.device_reason == "--device cpu"
    schemas = {x.name: x for x in info.schemas}
    assert set(schemas) == {"news", "other"}
    news = schemas["news"]
    assert news.documents == len(served.ids)
    assert [(f.name, f.type, f.attribute) for f in news.fields] == [
        ("embedding", f"tensor<float>(x[{DIM}])", True), ("popularity", "float", True), ("views", "long", True),
        ("title", "string", False)]
    profiles = {p.name: p for p in news.rank_profiles}
    assert set(profiles) == {"ml", "dot", "heavy"}
    ml = profiles["ml"]
    assert [(i.name, i.type, i.has_default) for i in ml.inputs] == [("query(q)", f"tensor<float>(x[{DIM}])", False)]
    assert list(ml.match_features) == ["onnx(my_model).score", "attribute(popularity)"]
    assert ml.has_second_phase and ml.rerank_count == RERANK
    assert list(ml.models) == ["models/my_model.onnx"]
    assert not profiles["dot"].has_second_phase and profiles["dot"].rerank_count == 0


def _bad_ranks(s: Served) -> list[tuple[str, pb.RankRequest, grpc.StatusCode, str]]:
    T = f"tensor<float>(x[{DIM}])"
    q = tensor(_query(), T)

    def req(**kw: object) -> pb.RankRequest:
        base: dict[str, object] = {"schema": "news", "rank_profile": "ml", "hits": 10, "query": {"q": q}}
        base.update(kw)
        doc_ids = base.pop("doc_ids", [])
        r = pb.RankRequest(**base)  # type: ignore[arg-type]
        r.doc_ids.extend(doc_ids)
        return r

    INVALID, NOT_FOUND = grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND
    return [
        ("hits 0", req(hits=0), INVALID, "hits must be at least 1"),
        ("hits over the limit", req(hits=MAX_HITS + 1), INVALID, f"over the server's limit of {MAX_HITS}"),
        ("unknown schema", req(schema="nope"), NOT_FOUND, "unknown schema 'nope' (schemas: news, other)"),
        ("no schema, two exist", req(schema=""), INVALID, "name one in the request's 'schema'"),
        ("unknown profile", req(rank_profile="nope"), NOT_FOUND,
         "has no rank profile 'nope' (profiles: dot, heavy, ml)"),
        ("no profile", req(rank_profile=""), INVALID, "names no rank profile"),
        ("abstract profile", req(rank_profile="base"), grpc.StatusCode.FAILED_PRECONDITION,
         "exists only for other profiles to inherit"),
        ("unknown input", req(query={"q": q, "query(zz)": q}), INVALID, "has no input query(zz)"),
        ("input twice", req(query={"q": q, "query(q)": q}), INVALID, "query(q) is given twice"),
        ("bad type syntax", req(query={"q": pb.Tensor(type="tensor<float>(x[", values=q.values)}), INVALID,
         "bad tensor type"),
        ("wrong dimensions", req(query={"q": tensor(np.zeros(4), "tensor<float>(x[4])")}), INVALID,
         f"expected {T}, got tensor<float>(x[4])"),
        ("wrong byte count", req(query={"q": pb.Tensor(type=T, values=b"\0" * 10)}), INVALID,
         f"needs {4 * DIM} bytes ({DIM} cells of 4), got 10"),
        ("unknown cell type", req(query={"q": pb.Tensor(type=f"tensor<int32>(x[{DIM}])", values=q.values)}),
         INVALID, "unknown Vespa cell type 'int32'"),
        ("malformed doc id", req(doc_ids=["news-1"]), INVALID, "doc_ids[0]: malformed document id 'news-1'"),
        ("doc id of another type", req(doc_ids=[s.ids[0], doc_id(1, "other")]), INVALID,
         "doc_ids[1] 'id:test:other::1' is a document of type 'other'"),
        ("unknown doc id", req(doc_ids=[s.ids[0], doc_id("nope")]), NOT_FOUND,
         "1 of the 2 doc_ids are not in schema 'news': 'id:test:news::nope'"),
        ("removed doc id", req(doc_ids=[doc_id(f"doc{REMOVED:05d}")]), NOT_FOUND, "are not in schema 'news'"),
        ("doc id twice", req(doc_ids=[s.ids[0], s.ids[0]]), INVALID, "is listed twice"),
        ("query index out of range", req(schema="other", rank_profile="pick",
                                         query={"i": tensor([7.0], "tensor<float>(d0[1])")}), INVALID,
         "gather node 'pick_gather': index 7 is out of range for an axis of size 4 (the indices depend on the "
         "query's values)"),
        ("message over the limit", req(query={"q": pb.Tensor(type=T, values=b"\0" * (2 << 20))}),
         grpc.StatusCode.RESOURCE_EXHAUSTED, "larger than max"),
    ]


def test_bad_requests_get_specific_codes_and_messages(served: Served) -> None:
    s = served
    seen = 0
    for name, request, code, text in _bad_ranks(s):
        with pytest.raises(grpc.RpcError) as err:
            s.server.stub.Rank(request, timeout=30)
        e = err.value
        assert (e.code(), name) == (code, name), e.details()
        assert text in e.details(), (name, e.details())
        seen += 1

    gets = [
        ("malformed id", "id:test:news", "malformed document id 'id:test:news'"),
        ("empty id", "", "malformed document id ''"),
        ("unknown document type", "id:test:nope::1", "unknown document type 'nope' (document types: news, other)"),
        ("bad key/value part", "id:test:news:x=1:a", "'x=1' must be empty, n=<number> or g=<group>"),
    ]
    for name, i, text in gets:
        with pytest.raises(grpc.RpcError) as err:
            s.server.stub.Get(pb.GetRequest(id=i), timeout=10)
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT, name
        assert text in err.value.details(), (name, err.value.details())
        seen += 1

    # a refused feed operation is answered in its place, and the stream goes on
    T = f"tensor<float>(x[{DIM}])"
    good = tensor(np.ones(DIM), T)
    bad_ops = [
        ("wrong type", pb.Put(id=doc_id("b1"), fields={"embedding": tensor(np.ones(3), "tensor<float>(x[3])")}),
         f"the field is {T}, got a value of type 'tensor<float>(x[3])'"),
        ("bad type syntax", pb.Put(id=doc_id("b2"), fields={"embedding": pb.Tensor(type="tensor<", values=b"")}),
         "bad tensor type 'tensor<'"),
        ("byte count", pb.Put(id=doc_id("b3"), fields={"embedding": pb.Tensor(type=T, values=b"\0" * 7)}),
         f"takes {4 * DIM} bytes of raw little-endian float cells ({DIM} cells), got 7 bytes"),
        ("float cells for a long", pb.Put(id=doc_id("b4"), fields={"views": tensor(1.5, "float")}),
         "send its cells as long, not as 'float'"),
        ("unknown field", pb.Put(id=doc_id("b5"), fields={"nope": good}), "unknown field"),
        ("NaN", pb.Put(id=doc_id("b6"), fields={"embedding": tensor(np.full(DIM, np.nan), T)}),
         "NaN or infinity is not allowed"),
        ("not UTF-8", pb.Put(id=doc_id("b7"), fields={"title": pb.Tensor(type="string", values=b"\xff")}),
         "not valid UTF-8"),
        ("malformed id", pb.Put(id="doc-1", fields={"embedding": good}), "malformed document id 'doc-1'"),
        ("unknown type", pb.Put(id=doc_id(1, "nope"), fields={}), "unknown document type 'nope'"),
        ("bad json", "{\"put\": ", "the operation is not valid JSON"),
        ("json unknown key", json.dumps({"put": doc_id("b8"), "fields": {}, "extra": 1}), "unknown key 'extra'"),
        ("update of nothing", json.dumps({"update": doc_id("b9"), "fields": {"popularity": {"assign": 1.0}}}),
         "document not found, nothing updated"),
        ("empty", None, "the operation is empty: set one of json, put or remove"),
    ]
    ops = []
    for name, body, _ in bad_ops:
        if isinstance(body, pb.Put):
            ops.append(pb.FeedOperation(request_id=name, put=body))
        elif isinstance(body, str):
            ops.append(pb.FeedOperation(request_id=name, json=body))
        else:
            ops.append(pb.FeedOperation(request_id=name))
    ops.insert(3, pb.FeedOperation(request_id="fine", put=pb.Put(id=doc_id("fine"), fields={"embedding": good})))
    results = feed(s.server.stub, ops)
    assert [r.request_id for r in results] == [op.request_id for op in ops]
    by_name = {r.request_id: r for r in results}
    assert by_name["fine"].ok
    for name, _, text in bad_ops:
        assert not by_name[name].ok, name
        assert text in by_name[name].error, (name, by_name[name].error)
        seen += 1
    assert feed(s.server.stub, [pb.FeedOperation(remove=pb.Remove(id=doc_id("fine")))])[0].ok

    with pytest.raises(grpc.RpcError) as err:  # one message over the limit ends the stream
        feed(s.server.stub, [pb.FeedOperation(put=pb.Put(id=doc_id("big"), fields={
            "embedding": pb.Tensor(type=T, values=b"\0" * (2 << 20))}))])
    assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    seen += 1

    assert seen >= 25
    assert s.server.status() == "SERVING"
    assert s.server.proc.poll() is None


def test_reflection_lists_the_service_and_its_methods(served: Served) -> None:
    db = ProtoReflectionDescriptorDatabase(served.server.channel)
    services = db.get_services()
    assert "tensorrank.v1.Ranking" in services
    assert "grpc.health.v1.Health" in services
    from google.protobuf.descriptor_pool import DescriptorPool

    pool = DescriptorPool(db)
    service = pool.FindServiceByName("tensorrank.v1.Ranking")
    assert [m.name for m in service.methods] == ["Rank", "Feed", "Get", "GetApplication", "FeedBatches"]
    feed_method = service.FindMethodByName("Feed")
    assert feed_method.client_streaming and feed_method.server_streaming
    assert pool.FindMessageTypeByName("tensorrank.v1.RankRequest").fields_by_name["hits"].number == 4


def test_deadline_stops_scoring_and_the_server_stays_healthy(served: Served) -> None:
    s = served
    before = metric(s.server.scrape(), "tensorrank_scoring_deadline_stops_total", {"profile": "heavy"}) or 0.0
    start = time.monotonic()
    with pytest.raises(grpc.RpcError) as err:
        s.server.stub.Rank(pb.RankRequest(schema="news", rank_profile="heavy", hits=10), timeout=0.05)
    assert err.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    # the scoring thread stopped at the deadline too (it counts each stop): it does not run on unseen
    stops = before
    while time.monotonic() < start + 10 and stops == before:
        stops = metric(s.server.scrape(), "tensorrank_scoring_deadline_stops_total", {"profile": "heavy"}) or 0.0
        time.sleep(0.05)
    assert stops == before + 1
    assert s.server.status() == "SERVING"
    assert len(_rank(s, hits=3).hits) == 3


def test_metrics(served: Served) -> None:
    s = served
    _rank(s, hits=5)
    text = s.server.scrape()
    assert (metric(text, "tensorrank_rpc_latency_seconds_count", {"method": "Rank", "code": "OK"}) or 0) >= 1
    assert (metric(text, "tensorrank_rank_latency_seconds_count", {"schema": "news", "profile": "ml"}) or 0) >= 1
    assert (metric(text, "tensorrank_documents_scored_total", {"schema": "news", "profile": "ml"}) or 0) >= len(s.ids)
    assert (metric(text, "tensorrank_feed_operations_total", {"operation": "put", "result": "ok"}) or 0) >= len(s.ids)
    assert metric(text, "tensorrank_resident_documents", {"schema": "news"}) == len(s.ids)
    assert (metric(text, "tensorrank_resident_bytes", {"schema": "news"}) or 0) >= len(s.ids) * (4 * DIM + 12)
    assert metric(text, "tensorrank_serving") == 1
    assert metric(text, "tensorrank_device_info", {"device": "cpu", "reason": "--device cpu"}) == 1
    if (metric(text, "tensorrank_rpc_errors_total", {"method": "Rank", "code": "INVALID_ARGUMENT"}) or 0) == 0:
        with pytest.raises(grpc.RpcError):
            _rank(s, hits=0)
        text = s.server.scrape()
    assert (metric(text, "tensorrank_rpc_errors_total", {"method": "Rank", "code": "INVALID_ARGUMENT"}) or 0) >= 1


def test_binds_localhost_and_reports_serving(served: Served) -> None:
    assert served.server.address.startswith("127.0.0.1:")
    assert any(line.startswith("serving ") for line in served.server.lines)
