"""Render fused groups as the source strings of CuPy kernels. No cupy import: the sources
are plain strings, tested (golden text, NVRTC compilation) on machines without a GPU.

A group without a reduction becomes an ElementwiseKernel, a group with one a
ReductionKernel. Both put the group's arithmetic into one `__device__` function in the
preamble (`<name>_map`), because a ReductionKernel's map expression must be a single
expression; the post-map chain of a reduction goes into `<name>_post`.

Semantics are those of tensor_ir.reference, node by node:
- every node is computed in its compute type (float for float16/bfloat16 cells) and
  rounded to its own cell type, exactly as the reference stores every intermediate;
- integer arithmetic wraps (done in unsigned), integer division truncates toward zero,
  `mod` follows Python (sign of the divisor), `fmod` C; shifts past the width give 0
  (or -1 for a negative number shifted right), as numpy does;
- float -> integer casts follow numpy on x86-64 (truncation; NaN and out-of-range values
  become the "integer indefinite" value, narrow targets keep the low bits of an int32);
- max/min propagate NaN; sigmoid is the stable two-branch form; round is half to even.
Cell types the GPU cannot hold (float8, int4, ...) and functions without a rendering
here are refused by `can_fuse`, so the backend never fuses them (it runs them on its
fallback path instead of guessing).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from tensor_ir.dtypes import CellType, compute_type
from tensor_ir.ir import Node, Op
from tensor_ir.passes.fusion import FusedGroup, is_identity_reduce, is_immediate

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

HELPERS = r"""#ifndef TENSORRANK_HELPERS
#define TENSORRANK_HELPERS
// float -> int as numpy does on x86-64: truncate; NaN and out-of-range give the
// "integer indefinite" value; unsigned targets go through the signed conversion
__device__ __forceinline__ int tr_cvt32(double x) {
  return (x >= -2147483648.0 && x < 2147483648.0) ? (int)x : (-2147483647 - 1);
}
__device__ __forceinline__ long long tr_cvt64(double x) {
  return (x >= -9223372036854775808.0 && x < 9223372036854775808.0) ? (long long)x
                                                                     : (-9223372036854775807LL - 1LL);
}
__device__ __forceinline__ unsigned int tr_cvtu32(double x) {
  return x >= 2147483648.0 ? ((unsigned int)tr_cvt32(x - 2147483648.0) ^ 0x80000000u)
                           : (unsigned int)tr_cvt32(x);
}
__device__ __forceinline__ unsigned long long tr_cvtu64(double x) {
  return x >= 9223372036854775808.0
             ? ((unsigned long long)tr_cvt64(x - 9223372036854775808.0) ^ 0x8000000000000000ULL)
             : (unsigned long long)tr_cvt64(x);
}
template <typename T> __device__ __forceinline__ bool tr_signed() { return (T)-1 < (T)0; }
template <typename T> __device__ __forceinline__ T tr_neg(T a) {
  return (T)(0ULL - (unsigned long long)a);
}
// truncating division (reference._int_div, which follows numpy's floor_divide at b == 0)
template <typename T> __device__ __forceinline__ T tr_idiv(T a, T b) {
  if (b == (T)0) return (T)((tr_signed<T>() && a < (T)0) ? 1 : 0);
  if (tr_signed<T>() && b == (T)-1) return tr_neg<T>(a);
  return (T)(a / b);
}
// Python's modulo: the sign of the divisor; 0 for a zero divisor (numpy)
template <typename T> __device__ __forceinline__ T tr_imod(T a, T b) {
  if (b == (T)0 || (tr_signed<T>() && b == (T)-1)) return (T)0;
  T r = (T)(a % b);
  if (r != (T)0 && ((r < (T)0) != (b < (T)0))) r = (T)(r + b);
  return r;
}
template <typename T> __device__ __forceinline__ T tr_ifmod(T a, T b) {
  if (b == (T)0 || (tr_signed<T>() && b == (T)-1)) return (T)0;
  return (T)(a % b);
}
__device__ __forceinline__ float tr_fmod_py(float a, float b) {
  float r = fmodf(a, b);
  if (r != 0.0f) {
    if ((b < 0.0f) != (r < 0.0f)) r += b;
  } else {
    r = copysignf(0.0f, b);
  }
  return r;
}
__device__ __forceinline__ double tr_fmod_py(double a, double b) {
  double r = fmod(a, b);
  if (r != 0.0) {
    if ((b < 0.0) != (r < 0.0)) r += b;
  } else {
    r = copysign(0.0, b);
  }
  return r;
}
// numpy's shifts: a count at or past the width (or negative) gives 0, or -1 for a
// negative number shifted right
template <typename T> __device__ __forceinline__ T tr_shl(T a, T b) {
  return ((unsigned long long)b < sizeof(T) * 8) ? (T)((unsigned long long)a << (unsigned long long)b) : (T)0;
}
template <typename T> __device__ __forceinline__ T tr_shr(T a, T b) {
  if ((unsigned long long)b < sizeof(T) * 8) return (T)(a >> b);
  return (T)((a < (T)0) ? -1 : 0);
}
#endif  // TENSORRANK_HELPERS
"""


NVRTC_OPTIONS = ("--fmad=false",)


class RenderError(ValueError):
    """A group holds something this renderer cannot express (can_fuse should have said so)."""


@dataclass(frozen=True)
class KernelSource:
    """What CuPy's kernel constructors take, plus what the caller needs to call it."""

    kind: str  # "elementwise" | "reduction"
    name: str
    in_params: str
    out_params: str
    preamble: str  # HELPERS + `body`
    body: str  # the group's own code (golden tests compare this)
    leaf_types: tuple[CellType, ...]
    out_type: CellType
    # ElementwiseKernel
    operation: str = ""
    # ReductionKernel
    map_expr: str = ""
    reduce_expr: str = ""
    post_map_expr: str = ""
    identity: str = ""
    reduce_type: str = ""
    # a scalar argument appended to reductions with one input, so that CuPy does not
    # switch them to its CUB path (which reads only `in0` and renames by substring)
    extra_scalar: bool = False
    # NVRTC options on top of CuPy's: no contraction of a*b+c into one FMA, so every node
    # is rounded on its own as in the reference (and results do not depend on inlining)
    options: tuple[str, ...] = NVRTC_OPTIONS

    def cupy_args(self) -> dict[str, Any]:
        if self.kind == "elementwise":
            return {
                "in_params": self.in_params,
                "out_params": self.out_params,
                "operation": self.operation,
                "name": self.name,
                "preamble": self.preamble,
                "options": self.options,
            }
        return {
            "options": self.options,
            "in_params": self.in_params,
            "out_params": self.out_params,
            "map_expr": self.map_expr,
            "reduce_expr": self.reduce_expr,
            "post_map_expr": self.post_map_expr,
            "identity": self.identity,
            "name": self.name,
            "reduce_type": self.reduce_type,
            "preamble": self.preamble,
        }


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


def _ctype(ct: CellType) -> str:
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


_FLOAT_TO_INT = {
    CellType.INT8: "((signed char)tr_cvt32({x}))",
    CellType.INT16: "((short)tr_cvt32({x}))",
    CellType.INT32: "tr_cvt32({x})",
    CellType.INT64: "tr_cvt64({x})",
    CellType.UINT8: "((unsigned char)tr_cvt32({x}))",
    CellType.UINT16: "((unsigned short)tr_cvt32({x}))",
    CellType.UINT32: "tr_cvtu32({x})",
    CellType.UINT64: "tr_cvtu64({x})",
}


def _cast(src: CellType, to: CellType, x: str) -> str:
    """Expression converting compute value `x` of cell type `src` to the compute type of
    `to` (rounding to a half type's cells happens afterwards, as for every node)."""
    cs, ct = compute_type(src), compute_type(to)
    if to.is_bool:
        return f"(({x}) != 0)"
    if src.is_bool:
        return f"(({x}) ? ({_cname(ct)})1 : ({_cname(ct)})0)"
    if cs.is_float and ct.is_int:
        return _FLOAT_TO_INT[to].format(x=x)
    if cs is CellType.FLOAT64 and to is CellType.FLOAT16:
        # numpy rounds float64 -> float16 once; going through float would round twice
        return f"float(float16(__double2half({x})))"
    return f"(({_cname(ct)})({x}))"


def _round(ct: CellType, expr: str) -> str:
    """Round a compute value to the cells of `ct` (the reference stores every node in its
    own cell type)."""
    if ct in _HALF:
        return f"float({C_TYPES[ct]}({expr}))"
    return expr


def _load(ct: CellType, name: str) -> str:
    return f"float({name})" if ct in _HALF else name


def _store(ct: CellType, expr: str) -> str:
    return f"{C_TYPES[ct]}({expr})" if ct in _HALF else expr


# ---------------------------------------------------------------- groups


class _Body:
    """Statements of one device function: one local per node, in evaluation order."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.names: dict[int, str] = {}
        self.types: set[CellType] = set()

    def operand(self, node: Node) -> str:
        if id(node) in self.names:
            return self.names[id(node)]
        if is_immediate(node):
            return literal(node.value.reshape(-1)[0], node.dtype)
        raise RenderError(f"{node!r} is neither a leaf, an immediate nor computed earlier in the group")

    def bind(self, node: Node, expr: str) -> str:
        name = f"v{len(self.lines)}"
        self.types.add(node.dtype)
        self.lines.append(f"  const {_ctype(node.dtype)} {name} = {expr};")
        self.names[id(node)] = name
        return name

    def node(self, node: Node) -> str:
        args = [self.operand(i) for i in node.inputs]
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
            expr = _round(node.dtype, expr)
        return self.bind(node, expr)


def _includes(types: set[CellType]) -> str:
    # CuPy includes these only for the cell types of a kernel's arguments; an inner node
    # of a half type needs them too (both headers have #pragma once)
    out = ""
    if CellType.FLOAT16 in types:
        out += '#include "cupy/float16.cuh"\n'
    if CellType.BFLOAT16 in types:
        out += '#include "cupy/bfloat16.cuh"\n'
    return out


def _params(leaves: Sequence[Node]) -> tuple[str, str]:
    decl = ", ".join(f"{leaf.dtype.np_name} a{k}" for k, leaf in enumerate(leaves))
    fn_args = ", ".join(f"const {C_TYPES[leaf.dtype]} &a{k}" for k, leaf in enumerate(leaves))
    return decl, fn_args


def _finish(kind: str, body: str, salt: str = "") -> tuple[str, str]:
    # the name identifies the whole kernel: for reductions the aggregation lives outside
    # the body (reduce_expr, identity), so it must be part of the digest too
    digest = hashlib.blake2b((body + "\0" + salt).encode(), digest_size=8).hexdigest()
    name = f"tr_{'ew' if kind == 'elementwise' else 'red'}_{digest}"
    return name, body.replace("KNAME", name)


def _check(group: FusedGroup) -> None:
    for n in group.nodes:
        if not can_fuse(n):
            raise RenderError(f"cannot render {n!r} in a fused kernel")
    for leaf in group.leaves:
        if leaf.dtype not in GPU_CELL_TYPES:
            raise RenderError(f"a {leaf.dtype.np_name} value cannot be read by a GPU kernel")


def render_group(group: FusedGroup) -> KernelSource:
    _check(group)
    if group.reduce is None:
        return _render_elementwise(group)
    return _render_reduction(group)


def _render_elementwise(group: FusedGroup) -> KernelSource:
    b = _Body()
    for k, leaf in enumerate(group.leaves):
        b.names[id(leaf)] = _load(leaf.dtype, f"a{k}")
        b.types.add(leaf.dtype)
    last = ""
    for n in group.pre:
        last = b.node(n)
    out_t = group.root.dtype
    decl, fn_args = _params(group.leaves)
    args = ", ".join(f"a{k}" for k in range(len(group.leaves)))
    body = (
        _includes(b.types)
        + f"__device__ __forceinline__ {C_TYPES[out_t]} KNAME_map({fn_args}) {{\n"
        + "\n".join(b.lines)
        + f"\n  return {_store(out_t, last)};\n}}\n"
    )
    name, body = _finish("elementwise", body)
    return KernelSource(
        kind="elementwise",
        name=name,
        in_params=decl,
        out_params=f"{out_t.np_name} out",
        operation=f"out = {name}_map({args});",
        preamble=HELPERS + body,
        body=body,
        leaf_types=tuple(leaf.dtype for leaf in group.leaves),
        out_type=out_t,
    )


_AGG_EXPR: dict[str, Callable[[CellType], str]] = {
    "sum": lambda c: "a + b",
    "prod": lambda c: "a * b",
    "max": lambda c: (
        "(a > b || a != a) ? a : b" if c.is_float else ("a || b" if c.is_bool else "a > b ? a : b")
    ),
    "min": lambda c: (
        "(a < b || a != a) ? a : b" if c.is_float else ("a && b" if c.is_bool else "a < b ? a : b")
    ),
}


def _accumulator(agg: str, c: CellType) -> str:
    if agg in ("sum", "prod") and c.is_int:
        # integer sums and products wrap; unsigned arithmetic does so without UB, and the
        # low bits are those of the cell type's own wrapping arithmetic
        return "unsigned long long"
    return _cname(c)


def _identity(agg: str, c: CellType) -> str:
    if agg == "sum":
        return "0"
    if agg == "prod":
        return "1"
    if c.is_float:
        return literal(-np.inf if agg == "max" else np.inf, c)
    if c.is_bool:
        return "false" if agg == "max" else "true"
    info = np.iinfo(c.np_dtype)
    return literal(info.min if agg == "max" else info.max, c)


def _render_reduction(group: FusedGroup) -> KernelSource:
    red = group.reduce
    assert red is not None
    agg = red.attrs["agg"]
    src_t = red.inputs[0].dtype
    c = compute_type(src_t)
    acc = _accumulator(agg, c)

    pre = _Body()
    for k, leaf in enumerate(group.leaves):
        pre.names[id(leaf)] = _load(leaf.dtype, f"a{k}")
        pre.types.add(leaf.dtype)
    value = pre.operand(red.inputs[0]) if not group.pre else ""
    for n in group.pre:
        value = pre.node(n)

    post = _Body()
    post.types.add(red.dtype)
    red_value = _round(red.dtype, f"(({_ctype(red.dtype)})(r))")
    post.bind(red, red_value)
    last = post.names[id(red)]
    for n in group.post:
        last = post.node(n)
    out_t = group.root.dtype

    decl, fn_args = _params(group.leaves)
    extra_scalar = len(group.leaves) < 2
    if extra_scalar:
        decl += ", int32 _tr_nocub"
    args = ", ".join(f"a{k}" for k in range(len(group.leaves)))
    body = (
        _includes(pre.types | post.types)
        + f"__device__ __forceinline__ {_cname(c)} KNAME_map({fn_args}) {{\n"
        + "".join(line + "\n" for line in pre.lines)
        + f"  return {value};\n}}\n"
        + f"__device__ __forceinline__ {C_TYPES[out_t]} KNAME_post(const {acc} &r) {{\n"
        + "\n".join(post.lines)
        + f"\n  return {_store(out_t, last)};\n}}\n"
    )
    name, body = _finish("reduction", body, f"{_AGG_EXPR[agg](c)}|{_identity(agg, c)}|{acc}")
    return KernelSource(
        kind="reduction",
        name=name,
        in_params=decl,
        out_params=f"{out_t.np_name} out",
        map_expr=f"{name}_map({args})",
        reduce_expr=_AGG_EXPR[agg](c),
        post_map_expr=f"out = {name}_post(a)",
        identity=_identity(agg, c),
        reduce_type=acc,
        preamble=HELPERS + body,
        body=body,
        leaf_types=tuple(leaf.dtype for leaf in group.leaves),
        out_type=out_t,
        extra_scalar=extra_scalar,
    )
