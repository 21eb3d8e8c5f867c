"""The optimisation pipeline every backend runs before it evaluates a program."""

from __future__ import annotations

from tensor_ir.passes.cse import eliminate_common_subexpressions
from tensor_ir.passes.fold import fold_constants
from tensor_ir.passes.reassociate import reassociate_invariants
from tensor_ir.passes.split_concat_matmul import split_concat_matmul
from tensor_ir.program import Program


def optimize(program: Program) -> Program:
    program = fold_constants(program)
    program = split_concat_matmul(program)
    program = reassociate_invariants(program)
    return eliminate_common_subexpressions(program)
