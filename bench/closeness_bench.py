"""closeness(field, x) against faiss-cpu's exact search, on the same vectors, machine and run.

For each document count and metric (euclidean, angular): an application package with one
384-float field of that distance-metric and a profile whose first phase is
`closeness(field, embedding)`, loaded by Application.load; the vectors resident in a Shard
(Shard.load, the restart path: the store's SQLite copy is left out to save time and memory);
each query ranked by Ranker.rank over the shard's snapshot (what Engine.rank runs, top 100
of every document). Against it, on the same vectors: faiss IndexFlatL2 (euclidean), and
IndexFlatIP over L2-normalised copies (angular), `search` of the same single query, top 100,
on faiss's default OpenMP threads and on one (the ratio is against the faster median).
Queries alternate between them, so that load from other processes hits all alike.

Checked per query: the same 100 ids in the same order as faiss, and the same distances
(euclidean: sqrt of faiss's squared distance; angular: acos of faiss's inner product),
where two neighbours whose distances differ by less than float32 rounding may swap.

The memory-bandwidth floor, measured in the same run: one streaming read of the column
(a float32 max and sum, on one thread, and a max split over every usable core; the best
of 7 of the fastest counts).

Usage: env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python -m bench.closeness_bench
       [--docs 100000,1000000] [--dim 384] [--hits 100] [--queries 15] [--json FILE]
needs faiss-cpu (pip install -e '.[bench]').
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from bench.machine import describe, summary
from cpu_fallback import NumpyBackend
from server.application.package import Application
from server.ranking import Ranker
from server.store.shard import Shard
from server.store.values import FieldSpec

SEED = 20261203
METRICS = ("euclidean", "angular")
# two neighbours whose distances differ by less than this may come in either order: the
# engine's d.q and faiss's run in float32 in different orders
SWAP_TOLERANCE = 1e-4


def _package(root: Path, metric: str, dim: int) -> Path:
    (root / "schemas").mkdir(parents=True)
    (root / "schemas" / "vec.sd").write_text(f"""schema vec {{
  document vec {{
    field embedding type tensor<float>(x[{dim}]) {{
      indexing: attribute
      attribute {{ distance-metric: {metric} }}
    }}
  }}
  rank-profile closeness {{
    inputs {{ query(q) tensor<float>(x[{dim}]) }}
    first-phase {{ expression: closeness(field, embedding) }}
  }}
}}
""")
    return root


def _vectors(rng: np.random.Generator, n: int, dim: int) -> np.ndarray:
    out = np.empty((n, dim), dtype=np.float32)
    for i in range(0, n, 1 << 16):  # in chunks: no float64 copy of the whole
        j = min(i + (1 << 16), n)
        out[i:j] = rng.standard_normal((j - i, dim), dtype=np.float32)
    return out


def _floor_ms(x: np.ndarray, repeats: int = 7) -> dict[str, float]:
    """One streaming read of `x`: a float32 max and a sum (the least work per cell numpy
    has), on one thread and split over every core; the fastest counts."""
    flat = x.reshape(-1)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    parts = np.array_split(flat, cores)
    times: dict[str, list[float]] = {"max_1_thread": [], "sum_1_thread": [], f"max_{cores}_threads": []}
    with ThreadPoolExecutor(cores) as pool:
        for _ in range(repeats):
            for name, run in (("max_1_thread", lambda: np.max(flat)), ("sum_1_thread", lambda: np.add.reduce(flat)),
                              (f"max_{cores}_threads", lambda: list(pool.map(np.max, parts)))):
                t = time.perf_counter()
                run()
                times[name].append(time.perf_counter() - t)
    out = {f"{name}_ms": 1000 * min(v) for name, v in times.items()}
    return {**out, "floor_ms": min(out.values()), "gb": x.nbytes / 1e9}


def _faiss_index(metric: str, vectors: np.ndarray) -> Any:
    import faiss

    dim = vectors.shape[1]
    if metric == "euclidean":
        l2 = faiss.IndexFlatL2(dim)
        l2.add(vectors)
        return l2
    index = faiss.IndexFlatIP(dim)
    for i in range(0, len(vectors), 1 << 16):  # normalised chunk by chunk: one copy, faiss's
        chunk = np.array(vectors[i:i + (1 << 16)])
        faiss.normalize_L2(chunk)
        index.add(chunk)
    return index


def _faiss_distance(metric: str, d: np.ndarray) -> np.ndarray:
    d = d.astype(np.float64)
    out: np.ndarray = np.sqrt(np.maximum(d, 0)) if metric == "euclidean" else np.arccos(np.clip(d, -1, 1))
    return out


def _compare(ours: list[int], our_d: np.ndarray, theirs: np.ndarray, their_d: np.ndarray) -> dict[str, Any]:
    same = ours == theirs.tolist()
    # a difference only where neighbours' distances are within rounding of each other is a tie
    ties_only = all(o == t or abs(float(our_d[i]) - float(their_d[i])) < SWAP_TOLERANCE
                    for i, (o, t) in enumerate(zip(ours, theirs.tolist(), strict=True)))
    return {"same_ids": same, "ties_only": ties_only,
            "max_distance_difference": float(np.max(np.abs(our_d - their_d))) if len(our_d) else 0.0}


def run(n: int, dim: int, hits: int, queries: int, rng: np.random.Generator) -> dict[str, Any]:
    import faiss

    vectors = _vectors(rng, n, dim)
    qs = _vectors(rng, queries, dim)
    ids = [f"id:bench:vec::{i}" for i in range(n)]
    floor = _floor_ms(vectors)
    reads = ", ".join(f"{k[:-3]} {v:.1f}" for k, v in floor.items() if k.endswith("_ms") and k != "floor_ms")
    print(f"\n{n:,} documents x {dim} floats ({vectors.nbytes / 1e9:.2f} GB): streaming read "
          f"{floor['floor_ms']:.1f} ms ({reads})", flush=True)
    out: dict[str, Any] = {"docs": n, "dim": dim, "hits": hits, "queries": queries, "floor": floor, "metrics": {}}
    backend = NumpyBackend()
    for metric in METRICS:
        with tempfile.TemporaryDirectory() as tmp:
            app = Application.load(_package(Path(tmp) / "app", metric, dim))
        profile = app.schemas["vec"].profiles["closeness"]
        field = app.schemas["vec"].definition.fields["embedding"]
        shard = Shard("vec", [FieldSpec("embedding", field.type, True)], backend)
        shard.load(ids, {"embedding": vectors})
        ranker = Ranker(profile, backend)
        view = shard.snapshot().view()
        t = time.perf_counter()
        ranker.rank(view, {"q": qs[0]}, hits=hits)  # the first query also computes the kept squared norms
        first_ms = 1000 * (time.perf_counter() - t)
        index = _faiss_index(metric, vectors)
        ours_ms, faiss_ms, faiss_1t_ms, checks = [], [], [], []
        threads = faiss.omp_get_max_threads()
        for q in qs:
            t = time.perf_counter()
            result = ranker.rank(view, {"q": q}, hits=hits)
            ours_ms.append(1000 * (time.perf_counter() - t))
            fq = np.array(q[None, :])
            if metric == "angular":
                faiss.normalize_L2(fq)
            t = time.perf_counter()
            d, i = index.search(fq, hits)
            faiss_ms.append(1000 * (time.perf_counter() - t))
            # faiss on one OpenMP thread too: on a loaded machine its threads' barriers can cost
            # more than the second core gains, and the comparison is against faiss's faster setting
            faiss.omp_set_num_threads(1)
            t = time.perf_counter()
            index.search(fq, hits)
            faiss_1t_ms.append(1000 * (time.perf_counter() - t))
            faiss.omp_set_num_threads(threads)
            our_d = np.array([1.0 / h.score - 1.0 for h in result.hits])
            checks.append(_compare([h.row for h in result.hits], our_d, i[0], _faiss_distance(metric, d[0])))
        del index
        med_ours = statistics.median(ours_ms)
        med_faiss = min(statistics.median(faiss_ms), statistics.median(faiss_1t_ms))
        row = {"engine_ms_median": med_ours, "engine_ms_best": min(ours_ms),
               "faiss_ms_median": statistics.median(faiss_ms), "faiss_ms_best": min(faiss_ms),
               "faiss_1_thread_ms_median": statistics.median(faiss_1t_ms), "faiss_1_thread_ms_best": min(faiss_1t_ms),
               "first_query_ms": first_ms,
               "speed_vs_faiss": med_faiss / med_ours, "over_floor": med_ours / floor["floor_ms"],
               "same_ids": sum(c["same_ids"] for c in checks), "ties_only": all(c["ties_only"] for c in checks),
               "max_distance_difference": max(c["max_distance_difference"] for c in checks),
               "engine_ms": ours_ms, "faiss_ms": faiss_ms, "faiss_1_thread_ms": faiss_1t_ms}
        out["metrics"][metric] = row
        print(f"  {metric:9}  engine {med_ours:8.2f} ms (best {min(ours_ms):.2f})  faiss {row['faiss_ms_median']:8.2f} "
              f"ms, on 1 thread {row['faiss_1_thread_ms_median']:.2f} ms  = {row['speed_vs_faiss']:.2f}x faiss's "
              f"faster, {row['over_floor']:.2f}x the floor; "
              f"same ids {row['same_ids']}/{queries}{'' if row['same_ids'] == queries else ' (rest: ties only)' if row['ties_only'] else ' (DIFFERENT)'}, "  # noqa: E501
              f"max |distance difference| {row['max_distance_difference']:.1e}; first query {first_ms:.0f} ms",
              flush=True)
        del shard, view, ranker
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    ap.add_argument("--docs", default="100000,1000000")
    ap.add_argument("--dim", type=int, default=384)
    ap.add_argument("--hits", type=int, default=100)
    ap.add_argument("--queries", type=int, default=15)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)
    try:
        import faiss
    except ImportError:
        print("faiss-cpu is not installed: pip install -e '.[bench]'")
        return 2
    info = describe()
    info["faiss"] = faiss.__version__
    info["faiss_threads"] = faiss.omp_get_max_threads()
    print(summary(info) + f"; faiss-cpu {info['faiss']} ({info['faiss_threads']} OpenMP threads)")
    rng = np.random.default_rng(SEED)
    results = [run(int(n), args.dim, args.hits, args.queries, rng) for n in args.docs.split(",")]
    if args.json:
        args.json.write_text(json.dumps({"machine": info, "results": results}, indent=1))
    worst = min(r["metrics"][m]["speed_vs_faiss"] for r in results for m in METRICS)
    print(f"\nslowest against faiss: {worst:.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
