"""Reference semantics of every primitive, in numpy.

`eval_node` computes one node from its operands' values. A value of a per-document node
carries a leading document axis; all other values do not. This module is the single
definition of what each primitive means: constant folding uses it, the numpy backend runs
it, and the GPU backend runs part of it.

The structural and indexing kernels of PORTABLE_KERNELS take the array module last (`xp`,
numpy unless given) and use only what numpy and CuPy share, so the GPU backend runs these
same functions with xp=cupy on device arrays. That rules out a few numpy habits: `.flat` of
a masked array, lists as ufunc operands, and host reads of device values beyond the one
min/max transfer an index check needs. The other kernels are numpy-only: the GPU backend
fuses the elementwise ones into kernels of its own and runs the rest on the host, here.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from types import ModuleType
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from tensor_ir.casts import cast_cells
from tensor_ir.casts import widen as _wide
from tensor_ir.elementwise import BINARY, UNARY
from tensor_ir.errors import DocumentValueError, EvaluationError
from tensor_ir.ir import Node, Op, Variance
from tensor_ir.trees.walk import evaluate as tree_scores

Array = npt.NDArray[Any]
Kernel = Callable[[Node, list[Array], int], Array]


class PortableKernel(Protocol):
    """A kernel for any array module with numpy's API: operands and result are arrays of `xp`."""

    def __call__(self, node: Node, args: list[Any], n: int, xp: ModuleType = ..., /) -> Any: ...


# ---------------------------------------------------------------- document-axis helpers


def align(value: Array, node: Node, out_rank: int) -> Array:
    """Give a per-document operand the output's per-document rank (1s after the doc axis)
    so numpy's right-aligned broadcasting pairs per-document axes correctly."""
    if node.per_document and node.rank < out_rank:
        return value.reshape((value.shape[0],) + (1,) * (out_rank - node.rank) + value.shape[1:])
    return value


def with_doc_axis(value: Any, node: Node, n: int, xp: ModuleType = np) -> Any:
    """A view of `value` with a leading document axis (broadcast when `node` has none)."""
    if node.per_document:
        return value
    return xp.broadcast_to(value, (n, *value.shape))


def _off(node: Node) -> int:
    return 1 if node.per_document else 0


def _n(args: list[Any], node: Node) -> int:
    for a, i in zip(args, node.inputs, strict=True):
        if i.per_document:
            return int(a.shape[0])
    return 1


# ---------------------------------------------------------------- numpy-only kernels


def _k_map(node: Node, args: list[Array], n: int) -> Array:
    (x,) = args
    fn = node.attrs["fn"]
    with np.errstate(all="ignore"):
        r = UNARY[fn](_wide(x, node.inputs[0].dtype))
    return np.asarray(r).astype(node.dtype.np_dtype, copy=False)


def _k_join(node: Node, args: list[Array], n: int) -> Array:
    a, b = (align(v, i, node.rank) for v, i in zip(args, node.inputs, strict=True))
    ct = node.inputs[0].dtype
    with np.errstate(all="ignore"):
        r = BINARY[node.attrs["fn"]](_wide(a, ct), _wide(b, ct))
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


# ---------------------------------------------------------------- portable kernels (numpy and CuPy)


def _k_arg_reduce(node: Node, args: list[Any], n: int, xp: ModuleType = np) -> Any:
    (x,) = args
    src = node.inputs[0]
    ax = node.attrs["axis"] + _off(src)
    v = _wide(x, src.dtype)
    f = xp.argmax if node.attrs["agg"] == "argmax" else xp.argmin
    if node.attrs["last"]:
        r = v.shape[ax] - 1 - f(xp.flip(v, axis=ax), axis=ax)
    else:
        r = f(v, axis=ax)
    r = xp.asarray(r, dtype=np.int64)
    return xp.expand_dims(r, ax) if node.attrs["keepdims"] else r


def _k_scan(node: Node, args: list[Any], n: int, xp: ModuleType = np) -> Any:
    (x,) = args
    src = node.inputs[0]
    ax = node.attrs["axis"] + _off(src)
    v = _wide(x, src.dtype)
    if node.attrs["reverse"]:
        v = xp.flip(v, axis=ax)
    f = xp.cumsum if node.attrs["agg"] == "sum" else xp.cumprod
    r = f(v, axis=ax, dtype=v.dtype)
    if node.attrs["exclusive"]:
        ident = 0 if node.attrs["agg"] == "sum" else 1
        pad_width = [(0, 0)] * r.ndim
        pad_width[ax] = (1, 0)
        r = xp.pad(r, pad_width, mode="constant", constant_values=ident)
        r = xp.take(r, xp.arange(v.shape[ax]), axis=ax)
    if node.attrs["reverse"]:
        r = xp.flip(r, axis=ax)
    return xp.ascontiguousarray(r).astype(node.dtype.np_dtype, copy=False)


def _k_matmul(node: Node, args: list[Any], n: int, xp: ModuleType = np) -> Any:
    a, b = args
    ia, ib = node.inputs
    ct = ia.dtype
    a, b = _wide(a, ct), _wide(b, ct)
    if not ib.per_document and ib.rank == 2:
        # one large GEMM over every document's rows instead of a batch of small ones
        lead = a.shape[:-1]
        r = xp.matmul(a.reshape(-1, a.shape[-1]), b).reshape(*lead, b.shape[-1])
    else:
        out_rank = node.rank
        r = xp.matmul(align(a, ia, out_rank), align(b, ib, out_rank))
    return xp.asarray(r).astype(node.dtype.np_dtype, copy=False)


def _k_reshape(node: Node, args: list[Any], n: int, xp: ModuleType = np) -> Any:
    (x,) = args
    lead = (x.shape[0],) if node.per_document else ()
    return x.reshape(lead + node.shape)


def _k_transpose(node: Node, args: list[Any], n: int, xp: ModuleType = np) -> Any:
    (x,) = args
    perm = tuple(node.attrs["perm"])
    if node.per_document:
        perm = (0, *(p + 1 for p in perm))
    return xp.transpose(x, perm)


def _k_broadcast(node: Node, args: list[Any], n: int, xp: ModuleType = np) -> Any:
    (x,) = args
    src = node.inputs[0]
    if node.per_document:
        return xp.broadcast_to(align(x, src, node.rank), (x.shape[0], *node.shape))
    return xp.broadcast_to(x, node.shape)


def _k_concat(node: Node, args: list[Any], n: int, xp: ModuleType = np) -> Any:
    off = _off(node)
    if node.per_document:
        n = _n(args, node)
        args = [with_doc_axis(a, i, n, xp) for a, i in zip(args, node.inputs, strict=True)]
    return xp.concatenate(args, axis=node.attrs["axis"] + off)


def _k_slice(node: Node, args: list[Any], n: int, xp: ModuleType = np) -> Any:
    (x,) = args
    idx: list[slice] = [slice(None)] if node.per_document else []
    for s0, s1, st in zip(node.attrs["starts"], node.attrs["stops"], node.attrs["steps"], strict=True):
        stop = None if (st < 0 and s1 < 0) else s1
        idx.append(slice(s0, stop, st))
    return x[tuple(idx)]


# the IR's pad modes by their names in numpy.pad and cupy.pad
_PAD_MODES: dict[str, str] = {"constant": "constant", "reflect": "reflect", "edge": "edge", "wrap": "wrap"}


def _k_pad(node: Node, args: list[Any], n: int, xp: ModuleType = np) -> Any:
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
        return xp.pad(x, pos, mode="constant", constant_values=node.attrs["value"])
    return xp.pad(x, pos, mode=_PAD_MODES[mode])


def _check_range(lo: int, hi: int, dim: int, node: Node) -> None:
    """Refuse indices from `lo` to `hi` into an axis of `dim` cells, naming the node."""
    if lo < -dim or hi >= dim:
        bad = lo if lo < -dim else hi
        where = f"{node.op.label} node '{node.label}'" if node.label else f"{node.op.label} node"
        message = f"{where}: index {bad} is out of range for an axis of size {dim}"
        # who can fix it decides the status: the client for a query's value, nobody per request
        # for a value read from the stored documents alone
        if node.inputs[1].variance is Variance.DOCUMENT:
            raise DocumentValueError(f"{message} (the indices come from the documents' attributes)")
        raise EvaluationError(f"{message} (the indices depend on the query's values)")


def _norm_indices(idx: Any, dim: int, node: Node, xp: ModuleType = np) -> Any:
    idx = idx.astype(np.int64, copy=False)
    if idx.size:
        # the only host read: bad indices must raise, not wrap or read out of bounds
        low = int(idx.min())
        _check_range(low, int(idx.max()), dim, node)
        if low >= 0:
            return idx  # nothing to wrap: no pass over the indices
    return xp.where(idx < 0, idx + dim, idx)


def _check_index_columns(idx: Any, dims: Sequence[int], node: Node) -> None:
    """Refuse a [..., k] index array unless column j indexes an axis of dims[j] cells."""
    if idx.size:
        cols = idx.reshape(-1, len(dims))
        for lo, hi, dim in zip(cols.min(axis=0).tolist(), cols.max(axis=0).tolist(), dims, strict=True):
            _check_range(lo, hi, dim, node)


def _k_gather(node: Node, args: list[Any], n: int, xp: ModuleType = np) -> Any:
    x, idx = args
    ix, ii = node.inputs
    ax = node.attrs["axis"]
    idx = _norm_indices(idx, ix.shape[ax], node, xp)
    # indexing, not xp.take: numpy's take is many times slower for rows and int32 indices
    if not ii.per_document:
        return x[(slice(None),) * (ax + _off(ix)) + (idx,)]
    if not ix.per_document:
        return xp.moveaxis(x[(slice(None),) * ax + (idx,)], ax, 0)
    nd = x.shape[0]
    is_rank = ii.rank
    xm = xp.moveaxis(x, ax + 1, 1)  # [N, D, *before, *after]
    docs = xp.arange(nd).reshape((nd,) + (1,) * is_rank)
    g = xm[docs, idx]  # [N, *is, *before, *after]
    before = ax
    perm = (
        [0]
        + [1 + is_rank + i for i in range(before)]
        + [1 + i for i in range(is_rank)]
        + list(range(1 + is_rank + before, g.ndim))
    )
    return xp.transpose(g, perm)


def _k_gather_elements(node: Node, args: list[Any], n: int, xp: ModuleType = np) -> Any:
    x, idx = args
    ix, ii = node.inputs
    ax = node.attrs["axis"]
    idx = _norm_indices(idx, ix.shape[ax], node, xp)
    # indices may be smaller than the data off the axis: only that corner of the data is read
    corner = tuple(slice(None) if a == ax else slice(0, d) for a, d in enumerate(ii.shape))
    if not node.per_document:
        return xp.take_along_axis(x[corner], idx, axis=ax)
    xb = x[(slice(None), *corner)] if ix.per_document else x[corner][None]
    ib = idx if ii.per_document else idx[None]
    nd = _n(args, node)
    xb = xp.broadcast_to(xb, (nd, *xb.shape[1:]))
    ib = xp.broadcast_to(ib, (nd, *ib.shape[1:]))
    return xp.take_along_axis(xb, ib, axis=ax + 1)


def _k_gather_nd(node: Node, args: list[Any], n: int, xp: ModuleType = np) -> Any:
    x, idx = args
    ix, ii = node.inputs
    b = node.attrs["batch_dims"]
    if node.per_document:
        nd = _n(args, node)
        x = with_doc_axis(x, ix, nd, xp)
        idx = with_doc_axis(idx, ii, nd, xp)
        b += 1
    idx = idx.astype(np.int64)
    k = idx.shape[-1]
    nb = math.prod(x.shape[:b])
    xr = x.reshape((nb, *x.shape[b:]))
    ir = idx.reshape((nb, -1, k))
    dims = x.shape[b:b + k]
    _check_index_columns(ir, dims, node)
    ir = xp.where(ir < 0, ir + xp.asarray(np.array(dims, dtype=np.int64)), ir)
    bidx = xp.arange(nb).reshape(nb, 1)
    out = xr[(bidx, *(ir[..., j] for j in range(k)))]
    return out.reshape((*idx.shape[:-1], *x.shape[b + k:]))


# ---------------------------------------------------------------- numpy-only indexing kernels


_UFUNC_AT = {"add": np.add, "mul": np.multiply, "max": np.maximum, "min": np.minimum}


def _k_scatter_elements(node: Node, args: list[Array], n: int) -> Array:
    x, idx, upd = args
    ix, ii, iu = node.inputs
    ax = node.attrs["axis"]
    red = node.attrs["reduction"]
    idx = _norm_indices(idx, ix.shape[ax], node)
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
    dims = ix.shape[: idx.shape[-1]]
    _check_index_columns(idx, dims, node)
    idx = np.where(idx < 0, idx + np.array(dims, dtype=np.int64), idx)
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


def _k_tree_ensemble(node: Node, args: list[Array], n: int) -> Array:
    """tensor_ir/trees/walk.py walks the forest over the flattened leading axes."""
    (x,) = args
    forest = node.attrs["forest"]
    flat = x.reshape(-1, x.shape[-1])
    return tree_scores(forest, flat).reshape((*x.shape[:-1], forest.n_targets))


# a table over the keys' range costs this many cells per value looked up, at most
_LOOKUP_TABLE_PER_VALUE = 4
_LOOKUP_TABLE_MIN = 1 << 16


def _k_lookup(node: Node, args: list[Any], n: int, xp: ModuleType = np) -> Any:
    """Op.LOOKUP. Label ids stay in a narrow range (tensor_ir.mapped), so where the keys'
    range is small next to the values, a table over it is one gather per value; else a
    binary search over the sorted keys."""
    keys, values = args
    k = int(keys.shape[0])
    if k == 0 or values.size == 0:
        return xp.full(values.shape, k, dtype=np.int32)
    lo, hi = int(keys.min()), int(keys.max())
    span = hi - lo + 1
    if span <= max(_LOOKUP_TABLE_MIN, _LOOKUP_TABLE_PER_VALUE * int(values.size)):
        # cells 0 and span + 1 stand for every value below and above the keys' range
        table = xp.full(span + 2, k, dtype=np.int32)
        table[(keys - (lo - 1))[::-1]] = xp.arange(k - 1, -1, -1, dtype=np.int32)  # the first of equal keys wins
        # clipped first, so the shift stays inside int32 (lo - 1 and hi + 1 are int32 labels' neighbours)
        at = xp.clip(values, lo - 1, hi + 1).astype(np.int64 if lo - 1 < -(1 << 31) or hi + 1 >= 1 << 31 else
                                                    np.int32, copy=False)
        at -= lo - 1
        return table[at]
    order = xp.argsort(keys, kind="stable")
    ordered = keys[order]
    pos = xp.minimum(xp.searchsorted(ordered, values), k - 1)
    return xp.where(ordered[pos] == values, order[pos], k).astype(np.int32)


# the kernels written for numpy and CuPy alike (see the module doc)
PORTABLE_KERNELS: dict[Op, PortableKernel] = {
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
    Op.LOOKUP: _k_lookup,
}

KERNELS: dict[Op, Kernel] = {
    Op.MAP: _k_map,
    Op.JOIN: _k_join,
    Op.SELECT: _k_select,
    Op.CAST: _k_cast,
    Op.REDUCE: _k_reduce,
    Op.SCATTER_ELEMENTS: _k_scatter_elements,
    Op.SCATTER_ND: _k_scatter_nd,
    Op.TOPK: _k_topk,
    Op.TREE_ENSEMBLE: _k_tree_ensemble,
    **PORTABLE_KERNELS,
}


def eval_node(node: Node, args: list[Array], n_docs: int) -> Array:
    """The value of `node` given its operands' values (see the module doc for the doc axis)."""
    if node.op is Op.CONSTANT:
        return node.value
    if node.op is Op.INPUT:
        raise EvaluationError(f"input '{node.attrs['name']}' has no value")
    return KERNELS[node.op](node, args, n_docs)
