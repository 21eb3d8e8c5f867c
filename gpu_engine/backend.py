"""CupyBackend: a program cut into fused CuPy kernels and library calls, run over whole
shards resident in GPU memory.

Compiling a program fuses it (tensor_ir.passes.fusion), renders each fused group as an
ElementwiseKernel or ReductionKernel (gpu_engine.render), uploads its constants once and
decides how each remaining node runs: structural and indexing ops and matmul (through
cuBLAS) by the reference's own portable kernels with xp=cupy (tensor_ir.reference,
PORTABLE_KERNELS), so their document-axis handling is the reference's. A node the GPU
cannot compute exactly as the reference does (float8 and other narrow cell types, integer
pow, scatters, topk) runs on the host through the reference: slower, never different.
Which nodes do is logged when the program is compiled.

Values that vary with the document carry a leading document axis; `run` returns every
output with one (as CuPy arrays, or numpy arrays for cell types CuPy cannot hold).

The device itself (kernel launches, cell types, matmul settings) is gpu_engine.device;
gpu_engine.emulation stands in for it on machines without a GPU.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from gpu_engine.device import CupyDevice
from gpu_engine.emulation import HostEmulation
from gpu_engine.expressions import GPU_CELL_TYPES, can_fuse
from gpu_engine.forest_kernel import ForestKernel
from gpu_engine.render import KernelSource, render_group
from tensor_ir.backend import Backend, CompiledProgram, select_candidates
from tensor_ir.cancel import check as check_deadline
from tensor_ir.dtypes import CellType
from tensor_ir.errors import EvaluationError
from tensor_ir.ir import Node, Op, Role
from tensor_ir.passes.fusion import FusedGroup, FusionPlan, SingleStep, fuse
from tensor_ir.passes.optimize import optimize
from tensor_ir.program import Program
from tensor_ir.reference import PORTABLE_KERNELS, PortableKernel, align, eval_node

log = logging.getLogger(__name__)


def host_fallback_reason(node: Node, cell_types: frozenset[CellType] = GPU_CELL_TYPES) -> str | None:
    """Why a single step runs on the host through the reference, or None when it runs on
    the device."""
    types = [node.dtype, *(i.dtype for i in node.inputs)]
    bad = sorted({t.np_name for t in types if t not in cell_types})
    if bad:
        return f"cell type {', '.join(bad)} has no GPU kernels"
    if node.op not in PORTABLE_KERNELS and node.op is not Op.TREE_ENSEMBLE:
        return f"{node.op.label} has no GPU implementation here"
    if node.op is Op.MATMUL and node.dtype.is_bool:
        return "bool matmul has no GPU implementation here"
    return None


# ---------------------------------------------------------------- compiled programs


@dataclass
class _Step:
    node: Node  # the value it produces
    inputs: tuple[Node, ...]  # the values it reads
    group: FusedGroup | None = None
    source: KernelSource | None = None
    kernel: PortableKernel | None = None  # a reference kernel, run with xp=cupy
    fallback: str | None = None  # why it runs through the reference on the host


class CupyProgram(CompiledProgram):
    def __init__(self, program: Program, device: Any, plan: FusionPlan) -> None:
        self.program = program
        self._device = device
        self._xp = device.xp
        self._steps: list[_Step] = []
        for s in plan.steps:
            if isinstance(s, FusedGroup):
                self._steps.append(_Step(s.root, s.leaves, group=s, source=render_group(s)))
            else:
                assert isinstance(s, SingleStep)
                reason = host_fallback_reason(s.node, device.cell_types)
                kernel: PortableKernel | None = None
                if reason is None:
                    # a forest has its own kernel (gpu_engine/forest_kernel.py)
                    kernel = (ForestKernel(s.node.attrs["forest"]) if s.node.op is Op.TREE_ENSEMBLE
                              else PORTABLE_KERNELS[s.node.op])
                self._steps.append(_Step(s.node, s.node.inputs, kernel=kernel, fallback=reason))
        fallbacks = [st for st in self._steps if st.fallback]
        if fallbacks:
            log.info("%d of %d steps run on the host: %s", len(fallbacks), len(self._steps),
                     "; ".join(f"{st.node.op.label}: {st.fallback}" for st in fallbacks[:10]))
        self._input_nodes = program.input_nodes()
        # constants: uploaded once, here
        self._consts: dict[int, Any] = {}
        read = [i for st in self._steps for i in st.inputs] + list(program.outputs.values())
        for i in read:
            if i.op is Op.CONSTANT and id(i) not in self._consts:
                self._consts[id(i)] = self._to_device(i.value, i.dtype)
        # scratch: freed after its last reader
        outputs = {id(n) for n in program.outputs.values()}
        last: dict[int, int] = {}
        for k, st in enumerate(self._steps):
            for i in st.inputs:
                last[id(i)] = k
        self._free_after: list[list[int]] = [[] for _ in self._steps]
        for nid, k in last.items():
            if nid not in outputs and nid not in self._consts:
                self._free_after[k].append(nid)

    def _to_device(self, value: Any, ct: CellType) -> Any:
        if ct in self._device.cell_types:
            # asarray, not ascontiguousarray: that makes a number (0-d) a 1-d array
            return self._device.asarray(np.asarray(value, order="C"))
        return np.asarray(value)  # cell types CuPy cannot hold stay on the host

    def _inputs(self, values: Mapping[str, Any], n_docs: int) -> dict[str, Any]:
        out: dict[str, Any] = {}
        used = self._input_nodes
        for name, spec in self.program.inputs.items():
            if name not in values:
                if name in used:
                    raise EvaluationError(f"missing value for {spec.describe()}")
                continue
            v = values[name]
            want = (n_docs, *spec.shape) if spec.role is Role.ATTRIBUTE else spec.shape
            if not self._device.is_device_array(v):
                v = np.asarray(v)
            if v.dtype != spec.dtype.np_dtype:
                v = v.astype(spec.dtype.np_dtype)
            if tuple(v.shape) != want:
                raise EvaluationError(
                    f"{spec.describe()}: got a value of shape {list(v.shape)}, want {list(want)}"
                )
            # a resident shard column is used where it lies; host values are uploaded
            out[name] = v if self._device.is_device_array(v) else self._to_device(v, spec.dtype)
        return out

    def _leaf_views(self, group: FusedGroup, values: list[Any]) -> tuple[list[Any], tuple[int, ...]]:
        """Every leaf as a (broadcast) view of the group's iteration space."""
        xp = self._xp
        space: tuple[int, ...] = group.space
        if group.per_document:
            n = next(int(v.shape[0]) for v, leaf in zip(values, group.leaves, strict=True) if leaf.per_document)
            space = (n, *space)
        views = []
        for v, leaf in zip(values, group.leaves, strict=True):
            views.append(xp.broadcast_to(align(v, leaf, len(group.space)), space))
        return views, space

    def run(self, inputs: Mapping[str, Any], n_docs: int) -> dict[str, Any]:
        values = self._inputs(inputs, n_docs)
        env: dict[int, Any] = dict(self._consts)
        for node in self._input_nodes.values():
            if node.attrs["name"] in values:
                env[id(node)] = values[node.attrs["name"]]
        xp = self._xp
        for k, st in enumerate(self._steps):
            # launches are asynchronous: past the caller's deadline no further kernel is queued
            check_deadline()
            args = [env[id(i)] for i in st.inputs]
            if st.group is not None:
                assert st.source is not None
                views, space = self._leaf_views(st.group, args)
                off = 1 if st.group.per_document else 0
                red = st.group.reduce
                axes = tuple(a + off for a in red.attrs["axes"]) if red is not None else ()
                result = self._device.run_group(st.group, st.source, views, space, axes)
            elif st.kernel is not None:
                result = st.kernel(st.node, args, n_docs, xp)
            else:
                host = [self._device.to_host(a) for a in args]
                with np.errstate(all="ignore"):
                    value = eval_node(st.node, host, n_docs)
                result = self._to_device(value, st.node.dtype)
            env[id(st.node)] = result
            for nid in self._free_after[k]:
                env.pop(nid, None)
        out: dict[str, Any] = {}
        for name, node in self.program.outputs.items():
            v = env[id(node)]
            if not node.per_document:
                mod = xp if self._device.is_device_array(v) else np
                v = mod.broadcast_to(v, (n_docs, *node.shape))
            out[name] = v
        return out


class CupyBackend(Backend):
    """The GPU backend. `CupyBackend.emulated()` runs the same code with numpy on the
    host (kernels interpreted), for tests on machines without a GPU."""

    name = "gpu"

    def __init__(self, device: Any = None) -> None:
        self._device = CupyDevice() if device is None else device

    @classmethod
    def emulated(cls) -> CupyBackend:
        return cls(HostEmulation())

    def plan(self, program: Program) -> FusionPlan:
        """The fusion plan of `program` after the optimisation pipeline every backend runs."""
        program = optimize(program)
        types = self._device.cell_types

        def fusable(node: Node) -> bool:
            return can_fuse(node) and node.dtype in types and all(i.dtype in types for i in node.inputs)

        return fuse(program, fusable)

    def compile(self, program: Program) -> CupyProgram:
        plan = self.plan(program)
        return CupyProgram(plan.program, self._device, plan)

    def asarray(self, value: Any) -> Any:
        return self._device.asarray(value)

    def to_host(self, value: Any) -> np.ndarray[Any, Any]:
        return np.asarray(self._device.to_host(value))

    def memory_available(self) -> int | None:
        xp = self._device.xp
        if xp is np:
            return None
        free, _total = xp.cuda.runtime.memGetInfo()
        # blocks CuPy's pool holds but does not use are free for our next allocation too
        return int(free) + int(xp.get_default_memory_pool().free_bytes())

    def candidates(self, scores: Any, k: int, live: Any = None) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
        # partition on the device: only the k candidates (and ties) cross the bus
        xp = self._device.xp
        dev_scores = scores if self._device.is_device_array(scores) else xp.asarray(scores)
        return select_candidates(xp, dev_scores, k, None if live is None else xp.asarray(live))
