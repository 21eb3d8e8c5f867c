"""ai.onnx.ml TreeEnsembleClassifier (opsets 1 and 3): the class scores are one tree_ensemble
node with a target per class; the label and the probabilities follow onnxruntime's rules as
ordinary ops.

- More than two classes: base values are added, the label is the first class of highest
  score, the scores go through the post-transform.
- Two classes with weights for one class only (how skl2onnx and onnxmltools write binary
  models): s is that class's score plus the one base value; the label is the second class when
  s > 0.5 (all weights positive: s is a probability) or s > 0 (a margin), and the scores are
  [1 - s, s], [logistic(-s), logistic(s)] under LOGISTIC, else [-s, s].
- Two classes with weights for both: as more than two.

A class that some documents' leaves give a weight and others' do not has no rule in the spec;
such a model is refused, as are string labels when the label output is used.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from tensor_ir import build
from tensor_ir.dtypes import CellType
from tensor_ir.ir import Node
from tensor_ir.onnx_import.context import NodeContext
from tensor_ir.onnx_import.converters.ml_common import array_attr, float_features, post_transform
from tensor_ir.onnx_import.converters.ml_trees import ML, forest_or_error, legacy_trees
from tensor_ir.onnx_import.registry import converter
from tensor_ir.trees import ForestSpec, TreeSpec
from tensor_ir.trees import spec as S


def _class_coverage(trees: list[TreeSpec], n_classes: int) -> tuple[set[int], set[int]]:
    """Classes every document's leaves give a weight (some tree gives it at every leaf), and
    classes no leaf gives one."""
    always: set[int] = set()
    some: set[int] = set()
    for tree in trees:
        per_leaf = [{t for t, _ in n.weights} for n in tree.nodes if n.mode == S.LEAF]
        if per_leaf:
            always |= set.intersection(*per_leaf)
            some |= set.union(*per_leaf)
    return always, set(range(n_classes)) - some


@converter("TreeEnsembleClassifier", 1, 3, domain=ML)
def tree_ensemble_classifier(ctx: NodeContext) -> Sequence[Node | None]:
    x = ctx.input(0)
    int_labels = array_attr(ctx, "classlabels_int64s")
    str_labels = array_attr(ctx, "classlabels_strings")
    labels = int_labels if int_labels is not None and len(int_labels) else str_labels
    if labels is None or len(labels) == 0:
        raise ctx.error("needs classlabels_int64s or classlabels_strings")
    n_classes = len(labels)
    trees, double = legacy_trees(ctx, n_classes, "class", "class_ids")
    cmp = CellType.FLOAT64 if double or x.dtype is CellType.FLOAT64 else CellType.FLOAT32
    x = build.cast(float_features(ctx, x, cmp), cmp)
    acc = CellType.FLOAT64 if double else CellType.FLOAT32
    spec = ForestSpec(tuple(trees), x.shape[-1] if x.rank else 0, n_classes, cmp, acc, "sum", (), ctx.model)
    scores = build.tree_ensemble(x, forest_or_error(ctx, spec), label=ctx.name)
    base_arr = array_attr(ctx, "base_values", "base_values_as_tensor")
    base = [] if base_arr is None else [float(b) for b in base_arr]
    weights = array_attr(ctx, "class_weights", "class_weights_as_tensor")
    ids = array_attr(ctx, "class_ids")
    class_ids = set() if ids is None else set(ids.astype(np.int64).tolist())
    transform = str(ctx.attr("post_transform"))
    always, never = _class_coverage(trees, n_classes)
    if n_classes == 2 and len(class_ids) == 1 and len(base) < 2:
        label, probs = _binary(ctx, scores, base, bool(weights is None or np.all(weights >= 0)), transform,
                               sorted(class_ids)[0])
        label_index = label
    else:
        mixed = set(range(n_classes)) - always - never
        if mixed and len(base) < n_classes:
            raise ctx.error(f"classes {sorted(mixed)} get weights from the leaves of some documents only: "
                            "onnxruntime then leaves them out of the label, which this importer does not do")
        if base:
            if len(base) != n_classes:
                raise ctx.error(f"{len(base)} base values for {n_classes} classes")
            scores = build.join("add", scores, build.constant(np.asarray(base, acc.np_dtype)))
        ranked = scores
        if never and not base:
            # a class no leaf scores takes no part in the label (onnxruntime's has_score)
            mask = np.zeros(n_classes, acc.np_dtype)
            mask[sorted(never)] = -np.inf
            ranked = build.join("add", scores, build.constant(mask))
        label_index = build.arg_reduce(ranked, "argmax", -1, False, False)
        probs = post_transform(ctx, scores, transform)
    if int_labels is not None and len(int_labels):
        label_out: Node | None = build.gather(build.constant(np.asarray(int_labels, np.int64)), label_index, 0)
    elif ctx.output_used(0):
        raise ctx.error("string class labels are not supported (numeric tensors only); use classlabels_int64s "
                        "or read the probabilities output only")
    else:
        label_out = None
    return [label_out, build.cast(probs, CellType.FLOAT32)]


def _binary(ctx: NodeContext, scores: Node, base: list[float], all_positive: bool, transform: str,
            scored: int) -> tuple[Node, Node]:
    s = build.slice_(scores, [0] * (scores.rank - 1) + [scored], [*scores.shape[:-1], scored + 1],
                     [1] * scores.rank)
    if base:
        s = build.join("add", s, build.scalar(base[0], s.dtype))
    cut = build.scalar(0.5 if all_positive else 0.0, s.dtype)
    positive = build.reshape(build.join("gt", s, cut), s.shape[:-1])
    label = build.select(positive, build.scalar(1, CellType.INT64), build.scalar(0, CellType.INT64))
    if transform == "PROBIT":
        raise ctx.error("PROBIT on a binary classifier of one scored class is not supported")
    if all_positive:
        other = build.join("sub", build.scalar(1.0, s.dtype), s)
        return label, build.concat([other, s], -1)
    if transform == "LOGISTIC":
        return label, build.concat([build.map_("sigmoid", build.map_("neg", s)), build.map_("sigmoid", s)], -1)
    return label, build.concat([build.map_("neg", s), s], -1)
