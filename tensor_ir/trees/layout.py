"""The perfect layout: each tree padded to a complete binary tree of the forest's depth, in
heap order (the children of slot i are 2i+1 when true and 2i+2 when false), so a walk needs no
child table and every document takes the same number of steps. A leaf above the bottom becomes
nodes that always go true (x <= +inf, NaN true) down to copies of itself.

It applies to forests of LEQ nodes only, of depth at most PERFECT_MAX_DEPTH and with padded
tables of at most PERFECT_MAX_SLOTS slots; other forests are walked through their node tables.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

Array = npt.NDArray[Any]

# Past depth 10 a padded tree holds over a thousand slots for what is usually a few dozen nodes.
PERFECT_MAX_DEPTH = 10
PERFECT_MAX_SLOTS = 1 << 22


@dataclass(frozen=True, eq=False)
class PerfectLayout:
    depth: int
    feature: Array  # int32 [trees, 2**depth - 1]
    threshold: Array  # [trees, 2**depth - 1], input type
    missing_true: Array  # bool [trees, 2**depth - 1]
    leaf_row: Array  # int32 [trees, 2**depth]: the row of leaf_values each bottom slot reaches
    # The same nodes level by level, trees side by side (slot t * 2**level + i), so a child is
    # 2 * slot + (goes false): no per-tree offset to add. Each node reads one of four copies of
    # the features (`copies`), so that x > t alone decides, NaN included: feature f with NaN read
    # as -inf where NaN goes true, column F + f with NaN as +inf where it goes false, and for the
    # thresholds no such copy serves (+inf with NaN going false: false exactly for NaN; a NaN
    # threshold) column 2F + f, isnan(x), or 3F + f, !isnan(x), against 0.5 or -0.5.
    level_feature: tuple[Array, ...] = ()
    level_threshold: tuple[Array, ...] = ()
    sentinel: bool = False  # the level tables are there


def perfect_layout(kind: Array, feature: Array, threshold: Array, missing_true: Array, true_child: Array,
                   false_child: Array, leaf_row: Array, roots: Array, depths: Array, n_features: int
                   ) -> PerfectLayout | None:
    from tensor_ir.trees.forest import LEAF, LEQ

    n_trees = roots.shape[0]
    depth = int(depths.max()) if n_trees else 0
    if n_trees == 0 or depth > PERFECT_MAX_DEPTH or n_trees << depth > PERFECT_MAX_SLOTS:
        return None
    if np.any((kind != LEAF) & (kind != LEQ)):
        return None
    inf = np.asarray(np.inf, threshold.dtype)
    cur = roots.reshape(n_trees, 1).astype(np.int64)
    pf, pt, pm = [], [], []
    for _ in range(depth):
        leaf = kind[cur] == LEAF
        pf.append(np.where(leaf, 0, feature[cur]))
        pt.append(np.where(leaf, inf, threshold[cur]))
        pm.append(np.where(leaf, True, missing_true[cur]))
        t = np.where(leaf, cur, true_child[cur])
        f = np.where(leaf, cur, false_child[cur])
        cur = np.stack([t, f], axis=-1).reshape(n_trees, -1)
    slots = leaf_row[cur]
    assert np.all(slots >= 0), "a bottom slot that is not a leaf: depths are wrong"

    def frozen(parts: list[Array], dt: Any) -> Array:
        a = np.concatenate(parts, axis=1).astype(dt) if parts else np.zeros((n_trees, 0), dt)
        a = np.ascontiguousarray(a)
        a.flags.writeable = False
        return a

    rows = np.ascontiguousarray(slots.astype(np.int32))
    rows.flags.writeable = False
    level_feature, level_threshold = [], []
    for f, t, m in zip(pf, pt, pm, strict=True):
        col = np.where(m, f, f + n_features)
        thr = t.astype(threshold.dtype)
        nan_only = (t == np.inf) & ~m
        col = np.where(nan_only, f + 2 * n_features, col)
        thr = np.where(nan_only, 0.5, thr)
        nan_t = np.isnan(t)
        col = np.where(nan_t, f + 3 * n_features, col)
        thr = np.where(nan_t, np.where(m, 0.5, -0.5), thr)
        level_feature.append(_frozen_flat(col.astype(np.int32)))
        level_threshold.append(_frozen_flat(thr.astype(threshold.dtype)))
    return PerfectLayout(depth, frozen(pf, np.int32), frozen(pt, threshold.dtype), frozen(pm, bool), rows,
                         tuple(level_feature), tuple(level_threshold), True)


def copies(x: Array, n_features: int) -> Array:
    """The four copies of the features [rows, 4 * features] the level tables read."""
    x = x[:, :n_features]
    nan = np.isnan(x)
    out = np.empty((x.shape[0], 4 * n_features), x.dtype)
    low, high = out[:, :n_features], out[:, n_features:2 * n_features]
    np.copyto(low, x)
    np.copyto(high, x)
    low[nan] = -np.inf
    high[nan] = np.inf
    np.copyto(out[:, 2 * n_features:3 * n_features], nan)
    np.copyto(out[:, 3 * n_features:], ~nan)
    return out


def _frozen_flat(a: Array) -> Array:
    a = np.ascontiguousarray(a.reshape(-1))
    a.flags.writeable = False
    return a
