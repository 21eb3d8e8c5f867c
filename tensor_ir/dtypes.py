"""Cell types: the element types a tensor program computes in.

Each cell type knows its ONNX enum, its numpy dtype and, where Vespa has one, its Vespa
name. bfloat16 and the narrow float types come from ml_dtypes (a dependency of onnx).
"""

from __future__ import annotations

import enum
from typing import Any

import ml_dtypes
import numpy as np


class CellType(enum.Enum):
    FLOAT32 = ("float32", 1, "float")
    FLOAT64 = ("float64", 11, "double")
    FLOAT16 = ("float16", 10, None)
    BFLOAT16 = ("bfloat16", 16, "bfloat16")
    INT8 = ("int8", 3, "int8")
    INT16 = ("int16", 5, None)
    INT32 = ("int32", 6, None)
    INT64 = ("int64", 7, None)
    UINT8 = ("uint8", 2, None)
    UINT16 = ("uint16", 4, None)
    UINT32 = ("uint32", 12, None)
    UINT64 = ("uint64", 13, None)
    BOOL = ("bool", 9, None)
    # Narrow floats and ints: only as storage types (cast in, cast out) for ONNX models.
    FLOAT8E4M3FN = ("float8_e4m3fn", 17, None)
    FLOAT8E4M3FNUZ = ("float8_e4m3fnuz", 18, None)
    FLOAT8E5M2 = ("float8_e5m2", 19, None)
    FLOAT8E5M2FNUZ = ("float8_e5m2fnuz", 20, None)
    UINT4 = ("uint4", 21, None)
    INT4 = ("int4", 22, None)
    FLOAT4E2M1 = ("float4_e2m1fn", 23, None)
    FLOAT8E8M0 = ("float8_e8m0fnu", 24, None)
    UINT2 = ("uint2", 25, None)
    INT2 = ("int2", 26, None)

    def __init__(self, np_name: str, onnx_type: int, vespa_name: str | None) -> None:
        self.np_name = np_name
        self.onnx_type = onnx_type
        self.vespa_name = vespa_name

    @property
    def np_dtype(self) -> np.dtype[Any]:
        return _NP_DTYPES[self]

    @property
    def is_float(self) -> bool:
        return self in _FLOATS

    @property
    def is_int(self) -> bool:
        return self in _INTS

    @property
    def is_signed(self) -> bool:
        return self.is_float or self in _SIGNED_INTS

    @property
    def is_bool(self) -> bool:
        return self is CellType.BOOL

    @property
    def is_narrow(self) -> bool:
        """Types numpy cannot compute in reliably: values are widened before arithmetic."""
        return self in _NARROW

    @staticmethod
    def from_onnx(onnx_type: int) -> CellType:
        try:
            return _BY_ONNX[onnx_type]
        except KeyError:
            raise ValueError(f"unsupported ONNX element type {onnx_type}") from None

    @staticmethod
    def from_numpy(dtype: Any) -> CellType:
        dt = np.dtype(dtype)
        try:
            return _BY_NP[dt]
        except KeyError:
            raise ValueError(f"unsupported numpy dtype {dt}") from None

    @staticmethod
    def from_vespa(name: str) -> CellType:
        for ct in CellType:
            if ct.vespa_name == name:
                return ct
        raise ValueError(f"unknown Vespa cell type '{name}' (expected float, double, bfloat16 or int8)")


def _np_dtype(name: str) -> np.dtype[Any]:
    module = np if hasattr(np, name) and name != "bfloat16" else ml_dtypes
    dt: np.dtype[Any] = np.dtype(getattr(module, name))
    return dt


_NP_DTYPES: dict[CellType, np.dtype[Any]] = {ct: _np_dtype(ct.np_name) for ct in CellType}
_BY_ONNX = {ct.onnx_type: ct for ct in CellType}
_BY_NP = {dt: ct for ct, dt in _NP_DTYPES.items()}
_NARROW = frozenset(
    {
        CellType.FLOAT8E4M3FN,
        CellType.FLOAT8E4M3FNUZ,
        CellType.FLOAT8E5M2,
        CellType.FLOAT8E5M2FNUZ,
        CellType.UINT4,
        CellType.INT4,
        CellType.FLOAT4E2M1,
        CellType.FLOAT8E8M0,
        CellType.UINT2,
        CellType.INT2,
    }
)
_FLOATS = frozenset(
    {
        CellType.FLOAT32,
        CellType.FLOAT64,
        CellType.FLOAT16,
        CellType.BFLOAT16,
        CellType.FLOAT8E4M3FN,
        CellType.FLOAT8E4M3FNUZ,
        CellType.FLOAT8E5M2,
        CellType.FLOAT8E5M2FNUZ,
        CellType.FLOAT4E2M1,
        CellType.FLOAT8E8M0,
    }
)
_SIGNED_INTS = frozenset(
    {CellType.INT8, CellType.INT16, CellType.INT32, CellType.INT64, CellType.INT4, CellType.INT2}
)
_INTS = _SIGNED_INTS | frozenset(
    {CellType.UINT8, CellType.UINT16, CellType.UINT32, CellType.UINT64, CellType.UINT4, CellType.UINT2}
)


def compute_type(ct: CellType) -> CellType:
    """The type arithmetic on `ct` is carried out in by the backends."""
    if ct in (CellType.FLOAT16, CellType.BFLOAT16) or (ct.is_narrow and ct.is_float):
        return CellType.FLOAT32
    if ct.is_narrow:
        return CellType.INT32
    return ct
