"""HostEmulation: the GPU backend's device with numpy in place of CuPy, and fused groups
interpreted with the reference semantics instead of launched.

It runs the whole backend (fusion, leaf alignment, the reference's portable kernels,
document axes) on machines without a GPU; the kernels' C++ is checked by the tests under
tests/render instead.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from gpu_engine.expressions import GPU_CELL_TYPES
from gpu_engine.render import KernelSource
from tensor_ir import reference
from tensor_ir.casts import widen
from tensor_ir.elementwise import BINARY
from tensor_ir.ir import Node, Op
from tensor_ir.passes.fusion import FusedGroup, is_identity_reduce


class HostEmulation:
    """numpy in place of CuPy (see the module doc)."""

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
                return np.asarray(np.broadcast_to(env[id(group.root)], space), order="C")  # keeps 0-d
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
        r = BINARY[node.attrs["fn"]](widen(args[0], ct), widen(args[1], ct))
        return np.asarray(r).astype(node.dtype.np_dtype, copy=False)
    if node.op is Op.SELECT:
        return np.asarray(np.where(*args)).astype(node.dtype.np_dtype, copy=False)
    # map and cast do not align operands, so the reference kernels apply as they are
    return reference.eval_node(node, args, n)
