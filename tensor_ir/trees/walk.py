"""Reference evaluation of a canonical forest in numpy, over a block of documents at a time.

Documents are walked level by level for all trees at once, on [trees, rows] arrays of flat
int32 indices: through the perfect layout where the forest has one (no child table, heap
arithmetic), else through the node table, where leaves are their own children. Leaves are
then summed tree by tree in the accumulation type (numpy's reduction over the outer axis is
sequential), so the result equals onnxruntime's order of additions.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from tensor_ir.trees.forest import CATEGORY, MEMBER, Forest
from tensor_ir.trees.layout import copies

Array = npt.NDArray[Any]

# rows x trees per chunk: the index arrays of one chunk stay in the core's cache
CHUNK_CELLS = 1 << 16


def evaluate(forest: Forest, x: Array) -> Array:
    """Scores [rows, targets] in the accumulation type for inputs [rows, features]; base values
    added, no post-transform."""
    x = np.ascontiguousarray(x, dtype=forest.input_type.np_dtype)
    n = x.shape[0]
    out = np.empty((n, forest.n_targets), forest.accumulate_type.np_dtype)
    step = max(1, CHUNK_CELLS // max(forest.n_trees, 1))
    with np.errstate(all="ignore"):
        for s in range(0, n, step):
            rows = leaf_rows(forest, x[s:s + step])
            out[s:s + step] = aggregate(forest, rows)
    return out


def leaf_rows(forest: Forest, x: Array) -> Array:
    """The leaf each document reaches in each tree: rows of leaf_values, int32 [trees, rows]."""
    n, width = x.shape
    if width < forest.n_features:
        raise ValueError(f"{forest!r} reads {forest.n_features} features, the input has {width}")
    flat = x.reshape(-1)
    offsets = (np.arange(n, dtype=np.int32) * np.int32(width)).reshape(1, n)
    p = forest.perfect
    if p is not None and p.sentinel and p.depth > 0:
        return _perfect_sentinel(forest, x)
    if p is not None:
        slots = (1 << p.depth) - 1
        base = (np.arange(forest.n_trees, dtype=np.int32) * np.int32(slots)).reshape(-1, 1)
        pf, pt, pm = p.feature.reshape(-1), p.threshold.reshape(-1), p.missing_true.reshape(-1)
        i = np.zeros((forest.n_trees, n), np.int32)
        for _ in range(p.depth):
            g = base + i
            v = flat[offsets + pf[g]]
            go = v <= pt[g]
            go |= np.isnan(v) & pm[g]
            i = 2 * i + 2 - go
        leaves = (np.arange(forest.n_trees, dtype=np.int32) * np.int32(slots + 1)).reshape(-1, 1)
        found: Array = p.leaf_row.reshape(-1)[leaves + i - slots]
        return found
    idx = np.broadcast_to(forest.roots.reshape(-1, 1), (forest.n_trees, n)).copy()
    has_sets = bool(np.any(forest.kind >= MEMBER))
    for _ in range(forest.max_depth):
        v = flat[offsets + forest.feature[idx]]
        go = v <= forest.threshold[idx]
        if has_sets:
            kinds = forest.kind[idx]
            sel = kinds >= MEMBER
            if sel.any():
                go[sel] = _in_set(forest, idx[sel], v[sel], kinds[sel] == CATEGORY)
        go |= np.isnan(v) & forest.missing_true[idx]
        idx = np.where(go, forest.true_child[idx], forest.false_child[idx])
    reached: Array = forest.leaf_row[idx]
    return reached


def _perfect_sentinel(forest: Forest, x: Array) -> Array:
    """The perfect walk over the level tables and copies of the features (see PerfectLayout):
    per level a gather of the column, one of the value, one of the threshold, x > t and 2i + b."""
    p = forest.perfect
    assert p is not None
    n = x.shape[0]
    width = forest.n_features
    both = copies(x, width)
    n_trees = forest.n_trees
    lf0 = p.level_feature[0]
    idx = (np.arange(n_trees, dtype=np.int32) * np.int32(2)).reshape(-1, 1) + (
        both[:, lf0].T > p.level_threshold[0].reshape(-1, 1))
    flat = both.reshape(-1)
    offsets = (np.arange(n, dtype=np.int32) * np.int32(4 * width)).reshape(1, n)
    f = np.empty((n_trees, n), np.int32)
    right = np.empty((n_trees, n), bool)
    for level in range(1, p.depth):
        np.take(p.level_feature[level], idx, out=f)
        f += offsets
        np.greater(flat[f], p.level_threshold[level][idx], out=right)
        idx <<= 1
        idx += right
    found: Array = p.leaf_row.reshape(-1)[idx]
    return found


def _in_set(forest: Forest, nodes: Array, v: Array, truncate: Array) -> Array:
    """Whether each value (truncated toward zero at CATEGORY nodes) is a member of its node's set."""
    key = np.where(truncate, np.trunc(v), v)
    lo = forest.set_start[nodes].astype(np.int64)
    stop = forest.set_stop[nodes].astype(np.int64)
    hi = stop.copy()
    members = forest.members
    if members.size == 0:
        return np.zeros(v.shape, bool)
    while True:
        active = lo < hi
        if not active.any():
            break
        mid = (lo + hi) // 2
        less = members[np.minimum(mid, members.size - 1)] < key
        lo = np.where(active & less, mid + 1, lo)
        hi = np.where(active & ~less, mid, hi)
    found = lo < stop
    found &= members[np.minimum(lo, members.size - 1)] == key
    return found


def aggregate(forest: Forest, rows: Array) -> Array:
    """[rows, targets] scores from the leaves reached ([trees, rows]), in tree order."""
    adt = forest.accumulate_type.np_dtype
    values = forest.leaf_values
    n = rows.shape[1]
    if forest.aggregate in ("sum", "average"):
        if forest.n_targets == 1:
            score = np.add.reduce(values[:, 0][rows], axis=0, dtype=adt).reshape(n, 1)
        else:
            score = np.add.reduce(values[rows], axis=0, dtype=adt)
        if forest.aggregate == "average":
            score = score / adt.type(forest.n_trees)
        return np.asarray(score + forest.base_values, adt)
    best = np.zeros((n, forest.n_targets), adt)
    has = np.zeros((n, forest.n_targets), bool)
    smaller = forest.aggregate == "min"
    for tree_rows in rows:
        v = values[tree_rows]
        touch = forest.leaf_touch[tree_rows]
        better = (v < best) if smaller else (v > best)
        take = touch & (~has | better)
        best = np.where(take, v, best)
        has |= touch
    return np.asarray(np.where(has, best, adt.type(0)) + forest.base_values, adt)
