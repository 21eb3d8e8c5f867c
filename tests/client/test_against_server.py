"""query, feed and health against a real server of the bundled example."""

from __future__ import annotations

import json
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

from server.cli import main
from server.client import Client, ServerUnavailable
from server.feed_file import FeedOp
from tests.client.conftest import tensorrank

N = 300


@pytest.fixture(scope="module")
def fed(server: str, corpus: ModuleType, tmp_path_factory: pytest.TempPathFactory) -> str:
    """N documents of the corpus, fed through `tensorrank feed` as a JSON array."""
    path = tmp_path_factory.mktemp("feed") / "news.json"
    path.write_text("[\n" + ",\n".join(corpus.iter_lines(N)) + "\n]\n")
    res = tensorrank("feed", str(path), "--target", server)
    assert res.returncode == 0, res.stderr
    assert f"fed {N} operations" in res.stdout and f"{N} ok, 0 failed" in res.stdout
    return server


def test_health(server: str) -> None:
    Client(server).wait_serving(60)
    res = tensorrank("health", "--target", server)
    assert (res.returncode, res.stdout.strip()) == (0, "SERVING")


def test_feed_reports_each_error_and_fails(fed: str, corpus: ModuleType, tmp_path: Path) -> None:
    lines = [line.replace("news::", "news::extra-") for line in corpus.iter_lines(120)]
    lines[10] = '{"put": "id:news:news::bad1", "fields": {"popularity": 0.5, "colour": "red"}}'
    lines[50] = '{"put": "id:news:news::bad2", "fields": {'
    path = tmp_path / "more.jsonl"
    path.write_text("\n".join(lines) + "\n")
    res = tensorrank("feed", str(path), "--target", fed, "--progress-every", "50", "--window", "7")
    assert res.returncode == 1
    assert "fed 120 operations" in res.stdout and "118 ok, 2 failed" in res.stdout
    err = res.stderr.splitlines()
    assert any(e.startswith("error: more.jsonl:11") and "id:news:news::bad1" in e and "colour" in e for e in err), err
    assert any(e.startswith("error: more.jsonl:51 (id:news:news::bad2)") and "JSON" in e for e in err), err
    progress = [e for e in err if e.endswith(" s") and "docs/s" in e]
    assert [p.split()[0] for p in progress] == ["50", "100", "120"], err
    assert "2 errors" in progress[-1]
    assert "2 operations failed" in res.stderr


def test_feed_from_stdin(fed: str) -> None:
    op = {"put": "id:news:news::stdin", "fields": {"title": "from stdin", "embedding": [0.0] * 32, "popularity": 1}}
    res = tensorrank("feed", "-", "--target", fed, stdin=json.dumps(op) + "\n")
    assert res.returncode == 0, res.stderr
    assert "1 ok, 0 failed" in res.stdout
    got = Client(fed).get("id:news:news::stdin")
    assert got.found and got.fields["title"].values == b"from stdin"


def test_client_window_of_one_and_unreadable_operations(fed: str) -> None:
    seen: list[tuple[str, bool]] = []
    ops = [FeedOp("a:1", '{"remove": "id:news:news::nothing"}', "id:news:news::nothing"),
           FeedOp("a:2", "", None, "not UTF-8 text"),
           FeedOp("a:3", '{"remove": "id:news:news::nothing2"}', None)]
    with Client(fed) as client:
        summary = client.feed(iter(ops), window=1, on_result=lambda op, r: seen.append((op.request_id, r.ok)))
    assert (summary.ok, summary.failed, summary.sent) == (2, 1, 2)
    assert sorted(seen) == [("a:1", True), ("a:2", False), ("a:3", True)]


def test_query(fed: str, corpus: ModuleType, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "q.json").write_text(json.dumps(corpus.topic_query("sports")))
    assert main(["query", "--profile", "mlp", "--query", f"q=@{tmp_path / 'q.json'}", "--hits", "4",
                 "--target", fed]) == 0
    out = json.loads(capsys.readouterr().out)
    hits = out["hits"]
    assert len(hits) == 4
    assert [h["relevance"] for h in hits] == sorted((h["relevance"] for h in hits), reverse=True)
    assert out["coverage"]["full"] and out["coverage"]["documents"] == out["coverage"]["scored"] >= N
    assert out["latency_ms"]["round_trip"] >= out["latency_ms"]["scoring"] >= 0
    for h in hits:
        mf = h["match_features"]
        assert set(mf) == {"onnx(news_mlp).score", "closeness", "attribute(popularity)"}
        assert np.asarray(mf["onnx(news_mlp).score"]).shape == (1, 1)
        # the second phase: model + 0.5 closeness + 0.05 popularity, from the features the server returned
        want = mf["onnx(news_mlp).score"][0][0] + 0.5 * mf["closeness"] + 0.05 * mf["attribute(popularity)"]
        assert h["relevance"] == pytest.approx(want, rel=1e-5, abs=1e-6)
        title = Client(fed).get(h["id"]).fields["title"].values.decode()
        assert title.startswith("sports:")
    # the same values written inline, and by the closeness profile
    q = json.dumps(corpus.topic_query("sports"))
    res = tensorrank("query", "--profile", "closeness", "--schema", "news", "--query", f"query(q)={q}",
                     "--hits", "2", "--target", fed)
    assert res.returncode == 0, res.stderr
    assert len(json.loads(res.stdout)["hits"]) == 2


@pytest.mark.parametrize("args, message", [
    (["--profile", "mlp", "--query", "q=[1, 2]"], "query(q) tensor<float>(x[32]): "),
    (["--profile", "mlp"], "needs query(q) tensor<float>(x[32]): give it with --query 'q=[...]'"),
    (["--profile", "nope", "--query", "q=[1]"], "schema 'news' has no rank profile 'nope' (profiles: "),
])
def test_query_errors(fed: str, args: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["query", *args, "--target", fed]) == 1
    assert message in capsys.readouterr().err


def test_no_server(capsys: pytest.CaptureFixture[str]) -> None:
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    target = f"127.0.0.1:{port}"
    for cmd in (["query", "--profile", "mlp", "--query", "q=[1]"], ["health"], ["feed", "-"]):
        assert main([*cmd, "--target", target]) == 1
        err = capsys.readouterr().err
        assert f"no tensorrank server at {target}; start one with: tensorrank serve APP_DIR --port {port}" in err
    with pytest.raises(ServerUnavailable):
        Client(target).application()
