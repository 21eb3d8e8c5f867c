"""The numpy backend's blocked evaluator against a single unblocked reference pass.

Blocks of 256 documents over 1,000 documents leave a ragged last block; in-place reuse
of dying operands must not corrupt values still in use, and query-only work must give
the same result however the documents are cut.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from cpu_fallback.backend import NumpyProgram
from tensor_ir import build
from tensor_ir.dtypes import CellType
from tensor_ir.ir import Node, Role
from tensor_ir.program import Program
from tensor_ir.reference import eval_node

F32 = CellType.FLOAT32


def _reference(program: Program, feeds: dict[str, np.ndarray], n: int) -> dict[str, np.ndarray]:
    env: dict[int, np.ndarray] = {}
    for node in program.nodes():
        if node.op.label == "input":
            env[id(node)] = feeds[node.attrs["name"]]
        else:
            env[id(node)] = eval_node(node, [env[id(x)] for x in node.inputs], n)
    return {k: env[id(v)] if v.per_document else np.broadcast_to(env[id(v)], (n, *v.shape))
            for k, v in program.outputs.items()}


def _mlp() -> tuple[Program, dict[str, Node]]:
    rng = np.random.default_rng(7)
    doc = build.input_("doc", Role.ATTRIBUTE, (1, 8), F32)
    q = build.input_("q", Role.QUERY, (1, 8), F32)
    x = build.concat([q, doc], 1)
    w = build.constant(rng.standard_normal((16, 32)).astype(np.float32))
    b = build.constant(rng.standard_normal(32).astype(np.float32))
    h = build.map_("relu", build.join("add", build.matmul(x, w), b))
    shared = build.map_("tanh", h)  # used twice: must not be overwritten in place
    s1 = build.reduce(build.join("mul", shared, shared), "sum", [0, 1], False)
    s2 = build.reduce(build.map_("sigmoid", shared), "max", [1], False)
    return Program({"s1": s1, "s2": s2, "h": h}), {"doc": doc, "q": q}


def _mlp_feeds(n: int, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {"doc": rng.standard_normal((n, 1, 8)).astype(np.float32),
            "q": rng.standard_normal((1, 8)).astype(np.float32)}


@pytest.mark.parametrize("block_bytes", [1, 64 << 10, 1 << 30])
def test_blocked_equals_reference(block_bytes: int) -> None:
    program, _ = _mlp()
    rng = np.random.default_rng(1)
    n = 1000
    feeds = {"doc": rng.standard_normal((n, 1, 8)).astype(np.float32),
             "q": rng.standard_normal((1, 8)).astype(np.float32)}
    got = NumpyProgram(program, block_bytes=block_bytes).run(feeds, n)
    want = _reference(program, feeds, n)
    for k in want:
        np.testing.assert_allclose(got[k], want[k], rtol=1e-5, atol=1e-6)


def test_inputs_are_never_written() -> None:
    program, _ = _mlp()
    rng = np.random.default_rng(2)
    n = 600
    doc = rng.standard_normal((n, 1, 8)).astype(np.float32)
    q = rng.standard_normal((1, 8)).astype(np.float32)
    before = doc.copy(), q.copy()
    NumpyProgram(program, block_bytes=1).run({"doc": doc, "q": q}, n)
    np.testing.assert_array_equal(doc, before[0])
    np.testing.assert_array_equal(q, before[1])


def test_query_only_output_is_broadcast_over_documents() -> None:
    q = build.input_("q", Role.QUERY, (3,), F32)
    out = build.map_("exp", q)
    got = NumpyProgram(Program({"o": out})).run({"q": np.array([0, 1, 2], np.float32)}, 4)["o"]
    assert got.shape == (4, 3)
    np.testing.assert_allclose(got, np.broadcast_to(np.exp([0.0, 1.0, 2.0]), (4, 3)), rtol=1e-6)


def test_block_memory_is_bounded() -> None:
    program, _ = _mlp()
    plan = NumpyProgram(program, block_bytes=64 << 10).plan(100_000)
    per_doc = sum(n.size * n.dtype.np_dtype.itemsize for n in plan.program.nodes() if n.per_document)
    assert plan.block * per_doc <= max(64 << 10, 256 * per_doc)


def test_an_output_viewed_by_a_later_node_is_not_overwritten() -> None:
    # x is an output; its reshape is the last reader of x and feeds an in-place chain
    d = build.input_("d", Role.ATTRIBUTE, (2, 3), F32)
    x = build.join("mul", d, build.scalar(2.0, F32))
    y = build.reshape(x, (3, 2))
    z = build.join("sub", y, build.scalar(100.0, F32))
    program = Program({"x": x, "z": z})
    feeds = {"d": np.arange(24, dtype=np.float32).reshape(4, 2, 3)}
    got = NumpyProgram(program).run(feeds, 4)
    np.testing.assert_array_equal(got["x"], feeds["d"] * 2)
    np.testing.assert_array_equal(got["z"], (feeds["d"] * 2).reshape(4, 3, 2) - 100)


def test_a_passed_deadline_stops_evaluation() -> None:
    import time

    from tensor_ir.cancel import DeadlineExceeded, deadline

    program, _ = _mlp()
    n = 2000
    feeds = _mlp_feeds(n, 3)
    prog = NumpyProgram(program, block_bytes=1)
    with deadline(time.monotonic() - 1), pytest.raises(DeadlineExceeded):
        prog.run(feeds, n)
    with deadline(time.monotonic() + 60):
        assert prog.run(feeds, n)["s1"].shape == (n,)


@pytest.mark.parametrize("k", [1, 2, 3, 7, 8, 31, 32, 64, 65])
def test_short_trailing_reductions_match_numpy(k: int) -> None:
    # the fast paths (BLAS sums, column passes) against numpy's own reductions, NaN included
    x = build.input_("x", Role.ATTRIBUTE, (3, k), F32)
    program = Program({agg: build.reduce(x, agg, [1], True) for agg in ("sum", "max", "min", "prod")})
    values = np.random.default_rng(k).standard_normal((50, 3, k)).astype(np.float32)
    values[0, 0, 0] = np.nan
    got = NumpyProgram(program).run({"x": values}, 50)
    for agg in ("sum", "max", "min", "prod"):
        want = getattr(np, agg)(values, axis=2, keepdims=True)
        np.testing.assert_allclose(got[agg], want, rtol=1e-5, atol=1e-6, equal_nan=True, err_msg=agg)


@pytest.mark.parametrize(("workers", "n", "block_bytes"), [
    (2, 5000, 64 << 10),  # many blocks shared by two workers
    (3, 5000, 64 << 10),  # more workers than cores, blocks pulled in any order
    (2, 3000, 1 << 30),  # one block: the caller's thread alone
])
def test_parallel_workers_equal_the_reference(workers: int, n: int, block_bytes: int,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    _parallel_even_for_little_gemm_work(monkeypatch)
    program, _ = _mlp()
    feeds = _mlp_feeds(n, 4)
    prog = NumpyProgram(program, block_bytes=block_bytes, workers=workers)
    got = prog.run(feeds, n)
    assert prog.plan(n).workers == workers
    want = _reference(program, feeds, n)
    for k in want:
        np.testing.assert_allclose(got[k], want[k], rtol=1e-5, atol=1e-6, err_msg=k)


def _parallel_even_for_little_gemm_work(monkeypatch: pytest.MonkeyPatch) -> None:
    # _mlp is small enough to count as memory-bound, which would keep it on one worker
    from cpu_fallback import backend

    monkeypatch.setattr(backend, "MIN_PARALLEL_FLOPS", 0)


def test_a_passed_deadline_stops_every_worker(monkeypatch: pytest.MonkeyPatch) -> None:
    import time

    _parallel_even_for_little_gemm_work(monkeypatch)

    from tensor_ir.cancel import DeadlineExceeded, deadline

    program, _ = _mlp()
    n = 5000
    feeds = _mlp_feeds(n, 5)
    prog = NumpyProgram(program, block_bytes=1, workers=2)
    assert prog.plan(n).workers == 2
    # the deadline lives in a context variable: the workers must see the caller's
    with deadline(time.monotonic() - 1), pytest.raises(DeadlineExceeded):
        prog.run(feeds, n)
    with deadline(time.monotonic() + 60):
        assert prog.run(feeds, n)["s1"].shape == (n,)


def test_blas_is_single_threaded_only_while_workers_run() -> None:
    threadpoolctl = pytest.importorskip("threadpoolctl")
    from cpu_fallback import blas_threads

    def blas_threads_now() -> list[int]:
        return [lib["num_threads"] for lib in threadpoolctl.threadpool_info() if lib["user_api"] == "blas"]

    before = blas_threads_now()
    with blas_threads.single_threaded_blas():
        with blas_threads.single_threaded_blas():  # a second query at the same time
            assert set(blas_threads_now()) <= {1}
        assert set(blas_threads_now()) <= {1}  # the first query still runs
    assert blas_threads_now() == before


def test_squares_equal_the_reference_power() -> None:
    # the kernel squares by multiplying; the reference calls numpy's power: the same numbers
    x = build.input_("x", Role.ATTRIBUTE, (3, 40), F32)
    two = build.constant(np.array([2.0], np.float32))
    program = Program({"sq": build.join("pow", x, two), "cube": build.join("pow", x, build.scalar(3.0, F32))})
    values = np.random.default_rng(9).standard_normal((300, 3, 40)).astype(np.float32) * 1e3
    values[0, 0, :3] = [np.nan, np.inf, -0.0]
    got = NumpyProgram(program).run({"x": values}, 300)
    want = _reference(program, {"x": values}, 300)
    np.testing.assert_array_equal(got["sq"], want["sq"])
    np.testing.assert_array_equal(got["cube"], want["cube"])


def test_blocks_are_sized_by_the_values_alive_at_once() -> None:
    d = build.input_("d", Role.ATTRIBUTE, (8,), F32)
    e = build.map_("exp", d)  # 32 bytes per document
    n = build.map_("neg", e)  # 32 more while e is alive, then e dies
    s = build.reduce(build.join("mul", n, n), "sum", [0], False)  # 32 + 4, then 4
    plan = NumpyProgram(Program({"s": s}), block_bytes=64 * 1000).plan(10_000)
    assert plan._live_bytes_per_doc() == 64
    assert plan.block == 960  # 64,000 bytes / 64, rounded down to a multiple of 64


def test_a_failing_worker_stops_the_others_before_the_query_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    import threading

    from cpu_fallback import backend

    _parallel_even_for_little_gemm_work(monkeypatch)
    program, _ = _mlp()
    n = 20_000
    feeds = _mlp_feeds(n, 6)
    prog = NumpyProgram(program, block_bytes=1, workers=2)  # 256-row blocks: 79 of them
    assert prog.plan(n).workers == 2
    original = backend._Plan._block
    calls: list[int] = []
    lock = threading.Lock()

    def failing(self: Any, values: Any, shared: Any, pool: Any, start: int, stop: int) -> Any:
        with lock:
            calls.append(start)
        if start == 256 * 3:
            raise MemoryError("no room for the block")
        return original(self, values, shared, pool, start, stop)

    monkeypatch.setattr(backend._Plan, "_block", failing)
    with pytest.raises(MemoryError, match="no room"):
        prog.run(feeds, n)
    seen = len(calls)
    assert seen < 20  # the other worker stopped at its next block, not after all 79
    import time

    time.sleep(0.05)
    assert len(calls) == seen  # and nothing ran on after the query failed
