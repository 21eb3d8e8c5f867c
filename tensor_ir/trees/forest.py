"""The canonical forest: every tree ensemble, whatever file it came from, in one form.

Every internal node is one of three kinds, each with an explicit missing-value bit:

- LEQ: true when x <= threshold, the threshold held in the input's own type and rounded so
  that every decision equals the file's comparison (x < t becomes x <= the largest value
  below t, a double threshold against float input becomes the float at or below it). A NaN
  threshold is never true. GT, GTE and NEQ become LEQ, LT and EQ with the children swapped.
- MEMBER: true when x is one of the node's sorted `members` (ONNX's EQ and BRANCH_MEMBER).
- CATEGORY: true when x truncated toward zero is one of them (LightGBM's categorical split).

A node whose x is NaN goes to its true child exactly when its missing bit is set. A leaf is
its own child, so every tree can be walked a fixed number of steps. Nodes of all trees lie
in one table, each tree's breadth first; leaves own rows of `leaf_values` ([leaves, targets]
in the accumulation type). Built once at import; hashed by content, so programs holding the
same forest are equal.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from tensor_ir.dtypes import CellType
from tensor_ir.trees import spec as S
from tensor_ir.trees.errors import MalformedForest
from tensor_ir.trees.layout import PerfectLayout, perfect_layout

LEAF, LEQ, MEMBER, CATEGORY = 0, 1, 2, 3
KIND_NAMES = {LEAF: "leaf", LEQ: "leq", MEMBER: "member", CATEGORY: "category"}

Array = npt.NDArray[Any]


@dataclass(frozen=True, eq=False)
class Forest:
    n_features: int
    n_targets: int
    input_type: CellType
    accumulate_type: CellType
    aggregate: str
    base_values: Array  # [targets], accumulation type
    kind: Array  # uint8 [nodes]
    feature: Array  # int32 [nodes]; 0 at leaves, so gathers stay in range
    threshold: Array  # [nodes], input type
    missing_true: Array  # bool [nodes]
    true_child: Array  # int32 [nodes]
    false_child: Array  # int32 [nodes]
    set_start: Array  # int32 [nodes]: a MEMBER or CATEGORY node's members are members[start:stop]
    set_stop: Array
    members: Array  # [cells], input type, sorted within each node
    leaf_row: Array  # int32 [nodes]: the leaf's row of leaf_values, -1 for internal nodes
    roots: Array  # int32 [trees]
    depths: Array  # int32 [trees]: edges on the longest path
    leaf_values: Array  # [leaves, targets], accumulation type
    leaf_touch: Array  # bool [leaves, targets]: a weight was given (min and max skip the rest)
    perfect: PerfectLayout | None
    digest: str
    model: str = ""

    @property
    def n_trees(self) -> int:
        return int(self.roots.shape[0])

    @property
    def n_nodes(self) -> int:
        return int(self.kind.shape[0])

    @property
    def max_depth(self) -> int:
        return int(self.depths.max()) if self.depths.size else 0

    @property
    def layout(self) -> str:
        return "perfect" if self.perfect is not None else "nodes"

    def kinds(self) -> dict[str, int]:
        counts = np.bincount(self.kind, minlength=4)
        return {KIND_NAMES[k]: int(c) for k, c in enumerate(counts) if c}

    def describe(self) -> str:
        modes = ", ".join(f"{n} {k}" for k, n in self.kinds().items())
        used = np.unique(self.feature[self.kind != LEAF]).size
        return (f"forest of {self.n_trees} trees, depth <= {self.max_depth}, {used} of {self.n_features} "
                f"features used, {self.n_targets} target{'s' if self.n_targets != 1 else ''}, nodes: {modes}; "
                f"{self.aggregate} in {self.accumulate_type.np_name}, compared in {self.input_type.np_name}, "
                f"{self.layout} layout")

    def __hash__(self) -> int:
        return hash(self.digest)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Forest) and other.digest == self.digest

    def __repr__(self) -> str:
        return f"forest<{self.n_trees} trees, depth {self.max_depth}, {self.n_features} features -> {self.n_targets}>"


def _frozen(a: Array) -> Array:
    a = np.ascontiguousarray(a)
    a.flags.writeable = False
    return a


def floor_to(t: Array, dt: np.dtype[Any]) -> Array:
    """The largest value of `dt` at or below each t (t itself when representable)."""
    with np.errstate(over="ignore"):
        r = t.astype(dt)
    r = np.where(r.astype(np.float64) > t, np.nextafter(r, np.asarray(-np.inf, dt)), r)
    return np.asarray(r, dt)


def below(t: Array, dt: np.dtype[Any]) -> Array:
    """The largest value of `dt` strictly below each t; NaN (never true) below -inf."""
    r = floor_to(t, dt)
    r = np.where(r.astype(np.float64) == t, np.nextafter(r, np.asarray(-np.inf, dt)), r)
    return np.asarray(np.where(t == -np.inf, np.nan, r), dt)


def _where(spec: S.ForestSpec, tree: S.TreeSpec, i: int, node: S.NodeSpec) -> str:
    model = f"model '{spec.model}', " if spec.model else ""
    tname = tree.name or "tree"
    nname = node.name or f"node {i}"
    return f"{model}{tname}, {nname}"


def _tree_order(spec: S.ForestSpec, tree: S.TreeSpec) -> tuple[list[int], list[int]]:
    """Breadth-first order of the nodes reachable from the root, and each one's depth;
    refuses children out of range, cycles and shared subtrees."""
    n = len(tree.nodes)
    if not 0 <= tree.root < n:
        raise MalformedForest(f"model '{spec.model}', {tree.name or 'tree'}: root {tree.root} is not one of its "
                              f"{n} nodes")
    order, depth = [tree.root], [0]
    seen = {tree.root}
    k = 0
    while k < len(order):
        i = order[k]
        node = tree.nodes[i]
        if node.mode != S.LEAF:
            for attr, c in (("true child", node.true_child), ("false child", node.false_child)):
                if not 0 <= c < n:
                    raise MalformedForest(f"{_where(spec, tree, i, node)}: {attr} {c} is out of range "
                                          f"(the tree has {n} nodes)")
                if c in seen:
                    what = "a cycle" if _reaches(tree, c, i) else "a node with two parents"
                    raise MalformedForest(f"{_where(spec, tree, i, node)}: {attr} {tree.nodes[c].name or c} "
                                          f"makes {what}")
                seen.add(c)
                order.append(c)
                depth.append(depth[k] + 1)
        k += 1
    return order, depth


def _reaches(tree: S.TreeSpec, start: int, target: int) -> bool:
    stack, seen = [start], set()
    while stack:
        i = stack.pop()
        if i == target:
            return True
        if i in seen or not 0 <= i < len(tree.nodes):
            continue
        seen.add(i)
        nd = tree.nodes[i]
        if nd.mode != S.LEAF:
            stack += [nd.true_child, nd.false_child]
    return False


def canonical_forest(spec: S.ForestSpec) -> Forest:
    """The canonical forest of `spec`; MalformedForest names what is wrong and where."""
    if spec.aggregate not in S.AGGREGATES:
        raise MalformedForest(f"model '{spec.model}': aggregate function '{spec.aggregate}' is not one of "
                              f"{', '.join(sorted(S.AGGREGATES))}")
    if spec.input_type not in (CellType.FLOAT32, CellType.FLOAT64):
        raise MalformedForest(f"model '{spec.model}': trees compare float or double inputs, not "
                              f"{spec.input_type.np_name}")
    if spec.n_targets < 1:
        raise MalformedForest(f"model '{spec.model}': a forest needs at least one target")
    xdt = spec.input_type.np_dtype
    adt = spec.accumulate_type.np_dtype
    cols: dict[str, list[Any]] = {k: [] for k in ("kind", "feature", "raw", "mode", "mt", "tc", "fc", "leaf")}
    sets: list[tuple[float, ...]] = []
    leaves: list[tuple[tuple[int, float], ...]] = []
    roots, depths = [], []
    for tree in spec.trees:
        order, depth = _tree_order(spec, tree)
        base = len(cols["kind"])
        pos = {i: base + k for k, i in enumerate(order)}
        roots.append(base)
        depths.append(max(depth))
        for i in order:
            node = tree.nodes[i]
            _append(spec, tree, i, node, pos, cols, sets, leaves)
    kind = np.asarray(cols["kind"], np.uint8)
    raw = np.asarray(cols["raw"], np.float64)
    mode = cols["mode"]
    swap = np.asarray([m in (S.BRANCH_GT, S.BRANCH_GTE, S.BRANCH_NEQ) for m in mode], bool)
    strict = np.asarray([m in (S.BRANCH_LT, S.BRANCH_GTE) for m in mode], bool)
    threshold = np.where(strict, below(raw, xdt), floor_to(raw, xdt)).astype(xdt)
    threshold[kind != LEQ] = 0
    # the decision for NaN in the file's orientation: the comparison is false, except x != t
    nan_true = np.asarray(cols["mt"], bool) | np.asarray([m == S.BRANCH_NEQ for m in mode], bool)
    tc = np.asarray(cols["tc"], np.int32)
    fc = np.asarray(cols["fc"], np.int32)
    true_child = np.where(swap, fc, tc).astype(np.int32)
    false_child = np.where(swap, tc, fc).astype(np.int32)
    missing_true = nan_true ^ swap
    starts: list[int] = []
    stops: list[int] = []
    cells: list[float] = []
    for members, k in zip(sets, kind, strict=True):
        starts.append(len(cells))
        if k in (MEMBER, CATEGORY):
            vals = np.asarray(members, np.float64)
            # a member the input type cannot hold equals no input
            vals = vals[vals.astype(xdt).astype(np.float64) == vals] if k == MEMBER else np.trunc(vals)
            cells.extend(np.unique(vals.astype(xdt)).tolist())
        stops.append(len(cells))
    leaf_values = np.zeros((len(leaves), spec.n_targets), adt)
    leaf_touch = np.zeros((len(leaves), spec.n_targets), bool)
    for r, weights in enumerate(leaves):
        for target, w in weights:
            # each weight rounded to the accumulation type as it is stored, as onnxruntime does
            leaf_values[r, target] = adt.type(leaf_values[r, target] + adt.type(w))
            leaf_touch[r, target] = True
    base_values = np.zeros(spec.n_targets, adt)
    if spec.base_values:
        if len(spec.base_values) != spec.n_targets:
            raise MalformedForest(f"model '{spec.model}': {len(spec.base_values)} base values for "
                                  f"{spec.n_targets} targets")
        base_values = np.asarray(spec.base_values, np.float64).astype(adt)
    arrays = {
        "base_values": base_values, "kind": kind, "feature": np.asarray(cols["feature"], np.int32),
        "threshold": threshold, "missing_true": missing_true, "true_child": true_child,
        "false_child": false_child, "set_start": np.asarray(starts, np.int32),
        "set_stop": np.asarray(stops, np.int32), "members": np.asarray(cells, xdt),
        "leaf_row": np.asarray(cols["leaf"], np.int32), "roots": np.asarray(roots, np.int32),
        "depths": np.asarray(depths, np.int32), "leaf_values": leaf_values, "leaf_touch": leaf_touch,
    }  # fmt: skip
    h = hashlib.blake2b(digest_size=16)
    h.update(repr((spec.n_features, spec.n_targets, spec.input_type.name, spec.accumulate_type.name,
                   spec.aggregate)).encode())
    for name, a in arrays.items():
        h.update(f"{name}{a.dtype}{a.shape}".encode())
        h.update(np.ascontiguousarray(a).tobytes())
    frozen = {k: _frozen(v) for k, v in arrays.items()}
    perfect = perfect_layout(frozen["kind"], frozen["feature"], frozen["threshold"], frozen["missing_true"],
                             frozen["true_child"], frozen["false_child"], frozen["leaf_row"], frozen["roots"],
                             frozen["depths"], spec.n_features)
    return Forest(spec.n_features, spec.n_targets, spec.input_type, spec.accumulate_type, spec.aggregate,
                  perfect=perfect, digest=h.hexdigest(), model=spec.model, **frozen)


def _append(spec: S.ForestSpec, tree: S.TreeSpec, i: int, node: S.NodeSpec, pos: dict[int, int],
            cols: dict[str, list[Any]], sets: list[tuple[float, ...]],
            leaves: list[tuple[tuple[int, float], ...]]) -> None:
    if node.mode not in S.MODES:
        raise MalformedForest(f"{_where(spec, tree, i, node)}: mode '{node.mode}' is not one of "
                              f"{', '.join(sorted(S.MODES))}")
    me = pos[i]
    if node.mode == S.LEAF:
        for target, _ in node.weights:
            if not 0 <= target < spec.n_targets:
                raise MalformedForest(f"{_where(spec, tree, i, node)}: target {target} is out of range for "
                                      f"{spec.n_targets} targets")
        cols["kind"].append(LEAF)
        cols["feature"].append(0)
        cols["tc"].append(me)
        cols["fc"].append(me)
        cols["leaf"].append(len(leaves))
        leaves.append(node.weights)
        cols["raw"].append(0.0)
        cols["mode"].append(S.LEAF)
        cols["mt"].append(False)
        sets.append(())
        return
    if not 0 <= node.feature < spec.n_features:
        raise MalformedForest(f"{_where(spec, tree, i, node)}: feature {node.feature} is beyond the input's "
                              f"{spec.n_features} features")
    member = node.mode in (S.BRANCH_EQ, S.BRANCH_NEQ, S.BRANCH_MEMBER)
    kind = CATEGORY if node.mode == S.BRANCH_CATEGORY else MEMBER if member else LEQ
    cols["kind"].append(kind)
    cols["feature"].append(node.feature)
    cols["tc"].append(pos[node.true_child])
    cols["fc"].append(pos[node.false_child])
    cols["leaf"].append(-1)
    cols["raw"].append(float(node.threshold))
    cols["mode"].append(node.mode)
    cols["mt"].append(bool(node.missing_true))
    sets.append(node.members if node.mode in (S.BRANCH_MEMBER, S.BRANCH_CATEGORY) else (float(node.threshold),))
