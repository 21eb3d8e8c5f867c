"""C++ expressions for the arithmetic of single nodes, in the kernels gpu_engine.render
writes, and which nodes have one (`can_fuse`). No cupy import.

Semantics are those of tensor_ir.reference, node by node:
- every node is computed in its compute type (float for float16/bfloat16 cells) and
  rounded to its own cell type, exactly as the reference stores every intermediate;
- integer arithmetic wraps (done in unsigned), integer division truncates toward zero,
  `mod` follows Python (sign of the divisor), `fmod` C; shifts past the width give 0
  (or -1 for a negative number shifted right), as numpy does;
- casts follow tensor_ir.casts: float -> integer gives 0 for NaN, truncates toward zero
  and saturates at the target's range, on every host (numpy's own astype does not);
- max/min propagate NaN; sigmoid is the stable two-branch form; round is half to even.
The device functions these expressions call (tr_idiv, tr_f2i, ...) are in helpers.cuh.
Cell types the GPU cannot hold (float8, int4, ...) and functions without a rendering
here are refused by `can_fuse`, so the backend never fuses them (it runs them on its
fallback path instead of guessing).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from tensor_ir.casts import int_range
from tensor_ir.dtypes import CellType, compute_type
from tensor_ir.errors import TensorRankError
from tensor_ir.ir import Node, Op
from tensor_ir.passes.fusion import is_identity_reduce


class RenderError(TensorRankError, ValueError):
    """A group holds something this renderer cannot express (can_fuse should have said so)."""


# C type names CuPy uses for each cell type (cupy._core._scalar.get_typename); the NVRTC
# test checks this table against CuPy's own.
C_TYPES: dict[CellType, str] = {
    CellType.FLOAT32: "float",
    CellType.FLOAT64: "double",
    CellType.FLOAT16: "float16",
    CellType.BFLOAT16: "bfloat16",
    CellType.INT8: "signed char",
    CellType.INT16: "short",
    CellType.INT32: "int",
    CellType.INT64: "long long",
    CellType.UINT8: "unsigned char",
    CellType.UINT16: "unsigned short",
    CellType.UINT32: "unsigned int",
    CellType.UINT64: "unsigned long long",
    CellType.BOOL: "bool",
}
GPU_CELL_TYPES = frozenset(C_TYPES)
_HALF = frozenset({CellType.FLOAT16, CellType.BFLOAT16})

_FLOAT_ONLY_UNARY = {
    # fn -> (float function, double function)
    "exp": ("expf", "exp"), "log": ("logf", "log"), "sqrt": ("sqrtf", "sqrt"),
    "sin": ("sinf", "sin"), "cos": ("cosf", "cos"), "tan": ("tanf", "tan"),
    "asin": ("asinf", "asin"), "acos": ("acosf", "acos"), "atan": ("atanf", "atan"),
    "sinh": ("sinhf", "sinh"), "cosh": ("coshf", "cosh"), "tanh": ("tanhf", "tanh"),
    "asinh": ("asinhf", "asinh"), "acosh": ("acoshf", "acosh"), "atanh": ("atanhf", "atanh"),
    "erf": ("erff", "erf"), "floor": ("floorf", "floor"), "ceil": ("ceilf", "ceil"),
    "round": ("rintf", "rint"),
}  # fmt: skip


# ---------------------------------------------------------------- what can be fused


def _gpu_type(ct: CellType) -> bool:
    return ct in GPU_CELL_TYPES


def can_fuse(node: Node) -> bool:
    """Whether a fused kernel rendered here computes `node` exactly as the reference does."""
    if not _gpu_type(node.dtype) or not all(_gpu_type(i.dtype) for i in node.inputs):
        return False
    op = node.op
    if op in (Op.SELECT, Op.BROADCAST, Op.CAST):
        return True
    if op is Op.REDUCE:
        return True
    if op is Op.MAP:
        return _unary(node.attrs["fn"], compute_type(node.inputs[0].dtype), "x") is not None
    if op is Op.JOIN:
        return _binary(node.attrs["fn"], compute_type(node.inputs[0].dtype), "a", "b") is not None
    return False


# ---------------------------------------------------------------- expressions


def _cname(ct: CellType) -> str:
    return C_TYPES[ct]


def compute_ctype(ct: CellType) -> str:
    """C type of the compute type of `ct`."""
    return C_TYPES[compute_type(ct)]


def literal(value: object, ct: CellType) -> str:
    """A C++ literal of compute type `compute_type(ct)` holding `value` exactly."""
    c = compute_type(ct)
    if c.is_bool:
        return "true" if bool(value) else "false"
    if c.is_float:
        v = float(np.asarray(value, dtype=np.float64))
        single = c is CellType.FLOAT32
        if np.isnan(v):
            return "CUDART_NAN_F" if single else "CUDART_NAN"
        if np.isinf(v):
            inf = "CUDART_INF_F" if single else "CUDART_INF"
            return inf if v > 0 else f"(-{inf})"
        text = v.hex() + ("f" if single else "")
        return f"({text})" if text.startswith("-") else text
    v_int = int(np.asarray(value).astype(c.np_dtype))
    name = _cname(c)
    if c is CellType.INT64 and v_int == -(2**63):
        return "(-9223372036854775807LL - 1LL)"
    if c is CellType.INT32 and v_int == -(2**31):
        return "(-2147483647 - 1)"
    suffix = "ULL" if not c.is_signed else "LL"
    return f"(({name}){v_int}{suffix})"


def _wrap_int(c: CellType, op: str, a: str, b: str) -> str:
    return f"(({_cname(c)})((unsigned long long)({a}) {op} (unsigned long long)({b})))"


def _unary(fn: str, c: CellType, x: str) -> str | None:
    """Expression for a unary function on compute type `c` (None: not rendered here)."""
    name = _cname(c)
    f32 = c is CellType.FLOAT32
    if c.is_float:
        if fn in _FLOAT_ONLY_UNARY:
            return f"{_FLOAT_ONLY_UNARY[fn][0 if f32 else 1]}({x})"
        one, zero = ("1.0f", "0.0f") if f32 else ("1.0", "0.0")
        e = "expf" if f32 else "exp"
        table = {
            "neg": f"(-({x}))",
            "abs": f"{'fabsf' if f32 else 'fabs'}({x})",
            "sign": f"(({x}) > {zero} ? {one} : (({x}) < {zero} ? -{one} : (({x}) == {zero} ? {zero} : ({x}))))",
            "reciprocal": f"({one} / ({x}))",
            "sigmoid": f"(({x}) >= {zero} ? {one} / ({one} + {e}(-({x}))) : {e}({x}) / ({one} + {e}({x})))",
            "relu": f"(({x}) > {zero} ? ({x}) : (({x}) != ({x}) ? ({x}) : {zero}))",
            "isnan": f"(bool)isnan({x})",
            "isinf": f"(bool)isinf({x})",
            "isposinf": f"((bool)isinf({x}) && ({x}) > {zero})",
            "isneginf": f"((bool)isinf({x}) && ({x}) < {zero})",
        }
        return table.get(fn)
    if c.is_bool:
        return {
            "not": f"(!({x}))",
            "abs": f"({x})",
            "relu": f"({x})",
            "isnan": "false",
            "isinf": "false",
            "isposinf": "false",
            "isneginf": "false",
        }.get(fn)
    # integers
    table = {
        "neg": f"tr_neg<{name}>({x})",
        "relu": f"(({x}) > ({name})0 ? ({x}) : ({name})0)",
        "bitwise_not": f"(({name})(~({x})))",
        "isnan": "false",
        "isinf": "false",
        "isposinf": "false",
        "isneginf": "false",
    }
    if c.is_signed:
        table["abs"] = f"(({x}) < ({name})0 ? tr_neg<{name}>({x}) : ({x}))"
        table["sign"] = f"(({name})((({x}) > ({name})0) - (({x}) < ({name})0)))"
    else:
        table["abs"] = f"({x})"
        table["sign"] = f"(({name})(({x}) > ({name})0))"
    return table.get(fn)


_COMPARE = {"eq": "==", "ne": "!=", "lt": "<", "le": "<=", "gt": ">", "ge": ">="}


def _binary(fn: str, c: CellType, a: str, b: str) -> str | None:
    """Expression for a binary function on compute type `c` (None: not rendered here)."""
    if fn in _COMPARE:
        return f"(({a}) {_COMPARE[fn]} ({b}))"
    name = _cname(c)
    f32 = c is CellType.FLOAT32
    if c.is_bool:
        return {
            "and": f"(({a}) && ({b}))",
            "or": f"(({a}) || ({b}))",
            "xor": f"(({a}) != ({b}))",
            "max": f"(({a}) || ({b}))",
            "min": f"(({a}) && ({b}))",
        }.get(fn)
    if c.is_float:
        return {
            "add": f"(({a}) + ({b}))",
            "sub": f"(({a}) - ({b}))",
            "mul": f"(({a}) * ({b}))",
            "div": f"(({a}) / ({b}))",
            "pow": f"{'powf' if f32 else 'pow'}({a}, {b})",
            "max": f"((({a}) > ({b}) || ({a}) != ({a})) ? ({a}) : ({b}))",
            "min": f"((({a}) < ({b}) || ({a}) != ({a})) ? ({a}) : ({b}))",
            "mod": f"tr_fmod_py({a}, {b})",
            "fmod": f"{'fmodf' if f32 else 'fmod'}({a}, {b})",
        }.get(fn)
    return {
        "add": _wrap_int(c, "+", a, b),
        "sub": _wrap_int(c, "-", a, b),
        "mul": _wrap_int(c, "*", a, b),
        "div": f"tr_idiv<{name}>({a}, {b})",
        "max": f"(({a}) > ({b}) ? ({a}) : ({b}))",
        "min": f"(({a}) < ({b}) ? ({a}) : ({b}))",
        "mod": f"tr_imod<{name}>({a}, {b})",
        "fmod": f"tr_ifmod<{name}>({a}, {b})",
        "bitwise_and": f"(({name})(({a}) & ({b})))",
        "bitwise_or": f"(({name})(({a}) | ({b})))",
        "bitwise_xor": f"(({name})(({a}) ^ ({b})))",
        "shift_left": f"tr_shl<{name}>({a}, {b})",
        "shift_right": f"tr_shr<{name}>({a}, {b})",
    }.get(fn)


def _float_to_int(to: CellType, x: str) -> str:
    """tensor_ir.casts' float -> integer rule (NaN 0, truncation, saturation) in CUDA."""
    lo, hi = int_range(to)
    return f"tr_f2i<{_cname(to)}>((double)({x}), {lo}.0, {hi + 1}.0, {literal(lo, to)}, {literal(hi, to)})"


def _cast(src: CellType, to: CellType, x: str) -> str:
    """Expression converting compute value `x` of cell type `src` to the compute type of
    `to` (rounding to a half type's cells happens afterwards, as for every node)."""
    cs, ct = compute_type(src), compute_type(to)
    if to.is_bool:
        return f"(({x}) != 0)"
    if src.is_bool:
        return f"(({x}) ? ({_cname(ct)})1 : ({_cname(ct)})0)"
    if cs.is_float and ct.is_int:
        return _float_to_int(to, x)
    if cs is CellType.FLOAT64 and to is CellType.FLOAT16:
        # numpy rounds float64 -> float16 once; going through float would round twice
        return f"float(float16(__double2half({x})))"
    return f"(({_cname(ct)})({x}))"


def round_to_cells(ct: CellType, expr: str) -> str:
    """Round a compute value to the cells of `ct` (the reference stores every node in its
    own cell type)."""
    if ct in _HALF:
        return f"float({C_TYPES[ct]}({expr}))"
    return expr


def load(ct: CellType, name: str) -> str:
    return f"float({name})" if ct in _HALF else name


def store(ct: CellType, expr: str) -> str:
    return f"{C_TYPES[ct]}({expr})" if ct in _HALF else expr


def node_expression(node: Node, args: Sequence[str]) -> str:
    """The value of `node` in its compute type, rounded to its cells, given its operands'
    expressions `args`."""
    op = node.op
    src = node.inputs[0].dtype
    expr: str | None
    if op is Op.MAP:
        expr = _unary(node.attrs["fn"], compute_type(src), args[0])
    elif op is Op.JOIN:
        expr = _binary(node.attrs["fn"], compute_type(src), args[0], args[1])
    elif op is Op.SELECT:
        expr = f"(({args[0]}) ? ({args[1]}) : ({args[2]}))"
    elif op is Op.CAST:
        expr = _cast(src, node.dtype, args[0])
    elif op is Op.BROADCAST or is_identity_reduce(node):
        expr = args[0]
    else:
        expr = None
    if expr is None:
        raise RenderError(f"cannot render {node!r} in a fused kernel")
    rounded = op is Op.CAST and compute_type(src) is CellType.FLOAT64 and node.dtype is CellType.FLOAT16
    if op in (Op.MAP, Op.JOIN, Op.CAST) and node.dtype in _HALF and not rounded:
        expr = round_to_cells(node.dtype, expr)
    return expr
