"""sa-reverse-image-search served unchanged: hamming closeness over packed int8 bits in the
first phase, a float cosine over bfloat16 cells in the second, match features, a double
query input left to its default, and profiles whose first phase is a constant or `random`
(queried over fewer documents than they rerank, so the second phase decides every place).
Fed random documents of every field type (strings, ints, raw, bfloat16, int8 in Vespa's hex
form) as Vespa feed JSON; scores written out in numpy."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

from proto.tensorrank.v1 import ranking_pb2 as pb

from .serving import Server
from .vespa_packages import assert_ranked, best, feed_json, package, rank, rerank_order, serving, words

N = 300
SEED = 20261204
Q = "tensor<float>(x[768])"
Q_BIN = "tensor<int8>(x[96])"


def _bfloat16(v: np.ndarray) -> np.ndarray:
    """float32 cells as Vespa stores them in a bfloat16 attribute: the low 16 bits dropped."""
    bits = np.ascontiguousarray(v, np.float32).view(np.uint32) & np.uint32(0xFFFF0000)
    return bits.view(np.float32).astype(np.float64)


def _packed_signs(v: np.ndarray) -> np.ndarray:
    """Vespa's `binarize | pack_bits`: 1 for a positive cell, 8 cells per int8, first cell highest."""
    return np.packbits(v > 0, axis=-1).view(np.int8)


class Images:
    def __init__(self, server: Server, ids: list[str], emb: np.ndarray, bits: np.ndarray) -> None:
        self.server, self.ids, self.emb, self.bits = server, ids, emb, bits


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Images]:
    root = package("sa-reverse-image-search")
    with serving(root, tmp_path_factory.mktemp("reverse-image") / "data") as server:
        rng = np.random.default_rng(SEED)
        raw = rng.standard_normal((N, 768)).astype(np.float32)
        emb = (raw / np.linalg.norm(raw, axis=1, keepdims=True)).astype(np.float32)  # prenormalized-angular
        bits = _packed_signs(emb)
        ids = [f"id:image:image::{i:04d}" for i in range(N)]

        def binary(i: int) -> Any:  # Vespa's hex form for every third document
            return {"values": bits[i].view(np.uint8).tobytes().hex().upper()} if i % 3 == 0 else bits[i].tolist()

        # embedding_binary is computed by Vespa from embedding while indexing: fed with that value here
        feed_json(server, [{"put": ids[i], "fields": {
            "id": f"img-{i:04d}", "filename": f"{words(rng)}.jpg", "path": f"/images/{i % 7}/{i:04d}.jpg",
            "split": str(rng.choice(["train", "val", "test"])), "label": int(rng.integers(0, 1000)),
            "width": int(rng.integers(1, 4096)), "height": int(rng.integers(1, 4096)),
            "full_image": base64.b64encode(rng.bytes(int(rng.integers(1, 64)))).decode(),
            "embedding": {"values": emb[i].astype(np.float64).tolist()}, "embedding_binary": binary(i)}}
            for i in range(N)])
        yield Images(server, ids, emb, bits)


def _query(images: Images, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A query vector near one of the documents, and its packed bits."""
    rng = np.random.default_rng(seed)
    v = images.emb[int(rng.integers(0, N))] + 0.05 * rng.standard_normal(768)
    q = (v / np.linalg.norm(v)).astype(np.float32)
    return q, _packed_signs(q)


def _features(images: Images, q: np.ndarray, q_bin: np.ndarray) -> dict[str, dict[str, float]]:
    hamming = np.unpackbits((images.bits ^ q_bin).view(np.uint8), axis=1).sum(axis=1).astype(np.float64)
    cos = _bfloat16(images.emb) @ q.astype(np.float64)  # sum(query(q) * attribute(embedding))
    columns = {"distance(field, embedding_binary)": hamming, "closeness(field, embedding_binary)": 1 / (1 + hamming),
               "closeness_emb": 0.5 * (1 + cos)}
    return {name: dict(zip(images.ids, v.tolist(), strict=True)) for name, v in columns.items()}


def _check_match_features(response: pb.RankResponse, features: dict[str, dict[str, float]]) -> None:
    for h in response.hits:
        assert set(h.match_features) == set(features), h.id
        for name, want in features.items():
            t = h.match_features[name]
            got = np.frombuffer(t.values, {"double": "<f8", "float": "<f4"}[t.type])
            assert got.shape == (1,), (name, t.type)
            assert got[0] == pytest.approx(want[h.id], rel=1e-5, abs=1e-6), (h.id, name)


def _request(q: np.ndarray, q_bin: np.ndarray, **more: tuple[Any, str, str]) -> dict[str, tuple[Any, str, str]]:
    return {"q": (q, Q, "<f4"), "q_bin": (q_bin, Q_BIN, "<i1"), **more}


def test_closeness_binary_ranks_by_hamming_closeness_with_match_features(images: Images) -> None:
    q, q_bin = _query(images, 1)
    f = _features(images, q, q_bin)
    # the query vector of closeness(field, embedding_binary): the profile's only int8 x[96] input
    response = rank(images.server, "image", "closeness_binary", _request(q, q_bin), 40)
    assert_ranked(response, f["closeness(field, embedding_binary)"], 40, rtol=1e-12, what="closeness_binary")
    _check_match_features(response, f)


@pytest.mark.parametrize(("profile", "rerank"), [("closeness", 100), ("closeness_hybrid_strict", 1000)])
def test_the_second_phase_reranks_by_the_float_cosine(images: Images, profile: str, rerank: int) -> None:
    for seed in (2, 3):
        q, q_bin = _query(images, seed)
        f = _features(images, q, q_bin)
        first = f["closeness(field, embedding_binary)"]
        want = rerank_order(first, {i: f["closeness_emb"][i] for i in best(first, rerank)})
        response = rank(images.server, "image", profile, _request(q, q_bin), 120)
        assert_ranked(response, want, 120, rtol=1e-5, atol=1e-6, what=f"{profile}, seed {seed}")
        _check_match_features(response, f)


@pytest.mark.parametrize("alpha", [0.3, 0.0, None])
def test_closeness_weighted_blends_the_two_closenesses(images: Images, alpha: float | None) -> None:
    q, q_bin = _query(images, 4)
    f = _features(images, q, q_bin)
    first = f["closeness(field, embedding_binary)"]
    # query(alpha) is declared without a default: a query feature not given is 0 in Vespa
    a = 0.0 if alpha is None else alpha
    want = rerank_order(first, {i: a * f["closeness_emb"][i] + (1 - a) * first[i] for i in best(first, 100)})
    extra = {} if alpha is None else {"alpha": (alpha, "double", "<f8")}
    response = rank(images.server, "image", "closeness_weighted", _request(q, q_bin, **extra), 60)
    assert_ranked(response, want, 60, rtol=1e-5, atol=1e-7, what=f"alpha {alpha}")


@pytest.mark.parametrize("profile", ["unranked", "random"])
def test_over_fewer_documents_than_the_rerank_count_the_second_phase_decides(images: Images, profile: str) -> None:
    q, q_bin = _query(images, 5)
    f = _features(images, q, q_bin)
    chosen = images.ids[::4]  # 75 documents, within the second phase's 100
    want = {i: f["closeness_emb"][i] for i in chosen}
    response = rank(images.server, "image", profile, _request(q, q_bin), len(chosen), doc_ids=chosen)
    assert_ranked(response, want, len(chosen), rtol=1e-5, atol=1e-6, what=profile)
    _check_match_features(response, f)
