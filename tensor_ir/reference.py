"""Reference semantics of every primitive, in numpy.

`eval_node` computes one node from its operands' values. A value of a per-document node
carries a leading document axis; all other values do not. This module is the single
definition of what each primitive means: constant folding uses it, the numpy backend
runs it, and the GPU backend is tested against it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt

from tensor_ir.casts import cast_cells
from tensor_ir.casts import widen as _wide
from tensor_ir.errors import EvaluationError
from tensor_ir.ir import Node, Op

Array = npt.NDArray[Any]
Kernel = Callable[[Node, list[Array], int], Array]


# ---------------------------------------------------------------- math helpers


def _erf(x: Array) -> Array:
    """erf without scipy: a Taylor series near 0 and Numerical Recipes' erfc beyond.

    Relative error below 1e-7 everywhere, which float32 models need (Gelu).
    """
    xf = x.astype(np.float64)
    ax = np.abs(xf)
    small = ax < 1.0
    x2 = xf * xf
    # Taylor: erf(x) = 2/sqrt(pi) * sum_n (-1)^n x^(2n+1) / (n! (2n+1))
    term = xf.copy()
    acc = xf.copy()
    for n in range(1, 16):
        term = term * (-x2) / n
        acc = acc + term / (2 * n + 1)
    series = acc * (2.0 / np.sqrt(np.pi))
    t = 1.0 / (1.0 + 0.5 * ax)
    poly = -ax * ax - 1.26551223 + t * (1.00002368 + t * (0.37409196 + t * (0.09678418 + t * (
        -0.18628806 + t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 + t * (
            -0.82215223 + t * 0.17087277))))))))
    erfc = t * np.exp(poly)
    tail = np.sign(xf) * (1.0 - erfc)
    return np.where(small, series, tail)


def _sigmoid(x: Array) -> Array:
    with np.errstate(over="ignore"):
        e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1 / (1 + e), e / (1 + e)).astype(x.dtype)


def _int_div(a: Array, b: Array) -> Array:
    """Integer division truncating toward zero (C semantics, as onnxruntime)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        q = np.floor_divide(a, b)
        r = a - q * b
    fix = (r != 0) & ((a < 0) != (b < 0))
    return np.where(fix, q + 1, q).astype(a.dtype)


_UNARY: dict[str, Callable[[Array], Array]] = {
    "neg": np.negative,
    "abs": np.abs,
    "sign": np.sign,
    "exp": np.exp,
    "log": np.log,
    "sqrt": np.sqrt,
    "reciprocal": np.reciprocal,
    "sin": np.sin,
    "cos": np.cos,
    "tan": np.tan,
    "asin": np.arcsin,
    "acos": np.arccos,
    "atan": np.arctan,
    "sinh": np.sinh,
    "cosh": np.cosh,
    "tanh": np.tanh,
    "asinh": np.arcsinh,
    "acosh": np.arccosh,
    "atanh": np.arctanh,
    "sigmoid": _sigmoid,
    "relu": lambda x: np.maximum(x, np.zeros((), x.dtype)),
    "erf": _erf,
    "floor": np.floor,
    "ceil": np.ceil,
    "round": np.round,
    "not": np.logical_not,
    "bitwise_not": np.invert,
    "isnan": np.isnan,
    "isinf": np.isinf,
    "isposinf": np.isposinf,
    "isneginf": np.isneginf,
}


def _div(a: Array, b: Array) -> Array:
    if np.issubdtype(a.dtype, np.integer):
        return _int_div(a, b)
    return np.true_divide(a, b)


def _mod(a: Array, b: Array) -> Array:
    return np.mod(a, b)


_BINARY: dict[str, Callable[[Array, Array], Array]] = {
    "add": np.add,
    "sub": np.subtract,
    "mul": np.multiply,
    "div": _div,
    "pow": np.power,
    "max": np.maximum,
    "min": np.minimum,
    "mod": _mod,
    "fmod": np.fmod,
    "eq": np.equal,
    "ne": np.not_equal,
    "lt": np.less,
    "le": np.less_equal,
    "gt": np.greater,
    "ge": np.greater_equal,
    "and": np.logical_and,
    "or": np.logical_or,
    "xor": np.logical_xor,
    "bitwise_and": np.bitwise_and,
    "bitwise_or": np.bitwise_or,
    "bitwise_xor": np.bitwise_xor,
    "shift_left": np.left_shift,
    "shift_right": np.right_shift,
}


# ---------------------------------------------------------------- document-axis helpers


def align(value: Array, node: Node, out_rank: int) -> Array:
    """Give a per-document operand the output's per-document rank (1s after the doc axis)
    so numpy's right-aligned broadcasting pairs per-document axes correctly."""
    if node.per_document and node.rank < out_rank:
        return value.reshape((value.shape[0],) + (1,) * (out_rank - node.rank) + value.shape[1:])
    return value


def with_doc_axis(value: Array, node: Node, n: int) -> Array:
    """A view of `value` with a leading document axis (broadcast when `node` has none)."""
    if node.per_document:
        return value
    return np.broadcast_to(value, (n, *value.shape))


def _off(node: Node) -> int:
    return 1 if node.per_document else 0


def _n(args: list[Array], node: Node) -> int:
    for a, i in zip(args, node.inputs, strict=True):
        if i.per_document:
            return int(a.shape[0])
    return 1


# ---------------------------------------------------------------- kernels


def _k_map(node: Node, args: list[Array], n: int) -> Array:
    (x,) = args
    fn = node.attrs["fn"]
    with np.errstate(all="ignore"):
        r = _UNARY[fn](_wide(x, node.inputs[0].dtype))
    return np.asarray(r).astype(node.dtype.np_dtype, copy=False)


def _k_join(node: Node, args: list[Array], n: int) -> Array:
    a, b = (align(v, i, node.rank) for v, i in zip(args, node.inputs, strict=True))
    ct = node.inputs[0].dtype
    with np.errstate(all="ignore"):
        r = _BINARY[node.attrs["fn"]](_wide(a, ct), _wide(b, ct))
    return np.asarray(r).astype(node.dtype.np_dtype, copy=False)


def _k_select(node: Node, args: list[Array], n: int) -> Array:
    c, a, b = (align(v, i, node.rank) for v, i in zip(args, node.inputs, strict=True))
    return np.asarray(np.where(c, a, b)).astype(node.dtype.np_dtype, copy=False)


def _k_cast(node: Node, args: list[Array], n: int) -> Array:
    """ONNX Cast, by the rules of tensor_ir.casts (the same on every host)."""
    (x,) = args
    return cast_cells(x, node.inputs[0].dtype, node.dtype, bool(node.attrs["saturate"]),
                      str(node.attrs.get("round_mode", "up")))


def _k_reduce(node: Node, args: list[Array], n: int) -> Array:
    (x,) = args
    src = node.inputs[0]
    off = _off(src)
    axes = tuple(a + off for a in node.attrs["axes"])
    agg = node.attrs["agg"]
    v = _wide(x, src.dtype)
    kd = bool(node.attrs["keepdims"])
    if agg == "sum":
        r = np.sum(v, axis=axes, keepdims=kd)
    elif agg == "prod":
        r = np.prod(v, axis=axes, keepdims=kd)
    elif agg == "max":
        init = -np.inf if v.dtype.kind == "f" else (False if v.dtype.kind == "b" else np.iinfo(v.dtype).min)
        r = np.max(v, axis=axes, keepdims=kd, initial=init)
    else:
        init = np.inf if v.dtype.kind == "f" else (True if v.dtype.kind == "b" else np.iinfo(v.dtype).max)
        r = np.min(v, axis=axes, keepdims=kd, initial=init)
    return np.asarray(r).astype(node.dtype.np_dtype, copy=False)


def _k_arg_reduce(node: Node, args: list[Array], n: int) -> Array:
    (x,) = args
    src = node.inputs[0]
    ax = node.attrs["axis"] + _off(src)
    v = _wide(x, src.dtype)
    f = np.argmax if node.attrs["agg"] == "argmax" else np.argmin
    if node.attrs["last"]:
        r = v.shape[ax] - 1 - f(np.flip(v, axis=ax), axis=ax)
    else:
        r = f(v, axis=ax)
    r = np.asarray(r, dtype=np.int64)
    return np.expand_dims(r, ax) if node.attrs["keepdims"] else r


def _k_scan(node: Node, args: list[Array], n: int) -> Array:
    (x,) = args
    src = node.inputs[0]
    ax = node.attrs["axis"] + _off(src)
    v = _wide(x, src.dtype)
    if node.attrs["reverse"]:
        v = np.flip(v, axis=ax)
    f = np.cumsum if node.attrs["agg"] == "sum" else np.cumprod
    r = f(v, axis=ax, dtype=v.dtype)
    if node.attrs["exclusive"]:
        ident = 0 if node.attrs["agg"] == "sum" else 1
        pad_width = [(0, 0)] * r.ndim
        pad_width[ax] = (1, 0)
        r = np.pad(r, pad_width, constant_values=ident)
        r = np.take(r, np.arange(v.shape[ax]), axis=ax)
    if node.attrs["reverse"]:
        r = np.flip(r, axis=ax)
    return np.ascontiguousarray(r).astype(node.dtype.np_dtype, copy=False)


def _k_matmul(node: Node, args: list[Array], n: int) -> Array:
    a, b = args
    ia, ib = node.inputs
    ct = ia.dtype
    a, b = _wide(a, ct), _wide(b, ct)
    if not ib.per_document and ib.rank == 2:
        # one large GEMM instead of a batch of small ones
        lead = a.shape[:-1]
        r = (a.reshape(-1, a.shape[-1]) @ b).reshape(*lead, b.shape[-1])
    else:
        out_rank = node.rank
        r = np.matmul(align(a, ia, out_rank), align(b, ib, out_rank))
    return np.asarray(r).astype(node.dtype.np_dtype, copy=False)


def _k_reshape(node: Node, args: list[Array], n: int) -> Array:
    (x,) = args
    lead = (x.shape[0],) if node.per_document else ()
    return x.reshape(lead + node.shape)


def _k_transpose(node: Node, args: list[Array], n: int) -> Array:
    (x,) = args
    perm = tuple(node.attrs["perm"])
    if node.per_document:
        perm = (0, *(p + 1 for p in perm))
    return np.transpose(x, perm)


def _k_broadcast(node: Node, args: list[Array], n: int) -> Array:
    (x,) = args
    src = node.inputs[0]
    if node.per_document:
        return np.broadcast_to(align(x, src, node.rank), (x.shape[0], *node.shape))
    return np.broadcast_to(x, node.shape)


def _k_concat(node: Node, args: list[Array], n: int) -> Array:
    off = _off(node)
    if node.per_document:
        n = _n(args, node)
        args = [with_doc_axis(a, i, n) for a, i in zip(args, node.inputs, strict=True)]
    return np.concatenate(args, axis=node.attrs["axis"] + off)


def _k_slice(node: Node, args: list[Array], n: int) -> Array:
    (x,) = args
    idx: list[slice] = [slice(None)] if node.per_document else []
    for s0, s1, st in zip(node.attrs["starts"], node.attrs["stops"], node.attrs["steps"], strict=True):
        stop = None if (st < 0 and s1 < 0) else s1
        idx.append(slice(s0, stop, st))
    return x[tuple(idx)]


_NP_PAD: dict[str, Any] = {"constant": "constant", "reflect": "reflect", "edge": "edge", "wrap": "wrap"}


def _k_pad(node: Node, args: list[Array], n: int) -> Array:
    (x,) = args
    pads = [tuple(p) for p in node.attrs["pads"]]
    if node.per_document:
        pads = [(0, 0), *pads]
    # negative pads crop
    crop = tuple(slice(max(-b, 0), x.shape[i] - max(-a, 0)) for i, (b, a) in enumerate(pads))
    x = x[crop]
    pos = [(max(b, 0), max(a, 0)) for b, a in pads]
    mode = node.attrs["mode"]
    if mode == "constant":
        return np.pad(x, pos, mode="constant", constant_values=node.attrs["value"])
    padded: Array = np.pad(x, pos, mode=_NP_PAD[mode])
    return padded


def _norm_indices(idx: Array, dim: int, what: str) -> Array:
    idx = idx.astype(np.int64, copy=False)
    if idx.size and (idx.min() < -dim or idx.max() >= dim):
        bad = idx[(idx < -dim) | (idx >= dim)].flat[0]
        raise EvaluationError(f"{what} index {bad} is out of range for an axis of size {dim}")
    return np.where(idx < 0, idx + dim, idx)


def _k_gather(node: Node, args: list[Array], n: int) -> Array:
    x, idx = args
    ix, ii = node.inputs
    ax = node.attrs["axis"]
    idx = _norm_indices(idx, ix.shape[ax], "gather")
    if not ii.per_document:
        return np.take(x, idx, axis=ax + _off(ix))
    if not ix.per_document:
        return np.moveaxis(np.take(x, idx, axis=ax), ax, 0)
    nd = x.shape[0]
    is_rank = ii.rank
    xm = np.moveaxis(x, ax + 1, 1)  # [N, D, *before, *after]
    docs = np.arange(nd).reshape((nd,) + (1,) * is_rank)
    g = xm[docs, idx]  # [N, *is, *before, *after]
    before = ax
    perm = (
        [0]
        + [1 + is_rank + i for i in range(before)]
        + [1 + i for i in range(is_rank)]
        + list(range(1 + is_rank + before, g.ndim))
    )
    return np.transpose(g, perm)


def _k_gather_elements(node: Node, args: list[Array], n: int) -> Array:
    x, idx = args
    ix, ii = node.inputs
    ax = node.attrs["axis"]
    idx = _norm_indices(idx, ix.shape[ax], "gather_elements")
    # indices may be smaller than the data off the axis: only that corner of the data is read
    corner = tuple(slice(None) if a == ax else slice(0, d) for a, d in enumerate(ii.shape))
    if not node.per_document:
        return np.take_along_axis(x[corner], idx, axis=ax)
    xb = x[(slice(None), *corner)] if ix.per_document else x[corner][None]
    ib = idx if ii.per_document else idx[None]
    nd = _n(args, node)
    xb = np.broadcast_to(xb, (nd, *xb.shape[1:]))
    ib = np.broadcast_to(ib, (nd, *ib.shape[1:]))
    return np.take_along_axis(xb, ib, axis=ax + 1)


def _k_gather_nd(node: Node, args: list[Array], n: int) -> Array:
    x, idx = args
    ix, ii = node.inputs
    b = node.attrs["batch_dims"]
    if node.per_document:
        nd = _n(args, node)
        x = with_doc_axis(x, ix, nd)
        idx = with_doc_axis(idx, ii, nd)
        b += 1
    return _gather_nd(x, idx.astype(np.int64), b)


def _gather_nd(x: Array, idx: Array, b: int) -> Array:
    k = idx.shape[-1]
    batch_shape = x.shape[:b]
    nb = int(np.prod(batch_shape, dtype=np.int64))
    xr = x.reshape((nb, *x.shape[b:]))
    ir = idx.reshape((nb, -1, k))
    dims = np.array(x.shape[b:b + k], dtype=np.int64)
    if ir.size and ((ir < -dims).any() or (ir >= dims).any()):
        raise EvaluationError("gather_nd index out of range")
    ir = np.where(ir < 0, ir + dims, ir)
    bidx = np.arange(nb).reshape(nb, 1)
    out: Array = xr[(bidx, *(ir[..., j] for j in range(k)))]
    return out.reshape((*idx.shape[:-1], *x.shape[b + k:]))


_UFUNC_AT = {"add": np.add, "mul": np.multiply, "max": np.maximum, "min": np.minimum}


def _k_scatter_elements(node: Node, args: list[Array], n: int) -> Array:
    x, idx, upd = args
    ix, ii, iu = node.inputs
    ax = node.attrs["axis"]
    red = node.attrs["reduction"]
    idx = _norm_indices(idx, ix.shape[ax], "scatter_elements")
    if node.per_document:
        nd = _n(args, node)
        x = with_doc_axis(x, ix, nd)
        idx = with_doc_axis(idx, ii, nd)
        upd = with_doc_axis(upd, iu, nd)
        ax += 1
    out = np.array(x, copy=True)
    grid: list[Any] = list(np.indices(idx.shape, sparse=True))
    grid[ax] = idx
    full = tuple(grid)
    if red == "none":
        out[full] = upd
    else:
        _UFUNC_AT[red].at(out, full, upd)
    return out


def _k_scatter_nd(node: Node, args: list[Array], n: int) -> Array:
    x, idx, upd = args
    ix, ii, iu = node.inputs
    red = node.attrs["reduction"]
    idx = idx.astype(np.int64)
    dims = np.array(ix.shape[: idx.shape[-1]], dtype=np.int64)
    if idx.size and ((idx < -dims) | (idx >= dims)).any():
        raise EvaluationError("scatter_nd index out of range")
    idx = np.where(idx < 0, idx + dims, idx)
    if node.per_document:
        nd = _n(args, node)
        x = with_doc_axis(x, ix, nd)
        idx = with_doc_axis(idx, ii, nd)
        upd = with_doc_axis(upd, iu, nd)
        docs = np.broadcast_to(
            np.arange(nd).reshape((nd,) + (1,) * (idx.ndim - 1)), (*idx.shape[:-1], 1)
        )
        idx = np.concatenate([docs, idx], axis=-1)
    out = np.array(x, copy=True)
    k = idx.shape[-1]
    full = tuple(idx[..., j] for j in range(k))
    if red == "none":
        out[full] = upd
    else:
        _UFUNC_AT[red].at(out, full, upd)
    return out


def _k_topk(node: Node, args: list[Array], n: int) -> Array:
    (x,) = args
    src = node.inputs[0]
    ax = node.attrs["axis"] + _off(src)
    largest = node.attrs["largest"]
    if x.dtype.kind in "iu":
        # ~v reverses the order exactly; float64 keys would merge neighbouring 64-bit ints
        order = np.argsort(np.invert(x) if largest else x, axis=ax, kind="stable")
    else:
        key = x if x.dtype.kind == "f" and x.dtype.itemsize >= 4 else x.astype(np.float64)
        if largest:
            # NaN ranks above every number, as in onnxruntime; stable sorts keep ties in index order
            order = np.lexsort((-key, ~np.isnan(key)), axis=ax)
        else:
            order = np.argsort(key, axis=ax, kind="stable")
    return np.take(order, np.arange(node.attrs["k"]), axis=ax).astype(np.int64)


KERNELS: dict[Op, Kernel] = {
    Op.MAP: _k_map,
    Op.JOIN: _k_join,
    Op.SELECT: _k_select,
    Op.CAST: _k_cast,
    Op.REDUCE: _k_reduce,
    Op.ARG_REDUCE: _k_arg_reduce,
    Op.SCAN: _k_scan,
    Op.MATMUL: _k_matmul,
    Op.RESHAPE: _k_reshape,
    Op.TRANSPOSE: _k_transpose,
    Op.BROADCAST: _k_broadcast,
    Op.CONCAT: _k_concat,
    Op.SLICE: _k_slice,
    Op.PAD: _k_pad,
    Op.GATHER: _k_gather,
    Op.GATHER_ELEMENTS: _k_gather_elements,
    Op.GATHER_ND: _k_gather_nd,
    Op.SCATTER_ELEMENTS: _k_scatter_elements,
    Op.SCATTER_ND: _k_scatter_nd,
    Op.TOPK: _k_topk,
}


def eval_node(node: Node, args: list[Array], n_docs: int) -> Array:
    """The value of `node` given its operands' values (see the module doc for the doc axis)."""
    if node.op is Op.CONSTANT:
        return node.value
    if node.op is Op.INPUT:
        raise EvaluationError(f"input '{node.attrs['name']}' has no value")
    return KERNELS[node.op](node, args, n_docs)
