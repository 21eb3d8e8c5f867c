"""Time rank features, as Vespa defines them (searchlib's nowfeature, agefeature,
freshnessfeature and LogarithmCalculator):

- `now`: the time of the query in whole seconds since the epoch; a request may fix it
  with the query input `vespa.now` (Vespa's query property of that name).
- `age(f)`: `now` less the attribute's value read as a whole number of seconds, never
  below 0.
- `freshness(f)`: `max(1 - age(f)/maxAge, 0)`; `freshness(f).logscale`:
  `(log(maxAge + s) - log(min(age, maxAge) + s)) / (log(maxAge + s) - log(s))` with
  `s = halfResponse^2 / (maxAge - 2 halfResponse)`, so that age halfResponse gives 0.5.
  maxAge (default 90 days) and halfResponse (default 7 days) come from the profile's
  rank-properties `freshness(f).maxAge` and `freshness(f).halfResponse`, corrected as
  Vespa corrects them (at least 1; halfResponse below maxAge/2).
"""

from __future__ import annotations

import math
from typing import Any

from tensor_ir import build
from tensor_ir.dtypes import CellType
from tensor_ir.expr.ast import Call, Name, Str
from tensor_ir.expr.errors import RankingError
from tensor_ir.expr.features import rank_feature
from tensor_ir.expr.features.per_query import DOUBLE, NOW_PROPERTY, per_query_number, property_number
from tensor_ir.expr.values import TValue

DEFAULT_MAX_AGE = 3 * 30 * 24 * 60 * 60.0
DEFAULT_HALF_RESPONSE = 7 * 24 * 60 * 60.0


def _no_output(call: Call) -> None:
    if call.output is not None:
        raise RankingError(f"{call.name}(...) has no output '{call.output}'", call.loc)


def _field_argument(call: Call) -> str:
    if len(call.args) != 1 or not isinstance(call.args[0], Name | Str):
        raise RankingError(f"{call.name}() takes one attribute name, as in {call.name}(timestamp)", call.loc)
    arg = call.args[0]
    return arg.name if isinstance(arg, Name) else arg.value


def _now(ctx: Any, call: Call) -> TValue:
    # Vespa's now is a whole number of seconds (atoll of the property, or the clock): the
    # ranker fills it so (server/per_query.py)
    return per_query_number(ctx, NOW_PROPERTY, math.nan, call.loc)


@rank_feature("now")
def _now_feature(ctx: Any, compiler: Any, call: Call) -> TValue:
    _no_output(call)
    if call.args:
        raise RankingError("now takes no arguments", call.loc)
    return _now(ctx, call)


def _age(ctx: Any, call: Call, name: str) -> TValue:
    attr = ctx.attribute(name, call.loc)
    if not attr.is_scalar:
        raise RankingError(f"{call.name}({name}) needs a number attribute (seconds since the epoch), "
                           f"but attribute({name}) is {attr.type}", call.loc)
    # Vespa reads the attribute into an int64: whole seconds, truncated toward zero
    doc_time = build.cast(build.cast(attr.node, CellType.INT64), CellType.FLOAT64)
    age = build.join("sub", _now(ctx, call).node, doc_time)
    return TValue(build.join("max", age, build.scalar(0.0, CellType.FLOAT64)), DOUBLE)


@rank_feature("age")
def _age_feature(ctx: Any, compiler: Any, call: Call) -> TValue:
    _no_output(call)
    return _age(ctx, call, _field_argument(call))


def freshness_parameters(ctx: Any, call: Call, name: str) -> tuple[float, float]:
    """(maxAge, halfResponse) of freshness(name), corrected as Vespa corrects them."""
    base = f"freshness({name})"
    max_age = property_number(ctx, f"{base}.maxAge", call.loc)
    half = property_number(ctx, f"{base}.halfResponse", call.loc)
    max_age = DEFAULT_MAX_AGE if max_age is None else max_age
    half = DEFAULT_HALF_RESPONSE if half is None else half
    max_age = max(max_age, 1.0)
    half = max(half, 1.0)
    if half >= max_age / 2:
        half = max_age / 2 - 1
    return max_age, half


@rank_feature("freshness")
def _freshness(ctx: Any, compiler: Any, call: Call) -> TValue:
    name = _field_argument(call)
    if call.output not in (None, "logscale"):
        raise RankingError(f"freshness({name}) has the outputs freshness({name}) and freshness({name}).logscale, "
                           f"not .{call.output}", call.loc)
    max_age, half = freshness_parameters(ctx, call, name)
    age = _age(ctx, call, name).node

    def c(v: float) -> Any:
        return build.scalar(v, CellType.FLOAT64)

    if call.output is None:
        linear = build.join("sub", c(1.0), build.join("div", age, c(max_age)))
        return TValue(build.join("max", linear, c(0.0)), DOUBLE)
    scale = half * half / (max_age - 2 * half)
    max_log, min_log = math.log(max_age + scale), math.log(scale)
    clipped = build.join("min", age, c(max_age))
    logged = build.map_("log", build.join("add", clipped, c(scale)))
    out = build.join("mul", build.join("sub", c(max_log), logged), c(1.0 / (max_log - min_log)))
    return TValue(out, DOUBLE)
