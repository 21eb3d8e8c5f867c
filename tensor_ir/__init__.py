"""The shared core of tensorrank: tensor types, the tensor program IR, its passes,
the reference semantics of every primitive, and the ONNX importer.

Pure Python + numpy (+ onnx for import). No cupy, no grpc.
"""

from tensor_ir.dtypes import CellType
from tensor_ir.errors import IRError
from tensor_ir.ir import Node, Op, OpGroup, Role, Variance
from tensor_ir.program import Program, ProgramInput

__all__ = [
    "CellType",
    "IRError",
    "Node",
    "Op",
    "OpGroup",
    "Program",
    "ProgramInput",
    "Role",
    "Variance",
]
