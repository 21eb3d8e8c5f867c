"""Vespa's functions on the bits of int8 values: `bit(x, n)`, `hamming(x, y)` and
`unpack_bits(t [, cell_type [, endian]])`.

Vespa reads the bits of a number as C++ does after `(int8_t) x`: the value truncated
toward zero, then its low 8 bits (vespalib's extract_bit and hamming_distance). Beyond the
32-bit range C++ leaves that conversion undefined; here it saturates first. `bit(x, n)` is
bit n counted from the least significant one, 0 unless `(uint32_t) n` is below 8, so a
negative n gives 0 and a fraction is truncated. `hamming(x, y)` counts the bits in which
the two bytes differ. Both are cell functions and join two values as `+` does, with a
join's cell types.

`unpack_bits` turns each int8 cell of the innermost indexed dimension into 8 cells of
0 or 1, so that dimension grows 8 times; bit 7 comes first ("big", the default) or bit 0
("little"), in cells of float unless another cell type is asked for.

The node builders (`int8_byte`, `bit_of`, `hamming_cells`) take any numeric nodes, so the
distance features can build on them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from tensor_ir import build
from tensor_ir.distances import popcount_bytes
from tensor_ir.dtypes import CellType
from tensor_ir.expr.ast import Call
from tensor_ir.expr.types import TensorType
from tensor_ir.expr.values import TValue, with_cell
from tensor_ir.ir import Node

if TYPE_CHECKING:
    from tensor_ir.expr.compiler import Compiler

I8 = CellType.INT8
I32 = CellType.INT32
ENDIANS = ("big", "little")


def _k(value: int) -> Node:
    return build.scalar(value, I32)


def int8_byte(x: Node) -> Node:
    """`(int8_t) x`: int8 cells as they are, other numbers truncated (saturating at the
    32-bit range) and cut to their low 8 bits."""
    if x.dtype is I8:
        return x
    whole = x if x.dtype.is_int else build.cast(x, I32)
    return build.cast(whole, I8)  # an integer narrowing keeps the low bits


def bit_of(x: Node, n: Node) -> Node:
    """Bit n of `(int8_t) x`, as int32 0 or 1 (module doc); operands broadcast."""
    value = build.cast(int8_byte(x), I32)  # sign-extended: bit 7 stays bit 7 after a shift
    count = n if n.dtype is I32 else build.cast(n, I32)
    inside = build.join("and", build.join("ge", count, _k(0)), build.join("lt", count, _k(8)))
    shift = build.select(inside, count, _k(0))
    bit = build.join("bitwise_and", build.join("shift_right", value, shift), _k(1))
    return build.select(inside, bit, _k(0))


def hamming_cells(x: Node, y: Node) -> Node:
    """Differing bits of `(int8_t) x` and `(int8_t) y`, as int32 0..8 per cell; operands
    broadcast. Summed over a vector's cells it is Vespa's hamming distance."""
    return popcount_bytes(build.join("bitwise_xor", int8_byte(x), int8_byte(y)))


def bit(c: Compiler, e: Call) -> TValue:
    c.arity(e, 2)
    a, b = c.compile(e.args[0]), c.compile(e.args[1])
    return c.join(a, b, lambda x, n: build.cast(bit_of(x, n), x.dtype), e.loc)


def hamming(c: Compiler, e: Call) -> TValue:
    c.arity(e, 2)
    a, b = c.compile(e.args[0]), c.compile(e.args[1])
    return c.join(a, b, lambda x, y: build.cast(hamming_cells(x, y), x.dtype), e.loc)


def unpack_bits(c: Compiler, e: Call) -> TValue:
    if not 1 <= len(e.args) <= 3:
        raise c.error("unpack_bits() takes an int8 tensor, optionally a cell type, and then "
                      "optionally 'big' or 'little'", e.loc)
    v = c.compile(e.args[0])
    cell = CellType.FLOAT32
    if len(e.args) >= 2:
        try:
            cell = CellType.from_vespa(c.dim_name(e.args[1]))
        except ValueError as err:
            raise c.error(f"unpack_bits(): {err}", e.args[1].loc) from None
    endian = "big"
    if len(e.args) == 3:
        endian = c.dim_name(e.args[2])
        if endian not in ENDIANS:
            raise c.error(f"unpack_bits(): the bit order must be 'big' or 'little', got '{endian}'", e.args[2].loc)
    if v.type.cell is not I8:
        raise c.error(f"unpack_bits() needs int8 cells, got {v.type}", e.args[0].loc)
    if not v.type.visible:
        raise c.error(f"unpack_bits() needs a tensor with an indexed dimension, got {v.type}", e.args[0].loc)
    name = v.type.visible[-1][0]  # the innermost indexed dimension (dimensions sort by name)
    axis = v.type.names.index(name)
    shape = list(v.type.shape)
    # a new axis of 8 after `axis`, holding the shift that brings each bit down to bit 0
    spread = build.reshape(build.cast(v.node, I32), [*shape[: axis + 1], 1, *shape[axis + 1:]])
    order = np.arange(7, -1, -1) if endian == "big" else np.arange(8)
    shifts = build.constant(order.astype(np.int32).reshape([1] * (axis + 1) + [8] + [1] * (len(shape) - axis - 1)))
    bits = build.join("bitwise_and", build.join("shift_right", spread, shifts), _k(1))
    dims = tuple((n, s * 8 if n == name else s) for n, s in v.type.dims)
    out = TValue(build.reshape(bits, [s for _, s in dims]), TensorType(I32, dims, v.type.mapped), v.sparse)
    return with_cell(out, cell)
