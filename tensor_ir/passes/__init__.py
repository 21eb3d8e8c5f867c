"""Program-to-program passes. Each returns a new Program and leaves its input intact."""

from tensor_ir.passes.cse import eliminate_common_subexpressions
from tensor_ir.passes.fold import bind_constants, fold_constants

__all__ = ["bind_constants", "eliminate_common_subexpressions", "fold_constants"]
