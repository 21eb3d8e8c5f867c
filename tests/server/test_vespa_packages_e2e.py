"""Vespa's own application packages served unchanged: `tensorrank serve` on the package as it
lies in ../shared/vespa-apps, fed random documents of the schema's field types as Vespa feed
JSON through the client, every profile that ranks with a model or a tensor queried over
gRPC, and the hits' order and relevance checked against onnxruntime on the package's model
file and the profile's expressions written out in numpy.

sa-custom-embeddings: angular distance over a synthetic (embedded) field, a constant from a
file, and a real ONNX model in a second phase. sa-model-deployment: an ONNX model of a query
input, string attributes, `if`. vt-globalphase-onnx-inside: global phases over an ONNX model
whose inputs are attributes, constants, query inputs and generated tensors.
sa-text-image-search: closeness over 512 floats, the query vector by default."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import pytest

from proto.tensorrank.v1 import ranking_pb2 as pb
from server.cli import main

from .serving import Server
from .vespa_packages import assert_ranked, best, feed_json, package, rank, rerank_order, serving, vespa_cells, words

SEED = 20261203


def _session(path: Path) -> ort.InferenceSession:
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def _f32(v: np.ndarray) -> list[Any]:
    """Cells as JSON numbers that read back as the same float32 values."""
    cells: list[Any] = np.asarray(v, np.float32).astype(np.float64).tolist()
    return cells


# ------------------------------------------------------------------ sa-custom-embeddings

EMB = "tensor<float>(x[384])"
RANDOM_DOCS, NEAR_DOCS = 100, 140  # more near the direction u than the second phase reranks


class Embeddings:
    def __init__(self, server: Server, root: Path, ids: list[str], emb: np.ndarray, u: np.ndarray) -> None:
        self.server, self.root, self.ids, self.emb, self.u = server, root, ids, emb, u


@pytest.fixture(scope="module")
def embeddings(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Embeddings]:
    root = package("sa-custom-embeddings")
    with serving(root, tmp_path_factory.mktemp("custom-embeddings") / "data") as server:
        rng = np.random.default_rng(SEED)
        u = rng.standard_normal(384).astype(np.float32)
        emb = np.concatenate([rng.standard_normal((RANDOM_DOCS, 384)),
                              u + 0.4 * rng.standard_normal((NEAR_DOCS, 384))]).astype(np.float32)
        ids = [f"id:mynamespace:doc::{i:04d}" for i in range(len(emb))]
        forms = (lambda v: _f32(v), lambda v: {"values": _f32(v)}, lambda v: {"type": EMB, "values": _f32(v)})
        # `embedding` is a field outside the document that Vespa fills with `embed`: fed here
        feed_json(server, [{"put": ids[i], "fields": {"id": int(rng.integers(-2**31, 2**31)), "text": words(rng, 8),
                                                      "embedding": forms[i % 3](emb[i])}}
                           for i in range(len(emb))])
        yield Embeddings(server, root, ids, emb, u)


def _cosines(emb: np.ndarray, q: np.ndarray) -> np.ndarray:
    d, v = emb.astype(np.float64), q.astype(np.float64)
    return np.asarray((d @ v) / np.sqrt((d * d).sum(axis=1) * (v @ v)))


def _simple_similarity(e: Embeddings, q: np.ndarray) -> np.ndarray:
    """sum(l2_normalize(sum(query(q) * constant(W), w), x) * l2_normalize(attribute(embedding), x), x)."""
    # the file has cells for w 0..99 only: the other 28 rows are 0, as in Vespa
    w = vespa_cells(e.root / "constants" / "weights.json", ("w", "x"), (128, 384), missing=0.0)
    transformed = (q.astype(np.float64)[None, :] * w).sum(axis=0)
    return _cosines(e.emb, transformed)


def _custom_similarity(e: Embeddings, q: np.ndarray, rerank: int = 100) -> dict[str, float]:
    """First phase as simple-similarity; the best 100 rescored by the model, as onnxruntime runs it."""
    first = dict(zip(e.ids, _simple_similarity(e, q).tolist(), strict=True))
    sess = _session(e.root / "models" / "custom_similarity.onnx")
    top = best(first, rerank)
    row = {i: k for k, i in enumerate(e.ids)}
    second = {i: float(sess.run(["similarity"], {"query": q[None, :], "document": e.emb[row[i]][None, :]})[0].sum())
              for i in top}
    return rerank_order(first, second)


def _q() -> dict[str, tuple[Any, str, str]]:
    q = np.random.default_rng(SEED + 1).standard_normal(384).astype(np.float32)
    return {"q": (q, EMB, "<f4")}


def test_custom_embeddings_default_ranks_by_the_cosine_of_the_angular_distance(embeddings: Embeddings) -> None:
    e = embeddings
    query = _q()
    want = dict(zip(e.ids, np.cos(np.arccos(np.clip(_cosines(e.emb, query["q"][0]), -1, 1))).tolist(), strict=True))
    # the query vector of distance(field, embedding): by default the profile's only input of its type
    assert_ranked(rank(e.server, "doc", "default", query, 30), want, 30, rtol=1e-5, atol=1e-6, what="default")
    named = rank(e.server, "doc", "default", query, 30, nearest_neighbor={"embedding": "q"})
    assert_ranked(named, want, 30, rtol=1e-5, atol=1e-6, what="default, nearest_neighbor named")


def test_custom_embeddings_simple_similarity_reads_the_constant_file(embeddings: Embeddings) -> None:
    e = embeddings
    query = _q()
    want = dict(zip(e.ids, _simple_similarity(e, query["q"][0]).tolist(), strict=True))
    assert_ranked(rank(e.server, "doc", "simple-similarity", query, len(e.ids)), want, len(e.ids),
                  rtol=1e-5, atol=1e-6, what="simple-similarity")


def test_custom_embeddings_second_phase_is_the_onnx_model(embeddings: Embeddings) -> None:
    e = embeddings
    query = _q()
    want = _custom_similarity(e, query["q"][0])
    # every document: the best 100 by the model's score, then the rest by the first phase,
    # their scores kept: the model's scores stay above the 100 first-phase scores they replace
    first = dict(zip(e.ids, _simple_similarity(e, query["q"][0]).tolist(), strict=True))
    reranked = best(first, 100)
    assert min(want[i] for i in reranked) >= min(first[i] for i in reranked)
    assert_ranked(rank(e.server, "doc", "custom-similarity", query, len(e.ids)), want, len(e.ids),
                  rtol=1e-5, atol=1e-6, what="custom-similarity")


def test_custom_embeddings_hits_after_the_reranked_are_rescaled_as_vespa_does(embeddings: Embeddings) -> None:
    e = embeddings
    # the query along u: the best 100 by first phase have cosines near 1, the model scores near 0.5
    want = _custom_similarity(e, e.u)
    first = dict(zip(e.ids, _simple_similarity(e, e.u).tolist(), strict=True))
    reranked = best(first, 100)
    if not min(first[i] for i in reranked) > min(want[i] for i in reranked):
        pytest.fail("the data no longer makes Vespa rescale the rest")  # not the AssertionError expected
    response = rank(e.server, "doc", "custom-similarity", {"q": (e.u, EMB, "<f4")}, len(e.ids))
    assert_ranked(response, want, len(e.ids), rtol=1e-5, atol=1e-6, what="custom-similarity along u")


# ------------------------------------------------------------------ sa-model-deployment

FLOWERS = 150
CATEGORY = "tensor<float>(d0[1],d1[3])"


@pytest.fixture(scope="module")
def flowers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, list[str], dict[str, np.ndarray]]]:
    root = package("sa-model-deployment")
    tmp = tmp_path_factory.mktemp("model-deployment")
    with serving(root, tmp / "data") as server:
        rng = np.random.default_rng(SEED + 2)
        category = rng.standard_normal((FLOWERS, 1, 3)).astype(np.float32)
        # feedback decides the `if`: negative, zero and positive
        feedback = rng.choice([-1.5, 0.0, 0.25, 1.0, 2.5, 4.0], FLOWERS).astype(np.float32)
        names = [words(rng) for _ in range(FLOWERS)]
        ids = [f"id:flowers:doc::{i:04d}" for i in range(FLOWERS)]

        def category_json(i: int) -> Any:
            cells = _f32(category[i])
            return ([cells, {"values": cells}, {"type": CATEGORY, "values": cells},
                     {"cells": [{"address": {"d0": "0", "d1": str(j)}, "value": cells[0][j]} for j in range(3)]}]
                    [i % 4])

        feed = tmp / "flowers.jsonl"
        feed.write_text("".join(json.dumps({"put": ids[i], "fields": {
            "isFlower": "true" if i % 3 else "false", "name": names[i], "feedback": float(feedback[i]),
            "flowercategory": category_json(i)}}) + "\n" for i in range(FLOWERS)))
        assert main(["feed", str(feed), "--target", server.address]) == 0  # `tensorrank feed`
        yield server, ids, {"category": category, "feedback": feedback, "names": np.array(names, dtype=object)}


def _network(q: np.ndarray) -> np.ndarray:
    sess = _session(package("sa-model-deployment") / "models" / "Network.onnx")
    return np.asarray(sess.run(["output"], {"input": q.reshape(1, 4)})[0], np.float64)


@pytest.mark.parametrize("profile", ["myRank", "myRankwithpenalty"])
def test_model_deployment_profiles_rank_with_the_models_output(
        flowers: tuple[Server, list[str], dict[str, np.ndarray]], profile: str) -> None:
    server, ids, cols = flowers
    for seed in (1, 2):
        q = np.random.default_rng(seed).standard_normal((1, 4)).astype(np.float32)
        out = _network(q)  # the model reads only the query: one run for every document
        score = (out[None, :, :] * cols["category"].astype(np.float64)).sum(axis=(1, 2))
        if profile == "myRankwithpenalty":
            fb = cols["feedback"].astype(np.float64)
            score = score * np.where(fb > 0, fb, 1.0)
        want = dict(zip(ids, score.tolist(), strict=True))
        response = rank(server, "doc", profile, {"myTensor": (q, "tensor<float>(d0[1],d1[4])", "<f4")}, 40)
        assert_ranked(response, want, 40, rtol=1e-5, atol=1e-6, what=f"{profile}, seed {seed}")


def test_model_deployment_stores_the_string_attributes_as_fed(
        flowers: tuple[Server, list[str], dict[str, np.ndarray]]) -> None:
    server, ids, cols = flowers
    for i in (0, 1, 7, 42, 149):
        got = server.stub.Get(pb.GetRequest(id=ids[i]), timeout=30)
        assert got.found
        fields = {k: v for k, v in got.fields.items()}
        assert fields["isFlower"].values.decode() == ("true" if i % 3 else "false")
        name = str(cols["names"][i])
        assert (fields["name"].values.decode() if "name" in fields else "") == name
        np.testing.assert_array_equal(np.frombuffer(fields["flowercategory"].values, "<f4"),
                                      cols["category"][i].reshape(-1))
        assert np.frombuffer(fields["feedback"].values, "<f4")[0] == cols["feedback"][i]


# ------------------------------------------------------------------ vt-globalphase-onnx-inside

GP_DOCS = 60
D2 = "tensor(d0[2])"


@pytest.fixture(scope="module")
def globalphase(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, list[str], dict[str, np.ndarray]]]:
    root = package("vt-globalphase-onnx-inside")
    with serving(root, tmp_path_factory.mktemp("globalphase") / "data") as server:
        rng = np.random.default_rng(SEED + 3)
        aa = rng.standard_normal((GP_DOCS, 3))
        # a label of d0 in `simple`: mostly 0 and 1, some fractional (truncated toward zero)
        # and some outside d0[2] (a peek there gives 0)
        extra = rng.choice([0.0, 1.0, 0.0, 1.0, 1.75, -0.5, 2.0, 0.5], GP_DOCS).astype(np.float32)
        ids = [f"id:test:test::{i:03d}" for i in range(GP_DOCS)]
        feed_json(server, [{"put": ids[i], "fields": {"aa": {"values": aa[i].tolist()}, "extra": float(extra[i])}}
                           for i in range(GP_DOCS)])
        yield server, ids, {"aa": aa, "extra": extra}


VectorA = Callable[[np.ndarray, float], Any]
GlobalPhase = Callable[[np.ndarray, float, np.ndarray, np.ndarray], Any]
# profile: (rerank-count, vector_A of the model as the profile builds it, the global phase)
GLOBAL_PHASES: dict[str, tuple[int, VectorA, GlobalPhase]] = {
    "simple": (13, lambda aa, e: aa, lambda y, e, ww, yy: y[int(e)] if 0 <= int(e) < 2 else 0.0),
    "one": (13, lambda aa, e: aa, lambda y, e, ww, yy: (ww * (y - yy)).sum()),
    "two": (42, lambda aa, e: np.arange(3) + e, lambda y, e, ww, yy: (ww * y).sum()),
    "three": (1001, lambda aa, e: np.array([0.25, e, 0.75]), lambda y, e, ww, yy: (ww * y).sum()),
}


@pytest.mark.parametrize("profile", list(GLOBAL_PHASES))
def test_globalphase_onnx_inside_reranks_as_onnxruntime_scores(
        globalphase: tuple[Server, list[str], dict[str, np.ndarray]], profile: str) -> None:
    server, ids, cols = globalphase
    root = package("vt-globalphase-onnx-inside")
    xx = vespa_cells(root / "files" / "const_xx.json", ("d0", "d1"), (2, 3))
    ww = vespa_cells(root / "files" / "const_ww.json", ("d0",), (2,))
    sess = _session(root / "files" / "ax_plus_b.onnx")
    rerank, vector_a, global_phase = GLOBAL_PHASES[profile]
    for seed in (1, 2):
        rng = np.random.default_rng(seed)
        bb, yy = rng.standard_normal(2), rng.standard_normal(2)
        first = dict(zip(ids, cols["aa"].sum(axis=1).tolist(), strict=True))
        if profile == "simple":  # the reranked include labels outside d0[2] and ones truncated
            assert {2.0, -0.5, 1.75} <= {float(cols["extra"][ids.index(i)]) for i in best(first, rerank)}
        rescored = {}
        for i in best(first, rerank):
            k = ids.index(i)
            e = float(cols["extra"][k])
            y = sess.run(["vector_Y"], {"matrix_X": xx, "vector_A": np.asarray(vector_a(cols["aa"][k], e), np.float64),
                                        "vector_B": bb})[0]
            rescored[i] = float(global_phase(y, e, ww, yy))
        want = rerank_order(first, rescored)
        response = rank(server, "test", profile, {"bb": (bb, D2, "<f8"), "yy": (yy, D2, "<f8")}, GP_DOCS)
        assert_ranked(response, want, GP_DOCS, rtol=1e-9, atol=1e-12, what=f"{profile}, seed {seed}")


# ------------------------------------------------------------------ sa-text-image-search

IMAGES = 300
IMAGE = "tensor<float>(x[512])"


def test_text_image_search_ranks_by_euclidean_closeness(tmp_path: Path) -> None:
    root = package("sa-text-image-search")
    with serving(root, tmp_path / "data") as server:
        rng = np.random.default_rng(SEED + 4)
        images = rng.standard_normal((IMAGES, 512)).astype(np.float32)
        ids = [f"id:image_search:image_search::{i:04d}.jpg" for i in range(IMAGES)]
        feed_json(server, [{"put": ids[i], "fields": {"image_file_name": f"{i:04d} {words(rng)}.jpg",
                                                      "vit_b_32_image": {"values": _f32(images[i])}}}
                           for i in range(IMAGES)])
        for seed in (1, 2):
            text = np.random.default_rng(seed).standard_normal(512).astype(np.float32)
            distance = np.sqrt(((images.astype(np.float64) - text.astype(np.float64)) ** 2).sum(axis=1))
            want = dict(zip(ids, (1 / (1 + distance)).tolist(), strict=True))
            # closeness(vit_b_32_image): the query vector is the profile's only input of the field's type
            response = rank(server, "image_search", "vit_b_32_similarity", {"vit_b_32_text": (text, IMAGE, "<f4")}, 25)
            assert_ranked(response, want, 25, rtol=1e-5, what=f"seed {seed}")
