"""XGBoost's `dump_model(..., dump_format="json")` as a ForestSpec, as Vespa's xgboost() reads it.

The file is a JSON array of trees; a node is `{"nodeid", "split", "split_condition", "yes",
"no", "missing", "children"}` or `{"nodeid", "leaf"}`. XGBoost decides `x < split_condition`
in float32 (its DMatrix holds float32 and its thresholds are float32) and sums the leaves in
float32, tree by tree: so does the forest. A NaN goes to the `missing` child. The features are
the distinct `split` names in the order the file first uses them; each is a rank feature or a
function of the profile. The dump holds no base_score: as in Vespa, the score is the sum of
the leaves (XGBoost's `predict(output_margin=True)` less its base_score).
"""

from __future__ import annotations

from typing import Any

from tensor_ir.dtypes import CellType
from tensor_ir.trees import spec as S
from tensor_ir.trees.errors import MalformedForest


def xgboost_forest(data: Any, model: str) -> S.ForestSpec:
    if isinstance(data, dict) and "learner" in data:
        raise MalformedForest(f"{model}: this is XGBoost's save_model JSON; xgboost() reads the dump of "
                              "Booster.dump_model(path, dump_format='json')")
    if not isinstance(data, list):
        raise MalformedForest(f"{model}: an XGBoost dump is a JSON array of trees, not {type(data).__name__}")
    features: dict[str, int] = {}
    trees = tuple(_tree(t, k, model, features) for k, t in enumerate(data))
    return S.ForestSpec(trees, max(len(features), 1), 1, CellType.FLOAT32, CellType.FLOAT32, "sum", (), model,
                        tuple(features))


def _tree(root: Any, k: int, model: str, features: dict[str, int]) -> S.TreeSpec:
    name = f"tree {k}"
    flat: list[dict[str, Any]] = []
    stack = [root]
    while stack:
        node = stack.pop()
        if not isinstance(node, dict) or "nodeid" not in node:
            raise MalformedForest(f"{model}, {name}: a node without a nodeid: {str(node)[:80]}")
        flat.append(node)
        children = node.get("children", [])
        if not isinstance(children, list):
            raise MalformedForest(f"{model}, {name}, node {node['nodeid']}: 'children' is not a list")
        stack.extend(children)
    position: dict[Any, int] = {}
    for i, node in enumerate(flat):
        if node["nodeid"] in position:
            raise MalformedForest(f"{model}, {name}: nodeid {node['nodeid']} appears twice")
        position[node["nodeid"]] = i
    nodes = []
    for node in flat:
        where = f"{model}, {name}, node {node['nodeid']}"
        if "leaf" in node:
            nodes.append(S.NodeSpec(S.LEAF, weights=((0, _number(node["leaf"], where, "leaf")),),
                                    name=f"node {node['nodeid']}"))
            continue
        if "split_condition" not in node:
            raise MalformedForest(f"{where}: a split without 'split_condition' (categorical splits of XGBoost "
                                  "are not supported)")
        split = node.get("split")
        if not isinstance(split, str) or not split:
            raise MalformedForest(f"{where}: 'split' must name a feature")
        feature = features.setdefault(split, len(features))
        yes, no = (_child(node, key, position, where) for key in ("yes", "no"))
        missing = node.get("missing")
        if missing is not None and missing not in (node["yes"], node["no"]):
            raise MalformedForest(f"{where}: missing child {missing} is neither 'yes' ({node['yes']}) nor 'no' "
                                  f"({node['no']})")
        # without a missing child a NaN fails x < t, as in Vespa's if()
        missing_true = missing is not None and missing == node["yes"]
        t = _number(node["split_condition"], where, "split_condition")
        nodes.append(S.NodeSpec(S.BRANCH_LT, feature, t, yes, no, missing_true, name=f"node {node['nodeid']}"))
    return S.TreeSpec(tuple(nodes), 0, name)


def _child(node: dict[str, Any], key: str, position: dict[Any, int], where: str) -> int:
    if key not in node:
        raise MalformedForest(f"{where}: a split without '{key}'")
    if node[key] not in position:
        raise MalformedForest(f"{where}: '{key}' child {node[key]} is not a node of the tree")
    return position[node[key]]


def _number(value: Any, where: str, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise MalformedForest(f"{where}: '{what}' is not a number: {value!r}")
    return float(value)
