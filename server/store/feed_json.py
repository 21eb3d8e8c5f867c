"""Reading Vespa's JSON feed format: a JSON array of operations, or one operation per line (JSONL).

`read_feed` yields each operation as parsed JSON, or a FeedError standing for one that
cannot be read, which the store reports in its place. In JSONL a bad line spoils only
itself; in an array, everything after a syntax error is unreadable, so reading stops
there with one error saying so.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from typing import IO, Any

from server.store.errors import FeedError

_WS = " \t\r\n"


def read_feed(source: str | bytes | IO[str] | IO[bytes] | Iterable[str] | Iterable[bytes]) -> Iterator[Any]:
    lines = _lines(source)
    number = 0
    for raw in lines:
        number += 1
        line = _text(raw, number)
        if isinstance(line, FeedError):
            yield line
            continue
        stripped = line.strip()
        if not stripped:
            continue
        if stripped.startswith("["):
            parts = [line]
            for i, r in enumerate(lines, number + 1):
                t = _text(r, i)
                if isinstance(t, FeedError):
                    yield FeedError(f"{t.message}; the JSON array cannot be read")
                    return
                parts.append(t)
            yield from _array("".join(parts), number)
            return
        yield _line(stripped, number)
        break
    for raw in lines:
        number += 1
        line = _text(raw, number)
        if isinstance(line, FeedError):
            yield line
        elif line.strip():
            yield _line(line.strip(), number)


def _lines(source: Any) -> Iterator[Any]:
    if isinstance(source, str | bytes):
        return iter(source.splitlines(keepends=True))
    return iter(source)


def _text(raw: Any, number: int) -> str | FeedError:
    if isinstance(raw, bytes):
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError as e:
            return FeedError(f"line {number}: not UTF-8 text ({e.reason} at byte {e.start})")
    return str(raw)


def _line(text: str, number: int) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        return FeedError(f"line {number}: not valid JSON: {e.msg} at column {e.colno}")


def _skip(text: str, pos: int) -> int:
    while pos < len(text) and text[pos] in _WS:
        pos += 1
    return pos


def _array(text: str, first_line: int) -> Iterator[Any]:
    dec = json.JSONDecoder()

    def where(pos: int) -> str:
        return f"line {first_line + text.count(chr(10), 0, pos)}"

    pos = _skip(text, text.index("[") + 1)
    if pos < len(text) and text[pos] == "]":
        pos = _skip(text, pos + 1)
        if pos < len(text):
            yield FeedError(f"{where(pos)}: unexpected text after the end of the JSON array")
        return
    k = 0
    while True:
        k += 1
        try:
            obj, pos = dec.raw_decode(text, pos)
        except json.JSONDecodeError as e:
            yield FeedError(f"{where(e.pos)}: operation {k} of the JSON array is not valid JSON: {e.msg}; the rest "
                            "of the array cannot be read")
            return
        yield obj
        pos = _skip(text, pos)
        if pos < len(text) and text[pos] == ",":
            pos = _skip(text, pos + 1)
            continue
        if pos < len(text) and text[pos] == "]":
            pos = _skip(text, pos + 1)
            if pos < len(text):
                yield FeedError(f"{where(pos)}: unexpected text after the end of the JSON array")
            return
        yield FeedError(f"{where(pos)}: expected ',' or ']' after operation {k} of the JSON array; the rest of the "
                        "array cannot be read")
        return
