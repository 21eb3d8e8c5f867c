"""Cell-type conversion, defined one way for every host and both backends.

C leaves a float -> integer conversion undefined when the value is out of the target's
range, and numpy then returns whatever the host's SIMD path gives: -1.0 cast to uint16 is
65535 on one machine and 0 on another. ONNX leaves the same cases undefined. So every
conversion a program can make is spelled out here, and gpu_engine.render emits the same
rules into CUDA:

- float -> int8 ... int64, uint8 ... uint64: NaN is 0; any other value is truncated toward
  zero and saturated at the target's range (+inf is the maximum, -inf the minimum; a
  negative value into an unsigned type is 0).
- float -> int4, uint4, int2, uint2: as into int64 (NaN 0, truncation, saturation), then
  the low bits are kept (two's complement), as for integer sources. onnxruntime agrees
  for whole numbers; it rounds fractions where we truncate.
- integer -> integer: the low bits, two's complement ("discard higher bits and
  reinterpret", ONNX's rule).
- anything -> bool: x != 0 (NaN is true); bool -> number: 0 or 1.
- -> float: IEEE round-to-nearest-even, +-inf beyond the range. float8 targets with
  `saturate` clip to their largest finite value first (ONNX's table); float8e8m0 rounds
  its exponent as `round_mode` says.

Vespa's ranking expressions convert to bfloat16 differently: a double becomes a float
(nearest), and the float keeps its upper 16 bits (truncation toward zero, vespalib's
BFloat16). `truncate_to_bfloat16` does that on the host; the expression compiler builds
the same rule from IR nodes (tensor_ir.expr.values), so the IR's own cast stays ONNX's.
"""

from __future__ import annotations

from typing import Any

import ml_dtypes
import numpy as np
import numpy.typing as npt

from tensor_ir.dtypes import CellType, compute_type

Array = npt.NDArray[Any]

SATURATING_FLOAT8 = frozenset(
    {CellType.FLOAT8E4M3FN, CellType.FLOAT8E4M3FNUZ, CellType.FLOAT8E5M2, CellType.FLOAT8E5M2FNUZ}
)
# bits of the integer types ml_dtypes adds: conversions into them keep these low bits
LOW_BIT_INTS = {CellType.INT4: 4, CellType.UINT4: 4, CellType.INT2: 2, CellType.UINT2: 2}


def widen(value: Array, ct: CellType) -> Array:
    """`value` in the type arithmetic on `ct` is carried out in (dtypes.compute_type)."""
    wide = compute_type(ct)
    return value if wide is ct else value.astype(wide.np_dtype)


def int_range(ct: CellType) -> tuple[int, int]:
    """The smallest and largest value of an integer cell type."""
    if ct in LOW_BIT_INTS:
        bits = LOW_BIT_INTS[ct]
        return (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if ct.is_signed else (0, (1 << bits) - 1)
    info = np.iinfo(ct.np_dtype)
    return int(info.min), int(info.max)


def float_to_int(value: Array, to: CellType) -> Array:
    """Float cells as integers of `to`: NaN 0, truncated toward zero, saturated (module doc)."""
    f = np.trunc(np.where(np.isnan(value), 0.0, value.astype(np.float64)))  # exact for every float type
    if to in LOW_BIT_INTS:
        return low_bits(_saturate(f, CellType.INT64), to)
    return _saturate(f, to)


def _saturate(f: Array, to: CellType) -> Array:
    lo, hi = int_range(to)
    # both bounds exact in float64: the minimum is 0 or -2^(bits-1), and hi + 1 a power of two
    below, above = f < float(lo), f >= float(hi + 1)
    dtype = to.np_dtype
    out: Array = np.where(below | above, 0.0, f).astype(dtype)  # every converted value is in range
    out[below] = dtype.type(lo)
    out[above] = dtype.type(hi)
    return out


def low_bits(value: Array, to: CellType) -> Array:
    """Integers as int4/uint4/int2/uint2, keeping their low bits (two's complement)."""
    bits = LOW_BIT_INTS[to]
    v = value.view(np.int64) if value.dtype == np.uint64 else value.astype(np.int64)
    v = v & ((1 << bits) - 1)
    if to.is_signed:
        half = 1 << (bits - 1)
        v = (v ^ half) - half
    return v.astype(to.np_dtype)  # in range: exact


def cast_cells(x: Array, src: CellType, to: CellType, saturate: bool = True, round_mode: str = "up") -> Array:
    """`x` (cells of `src`) converted to cells of `to`, by the rules of the module doc."""
    if to.is_bool:
        return np.asarray(widen(x, src) != 0)
    with np.errstate(all="ignore"):
        if src.is_float and to.is_int:
            return float_to_int(widen(x, src), to)
        value = widen(x, src) if src.is_narrow else x
        if to in LOW_BIT_INTS:
            return low_bits(value, to)
        if to is CellType.FLOAT8E8M0:
            return _to_e8m0(value.astype(np.float32), saturate, round_mode)
        if to in SATURATING_FLOAT8 and saturate and not src.is_bool:
            # clip before rounding: values that would round past the largest finite
            # value (and +-inf) become +-max; NaN stays NaN
            fi = ml_dtypes.finfo(to.np_dtype)  # type: ignore[no-untyped-call]
            if value.dtype.kind != "f":
                value = value.astype(np.float64)  # exact for every int up to 32 bits
            elif value.dtype.itemsize < 4:
                value = value.astype(np.float32)
            value = np.clip(value, float(fi.min), float(fi.max))
        return np.asarray(value).astype(to.np_dtype)


def truncate_to_bfloat16(x: Array) -> Array:
    """Vespa's bfloat16 conversion (module doc): via float, then the low 16 bits dropped.
    NaN stays NaN (dropping the bits of a NaN whose payload is all low bits would make it
    an infinity)."""
    with np.errstate(all="ignore"):
        f = np.asarray(x).astype(np.float32)
    kept = (f.view(np.uint32) & np.uint32(0xFFFF0000)).view(np.float32)
    out: Array = np.where(np.isnan(f), f, kept).astype(ml_dtypes.bfloat16)
    return out


_E8M0_MIN = 2.0**-127
_E8M0_MAX = 2.0**127


def _to_e8m0(f: Array, saturate: bool, round_mode: str) -> Array:
    """float32 -> float8e8m0, the power of two 2^(code - 127) for codes 0..254 (255 is NaN).

    Inside [2^-127, 2^127] the value's binary exponent is rounded up, down, or to the
    nearer power (halfway, 1.5 * 2^e, goes up). Outside it (zero, negatives and subnormals
    below 2^-127 included) a saturating cast gives the nearer end and a non-saturating one
    NaN, as the spec's table and onnxruntime have it (the ONNX reference reads exponent
    bits instead, and gets subnormals and out-of-range non-saturating casts wrong)."""
    x = f.astype(np.float64)
    mant, exp = np.frexp(np.where((x > 0) & np.isfinite(x), x, 1.0))  # x = mant * 2^exp, mant in [0.5, 1)
    e = exp.astype(np.int64) - 1
    m = mant * 2.0
    if round_mode == "up":
        e += m > 1.0
    elif round_mode == "nearest":
        e += m >= 1.5
    code = e + 127
    low = ~(x >= _E8M0_MIN)  # NaN too; overridden below
    high = x > _E8M0_MAX
    if saturate:
        code = np.where(low, 0, np.where(high, 254, np.minimum(code, 254)))
    else:
        code = np.where(low | high | (code > 254), 255, code)
    code = np.where(np.isnan(x), 255, code)
    result: Array = code.astype(np.uint8).view(ml_dtypes.float8_e8m0fnu)
    return result
