"""The tensor program IR: one closed enum of primitives and immutable nodes.

Every node has a shape and a cell type *per document* and a variance. Values that vary
with the document carry a leading document axis at run time; the per-document shape
never includes it. Axis attributes are always per-document axes, so a backend shifts
them by one for document-varying operands.
"""

from __future__ import annotations

import enum
import hashlib
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np
import numpy.typing as npt

from tensor_ir.dtypes import CellType


class OpGroup(enum.Enum):
    LEAF = "leaf"
    ELEMENTWISE = "elementwise"
    REDUCTION = "reduction"
    CONTRACTION = "contraction"
    STRUCTURAL = "structural"
    INDEXING = "indexing"


class Op(enum.Enum):
    # leaves
    INPUT = ("input", OpGroup.LEAF)  # attrs: name, role
    CONSTANT = ("constant", OpGroup.LEAF)  # attrs: value (ConstValue)
    # elementwise: numpy broadcasting over per-document shapes
    MAP = ("map", OpGroup.ELEMENTWISE)  # attrs: fn (UNARY_FUNCTIONS)
    JOIN = ("join", OpGroup.ELEMENTWISE)  # attrs: fn (BINARY_FUNCTIONS)
    SELECT = ("select", OpGroup.ELEMENTWISE)  # inputs: cond, a, b
    CAST = ("cast", OpGroup.ELEMENTWISE)  # attrs: to (CellType), saturate
    # reductions
    REDUCE = ("reduce", OpGroup.REDUCTION)  # attrs: agg (REDUCE_AGGREGATIONS), axes, keepdims
    ARG_REDUCE = ("arg_reduce", OpGroup.REDUCTION)  # attrs: agg (argmax|argmin), axis, keepdims, last
    SCAN = ("scan", OpGroup.REDUCTION)  # attrs: agg (sum|prod), axis, exclusive, reverse
    # contraction: seen whole by backends so it reaches BLAS / cuBLAS
    MATMUL = ("matmul", OpGroup.CONTRACTION)  # both operands rank >= 2, batch dims broadcast
    # structural
    RESHAPE = ("reshape", OpGroup.STRUCTURAL)  # attrs: shape
    TRANSPOSE = ("transpose", OpGroup.STRUCTURAL)  # attrs: perm
    BROADCAST = ("broadcast", OpGroup.STRUCTURAL)  # attrs: shape
    CONCAT = ("concat", OpGroup.STRUCTURAL)  # attrs: axis
    SLICE = ("slice", OpGroup.STRUCTURAL)  # attrs: starts, stops, steps (normalised, one per axis)
    PAD = ("pad", OpGroup.STRUCTURAL)  # attrs: pads ((before, after) per axis), mode, value
    # indexing: data-dependent addressing
    GATHER = ("gather", OpGroup.INDEXING)  # inputs: data, indices; attrs: axis
    GATHER_ELEMENTS = ("gather_elements", OpGroup.INDEXING)  # attrs: axis
    GATHER_ND = ("gather_nd", OpGroup.INDEXING)  # attrs: batch_dims
    SCATTER_ELEMENTS = ("scatter_elements", OpGroup.INDEXING)  # inputs: data, idx, upd; attrs: axis, reduction
    SCATTER_ND = ("scatter_nd", OpGroup.INDEXING)  # inputs: data, idx, upd; attrs: reduction
    TOPK = ("topk", OpGroup.INDEXING)  # attrs: axis, k, largest, sorted -> int64 indices
    # inputs: keys [K] (int32, the same for every document), values (int32): the position of
    # each value among the keys, K where absent (the first where a key repeats)
    LOOKUP = ("lookup", OpGroup.INDEXING)
    # a tree ensemble, seen whole so each backend walks it its own way (tensor_ir/trees)
    TREE_ENSEMBLE = ("tree_ensemble", OpGroup.CONTRACTION)  # inputs: x [..., features]; attrs: forest

    def __init__(self, label: str, group: OpGroup) -> None:
        self.label = label
        self.group = group


UNARY_FUNCTIONS = frozenset(
    {
        "neg", "abs", "sign", "exp", "log", "sqrt", "reciprocal",
        "sin", "cos", "tan", "asin", "acos", "atan", "sinh", "cosh", "tanh", "asinh", "acosh", "atanh",
        "sigmoid", "relu", "erf", "floor", "ceil", "round",
        "not", "bitwise_not", "isnan", "isinf", "isposinf", "isneginf",
    }
)  # fmt: skip

BINARY_FUNCTIONS = frozenset(
    {
        "add", "sub", "mul", "div", "pow", "max", "min",
        "mod", "fmod",  # mod: sign of divisor (Python), fmod: sign of dividend (C)
        "eq", "ne", "lt", "le", "gt", "ge",
        "and", "or", "xor",
        "bitwise_and", "bitwise_or", "bitwise_xor", "shift_left", "shift_right",
    }
)  # fmt: skip

COMPARISONS = frozenset({"eq", "ne", "lt", "le", "gt", "ge"})
LOGICAL = frozenset({"and", "or", "xor"})
REDUCE_AGGREGATIONS = frozenset({"sum", "prod", "max", "min"})
PAD_MODES = frozenset({"constant", "reflect", "edge", "wrap"})
SCATTER_REDUCTIONS = frozenset({"none", "add", "mul", "max", "min"})


class Variance(enum.IntFlag):
    """What a value depends on. Combining values ORs their variances."""

    CONSTANT = 0
    QUERY = 1
    DOCUMENT = 2
    QUERY_DOCUMENT = 3

    @property
    def per_document(self) -> bool:
        return bool(self & Variance.DOCUMENT)

    @property
    def label(self) -> str:
        return {0: "constant", 1: "query", 2: "document", 3: "query x document"}[int(self)]


class Role(enum.Enum):
    """Where a program input's value comes from."""

    ATTRIBUTE = "attribute"  # a document field: one value per document
    QUERY = "query"  # one value per query
    CONSTANT = "constant"  # known when the application is deployed

    @property
    def variance(self) -> Variance:
        return {
            Role.ATTRIBUTE: Variance.DOCUMENT,
            Role.QUERY: Variance.QUERY,
            Role.CONSTANT: Variance.CONSTANT,
        }[self]


class ConstValue:
    """A numpy array made hashable by content, so constants can take part in CSE."""

    __slots__ = ("_digest", "array")

    def __init__(self, array: npt.NDArray[Any]) -> None:
        # not ascontiguousarray: it turns 0-d arrays into 1-d ones. A copy unless the array
        # is already frozen: a view would change with the caller's array after hashing
        frozen = not array.flags.writeable and array.flags.c_contiguous and array.base is None
        arr = array.view() if frozen else np.array(array, order="C", copy=True)
        arr.flags.writeable = False
        self.array = arr
        h = hashlib.blake2b(digest_size=16)
        h.update(str(arr.dtype).encode())
        h.update(str(arr.shape).encode())
        h.update(arr.tobytes())
        self._digest = h.hexdigest()

    def __hash__(self) -> int:
        return hash(self._digest)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ConstValue) and other._digest == self._digest

    def __repr__(self) -> str:
        if self.array.size <= 8:
            return f"const({self.array.tolist()!r})"
        return f"const<{self.array.dtype}{list(self.array.shape)}>"


def _freeze(value: Any) -> Any:
    if isinstance(value, list | tuple):
        return tuple(_freeze(v) for v in value)
    if isinstance(value, dict):
        return tuple(sorted((k, _freeze(v)) for k, v in value.items()))
    if isinstance(value, np.ndarray):
        return ConstValue(value)
    if isinstance(value, np.generic):
        return value.item()
    return value


class Attrs(Mapping[str, Any]):
    """An immutable, hashable attribute mapping."""

    __slots__ = ("_hash", "_items")

    def __init__(self, items: Mapping[str, Any] | None = None) -> None:
        frozen = tuple(sorted((k, _freeze(v)) for k, v in (items or {}).items()))
        self._items = dict(frozen)
        self._hash = hash(frozen)

    def __getitem__(self, key: str) -> Any:
        return self._items[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __hash__(self) -> int:
        return self._hash

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Attrs) and self._items == other._items

    def __repr__(self) -> str:
        return ", ".join(f"{k}={v!r}" for k, v in self._items.items())


class Node:
    """One immutable value of a tensor program."""

    __slots__ = ("attrs", "dtype", "inputs", "label", "op", "per_document", "shape", "variance")

    op: Op
    inputs: tuple[Node, ...]
    attrs: Attrs
    shape: tuple[int, ...]
    dtype: CellType
    variance: Variance
    label: str
    per_document: bool  # from variance; a plain attribute because evaluators ask it per node per block

    def __init__(
        self,
        op: Op,
        inputs: tuple[Node, ...],
        attrs: Attrs,
        shape: tuple[int, ...],
        dtype: CellType,
        variance: Variance,
        label: str = "",
    ) -> None:
        object.__setattr__(self, "op", op)
        object.__setattr__(self, "inputs", inputs)
        object.__setattr__(self, "attrs", attrs)
        object.__setattr__(self, "shape", tuple(int(d) for d in shape))
        object.__setattr__(self, "dtype", dtype)
        object.__setattr__(self, "variance", variance)
        object.__setattr__(self, "label", label)
        object.__setattr__(self, "per_document", variance.per_document)

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("Node is immutable")

    @property
    def rank(self) -> int:
        return len(self.shape)

    @property
    def size(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64))

    @property
    def is_constant(self) -> bool:
        return self.op is Op.CONSTANT

    @property
    def value(self) -> npt.NDArray[Any]:
        if self.op is not Op.CONSTANT:
            raise ValueError(f"{self.op.label} node is not a constant")
        cv: ConstValue = self.attrs["value"]
        return cv.array

    def key(self) -> tuple[Any, ...]:
        """Structural identity of this node given its inputs' identities (for CSE)."""
        return (self.op, tuple(id(i) for i in self.inputs), self.attrs, self.dtype, self.shape)

    def __repr__(self) -> str:
        attrs = f" {self.attrs!r}" if self.attrs and self.op is not Op.CONSTANT else ""
        if self.op is Op.CONSTANT:
            # .get: the verifier names malformed constants too
            attrs = f" {self.attrs.get('value')!r}"
        return (
            f"<{self.op.label}{attrs} -> {self.dtype.np_name}{list(self.shape)} "
            f"{self.variance.label}{' ' + self.label if self.label else ''}>"
        )


def topological_order(outputs: tuple[Node, ...] | list[Node]) -> list[Node]:
    """All nodes reachable from `outputs`, each after its inputs (iterative: graphs are deep)."""
    order: list[Node] = []
    seen: set[int] = set()
    for root in outputs:
        if id(root) in seen:
            continue
        stack: list[tuple[Node, int]] = [(root, 0)]
        while stack:
            node, i = stack.pop()
            if i < len(node.inputs):
                stack.append((node, i + 1))
                child = node.inputs[i]
                if id(child) not in seen:
                    stack.append((child, 0))
            elif id(node) not in seen:
                seen.add(id(node))
                order.append(node)
    return order
