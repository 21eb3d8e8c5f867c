"""An independent oracle: walks each document down each tree of a ForestSpec one node at a
time in plain Python, with the file's own comparison (no canonical form, no layout)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from tensor_ir.trees import spec as S


def _holds(node: S.NodeSpec, x: float, t: float) -> bool:
    m = node.mode
    if m == S.BRANCH_LEQ:
        return x <= t
    if m == S.BRANCH_LT:
        return x < t
    if m == S.BRANCH_GTE:
        return x >= t
    if m == S.BRANCH_GT:
        return x > t
    if m == S.BRANCH_EQ:
        return x == t
    if m == S.BRANCH_NEQ:
        return x != t
    if m == S.BRANCH_MEMBER:
        return any(x == v for v in node.members)
    if m == S.BRANCH_CATEGORY:
        return not math.isnan(x) and any(math.trunc(x) == v for v in node.members)
    raise AssertionError(m)


def walk(spec: S.ForestSpec, x: np.ndarray[Any, Any], compare: Any = float) -> np.ndarray[Any, Any]:
    """Scores [rows, targets]: `compare` turns x and thresholds into the comparison's numbers
    (np.float32 for float comparisons: both sides rounded as the file's reader would)."""
    adt = spec.accumulate_type.np_dtype.type
    out = np.zeros((x.shape[0], spec.n_targets), spec.accumulate_type.np_dtype)
    for r in range(x.shape[0]):
        score = [adt(0)] * spec.n_targets
        has = [False] * spec.n_targets
        for tree in spec.trees:
            i = tree.root
            while tree.nodes[i].mode != S.LEAF:
                node = tree.nodes[i]
                v = x[r, node.feature]
                go = _holds(node, compare(v), compare(node.threshold)) or (bool(np.isnan(v)) and node.missing_true)
                i = node.true_child if go else node.false_child
            for target, w in tree.nodes[i].weights:
                w = adt(w)
                if spec.aggregate in ("sum", "average"):
                    score[target] = adt(score[target] + w)
                elif not has[target] or (w < score[target] if spec.aggregate == "min" else w > score[target]):
                    score[target] = w
                has[target] = True
        for k in range(spec.n_targets):
            s = score[k]
            if spec.aggregate == "average":
                s = adt(s / adt(len(spec.trees)))
            base = adt(spec.base_values[k]) if spec.base_values else adt(0)
            out[r, k] = adt(s + base)
    return out
