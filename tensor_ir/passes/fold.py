"""Constant folding: every node whose operands are all constants becomes a constant.

Part of optimize(), which every backend runs when it compiles a profile's programs, so no
query recomputes what the package already fixes (a profile's constants are constant nodes
already, and tensor_ir.build folds as it builds; this catches what rewrites expose).
bind_constants turns constant-role inputs of a program into such nodes.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import numpy.typing as npt

from tensor_ir import build
from tensor_ir.errors import IRError
from tensor_ir.ir import Node, Op, Role
from tensor_ir.passes.rebuild import rewrite, same_with_inputs
from tensor_ir.program import Program
from tensor_ir.reference import eval_node


def fold_constants(program: Program) -> Program:
    def fold(node: Node, inputs: tuple[Node, ...]) -> Node:
        if node.op in (Op.INPUT, Op.CONSTANT) or not all(i.op is Op.CONSTANT for i in inputs):
            return same_with_inputs(node, inputs)
        value = eval_node(node, [i.value for i in inputs], 1)
        return build.constant(value, node.dtype, node.label)

    return rewrite(program, fold)


def bind_constants(program: Program, values: Mapping[str, npt.ArrayLike]) -> Program:
    """Replace constant-role inputs by their values, then fold."""
    for name in values:
        spec = program.inputs.get(name)
        if spec is None:
            raise IRError(f"program has no input '{name}'")
        if spec.role is not Role.CONSTANT:
            raise IRError(f"input '{name}' is a {spec.role.value} input, not a constant")

    def bind(node: Node, inputs: tuple[Node, ...]) -> Node:
        if node.op is Op.INPUT and node.attrs["name"] in values:
            arr: npt.NDArray[Any] = np.asarray(values[node.attrs["name"]], dtype=node.dtype.np_dtype)
            if arr.shape != node.shape:
                raise IRError(
                    f"constant '{node.attrs['name']}' has shape {list(arr.shape)}, want {list(node.shape)}"
                )
            return build.constant(arr, node.dtype, node.label)
        return same_with_inputs(node, inputs)

    bound = rewrite(program, bind)
    remaining = {k: v for k, v in program.inputs.items() if k not in values}
    return fold_constants(Program(bound.outputs, remaining))
