"""LightGBM's `Booster.dump_model()` JSON as a ForestSpec, as Vespa's lightgbm() reads it.

LightGBM compares in double and sums the leaves in double, tree by tree, from 0; so does the
forest (its `predict(raw_score=True)`). A numerical split goes left when x <= threshold; its
`missing_type` says what a NaN does: "NaN" follows `default_left`, "None" reads NaN as 0.0. A
categorical split (`decision_type` "==", threshold "1||3||7") goes left when int(x), truncated
toward zero, is one of the categories; NaN and negative values go right. The features are the
file's `feature_names`, each a rank feature or a function of the profile.
"""

from __future__ import annotations

from typing import Any

from tensor_ir.dtypes import CellType
from tensor_ir.trees import spec as S
from tensor_ir.trees.errors import MalformedForest


def lightgbm_forest(data: Any, model: str) -> S.ForestSpec:
    if not isinstance(data, dict) or "tree_info" not in data:
        raise MalformedForest(f"{model}: a LightGBM dump is a JSON object with 'tree_info' (Booster.dump_model())")
    names = data.get("feature_names")
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise MalformedForest(f"{model}: 'feature_names' must be a list of names")
    per_iteration = int(data.get("num_tree_per_iteration", 1))
    if per_iteration != 1:
        raise MalformedForest(f"{model}: {per_iteration} trees per iteration (multiclass): lightgbm() gives one "
                              "score, train with one tree per iteration")
    trees = tuple(_tree(info, k, model, len(names)) for k, info in enumerate(data["tree_info"]))
    aggregate = "average" if data.get("average_output") else "sum"
    return S.ForestSpec(trees, max(len(names), 1), 1, CellType.FLOAT64, CellType.FLOAT64, aggregate, (), model,
                        tuple(names))


# Vespa's lightgbm() applies the objective's link, as LightGBM's predict() does (its docs: no
# sigmoid() around a binary model); the ranking objectives' scores are the raw sums
RAW_OBJECTIVES = frozenset({"regression", "regression_l2", "l2", "mean_squared_error", "mse", "lambdarank",
                            "rank_xendcg", "xendcg"})


def lightgbm_sigmoid(data: Any, model: str) -> float | None:
    """The factor of the sigmoid a binary objective applies (LightGBM's `sigmoid:`), or None for
    the objectives whose score is the raw sum; other objectives are refused."""
    objective = str(data.get("objective", "regression")) if isinstance(data, dict) else "regression"
    words = objective.split()
    name = words[0] if words else "regression"
    if name in RAW_OBJECTIVES:
        return None
    if name in ("binary", "cross_entropy", "xentropy"):
        for w in words[1:]:
            if w.startswith("sigmoid:"):
                return float(w.split(":", 1)[1])
        return 1.0
    raise MalformedForest(f"{model}: objective '{objective}' is not supported (binary, regression, lambdarank and "
                          "rank_xendcg are)")


def _tree(info: Any, k: int, model: str, n_features: int) -> S.TreeSpec:
    name = f"tree_info[{k}]"
    if not isinstance(info, dict) or not isinstance(info.get("tree_structure"), dict):
        raise MalformedForest(f"{model}, {name}: no 'tree_structure'")
    nodes: list[S.NodeSpec] = []
    # (node json, index it will take); children are placed as they are reached
    pending: list[tuple[dict[str, Any], int]] = [(info["tree_structure"], 0)]
    nodes.append(S.NodeSpec(S.LEAF))
    while pending:
        node, me = pending.pop()
        if "leaf_value" in node and "split_feature" not in node:
            where = f"{model}, {name}, leaf {node.get('leaf_index', me)}"
            nodes[me] = S.NodeSpec(S.LEAF, weights=((0, _number(node["leaf_value"], where, "leaf_value")),),
                                   name=f"leaf {node.get('leaf_index', me)}")
            continue
        where = f"{model}, {name}, split {node.get('split_index', me)}"
        for key in ("left_child", "right_child"):
            if not isinstance(node.get(key), dict):
                raise MalformedForest(f"{where}: '{key}' is missing")
        left, right = len(nodes), len(nodes) + 1
        nodes += [S.NodeSpec(S.LEAF), S.NodeSpec(S.LEAF)]
        pending += [(node["right_child"], right), (node["left_child"], left)]
        feature = node.get("split_feature")
        if isinstance(feature, bool) or not isinstance(feature, int):
            raise MalformedForest(f"{where}: 'split_feature' is not a feature index: {feature!r}")
        label = f"split {node.get('split_index', me)}"
        decision = node.get("decision_type", "<=")
        missing = node.get("missing_type", "None")
        if decision == "==":
            members = _categories(node.get("threshold"), where)
            nodes[me] = S.NodeSpec(S.BRANCH_CATEGORY, feature, 0.0, left, right, False, members, name=label)
            continue
        if decision != "<=":
            raise MalformedForest(f"{where}: decision_type '{decision}' is not '<=' or '=='")
        t = _number(node.get("threshold"), where, "threshold")
        if missing == "NaN":
            missing_left = bool(node.get("default_left", False))
        elif missing == "None":
            missing_left = 0.0 <= t
        elif missing == "Zero":
            raise MalformedForest(f"{where}: missing_type 'Zero' (zero_as_missing) is not supported")
        else:
            raise MalformedForest(f"{where}: missing_type '{missing}' is not 'None', 'NaN' or 'Zero'")
        nodes[me] = S.NodeSpec(S.BRANCH_LEQ, feature, t, left, right, missing_left, name=label)
    return S.TreeSpec(tuple(nodes), 0, name)


def _categories(threshold: Any, where: str) -> tuple[float, ...]:
    try:
        return tuple(float(int(c)) for c in str(threshold).split("||"))
    except ValueError:
        raise MalformedForest(f"{where}: categorical threshold {threshold!r} is not categories joined by '||'") \
            from None


def _number(value: Any, where: str, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise MalformedForest(f"{where}: '{what}' is not a number: {value!r}")
    return float(value)
