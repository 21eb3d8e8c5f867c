"""Passes over programs. Each leaves its input intact: the rewrites return a new Program,
fusion a FusionPlan, monotone_tail a (head, tail) pair or None."""

from tensor_ir.passes.cse import eliminate_common_subexpressions
from tensor_ir.passes.fold import bind_constants, fold_constants

__all__ = ["bind_constants", "eliminate_common_subexpressions", "fold_constants"]
