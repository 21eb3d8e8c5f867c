"""Two of Vespa's packages that rank with mapped and mixed tensors, served, fed Vespa feed
JSON and queried over gRPC; the hits checked against a per-document computation written here.

sa-album-recommendation-java: `sum(query(user_profile) * attribute(category_scores))` over
`cat{}`, served as it is: the inner join of the query's and the document's labels.
sa-colbert: the MaxSim second phase over `tensor<int8>(dt{}, x[16])` token embeddings
(unpack_bits to 128 bits a token), its cosine first phase, and both as match features. Its
profiles also return bm25 match features, and two of them rank by bm25: text matching is
another issue, so the package is served with those lines left out, the rest verbatim.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from proto.tensorrank.v1 import ranking_pb2 as pb
from server.client import Client, tensor_message, tensor_value
from tensor_ir.mapped import MappedTensor

from .vespa_packages import assert_ranked, feed_json, package, serving

SEED = 20261203
CATS = ("pop", "rock", "jazz", "metal", "folk", "classical", "hip-hop", "blues", "电子", "a b")
USER_PROFILE = "tensor<float>(cat{})"


def _album_docs(rng: np.random.Generator, n: int) -> list[dict[str, float]]:
    docs = []
    for i in range(n):
        k = int(rng.integers(0, 6)) if i % 7 else 0  # some documents have no category at all
        labels = rng.choice(len(CATS), size=k, replace=False)
        docs.append({CATS[j]: float(np.float32(rng.uniform(-1, 1))) for j in labels})
    return docs


def _album_form(i: int, cats: dict[str, float]) -> Any:
    """Each of Vespa's JSON forms for a tensor with one mapped dimension, in turn."""
    if i % 3 == 0:
        return {"cells": [{"address": {"cat": c}, "value": v} for c, v in cats.items()]}
    if i % 3 == 1:
        return {"cells": dict(cats)}
    return dict(cats) if cats else {"cells": []}


def test_album_recommendation_ranks_by_the_sparse_dot_product(tmp_path: Path) -> None:
    app = package("sa-album-recommendation-java")
    rng = np.random.default_rng(SEED)
    docs = _album_docs(rng, 60)
    ids = [f"id:mynamespace:music::{i:03d}" for i in range(len(docs))]
    with serving(app, tmp_path / "data") as server:
        feed_json(server, [{"put": ids[i], "fields": {"artist": f"artist {i}", "album": f"album {i}", "year": 1990 + i,
                                                      "category_scores": _album_form(i, d)}}
                           for i, d in enumerate(docs)])
        for profile in ({"pop": 0.8, "jazz": 0.4, "unknown": 3.0}, {"电子": -1.0, "a b": 0.5, "blues": 2.0}, {}):
            want = {ids[i]: sum(profile[c] * d[c] for c in profile if c in d) for i, d in enumerate(docs)}
            request = pb.RankRequest(schema="music", rank_profile="rank_albums", hits=20,
                                     query={"user_profile": tensor_message(profile, USER_PROFILE)})
            response = server.stub.Rank(request, timeout=60)
            assert_ranked(response, want, 20, rtol=1e-6, atol=1e-6, what=f"user profile {profile}")
        with Client(server.address, timeout=60) as client:
            for i in (0, 1, 2, 7):
                fields = client.get_fields(ids[i])
                assert fields is not None
                got = fields["category_scores"]
                assert isinstance(got, MappedTensor) and str(got.type) == USER_PROFILE
                assert {a[0]: float(v) for a, v in got.as_dict().items()} == docs[i]


# ---------------------------------------------------------------- ColBERT


def _colbert_package(tmp_path: Path) -> Path:
    """sa-colbert with its bm25 match features and bm25 profiles left out (module doc)."""
    src = package("sa-colbert") / "schemas" / "doc.sd"
    text = src.read_text(encoding="utf-8")
    cut = text.index("    rank-profile bm25 inherits default")
    text = text[:cut].replace("match-features: max_sim cos_sim bm25(title) bm25(chunk)",
                              "match-features: max_sim cos_sim") + "}\n"
    assert "bm25(" not in text.split("rank-profile default")[1]
    root = tmp_path / "colbert"
    (root / "schemas").mkdir(parents=True)
    (root / "schemas" / "doc.sd").write_text(text, encoding="utf-8")
    return root


def _bits(tokens: np.ndarray) -> np.ndarray:
    """unpack_bits, big-endian: int8 [T, 16] -> [T, 128] of 0/1."""
    return np.unpackbits(tokens.astype(np.int8).view(np.uint8), axis=1, bitorder="big").astype(np.float64)


def _bf16(x: np.ndarray) -> np.ndarray:
    """float32 values truncated to bfloat16, as Vespa converts fed values."""
    return (np.asarray(x, np.float32).view(np.uint32) & np.uint32(0xFFFF0000)).view(np.float32)


def test_colbert_reranks_by_maxsim_over_the_token_embeddings(tmp_path: Path) -> None:
    app = _colbert_package(tmp_path)
    rng = np.random.default_rng(SEED + 1)
    n = 40
    ids = [f"id:doc:doc::{i:03d}" for i in range(n)]
    emb = _bf16(rng.standard_normal((n, 384)))
    tokens = [rng.integers(-128, 128, size=(int(rng.integers(1, 9)) if i % 9 else 0, 16)) for i in range(n)]
    puts = []
    for i in range(n):
        fields: dict[str, Any] = {"id": str(i), "title": f"title {i}", "chunk": f"chunk {i}",
                                  "embedding": {"values": emb[i].tolist()}}
        if i % 2:
            fields["colbert"] = {"blocks": {str(t): tokens[i][t].tolist() for t in range(len(tokens[i]))}}
        else:
            fields["colbert"] = {"blocks": [{"address": {"dt": str(t)}, "values": tokens[i][t].tolist()}
                                            for t in range(len(tokens[i]))]}
        puts.append({"put": ids[i], "fields": fields})
    qt = rng.standard_normal((5, 128)).astype(np.float32)
    q = _bf16(rng.standard_normal(384))
    qt_value = MappedTensor.build(_type("tensor<float>(qt{},x[128])"), [((str(j),), qt[j]) for j in range(5)])

    def max_sim(i: int) -> float:
        if len(tokens[i]) == 0:
            return 0.0  # no token: the reduce over dt finds no cell, the sum over qt none either
        return float((qt.astype(np.float64) @ _bits(tokens[i]).T).max(axis=1).sum())

    def cos_sim(i: int) -> float:
        d, v = emb[i].astype(np.float64), q.astype(np.float64)
        return float(np.cos(np.arccos(np.clip(d @ v / np.sqrt((d @ d) * (v @ v)), -1, 1))))

    with serving(app, tmp_path / "data") as server:
        feed_json(server, puts)
        request = pb.RankRequest(schema="doc", rank_profile="default", hits=15,
                                 query={"qt": tensor_message(qt_value, None),
                                        "q": tensor_message(q, "tensor<bfloat16>(x[384])")})
        response = server.stub.Rank(request, timeout=60)
        # rerank-count 100 covers every document: all are ranked by the second phase
        assert_ranked(response, {ids[i]: max_sim(i) for i in range(n)}, 15, rtol=1e-5, atol=1e-5, what="max_sim")
        for h in response.hits:
            i = ids.index(h.id)
            assert float(tensor_value(h.match_features["max_sim"])) == pytest.approx(max_sim(i), rel=1e-5, abs=1e-5)
            assert float(tensor_value(h.match_features["cos_sim"])) == pytest.approx(cos_sim(i), rel=1e-5, abs=1e-6)
        with Client(server.address, timeout=60) as client:
            got = client.get_fields(ids[3])
            assert got is not None
            value = got["colbert"]
            assert isinstance(value, MappedTensor)
            assert {a[0]: c.tolist() for a, c in value.as_dict().items()} == \
                {str(t): tokens[3][t].tolist() for t in range(len(tokens[3]))}


def _type(text: str) -> Any:
    from tensor_ir.expr.types import parse_type

    return parse_type(text, allow_mapped=True)
