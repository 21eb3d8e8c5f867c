"""The closeness benchmark at a small size: the engine's hits and distances are faiss's
(skipped where faiss-cpu, a bench extra, is not installed)."""

from __future__ import annotations

import numpy as np
import pytest

from bench.closeness_bench import METRICS, run

pytest.importorskip("faiss", reason="faiss-cpu is a bench extra: pip install -e '.[bench]'")


def test_the_engine_finds_faiss_neighbours() -> None:
    result = run(3000, 24, 20, 3, np.random.default_rng(5))
    for metric in METRICS:
        row = result["metrics"][metric]
        assert row["same_ids"] == 3, (metric, row)
        assert row["max_distance_difference"] < 1e-4, (metric, row)
        assert row["engine_ms_median"] > 0 and row["faiss_ms_median"] > 0
