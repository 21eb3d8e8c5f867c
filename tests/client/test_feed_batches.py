"""FeedBatches: many operations per message, one result per operation, in order, and
each acknowledged operation durable, as with Feed."""

from __future__ import annotations

import json

import grpc

from proto.tensorrank.v1 import ranking_pb2 as pb
from proto.tensorrank.v1 import ranking_pb2_grpc as pb_grpc


def _put(key: str, **fields: object) -> pb.FeedOperation:
    return pb.FeedOperation(request_id=key, json=json.dumps({"put": f"id:news:news::{key}", "fields": fields}))


def test_results_come_back_per_operation_in_order(server: str) -> None:
    good = {"embedding": {"values": [0.5] * 32}, "popularity": 0.25}
    batches = [
        pb.FeedBatch(operations=[_put("b1", **good), _put("b2", embedding={"values": [1.0] * 3}),
                                 _put("b3", **good)]),
        pb.FeedBatch(operations=[pb.FeedOperation(request_id="b4", remove=pb.Remove(id="id:news:news::b1"))]),
        pb.FeedBatch(operations=[]),
    ]
    from server.client import Client

    with Client(server) as client:
        client.wait_serving(60)
    with grpc.insecure_channel(server) as channel:
        stub = pb_grpc.RankingStub(channel)
        answers = list(stub.FeedBatches(iter(batches), timeout=60))
        assert [len(a.results) for a in answers] == [3, 1, 0]
        first = answers[0].results
        assert [r.request_id for r in first] == ["b1", "b2", "b3"]
        assert [r.ok for r in first] == [True, False, True]
        assert "embedding" in first[1].error and "32" in first[1].error
        assert answers[1].results[0].ok
        assert not stub.Get(pb.GetRequest(id="id:news:news::b1"), timeout=10).found
        assert not stub.Get(pb.GetRequest(id="id:news:news::b2"), timeout=10).found
        assert stub.Get(pb.GetRequest(id="id:news:news::b3"), timeout=10).found
