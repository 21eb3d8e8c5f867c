"""CupyBackend: a program cut into fused CuPy kernels and library calls, run over whole
shards resident in GPU memory.

Compiling a program fuses it (tensor_ir.passes.fusion), renders each fused group as an
ElementwiseKernel or ReductionKernel (gpu_engine.render), uploads its constants once and
decides how each remaining node runs: matmul through cuBLAS (cupy.matmul), structural and
indexing ops through CuPy's array functions, written to mirror tensor_ir.reference line
by line, including its document-axis handling. A node the GPU cannot compute exactly as
the reference does (float8 and other narrow cell types, integer pow, scatters) runs on
the host through the reference itself: slower, never different. Which nodes do is logged
when the program is compiled.

Values that vary with the document carry a leading document axis; `run` returns every
output with one (as CuPy arrays, or numpy arrays for cell types CuPy cannot hold).

Matmul: TF32 tensor cores are off unless the environment sets TENSORRANK_TF32=1 (they
round float32 operands to 10 mantissa bits, which the reference does not).

Kernels are cached for the process by their source, whose name is a digest of the
group's code; CuPy caches each compiled binary per argument types and ranks (in memory
and under ~/.cupy/kernel_cache), so one program group, cell types and rank compile once.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from gpu_engine.render import GPU_CELL_TYPES, KernelSource, can_fuse, render_group
from tensor_ir import reference
from tensor_ir.backend import Backend, CompiledProgram, select_candidates
from tensor_ir.cancel import check as check_deadline
from tensor_ir.dtypes import CellType
from tensor_ir.errors import EvaluationError
from tensor_ir.ir import Node, Op, Role
from tensor_ir.passes.fusion import FusedGroup, FusionPlan, SingleStep, fuse, is_identity_reduce
from tensor_ir.passes.optimize import optimize
from tensor_ir.program import Program

log = logging.getLogger(__name__)

TF32_ENV = "TENSORRANK_TF32"

# ---------------------------------------------------------------- devices


# kernel objects for the process, shared by every program (a name is a digest of the code)
_KERNELS: dict[tuple[str, str, str], Any] = {}


class _CupyDevice:
    """Kernels and arrays on the current CUDA device."""

    name = "cupy"

    def __init__(self) -> None:
        import cupy

        self.xp = cupy
        self.cell_types = _cupy_cell_types(cupy)

    def is_device_array(self, value: Any) -> bool:
        return isinstance(value, self.xp.ndarray)

    def asarray(self, value: Any) -> Any:
        return self.xp.asarray(value)

    def to_host(self, value: Any) -> np.ndarray[Any, Any]:
        if isinstance(value, self.xp.ndarray):
            return np.asarray(self.xp.asnumpy(value))
        return np.asarray(value)

    def kernel(self, src: KernelSource) -> Any:
        key = (src.kind, src.name, src.in_params)
        k = _KERNELS.get(key)
        if k is None:
            if src.kind == "elementwise":
                k = self.xp.ElementwiseKernel(**src.cupy_args())
            else:
                k = self.xp.ReductionKernel(**src.cupy_args())
            _KERNELS[key] = k
        return k

    def run_group(self, group: FusedGroup, src: KernelSource, leaves: list[Any], space: tuple[int, ...],
                  axes: tuple[int, ...]) -> Any:
        k = self.kernel(src)
        if group.reduce is None:
            out = self.xp.empty(space, dtype=group.root.dtype.np_dtype)
            k(*leaves, out)
            return out
        extra = [np.int32(0)] if src.extra_scalar else []
        return k(*leaves, *extra, axis=axes, keepdims=bool(group.reduce.attrs["keepdims"]))


_PROBED: dict[str, frozenset[CellType]] = {}


def _cupy_cell_types(cupy: Any) -> frozenset[CellType]:
    """The cell types this CuPy holds and computes with: bfloat16 needs a CuPy that knows
    ml_dtypes' bfloat16 and CUDA's cuda_bf16.h; without them bfloat16 runs on the host."""
    if "types" not in _PROBED:
        types = set(GPU_CELL_TYPES)
        try:
            probe = cupy.asarray(np.array([1.5, -2.0], dtype=CellType.BFLOAT16.np_dtype))
            if probe.astype(np.float32).get().tolist() != [1.5, -2.0]:
                raise ValueError("bfloat16 values changed on the device")
        except Exception as e:  # any failure means: not on this device
            log.warning("bfloat16 runs on the host: CuPy cannot compute with it here (%s: %s)", type(e).__name__, e)
            types.discard(CellType.BFLOAT16)
        _PROBED["types"] = frozenset(types)
    return _PROBED["types"]


class HostEmulation:
    """numpy in place of CuPy, and fused groups interpreted with the reference semantics
    instead of launched. Runs the whole backend (fusion, leaf alignment, the array-function
    steps, document axes) on machines without a GPU; the kernels' C++ is checked by the
    tests under tests/render instead."""

    name = "emulated"
    xp = np
    cell_types = GPU_CELL_TYPES

    def is_device_array(self, value: Any) -> bool:
        return isinstance(value, np.ndarray)

    def asarray(self, value: Any) -> Any:
        return np.asarray(value)

    def to_host(self, value: Any) -> np.ndarray[Any, Any]:
        return np.asarray(value)

    def run_group(self, group: FusedGroup, src: KernelSource, leaves: list[Any], space: tuple[int, ...],
                  axes: tuple[int, ...]) -> Any:
        n = int(space[0]) if group.per_document and space else 1
        env: dict[int, Any] = {id(leaf): v for leaf, v in zip(group.leaves, leaves, strict=True)}

        def arg(i: Node) -> Any:
            return env[id(i)] if id(i) in env else i.value

        with np.errstate(all="ignore"):
            for node in group.pre:
                env[id(node)] = _emulate_elementwise(node, [arg(i) for i in node.inputs], n)
            if group.reduce is None:
                return np.ascontiguousarray(np.broadcast_to(env[id(group.root)], space))
            red = group.reduce
            env[id(red)] = reference.eval_node(red, [arg(red.inputs[0])], n)
            for node in group.post:
                env[id(node)] = reference.eval_node(node, [arg(i) for i in node.inputs], n)
        return env[id(group.root)]


def _emulate_elementwise(node: Node, args: list[Any], n: int) -> Any:
    """A pre-map node on operands already broadcast to the iteration space."""
    if node.op is Op.BROADCAST or is_identity_reduce(node):
        return args[0]
    if node.op is Op.JOIN:
        ct = node.inputs[0].dtype
        r = reference._BINARY[node.attrs["fn"]](reference._wide(args[0], ct), reference._wide(args[1], ct))
        return np.asarray(r).astype(node.dtype.np_dtype, copy=False)
    if node.op is Op.SELECT:
        return np.asarray(np.where(*args)).astype(node.dtype.np_dtype, copy=False)
    # map and cast do not align operands, so the reference kernels apply as they are
    return reference.eval_node(node, args, n)


# ---------------------------------------------------------------- array-function steps
#
# Each mirrors the reference kernel of the same op with `xp` for numpy. Kept in step with
# tensor_ir/reference.py: a change there needs the same change here.

Kernel = Callable[[Any, Node, list[Any], int], Any]


def _align(value: Any, node: Node, out_rank: int) -> Any:
    if node.per_document and node.rank < out_rank:
        return value.reshape((value.shape[0],) + (1,) * (out_rank - node.rank) + tuple(value.shape[1:]))
    return value


def _with_doc_axis(xp: Any, value: Any, node: Node, n: int) -> Any:
    if node.per_document:
        return value
    return xp.broadcast_to(value, (n, *value.shape))


def _off(node: Node) -> int:
    return 1 if node.per_document else 0


def _n(args: list[Any], node: Node) -> int:
    for a, i in zip(args, node.inputs, strict=True):
        if i.per_document:
            return int(a.shape[0])
    return 1


def _wide(value: Any, ct: CellType) -> Any:
    if ct in (CellType.FLOAT16, CellType.BFLOAT16):
        return value.astype(np.float32)
    return value


def _s_matmul(xp: Any, node: Node, args: list[Any], n: int) -> Any:
    a, b = args
    ia, ib = node.inputs
    a, b = _wide(a, ia.dtype), _wide(b, ib.dtype)
    if not ib.per_document and ib.rank == 2:
        # one large GEMM over every document's rows instead of a batch of small ones
        lead = tuple(a.shape[:-1])
        r = xp.matmul(a.reshape(-1, a.shape[-1]), b).reshape(*lead, b.shape[-1])
    else:
        r = xp.matmul(_align(a, ia, node.rank), _align(b, ib, node.rank))
    return r.astype(node.dtype.np_dtype, copy=False)


def _s_reshape(xp: Any, node: Node, args: list[Any], n: int) -> Any:
    (x,) = args
    lead = (x.shape[0],) if node.per_document else ()
    return x.reshape(lead + node.shape)


def _s_transpose(xp: Any, node: Node, args: list[Any], n: int) -> Any:
    (x,) = args
    perm = tuple(node.attrs["perm"])
    if node.per_document:
        perm = (0, *(p + 1 for p in perm))
    return xp.transpose(x, perm)


def _s_broadcast(xp: Any, node: Node, args: list[Any], n: int) -> Any:
    (x,) = args
    if node.per_document:
        return xp.broadcast_to(_align(x, node.inputs[0], node.rank), (x.shape[0], *node.shape))
    return xp.broadcast_to(x, node.shape)


def _s_concat(xp: Any, node: Node, args: list[Any], n: int) -> Any:
    if node.per_document:
        nd = _n(args, node)
        args = [_with_doc_axis(xp, a, i, nd) for a, i in zip(args, node.inputs, strict=True)]
    return xp.concatenate(args, axis=node.attrs["axis"] + _off(node))


def _s_slice(xp: Any, node: Node, args: list[Any], n: int) -> Any:
    (x,) = args
    idx: list[slice] = [slice(None)] if node.per_document else []
    for s0, s1, st in zip(node.attrs["starts"], node.attrs["stops"], node.attrs["steps"], strict=True):
        stop = None if (st < 0 and s1 < 0) else s1
        idx.append(slice(s0, stop, st))
    return x[tuple(idx)]


def _s_pad(xp: Any, node: Node, args: list[Any], n: int) -> Any:
    (x,) = args
    pads = [tuple(p) for p in node.attrs["pads"]]
    if node.per_document:
        pads = [(0, 0), *pads]
    crop = tuple(slice(max(-b, 0), x.shape[i] - max(-a, 0)) for i, (b, a) in enumerate(pads))
    x = x[crop]
    pos = [(max(b, 0), max(a, 0)) for b, a in pads]
    mode = node.attrs["mode"]
    if mode == "constant":
        return xp.pad(x, pos, mode="constant", constant_values=node.attrs["value"])
    return xp.pad(x, pos, mode=mode)


def _norm_indices(xp: Any, idx: Any, dim: int, what: str) -> Any:
    idx = idx.astype(np.int64, copy=False)
    if idx.size:
        lo, hi = int(idx.min()), int(idx.max())  # one device sync: bad indices must raise
        if lo < -dim or hi >= dim:
            bad = lo if lo < -dim else hi
            raise EvaluationError(f"{what} index {bad} is out of range for an axis of size {dim}")
    return xp.where(idx < 0, idx + dim, idx)


def _s_gather(xp: Any, node: Node, args: list[Any], n: int) -> Any:
    x, idx = args
    ix, ii = node.inputs
    ax = node.attrs["axis"]
    idx = _norm_indices(xp, idx, ix.shape[ax], "gather")
    if not ii.per_document:
        return xp.take(x, idx, axis=ax + _off(ix))
    if not ix.per_document:
        return xp.moveaxis(xp.take(x, idx, axis=ax), ax, 0)
    nd = x.shape[0]
    is_rank = ii.rank
    xm = xp.moveaxis(x, ax + 1, 1)  # [N, D, *before, *after]
    docs = xp.arange(nd).reshape((nd,) + (1,) * is_rank)
    g = xm[docs, idx]  # [N, *is, *before, *after]
    perm = (
        [0]
        + [1 + is_rank + i for i in range(ax)]
        + [1 + i for i in range(is_rank)]
        + list(range(1 + is_rank + ax, g.ndim))
    )
    return xp.transpose(g, perm)


def _s_gather_elements(xp: Any, node: Node, args: list[Any], n: int) -> Any:
    x, idx = args
    ix, ii = node.inputs
    ax = node.attrs["axis"]
    idx = _norm_indices(xp, idx, ix.shape[ax], "gather_elements")
    # indices may be smaller than the data off the axis: only that corner of the data is read
    corner = tuple(slice(None) if a == ax else slice(0, d) for a, d in enumerate(ii.shape))
    if not node.per_document:
        return xp.take_along_axis(x[corner], idx, axis=ax)
    xb = x[(slice(None), *corner)] if ix.per_document else x[corner][None]
    ib = idx if ii.per_document else idx[None]
    nd = _n(args, node)
    xb = xp.broadcast_to(xb, (nd, *xb.shape[1:]))
    ib = xp.broadcast_to(ib, (nd, *ib.shape[1:]))
    return xp.take_along_axis(xb, ib, axis=ax + 1)


def _s_gather_nd(xp: Any, node: Node, args: list[Any], n: int) -> Any:
    x, idx = args
    ix, ii = node.inputs
    b = node.attrs["batch_dims"]
    if node.per_document:
        nd = _n(args, node)
        x = _with_doc_axis(xp, x, ix, nd)
        idx = _with_doc_axis(xp, idx, ii, nd)
        b += 1
    idx = idx.astype(np.int64)
    k = idx.shape[-1]
    batch_shape = x.shape[:b]
    nb = int(np.prod(batch_shape, dtype=np.int64))
    xr = x.reshape((nb, *x.shape[b:]))
    ir = idx.reshape((nb, -1, k))
    dims = xp.asarray(np.array(x.shape[b:b + k], dtype=np.int64))
    if ir.size and bool(((ir < -dims) | (ir >= dims)).any()):
        raise EvaluationError("gather_nd index out of range")
    ir = xp.where(ir < 0, ir + dims, ir)
    bidx = xp.arange(nb).reshape(nb, 1)
    out = xr[(bidx, *(ir[..., j] for j in range(k)))]
    return out.reshape((*idx.shape[:-1], *x.shape[b + k:]))


def _s_arg_reduce(xp: Any, node: Node, args: list[Any], n: int) -> Any:
    (x,) = args
    src = node.inputs[0]
    ax = node.attrs["axis"] + _off(src)
    v = _wide(x, src.dtype)
    f = xp.argmax if node.attrs["agg"] == "argmax" else xp.argmin
    if node.attrs["last"]:
        r = v.shape[ax] - 1 - f(xp.flip(v, axis=ax), axis=ax)
    else:
        r = f(v, axis=ax)
    r = r.astype(np.int64)
    return xp.expand_dims(r, ax) if node.attrs["keepdims"] else r


def _s_scan(xp: Any, node: Node, args: list[Any], n: int) -> Any:
    (x,) = args
    src = node.inputs[0]
    ax = node.attrs["axis"] + _off(src)
    v = _wide(x, src.dtype)
    if node.attrs["reverse"]:
        v = xp.flip(v, axis=ax)
    f = xp.cumsum if node.attrs["agg"] == "sum" else xp.cumprod
    r = f(v, axis=ax, dtype=v.dtype)
    if node.attrs["exclusive"]:
        ident = 0 if node.attrs["agg"] == "sum" else 1
        pad_width = [(0, 0)] * r.ndim
        pad_width[ax] = (1, 0)
        r = xp.pad(r, pad_width, mode="constant", constant_values=ident)
        r = xp.take(r, xp.arange(v.shape[ax]), axis=ax)
    if node.attrs["reverse"]:
        r = xp.flip(r, axis=ax)
    return xp.ascontiguousarray(r).astype(node.dtype.np_dtype, copy=False)


_ARRAY_STEPS: dict[Op, Kernel] = {
    Op.MATMUL: _s_matmul,
    Op.RESHAPE: _s_reshape,
    Op.TRANSPOSE: _s_transpose,
    Op.BROADCAST: _s_broadcast,
    Op.CONCAT: _s_concat,
    Op.SLICE: _s_slice,
    Op.PAD: _s_pad,
    Op.GATHER: _s_gather,
    Op.GATHER_ELEMENTS: _s_gather_elements,
    Op.GATHER_ND: _s_gather_nd,
    Op.ARG_REDUCE: _s_arg_reduce,
    Op.SCAN: _s_scan,
}


def host_fallback_reason(node: Node, cell_types: frozenset[CellType] = GPU_CELL_TYPES) -> str | None:
    """Why a single step runs on the host through the reference, or None when it runs on
    the device."""
    types = [node.dtype, *(i.dtype for i in node.inputs)]
    bad = sorted({t.np_name for t in types if t not in cell_types})
    if bad:
        return f"cell type {', '.join(bad)} has no GPU kernels"
    if node.op not in _ARRAY_STEPS:
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
    kernel: Kernel | None = None  # an array-function step
    fallback: str | None = None  # why it runs through the reference on the host


class CupyProgram(CompiledProgram):
    def __init__(self, program: Program, device: Any, plan: FusionPlan) -> None:
        self.program = program
        self.plan = plan
        self._device = device
        self._xp = device.xp
        self._steps: list[_Step] = []
        for s in plan.steps:
            if isinstance(s, FusedGroup):
                self._steps.append(_Step(s.root, s.leaves, group=s, source=render_group(s)))
            else:
                assert isinstance(s, SingleStep)
                reason = host_fallback_reason(s.node, device.cell_types)
                kernel = None if reason else _ARRAY_STEPS[s.node.op]
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

    @property
    def kernel_sources(self) -> list[KernelSource]:
        return [st.source for st in self._steps if st.source is not None]

    def _to_device(self, value: Any, ct: CellType) -> Any:
        if ct in self._device.cell_types:
            return self._device.asarray(np.ascontiguousarray(value))
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
            views.append(xp.broadcast_to(_align(v, leaf, len(group.space)), space))
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
                result = st.kernel(xp, st.node, args, n_docs)
            else:
                host = [self._device.to_host(a) for a in args]
                with np.errstate(all="ignore"):
                    value = reference.eval_node(st.node, host, n_docs)
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
        if device is None:
            device = _CupyDevice()
            _configure_matmul(device.xp)
        self._device = device

    @classmethod
    def emulated(cls) -> CupyBackend:
        return cls(HostEmulation())

    @property
    def device_name(self) -> str:
        return str(self._device.name)

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

    def topk(self, scores: Any, k: int) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
        return topk(scores, k, self._device.xp)

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


def _configure_matmul(cupy: Any) -> None:
    from cupy._core import _routines_linalg as linalg

    tf32 = os.environ.get(TF32_ENV, "0") == "1"
    compute = linalg.COMPUTE_TYPE_TF32 if tf32 else linalg.COMPUTE_TYPE_DEFAULT
    # process-wide in CuPy; set explicitly so a stray CUPY_TF32=1 cannot turn TF32 on
    linalg.set_compute_type(np.float32, compute)
    log.info("float32 matmul: %s (%s=%s)", "TF32" if tf32 else "full float32", TF32_ENV, "1" if tf32 else "0")


# ---------------------------------------------------------------- top-k


def topk(scores: Any, k: int, xp: Any = None) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    """The k best of a 1-D array of scores: (indices, scores) on the host, best first.

    Ties go to the lower index and NaN ranks as -inf, so the result is one exact answer
    whatever the partition did. Partitioning runs on the device; only the k (plus ties
    at the boundary, at most k) winners are sorted, on the host, where k is small.
    """
    if xp is None:
        import cupy

        xp = cupy.get_array_module(scores)
    if scores.ndim != 1:
        raise ValueError(f"topk needs a 1-D array of scores, got shape {list(scores.shape)}")
    n = int(scores.shape[0])
    k = max(0, min(int(k), n))
    to_host = (lambda a: np.asarray(a)) if xp is np else xp.asnumpy
    if k == 0:
        return np.zeros(0, dtype=np.int64), to_host(scores[:0])
    key = scores.astype(np.float64)
    key = xp.where(xp.isnan(key), -np.inf, key)
    if k < n:
        part = xp.argpartition(-key, k - 1)[:k]
        threshold = key[part].min()  # the k-th best value
        above = xp.nonzero(key > threshold)[0]  # fewer than k
        ties = xp.nonzero(key == threshold)[0][: k - int(above.size)]  # lowest indices first
        sel = xp.concatenate([above, ties])
    else:
        sel = xp.arange(n)
    idx = to_host(sel).astype(np.int64)
    vals = to_host(key[sel])
    order = np.lexsort((idx, -vals))
    idx = idx[order]
    return idx, to_host(scores[xp.asarray(idx)] if xp is not np else scores[idx])


# ---------------------------------------------------------------- keeping in step with the reference

# The reference definitions that this module's array steps and gpu_engine.render's C++
# transcribe, with a digest of each one's source as it was when transcribed. When the
# reference changes, tests/backends fails naming what changed: bring the transcription
# in step, then record the new digests (print them with reference_digests()).
TRANSCRIBED_REFERENCE = {
    "_sigmoid": "23e36286137f",
    "_int_div": "f1bab3784298",
    "_div": "04df4e5c8c07",
    "_mod": "1c19865ebc43",
    "_UNARY": "15eae4b09a31",
    "_BINARY": "3aac85782b1f",
    "_k_map": "9b4c16b2e9d4",
    "_k_join": "4cf9ce80ec7f",
    "_k_select": "5e4ecb68d442",
    "_k_cast": "27ddf10ca9e0",
    "_k_reduce": "d8df9b373910",
    "_wide": "2558c8d65a86",
    "align": "50adbc9938f8",
    "with_doc_axis": "29deb3a0d798",
    "_k_arg_reduce": "f1104e8cfbbd",
    "_k_scan": "bd3858fecb29",
    "_k_matmul": "f1e95ad4710d",
    "_k_reshape": "2f2bfd3bf5d0",
    "_k_transpose": "7da1961e0ed0",
    "_k_broadcast": "65267c7618bf",
    "_k_concat": "819b5af40aac",
    "_k_slice": "c816163366e8",
    "_k_pad": "94f607fd23f4",
    "_norm_indices": "3f252b8598b5",
    "_k_gather": "39d62a63fee9",
    "_k_gather_elements": "dd351495dbb5",
    "_k_gather_nd": "35f62f01b28e",
    "_gather_nd": "e297e382b67f",
}


def reference_digests() -> dict[str, str]:
    import hashlib
    import inspect

    out: dict[str, str] = {}
    for name in _TRANSCRIBED_NAMES:
        obj = getattr(reference, name)
        if isinstance(obj, dict):
            text = repr(sorted((k, getattr(v, "__name__", repr(v))) for k, v in obj.items()))
        else:
            text = inspect.getsource(obj)
        out[name] = hashlib.blake2b(text.encode(), digest_size=6).hexdigest()
    return out


_TRANSCRIBED_NAMES = (
    # gpu_engine.render
    "_sigmoid", "_int_div", "_div", "_mod", "_UNARY", "_BINARY", "_k_map", "_k_join", "_k_select", "_k_cast",
    "_k_reduce", "_wide",
    # the array steps above
    "align", "with_doc_axis", "_k_arg_reduce", "_k_scan", "_k_matmul", "_k_reshape", "_k_transpose",
    "_k_broadcast", "_k_concat", "_k_slice", "_k_pad", "_norm_indices", "_k_gather", "_k_gather_elements",
    "_k_gather_nd", "_gather_nd",
)
