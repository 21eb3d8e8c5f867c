"""Tensors on the wire: a Vespa type string plus raw little-endian cells, row-major in
the type's (name-sorted) dimension order; a type with mapped dimensions adds its
subspaces' labels (server.wire_mapped)."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from proto.tensorrank.v1 import ranking_pb2 as pb
from server.wire_mapped import WireError, decode_mapped, encode_mapped, same_dimensions
from tensor_ir.dtypes import CellType
from tensor_ir.expr.types import TensorType, TypeSyntaxError, parse_type
from tensor_ir.mapped import MappedTensor

__all__ = ["WireError", "decode_tensor", "encode_tensor", "type_string"]


def _le(ct: CellType) -> np.dtype[Any]:
    dt = ct.np_dtype
    return dt.newbyteorder("<") if dt.itemsize > 1 and dt.byteorder not in ("|",) else dt


def decode_tensor(t: pb.Tensor, expected: TensorType | None, what: str) -> npt.NDArray[Any] | MappedTensor:
    """Cells of `t` as an array of the expected type's shape and cell type; a MappedTensor
    for a type with mapped dimensions."""
    try:
        given = parse_type(t.type, allow_mapped=True) if t.type else expected
    except TypeSyntaxError as e:
        raise WireError(f"{what}: bad tensor type '{t.type}': {e}") from None
    if given is None:
        raise WireError(f"{what}: the tensor has no type")
    if expected is not None and not same_dimensions(given, expected):
        raise WireError(f"{what}: expected {expected}, got {given}")
    labels = getattr(t, "labels", ())
    if given.is_mapped:
        return decode_mapped(labels, t.values, given, expected or given, what)
    if len(labels):
        raise WireError(f"{what}: {given} has no mapped dimensions, but the tensor has {len(labels)} labels")
    size = int(np.prod(given.shape, dtype=np.int64))
    width = given.cell.np_dtype.itemsize
    if len(t.values) != size * width:
        raise WireError(f"{what}: {given} needs {size * width} bytes ({size} cells of {width}), "
                        f"got {len(t.values)}")
    arr = np.frombuffer(t.values, dtype=_le(given.cell)).reshape(given.shape)
    target = expected.cell if expected is not None else given.cell
    return arr.astype(target.np_dtype)


# scalar types under the names parse_type reads back (str() gives int32 for int, int64 for long ...)
_SCALAR_NAMES = {CellType.INT32: "int", CellType.INT64: "long", CellType.INT8: "byte", CellType.BOOL: "bool"}


def type_string(t: TensorType) -> str:
    """`t` as a type string that parse_type reads back as `t`."""
    if not t.dims and not t.mapped and t.cell in _SCALAR_NAMES:
        return _SCALAR_NAMES[t.cell]
    return str(t)


def encode_tensor(value: npt.ArrayLike | MappedTensor, t: TensorType) -> pb.Tensor:
    if isinstance(value, MappedTensor) or t.is_mapped:
        if not isinstance(value, MappedTensor) or not same_dimensions(value.type, t):
            got = value.type if isinstance(value, MappedTensor) else f"an array of shape {np.shape(value)}"
            raise WireError(f"a value of {t} must be a MappedTensor of its dimensions, got {got}")
        cells = value.cells if value.type.cell is t.cell else value.cells.astype(t.cell.np_dtype)
        return encode_mapped(MappedTensor(t, value.addresses, cells), type_string(t))
    arr = np.ascontiguousarray(np.asarray(value, dtype=t.cell.np_dtype).reshape(t.shape))
    return pb.Tensor(type=type_string(t), values=arr.astype(_le(t.cell)).tobytes())
