"""ForestSpecs written as ONNX-ML models: TreeEnsembleRegressor (ai.onnx.ml opset 3, float or
double attributes) and TreeEnsemble (opset 5), for comparison with onnxruntime."""

from __future__ import annotations

from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from tensor_ir.trees import ForestSpec
from tensor_ir.trees import spec as S

OPSET5_MODE = {S.BRANCH_LEQ: 0, S.BRANCH_LT: 1, S.BRANCH_GTE: 2, S.BRANCH_GT: 3, S.BRANCH_EQ: 4, S.BRANCH_NEQ: 5,
               S.BRANCH_MEMBER: 6}


def _model(node: onnx.NodeProto, x_type: int, n_features: int, y_type: int, ml_opset: int) -> onnx.ModelProto:
    graph = helper.make_graph([node], "forest", [helper.make_tensor_value_info("X", x_type, [None, n_features])],
                              [helper.make_tensor_value_info("Y", y_type, [None, None])])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17),
                                                   helper.make_opsetid("ai.onnx.ml", ml_opset)], ir_version=9)


def regressor(spec: ForestSpec, post_transform: str = "NONE", double: bool = False,
              x_type: int = TensorProto.FLOAT) -> onnx.ModelProto:
    cols: dict[str, list[Any]] = {k: [] for k in ("treeids", "nodeids", "featureids", "modes", "values", "true",
                                                  "false", "mvt")}
    targets: dict[str, list[Any]] = {"treeids": [], "nodeids": [], "ids": [], "weights": []}
    for t, tree in enumerate(spec.trees):
        for i, node in enumerate(tree.nodes):
            leaf = node.mode == S.LEAF
            cols["treeids"].append(t)
            cols["nodeids"].append(i)
            cols["featureids"].append(0 if leaf else node.feature)
            cols["modes"].append(node.mode)
            cols["values"].append(0.0 if leaf else node.threshold)
            cols["true"].append(0 if leaf else node.true_child)
            cols["false"].append(0 if leaf else node.false_child)
            cols["mvt"].append(int(node.missing_true))
            for target, w in node.weights:
                targets["treeids"].append(t)
                targets["nodeids"].append(i)
                targets["ids"].append(target)
                targets["weights"].append(w)
    attrs: dict[str, Any] = {
        "n_targets": spec.n_targets, "aggregate_function": spec.aggregate.upper(), "post_transform": post_transform,
        "nodes_treeids": cols["treeids"], "nodes_nodeids": cols["nodeids"], "nodes_featureids": cols["featureids"],
        "nodes_modes": cols["modes"], "nodes_truenodeids": cols["true"], "nodes_falsenodeids": cols["false"],
        "nodes_missing_value_tracks_true": cols["mvt"], "target_treeids": targets["treeids"],
        "target_nodeids": targets["nodeids"], "target_ids": targets["ids"],
    }  # fmt: skip
    if double:
        attrs["nodes_values_as_tensor"] = numpy_helper.from_array(np.asarray(cols["values"], np.float64))
        attrs["target_weights_as_tensor"] = numpy_helper.from_array(np.asarray(targets["weights"], np.float64))
    else:
        attrs["nodes_values"] = [float(np.float32(v)) for v in cols["values"]]
        attrs["target_weights"] = targets["weights"]
    if spec.base_values:
        # onnxruntime reads base_values_as_tensor as float only
        attrs["base_values"] = list(spec.base_values)
    node = helper.make_node("TreeEnsembleRegressor", ["X"], ["Y"], domain="ai.onnx.ml", **attrs)
    return _model(node, x_type, spec.n_features, TensorProto.FLOAT, 3)


def tree_ensemble(spec: ForestSpec, post_transform: int = 0, x_type: int = TensorProto.FLOAT) -> onnx.ModelProto:
    """Opset 5: leaves of one weight each (the spec's first); base values are not in this op."""
    np_type = np.float64 if x_type == TensorProto.DOUBLE else np.float32
    feat, modes, splits, tid, tleaf, fid, fleaf, mvt, members = [], [], [], [], [], [], [], [], []
    leaf_t, leaf_w, roots = [], [], []
    for tree in spec.trees:
        internal: dict[int, int] = {}
        leaves: dict[int, int] = {}
        for i, node in enumerate(tree.nodes):
            if node.mode == S.LEAF:
                leaves[i] = len(leaf_t)
                target, w = node.weights[0]
                leaf_t.append(target)
                leaf_w.append(w)
            else:
                internal[i] = len(feat) + len(internal)
        roots.append(internal.get(tree.root, 0))
        for node in tree.nodes:
            if node.mode == S.LEAF:
                continue
            feat.append(node.feature)
            modes.append(OPSET5_MODE[node.mode])
            splits.append(node.threshold)
            for child, ids, isleaf in ((node.true_child, tid, tleaf), (node.false_child, fid, fleaf)):
                isleaf.append(int(child in leaves))
                ids.append(leaves[child] if child in leaves else internal[child])
            mvt.append(int(node.missing_true))
            if node.mode == S.BRANCH_MEMBER:
                members += [*node.members, np.nan]
    attrs: dict[str, Any] = {
        "n_targets": spec.n_targets, "aggregate_function": ["average", "sum", "min", "max"].index(spec.aggregate),
        "post_transform": post_transform, "tree_roots": roots, "nodes_featureids": feat,
        "nodes_modes": numpy_helper.from_array(np.asarray(modes, np.uint8)),
        "nodes_splits": numpy_helper.from_array(np.asarray(splits, np_type)),
        "nodes_truenodeids": tid, "nodes_trueleafs": tleaf, "nodes_falsenodeids": fid, "nodes_falseleafs": fleaf,
        "nodes_missing_value_tracks_true": mvt, "leaf_targetids": leaf_t,
        "leaf_weights": numpy_helper.from_array(np.asarray(leaf_w, np_type)),
    }  # fmt: skip
    if members:
        attrs["membership_values"] = numpy_helper.from_array(np.asarray(members, np_type))
    node = helper.make_node("TreeEnsemble", ["X"], ["Y"], domain="ai.onnx.ml", **attrs)
    return _model(node, x_type, spec.n_features, x_type, 5)
