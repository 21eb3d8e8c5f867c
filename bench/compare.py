"""tensorrank against onnxruntime, side by side, in one run.

For each model and document count N the same documents and query are scored by
(a) tensorrank's numpy backend through the model's rank profile (the full Ranker.rank
call: first phase over all documents and the top 10), (b) onnxruntime's
InferenceSession.run over the same documents with the query tiled to every row, at its
faster thread setting, and (c) the GPU backend when one is present. Medians of at
least `--repeats` runs, the contenders taking turns (0.3 s of untimed runs, then five timed,
per turn); the ratio is documents/s of tensorrank over onnxruntime's.

Usage: python -m bench.compare [--models mlp_rank,...] [--sizes 1000,10000] [--repeats 20]
       [--json FILE] [--markdown FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from bench.machine import describe, summary
from bench.models import FIELD_OF, MODELS, QUERY_OF, SEED, TOKENS, write_package

# In its turn a contender runs untimed for at least WARM_S seconds (and once at least), then
# TIMED_RUNS times timed.
WARM_S, TIMED_RUNS = 0.3, 5


def _interleaved_medians(fns: dict[str, Callable[[], Any]], repeats: int, budget_s: float
                         ) -> tuple[dict[str, float], int]:
    """Median seconds of each function over rounds in which the functions take turns. On a
    shared VM the machine's speed drifts over seconds; taking turns exposes every contender
    to the same drift, where timing one after the other would not. The untimed runs of a
    turn absorb what the previous contender left behind: measured here, tensorrank's
    first runs after onnxruntime's (whose pool threads spin after a run returns, spinning
    being its faster setting) are up to twice as slow, recovering over about 0.1 s."""
    times: dict[str, list[float]] = {label: [] for label in fns}
    start = time.perf_counter()
    while min(len(ts) for ts in times.values()) < repeats:
        for label, fn in fns.items():
            warm_until = time.perf_counter() + WARM_S
            fn()
            while time.perf_counter() < warm_until:
                fn()
            for _ in range(TIMED_RUNS):
                t0 = time.perf_counter()
                fn()
                times[label].append(time.perf_counter() - t0)
        if time.perf_counter() - start > budget_s:
            break
    runs = min(len(ts) for ts in times.values())
    return {label: statistics.median(ts) for label, ts in times.items()}, runs


def _vocabulary(path: Path) -> int:
    """Rows of the embedding table that input_ids index, so generated tokens are valid."""
    import onnx

    model = onnx.load(str(path))
    inits = {t.name: t for t in model.graph.initializer}
    for node in model.graph.node:  # the first Gather from a weight matrix is the token embedding
        if node.op_type == "Gather" and node.input[0] in inits and len(inits[node.input[0]].dims) == 2:
            return int(inits[node.input[0]].dims[0])
    raise ValueError(f"{path}: no embedding Gather found")


def _documents(name: str, n: int, rng: np.random.Generator, vocab: int) -> dict[str, np.ndarray]:
    model = MODELS[name]
    docs: dict[str, np.ndarray] = {}
    for onnx_name, shape in model.doc_inputs.items():
        if model.integer_docs:
            if onnx_name == "input_ids":
                docs[onnx_name] = rng.integers(0, vocab, size=(n, *shape)).astype(np.float32)
            elif onnx_name == "attention_mask":
                docs[onnx_name] = np.ones((n, *shape), np.float32)
            else:
                docs[onnx_name] = np.zeros((n, *shape), np.float32)
        else:
            docs[onnx_name] = rng.standard_normal((n, *shape)).astype(np.float32)
    return docs


def _ort_sessions(path: Path) -> list[tuple[str, Any]]:
    import onnxruntime as ort

    sessions = []
    for threads in (1, os.cpu_count() or 1):
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        sessions.append((f"{threads} thread(s)", ort.InferenceSession(str(path), opts,
                                                                      providers=["CPUExecutionProvider"])))
    return sessions


def bench_model(name: str, sizes: list[int], repeats: int, root: Path, gpu: bool, budget_s: float
                ) -> list[dict[str, Any]]:
    from cpu_fallback import NumpyBackend
    from server.application.package import Application
    from server.ranking import Ranker
    from server.store.view import ShardView

    model = MODELS[name]
    app_dir = write_package(model, root)
    app = Application.load(app_dir)
    profile = app.profile(name, "bench")
    ranker = Ranker(profile, NumpyBackend())
    gpu_ranker = None
    if gpu:
        from gpu_engine.backend import CupyBackend

        gpu_ranker = Ranker(profile, CupyBackend())
    sessions = _ort_sessions(app_dir / "models" / f"{name}.onnx")
    rows = []
    rng = np.random.default_rng(SEED)
    query = {q: rng.standard_normal(model.query_inputs[onnx_name]).astype(np.float32)
             for onnx_name, q in QUERY_OF[name].items()}
    vocab = _vocabulary(app_dir / "models" / f"{name}.onnx") if model.integer_docs else 0
    for n in sizes:
        docs = _documents(name, n, rng, vocab)
        shard = ShardView([f"id:{name}:{name}::{i}" for i in range(n)],
                          {FIELD_OF[name][k]: v for k, v in docs.items()})
        feeds: dict[str, np.ndarray] = {}
        for onnx_name in model.doc_inputs:
            feeds[onnx_name] = docs[onnx_name].astype(np.int64) if model.integer_docs else docs[onnx_name]
        for onnx_name, q in QUERY_OF[name].items():
            feeds[onnx_name] = np.ascontiguousarray(np.broadcast_to(query[q], (n, *query[q].shape)))
        contenders: dict[str, Callable[[], Any]] = {"tensorrank": lambda s=shard: ranker.rank(s, query, hits=10)}
        for label, sess in sessions:
            contenders[label] = lambda s=sess, f=feeds: s.run(None, f)
        if gpu_ranker is not None:
            contenders["gpu"] = lambda s=shard: gpu_ranker.rank(s, query, hits=10)
        medians, runs = _interleaved_medians(contenders, repeats, budget_s)
        ours = medians["tensorrank"]
        best = min(((label, medians[label]) for label, _ in sessions), key=lambda lt: lt[1])
        # the same scores, or the comparison means nothing
        ort_scores = sessions[0][1].run(None, feeds)[0].reshape(n, -1).sum(axis=1)
        our_scores = ranker.rank(shard, query, hits=1, all_scores=True).scores
        assert our_scores is not None
        err = float(np.max(np.abs(our_scores - ort_scores) / (1 + np.abs(ort_scores))))
        row = {
            "model": name, "documents": n, "runs": runs,
            "tensorrank_s": ours, "tensorrank_docs_per_s": n / ours,
            "onnxruntime_s": best[1], "onnxruntime_docs_per_s": n / best[1], "onnxruntime_setting": best[0],
            "ratio": best[1] / ours, "max_rel_error": err,
        }
        if gpu_ranker is not None:
            row["gpu_s"] = medians["gpu"]
            row["gpu_docs_per_s"] = n / medians["gpu"]
        rows.append(row)
        print(f"{name:12s} N={n:>9,d}  tensorrank {n / ours:>12,.0f} docs/s   onnxruntime {n / best[1]:>12,.0f} "
              f"docs/s ({best[0]})   ratio {best[1] / ours:5.2f}x   max rel err {err:.1e}", flush=True)
    return rows


def markdown(rows: list[dict[str, Any]]) -> str:
    out = ["| model | N | tensorrank docs/s | onnxruntime docs/s | ratio | runs |",
           "| --- | ---: | ---: | ---: | ---: | ---: |"]
    for r in rows:
        out.append(f"| {r['model']} | {r['documents']:,} | {r['tensorrank_docs_per_s']:,.0f} | "
                   f"{r['onnxruntime_docs_per_s']:,.0f} ({r['onnxruntime_setting']}) | {r['ratio']:.2f}x | "
                   f"{r['runs']} |")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0])
    p.add_argument("--models", default="mlp_rank,dot_ffn,lightweight,transformer")
    p.add_argument("--sizes", default="1000,10000,100000,1000000")
    p.add_argument("--repeats", type=int, default=20)
    p.add_argument("--budget", type=float, default=60.0, help="seconds per measurement before stopping early "
                   "(at least 5 runs)")
    p.add_argument("--gpu", action="store_true", help="also run the GPU backend")
    p.add_argument("--json")
    p.add_argument("--markdown")
    args = p.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",")]
    info = describe()
    print(f"machine: {summary(info)}", flush=True)
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.models.split(","):
            if name not in MODELS:
                print(f"unknown model '{name}' (models: {', '.join(MODELS)})", file=sys.stderr)
                return 2
            reason = MODELS[name].missing()
            if reason is not None:
                print(f"skipped: {reason}", file=sys.stderr)
                continue
            model_sizes = [s for s in sizes if name != "transformer" or s <= 100_000]
            rows += bench_model(name, model_sizes, args.repeats, Path(tmp), args.gpu, args.budget)
    table = markdown(rows)
    print(table)
    if args.json:
        Path(args.json).write_text(json.dumps({"machine": info, "rows": rows, "tokens": TOKENS}, indent=1))
    if args.markdown:
        Path(args.markdown).write_text(table + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
