"""Rebuilding a program bottom-up with some nodes replaced: the shared walk of the passes."""

from __future__ import annotations

from collections.abc import Callable

from tensor_ir.ir import Node
from tensor_ir.program import Program

# Given the original node and its already-rewritten inputs, return the node to use.
Rewrite = Callable[[Node, tuple[Node, ...]], Node]


def rewrite(program: Program, fn: Rewrite) -> Program:
    done: dict[int, Node] = {}
    for node in program.nodes():
        new_inputs = tuple(done[id(i)] for i in node.inputs)
        done[id(node)] = fn(node, new_inputs)
    return program.with_outputs({k: done[id(v)] for k, v in program.outputs.items()})


def same_with_inputs(node: Node, inputs: tuple[Node, ...]) -> Node:
    """`node` with new operands; unchanged when they are the same objects."""
    if all(a is b for a, b in zip(inputs, node.inputs, strict=True)):
        return node
    return Node(node.op, inputs, node.attrs, node.shape, node.dtype, node.variance, node.label)
