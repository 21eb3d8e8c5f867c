"""The bundled example (examples/news): the committed model is the script's output, the corpus
generator is deterministic and valid for the schema, and the package's scores are
onnxruntime's, document by document."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import onnx
import pytest

from cpu_fallback import NumpyBackend
from server.application.package import Application
from server.ranking import Ranker
from server.store import FeedError, document_types, read_feed
from server.store.operations import Put, parse_operation
from server.store.view import ShardView
from tests.application.helpers import OrtModel

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
APP = EXAMPLES / "news"
MODEL = APP / "models" / "news_mlp.onnx"


def _load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"examples_{name}", EXAMPLES / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def make_corpus() -> ModuleType:
    return _load("make_corpus")


@pytest.fixture(scope="module")
def app() -> Application:
    return Application.load(APP)


def test_committed_model_is_the_scripts_output() -> None:
    made = _load("make_model").model_bytes()
    assert MODEL.read_bytes() == made, "examples/news/models/news_mlp.onnx is stale: run python examples/make_model.py"


def test_model_shape() -> None:
    model = onnx.load(MODEL)
    assert [n.op_type for n in model.graph.node] == ["Concat", "Gemm", "Relu", "Gemm"]
    weights = {t.name: tuple(t.dims) for t in model.graph.initializer}
    assert weights == {"W1": (64, 64), "b1": (64,), "W2": (64, 1), "b2": (1,)}


def test_corpus_is_deterministic_and_prefix_stable(make_corpus: ModuleType) -> None:
    n = make_corpus.CHUNK + 100  # crosses a chunk boundary
    lines = list(make_corpus.iter_lines(n))
    assert len(lines) == n
    assert lines == list(make_corpus.iter_lines(n))
    assert list(make_corpus.iter_lines(50)) == lines[:50]
    assert list(make_corpus.iter_lines(n, seed=1))[:5] != lines[:5]
    assert len({json.loads(line)["put"] for line in lines[:1000]}) == 1000


def test_every_corpus_line_is_a_valid_put(make_corpus: ModuleType, app: Application) -> None:
    types = document_types(app)
    n = 3000
    ops = list(read_feed("\n".join(make_corpus.iter_lines(n)) + "\n"))
    assert len(ops) == n
    for obj in ops:
        assert not isinstance(obj, FeedError), obj
        op = parse_operation(obj, types)
        assert isinstance(op, Put) and set(op.fields) == {"title", "embedding", "popularity"}
        emb = np.asarray(op.fields["embedding"], dtype=np.float64)
        assert abs(np.linalg.norm(emb) - 1) < 1e-5
        assert 0 <= float(np.asarray(op.fields["popularity"])) <= 1


def test_check_passes(capsys: pytest.CaptureFixture[str]) -> None:
    from server.cli import main

    assert main(["check", str(APP)]) == 0
    out = capsys.readouterr().out
    assert "model models/news_mlp.onnx" in out and "second-phase over the best 100" in out


def test_scores_match_onnxruntime(make_corpus: ModuleType, app: Application) -> None:
    n = 300
    types = document_types(app)
    ops = [parse_operation(json.loads(line), types) for line in make_corpus.iter_lines(n)]
    ids = [op.doc_id for op in ops]
    emb = np.stack([np.asarray(op.fields["embedding"], dtype=np.float32) for op in ops])
    pop = np.array([np.asarray(op.fields["popularity"]) for op in ops], dtype=np.float32)
    q = np.asarray(make_corpus.topic_query("science"), dtype=np.float32)

    ort = OrtModel(MODEL)
    model = np.array([ort.run({"query_input": q[None], "doc_input": emb[i:i + 1]})["score"][0, 0] for i in range(n)],
                     dtype=np.float64)
    closeness = emb.astype(np.float64) @ q.astype(np.float64)
    first = model + 0.05 * pop
    second = model + 0.5 * closeness + 0.05 * pop

    ranker = Ranker(app.profile("news", "mlp"), NumpyBackend())
    res = ranker.rank(ShardView(ids, {"embedding": emb, "popularity": pop}), {"q": q}, hits=10, all_scores=True)
    assert res.scores is not None and res.scored_ids == ids
    np.testing.assert_allclose(res.scores, first, rtol=1e-5, atol=1e-5)

    # hits: the best 100 by first phase, re-ranked by the second
    order = np.lexsort((np.array(ids), -first))[:100]
    want = order[np.lexsort((np.array(ids)[order], -second[order]))][:10]
    assert [h.id for h in res.hits] == [ids[i] for i in want]
    for h, i in zip(res.hits, want, strict=True):
        assert h.score == pytest.approx(second[i], rel=1e-5, abs=1e-5)
        np.testing.assert_allclose(h.match_features["onnx(news_mlp).score"], [[model[i]]], rtol=1e-5, atol=1e-6)
        assert float(h.match_features["closeness"]) == pytest.approx(closeness[i], rel=1e-5, abs=1e-6)
        assert float(h.match_features["attribute(popularity)"]) == pytest.approx(float(pop[i]))
    # the query is the science topic's centre: the model finds science articles
    titles = {json.loads(line)["put"]: json.loads(line)["fields"]["title"] for line in make_corpus.iter_lines(n)}
    assert all(titles[h.id].startswith("science:") for h in res.hits)


def test_corpus_command_line(make_corpus: ModuleType, tmp_path: Path) -> None:
    script = str(EXAMPLES / "make_corpus.py")
    out = tmp_path / "c.jsonl"
    subprocess.run([sys.executable, script, "--docs", "5", "--out", str(out)], check=True)
    assert out.read_text().splitlines() == list(make_corpus.iter_lines(5))
    res = subprocess.run([sys.executable, script, "--query", "sports"], check=True, capture_output=True, text=True)
    assert json.loads(res.stdout) == make_corpus.topic_query("sports")
