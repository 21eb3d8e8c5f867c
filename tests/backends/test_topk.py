"""gpu_engine.backend.topk, the device top-k the service uses: the k best scores, best
first, ties to the lower index, NaN as -inf; checked against a sort of every score."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from gpu_engine.backend import topk
from tests.backends.conftest import cupy_unavailable
from tests.conftest import SEED


def expected(scores: np.ndarray[Any, Any], k: int) -> list[int]:
    key = np.where(np.isnan(scores.astype(np.float64)), -np.inf, scores.astype(np.float64))
    return sorted(range(scores.size), key=lambda i: (-key[i], i))[:k]


@pytest.fixture(params=["numpy", "cupy"])
def xp(request: pytest.FixtureRequest) -> Any:
    if request.param == "numpy":
        return np
    reason = cupy_unavailable()
    if reason is not None:
        pytest.skip(reason)
    import cupy

    return cupy


@pytest.mark.parametrize("k", [0, 1, 5, 37, 200, 500])
def test_topk_breaks_ties_by_lower_index(xp: Any, k: int) -> None:
    rng = np.random.default_rng(SEED + k)
    scores = rng.integers(0, 6, 200).astype(np.float32)  # many ties, at the boundary too
    scores[rng.integers(0, 200, 5)] = np.nan
    idx, vals = topk(xp.asarray(scores), k, xp)
    want = expected(scores, k)
    assert idx.tolist() == want
    np.testing.assert_array_equal(vals, scores[want])


def test_topk_of_distinct_scores(xp: Any) -> None:
    rng = np.random.default_rng(SEED)
    scores = rng.standard_normal(10_000)
    idx, vals = topk(xp.asarray(scores), 10, xp)
    assert idx.tolist() == expected(scores, 10)
    assert (np.diff(vals) <= 0).all()


def test_topk_needs_one_axis(xp: Any) -> None:
    with pytest.raises(ValueError, match="1-D"):
        topk(xp.zeros((2, 2)), 1, xp)
