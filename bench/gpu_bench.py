"""GPU micro-benchmark: CupyBackend against the same math in PyTorch eager, on one card.

Two programs over N documents resident in GPU memory (default N = 1,000,000):
  mlp:         sum(relu(relu([query, doc] W1 + b1) W2 + b2) W3 + b3), query and doc of 64
               floats (bench.models' mlp_rank; the query half of W1 is applied once per query)
  dot_ffn:     sum(tanh((doc * query) W1) W2), doc and query of 256 floats, W1 256x512
               (bench.models' dot_ffn: compute-bound)
  lightweight: sigmoid(doc . w + b), doc of 16 floats (memory-bound)

For each: the median latency of one evaluation of all N documents (after warm-up, GPU
synchronised around each), documents/s, the ratio of our documents/s to PyTorch's, and
the ratio of two floors to our time: the memory floor (bytes that must move: the inputs
read once and the scores written, at the copy bandwidth measured on this card) and the
compute floor (the matmul FLOPs at the float32 GEMM rate measured on this card, TF32 off).
A ratio near 1 means the program runs at that limit.

Usage: python -m bench.gpu_bench [--docs 1000000] [--repeats 20] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from tensor_ir import build
from tensor_ir.dtypes import CellType
from tensor_ir.ir import Role
from tensor_ir.program import Program

SEED = 20261126
F32 = CellType.FLOAT32


def _weights(rng: np.random.Generator, *shape: int) -> np.ndarray[Any, Any]:
    w: np.ndarray[Any, Any] = (rng.standard_normal(shape) / np.sqrt(shape[0])).astype(np.float32)
    return w


def mlp_weights() -> dict[str, np.ndarray[Any, Any]]:
    rng = np.random.default_rng(SEED)
    return {
        "w1": _weights(rng, 128, 256), "b1": (rng.standard_normal(256) * 0.1).astype(np.float32),
        "w2": _weights(rng, 256, 64), "b2": (rng.standard_normal(64) * 0.1).astype(np.float32),
        "w3": _weights(rng, 64, 1), "b3": np.zeros(1, np.float32),
    }


def mlp_program(w: dict[str, np.ndarray[Any, Any]]) -> Program:
    q = build.input_("query", Role.QUERY, (64,), F32)
    d = build.input_("doc", Role.ATTRIBUTE, (64,), F32)
    x = build.concat([build.reshape(q, (1, 64)), build.reshape(d, (1, 64))], 1)

    def dense(v: Any, wk: str, bk: str) -> Any:
        return build.join("add", build.matmul(v, build.constant(w[wk])), build.constant(w[bk]))

    h1 = build.map_("relu", dense(x, "w1", "b1"))
    h2 = build.map_("relu", dense(h1, "w2", "b2"))
    score = build.reduce(dense(h2, "w3", "b3"), "sum", None, False)
    return Program({"score": score})


def dot_ffn_weights() -> dict[str, np.ndarray[Any, Any]]:
    rng = np.random.default_rng(SEED + 1)
    return {"w1": _weights(rng, 256, 512), "w2": _weights(rng, 512, 1)}


def dot_ffn_program(w: dict[str, np.ndarray[Any, Any]]) -> Program:
    q = build.input_("query", Role.QUERY, (256,), F32)
    d = build.input_("doc", Role.ATTRIBUTE, (256,), F32)
    x = build.reshape(build.join("mul", d, q), (1, 256))
    h = build.map_("tanh", build.matmul(x, build.constant(w["w1"])))
    return Program({"score": build.reduce(build.matmul(h, build.constant(w["w2"])), "sum", None, False)})


def lightweight_weights() -> dict[str, np.ndarray[Any, Any]]:
    rng = np.random.default_rng(SEED + 2)
    return {"w": _weights(rng, 16, 1).reshape(16), "b": np.array(0.1, np.float32)}


def lightweight_program(w: dict[str, np.ndarray[Any, Any]]) -> Program:
    d = build.input_("doc", Role.ATTRIBUTE, (16,), F32)
    dot = build.reduce(build.join("mul", d, build.constant(w["w"])), "sum", [0], False)
    return Program({"score": build.map_("sigmoid", build.join("add", dot, build.constant(w["b"])))})


def p50_ms(fn: Callable[[], Any], sync: Callable[[], None], repeats: int, warmup: int = 3) -> float:
    for _ in range(warmup):
        fn()
    sync()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        sync()
        times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times)


def measure_card(cupy: Any) -> dict[str, float]:
    """Copy bandwidth (bytes read + written per second) and float32 GEMM FLOP/s."""
    sync = cupy.cuda.Device().synchronize
    a = cupy.ones(1 << 28, dtype=cupy.float32)  # 1 GiB
    b = cupy.empty_like(a)
    copy_ms = p50_ms(lambda: cupy.copyto(b, a), sync, 10)
    n = 8192
    m = cupy.ones((n, n), dtype=cupy.float32)
    gemm_ms = p50_ms(lambda: cupy.matmul(m, m), sync, 5)
    return {"copy_bytes_per_s": 2 * (1 << 30) / (copy_ms / 1e3), "gemm_flops": 2 * n**3 / (gemm_ms / 1e3)}


def torch_mlp(torch: Any, w: dict[str, Any], q: Any, docs: Any) -> Callable[[], Any]:
    t = {k: torch.as_tensor(v, device="cuda") for k, v in w.items()}
    qt = torch.as_tensor(q, device="cuda")

    def run() -> Any:
        # the same math as the program after split_concat_matmul: the query half once
        qa = qt @ t["w1"][:64] + t["b1"]
        h1 = torch.relu(docs @ t["w1"][64:] + qa)
        h2 = torch.relu(h1 @ t["w2"] + t["b2"])
        return (h2 @ t["w3"] + t["b3"]).sum(dim=1)

    return run


def torch_dot_ffn(torch: Any, w: dict[str, Any], q: Any, docs: Any) -> Callable[[], Any]:
    t = {k: torch.as_tensor(v, device="cuda") for k, v in w.items()}
    qt = torch.as_tensor(q, device="cuda")
    return lambda: (torch.tanh((docs * qt) @ t["w1"]) @ t["w2"]).sum(dim=1)


def torch_lightweight(torch: Any, w: dict[str, Any], docs: Any) -> Callable[[], Any]:
    wt, bt = torch.as_tensor(w["w"], device="cuda"), torch.as_tensor(w["b"], device="cuda")
    return lambda: torch.sigmoid((docs * wt).sum(dim=1) + bt)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--docs", type=int, default=1_000_000)
    p.add_argument("--repeats", type=int, default=20)
    p.add_argument("--json", help="write the results here")
    args = p.parse_args(argv)

    import cupy

    from gpu_engine.backend import CupyBackend

    try:
        import torch
    except ImportError:
        torch = None
    if torch is not None:
        torch.backends.cuda.matmul.allow_tf32 = False  # as our matmuls: full float32
        torch.backends.cudnn.allow_tf32 = False

    n = args.docs
    rng = np.random.default_rng(SEED)
    backend = CupyBackend()
    sync = cupy.cuda.Device().synchronize
    card = measure_card(cupy)
    results: list[dict[str, Any]] = []

    cases = [
        ("mlp_rank", mlp_program(mlp_weights()), 64, 2 * (64 * 256 + 256 * 64 + 64)),
        ("dot_ffn", dot_ffn_program(dot_ffn_weights()), 256, 2 * (256 * 512 + 512)),
        ("lightweight", lightweight_program(lightweight_weights()), 16, 2 * 16),
    ]
    for name, program, width, flops_per_doc in cases:
        docs_host = rng.standard_normal((n, width)).astype(np.float32)
        query = rng.standard_normal(width if name == "dot_ffn" else 64).astype(np.float32)
        docs = cupy.asarray(docs_host)  # resident, as a shard's column
        feeds: dict[str, Any] = {"doc": docs}
        if "query" in program.inputs:
            feeds["query"] = query
        compiled = backend.compile(program)
        ours = p50_ms(lambda: compiled.run(feeds, n), sync, args.repeats)  # noqa: B023 (called at once)
        # the scores, checked against PyTorch below (and so against each other)
        got = cupy.asnumpy(compiled.run(feeds, n)["score"]).reshape(n)
        row: dict[str, Any] = {"program": name, "docs": n, "ours_p50_ms": ours, "ours_docs_per_s": n / (ours / 1e3)}
        bytes_moved = n * width * 4 + n * 4
        row["memory_floor_ms"] = bytes_moved / card["copy_bytes_per_s"] * 1e3
        row["compute_floor_ms"] = n * flops_per_doc / card["gemm_flops"] * 1e3
        row["memory_floor_ratio"] = row["memory_floor_ms"] / ours
        row["compute_floor_ratio"] = row["compute_floor_ms"] / ours
        if torch is not None:
            tdocs = torch.as_tensor(docs_host, device="cuda")
            if name == "mlp_rank":
                fn = torch_mlp(torch, mlp_weights(), query, tdocs)
            elif name == "dot_ffn":
                fn = torch_dot_ffn(torch, dot_ffn_weights(), query, tdocs)
            else:
                fn = torch_lightweight(torch, lightweight_weights(), tdocs)
            theirs = p50_ms(fn, torch.cuda.synchronize, args.repeats)
            want = fn().float().cpu().numpy().reshape(n)
            row["torch_p50_ms"] = theirs
            row["torch_docs_per_s"] = n / (theirs / 1e3)
            row["ours_over_torch"] = theirs / ours  # documents/s ratio
            row["max_abs_diff_vs_torch"] = float(np.max(np.abs(got - want)))
        results.append(row)

    device = cupy.cuda.runtime.getDeviceProperties(cupy.cuda.Device().id)["name"]
    device = device.decode() if isinstance(device, bytes) else str(device)
    meta = {
        "device": device,
        "cupy": cupy.__version__,
        "torch": getattr(torch, "__version__", None),
        "numpy": np.__version__,
        "python": platform.python_version(),
        "copy_GB_per_s": card["copy_bytes_per_s"] / 1e9,
        "fp32_gemm_TFLOP_per_s": card["gemm_flops"] / 1e12,
        "tf32": False,
    }
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"meta": meta, "results": results}, f, indent=1)
    print(f"device: {device}; cupy {meta['cupy']}, torch {meta['torch']}; copy {meta['copy_GB_per_s']:.0f} GB/s, "
          f"fp32 GEMM {meta['fp32_gemm_TFLOP_per_s']:.1f} TFLOP/s (TF32 off)")
    head = (f"{'program':<12} {'docs':>9} {'ours p50 ms':>12} {'ours docs/s':>13} {'torch p50 ms':>13} "
            f"{'ours/torch':>10} {'mem floor':>10} {'flop floor':>10} {'max|diff|':>10}")
    print(head)
    for r in results:
        print(f"{r['program']:<12} {r['docs']:>9} {r['ours_p50_ms']:>12.3f} {r['ours_docs_per_s']:>13.3g} "
              f"{r.get('torch_p50_ms', float('nan')):>13.3f} {r.get('ours_over_torch', float('nan')):>10.2f} "
              f"{r['memory_floor_ratio']:>10.2f} {r['compute_floor_ratio']:>10.2f} "
              f"{r.get('max_abs_diff_vs_torch', float('nan')):>10.2e}")
    print("ours/torch: documents/s ratio (>1: faster than PyTorch eager); floors: floor time / our time")
    return 0


if __name__ == "__main__":
    sys.exit(main())
