"""NumpyBackend: evaluates a Program over documents in cache-sized blocks.

Work that does not depend on the document (query-only and constant nodes) runs once per
call; per-document nodes run block by block, writing into buffers reused from block to
block and, where an operand dies at an elementwise node, into that operand's own buffer.
Memory therefore stays bounded by the block size, not by the number of documents.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from typing import Any

import numpy as np
import numpy.typing as npt

from cpu_fallback.kernels import INTO
from tensor_ir.backend import Backend, CompiledProgram
from tensor_ir.cancel import check as check_deadline
from tensor_ir.ir import Node, Op
from tensor_ir.passes.fold_query_scale import fold_query_scale, thresholds
from tensor_ir.passes.optimize import optimize
from tensor_ir.program import Program, check_inputs
from tensor_ir.reference import eval_node

log = logging.getLogger(__name__)

Array = npt.NDArray[Any]

# Bytes of per-document intermediates one block may hold (counting every per-document node,
# an upper bound on what is alive at once). 16 MiB gave mlp_rank blocks of about 3,000 rows,
# the fastest of 2 to 64 MiB measured on a 2-core EPYC: large enough for efficient GEMMs,
# small enough to stay in cache. TENSORRANK_BLOCK_BYTES overrides it.
DEFAULT_BLOCK_BYTES = 16 << 20
_VIEW_OPS = frozenset({Op.RESHAPE, Op.TRANSPOSE, Op.SLICE, Op.BROADCAST})
_IN_PLACE_OPS = frozenset({Op.JOIN, Op.MAP})


def block_rows(per_doc_bytes: int, block_bytes: int | None = None) -> int:
    budget = block_bytes or int(os.environ.get("TENSORRANK_BLOCK_BYTES", DEFAULT_BLOCK_BYTES))
    rows = budget // max(per_doc_bytes, 1)
    return int(min(max(rows - rows % 64, 256), 1 << 16))


class NumpyProgram(CompiledProgram):
    """Plans per document count: rewrites whose cost model depends on it (see
    fold_query_scale) give one plan per side of each break-even point."""

    def __init__(self, program: Program, block_bytes: int | None = None) -> None:
        self.program = optimize(program)
        self.block_bytes = block_bytes
        self._thresholds = thresholds(self.program)
        self._plans: dict[tuple[bool, ...], _Plan] = {}

    def plan(self, n_docs: int) -> _Plan:
        key = tuple(n_docs >= t for t in self._thresholds)
        plan = self._plans.get(key)
        if plan is None:
            program = fold_query_scale(self.program, n_docs) if any(key) else self.program
            plan = self._plans[key] = _Plan(program, self.block_bytes)
        return plan

    def run(self, inputs: Mapping[str, Any], n_docs: int) -> dict[str, Array]:
        return self.plan(n_docs).run(inputs, n_docs)


class _Plan:
    def __init__(self, program: Program, block_bytes: int | None) -> None:
        self.program = program
        order = self.program.nodes()
        self._shared = [n for n in order if not n.per_document]
        self._doc = [n for n in order if n.per_document]
        self._outputs = {id(n) for n in self.program.outputs.values()}
        self._last_use: dict[int, int] = {}
        for i, node in enumerate(self._doc):
            for inp in node.inputs:
                if inp.per_document:
                    self._last_use[id(inp)] = i
        per_doc_bytes = sum(n.size * n.dtype.np_dtype.itemsize for n in self._doc)
        self.block = block_rows(per_doc_bytes, block_bytes)
        # per step: the node, its operands as (per-document?, id), and the ids that die after it
        self._steps: list[tuple[Node, list[tuple[bool, int]], list[int]]] = []
        for i, node in enumerate(self._doc):
            operands = [(x.per_document, id(x)) for x in node.inputs]
            dying = [xid for is_doc, xid in operands
                     if is_doc and self._last_use.get(xid) == i and xid not in self._outputs]
            self._steps.append((node, operands, list(dict.fromkeys(dying))))

    def run(self, inputs: Mapping[str, Any], n_docs: int) -> dict[str, Array]:
        values = check_inputs(self.program, inputs, n_docs)
        shared: dict[int, Array] = {}
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
        pool: dict[int, Array] = {}
        per_doc_outputs = [(name, node) for name, node in self.program.outputs.items() if node.per_document]
        for start in range(0, n_docs, self.block):
            check_deadline()
            stop = min(start + self.block, n_docs)
            env = self._block(values, shared, pool, start, stop)
            for name, node in per_doc_outputs:
                out[name][start:stop] = env[id(node)]
        return out

    def _block(self, values: dict[str, Array], shared: dict[int, Array], pool: dict[int, Array],
               start: int, stop: int) -> dict[int, Array]:
        rows = stop - start
        env: dict[int, Array] = {}
        owned: set[int] = set()  # values whose buffer nothing else refers to
        for i, (node, operands, dying) in enumerate(self._steps):
            if node.op is Op.INPUT:
                env[id(node)] = values[node.attrs["name"]][start:stop]
            else:
                args = [env[xid] if is_doc else shared[xid] for is_doc, xid in operands]
                env[id(node)] = self._eval(node, args, rows, i, env, owned, pool)
            for xid in dying:
                env.pop(xid, None)
                owned.discard(xid)
        return env

    def _eval(self, node: Node, args: list[Array], rows: int, i: int, env: dict[int, Array], owned: set[int],
              pool: dict[int, Array]) -> Array:
        shape = (rows, *node.shape)
        dtype = node.dtype.np_dtype
        into = INTO.get(node.op)
        if into is not None:
            target = self._reusable_operand(node, i, shape, dtype, env, owned) if node.op in _IN_PLACE_OPS else None
            if target is None:
                buf = pool.get(id(node))
                if buf is None:
                    buf = pool[id(node)] = np.empty((self.block, *node.shape), dtype=dtype)
                target = buf[:rows]
            result = into(node, args, target)
            if result is not None:
                owned.add(id(node))
                return result
        result = eval_node(node, args, rows)
        if node.op in _VIEW_OPS:
            for x in node.inputs:
                if id(x) in owned:
                    owned.discard(id(x))  # the view aliases it now
                    # the view may inherit the buffer only from a value nothing reads any more:
                    # not from an output, which is copied out after the block
                    if node.op is not Op.BROADCAST and self._last_use.get(id(x)) == i and id(x) not in self._outputs:
                        owned.add(id(node))
        else:
            owned.add(id(node))
        return result

    def _reusable_operand(self, node: Node, i: int, shape: tuple[int, ...], dtype: Any, env: dict[int, Array],
                          owned: set[int]) -> Array | None:
        for x in node.inputs:
            xid = id(x)
            if xid not in owned or self._last_use.get(xid) != i or xid in self._outputs:
                continue
            buf = env[xid]
            if buf.shape == shape and buf.dtype == dtype and buf.flags.writeable:
                owned.discard(xid)
                return buf
        return None


class NumpyBackend(Backend):
    name = "cpu"

    def __init__(self, block_bytes: int | None = None) -> None:
        self.block_bytes = block_bytes

    def compile(self, program: Program) -> NumpyProgram:
        return NumpyProgram(program, self.block_bytes)

    def asarray(self, value: npt.ArrayLike) -> Array:
        return np.asarray(value)

    def to_host(self, value: Any) -> Array:
        return np.asarray(value)
