"""The gRPC servicer of tensorrank.v1.Ranking: a thin translation between the protocol
messages and the engine (server/engine.py). Errors become status codes in server/status.py.

What the wire carries, beyond the .proto's comments:
  - Rank: `hits` 1..--max-hits; `schema` may be empty when the application has exactly one;
    match features and query tensors are Tensors of their declared types; `scores` are the
    first-phase scores of `scored_ids`, in shard order (only with all_scores); coverage
    `documents` counts the schema's live documents, `scored` those the first phase scored,
    `full` is true (a request that cannot finish fails with DEADLINE_EXCEEDED instead).
  - Feed: one result per operation, in order, sent once its batch has committed; a refused
    operation gets ok=false and its error, and the stream goes on. A result's request_id is
    the operation's, or its position in the stream ("0", "1", ...) when it had none. A put's
    field values: a tensor or scalar field takes its type string (empty means the field's own
    type) and raw little-endian cells; a string field takes type "string" (or empty) and UTF-8.
  - Get: tensor and numeric fields as Tensors of the field's type ("float", "long",
    "tensor<float>(x[4])" ...), string fields as type "string" with UTF-8 bytes; unset fields
    are left out; found=false for a well-formed id of no stored document.
  - GetApplication: inputs named "query(q)"; the device and why it was chosen.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import grpc
import numpy as np

from proto.tensorrank.v1 import ranking_pb2 as pb
from proto.tensorrank.v1 import ranking_pb2_grpc as pb_grpc
from server.engine import Engine, NotReady, RankQuery, TooLarge
from server.metrics import Metrics
from server.status import status_of
from server.store import FeedError
from server.wire import encode_tensor

log = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")
_END = object()  # the end of a feed stream in the reader's queue


@dataclass
class ServerState:
    """What every RPC checks first: is there an engine, and is the server still taking requests."""

    metrics: Metrics
    max_message_bytes: int
    feed_batch: int = 1024
    engine: Engine | None = None
    draining: bool = False
    starting_message: str = "the server is starting: loading the application package and the documents"
    max_scoring: int = 0  # scorings at once; more requests wait their turn, in order (0: no limit)
    in_flight: int = 0
    _idle: asyncio.Event | None = None
    _scoring: asyncio.Semaphore | None = None

    def scoring_slot(self) -> asyncio.Semaphore | contextlib.nullcontext[None]:
        if self.max_scoring <= 0:
            return contextlib.nullcontext()
        if self._scoring is None:
            self._scoring = asyncio.Semaphore(self.max_scoring)
        return self._scoring

    def enter(self) -> None:
        self.in_flight += 1

    def leave(self) -> None:
        self.in_flight -= 1
        if self.in_flight == 0 and self._idle is not None:
            self._idle.set()

    async def drained(self, timeout: float) -> bool:
        """Wait until no RPC is in flight (at most `timeout` seconds); False if some still are."""
        if self.in_flight == 0:
            return True
        self._idle = asyncio.Event()
        try:
            await asyncio.wait_for(self._idle.wait(), timeout)
            return True
        except TimeoutError:
            return False

    def require(self) -> Engine:
        if self.draining:
            raise NotReady("the server is shutting down; send the request to another replica or retry later")
        if self.engine is None:
            raise NotReady(f"{self.starting_message}; retry when its health check reports SERVING")
        return self.engine


class RankingService(pb_grpc.RankingServicer):
    def __init__(self, state: ServerState) -> None:
        self.state = state
        self.metrics = state.metrics

    # ------------------------------------------------------------------ the RPCs

    async def Rank(self, request: pb.RankRequest, context: grpc.aio.ServicerContext) -> pb.RankResponse:
        return await self._unary("Rank", context, lambda: self._rank(request, context))

    async def Get(self, request: pb.GetRequest, context: grpc.aio.ServicerContext) -> pb.GetResponse:
        return await self._unary("Get", context, lambda: self._get(request))

    async def GetApplication(self, request: pb.GetApplicationRequest,
                             context: grpc.aio.ServicerContext) -> pb.ApplicationInfo:
        return await self._unary("GetApplication", context, self._application)

    # async generator functions themselves: grpc.aio picks the streaming mode by inspecting them
    async def Feed(self, request_iterator: AsyncIterator[pb.FeedOperation],
                   context: grpc.aio.ServicerContext) -> AsyncIterator[pb.FeedResult]:
        async for result in self._stream("Feed", context, lambda engine: self._feed(engine, request_iterator)):
            yield result

    async def FeedBatches(self, request_iterator: AsyncIterator[pb.FeedBatch],
                          context: grpc.aio.ServicerContext) -> AsyncIterator[pb.FeedBatchResult]:
        batches = self._stream("FeedBatches", context, lambda engine: self._feed_batches(engine, request_iterator))
        async for result in batches:
            yield result

    # ------------------------------------------------------------------ plumbing

    async def _unary(self, method: str, context: grpc.aio.ServicerContext,
                     call: Callable[[], Awaitable[T]]) -> T:
        start = time.perf_counter()
        code = grpc.StatusCode.OK
        self.state.enter()
        try:
            return await call()
        except asyncio.CancelledError:
            # the client went away or its deadline passed; grpc has answered it already
            code = grpc.StatusCode.CANCELLED
            raise
        except Exception as e:
            code, message = status_of(e, method)
            await context.abort(code, message)
            raise AssertionError("unreachable: abort raises") from None
        finally:
            self.state.leave()
            self._record(method, code, start)

    async def _stream(self, method: str, context: grpc.aio.ServicerContext,
                      results: Callable[[Engine], AsyncIterator[R]]) -> AsyncIterator[R]:
        """A response stream with the same accounting and status mapping as `_unary`."""
        start = time.perf_counter()
        code = grpc.StatusCode.OK
        self.state.enter()
        try:
            engine = self.state.require()
            async for result in results(engine):
                yield result
        except asyncio.CancelledError:
            code = grpc.StatusCode.CANCELLED
            raise
        except Exception as e:
            code, message = status_of(e, method)
            await context.abort(code, message)
        finally:
            self.state.leave()
            self._record(method, code, start)

    def _record(self, method: str, code: grpc.StatusCode, start: float) -> None:
        self.metrics.rpc_latency.labels(method, code.name).observe(time.perf_counter() - start)
        if code is not grpc.StatusCode.OK:
            self.metrics.errors.labels(method, code.name).inc()

    def _check_size(self, message: Any, what: str) -> None:
        size = message.ByteSize()
        limit = self.state.max_message_bytes
        if size > limit:
            raise TooLarge(f"the {what} would be {size / 2**20:.1f} MiB, over the server's message limit of "
                           f"{limit / 2**20:.0f} MiB (--max-message-mb): ask for less (fewer hits, no all_scores) "
                           "or raise the limit on both ends")

    # ------------------------------------------------------------------ Rank

    async def _rank(self, request: pb.RankRequest, context: grpc.aio.ServicerContext) -> pb.RankResponse:
        engine = self.state.require()
        ref = engine.profile(request.schema, request.rank_profile)
        query = RankQuery(ref, engine.decode_query(ref, request.query), request.hits, request.offset,
                          list(request.doc_ids), request.all_scores, dict(request.nearest_neighbor))
        remaining = context.time_remaining()
        deadline = None if remaining is None else time.monotonic() + remaining
        async with self.state.scoring_slot():
            outcome = await asyncio.to_thread(engine.rank, query, deadline)
        result = outcome.result
        response = pb.RankResponse(
            coverage=pb.Coverage(documents=outcome.documents, scored=result.scored, full=True),
            scoring_ms=outcome.scoring_seconds * 1000.0,
        )
        for h in result.hits:
            hit = response.hits.add(id=h.id, relevance=h.score)
            for name, value in h.match_features.items():
                hit.match_features[name].CopyFrom(encode_tensor(value, outcome.features[name]))
        if request.all_scores and result.scores is not None:
            response.scored_ids.extend(result.scored_ids)
            response.scores.extend(np.asarray(result.scores, dtype=np.float32).tolist())
        self._check_size(response, "Rank response")
        return response

    # ------------------------------------------------------------------ Feed

    async def _feed(self, engine: Engine,
                    request_iterator: AsyncIterator[pb.FeedOperation]) -> AsyncIterator[pb.FeedResult]:
        """Commit what has arrived as one batch while the client goes on sending: a client
        that waits for acknowledgements never waits for a batch to fill."""
        limit = self.state.feed_batch
        position = 0
        async for batch in _arrived(request_iterator, limit, queue_size=4 * limit):
            for result in await self._commit(engine, batch, position):
                yield result
            position += len(batch)

    async def _feed_batches(self, engine: Engine, request_iterator: AsyncIterator[pb.FeedBatch]
                            ) -> AsyncIterator[pb.FeedBatchResult]:
        """One store batch per message, read ahead while the previous one commits."""
        position = 0
        async for (message,) in _arrived(request_iterator, 1, queue_size=4):
            batch = list(message.operations)
            yield pb.FeedBatchResult(results=await self._commit(engine, batch, position))
            position += len(batch)

    async def _commit(self, engine: Engine, batch: list[pb.FeedOperation], position: int) -> list[pb.FeedResult]:
        """Apply and commit one batch off the event loop; each result is durable when returned."""
        if not batch:
            return []
        ops = [self._operation(engine, op) for op in batch]
        rids = [op.request_id or str(position + i) for i, op in enumerate(batch)]
        results = await asyncio.to_thread(engine.feed, ops, rids, position)
        return [pb.FeedResult(request_id=r.request_id, ok=r.ok, error=r.error or "") for r in results]

    @staticmethod
    def _operation(engine: Engine, op: pb.FeedOperation) -> Any:
        kind = op.WhichOneof("operation")
        if kind == "json":
            return engine.json_operation(op.json)
        if kind == "put":
            return engine.put_operation(op.put.id, op.put.fields)
        if kind == "remove":
            return {"remove": op.remove.id}
        return FeedError("the operation is empty: set one of json, put or remove")

    # ------------------------------------------------------------------ Get, GetApplication

    async def _get(self, request: pb.GetRequest) -> pb.GetResponse:
        engine = self.state.require()
        found = await asyncio.to_thread(engine.get, request.id)
        if found is None:
            return pb.GetResponse(found=False)
        doc, dt = found
        response = pb.GetResponse(found=True)
        for name, value in doc.fields.items():
            spec = dt.fields[name]
            if spec.is_string:
                response.fields[name].CopyFrom(pb.Tensor(type="string", values=str(value).encode("utf-8")))
                continue
            assert spec.type is not None  # scalars too: a type of no dimensions, "float", "long" ...
            array = spec.array(value) if isinstance(value, bytes) else value
            response.fields[name].CopyFrom(encode_tensor(array, spec.type))
        self._check_size(response, "Get response")
        return response

    async def _application(self) -> pb.ApplicationInfo:
        engine = self.state.require()
        info = pb.ApplicationInfo(device=engine.device.name, device_reason=engine.device.reason)
        for s in engine.describe():
            schema = info.schemas.add(name=s.name, documents=s.documents)
            for name, type_text, attribute in s.fields:
                schema.fields.add(name=name, type=type_text, attribute=attribute)
            for p in s.profiles:
                profile = schema.rank_profiles.add(name=p.name, match_features=p.match_features,
                                                   rerank_count=p.rerank_count, has_second_phase=p.has_second_phase,
                                                   models=p.models)
                for input_name, input_type, has_default in p.inputs:
                    profile.inputs.add(name=input_name, type=input_type, has_default=has_default)
        return info


async def _arrived(source: AsyncIterator[Any], limit: int, queue_size: int) -> AsyncIterator[list[Any]]:
    """Items of `source` in lists of what has arrived (at most `limit`), read ahead into a
    bounded queue while the consumer works, so a fast client waits for commits."""
    queue: asyncio.Queue[Any] = asyncio.Queue(maxsize=queue_size)

    async def read() -> None:
        try:
            async for item in source:
                await queue.put(item)
        finally:
            await queue.put(_END)

    reader = asyncio.create_task(read())
    try:
        ended = False
        while not ended:
            item = await queue.get()
            if item is _END:
                break
            batch = [item]
            while len(batch) < limit and not queue.empty():
                item = queue.get_nowait()
                if item is _END:
                    ended = True
                    break
                batch.append(item)
            yield batch
        if reader.done() and not reader.cancelled() and reader.exception() is not None:
            raise reader.exception()  # type: ignore[misc]
    finally:
        if not reader.done():
            reader.cancel()
