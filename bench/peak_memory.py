"""Peak memory of one mlp_rank query over N resident documents, beyond the documents.

tracemalloc sees numpy's allocations, so the peak during two `Ranker.rank` calls (the
documents are allocated before tracing starts) is what scoring adds on top of the document
data: the first call compiles the plan and allocates the block buffers that later queries
reuse, so both are counted.

Usage: python -m bench.peak_memory [--docs 1000000]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import tracemalloc
from pathlib import Path

import numpy as np

from bench.models import MODELS, SEED, write_package


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--docs", type=int, default=1_000_000)
    args = p.parse_args(argv)
    from cpu_fallback import NumpyBackend
    from server.application.package import Application
    from server.ranking import Ranker
    from server.store.view import ShardView

    with tempfile.TemporaryDirectory() as tmp:
        app = Application.load(write_package(MODELS["mlp_rank"], Path(tmp)))
    ranker = Ranker(app.profile("mlp_rank", "bench"), NumpyBackend())
    rng = np.random.default_rng(SEED)
    n = args.docs
    docs = rng.standard_normal((n, 64)).astype(np.float32)
    shard = ShardView([f"id:mlp_rank:mlp_rank::{i}" for i in range(n)], {"embedding": docs})
    query = {"q": rng.standard_normal(64).astype(np.float32)}
    tracemalloc.start()
    ranker.rank(shard, query, hits=10)
    ranker.rank(shard, query, hits=10)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    data = docs.nbytes
    print(f"mlp_rank over {n:,} documents: document data {data / 2**20:,.1f} MiB; "
          f"peak allocated while ranking {peak / 2**20:,.1f} MiB beyond it (limit 64 MiB)")
    return 0 if peak <= 64 * 2**20 else 1


if __name__ == "__main__":
    sys.exit(main())
