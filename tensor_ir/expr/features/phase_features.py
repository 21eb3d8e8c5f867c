"""Features about the ranking phases, and the global phase's cross-hit normalizers.

- `secondPhase` is the second-phase score, `relevanceScore` the second-phase score where
  the profile has a second phase and the first-phase score otherwise; as in Vespa neither
  is available to the first- or second-phase expression. (`firstPhase` is the profile
  context's own: the first-phase expression, anywhere but in the first phase.)
- `normalize_linear(f)`, `reciprocal_rank(f [, k])` and `reciprocal_rank_fusion(f, g, ...)`
  are computed across the hits the global phase reranks (container-search's
  LinearNormalizer and ReciprocalRankNormalizer): f is computed for each of them, the
  normalizer maps the values, and the global-phase expression reads the result. Linear:
  `0.5 + (f - (min + max) / 2) / (max - min)` over the finite values (0.5 for all when they
  are equal); reciprocal rank: `1 / (k + rank)`, rank 1 for the highest (NaN lowest, ties
  in hit order), k 60 by default; fusion: the sum of the reciprocal ranks of its
  arguments. Only the global-phase expression may use them.
- `onnx_vespa(...)`: Vespa's older name for `onnx(...)`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tensor_ir import build
from tensor_ir.dtypes import CellType
from tensor_ir.expr.ast import Call, Num
from tensor_ir.expr.errors import RankingError
from tensor_ir.expr.features import rank_feature
from tensor_ir.expr.features.per_query import DOUBLE
from tensor_ir.expr.values import TValue, as_double
from tensor_ir.ir import Node, Role

GLOBAL_PHASE = "global"
CHECKING = "check"  # compiling a function no phase uses, to find its errors at deploy
DEFAULT_RECIPROCAL_RANK_K = 60.0
NORMALIZED_PREFIX = "normalized("


@dataclass(frozen=True)
class Normalizer:
    kind: str  # "linear" or "reciprocal_rank"
    k: float
    source: str  # output of the profile's normalizer-input program: the value to normalize
    target: str  # per-document input of the global-phase program: the normalized value


def _phase_score(ctx: Any, compiler: Any, call: Call, which: str) -> TValue:
    if call.args or call.output is not None:
        raise RankingError(f"{call.name} takes no arguments", call.loc)
    if ctx.phase in ("first", "second"):
        raise RankingError(f"{call.name} is not available in the {ctx.phase}-phase expression (Vespa computes "
                           "it after that phase)", call.loc)
    expr = ctx.profile.second_phase if which == "second" else ctx.profile.first_phase
    if expr is None:
        raise RankingError(f"{call.name}: rank profile '{ctx.profile.name}' has no {which}-phase expression",
                           call.loc)
    key = f"\0{which}Phase"  # no function can have this name
    if key not in ctx.memo:
        value = compiler.__class__(compiler.context).compile(expr)
        if not value.is_scalar:
            raise RankingError(f"{call.name}: the {which}-phase expression gives {value.type}, not a number",
                               call.loc)
        ctx.memo[key] = as_double(value)
    found: TValue = ctx.memo[key]
    return found


@rank_feature("secondPhase")
def _second_phase(ctx: Any, compiler: Any, call: Call) -> TValue:
    return _phase_score(ctx, compiler, call, "second")


@rank_feature("relevanceScore")
def _relevance_score(ctx: Any, compiler: Any, call: Call) -> TValue:
    return _phase_score(ctx, compiler, call, "second" if ctx.profile.second_phase is not None else "first")


@rank_feature("onnx_vespa")
def _onnx_vespa(ctx: Any, compiler: Any, call: Call) -> TValue:
    value: TValue = compiler.onnx_call(Call(call.loc, "onnx", call.args, call.output))
    return value


def _normalized(ctx: Any, compiler: Any, call: Call, kind: str, k: float, arg_index: int) -> Node:
    arg = call.args[arg_index]
    value = compiler.compile(arg)
    if not value.is_scalar:
        raise RankingError(f"{call.name} normalizes a number per hit, but its argument gives {value.type}",
                           arg.loc)
    node = build.cast(value.node, CellType.FLOAT64)
    if ctx.phase == CHECKING:
        return node
    if ctx.phase != GLOBAL_PHASE:
        raise RankingError(f"{call.name} normalizes across the hits of the global phase: only the global-phase "
                           "expression may use it", call.loc)
    i = len(ctx.normalizers)
    target = f"{NORMALIZED_PREFIX}{i})"
    ctx.normalizers.append((Normalizer(kind, k, f"normalizer_input:{i}", target), node))
    return build.input_(target, Role.ATTRIBUTE, (), CellType.FLOAT64)


def _no_output(call: Call) -> None:
    if call.output is not None:
        raise RankingError(f"{call.name}(...) has no output '{call.output}'", call.loc)


@rank_feature("normalize_linear")
def _normalize_linear(ctx: Any, compiler: Any, call: Call) -> TValue:
    _no_output(call)
    if len(call.args) != 1:
        raise RankingError("normalize_linear takes one argument, a rank feature or function", call.loc)
    return TValue(_normalized(ctx, compiler, call, "linear", 0.0, 0), DOUBLE)


@rank_feature("reciprocal_rank")
def _reciprocal_rank(ctx: Any, compiler: Any, call: Call) -> TValue:
    _no_output(call)
    if len(call.args) not in (1, 2):
        raise RankingError("reciprocal_rank takes a rank feature or function, and optionally k", call.loc)
    k = DEFAULT_RECIPROCAL_RANK_K
    if len(call.args) == 2:
        karg = call.args[1]
        if not isinstance(karg, Num):
            raise RankingError("reciprocal_rank: k must be a number", karg.loc)
        k = karg.value
    return TValue(_normalized(ctx, compiler, call, "reciprocal_rank", k, 0), DOUBLE)


@rank_feature("reciprocal_rank_fusion")
def _reciprocal_rank_fusion(ctx: Any, compiler: Any, call: Call) -> TValue:
    _no_output(call)
    if len(call.args) < 2:
        raise RankingError("reciprocal_rank_fusion takes at least two rank features or functions", call.loc)
    total: Node | None = None
    for i in range(len(call.args)):
        part = _normalized(ctx, compiler, call, "reciprocal_rank", DEFAULT_RECIPROCAL_RANK_K, i)
        total = part if total is None else build.join("add", total, part)
    assert total is not None
    return TValue(total, DOUBLE)
