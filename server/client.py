"""A client of the tensorrank gRPC service: what `tensorrank query`, `feed`, `health` and `demo` use.

The client knows the wire (proto/tensorrank/v1) and the Vespa JSON forms users write;
it never checks a document against the schema itself: the server does, and its answer is
what the user sees. What the client adds is typing: a query's values are plain JSON
numbers, and their tensor type comes from the deployed application (GetApplication).
"""

from __future__ import annotations

import asyncio
import codecs
import json
import logging
import re
import time
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, TextIO

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from proto.tensorrank.v1 import ranking_pb2 as pb
from proto.tensorrank.v1 import ranking_pb2_grpc as pb_grpc
from server.wire import WireError, decode_tensor, encode_tensor
from tensor_ir.expr.tensor_json import TensorValueError, tensor_from_json
from tensor_ir.expr.types import TypeSyntaxError, parse_type

log = logging.getLogger(__name__)

DEFAULT_TARGET = "127.0.0.1:50051"
MAX_MESSAGE = 64 * 1024 * 1024  # a Rank answer with many hits and big match features stays well below this


class ClientError(Exception):
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
        """Stream operations over one Feed call, at most `window` unacknowledged at a time.

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


# ---------------------------------------------------------------------- feed input


@dataclass(slots=True)
class FeedOp:
    """One operation as sent: its request id (where it came from), its JSON text, and the
    document id it names when the client could see it. `error`: it could not be read."""

    request_id: str
    text: str
    doc_id: str | None
    error: str | None = None


_ID = re.compile(r'"(?:put|update|remove)"\s*:\s*"([^"\\]{1,500})"')
_WS = " \t\r\n"
_WSB = _WS.encode()


def _doc_id(text: str) -> str | None:
    # only for error reports: the server parses the operation; a cheap look at its start is enough
    m = _ID.search(text, 0, 2000)
    return m.group(1) if m else None


def read_operations(stream: IO[bytes], name: str, chunk: int = 1 << 16) -> Iterator[FeedOp]:
    """Split Vespa feed JSON (JSONL, or one JSON array) into operations, without holding the feed in memory.

    Like server.store.feed_json.read_feed, but lazy for arrays too and keeping each
    operation's text as written (the server parses it; parsing here would only repeat the
    work). Request ids are `NAME:LINE`, the line where the operation starts. In JSONL a
    bad line spoils only itself (the server says what is wrong with it); in an array a
    syntax error ends the readable part, and one error says so.
    """
    # read1: what a pipe has so far, so a slow producer's operations go out as they come
    read = getattr(stream, "read1", stream.read)
    first = b""
    while True:
        block = read(chunk)
        if not block:
            return
        first += block
        if first.lstrip(_WSB):
            break
    if first.lstrip(_WSB).startswith(b"["):
        yield from _array_operations(first, read, name, chunk)
    else:
        yield from _jsonl_operations(first, read, name, chunk)


def _jsonl_operations(first: bytes, read: Callable[[int], bytes], name: str, chunk: int) -> Iterator[FeedOp]:
    number = 0
    rest = first
    while True:
        lines = rest.split(b"\n")
        rest = lines.pop()
        for raw in lines:
            number += 1
            yield from _jsonl_line(raw, name, number)
        block = read(chunk)
        if not block:
            break
        rest += block
    if rest:
        yield from _jsonl_line(rest, name, number + 1)


def _jsonl_line(raw: bytes, name: str, number: int) -> Iterator[FeedOp]:
    rid = f"{name}:{number}"
    try:
        text = raw.decode("utf-8").strip()
    except UnicodeDecodeError as e:
        yield FeedOp(rid, "", None, f"not UTF-8 text ({e.reason} at byte {e.start})")
        return
    if text:
        yield FeedOp(rid, text, _doc_id(text))


def _array_operations(first: bytes, read: Callable[[int], bytes], name: str, chunk: int) -> Iterator[FeedOp]:
    decoder = codecs.getincrementaldecoder("utf-8")()
    dec = json.JSONDecoder()
    buf = ""
    line = 1  # the line of buf[0]
    eof = False
    pending: bytes | None = first
    size = chunk

    def more(grow: bool = False) -> bool:
        nonlocal buf, eof, pending, size
        if eof:
            return False
        # an operation bigger than a chunk: read in doubling sizes, so that decoding it
        # again after each read costs a constant factor of its size in all
        size = size * 2 if grow else chunk
        block = pending if pending is not None else read(size)
        pending = None
        try:
            if block:
                buf += decoder.decode(block)
            else:
                eof = True
                buf += decoder.decode(b"", final=True)
        except UnicodeDecodeError as e:
            raise _Unreadable(f"not UTF-8 text ({e.reason})") from None
        return True

    def skip(pos: int) -> int:
        while True:
            while pos < len(buf) and buf[pos] in _WS:
                pos += 1
            if pos < len(buf) or not more():
                return pos

    k = 0
    try:
        more()
        pos = skip(0)
        pos = skip(pos + 1)  # past '['
        if pos < len(buf) and buf[pos] == "]":
            return
        while True:
            k += 1
            start = pos
            while True:
                try:
                    obj, end = dec.raw_decode(buf, start)
                    break
                except json.JSONDecodeError as e:
                    if not more(grow=True):
                        where = line + buf.count("\n", 0, e.pos)
                        raise _Unreadable(f"line {where}: operation {k} of the JSON array is not valid JSON: "
                                          f"{e.msg}; the rest of the array cannot be read") from None
            op_line = line + buf.count("\n", 0, start)
            rid = f"{name}:{op_line}"
            doc = next((obj[key] for key in ("put", "update", "remove")
                        if isinstance(obj, dict) and isinstance(obj.get(key), str)), None)
            yield FeedOp(rid, buf[start:end], doc)
            pos = skip(end)
            if pos < len(buf) and buf[pos] in ",]":
                closing = buf[pos] == "]"
                pos = skip(pos + 1)
                if closing:
                    if pos < len(buf):
                        where = line + buf.count("\n", 0, pos)
                        raise _Unreadable(f"line {where}: unexpected text after the end of the JSON array")
                    return
            else:
                where = line + buf.count("\n", 0, pos)
                raise _Unreadable(f"line {where}: expected ',' or ']' after operation {k} of the JSON array; "
                                  "the rest of the array cannot be read")
            if pos > chunk:  # drop what has been read, keeping the line count
                line += buf.count("\n", 0, pos)
                buf = buf[pos:]
                pos = 0
    except _Unreadable as e:
        yield FeedOp(f"{name}:{line}", "", None, e.message)


class _Unreadable(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


# ---------------------------------------------------------------------- progress


class Progress:
    """Feed progress on stderr: a bar redrawn in place on a terminal, else one line every `every` operations."""

    def __init__(self, out: TextIO, total: int | None = None, fraction: Callable[[], float | None] | None = None,
                 every: int = 10_000, tty: bool | None = None) -> None:
        self.out = out
        self.total = total
        self.fraction = fraction
        self.every = max(1, every)
        self.tty = out.isatty() if tty is None else tty
        self.start = time.perf_counter()
        self.done = 0
        self.errors = 0
        self._next_line = self.every
        self._last_draw = 0.0
        self._drawn = False

    def _status(self) -> str:
        elapsed = time.perf_counter() - self.start
        rate = self.done / elapsed if elapsed > 0 else 0.0
        return f"{self.done:,} documents  {rate:,.0f} docs/s  {self.errors:,} errors  {elapsed:.1f} s"

    def _frac(self) -> float | None:
        if self.total:
            return min(1.0, self.done / self.total)
        if self.fraction is not None:
            return self.fraction()
        return None

    def update(self, ok: bool) -> None:
        self.done += 1
        if not ok:
            self.errors += 1
        if self.tty:
            now = time.perf_counter()
            if now - self._last_draw >= 0.1:
                self._last_draw = now
                self.draw()
        elif self.done >= self._next_line:
            self._next_line += self.every
            print(self._status(), file=self.out, flush=True)

    def draw(self) -> None:
        frac = self._frac()
        bar = ""
        if frac is not None:
            width = 30
            full = int(frac * width)
            bar = f"[{'#' * full}{'.' * (width - full)}] {frac * 100:3.0f}%  "
        self.out.write(f"\r{bar}{self._status()}\x1b[K")
        self.out.flush()
        self._drawn = True

    def message(self, text: str) -> None:
        """A line of its own (an error), without breaking the bar."""
        if self.tty and self._drawn:
            self.out.write("\r\x1b[K")
        print(text, file=self.out, flush=True)
        if self.tty and self._drawn:
            self.draw()

    def finish(self) -> None:
        if self.tty:
            self.draw()
            self.out.write("\n")
            self.out.flush()
        elif self.done % self.every:
            print(self._status(), file=self.out, flush=True)


# ---------------------------------------------------------------------- queries


def parse_query_args(items: Sequence[str], base: Path | None = None) -> dict[str, Any]:
    """`NAME=JSON` or `NAME=@file.json` → {NAME: parsed JSON}; NAME as `q` or `query(q)`."""
    out: dict[str, Any] = {}
    for item in items:
        name, sep, text = item.partition("=")
        name = name.strip()
        if not sep or not name:
            raise ClientError(f"--query '{item:.60}': expected NAME=VALUE, e.g. 'q=[0.1, 0.2]' or 'q=@q.json'")
        name = _bare(name)
        if name in out:
            raise ClientError(f"--query gives query({name}) twice")
        text = text.strip()
        source = f"--query {name}"
        if text.startswith("@"):
            path = Path(text[1:])
            if base is not None and not path.is_absolute():
                path = base / path
            try:
                text = path.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as e:
                raise ClientError(f"{source}: cannot read {path}: {getattr(e, 'strerror', None) or e}") from None
            source = f"{source} ({path})"
        try:
            out[name] = json.loads(text)
        except json.JSONDecodeError as e:
            raise ClientError(f"{source}: not valid JSON ({e.msg} at column {e.colno}); write numbers as JSON, "
                              "e.g. q=[0.1, 0.2] or q={\"values\": [0.1, 0.2]}") from None
    return out


def find_profile(app: pb.ApplicationInfo, profile: str, schema: str | None) -> tuple[pb.SchemaInfo,
                                                                                      pb.RankProfileInfo]:
    schemas = list(app.schemas)
    if schema is not None:
        chosen = [s for s in schemas if s.name == schema]
        if not chosen:
            raise ClientError(f"the server has no schema '{schema}' (schemas: "
                              f"{', '.join(s.name for s in schemas) or 'none'})")
    else:
        if not schemas:
            raise ClientError("the server has no schemas")
        having = [s for s in schemas if any(p.name == profile for p in s.rank_profiles)]
        chosen = having or schemas
        if len(chosen) > 1:
            raise ClientError(f"several schemas {f'have rank profile {profile!r}' if having else 'are deployed'}"
                              f" ({', '.join(s.name for s in chosen)}): choose one with --schema")
    s = chosen[0]
    for p in s.rank_profiles:
        if p.name == profile:
            return s, p
    raise ClientError(f"schema '{s.name}' has no rank profile '{profile}' (profiles: "
                      f"{', '.join(p.name for p in s.rank_profiles) or 'none'})")


def query_tensors(prof: pb.RankProfileInfo, values: Mapping[str, Any]) -> dict[str, pb.Tensor]:
    """Query values as tensors of the types the profile declares."""
    inputs = {_bare(i.name): i for i in prof.inputs}
    out: dict[str, pb.Tensor] = {}
    for name, value in values.items():
        spec = inputs.get(name)
        if spec is None:
            known = ", ".join(f"query({n})" for n in inputs) or "none"
            raise ClientError(f"rank profile '{prof.name}' has no input query({name}) (inputs: {known})")
        try:
            t = parse_type(spec.type)
        except TypeSyntaxError as e:
            raise ClientError(f"the server declares query({name}) with a type the client cannot read "
                              f"('{spec.type}'): {e}") from None
        try:
            arr = tensor_from_json(value, t)
        except TensorValueError as e:
            raise ClientError(f"query({name}) {t}: {e}") from None
        out[f"query({name})"] = encode_tensor(arr, t)
    missing = [(name, i) for name, i in inputs.items() if name not in values and not i.has_default]
    if missing:
        name, i = missing[0]
        raise ClientError(f"rank profile '{prof.name}' needs query({name}) {i.type}: give it with "
                          f"--query '{name}=[...]' (or {name}=@file.json)")
    return out


def _bare(name: str) -> str:
    """`q` of `query(q)`: inputs are named either way."""
    return name[len("query("):-1] if name.startswith("query(") and name.endswith(")") else name


def _plain(t: pb.Tensor) -> Any:
    try:
        return decode_tensor(t, None, "match feature").tolist()
    except WireError as e:
        return {"type": t.type, "error": str(e)}


def response_json(resp: pb.RankResponse, round_trip_ms: float) -> dict[str, Any]:
    """A Rank answer as plain JSON: match features as (nested) lists of numbers."""
    hits = [{"id": h.id, "relevance": h.relevance,
             "match_features": {k: _plain(v) for k, v in sorted(h.match_features.items())}}
            for h in resp.hits]
    out: dict[str, Any] = {
        "hits": hits,
        "coverage": {"documents": resp.coverage.documents, "scored": resp.coverage.scored,
                     "full": resp.coverage.full},
        "latency_ms": {"round_trip": round(round_trip_ms, 3), "scoring": round(resp.scoring_ms, 3)},
    }
    if resp.scored_ids:
        out["scores"] = dict(zip(resp.scored_ids, (float(s) for s in resp.scores)))
    return out


def format_json(out: Mapping[str, Any]) -> str:
    """An answer as indented JSON with one line per hit, so that a hit's match features
    stay together and a screen shows several hits."""
    parts = []
    for key, value in out.items():
        if key == "hits" and value:
            inner = ",\n".join(f"    {json.dumps(h)}" for h in value)
            parts.append(f'  "hits": [\n{inner}\n  ]')
        else:
            parts.append(f"  {json.dumps(key)}: {json.dumps(value)}")
    return "{\n" + ",\n".join(parts) + "\n}"


@dataclass
class Query:
    profile: str
    values: dict[str, Any] = field(default_factory=dict)
    schema: str | None = None
    hits: int = 10
    offset: int = 0

    def request(self, app: pb.ApplicationInfo) -> pb.RankRequest:
        s, p = find_profile(app, self.profile, self.schema)
        return pb.RankRequest(schema=s.name, rank_profile=p.name, query=query_tensors(p, self.values),
                              hits=self.hits, offset=self.offset)

