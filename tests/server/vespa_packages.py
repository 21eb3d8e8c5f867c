"""Serving one of Vespa's own application packages (../shared/vespa-apps) as it is, feeding it
Vespa feed JSON through the client, and what the end-to-end tests compare the hits with:
Vespa's constant files read into numpy, random words for string fields, and the range
adjustment Vespa applies to the hits after the reranked ones, written out here."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from proto.tensorrank.v1 import ranking_pb2 as pb
from server.client import Client
from server.feed_file import FeedOp

from ..shared_data import shared
from .serving import Server, tensor

WORDS = ("iris", "setosa", "versicolor", "virginica", "petal", "sepal", "tulip", "rose", "æble", "日本", "café",
         "a b", "quote\"d", "")


def package(name: str) -> Path:
    """../shared/vespa-apps/NAME, served where it lies (the server only reads it), or a skip."""
    return shared(f"vespa-apps/{name}")


@contextmanager
def serving(app: Path, data: Path) -> Iterator[Server]:
    server = Server(app, data)
    try:
        yield server
    finally:
        server.kill()


def words(rng: np.random.Generator, most: int = 4) -> str:
    """A string of random words, some not ASCII, some with a quote or a space; sometimes empty."""
    return " ".join(str(rng.choice(WORDS)) for _ in range(int(rng.integers(0, most + 1)))).strip()


def feed_json(server: Server, puts: Sequence[Mapping[str, Any]]) -> None:
    """Vespa feed JSON operations, one JSON text each, over the client's FeedBatches stream."""
    ops = [FeedOp(f"put:{i}", json.dumps(put), str(put["put"])) for i, put in enumerate(puts)]
    errors: list[str] = []
    with Client(server.address, timeout=60) as client:
        summary = client.feed(ops, on_result=lambda op, r: None if r.ok else errors.append(f"{op.doc_id}: {r.error}"))
    assert summary.ok == len(puts) and not errors, errors[:3]


def rank(server: Server, schema: str, profile: str, query: Mapping[str, tuple[Any, str, str]], hits: int,
         **extra: Any) -> pb.RankResponse:
    """A Rank call; `query`: input name -> (values, Vespa type, little-endian cell dtype)."""
    request = pb.RankRequest(schema=schema, rank_profile=profile, hits=hits,
                             query={k: tensor(v, t, d) for k, (v, t, d) in query.items()}, **extra)
    response: pb.RankResponse = server.stub.Rank(request, timeout=60)
    return response


def assert_ranked(response: pb.RankResponse, want: Mapping[str, float], hits: int, rtol: float,
                  atol: float = 0.0, what: str = "") -> None:
    """The hits are the best `hits` of `want` (document id -> expected relevance), best first,
    each with its expected relevance.

    The hit at each position must have the score the oracle puts at that position, so two
    documents may only trade places where the oracle's scores agree within the tolerance
    (float rounding, not a wrong order)."""
    ranked = sorted(want, key=lambda i: (-want[i], i))[:hits]
    got = [h.id for h in response.hits]
    assert len(got) == len(ranked) == len(set(got)), what
    assert set(got) <= set(want), what
    if got != ranked:
        np.testing.assert_allclose([want[i] for i in got], [want[i] for i in ranked], rtol=rtol, atol=atol,
                                   err_msg=f"{what}: the hits are in another order than the oracle's")
    np.testing.assert_allclose([h.relevance for h in response.hits], [want[i] for i in got], rtol=rtol, atol=atol,
                               err_msg=f"{what}: relevance")


def vespa_cells(path: Path, dims: Sequence[str], shape: Sequence[int], missing: float | None = None) -> np.ndarray:
    """A dense tensor from Vespa's JSON cell form, {"cells": [{"address": {...}, "value": v}]}.

    Cells the file leaves out are `missing` (Vespa's dense tensors are 0 there); None: there are none."""
    out = np.full(tuple(shape), np.nan if missing is None else missing)
    for cell in json.loads(path.read_text())["cells"]:
        out[tuple(int(cell["address"][d]) for d in dims)] = cell["value"]
    assert not np.isnan(out).any(), f"{path}: cells missing"
    return out


def rerank_order(first: Mapping[str, float], rescored: Mapping[str, float]) -> dict[str, float]:
    """Every document's final score after a later phase rescored the best by `first`.

    Vespa's RangeAdjuster (the container's global phase; the content node's HitCollector
    does the same for the second phase): only when the lowest rescored score fell below
    the lowest of the same hits' earlier scores are the others moved, by the ranges' ratio
    (each range at least 1), so that they stay below the rescored ones."""
    old = np.array([first[i] for i in rescored])
    new = np.array(list(rescored.values()))
    rest = {i: s for i, s in first.items() if i not in rescored}
    if old.min() > new.min():
        scale = max(new.max() - new.min(), 1.0) / max(old.max() - old.min(), 1.0)
        rest = {i: s * scale + new.min() - old.min() * scale for i, s in rest.items()}
    return dict(rescored) | rest


def best(scores: Mapping[str, float], k: int) -> list[str]:
    """The `k` best ids by score, ties by id (the ranker's order)."""
    return sorted(scores, key=lambda i: (-scores[i], i))[:k]
