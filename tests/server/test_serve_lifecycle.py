"""SIGTERM drains requests in flight and exits 0; a restart serves every acknowledged document."""

from __future__ import annotations

import queue
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import numpy as np
import pytest

from proto.tensorrank.v1 import ranking_pb2 as pb

from .serving import DIM, Server, doc_id, tensor, write_package

T = f"tensor<float>(x[{DIM}])"


def _put(i: int, emb: np.ndarray) -> pb.FeedOperation:
    return pb.FeedOperation(request_id=str(i), put=pb.Put(id=doc_id(i), fields={
        "embedding": tensor(emb[i], T), "popularity": tensor(i, "float")}))


def test_sigterm_drains_in_flight_requests_then_restart_keeps_documents(tmp_path: Path) -> None:
    rng = np.random.default_rng(7)
    app, _ = write_package(tmp_path / "app", rng)
    emb = rng.standard_normal((40, DIM)).astype(np.float32)
    server = Server(app, tmp_path / "data", "--drain-seconds", "20")
    try:
        # a feed stream that is open across the signal, fed step by step
        requests: queue.Queue[pb.FeedOperation | None] = queue.Queue()

        def ops() -> Iterator[pb.FeedOperation]:
            while (op := requests.get()) is not None:
                yield op

        responses = server.stub.Feed(ops(), timeout=60)
        for i in range(20):
            requests.put(_put(i, emb))
        assert [next(responses).request_id for _ in range(20)] == [str(i) for i in range(20)]

        for i in range(20, 40):
            requests.put(_put(i, emb))
        assert all(next(responses).ok for _ in range(20))
        server.proc.send_signal(signal.SIGTERM)

        # health turns NOT_SERVING (or the server stops answering new calls at all) ...
        deadline = time.monotonic() + 10
        status = "SERVING"
        while status == "SERVING" and time.monotonic() < deadline:
            try:
                status = server.status(timeout=2)
            except grpc.RpcError as e:
                status = e.code().name
            time.sleep(0.02)
        assert status in ("NOT_SERVING", "UNAVAILABLE"), status
        with pytest.raises(grpc.RpcError) as err:  # ... new requests are refused ...
            server.stub.GetApplication(pb.GetApplicationRequest(), timeout=5)
        assert err.value.code() == grpc.StatusCode.UNAVAILABLE

        # ... while the open stream goes on being served until the client ends it
        extra = rng.standard_normal((1, DIM)).astype(np.float32)
        requests.put(pb.FeedOperation(request_id="late", put=pb.Put(id=doc_id("late"), fields={
            "embedding": tensor(extra[0], T)})))
        late = next(responses)
        assert (late.request_id, late.ok) == ("late", True), late.error
        requests.put(None)
        assert list(responses) == []

        assert server.proc.wait(30) == 0
        time.sleep(0.1)
        assert "stopped" in server.lines
    finally:
        server.kill()

    restarted = Server(app, tmp_path / "data")
    try:
        info = restarted.stub.GetApplication(pb.GetApplicationRequest())
        assert {s.name: s.documents for s in info.schemas} == {"news": 41, "other": 0}
        for i in range(40):
            doc = restarted.stub.Get(pb.GetRequest(id=doc_id(i)))
            assert doc.found, i
            np.testing.assert_array_equal(np.frombuffer(doc.fields["embedding"].values, "<f4"), emb[i])
            assert np.frombuffer(doc.fields["popularity"].values, "<f4")[0] == i
        assert restarted.stub.Get(pb.GetRequest(id=doc_id("late"))).found
        response = restarted.stub.Rank(pb.RankRequest(schema="news", rank_profile="dot", hits=3, query={
            "q": tensor(emb[5], T)}))
        assert response.coverage.documents == 41
        assert response.hits[0].id == doc_id(5)
        assert restarted.terminate() == 0
    finally:
        restarted.kill()


def test_a_second_server_on_the_same_data_directory_is_refused(tmp_path: Path) -> None:
    app, _ = write_package(tmp_path / "app", np.random.default_rng(1))
    first = Server(app, tmp_path / "data")
    try:
        with pytest.raises(AssertionError, match="in use by another tensorrank process"):
            Server(app, tmp_path / "data", timeout=30)
        assert first.status() == "SERVING"
    finally:
        assert first.terminate() == 0
