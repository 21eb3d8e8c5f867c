"""Rank features: the names Vespa resolves outside the tensor language, such as
`closeness(field, x)`, `now`, `tokenInputIds(...)` or `bm25(title)`.

Each feature module registers its names in `FEATURES` with `@rank_feature(...)`. A feature
is compiled by the profile context (`_ProfileContext.feature` in `tensor_ir/expr/profile.py`)
after profile functions and the tensor language's builtins, so a profile's own function of
the same name always wins, as in Vespa. The function gets the context (fields, profile,
query inputs), the compiler and the call, and returns the feature's value as a `TValue`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tensor_ir.expr.ast import Call
    from tensor_ir.expr.compiler import Compiler
    from tensor_ir.expr.values import TValue

FeatureFn = Callable[[Any, "Compiler", "Call"], "TValue"]
FEATURES: dict[str, FeatureFn] = {}


def rank_feature(*names: str) -> Callable[[FeatureFn], FeatureFn]:
    def register(fn: FeatureFn) -> FeatureFn:
        for name in names:
            if name in FEATURES:
                raise ValueError(f"rank feature '{name}' is registered twice")
            FEATURES[name] = fn
        return fn
    return register


def load_features() -> dict[str, FeatureFn]:
    """Every feature module, imported once so that its names are registered."""
    from tensor_ir.expr.features import registry  # noqa: F401
    return FEATURES
