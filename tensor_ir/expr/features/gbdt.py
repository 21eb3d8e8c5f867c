"""`xgboost("file.json")` and `lightgbm("file.json")`: gradient-boosted trees from the
package's models/, as one tree_ensemble node (tensor_ir/trees).

As in Vespa, each feature name in the model file is a rank feature expression, read by its
name: `attribute(price)`, `query(q)`, a profile function such as `bi_encoder`, or any feature
the profile could call (`bm25(title)`, refused here until text matching exists). Each must be a
number. xgboost() compares and sums in float32 as XGBoost does, lightgbm() in double as
LightGBM does, so scores equal `Booster.predict(output_margin=True)` (less XGBoost's
base_score, which its dump does not hold) and `Booster.predict(raw_score=True)`; as in Vespa,
lightgbm() of a binary objective applies its sigmoid (LightGBM's `predict()`), and xgboost() of
any objective is the margin (wrap it in sigmoid() for a logistic one).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from tensor_ir import build
from tensor_ir.dtypes import CellType
from tensor_ir.expr.ast import Call, Name, Str
from tensor_ir.expr.errors import RankingError
from tensor_ir.expr.features import rank_feature
from tensor_ir.expr.parser import parse_expression
from tensor_ir.expr.types import TensorType
from tensor_ir.expr.values import TValue
from tensor_ir.ir import Node
from tensor_ir.trees import ForestSpec, MalformedForest, canonical_forest
from tensor_ir.trees.lightgbm_json import lightgbm_forest, lightgbm_sigmoid
from tensor_ir.trees.xgboost_json import xgboost_forest

READERS: dict[str, Callable[[Any, str], ForestSpec]] = {"xgboost": xgboost_forest, "lightgbm": lightgbm_forest}


@rank_feature("xgboost", "lightgbm")
def gbdt(ctx: Any, compiler: Any, call: Call) -> TValue:
    if len(call.args) != 1 or not isinstance(call.args[0], Str | Name):
        raise RankingError(f'{call.name}() takes one model file, as in {call.name}("my_model.json")', call.loc)
    arg = call.args[0]
    ref = arg.value if isinstance(arg, Str) else arg.name
    read = getattr(ctx, "read_file", None)
    if read is None:
        raise RankingError(f"{call.name}({ref}): model files are read from an application package", call.loc)
    label, data = read(ref, call.loc)
    try:
        parsed = json.loads(data)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise RankingError(f"{call.name}({ref}): {label} is not valid JSON: {e}", call.loc) from None
    try:
        spec = READERS[call.name](parsed, label)
        forest = canonical_forest(spec)
        sigmoid = lightgbm_sigmoid(parsed, label) if call.name == "lightgbm" else None
    except MalformedForest as e:
        raise RankingError(f"{call.name}({ref}): {e}", call.loc) from None
    names = spec.feature_names or ("0",)
    inputs = build.concat([_feature(ctx, compiler, call, label, n) for n in names], 0)
    score = build.tree_ensemble(build.cast(inputs, forest.input_type), forest, label=f"{call.name}({label})")
    value = build.cast(build.reshape(score, ()), CellType.FLOAT64)
    if sigmoid is not None:
        value = build.map_("sigmoid", build.join("mul", value, build.scalar(sigmoid, CellType.FLOAT64)))
    if ctx is not None and hasattr(ctx, "models_used"):
        ctx.models_used.append(label)
    return TValue(value, TensorType(CellType.FLOAT64, ()))


def _feature(ctx: Any, compiler: Any, call: Call, label: str, name: str) -> Node:
    """The value of one of the model's features, as a [1] double."""
    from tensor_ir.expr.compiler import Compiler

    where = f"{call.name}({label}): feature '{name}'"
    try:
        expr = parse_expression(name, call.loc.file, call.loc.line, call.loc.column)
        value = Compiler(compiler.context).compile(expr)
    except RankingError as e:
        raise RankingError(f"{where}: {e.message}", call.loc) from None
    if value.node.size != 1:
        raise RankingError(f"{where} must be a number, it is {value.type}", call.loc)
    node = value.node if value.node.dtype is CellType.FLOAT64 else build.cast(value.node, CellType.FLOAT64)
    return build.reshape(node, (1,))
