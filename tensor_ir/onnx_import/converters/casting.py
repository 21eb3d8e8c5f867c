"""Cast and CastLike: one CAST node each (none when the type already matches)."""

from __future__ import annotations

from collections.abc import Sequence

import onnx

from tensor_ir import build
from tensor_ir.dtypes import CellType
from tensor_ir.ir import Node
from tensor_ir.onnx_import.context import NodeContext
from tensor_ir.onnx_import.registry import converter


def _target_type(ctx: NodeContext) -> CellType:
    to = ctx.attr("to")
    if to is None:
        raise ctx.error("attribute 'to' is missing")
    if isinstance(to, str):
        # Cast-1 names the type as a string ("FLOAT"), later versions use the enum
        try:
            code = int(onnx.TensorProto.DataType.Value(to.upper()))
        except ValueError:
            raise ctx.error(f"attribute 'to' names unknown type '{to}'") from None
    else:
        code = int(to)
    return _cell_type(ctx, code, "target")


def _cell_type(ctx: NodeContext, code: int, what: str) -> CellType:
    if code == onnx.TensorProto.STRING:
        raise ctx.error(f"unsupported: string {what} type (tensor programs hold numbers only)")
    try:
        return CellType.from_onnx(code)
    except ValueError:
        name = onnx.TensorProto.DataType.Name(code) if code in onnx.TensorProto.DataType.values() else code
        raise ctx.error(f"unsupported {what} type {name}") from None


def _cast(ctx: NodeContext, x: Node, to: CellType) -> Node:
    # Cast and CastLike declare saturate from opset 19 and round_mode from opset 24, with the
    # float8 and float8e8m0 targets those govern; earlier versions have no such target, so the
    # opset-19 default saturate=1 and the opset-24 default round_mode='up' describe them exactly.
    saturate = bool(ctx.attr("saturate")) if ctx.declares("saturate") else True
    round_mode = str(ctx.attr("round_mode")) if ctx.declares("round_mode") else "up"
    if round_mode not in build.E8M0_ROUND_MODES:
        raise ctx.error(f"unsupported round_mode '{round_mode}' (expected up, down or nearest)")
    return build.cast(x, to, saturate=saturate, round_mode=round_mode, label=ctx.name)


@converter("Cast", 1, 6, 9, 13, 19, 21, 23, 24, 25, 28)
def cast(ctx: NodeContext) -> Sequence[Node | None]:
    return [_cast(ctx, ctx.input(0), _target_type(ctx))]


@converter("CastLike", 15, 19, 21, 23, 24, 25)
def cast_like(ctx: NodeContext) -> Sequence[Node | None]:
    # only the type of target_type matters, never its value, so it adds no dependency
    return [_cast(ctx, ctx.input(0), ctx.input(1).dtype)]
