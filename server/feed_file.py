"""Reading a Vespa feed file (JSONL, or one JSON array) into operations for the Feed call, lazily.

Each operation keeps its JSON text as written, with a request id naming the file and line
it starts on; the server parses and checks it.
"""

from __future__ import annotations

import codecs
import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import IO

from tensor_ir.errors import TensorRankError


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
            raise UnreadableFeed(f"not UTF-8 text ({e.reason})") from None
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
                        raise UnreadableFeed(f"line {where}: operation {k} of the JSON array is not valid JSON: "
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
                        raise UnreadableFeed(f"line {where}: unexpected text after the end of the JSON array")
                    return
            else:
                where = line + buf.count("\n", 0, pos)
                raise UnreadableFeed(f"line {where}: expected ',' or ']' after operation {k} of the JSON array; "
                                  "the rest of the array cannot be read")
            if pos > chunk:  # drop what has been read, keeping the line count
                line += buf.count("\n", 0, pos)
                buf = buf[pos:]
                pos = 0
    except UnreadableFeed as e:
        yield FeedOp(f"{name}:{line}", "", None, e.message)


class UnreadableFeed(TensorRankError):
    """The rest of a feed file cannot be read (not UTF-8, or a JSON array broken past
    repair); caught inside the reader, which turns it into one failed operation."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message
