"""Block-maxima top-k (tensor_ir.topk): the candidates of a selection over every score,
exactly, whether the scores are given or come from a monotone tail run on a few blocks."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from cpu_fallback import NumpyBackend
from tensor_ir import build
from tensor_ir.backend import CompiledProgram, run_tail, select_candidates
from tensor_ir.dtypes import CellType
from tensor_ir.ir import Role
from tensor_ir.passes.monotone_tail import split_monotone_tail
from tensor_ir.program import Program
from tensor_ir.topk import block_candidates
from tests.conftest import SEED

BLOCK = 1024  # the largest block size: positions BLOCK apart are in different blocks
N = 100 * BLOCK + 123  # whole blocks and a rest


def expected(scores: npt.NDArray[Any], k: int) -> tuple[list[int], npt.NDArray[np.float64]]:
    """Backend.candidates' contract by sorting: every score at least the k-th best, NaN lowest."""
    key = np.where(np.isnan(scores), -np.inf, scores.astype(np.float64))
    kth = np.sort(key)[::-1][min(k, key.size) - 1]
    pos = np.flatnonzero(key >= kth)
    return pos.tolist(), scores[pos].astype(np.float64)


def check(got: tuple[npt.NDArray[np.int64], npt.NDArray[np.float64]], scores: npt.NDArray[Any], k: int) -> None:
    pos, vals = expected(scores, k)
    assert got[0].tolist() == pos
    assert got[1].dtype == np.float64
    np.testing.assert_array_equal(got[1], vals)


def normal(n: int = N, seed: int = 0) -> npt.NDArray[np.float32]:
    return np.random.default_rng(SEED + seed).standard_normal(n).astype(np.float32)


# ---------------------------------------------------------------- scores given (select_candidates)


@pytest.mark.parametrize("k", [1, 10, 25])
def test_distinct_scores(k: int) -> None:
    scores = normal(seed=k)
    assert block_candidates(scores, k) is not None  # the block path, not the fallback
    check(select_candidates(np, scores, k), scores, k)


def test_ties_at_the_kth_value_across_blocks_and_rest() -> None:
    scores = normal()
    top = np.float32(scores.max() + 1)
    spots = [5, 3 * BLOCK + 7, 3 * BLOCK + 8, 40 * BLOCK, 99 * BLOCK + 1, N - 1]  # the last one in the rest
    scores[spots] = top
    got = block_candidates(scores, 4)
    assert got is not None and got[0].tolist() == spots  # all six ties of the 4th best
    check(got, scores, 4)


def test_integer_scores_with_many_ties() -> None:
    scores = np.random.default_rng(SEED).integers(0, 20_000, N).astype(np.float64)
    assert block_candidates(scores, 10) is not None
    check(select_candidates(np, scores, 10), scores, 10)
    # so many ties at the top that most blocks hold one: the selection over all scores
    coarse = np.random.default_rng(SEED).integers(0, 50, N).astype(np.float64)
    assert block_candidates(coarse, 10) is None
    check(select_candidates(np, coarse, 10), coarse, 10)


def test_nan_in_a_block_falls_back_and_nan_in_the_rest_ranks_lowest() -> None:
    scores = normal()
    scores[[17, 50 * BLOCK]] = np.nan
    assert block_candidates(scores, 10) is None
    check(select_candidates(np, scores, 10), scores, 10)
    rest_nan = normal()
    rest_nan[N - 5] = np.nan
    got = block_candidates(rest_nan, 10)
    assert got is not None
    check(got, rest_nan, 10)


@pytest.mark.parametrize(("n", "k"), [(1000, 10), (N, 26), (N, N - 1), (N, N + 5)])
def test_few_documents_or_a_large_k_take_the_selection_over_all(n: int, k: int) -> None:
    scores = normal(n)
    assert block_candidates(scores, k) is None
    check(select_candidates(np, scores, k), scores, k)


# ---------------------------------------------------------------- scores through a tail


def program(fn: str, offset: float) -> Program:
    """score = float64(fn(g + offset)) for a head g that is an attribute."""
    g = build.input_("attribute(g)", Role.ATTRIBUTE, (1,), CellType.FLOAT32)
    y = build.map_(fn, build.join("add", g, build.constant(np.array([offset], np.float32))))
    return Program({"s": build.reduce(build.cast(y, CellType.FLOAT64), "sum", None, False)})


class Spy(CompiledProgram):
    """A compiled tail that counts the documents it scores."""

    def __init__(self, inner: CompiledProgram) -> None:
        self.inner = inner
        self.program = inner.program
        self.docs = 0

    def run(self, inputs: Any, n_docs: int) -> dict[str, Any]:
        self.docs += n_docs
        return self.inner.run(inputs, n_docs)


def through_tail(fn: str, offset: float, g: npt.NDArray[np.float32], k: int) -> tuple[bool, Any, Any]:
    """(whether blocks were used, what the tail path selected, the scores of every document)."""
    cpu = NumpyBackend()
    whole = program(fn, offset)
    split = split_monotone_tail(whole, "s")
    assert split is not None
    tail = Spy(cpu.compile(split[1]))
    got = cpu.candidates_after(g, tail, {}, k)
    all_scores = cpu.run(whole, {"attribute(g)": g.reshape(-1, 1)}, g.size)["s"]
    # the selection matches the one over every document, and so does every score
    np.testing.assert_array_equal(run_tail(cpu.compile(split[1]), {}, g), all_scores)
    check(got, all_scores, k)
    return tail.docs < g.size // 4, got, all_scores


@pytest.mark.parametrize("fn", ["sigmoid", "relu", "exp", "tanh"])
def test_tail_on_distinct_scores(fn: str) -> None:
    blocked, _, _ = through_tail(fn, 0.1, normal(), 10)
    assert blocked


def test_saturating_sigmoid_ties_of_different_heads() -> None:
    # above about 16.6, float32 sigmoid is 1.0: different heads tie
    g = normal()
    spots = np.arange(20) * 5 * BLOCK + 11
    g[spots] = np.linspace(16.0, 40.0, 20, dtype=np.float32)
    blocked, got, scores = through_tail("sigmoid", 0.0, g, 12)
    assert blocked
    assert got[0].tolist() == spots[scores[spots] == 1.0].tolist() and len(got[0]) > 12
    # saturated everywhere: too many blocks at the threshold, the tail runs over all
    g_hot = normal() + 30
    blocked, _, _ = through_tail("sigmoid", 0.0, g_hot, 10)
    assert not blocked


def test_relu_with_mostly_zeros() -> None:
    g = normal() - 3.5  # a few hundred positive heads
    blocked, _, _ = through_tail("relu", 0.0, g, 10)
    assert blocked
    # fewer positive heads than k: the k-th best is 0, tied all over
    few = np.full(N, -1.0, np.float32)
    few[[3, 5000, N - 1]] = [1.0, 2.0, 3.0]
    blocked, got, _ = through_tail("relu", 0.0, few, 10)
    assert not blocked and len(got[0]) == N


def test_nan_head_falls_back_to_the_tail_over_all() -> None:
    g = normal()
    g[[7, 60 * BLOCK + 3]] = np.nan
    blocked, _, _ = through_tail("sigmoid", 0.0, g, 10)
    assert not blocked


def test_few_documents_or_a_large_k_or_a_live_mask_run_the_tail_over_all() -> None:
    blocked, _, _ = through_tail("sigmoid", 0.0, normal(5000), 10)
    assert not blocked
    blocked, _, _ = through_tail("sigmoid", 0.0, normal(), 400)
    assert not blocked
    cpu = NumpyBackend()
    whole = program("sigmoid", 0.0)
    split = split_monotone_tail(whole, "s")
    assert split is not None
    g = normal()
    live = np.random.default_rng(SEED).random(N) > 0.1
    got = cpu.candidates_after(g, cpu.compile(split[1]), {}, 10, live)
    scores = cpu.run(whole, {"attribute(g)": g.reshape(-1, 1)}, N)["s"]
    assert got[0].tolist() == select_candidates(np, scores, 10, live)[0].tolist()
