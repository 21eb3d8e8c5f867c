"""Vespa's JSON forms of tensor values, for indexed (dense) tensor types.

Accepted: `{"values": [...]}` (flat or nested), `{"values": "3f80..."}` (hex of the cells,
big-endian as Vespa writes them), `{"cells": [{"address": {"x": "0"}, "value": 1}, ...]}`,
a plain (nested) JSON array, and a plain number for scalar types. An optional "type"
member must equal the expected type. Types with mapped dimensions have their own forms
(tensor_ir.expr.mapped_json); they are refused here rather than misread as dense.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from tensor_ir.casts import truncate_to_bfloat16
from tensor_ir.dtypes import CellType
from tensor_ir.errors import TensorRankError
from tensor_ir.expr.types import TensorType, TypeSyntaxError, parse_type


class TensorValueError(TensorRankError, ValueError):
    pass


def tensor_from_json(value: Any, t: TensorType, allow_nonfinite: bool = False) -> npt.NDArray[Any]:
    if t.is_mapped:
        raise TensorValueError(f"{t} has a mapped dimension: its value is read by tensor_ir.expr.mapped_json, "
                               "not as a dense tensor")
    return check_cells(_parse(value, t), t, allow_nonfinite)


def check_cells(arr: npt.NDArray[Any], t: TensorType, allow_nonfinite: bool = False) -> npt.NDArray[Any]:
    """Cells (float64) as values of `t`'s cell type: finite unless allowed, whole numbers for
    integer cells, within the cell type's range; bfloat16 truncated as Vespa converts."""
    if t.cell.is_float and not allow_nonfinite and not np.all(np.isfinite(arr)):
        raise TensorValueError("NaN or infinity is not allowed")
    if t.cell.is_int or t.cell.is_bool:
        info = np.iinfo(t.cell.np_dtype) if t.cell.is_int else None
        if info is not None and (arr.min(initial=0) < info.min or arr.max(initial=0) > info.max):
            raise TensorValueError(f"a value does not fit cell type {t.cell.vespa_name or t.cell.np_name}")
        if not np.all(np.isfinite(arr)) or not np.all(arr == np.round(arr)):
            raise TensorValueError(f"cell type {t.cell.vespa_name or t.cell.np_name} needs whole numbers")
    if t.cell is CellType.FLOAT32:
        big = np.abs(arr[np.isfinite(arr)]) > np.finfo(np.float32).max
        if big.any():
            raise TensorValueError("a value does not fit cell type float")
    if t.cell is CellType.BFLOAT16:
        return truncate_to_bfloat16(arr)  # as Vespa converts a fed value (tensor_ir.casts)
    return arr.astype(t.cell.np_dtype)


def _parse(value: Any, t: TensorType) -> npt.NDArray[Any]:
    if isinstance(value, bool):
        raise TensorValueError("expected a number or tensor, got a boolean")
    if isinstance(value, int | float):
        if t.rank != 0:
            raise TensorValueError(f"expected a tensor of type {t}, got a number")
        return np.asarray(float(value), dtype=np.float64)
    if isinstance(value, list):
        return _dense(value, t)
    if not isinstance(value, dict):
        raise TensorValueError(f"expected a tensor of type {t} in Vespa's JSON form")
    if "type" in value:
        try:
            given = parse_type(str(value["type"]))
        except TypeSyntaxError as e:
            raise TensorValueError(str(e)) from None
        if given.dims != t.dims:
            raise TensorValueError(f"value has type {given}, expected {t}")
    if "values" in value:
        v = value["values"]
        if isinstance(v, str):
            return _hex(v, t)
        if not isinstance(v, list):
            raise TensorValueError("'values' must be an array or a hex string")
        return _dense(v, t)
    if "cells" in value:
        return _cells(value["cells"], t)
    if "blocks" in value:
        raise TensorValueError("'blocks' (mixed tensors) are not supported")
    raise TensorValueError("expected 'values' or 'cells'")


def _dense(items: list[Any], t: TensorType) -> npt.NDArray[Any]:
    try:
        arr = np.asarray(items, dtype=np.float64)
    except (ValueError, TypeError):
        raise TensorValueError("values must be numbers (nested arrays must be rectangular)") from None
    size = int(np.prod(t.shape, dtype=np.int64))
    if arr.shape == t.shape:
        return arr
    if arr.ndim == 1 and arr.size == size:
        return arr.reshape(t.shape)
    raise TensorValueError(f"{t} has {size} cells (shape {list(t.shape)}) but the value has shape {list(arr.shape)}")


_HEX_WIDTH = {CellType.FLOAT64: 16, CellType.FLOAT32: 8, CellType.BFLOAT16: 4, CellType.INT8: 2}


def _hex(text: str, t: TensorType) -> npt.NDArray[Any]:
    width = _HEX_WIDTH.get(t.cell)
    if width is None:
        raise TensorValueError(f"hex values are not defined for cell type {t.cell.np_name}")
    size = int(np.prod(t.shape, dtype=np.int64))
    if len(text) != width * size:
        raise TensorValueError(f"hex string has {len(text)} digits; {t} needs {width * size}")
    try:
        raw = bytes.fromhex(text)
    except ValueError:
        raise TensorValueError("'values' is not a valid hex string") from None
    be = t.cell.np_dtype.newbyteorder(">") if t.cell.np_dtype.itemsize > 1 else t.cell.np_dtype
    if t.cell is CellType.BFLOAT16:
        u16 = np.frombuffer(raw, dtype=">u2").astype(np.uint32) << 16
        return u16.view(np.float32).astype(np.float64).reshape(t.shape)
    return np.frombuffer(raw, dtype=be).astype(np.float64).reshape(t.shape)


def _cells(cells: Any, t: TensorType) -> npt.NDArray[Any]:
    if not isinstance(cells, list):
        raise TensorValueError("'cells' must be an array of {address, value} objects")
    arr = np.zeros(t.shape, dtype=np.float64)
    for cell in cells:
        if not isinstance(cell, dict) or "address" not in cell or "value" not in cell:
            raise TensorValueError("each cell needs 'address' and 'value'")
        addr = cell["address"]
        if not isinstance(addr, dict) or set(addr) != set(t.names):
            raise TensorValueError(f"cell address {addr} must name exactly the dimensions {list(t.names)}")
        idx = []
        for n, s in t.dims:
            try:
                i = int(addr[n])
            except (TypeError, ValueError):
                raise TensorValueError(f"cell address label {addr[n]!r} of '{n}' is not an index") from None
            if not 0 <= i < s:
                raise TensorValueError(f"cell index {n}:{i} is outside 0..{s - 1}")
            idx.append(i)
        v = cell["value"]
        if isinstance(v, bool) or not isinstance(v, int | float):
            raise TensorValueError(f"cell value {v!r} is not a number")
        arr[tuple(idx)] = float(v)
    return arr
