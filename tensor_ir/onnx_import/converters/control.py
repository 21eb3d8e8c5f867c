"""Control flow: If, Loop and Scan, imported into straight-line programs.

A program has no branches or loops, so an If with a deploy-time condition imports only
the branch it takes, and one whose condition varies becomes a SELECT between both
branches when they agree in shapes and types. Loops are unrolled when their iteration
count is known at deploy time; Scan always is, because its scanned axis has a static size.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import onnx

from tensor_ir import build
from tensor_ir.dtypes import CellType
from tensor_ir.ir import Node
from tensor_ir.onnx_import.context import NodeContext
from tensor_ir.onnx_import.converters.common import unsqueeze
from tensor_ir.onnx_import.errors import ModelImportError
from tensor_ir.onnx_import.registry import converter

# Unrolling imports the body once per iteration: beyond this the program grows too large
MAX_UNROLL = 1024

_VERSIONS = (1, 11, 13, 16, 19, 21, 23, 24, 25)


def _scalar_condition(ctx: NodeContext, cond: Node, what: str) -> Node:
    if not cond.dtype.is_bool or cond.size != 1:
        raise ctx.error(f"{what} must be one bool, got {cond.dtype.np_name}{list(cond.shape)}")
    return build.reshape(cond, ())


def _graph(ctx: NodeContext, name: str) -> onnx.GraphProto:
    g = ctx.attr(name)
    if not isinstance(g, onnx.GraphProto):
        raise ctx.error(f"attribute '{name}' is missing")
    return g


@converter("If", *_VERSIONS)
def if_(ctx: NodeContext) -> Sequence[Node | None]:
    cond = _scalar_condition(ctx, ctx.input(0), "cond")
    then_g, else_g = _graph(ctx, "then_branch"), _graph(ctx, "else_branch")
    if cond.is_constant:
        return ctx.subgraph(then_g if bool(cond.value) else else_g, [])
    where = str(cond.variance.name or "").lower().replace("_", " x ")
    need = ("the condition depends on " + where + " data, so both branches must give outputs of "
            "one shape and type to be selected between per document")
    try:
        then_out = ctx.subgraph(then_g, [])
        else_out = ctx.subgraph(else_g, [])
    except ModelImportError as e:
        raise ctx.error(f"{need}, but a branch cannot be imported: {e}", needs_constant=True) from None
    if len(then_out) != len(else_out):
        raise ctx.error(f"branches give {len(then_out)} and {len(else_out)} outputs")
    out: list[Node | None] = []
    for i, (a, b) in enumerate(zip(then_out, else_out, strict=True)):
        if a.shape != b.shape or a.dtype is not b.dtype:
            raise ctx.error(
                f"{need}; output {i} is {a.dtype.np_name}{list(a.shape)} in the then branch and "
                f"{b.dtype.np_name}{list(b.shape)} in the else branch",
                needs_constant=True,
            )
        out.append(a if a is b else build.select(cond, a, b, label=ctx.name))
    return out


def _stack(ctx: NodeContext, parts: list[Node], axis: int, what: str) -> Node:
    shapes = {(p.shape, p.dtype) for p in parts}
    if len(shapes) != 1:
        raise ctx.error(f"{what} changes shape or type between iterations: "
                        + ", ".join(f"{p.dtype.np_name}{list(p.shape)}" for p in parts))
    rank = parts[0].rank + 1
    if not -rank <= axis < rank:
        raise ctx.error(f"{what} axis {axis} is out of range for rank {rank}")
    return build.concat([unsqueeze(p, [axis]) for p in parts], axis % rank)


@converter("Loop", *_VERSIONS)
def loop(ctx: NodeContext) -> Sequence[Node | None]:
    body = _graph(ctx, "body")
    carried: list[Node] = []
    for i in range(2, len(ctx.inputs)):
        carried.append(ctx.input(i))
    n_scan = len(body.output) - 1 - len(carried)
    if n_scan < 0 or len(body.input) != 2 + len(carried):
        raise ctx.error(f"body takes {len(body.input)} inputs and gives {len(body.output)} outputs for "
                        f"{len(carried)} loop-carried values")
    trip: int | None = None
    if ctx.optional(0) is not None:
        m = ctx.const(0, "trip count M (a Loop is unrolled, so M must be known)")
        if m.size != 1:
            raise ctx.error(f"trip count must be one value, got shape {list(m.shape)}")
        trip = int(m.reshape(()).item())
    running = True
    if ctx.optional(1) is not None:
        c = _scalar_condition(ctx, ctx.input(1), "cond")
        if not c.is_constant:
            raise ctx.error("unsupported: the loop condition depends on data; only loops whose iteration "
                            "count is known at deploy time can be unrolled", needs_constant=True)
        running = bool(c.value)
    values = list(carried)
    scans: list[list[Node]] = [[] for _ in range(n_scan)]
    i = 0
    while running and (trip is None or i < trip):
        if i >= MAX_UNROLL:
            raise ctx.error(f"unsupported: the loop runs more than {MAX_UNROLL} iterations; it is unrolled "
                            "at deploy time and would make the program too large")
        outs = ctx.subgraph(body, [build.scalar(i, CellType.INT64), build.scalar(running, CellType.BOOL),
                                   *values])
        c = _scalar_condition(ctx, outs[0], "the body's condition output")
        if not c.is_constant:
            raise ctx.error("unsupported: the loop's continue condition depends on data; only loops whose "
                            "iteration count is known at deploy time can be unrolled", needs_constant=True)
        running = bool(c.value)
        values = outs[1:1 + len(carried)]
        for j, s in enumerate(outs[1 + len(carried):]):
            scans[j].append(s)
        i += 1
    if n_scan and i == 0:
        raise ctx.error("unsupported: the loop runs no iterations, so its scan outputs have no known shape")
    return [*values, *(_stack(ctx, s, 0, f"scan output {j}") for j, s in enumerate(scans))]


def _take(x: Node, axis: int, t: int) -> Node:
    starts = [0] * x.rank
    stops = list(x.shape)
    starts[axis], stops[axis] = t, t + 1
    part = build.slice_(x, starts, stops, [1] * x.rank)
    return build.reshape(part, [d for a, d in enumerate(part.shape) if a != axis])


def _scan_steps(
    ctx: NodeContext,
    body: onnx.GraphProto,
    states: list[Node],
    scan_in: list[Node],
    in_axes: list[int],
    in_dirs: list[int],
    out_axes: list[int],
    out_dirs: list[int],
) -> list[Node]:
    """Unroll one scan (no batch axis): final states then stacked scan outputs."""
    lengths = {x.shape[a] for x, a in zip(scan_in, in_axes, strict=True)}
    if len(lengths) != 1:
        raise ctx.error(f"scan inputs differ in length along their scan axes: {sorted(lengths)}")
    steps = lengths.pop()
    n_out = len(body.output) - len(states)
    if n_out < 0 or len(body.input) != len(states) + len(scan_in):
        raise ctx.error(f"body takes {len(body.input)} inputs and gives {len(body.output)} outputs for "
                        f"{len(states)} states and {len(scan_in)} scan inputs")
    if steps > MAX_UNROLL:
        raise ctx.error(f"unsupported: the scan runs {steps} steps, more than the {MAX_UNROLL} we unroll")
    if steps == 0 and n_out:
        raise ctx.error("unsupported: the scan runs no steps, so its scan outputs have no known shape")
    collected: list[list[Node]] = [[] for _ in range(n_out)]
    for t in range(steps):
        slices = [_take(x, a, steps - 1 - t if d else t) for x, a, d in zip(scan_in, in_axes, in_dirs,
                                                                           strict=True)]
        outs = ctx.subgraph(body, [*states, *slices])
        states = outs[:len(states)]
        for j, s in enumerate(outs[len(states):]):
            collected[j].append(s)
    stacked = []
    for j, parts in enumerate(collected):
        if out_dirs[j]:
            parts = parts[::-1]
        stacked.append(_stack(ctx, parts, out_axes[j], f"scan output {j}"))
    return [*states, *stacked]


def _per_input(ctx: NodeContext, name: str, n: int) -> list[int]:
    value: Any = ctx.attr(name)
    if value is None:
        return [0] * n
    out = [int(v) for v in value]
    if len(out) != n:
        raise ctx.error(f"{name} has {len(out)} entries for {n} values")
    return out


@converter("Scan", 8, 9, 11, 16, 19, 21, 23, 24, 25)
def scan(ctx: NodeContext) -> Sequence[Node | None]:
    body = _graph(ctx, "body")
    if ctx.attr("num_scan_inputs") is None:
        raise ctx.error("attribute 'num_scan_inputs' is missing")
    m = int(ctx.attr("num_scan_inputs"))
    first = 1 if ctx.opset < 9 else 0
    args = [ctx.input(i) for i in range(first, len(ctx.inputs))]
    if not 0 < m <= len(args):
        raise ctx.error(f"num_scan_inputs={m} but the node has {len(args)} inputs")
    states, scan_in = args[: len(args) - m], args[len(args) - m:]
    n_out = len(body.output) - len(states)
    if ctx.opset >= 9:
        in_axes = [a % x.rank if -x.rank <= a < x.rank else -1
                   for a, x in zip(_per_input(ctx, "scan_input_axes", m), scan_in, strict=True)]
        if -1 in in_axes:
            raise ctx.error(f"scan_input_axes {ctx.attr('scan_input_axes')} are out of range")
        return _scan_steps(ctx, body, states, scan_in, in_axes, _per_input(ctx, "scan_input_directions", m),
                           _per_input(ctx, "scan_output_axes", n_out),
                           _per_input(ctx, "scan_output_directions", n_out))
    # opset 8: every operand has a leading batch axis; the body runs per batch row
    directions = _per_input(ctx, "directions", m)
    if ctx.optional(0) is not None:
        lens = np.asarray(ctx.const(0, "sequence_lens")).reshape(-1)
        full = {x.shape[1] for x in scan_in if x.rank > 1}
        if len(full) != 1 or any(int(v) != next(iter(full)) for v in lens):
            raise ctx.error("unsupported: sequence_lens shorter than the scanned axis")
    batches = {x.shape[0] for x in args if x.rank}
    if len(batches) != 1 or any(x.rank == 0 for x in args) or 0 in batches:
        raise ctx.error("all operands need one leading, non-empty batch axis of the same size")
    rows = []
    for b in range(batches.pop()):
        rows.append(_scan_steps(ctx, body, [_take(s, 0, b) for s in states], [_take(x, 0, b) for x in scan_in],
                                [0] * m, directions, [0] * n_out, [0] * n_out))
    return [_stack(ctx, [r[j] for r in rows], 0, f"output {j}") for j in range(len(rows[0]))]
