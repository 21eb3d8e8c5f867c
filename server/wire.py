"""Tensors on the wire: a Vespa type string plus raw little-endian cells, row-major in
the type's (name-sorted) dimension order."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from proto.tensorrank.v1 import ranking_pb2 as pb
from tensor_ir.dtypes import CellType
from tensor_ir.errors import TensorRankError
from tensor_ir.expr.types import TensorType, TypeSyntaxError, parse_type


class WireError(TensorRankError, ValueError):
    """A tensor whose type or bytes are wrong; the message says which and how."""


def _le(ct: CellType) -> np.dtype[Any]:
    dt = ct.np_dtype
    return dt.newbyteorder("<") if dt.itemsize > 1 and dt.byteorder not in ("|",) else dt


def decode_tensor(t: pb.Tensor, expected: TensorType | None, what: str) -> npt.NDArray[Any]:
    """Cells of `t` as an array of the expected type's shape and cell type."""
    try:
        given = parse_type(t.type) if t.type else expected
    except TypeSyntaxError as e:
        raise WireError(f"{what}: bad tensor type '{t.type}': {e}") from None
    if given is None:
        raise WireError(f"{what}: the tensor has no type")
    if expected is not None and given.dims != expected.dims:
        raise WireError(f"{what}: expected {expected}, got {given}")
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
    if not t.dims and t.cell in _SCALAR_NAMES:
        return _SCALAR_NAMES[t.cell]
    return str(t)


def encode_tensor(value: npt.ArrayLike, t: TensorType) -> pb.Tensor:
    arr = np.ascontiguousarray(np.asarray(value, dtype=t.cell.np_dtype).reshape(t.shape))
    return pb.Tensor(type=type_string(t), values=arr.astype(_le(t.cell)).tobytes())
