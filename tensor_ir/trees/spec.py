"""The form in which importers hand over a forest: trees of nodes as the model file gives them,
in any of the comparison modes of ONNX-ML, XGBoost and LightGBM. `canonical_forest` turns a
`ForestSpec` into the one canonical `Forest` the backends evaluate."""

from __future__ import annotations

from dataclasses import dataclass, field

from tensor_ir.dtypes import CellType

# ONNX-ML's modes (TreeEnsemble* nodes_modes), and LightGBM's categorical split
LEAF = "LEAF"
BRANCH_LEQ = "BRANCH_LEQ"
BRANCH_LT = "BRANCH_LT"
BRANCH_GTE = "BRANCH_GTE"
BRANCH_GT = "BRANCH_GT"
BRANCH_EQ = "BRANCH_EQ"
BRANCH_NEQ = "BRANCH_NEQ"
BRANCH_MEMBER = "BRANCH_MEMBER"  # x equals one of `members`
BRANCH_CATEGORY = "BRANCH_CATEGORY"  # LightGBM: int(x), truncated toward 0, is one of `members`
MODES = frozenset({LEAF, BRANCH_LEQ, BRANCH_LT, BRANCH_GTE, BRANCH_GT, BRANCH_EQ, BRANCH_NEQ,
                   BRANCH_MEMBER, BRANCH_CATEGORY})
AGGREGATES = frozenset({"sum", "average", "min", "max"})


@dataclass(frozen=True)
class NodeSpec:
    """One node. Children are indices into the tree's node list; a node goes to `true_child`
    when its comparison holds, or when x is NaN and `missing_true` (the comparison itself, as in
    C, is false for NaN except under BRANCH_NEQ)."""

    mode: str
    feature: int = -1
    threshold: float = 0.0
    true_child: int = -1
    false_child: int = -1
    missing_true: bool = False
    members: tuple[float, ...] = ()
    weights: tuple[tuple[int, float], ...] = ()  # a leaf's (target, weight) pairs
    name: str = ""  # how the model file names it, for errors ("node id 7")


@dataclass(frozen=True)
class TreeSpec:
    nodes: tuple[NodeSpec, ...]
    root: int = 0
    name: str = ""  # "tree 3", "tree_info[3]"


@dataclass(frozen=True)
class ForestSpec:
    """`threshold_type` is the type the file's thresholds are in; `input_type` the type x is
    compared in (the comparison is exact in both: thresholds are rounded toward the side that
    keeps every decision); `accumulate_type` the type leaves are summed in, tree by tree."""

    trees: tuple[TreeSpec, ...]
    n_features: int
    n_targets: int
    input_type: CellType = CellType.FLOAT32
    accumulate_type: CellType = CellType.FLOAT32
    aggregate: str = "sum"
    base_values: tuple[float, ...] = ()
    model: str = ""  # the model file, for errors
    feature_names: tuple[str, ...] = field(default=())
