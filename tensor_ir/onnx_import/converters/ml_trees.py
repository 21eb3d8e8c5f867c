"""ai.onnx.ml tree ensembles: TreeEnsembleRegressor (opsets 1 and 3), TreeEnsemble (5) and
TreeEnsembleClassifier (1 and 3, in ml_tree_classifier.py) become one tree_ensemble node over a
canonical forest (tensor_ir/trees), followed by the post-transform as ordinary ops.

Trees are as onnxruntime reads them: a tree's root is its first node in the attribute lists,
trees are summed in the order their ids first appear, thresholds compare in their own type
(double when given `*_as_tensor` as double) and leaves are summed in it. Integer inputs are
converted to the thresholds' type first. Unlike onnxruntime 1.32 (issues #26596 and #24862),
a single-target LOGISTIC post-transform is applied, as the spec says.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from tensor_ir import build
from tensor_ir.dtypes import CellType
from tensor_ir.ir import Node
from tensor_ir.onnx_import.context import NodeContext
from tensor_ir.onnx_import.converters.ml_common import (
    POST_TRANSFORMS,
    array_attr,
    float_features,
    post_transform,
    tensor_is_double,
)
from tensor_ir.onnx_import.registry import converter
from tensor_ir.trees import Forest, ForestSpec, MalformedForest, NodeSpec, TreeSpec, canonical_forest
from tensor_ir.trees import spec as S

ML = "ai.onnx.ml"
AGGREGATES = {"SUM": "sum", "AVERAGE": "average", "MIN": "min", "MAX": "max"}
OPSET5_AGGREGATES = ("average", "sum", "min", "max")
LEGACY_MODES = frozenset({"LEAF", S.BRANCH_LEQ, S.BRANCH_LT, S.BRANCH_GTE, S.BRANCH_GT, S.BRANCH_EQ, S.BRANCH_NEQ})
OPSET5_MODES = (S.BRANCH_LEQ, S.BRANCH_LT, S.BRANCH_GTE, S.BRANCH_GT, S.BRANCH_EQ, S.BRANCH_NEQ, S.BRANCH_MEMBER)


def forest_or_error(ctx: NodeContext, spec: ForestSpec) -> Forest:
    try:
        return canonical_forest(spec)
    except MalformedForest as e:
        raise ctx.error(str(e)) from None


def _required(ctx: NodeContext, name: str, tensor_name: str | None = None) -> np.ndarray[Any, Any]:
    value = array_attr(ctx, name, tensor_name)
    if value is None:
        raise ctx.error(f"attribute '{name}' is missing")
    return value


def legacy_trees(ctx: NodeContext, n_targets: int, weight_prefix: str, target_key: str
                 ) -> tuple[list[TreeSpec], bool]:
    """The trees of TreeEnsembleRegressor/Classifier (opsets 1 and 3), and whether their
    thresholds or weights are doubles."""
    tree_ids = _required(ctx, "nodes_treeids").astype(np.int64)
    node_ids = _required(ctx, "nodes_nodeids").astype(np.int64)
    features = _required(ctx, "nodes_featureids").astype(np.int64)
    modes = [str(m) for m in _required(ctx, "nodes_modes")]
    values = _required(ctx, "nodes_values", "nodes_values_as_tensor")
    true_ids = _required(ctx, "nodes_truenodeids").astype(np.int64)
    false_ids = _required(ctx, "nodes_falsenodeids").astype(np.int64)
    n = len(tree_ids)
    mvt = array_attr(ctx, "nodes_missing_value_tracks_true")
    missing = np.zeros(n, bool) if mvt is None or len(mvt) == 0 else mvt.astype(bool)
    for name, arr in (("nodes_nodeids", node_ids), ("nodes_featureids", features), ("nodes_modes", modes),
                      ("nodes_values", values), ("nodes_truenodeids", true_ids), ("nodes_falsenodeids", false_ids),
                      ("nodes_missing_value_tracks_true", missing)):
        if len(arr) != n:
            raise ctx.error(f"attribute '{name}' has {len(arr)} entries, nodes_treeids has {n}")
    w_trees = _required(ctx, f"{weight_prefix}_treeids").astype(np.int64)
    w_nodes = _required(ctx, f"{weight_prefix}_nodeids").astype(np.int64)
    w_targets = _required(ctx, target_key).astype(np.int64)
    w_values = _required(ctx, f"{weight_prefix}_weights", f"{weight_prefix}_weights_as_tensor")
    if not len(w_trees) == len(w_nodes) == len(w_targets) == len(w_values):
        raise ctx.error(f"attributes {weight_prefix}_* differ in length")
    position: dict[tuple[int, int], int] = {}
    order: dict[int, list[int]] = {}
    for i in range(n):
        key = (int(tree_ids[i]), int(node_ids[i]))
        if key in position:
            raise ctx.error(f"nodes_nodeids[{i}]: tree {key[0]} has node id {key[1]} twice")
        position[key] = len(order.setdefault(key[0], []))
        order[key[0]].append(i)
    weights: dict[tuple[int, int], list[tuple[int, float]]] = {}
    for j in range(len(w_trees)):
        key = (int(w_trees[j]), int(w_nodes[j]))
        if key not in position:
            raise ctx.error(f"{weight_prefix}_nodeids[{j}]: tree {key[0]} has no node id {key[1]}")
        weights.setdefault(key, []).append((int(w_targets[j]), float(w_values[j])))
    trees = []
    for tid, members in order.items():
        nodes = []
        for i in members:
            name = f"node id {node_ids[i]} (entry {i} of nodes_*)"
            if modes[i] not in LEGACY_MODES:
                raise ctx.error(f"tree {tid}, {name}: nodes_modes[{i}] = '{modes[i]}' is not a mode of the opset "
                                f"({', '.join(sorted(LEGACY_MODES))})")
            if modes[i] == "LEAF":
                nodes.append(NodeSpec(S.LEAF, weights=tuple(weights.get((tid, int(node_ids[i])), ())), name=name))
                continue
            children = []
            for attr, child in (("nodes_truenodeids", true_ids[i]), ("nodes_falsenodeids", false_ids[i])):
                if (tid, int(child)) not in position:
                    raise ctx.error(f"tree {tid}, {name}: {attr}[{i}] = {child} is no node of the tree")
                children.append(position[(tid, int(child))])
            nodes.append(NodeSpec(modes[i], int(features[i]), float(values[i]), children[0], children[1],
                                  bool(missing[i]), name=name))
        trees.append(TreeSpec(tuple(nodes), 0, f"tree {tid}"))
    double = tensor_is_double(ctx, "nodes_values_as_tensor", f"{weight_prefix}_weights_as_tensor",
                              "base_values_as_tensor")
    return trees, double


def base_values(ctx: NodeContext, n_targets: int) -> tuple[float, ...]:
    base = array_attr(ctx, "base_values", "base_values_as_tensor")
    if base is None or len(base) == 0:
        return ()
    if len(base) != n_targets:
        raise ctx.error(f"attribute 'base_values' has {len(base)} values for {n_targets} targets")
    return tuple(float(b) for b in base)


def evaluate_forest(ctx: NodeContext, x: Node, forest: Forest) -> Node:
    return build.tree_ensemble(x, forest, label=ctx.name)


def _compare_type(x: Node, double: bool) -> CellType:
    return CellType.FLOAT64 if double or x.dtype is CellType.FLOAT64 else CellType.FLOAT32


@converter("TreeEnsembleRegressor", 1, 3, domain=ML)
def tree_ensemble_regressor(ctx: NodeContext) -> Sequence[Node | None]:
    x = ctx.input(0)
    n_targets = int(ctx.attr("n_targets") or 1)
    trees, double = legacy_trees(ctx, n_targets, "target", "target_ids")
    aggregate = str(ctx.attr("aggregate_function"))
    if aggregate not in AGGREGATES:
        raise ctx.error(f"aggregate_function '{aggregate}' is not one of {', '.join(AGGREGATES)}")
    cmp = _compare_type(x, double)
    x = float_features(ctx, x, cmp)
    width = x.shape[-1] if x.rank else 0
    acc = CellType.FLOAT64 if double else CellType.FLOAT32
    spec = ForestSpec(tuple(trees), width, n_targets, cmp, acc, AGGREGATES[aggregate], base_values(ctx, n_targets),
                      ctx.model)
    x = build.cast(x, cmp)
    scores = evaluate_forest(ctx, x, forest_or_error(ctx, spec))
    out = post_transform(ctx, scores, str(ctx.attr("post_transform")))
    return [build.cast(out, CellType.FLOAT32)]


@converter("TreeEnsemble", 5, domain=ML)
def tree_ensemble(ctx: NodeContext) -> Sequence[Node | None]:
    x = ctx.input(0)
    out_type = x.dtype
    ctx.float_types_only(x)
    work = CellType.FLOAT64 if x.dtype is CellType.FLOAT64 else CellType.FLOAT32
    x = build.cast(x, work)
    n_targets = int(ctx.attr("n_targets") or 0)
    features = _required(ctx, "nodes_featureids").astype(np.int64)
    n = len(features)
    modes = _required(ctx, "nodes_modes").astype(np.int64)
    splits = _required(ctx, "nodes_splits")
    true_ids = _required(ctx, "nodes_truenodeids").astype(np.int64)
    false_ids = _required(ctx, "nodes_falsenodeids").astype(np.int64)
    true_leaf = _required(ctx, "nodes_trueleafs").astype(bool)
    false_leaf = _required(ctx, "nodes_falseleafs").astype(bool)
    mvt = array_attr(ctx, "nodes_missing_value_tracks_true")
    missing = np.zeros(n, bool) if mvt is None or len(mvt) == 0 else mvt.astype(bool)
    for name, arr in (("nodes_modes", modes), ("nodes_splits", splits), ("nodes_truenodeids", true_ids),
                      ("nodes_falsenodeids", false_ids), ("nodes_trueleafs", true_leaf),
                      ("nodes_falseleafs", false_leaf), ("nodes_missing_value_tracks_true", missing)):
        if len(arr) != n:
            raise ctx.error(f"attribute '{name}' has {len(arr)} entries, nodes_featureids has {n}")
    leaf_targets = _required(ctx, "leaf_targetids").astype(np.int64)
    leaf_weights = _required(ctx, "leaf_weights")
    if len(leaf_targets) != len(leaf_weights):
        raise ctx.error("attributes 'leaf_targetids' and 'leaf_weights' differ in length")
    members = _membership(ctx, modes)
    trees = [_opset5_tree(ctx, int(root), k, features, modes, splits, true_ids, false_ids, true_leaf, false_leaf,
                          missing, members, leaf_targets, leaf_weights)
             for k, root in enumerate(_required(ctx, "tree_roots").astype(np.int64))]
    agg = int(ctx.attr("aggregate_function"))
    transform = int(ctx.attr("post_transform"))
    if not 0 <= agg < 4 or not 0 <= transform < len(POST_TRANSFORMS):
        raise ctx.error(f"aggregate_function {agg} or post_transform {transform} is not defined by the opset")
    spec = ForestSpec(tuple(trees), x.shape[-1] if x.rank else 0, n_targets, work, work, OPSET5_AGGREGATES[agg],
                      (), ctx.model)
    scores = evaluate_forest(ctx, x, forest_or_error(ctx, spec))
    return [build.cast(post_transform(ctx, scores, POST_TRANSFORMS[transform]), out_type)]


def _membership(ctx: NodeContext, modes: np.ndarray[Any, Any]) -> list[tuple[float, ...]]:
    """The NaN-delimited sets of membership_values, one per BRANCH_MEMBER node in order."""
    values = array_attr(ctx, "membership_values")
    sets: list[tuple[float, ...]] = []
    current: list[float] = []
    for v in ([] if values is None else values.tolist()):
        if np.isnan(v):
            sets.append(tuple(current))
            current = []
        else:
            current.append(float(v))
    if current:
        sets.append(tuple(current))
    need = int(np.sum(modes == 6))
    if len(sets) < need:
        raise ctx.error(f"attribute 'membership_values' holds {len(sets)} sets for {need} BRANCH_MEMBER nodes")
    return sets


def _opset5_tree(ctx: NodeContext, root: int, k: int, features: Any, modes: Any, splits: Any, true_ids: Any,
                 false_ids: Any, true_leaf: Any, false_leaf: Any, missing: Any, members: list[tuple[float, ...]],
                 leaf_targets: Any, leaf_weights: Any) -> TreeSpec:
    member_index = np.cumsum(modes == 6) - 1
    nodes: list[NodeSpec] = []
    place: dict[tuple[bool, int], int] = {}

    def add(is_leaf: bool, i: int, attr: str) -> int:
        if (is_leaf, i) in place:
            return place[(is_leaf, i)]
        limit = len(leaf_targets) if is_leaf else len(features)
        if not 0 <= i < limit:
            raise ctx.error(f"tree {k}: {attr} = {i} is out of range ({limit} {'leaves' if is_leaf else 'nodes'})")
        place[(is_leaf, i)] = len(nodes)
        nodes.append(NodeSpec(S.LEAF))
        return place[(is_leaf, i)]

    stack = [(False, root, "tree_roots")]
    add(False, root, "tree_roots")
    while stack:
        is_leaf, i, _ = stack.pop()
        me = place[(is_leaf, i)]
        if is_leaf:
            nodes[me] = NodeSpec(S.LEAF, weights=((int(leaf_targets[i]), float(leaf_weights[i])),),
                                 name=f"leaf {i}")
            continue
        mode = int(modes[i])
        if not 0 <= mode < len(OPSET5_MODES):
            raise ctx.error(f"tree {k}, node {i}: nodes_modes[{i}] = {mode} is not a mode of the opset")
        kids = []
        for leaf, child, attr in ((bool(true_leaf[i]), int(true_ids[i]), f"nodes_truenodeids[{i}]"),
                                  (bool(false_leaf[i]), int(false_ids[i]), f"nodes_falsenodeids[{i}]")):
            seen = (leaf, child) in place
            kids.append(add(leaf, child, attr))
            if not seen:
                stack.append((leaf, child, attr))
        name = f"node {i}"
        mset = members[int(member_index[i])] if mode == 6 else ()
        nodes[me] = NodeSpec(OPSET5_MODES[mode], int(features[i]), float(splits[i]), kids[0], kids[1],
                             bool(missing[i]), mset, name=name)
    return TreeSpec(tuple(nodes), 0, f"tree {k} (tree_roots[{k}] = {root})")
