"""The benchmark's turn-taking timer: every contender gets its timed runs, and each median
is that contender's own."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from bench import compare


def test_contenders_take_turns_and_keep_their_own_medians(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(compare, "WARM_S", 0.0)
    calls: list[str] = []

    def sleeper(label: str, seconds: float) -> Callable[[], None]:
        def run() -> None:
            calls.append(label)
            time.sleep(seconds)
        return run

    medians, runs = compare._interleaved_medians(
        {"fast": sleeper("fast", 0.001), "slow": sleeper("slow", 0.02)}, repeats=7, budget_s=60)
    assert runs == 2 * compare.TIMED_RUNS  # whole turns: 7 timed runs need two of five
    assert 0.001 <= medians["fast"] < 0.015 and 0.02 <= medians["slow"] < 0.05
    turn = 1 + compare.TIMED_RUNS  # one untimed run (WARM_S is 0), then the timed ones
    assert calls == ["fast"] * turn + ["slow"] * turn + ["fast"] * turn + ["slow"] * turn


def test_the_budget_stops_after_a_whole_round() -> None:
    medians, runs = compare._interleaved_medians({"a": lambda: time.sleep(0.002)}, repeats=1000, budget_s=0.0)
    assert runs == compare.TIMED_RUNS and medians["a"] >= 0.002
