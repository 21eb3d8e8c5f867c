"""The service's pieces in-process: status codes, device choice, flags and their environment
variables, and the servicer on an in-process gRPC server (starting, limits, internal errors,
feed acknowledgements that never wait for a batch to fill)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest

from proto.tensorrank.v1 import ranking_pb2 as pb
from proto.tensorrank.v1 import ranking_pb2_grpc as pb_grpc
from server.application.errors import SchemaError
from server.cli import build_parser, main
from server.engine import BadRequest, DeviceInfo, Engine, NotFound, NotReady, TooLarge, Unsupported
from server.metrics import Metrics
from server.service import RankingService, ServerState
from server.status import status_of
from server.store import FeedError, StoreError
from server.wire import WireError
from tensor_ir.cancel import DeadlineExceeded
from tensor_ir.expr.errors import RankingError

from .serving import DIM, doc_id, tensor, write_package

C = grpc.StatusCode


@pytest.mark.parametrize(("error", "code"), [
    (BadRequest("x"), C.INVALID_ARGUMENT),
    (WireError("x"), C.INVALID_ARGUMENT),
    (RankingError("x"), C.INVALID_ARGUMENT),
    (FeedError("x"), C.INVALID_ARGUMENT),
    (NotFound("x"), C.NOT_FOUND),
    (SchemaError("x"), C.INVALID_ARGUMENT),  # a RankingError; the engine names unknown schemas itself
    (Unsupported("x"), C.FAILED_PRECONDITION),
    (DeadlineExceeded("x"), C.DEADLINE_EXCEEDED),
    (TooLarge("x"), C.RESOURCE_EXHAUSTED),
    (MemoryError(), C.RESOURCE_EXHAUSTED),
    (NotReady("x"), C.UNAVAILABLE),
    (StoreError("x"), C.UNAVAILABLE),
    (ZeroDivisionError("x"), C.INTERNAL),
])
def test_status_codes(error: Exception, code: grpc.StatusCode) -> None:
    got, message = status_of(error, "Rank")
    assert got == code
    assert message


def test_internal_errors_say_where_to_look() -> None:
    code, message = status_of(KeyError("k"), "Rank")
    assert code == C.INTERNAL
    assert "KeyError" in message and "server log" in message


def _has_gpu() -> bool:
    try:
        import cupy

        return bool(cupy.cuda.runtime.getDeviceCount() > 0)
    except Exception:  # no CuPy, or no driver: no GPU either way
        return False


@pytest.mark.skipif(_has_gpu(), reason="a GPU is present: auto picks it")
def test_device_auto_falls_back_to_cpu_with_a_reason_and_a_count() -> None:
    from server.cli_serve import choose_backend

    metrics = Metrics()
    backend, device = choose_backend("auto", metrics)
    assert backend.name == "cpu" or type(backend).__name__ == "NumpyBackend"
    assert device.name == "cpu"
    assert device.reason.startswith("--device auto found no usable GPU: ")
    samples = {s.name: s.value for m in metrics.registry.collect() for s in m.samples
               if s.name == "tensorrank_device_fallbacks_total"}
    assert samples == {"tensorrank_device_fallbacks_total": 1.0}


@pytest.mark.skipif(_has_gpu(), reason="a GPU is present")
def test_device_gpu_without_a_gpu_fails_at_start() -> None:
    from server.cli_serve import choose_backend

    with pytest.raises(SystemExit, match=r"--device gpu, but no GPU is usable: .*--device cpu"):
        choose_backend("gpu", Metrics())


def test_flags_have_environment_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    env = {"PORT": "1234", "HOST": "0.0.0.0", "DEVICE": "cpu", "METRICS_PORT": "0", "MAX_MESSAGE_MB": "8",
           "MAX_HITS": "77", "DATA": "/tmp/x", "DRAIN_SECONDS": "3", "APP": "some/app"}
    for k, v in env.items():
        monkeypatch.setenv(f"TENSORRANK_{k}", v)
    args = build_parser().parse_args(["serve"])
    assert (args.app, args.port, args.host, args.device, args.metrics_port, args.max_message_mb, args.max_hits,
            args.data, args.drain_seconds) == ("some/app", 1234, "0.0.0.0", "cpu", 0, 8.0, 77, "/tmp/x", 3.0)
    args = build_parser().parse_args(["serve", "other/app", "--port", "5"])  # the command line wins
    assert (args.app, args.port) == ("other/app", 5)
    monkeypatch.delenv("TENSORRANK_APP")
    defaults = build_parser().parse_args(["serve", "a"])
    assert defaults.port == 1234
    for k in env:
        monkeypatch.delenv(f"TENSORRANK_{k}", raising=False)
    defaults = build_parser().parse_args(["serve", "a"])
    assert (defaults.host, defaults.port, defaults.device, defaults.metrics_port, defaults.max_message_mb) == (
        "127.0.0.1", 50051, "auto", 9464, 64.0)


def test_bad_flags_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["serve", "app", "--port", "70000", "--max-hits", "0"]) == 2
    err = capsys.readouterr().err
    assert "--port 70000 is not a port number" in err and "--max-hits must be at least 1" in err


def test_a_broken_package_stops_the_server_with_its_location(tmp_path: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "app" / "schemas").mkdir(parents=True)
    (tmp_path / "app" / "schemas" / "s.sd").write_text("schema s {\n  document s {\n    field x type nope {}\n")
    assert main(["serve", str(tmp_path / "app"), "--data", str(tmp_path / "d"), "--port", "0", "--device", "cpu",
                 "--metrics-port", "0"]) == 1
    err = capsys.readouterr().err
    assert "the application package cannot be deployed: " in err and "s.sd:" in err


# ---------------------------------------------------------------------- an in-process server


def _serve(state: ServerState, body: Callable[[pb_grpc.RankingStub], Awaitable[None]]) -> None:
    async def run() -> None:
        server = grpc.aio.server(options=[("grpc.so_reuseport", 0)])
        pb_grpc.add_RankingServicer_to_server(RankingService(state), server)
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        try:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
                await body(pb_grpc.RankingStub(channel))
        finally:
            await server.stop(None)

    asyncio.run(run())


@pytest.fixture
def engine(tmp_path: Path) -> Any:
    app, _ = write_package(tmp_path / "app", np.random.default_rng(3))
    e = Engine.open(app, tmp_path / "data", _numpy(), DeviceInfo("cpu", "test"), Metrics(), max_hits=100)
    yield e
    e.close()


def _numpy() -> Any:
    from cpu_fallback import NumpyBackend

    return NumpyBackend()


def _put(i: int) -> pb.FeedOperation:
    return pb.FeedOperation(request_id=f"r{i}", put=pb.Put(id=doc_id(i), fields={
        "embedding": tensor(np.full(DIM, i), f"tensor<float>(x[{DIM}])")}))


def test_unavailable_while_starting_and_draining() -> None:
    state = ServerState(Metrics(), 1 << 20)

    async def body(stub: pb_grpc.RankingStub) -> None:
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.GetApplication(pb.GetApplicationRequest())
        assert err.value.code() == C.UNAVAILABLE
        assert "the server is starting" in str(err.value.details())
        with pytest.raises(grpc.aio.AioRpcError) as err:
            async for _ in stub.Feed(iter([_put(1)])):
                pass
        assert err.value.code() == C.UNAVAILABLE
        state.draining = True
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.Get(pb.GetRequest(id=doc_id(1)))
        assert err.value.code() == C.UNAVAILABLE
        assert "shutting down" in str(err.value.details())

    _serve(state, body)
    assert state.in_flight == 0


def test_a_response_over_the_message_limit(engine: Engine) -> None:
    state = ServerState(engine.metrics, 2000, engine=engine)

    async def body(stub: pb_grpc.RankingStub) -> None:
        results = [r async for r in stub.Feed(iter([_put(i) for i in range(100)]))]
        assert all(r.ok for r in results)
        request = pb.RankRequest(schema="news", rank_profile="dot", hits=100, all_scores=True,
                                 query={"q": tensor(np.ones(DIM), f"tensor<float>(x[{DIM}])")})
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.Rank(request)
        assert err.value.code() == C.RESOURCE_EXHAUSTED
        assert "over the server's message limit of" in str(err.value.details())
        request.hits, request.all_scores = 3, False
        assert len((await stub.Rank(request)).hits) == 3

    _serve(state, body)


def test_an_unexpected_error_is_internal_and_the_server_goes_on(engine: Engine,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    state = ServerState(engine.metrics, 1 << 20, engine=engine)

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise KeyError("a bug")

    async def body(stub: pb_grpc.RankingStub) -> None:
        request = pb.RankRequest(schema="news", rank_profile="dot", hits=1,
                                 query={"q": tensor(np.ones(DIM), f"tensor<float>(x[{DIM}])")})
        with monkeypatch.context() as m:
            m.setattr(engine, "rank", broken)
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await stub.Rank(request)
        assert err.value.code() == C.INTERNAL
        assert "KeyError" in str(err.value.details())
        assert (await stub.Rank(request)).coverage.full

    _serve(state, body)


def test_feed_acknowledges_what_has_arrived_without_waiting_for_a_full_batch(engine: Engine) -> None:
    """A client that sends the next operation only after the last one's acknowledgement."""
    state = ServerState(engine.metrics, 1 << 20, feed_batch=1000, engine=engine)

    async def body(stub: pb_grpc.RankingStub) -> None:
        queue: asyncio.Queue[pb.FeedOperation | None] = asyncio.Queue()

        async def ops() -> AsyncIterator[pb.FeedOperation]:
            while (op := await queue.get()) is not None:
                yield op

        call = stub.Feed(ops())
        for i in range(5):
            await queue.put(_put(i))
            result = await asyncio.wait_for(call.read(), 10)
            assert (result.request_id, result.ok) == (f"r{i}", True)
            assert engine.store.get(doc_id(i)) is not None  # durable once acknowledged
        await queue.put(None)
        assert await call.read() == grpc.aio.EOF

    _serve(state, body)
