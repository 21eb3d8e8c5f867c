"""The gRPC client library of the tensorrank service: what `tensorrank query`, `feed`, `health` and `demo` use.

The client knows the wire (proto/tensorrank/v1); it never checks a document against the
schema itself: the server does, and its answer is what the user sees. Values go out and
come back as numpy arrays, or as MappedTensor for types with mapped dimensions
(tensor_message, tensor_value). Errors the user can
act on are ClientError; a feed streams operations (server.feed_file.FeedOp) as FeedBatches
messages, within a window of unacknowledged ones. Reading feed files, query arguments and terminal output live in
server.feed_file, server.query_args and server.progress.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import grpc
import numpy as np
from grpc_health.v1 import health_pb2, health_pb2_grpc

from proto.tensorrank.v1 import ranking_pb2 as pb
from proto.tensorrank.v1 import ranking_pb2_grpc as pb_grpc
from server.feed_file import FeedOp
from server.wire import WireError, decode_tensor, encode_tensor
from server.wire_mapped import mapped_from_value
from tensor_ir.errors import TensorRankError
from tensor_ir.expr.tensor_json import TensorValueError, tensor_from_json
from tensor_ir.expr.types import TensorType, TypeSyntaxError, parse_type
from tensor_ir.mapped import MappedTensor

log = logging.getLogger(__name__)

DEFAULT_TARGET = "127.0.0.1:50051"
MAX_MESSAGE = 64 * 1024 * 1024  # a Rank answer with many hits and big match features stays well below this


class ClientError(TensorRankError):
    """Something the user can act on; the CLI prints the message and exits non-zero."""


class ServerUnavailable(ClientError):
    pass


class FeedInterrupted(ClientError):
    """The Feed stream broke off; `summary` counts what was answered before."""

    def __init__(self, message: str, summary: FeedSummary) -> None:
        super().__init__(message)
        self.summary = summary


def split_target(target: str) -> tuple[str, str]:
    host, sep, port = target.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise ClientError(f"--target '{target}' must be HOST:PORT, e.g. {DEFAULT_TARGET}")
    return host.strip("[]"), port


def unavailable_message(target: str) -> str:
    host, port = split_target(target)
    where = "" if host in ("127.0.0.1", "localhost") else f" --host {host}"
    return (f"no tensorrank server at {target}; start one with: tensorrank serve APP_DIR{where} --port {port} "
            "(or point --target at a running one)")


def rpc_error(e: grpc.RpcError, target: str, what: str, channel: grpc.Channel | None = None) -> ClientError:
    """The client's error for a failed call: the server's status and message, or how to start a server."""
    code = e.code() if isinstance(e, grpc.Call) else None
    details = e.details() if isinstance(e, grpc.Call) else str(e)
    if code is grpc.StatusCode.UNAVAILABLE and not _connects(channel):
        log.debug("%s: UNAVAILABLE: %s", what, details)
        return ServerUnavailable(unavailable_message(target))
    # UNAVAILABLE from a server that is there: still loading, or draining; its message says which
    name = code.name if code is not None else "error"
    return ClientError(f"{what}: {name}: {details}")


def _connects(channel: grpc.Channel | None) -> bool:
    if channel is None:
        return False
    try:
        grpc.channel_ready_future(channel).result(timeout=0.5)
    except grpc.FutureTimeoutError:
        return False
    return True


# ---------------------------------------------------------------------- values


def tensor_message(value: Any, t: TensorType | str | None, what: str = "value") -> pb.Tensor:
    """A value as the wire's Tensor of type `t`: a MappedTensor (its own type when `t` is
    None), for a mapped type also Vespa's JSON forms or a dict keyed by label ({label: number}
    for one mapped dimension, {label: [cells]} for a mixed type with one), for a dense type
    an array, nested lists, a number or Vespa's JSON form."""
    try:
        if t is None:
            if not isinstance(value, MappedTensor):
                raise ClientError(f"{what}: give the tensor type of a value that is not a MappedTensor")
            t = value.type
        elif isinstance(t, str):
            t = parse_type(t, allow_mapped=True)
        if t.is_mapped:
            return encode_tensor(mapped_from_value(value, t, what), t)
        if isinstance(value, MappedTensor):
            raise ClientError(f"{what}: {t} has no mapped dimensions; got a value of {value.type}")
        arr = tensor_from_json(value.tolist() if isinstance(value, np.ndarray) else value, t)
        return encode_tensor(arr, t)
    except (TypeSyntaxError, TensorValueError) as e:
        raise ClientError(f"{what}: {e}") from None
    except WireError as e:  # names `what` itself
        raise ClientError(str(e)) from None


def tensor_value(t: pb.Tensor, what: str = "value") -> Any:
    """A Tensor from the server as a value: a string for a string field, a MappedTensor for
    a type with mapped dimensions, else a numpy array of the type's shape."""
    if t.type == "string":
        return t.values.decode("utf-8", errors="replace")
    try:
        return decode_tensor(t, None, what)
    except WireError as e:
        raise ClientError(str(e)) from None


# ---------------------------------------------------------------------- connection


class Client:
    """A channel to one server. Use as a context manager, or call close()."""

    def __init__(self, target: str = DEFAULT_TARGET, timeout: float | None = 30.0) -> None:
        split_target(target)
        self.target = target
        self.timeout = timeout
        self.options = [("grpc.max_receive_message_length", MAX_MESSAGE),
                        ("grpc.max_send_message_length", MAX_MESSAGE)]
        self.channel = grpc.insecure_channel(target, options=self.options)
        self.stub = pb_grpc.RankingStub(self.channel)
        self.health_stub = health_pb2_grpc.HealthStub(self.channel)

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.channel.close()

    def _call(self, what: str, fn: Callable[..., Any], request: Any) -> Any:
        try:
            return fn(request, timeout=self.timeout)
        except grpc.RpcError as e:
            raise rpc_error(e, self.target, what, self.channel) from None

    def application(self) -> pb.ApplicationInfo:
        info: pb.ApplicationInfo = self._call("GetApplication", self.stub.GetApplication, pb.GetApplicationRequest())
        return info

    def get(self, doc_id: str) -> pb.GetResponse:
        doc: pb.GetResponse = self._call("Get", self.stub.Get, pb.GetRequest(id=doc_id))
        return doc

    def get_fields(self, doc_id: str) -> dict[str, Any] | None:
        """A document's fields as values (tensor_value), None when there is no such document."""
        doc = self.get(doc_id)
        return {name: tensor_value(t, f"field '{name}' of {doc_id}") for name, t in doc.fields.items()} \
            if doc.found else None

    def put(self, doc_id: str, fields: Mapping[str, Any],
            types: Mapping[str, TensorType | str] | None = None) -> None:
        """Put one document whose fields are values (tensor_message); the types are the
        schema's (GetApplication) unless given. ClientError with the server's answer when
        it refuses the document."""
        if types is None:
            types = self._field_types(doc_id)
        message = pb.Put(id=doc_id)
        for name, value in fields.items():
            if isinstance(value, str):
                message.fields[name].CopyFrom(pb.Tensor(type="string", values=value.encode("utf-8")))
                continue
            t = types.get(name)
            if t is None and not isinstance(value, MappedTensor):
                raise ClientError(f"put {doc_id}: the schema has no field '{name}'")
            message.fields[name].CopyFrom(tensor_message(value, t, f"put {doc_id}: field '{name}'"))
        batch = pb.FeedBatch(operations=[pb.FeedOperation(request_id="0", put=message)])
        try:
            answers = list(self.stub.FeedBatches(iter([batch]), timeout=self.timeout))
        except grpc.RpcError as e:
            raise rpc_error(e, self.target, "Put", self.channel) from None
        results = [r for a in answers for r in a.results]
        if not results:
            raise ClientError(f"put {doc_id}: the server closed the stream without an answer")
        if not results[0].ok:
            raise ClientError(f"put {doc_id}: {results[0].error}")

    def _field_types(self, doc_id: str) -> dict[str, TensorType | str]:
        parts = doc_id.split(":")
        doctype = parts[2] if len(parts) > 4 and parts[0] == "id" else ""
        schemas = {s.name: s for s in self.application().schemas}
        schema = schemas.get(doctype)
        if schema is None:
            raise ClientError(f"put {doc_id}: the server has no schema for document type '{doctype}' "
                              f"(schemas: {', '.join(schemas) or 'none'})")
        return {f.name: f.type for f in schema.fields}

    def rank(self, request: pb.RankRequest) -> tuple[pb.RankResponse, float]:
        """The answer and the round trip in milliseconds."""
        start = time.perf_counter()
        resp = self._call("Rank", self.stub.Rank, request)
        return resp, (time.perf_counter() - start) * 1000.0

    def health(self, service: str = "") -> str:
        """The serving status's name: SERVING, NOT_SERVING, SERVICE_UNKNOWN or UNKNOWN."""
        resp = self._call("health check", self.health_stub.Check, health_pb2.HealthCheckRequest(service=service))
        return str(health_pb2.HealthCheckResponse.ServingStatus.Name(resp.status))

    def wait_serving(self, timeout: float, service: str = "", alive: Callable[[], bool] | None = None) -> None:
        """Poll health until SERVING; ClientError when `timeout` seconds pass or `alive` says the server is gone."""
        deadline = time.monotonic() + timeout
        status = "no answer"
        while True:
            try:
                status = self.health(service)
                if status == "SERVING":
                    return
            except ServerUnavailable:
                status = "not reachable"
            if alive is not None and not alive():
                raise ClientError(f"the server at {self.target} exited before it was serving")
            if time.monotonic() > deadline:
                raise ClientError(f"the server at {self.target} was not SERVING after {timeout:.0f} s (last: {status})")
            time.sleep(0.1)

    def feed(self, ops: Iterable[FeedOp], window: int = 4096,
             on_result: Callable[[FeedOp, pb.FeedResult], None] | None = None) -> FeedSummary:
        """Stream operations over one FeedBatches call (BATCH per message), at most `window`
        unacknowledged at a time.

        Operations whose text could not be read (`op.error`) are not sent: they count as
        failed and go to `on_result` like the server's answers. Memory stays bounded by the
        window whatever the length of the feed. Raises FeedInterrupted if the stream breaks.
        """
        # grpc.aio rather than the blocking API: the blocking stream hands every message
        # between three threads, which costs about four times the CPU per operation, CPU
        # that the server needs when both run on one small machine
        return asyncio.run(self._feed(ops, max(1, window), on_result))

    async def _feed(self, ops: Iterable[FeedOp], window: int,
                    on_result: Callable[[FeedOp, pb.FeedResult], None] | None) -> FeedSummary:
        summary = FeedSummary()
        # operations go in FeedBatches messages of up to BATCH: a gRPC message costs about as
        # much as committing hundreds of operations, so one per operation would cap the feed
        per_message = max(1, min(BATCH, window))
        room = asyncio.Semaphore(max(1, window // per_message))
        sent: asyncio.Queue[list[FeedOp]] = asyncio.Queue()
        local_errors: list[FeedOp] = []

        async def requests() -> AsyncIterator[pb.FeedBatch]:
            chunk: list[FeedOp] = []
            for op in ops:
                if op.error is not None:
                    local_errors.append(op)
                    continue
                chunk.append(op)
                if len(chunk) == per_message:
                    await room.acquire()
                    yield self._message(chunk, sent, summary)
                    chunk = []
            if chunk:
                await room.acquire()
                yield self._message(chunk, sent, summary)

        def report_local() -> None:
            while local_errors:
                op = local_errors.pop(0)
                summary.failed += 1
                if on_result is not None:
                    on_result(op, pb.FeedResult(request_id=op.request_id, ok=False, error=op.error or ""))

        summary.start = time.perf_counter()
        unanswered = 0
        async with grpc.aio.insecure_channel(self.target, options=self.options) as channel:
            call = pb_grpc.RankingStub(channel).FeedBatches(requests())
            try:
                async for batch in call:
                    report_local()
                    chunk = sent.get_nowait()
                    room.release()
                    by_id = {op.request_id: op for op in chunk}
                    for res in batch.results:
                        op = by_id.pop(res.request_id, None)
                        if op is None:
                            log.warning("feed: a result for request id %r that was not sent", res.request_id)
                            op = FeedOp(res.request_id, "", None)
                        if res.ok:
                            summary.ok += 1
                        else:
                            summary.failed += 1
                        if on_result is not None:
                            on_result(op, res)
                    unanswered += len(by_id)
            except grpc.RpcError as e:
                summary.seconds = time.perf_counter() - summary.start
                raise FeedInterrupted(str(rpc_error(e, self.target, "Feed", self.channel)), summary) from None
        report_local()
        summary.seconds = time.perf_counter() - summary.start
        unanswered += sum(len(c) for c in _drain(sent))
        if unanswered:
            raise FeedInterrupted(f"Feed: the server closed the stream with {unanswered:,} operations unanswered",
                                  summary)
        return summary

    @staticmethod
    def _message(chunk: list[FeedOp], sent: asyncio.Queue[list[FeedOp]], summary: FeedSummary) -> pb.FeedBatch:
        sent.put_nowait(chunk)
        summary.sent += len(chunk)
        return pb.FeedBatch(operations=[pb.FeedOperation(request_id=op.request_id, json=op.text) for op in chunk])


def _drain(queue: asyncio.Queue[list[FeedOp]]) -> list[list[FeedOp]]:
    out = []
    while not queue.empty():
        out.append(queue.get_nowait())
    return out


# operations per FeedBatches message
BATCH = 512


@dataclass
class FeedSummary:
    ok: int = 0
    failed: int = 0
    sent: int = 0
    start: float = 0.0
    seconds: float = 0.0

    @property
    def done(self) -> int:
        return self.ok + self.failed

    def line(self) -> str:
        rate = self.done / self.seconds if self.seconds > 0 else 0.0
        return (f"fed {self.done:,} operations in {self.seconds:.1f} s ({rate:,.0f}/s): "
                f"{self.ok:,} ok, {self.failed:,} failed")
