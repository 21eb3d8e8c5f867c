"""Vespa's `merge(a, b, f(x,y)(...))`: all cells of both tensors, f where both have one.

The two must have the same dimensions. Dense tensors of the same dimensions have the same
cells, so their merge is their join with f, cell types included (Vespa's conformance
cases: a merge of two int8 tensors is float). Tensors with mapped dimensions, where a cell
may be in one operand only, are merged in tensor_ir.expr.sparse_functions.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tensor_ir.expr.ast import Call, Name
from tensor_ir.expr.values import TValue

if TYPE_CHECKING:
    from tensor_ir.expr.compiler import Compiler

# names no expression can write, so the operands cannot shadow or be shadowed
_LEFT, _RIGHT = "<merge left>", "<merge right>"


def merge(c: Compiler, e: Call) -> TValue:
    c.arity(e, 3)
    a, b = c.compile(e.args[0]), c.compile(e.args[1])
    lam = c.lambda_of(e.args[2], 2, "merge")
    if a.sparse is not None or b.sparse is not None:
        from tensor_ir.expr.sparse_functions import merge_mapped

        return merge_mapped(c, a, b, lam, e.loc)
    if a.type.visible != b.type.visible:
        raise c.error(f"merge() needs two values of the same dimensions, got {a.type} and {b.type}", e.loc)
    # imported here: tensor_functions imports this module for its table
    from tensor_ir.expr.tensor_functions import TENSOR_FUNCTIONS

    join = Call(e.loc, "join", (Name(e.args[0].loc, _LEFT), Name(e.args[1].loc, _RIGHT), lam))
    return TENSOR_FUNCTIONS["join"](c.with_locals({_LEFT: a, _RIGHT: b}), join)
