"""NumpyBackend: interprets a Program node by node with the reference kernels, freeing
each intermediate after its last use."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import numpy as np
import numpy.typing as npt

from tensor_ir.backend import Backend, CompiledProgram
from tensor_ir.ir import Node, Op
from tensor_ir.program import Program, check_inputs
from tensor_ir.reference import eval_node

log = logging.getLogger(__name__)


class NumpyProgram(CompiledProgram):
    def __init__(self, program: Program) -> None:
        self.program = program
        self._order: list[Node] = program.nodes()
        self._index = {id(n): i for i, n in enumerate(self._order)}
        last_use: dict[int, int] = {}
        for i, node in enumerate(self._order):
            for inp in node.inputs:
                last_use[id(inp)] = i
        outputs = {id(n) for n in program.outputs.values()}
        # ids freed right after step i
        self._free_after: list[list[int]] = [[] for _ in self._order]
        for nid, i in last_use.items():
            if nid not in outputs:
                self._free_after[i].append(nid)

    def run(self, inputs: Mapping[str, Any], n_docs: int) -> dict[str, npt.NDArray[Any]]:
        values = check_inputs(self.program, inputs, n_docs)
        env: dict[int, npt.NDArray[Any]] = {}
        for i, node in enumerate(self._order):
            if node.op is Op.INPUT:
                env[id(node)] = values[node.attrs["name"]]
            else:
                env[id(node)] = eval_node(node, [env[id(x)] for x in node.inputs], n_docs)
            for nid in self._free_after[i]:
                env.pop(nid, None)
        out: dict[str, npt.NDArray[Any]] = {}
        for name, node in self.program.outputs.items():
            v = env[id(node)]
            if not node.per_document:
                v = np.broadcast_to(v, (n_docs, *node.shape))
            out[name] = v
        return out


class NumpyBackend(Backend):
    name = "cpu"

    def compile(self, program: Program) -> NumpyProgram:
        return NumpyProgram(program)

    def asarray(self, value: npt.ArrayLike) -> npt.NDArray[Any]:
        return np.asarray(value)

    def to_host(self, value: Any) -> npt.NDArray[Any]:
        return np.asarray(value)
