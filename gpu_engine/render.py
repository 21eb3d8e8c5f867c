"""Render fused groups as the source strings of CuPy kernels. No cupy import: the sources
are plain strings, tested (golden text, NVRTC compilation) on machines without a GPU.

A group without a reduction becomes an ElementwiseKernel, a group with one a
ReductionKernel. Both put the group's arithmetic into one `__device__` function in the
preamble (`<name>_map`), because a ReductionKernel's map expression must be a single
expression; the post-map chain of a reduction goes into `<name>_post`. Each node becomes
one local of that function, its expression from gpu_engine.expressions (which says what
the arithmetic means); every preamble starts with the device helpers of helpers.cuh.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Any

import numpy as np

from gpu_engine.expressions import (
    C_TYPES,
    GPU_CELL_TYPES,
    RenderError,
    can_fuse,
    compute_ctype,
    literal,
    load,
    node_expression,
    round_to_cells,
    store,
)
from tensor_ir.dtypes import CellType, compute_type
from tensor_ir.ir import Node
from tensor_ir.passes.fusion import FusedGroup, is_immediate

# the device functions every kernel calls: the start of each preamble (package data)
HELPERS = resources.files("gpu_engine").joinpath("helpers.cuh").read_text(encoding="utf-8")

NVRTC_OPTIONS = ("--fmad=false",)


@dataclass(frozen=True)
class KernelSource:
    """What CuPy's kernel constructors take, plus what the caller needs to call it."""

    kind: str  # "elementwise" | "reduction"
    name: str
    in_params: str
    out_params: str
    preamble: str  # HELPERS + `body`
    body: str  # the group's own code (golden tests compare this)
    leaf_types: tuple[CellType, ...]
    out_type: CellType
    # ElementwiseKernel
    operation: str = ""
    # ReductionKernel
    map_expr: str = ""
    reduce_expr: str = ""
    post_map_expr: str = ""
    identity: str = ""
    reduce_type: str = ""
    # a scalar argument appended to reductions with one input, so that CuPy does not
    # switch them to its CUB path (which reads only `in0` and renames by substring)
    extra_scalar: bool = False
    # NVRTC options on top of CuPy's: no contraction of a*b+c into one FMA, so every node
    # is rounded on its own as in the reference (and results do not depend on inlining)
    options: tuple[str, ...] = NVRTC_OPTIONS

    def cupy_args(self) -> dict[str, Any]:
        if self.kind == "elementwise":
            return {
                "in_params": self.in_params,
                "out_params": self.out_params,
                "operation": self.operation,
                "name": self.name,
                "preamble": self.preamble,
                "options": self.options,
            }
        return {
            "options": self.options,
            "in_params": self.in_params,
            "out_params": self.out_params,
            "map_expr": self.map_expr,
            "reduce_expr": self.reduce_expr,
            "post_map_expr": self.post_map_expr,
            "identity": self.identity,
            "name": self.name,
            "reduce_type": self.reduce_type,
            "preamble": self.preamble,
        }


# ---------------------------------------------------------------- groups


class _Body:
    """Statements of one device function: one local per node, in evaluation order."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.names: dict[int, str] = {}
        self.types: set[CellType] = set()

    def operand(self, node: Node) -> str:
        if id(node) in self.names:
            return self.names[id(node)]
        if is_immediate(node):
            return literal(node.value.reshape(-1)[0], node.dtype)
        raise RenderError(f"{node!r} is neither a leaf, an immediate nor computed earlier in the group")

    def bind(self, node: Node, expr: str) -> str:
        name = f"v{len(self.lines)}"
        self.types.add(node.dtype)
        self.lines.append(f"  const {compute_ctype(node.dtype)} {name} = {expr};")
        self.names[id(node)] = name
        return name

    def node(self, node: Node) -> str:
        return self.bind(node, node_expression(node, [self.operand(i) for i in node.inputs]))


def _includes(types: set[CellType]) -> str:
    # CuPy includes these only for the cell types of a kernel's arguments; an inner node
    # of a half type needs them too (both headers have #pragma once)
    out = ""
    if CellType.FLOAT16 in types:
        out += '#include "cupy/float16.cuh"\n'
    if CellType.BFLOAT16 in types:
        out += '#include "cupy/bfloat16.cuh"\n'
    return out


def _params(leaves: Sequence[Node]) -> tuple[str, str]:
    decl = ", ".join(f"{leaf.dtype.np_name} a{k}" for k, leaf in enumerate(leaves))
    fn_args = ", ".join(f"const {C_TYPES[leaf.dtype]} &a{k}" for k, leaf in enumerate(leaves))
    return decl, fn_args


def _finish(kind: str, body: str, salt: str = "") -> tuple[str, str]:
    # the name identifies the whole kernel: for reductions the aggregation lives outside
    # the body (reduce_expr, identity), so it must be part of the digest too
    digest = hashlib.blake2b((body + "\0" + salt).encode(), digest_size=8).hexdigest()
    name = f"tr_{'ew' if kind == 'elementwise' else 'red'}_{digest}"
    return name, body.replace("KNAME", name)


def _check(group: FusedGroup) -> None:
    for n in group.nodes:
        if not can_fuse(n):
            raise RenderError(f"cannot render {n!r} in a fused kernel")
    for leaf in group.leaves:
        if leaf.dtype not in GPU_CELL_TYPES:
            raise RenderError(f"a {leaf.dtype.np_name} value cannot be read by a GPU kernel")


def render_group(group: FusedGroup) -> KernelSource:
    _check(group)
    if group.reduce is None:
        return _render_elementwise(group)
    return _render_reduction(group)


def _render_elementwise(group: FusedGroup) -> KernelSource:
    b = _Body()
    for k, leaf in enumerate(group.leaves):
        b.names[id(leaf)] = load(leaf.dtype, f"a{k}")
        b.types.add(leaf.dtype)
    last = ""
    for n in group.pre:
        last = b.node(n)
    out_t = group.root.dtype
    decl, fn_args = _params(group.leaves)
    args = ", ".join(f"a{k}" for k in range(len(group.leaves)))
    body = (
        _includes(b.types)
        + f"__device__ __forceinline__ {C_TYPES[out_t]} KNAME_map({fn_args}) {{\n"
        + "\n".join(b.lines)
        + f"\n  return {store(out_t, last)};\n}}\n"
    )
    name, body = _finish("elementwise", body)
    return KernelSource(
        kind="elementwise",
        name=name,
        in_params=decl,
        out_params=f"{out_t.np_name} out",
        operation=f"out = {name}_map({args});",
        preamble=HELPERS + body,
        body=body,
        leaf_types=tuple(leaf.dtype for leaf in group.leaves),
        out_type=out_t,
    )


_AGG_EXPR: dict[str, Callable[[CellType], str]] = {
    "sum": lambda c: "a + b",
    "prod": lambda c: "a * b",
    "max": lambda c: (
        "(a > b || a != a) ? a : b" if c.is_float else ("a || b" if c.is_bool else "a > b ? a : b")
    ),
    "min": lambda c: (
        "(a < b || a != a) ? a : b" if c.is_float else ("a && b" if c.is_bool else "a < b ? a : b")
    ),
}


def _accumulator(agg: str, c: CellType) -> str:
    if agg in ("sum", "prod") and c.is_int:
        # integer sums and products wrap; unsigned arithmetic does so without UB, and the
        # low bits are those of the cell type's own wrapping arithmetic
        return "unsigned long long"
    return C_TYPES[c]


def _identity(agg: str, c: CellType) -> str:
    if agg == "sum":
        return "0"
    if agg == "prod":
        return "1"
    if c.is_float:
        return literal(-np.inf if agg == "max" else np.inf, c)
    if c.is_bool:
        return "false" if agg == "max" else "true"
    info = np.iinfo(c.np_dtype)
    return literal(info.min if agg == "max" else info.max, c)


def _render_reduction(group: FusedGroup) -> KernelSource:
    red = group.reduce
    assert red is not None
    agg = red.attrs["agg"]
    src_t = red.inputs[0].dtype
    c = compute_type(src_t)
    acc = _accumulator(agg, c)

    pre = _Body()
    for k, leaf in enumerate(group.leaves):
        pre.names[id(leaf)] = load(leaf.dtype, f"a{k}")
        pre.types.add(leaf.dtype)
    value = pre.operand(red.inputs[0]) if not group.pre else ""
    for n in group.pre:
        value = pre.node(n)

    post = _Body()
    post.types.add(red.dtype)
    red_value = round_to_cells(red.dtype, f"(({compute_ctype(red.dtype)})(r))")
    post.bind(red, red_value)
    last = post.names[id(red)]
    for n in group.post:
        last = post.node(n)
    out_t = group.root.dtype

    decl, fn_args = _params(group.leaves)
    extra_scalar = len(group.leaves) < 2
    if extra_scalar:
        decl += ", int32 _tr_nocub"
    args = ", ".join(f"a{k}" for k in range(len(group.leaves)))
    body = (
        _includes(pre.types | post.types)
        + f"__device__ __forceinline__ {C_TYPES[c]} KNAME_map({fn_args}) {{\n"
        + "".join(line + "\n" for line in pre.lines)
        + f"  return {value};\n}}\n"
        + f"__device__ __forceinline__ {C_TYPES[out_t]} KNAME_post(const {acc} &r) {{\n"
        + "\n".join(post.lines)
        + f"\n  return {store(out_t, last)};\n}}\n"
    )
    name, body = _finish("reduction", body, f"{_AGG_EXPR[agg](c)}|{_identity(agg, c)}|{acc}")
    return KernelSource(
        kind="reduction",
        name=name,
        in_params=decl,
        out_params=f"{out_t.np_name} out",
        map_expr=f"{name}_map({args})",
        reduce_expr=_AGG_EXPR[agg](c),
        post_map_expr=f"out = {name}_post(a)",
        identity=_identity(agg, c),
        reduce_type=acc,
        preamble=HELPERS + body,
        body=body,
        leaf_types=tuple(leaf.dtype for leaf in group.leaves),
        out_type=out_t,
        extra_scalar=extra_scalar,
    )
