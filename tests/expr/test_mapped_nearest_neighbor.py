"""Nearest-neighbour features over multi-vector fields (one mapped and one indexed
dimension): distance is the least over a document's vectors, closeness the largest, and
closest(f) the label of the nearest; checked against numpy over each document's vectors."""

from __future__ import annotations

import numpy as np
import pytest

from .mapped_helpers import BACKEND_NAMES, backend_named, rank

BACKENDS = pytest.mark.parametrize("backend_name", BACKEND_NAMES)

FIELD = "tensor<float>(p{},x[3])"
VECTORS = [
    {("0",): [1.0, 0.0, 0.0], ("1",): [0.0, 2.0, 0.0], ("intro",): [3.0, 3.0, -1.0]},
    {},  # no vector at all
    {("9",): [-1.0, -1.0, 0.5]},
]
Q = [0.5, 1.5, 0.0]


def _distances(doc: dict[tuple[str, ...], list[float]], metric: str) -> dict[str, float]:
    q = np.asarray(Q, dtype=np.float64)
    out = {}
    for (label,), v in doc.items():
        d = np.asarray(v, dtype=np.float64)
        if metric == "euclidean":
            out[label] = float(np.sqrt(((d - q) ** 2).sum()))
        elif metric == "angular":
            out[label] = float(np.arccos(np.clip(d @ q / np.sqrt((d @ d) * (q @ q)), -1, 1)))
        else:  # dotproduct
            out[label] = float(-(d @ q))
    return out


@BACKENDS
@pytest.mark.parametrize("metric", ["euclidean", "angular", "dotproduct"])
def test_distance_and_closeness_take_the_nearest_vector(metric: str, backend_name: str) -> None:
    backend = backend_named(backend_name)
    fields = {"e": (FIELD, VECTORS)}
    queries = {"q": ("tensor<float>(x[3])", Q)}
    dist = rank("distance(field, e)", fields, queries, distance_metric=metric, backend=backend)
    close = rank("closeness(field, e)", fields, queries, distance_metric=metric, backend=backend)
    for i, doc in enumerate(VECTORS):
        per = _distances(doc, metric)
        if not per:
            assert dist[i] == np.finfo(np.float64).max and close[i] == 0.0
            continue
        best = min(per.values())
        assert dist[i] == pytest.approx(best, rel=1e-6, abs=1e-6)
        want = -best if metric == "dotproduct" else 1.0 / (1.0 + best)
        assert close[i] == pytest.approx(want, rel=1e-6, abs=1e-6)


@BACKENDS
def test_closest_names_the_nearest_vector(backend_name: str) -> None:
    backend = backend_named(backend_name)
    got = rank("closest(e)", {"e": (FIELD, VECTORS)}, {"q": ("tensor<float>(x[3])", Q)}, backend=backend)
    for i, doc in enumerate(VECTORS):
        per = _distances(doc, "euclidean")
        want = {} if not per else {(min(per, key=lambda k: per[k]),): 1.0}
        assert got[i] == want
    picked = rank("sum(closest(e) * attribute(e))", {"e": (FIELD, VECTORS)}, {"q": ("tensor<float>(x[3])", Q)},
                  backend=backend)
    # by hand: doc 0's nearest to (0.5, 1.5, 0) is "1" (0, 2, 0): its cells sum to 2; doc 2 has one vector
    assert picked == pytest.approx([2.0, 0.0, -1.5])
