"""`tensorrank feed`'s input: Vespa feed JSON split into operations lazily, and its progress output."""

from __future__ import annotations

import io
import json

import pytest

from server.feed_file import FeedOp, read_operations
from server.progress import Progress
from server.store import FeedError, read_feed

OPS = [{"put": f"id:news:news::{i}", "fields": {"popularity": i / 10, "title": f"t{i} ü"}} for i in range(7)]


def split(data: bytes, chunk: int = 1 << 16) -> list[FeedOp]:
    return list(read_operations(io.BytesIO(data), "f.jsonl", chunk=chunk))


@pytest.mark.parametrize("chunk", [1, 7, 1 << 16])
def test_jsonl(chunk: int) -> None:
    text = "\n".join(json.dumps(o, ensure_ascii=False) for o in OPS[:3]) + "\r\n\n  \n" + json.dumps(OPS[3])
    ops = split(text.encode(), chunk)
    assert [op.request_id for op in ops] == ["f.jsonl:1", "f.jsonl:2", "f.jsonl:3", "f.jsonl:6"]
    assert [op.doc_id for op in ops] == [o["put"] for o in OPS[:4]]
    assert [json.loads(op.text) for op in ops] == OPS[:4]
    assert all(op.error is None for op in ops)


def test_jsonl_bad_lines_spoil_only_themselves() -> None:
    data = json.dumps(OPS[0]).encode() + b"\n{not json\n\xff\xfe\n" + json.dumps(OPS[1]).encode() + b"\n"
    ops = split(data)
    assert [op.request_id for op in ops] == ["f.jsonl:1", "f.jsonl:2", "f.jsonl:3", "f.jsonl:4"]
    # text that is not JSON still goes to the server, which says what is wrong with it
    assert ops[1].text == "{not json" and ops[1].error is None
    assert ops[2].error is not None and "not UTF-8" in ops[2].error
    assert json.loads(ops[3].text) == OPS[1]


@pytest.mark.parametrize("chunk", [1, 5, 64, 1 << 16])
def test_array_matches_read_feed(chunk: int) -> None:
    text = "  [\n" + ",\n".join(json.dumps(o, indent=1, ensure_ascii=False) for o in OPS) + "\n]\n"
    ops = split(text.encode(), chunk)
    assert [json.loads(op.text) for op in ops] == list(read_feed(text)) == OPS
    assert [op.doc_id for op in ops] == [o["put"] for o in OPS]
    lines = text.splitlines()
    for op in ops:  # each request id names the line where its operation starts
        line = int(op.request_id.split(":")[1])
        assert lines[line - 1].lstrip(",").strip() == "{"


@pytest.mark.parametrize("text, message", [
    ('[{"put": "id:a:a::1", "fields": {}}, {"put": ', "operation 2 of the JSON array is not valid JSON"),
    ('[{"put": "id:a:a::1", "fields": {}} {"put": "id:a:a::2"}]', "expected ',' or ']' after operation 1"),
    ('[{"put": "id:a:a::1", "fields": {}}] trailing', "unexpected text after the end of the JSON array"),
])
@pytest.mark.parametrize("chunk", [3, 1 << 16])
def test_array_errors(text: str, message: str, chunk: int) -> None:
    ops = split(text.encode(), chunk)
    assert json.loads(ops[0].text) == {"put": "id:a:a::1", "fields": {}}
    assert ops[-1].error is not None and message in ops[-1].error
    # read_feed, the server's reader, finds the same problem
    assert isinstance(list(read_feed(text))[-1], FeedError)


def test_empty_inputs() -> None:
    assert split(b"") == [] and split(b" \n\n") == [] and split(b"[ ]") == []


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_plain_lines_every_n() -> None:
    out = io.StringIO()
    p = Progress(out, every=3)
    for i in range(7):
        p.update(ok=i != 4)
    p.message("error: x")
    p.finish()
    lines = out.getvalue().splitlines()
    assert len(lines) == 4 and lines[2] == "error: x"
    assert lines[0].startswith("3 documents") and "0 errors" in lines[0]
    assert lines[1].startswith("6 documents") and "1 errors" in lines[1]
    assert lines[3].startswith("7 documents") and "docs/s" in lines[3]
    assert "\r" not in out.getvalue()


def test_progress_bar_on_a_terminal() -> None:
    out = Tty()
    p = Progress(out, total=4)
    p.update(ok=True)
    p.message("error: y")
    for _ in range(3):
        p.update(ok=False)
    p.finish()
    text = out.getvalue()
    assert text.startswith("\r[") and text.endswith("\n")
    assert "\rerror: y" in text.replace("\r\x1b[K", "\r")
    assert "100%  4 documents" in text.splitlines()[-1] and "3 errors" in text.splitlines()[-1]
