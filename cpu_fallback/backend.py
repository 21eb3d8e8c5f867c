"""NumpyBackend: evaluates a Program over documents in cache-sized blocks.

Constant work runs once per plan and query-only work once per call; per-document nodes run
block by block, writing into buffers reused from block to block (and from query to query)
and, where an operand dies at an elementwise node, into that operand's own buffer. Memory
therefore stays bounded by the block size, not by the number of documents. Blocks are shared
out to one worker thread per core (numpy releases the GIL in its loops and in BLAS), each with
its own buffers and with BLAS at one thread.
"""

from __future__ import annotations

import contextvars
import logging
import os
import threading
from collections import Counter
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor, wait
from typing import Any

import numpy as np
import numpy.typing as npt

from cpu_fallback import blas_threads, forest_native
from cpu_fallback.kernels import INTO, concat_into, streams_rows
from tensor_ir.backend import Backend, CompiledProgram, run_tail
from tensor_ir.cancel import check as check_deadline
from tensor_ir.ir import Node, Op, Variance
from tensor_ir.passes.fold_query_scale import fold_query_scale, thresholds
from tensor_ir.passes.optimize import optimize
from tensor_ir.program import Program, check_inputs
from tensor_ir.reference import eval_node
from tensor_ir.topk import block_candidates

log = logging.getLogger(__name__)

Array = npt.NDArray[Any]

# Bytes of computed values one block may hold at once (see _Plan._live_bytes_per_doc); each
# worker holds its own block. Measured on a 2-core EPYC with two workers, best of 12
# interleaved runs at 100,000 documents, for 3 / 4 / 6 / 12 MiB: mlp_rank 1.48 / 1.44 / 1.40 /
# 1.33 M docs/s, dot_ffn 435 / 406 / 413 / 432 k docs/s (flat within the noise). Large enough
# for efficient GEMMs, small enough for two workers' blocks to stay in cache.
# TENSORRANK_BLOCK_BYTES overrides it.
DEFAULT_BLOCK_BYTES = 3 << 20
_VIEW_OPS = frozenset({Op.RESHAPE, Op.TRANSPOSE, Op.SLICE, Op.BROADCAST})
_IN_PLACE_OPS = frozenset({Op.JOIN, Op.MAP})
_PLACEABLE_OPS = frozenset({Op.JOIN, Op.MAP, Op.MATMUL})  # kernels that write into any strided target


# Parallel workers evaluating blocks; TENSORRANK_CPU_THREADS overrides the count (1 turns it off).
MAX_WORKERS = 8


def default_workers() -> int:
    env = os.environ.get("TENSORRANK_CPU_THREADS")
    if env:
        return max(1, int(env))
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    return max(1, min(cores, MAX_WORKERS))


_executor: ThreadPoolExecutor | None = None
_executor_size = 0
_executor_lock = threading.Lock()


def _shared_executor(workers: int) -> ThreadPoolExecutor:
    """One pool for every program, grown when a program wants more workers (a replaced pool
    finishes what it was given: queries in flight keep their futures)."""
    global _executor, _executor_size
    with _executor_lock:
        if _executor is None or _executor_size < workers:
            _executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="tensorrank-block")
            _executor_size = workers
        return _executor


# Per-document GEMM work below which a program is memory-bound and gains nothing from workers.
MIN_PARALLEL_FLOPS = 4096


def _matmul_flops_per_doc(doc: list[Node]) -> int:
    return sum(2 * node.size * node.inputs[0].shape[-1] for node in doc if node.op is Op.MATMUL) + sum(
        _forest_work(node) for node in doc if node.op is Op.TREE_ENSEMBLE)


def _forest_work(node: Node) -> int:
    """A tree walk's numpy operations per document, counted like flops: it is compute-bound."""
    forest = node.attrs["forest"]
    return int(8 * forest.n_trees * max(forest.max_depth, 1) * (node.size // forest.n_targets))


# Bytes per document and tree that a forest's walk holds while it runs (index, value, decision)
FOREST_BYTES_PER_TREE = 16


# Rows per block and step at least: a step costs about 10 us of Python and numpy call overhead
# whatever the rows, so a program of many small steps needs larger blocks (random_encoder,
# 64 steps: 67 k docs/s in blocks of 256 rows, 137 k in blocks of 1,024, best of 5 runs).
ROWS_PER_STEP = 16
# A memory-bound program's values are a few bytes per document, and its blocks are capped by
# rows instead (lightweight at 1,000,000 documents: 5.2 ms median in blocks of 65,536 rows,
# 4.6 ms in blocks of 262,144, with fewer calls into a two-thread BLAS).
MAX_BLOCK_ROWS = 1 << 18


def block_rows(per_doc_bytes: int, block_bytes: int | None = None, steps: int = 0) -> int:
    budget = block_bytes or int(os.environ.get("TENSORRANK_BLOCK_BYTES", DEFAULT_BLOCK_BYTES))
    rows = max(budget // max(per_doc_bytes, 1), ROWS_PER_STEP * steps)
    return int(min(max(rows - rows % 64, 256), MAX_BLOCK_ROWS))


class NumpyProgram(CompiledProgram):
    """Plans per document count: rewrites whose cost model depends on it (see
    fold_query_scale) give one plan per side of each break-even point."""

    def __init__(self, program: Program, block_bytes: int | None = None, workers: int | None = None) -> None:
        self.program = optimize(program)
        self.block_bytes = block_bytes
        self.workers = default_workers() if workers is None else max(1, workers)
        self._thresholds = thresholds(self.program)
        self._plans: dict[tuple[bool, ...], _Plan] = {}

    def plan(self, n_docs: int) -> _Plan:
        key = tuple(n_docs >= t for t in self._thresholds)
        plan = self._plans.get(key)
        if plan is None:
            program = fold_query_scale(self.program, n_docs) if any(key) else self.program
            plan = self._plans[key] = _Plan(program, self.block_bytes, self.workers)
        return plan

    def run(self, inputs: Mapping[str, Any], n_docs: int) -> dict[str, Array]:
        return self.plan(n_docs).run(inputs, n_docs)


class _Step:
    """One per-document node, with what the evaluator would otherwise look up per block."""

    __slots__ = ("concat_parts", "dying", "in_place", "input_name", "into", "is_view", "nid", "node",
                 "operands", "placed")

    def __init__(self, node: Node, operands: list[tuple[bool, int]], dying: list[int],
                 placed: tuple[Node, tuple[slice, ...]] | None) -> None:
        self.node = node
        self.nid = id(node)
        self.operands = operands
        self.dying = dying
        self.input_name: str | None = node.attrs["name"] if node.op is Op.INPUT else None
        self.into = INTO.get(node.op)
        self.in_place = node.op in _IN_PLACE_OPS
        self.is_view = node.op in _VIEW_OPS
        self.placed = placed
        # for a concatenation: its parts' ids by position, to skip the parts already written in place
        self.concat_parts = [id(x) for x in node.inputs] if node.op is Op.CONCAT else None


class _Plan:
    def __init__(self, program: Program, block_bytes: int | None, workers: int = 1) -> None:
        self.program = program
        self.workers = workers
        order = self.program.nodes()
        # constants are evaluated once here; only query-dependent work runs per query
        # (a constant(name) input has constant variance too, but its value comes with each call)
        self._constants: dict[int, Array] = {}
        for node in order:
            if (node.variance == Variance.CONSTANT and node.op is not Op.INPUT
                    and all(id(x) in self._constants for x in node.inputs)):
                self._constants[id(node)] = eval_node(node, [self._constants[id(x)] for x in node.inputs], 1)
        self._shared = [n for n in order if not n.per_document and id(n) not in self._constants]
        self._doc = [n for n in order if n.per_document]
        self._outputs = {id(n) for n in self.program.outputs.values()}
        self._last_use: dict[int, int] = {}
        for i, node in enumerate(self._doc):
            for inp in node.inputs:
                if inp.per_document:
                    self._last_use[id(inp)] = i
        placement = self._place_concatenated(self._doc, self._outputs)
        self.block = block_rows(self._live_bytes_per_doc(), block_bytes, len(self._doc))
        if _matmul_flops_per_doc(self._doc) < MIN_PARALLEL_FLOPS and not any(streams_rows(n) for n in self._doc):
            # memory-bound: two workers only contend for memory bandwidth, while BLAS's own
            # threads split a matrix-vector product well (lightweight at 1,000,000 documents:
            # 4.6 ms median with one worker, 6.1 ms with two). A product over long rows runs
            # on vecdot's one thread instead, so there the workers split it (closeness over
            # 1,000,000 x 384 floats: see BENCHMARKS.md)
            self.workers = 1
        if any(node.op is Op.TREE_ENSEMBLE for node in self._doc):
            forest_native.library()  # compiled (or found in its cache) now, not at the first query
        self._steps: list[_Step] = []
        for i, node in enumerate(self._doc):
            operands = [(x.per_document, id(x)) for x in node.inputs]
            dying = [xid for is_doc, xid in operands
                     if is_doc and self._last_use.get(xid) == i and xid not in self._outputs]
            self._steps.append(_Step(node, operands, list(dict.fromkeys(dying)), placement.get(id(node))))
        # Buffers outlive a query, so the next one finds its pages already mapped (fresh pages
        # fault on first touch); one pool per query in flight, each about one block's worth.
        self._pools: list[dict[int, Array]] = []
        self._pools_lock = threading.Lock()

    def _live_bytes_per_doc(self) -> int:
        """The most bytes per document that computed values hold at once: what a block's
        buffers must fit (views and inputs own none; a value is freed where it dies)."""
        live = peak = 0
        held: dict[int, int] = {}
        for i, node in enumerate(self._doc):
            if node.op not in _VIEW_OPS and node.op is not Op.INPUT:
                held[id(node)] = node.size * node.dtype.np_dtype.itemsize
                live += held[id(node)]
            # a forest's walk holds arrays per tree while it runs: blocks sized for them keep the
            # walk in cache and give every worker blocks to take
            walk = FOREST_BYTES_PER_TREE * node.attrs["forest"].n_trees if node.op is Op.TREE_ENSEMBLE else 0
            peak = max(peak, live + walk)
            for x in node.inputs:
                if self._last_use.get(id(x)) == i and id(x) not in self._outputs:
                    live -= held.pop(id(x), 0)
        return peak

    @staticmethod
    def _place_concatenated(doc: list[Node], outputs: set[int]) -> dict[int, tuple[Node, tuple[slice, ...]]]:
        """Where a concatenation is the only reader of a part, the part's producer writes
        straight into the concatenation's buffer (its node and the part's index in it), so the
        concatenation copies nothing."""
        readers = Counter(id(x) for node in doc for x in node.inputs)
        placement: dict[int, tuple[Node, tuple[slice, ...]]] = {}
        for node in doc:
            if node.op is not Op.CONCAT:
                continue
            axis = node.attrs["axis"]
            offset = 0
            for part in node.inputs:
                width = part.shape[axis]
                if part.op in _PLACEABLE_OPS and readers[id(part)] == 1 and id(part) not in outputs:
                    placement[id(part)] = (node, (slice(None),) * (axis + 1) + (slice(offset, offset + width),))
                offset += width
        return placement

    def run(self, inputs: Mapping[str, Any], n_docs: int) -> dict[str, Array]:
        values = check_inputs(self.program, inputs, n_docs)
        shared = dict(self._constants)
        for node in self._shared:
            if node.op is Op.INPUT:
                shared[id(node)] = values[node.attrs["name"]]
            else:
                shared[id(node)] = eval_node(node, [shared[id(x)] for x in node.inputs], n_docs)
        out: dict[str, Array] = {}
        for name, node in self.program.outputs.items():
            if not node.per_document:
                out[name] = np.broadcast_to(shared[id(node)], (n_docs, *node.shape))
            else:
                out[name] = np.empty((n_docs, *node.shape), dtype=node.dtype.np_dtype)
        if not self._doc or n_docs == 0:
            return out
        per_doc_outputs = [(name, id(node)) for name, node in self.program.outputs.items() if node.per_document]
        block = self.block
        # a query of one block runs on the caller's thread: handing it to workers costs more than
        # a second core saves (measured: 10,000 documents of a 16-wide dot product went from 0.2 to 0.9 ms)
        workers = min(self.workers, -(-n_docs // block)) if blas_threads.available() else 1
        starts = iter(range(0, n_docs, block))
        starts_lock = threading.Lock()

        stopped = threading.Event()  # a worker failed: the others stop before their next block

        def work() -> None:
            pool = self._take_pool()
            # overflow to inf and NaN from invalid operations are results here, as in onnxruntime;
            # one errstate per worker, not one per kernel call (it costs microseconds)
            try:
                with np.errstate(all="ignore"):
                    while not stopped.is_set():
                        check_deadline()
                        with starts_lock:
                            start = next(starts, None)
                        if start is None:
                            return
                        stop = min(start + block, n_docs)
                        env = self._block(values, shared, pool, start, stop)
                        for name, nid in per_doc_outputs:
                            out[name][start:stop] = env[nid]
            except BaseException:
                stopped.set()
                raise
            finally:
                self._give_pool(pool)

        if workers == 1:
            work()
            return out
        with blas_threads.single_threaded_blas():
            executor = _shared_executor(workers)
            # each worker runs in a copy of the caller's context, so that it sees the query's deadline
            futures = [executor.submit(contextvars.copy_context().run, work) for _ in range(workers)]
            wait(futures)  # no worker still runs when the query returns or fails
            for future in futures:
                future.result()  # re-raises a worker's error, a passed deadline among them
        return out

    def _take_pool(self) -> dict[int, Array]:
        with self._pools_lock:
            return self._pools.pop() if self._pools else {}

    def _give_pool(self, pool: dict[int, Array]) -> None:
        with self._pools_lock:
            if len(self._pools) < self.workers:  # more than that only after a burst of concurrent queries
                self._pools.append(pool)

    def _block(self, values: dict[str, Array], shared: dict[int, Array], pool: dict[int, Array],
               start: int, stop: int) -> dict[int, Array]:
        rows = stop - start
        env: dict[int, Array] = {}
        owned: set[int] = set()  # values whose buffer nothing else refers to
        placed: set[int] = set()  # values written straight into their concatenation's buffer
        for i, step in enumerate(self._steps):
            if step.input_name is not None:
                env[step.nid] = values[step.input_name][start:stop]
            else:
                args = [env[xid] if is_doc else shared[xid] for is_doc, xid in step.operands]
                env[step.nid] = self._eval(step, args, rows, i, env, owned, placed, pool)
            for xid in step.dying:
                env.pop(xid, None)
                owned.discard(xid)
        return env

    def _eval(self, step: _Step, args: list[Array], rows: int, i: int, env: dict[int, Array], owned: set[int],
              placed: set[int], pool: dict[int, Array]) -> Array:
        node = step.node
        if step.into is not None:
            if step.placed is not None:
                concat, index = step.placed
                target = self._buffer(concat, pool)[:rows][index]
            else:
                reused = self._reusable_operand(node, i, rows, env, owned) if step.in_place else None
                target = self._buffer(node, pool)[:rows] if reused is None else reused
            if step.concat_parts is not None:
                result = concat_into(node, args, target, {j for j, xid in enumerate(step.concat_parts)
                                                          if xid in placed})
            else:
                result = step.into(node, args, target)
            if result is not None:
                if step.placed is None:
                    owned.add(step.nid)
                else:  # it lives in its concatenation's buffer: nobody may reuse it
                    placed.add(step.nid)
                return result
        result = eval_node(node, args, rows)
        if step.is_view:
            for x in node.inputs:
                if id(x) in owned:
                    owned.discard(id(x))  # the view aliases it now
                    # the view may inherit the buffer only from a value nothing reads any more:
                    # not from an output, which is copied out after the block
                    if node.op is not Op.BROADCAST and self._last_use.get(id(x)) == i and id(x) not in self._outputs:
                        owned.add(step.nid)
        else:
            owned.add(step.nid)
        return result

    def _buffer(self, node: Node, pool: dict[int, Array]) -> Array:
        buf = pool.get(id(node))
        if buf is None:
            buf = pool[id(node)] = np.empty((self.block, *node.shape), dtype=node.dtype.np_dtype)
        return buf

    def _reusable_operand(self, node: Node, i: int, rows: int, env: dict[int, Array],
                          owned: set[int]) -> Array | None:
        shape = (rows, *node.shape)
        for x in node.inputs:
            xid = id(x)
            if xid not in owned or self._last_use.get(xid) != i or xid in self._outputs:
                continue
            buf = env[xid]
            if buf.shape == shape and buf.dtype == node.dtype.np_dtype and buf.flags.writeable:
                owned.discard(xid)
                return buf
        return None


class NumpyBackend(Backend):
    name = "cpu"

    def __init__(self, block_bytes: int | None = None, workers: int | None = None) -> None:
        self.block_bytes = block_bytes
        self.workers = workers

    def compile(self, program: Program) -> NumpyProgram:
        return NumpyProgram(program, self.block_bytes, self.workers)

    def asarray(self, value: npt.ArrayLike) -> Array:
        return np.asarray(value)

    def to_host(self, value: Any) -> Array:
        return np.asarray(value)

    def candidates_after(self, head: Any, tail: CompiledProgram, feeds: Mapping[str, Any], k: int,
                         live: npt.NDArray[np.bool_] | None = None
                         ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float64]]:
        # the head's block maxima bound the scores, so the tail runs on a few blocks only
        found = None if live is not None else block_candidates(head, k, lambda g: run_tail(tail, feeds, g))
        return found if found is not None else super().candidates_after(head, tail, feeds, k, live)
