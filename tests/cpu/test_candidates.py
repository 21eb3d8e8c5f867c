"""Backend.candidates: the k best positions with every tie at the boundary, on the host."""

from __future__ import annotations

import numpy as np

from cpu_fallback import NumpyBackend


def test_ties_at_the_boundary_are_all_kept() -> None:
    scores = np.array([1.0, 5.0, 3.0, 5.0, 3.0, 3.0, 0.5])
    pos, vals = NumpyBackend().candidates(scores, 3)
    assert sorted(pos.tolist()) == [1, 2, 3, 4, 5]  # 5, 5 and every 3
    np.testing.assert_array_equal(vals, scores[pos])


def test_dead_rows_never_appear_and_nan_ranks_last() -> None:
    scores = np.array([9.0, np.nan, 2.0, 8.0, 1.0])
    live = np.array([False, True, True, True, True])
    pos, _ = NumpyBackend().candidates(scores, 3, live)
    assert 0 not in pos
    assert sorted(pos.tolist()) == [2, 3, 4]
    pos_all, _ = NumpyBackend().candidates(scores, 10, live)
    assert sorted(pos_all.tolist()) == [1, 2, 3, 4]
    assert np.isnan(NumpyBackend().candidates(scores, 10, live)[1][pos_all.tolist().index(1)])


def test_zero_k_gives_nothing() -> None:
    pos, vals = NumpyBackend().candidates(np.arange(5.0), 0)
    assert pos.size == 0 and vals.size == 0
