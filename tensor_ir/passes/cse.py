"""Common-subexpression elimination: structurally equal nodes become one node.

Keyed by (op, operand identities, attributes, type); constants compare by content, so
two copies of the same weight matrix are stored once.
"""

from __future__ import annotations

from typing import Any

from tensor_ir.ir import Node
from tensor_ir.passes.rebuild import rewrite, same_with_inputs
from tensor_ir.program import Program


def eliminate_common_subexpressions(program: Program) -> Program:
    table: dict[tuple[Any, ...], Node] = {}

    def dedupe(node: Node, inputs: tuple[Node, ...]) -> Node:
        candidate = same_with_inputs(node, inputs)
        return table.setdefault(candidate.key(), candidate)

    return rewrite(program, dedupe)
