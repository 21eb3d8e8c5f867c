"""Mapped dimensions in the compiler: values over slot axes, with labels and a mask.

A value with mapped dimensions is a dense block whose leading axes are *slot axes*
(tensor_ir.expr.types): each slot is one subspace, the labels of its mapped dimensions are
int32 ids (tensor_ir.mapped.LABELS) in label values over some of the slot axes, and a
bool mask over the slot axes says which slots hold a subspace (inside a generator, a peek
can make it vary along the generator's hidden dimensions too). Padded slots hold cells
that mean nothing: only a reduction or a program output reads the mask.

Two values from different sources have different slot axes, so a join is their cartesian
product, with the mask requiring equal labels on the dimensions they share: Vespa's
inner join, whatever the label order. Two values over the *same* slot axis carry the same
subspaces and join slot by slot; an operation that changes which dimensions a slot axis
carries (rename, a reduction that groups) gives its result fresh slot axes, so that rule
stays true. A valid slot maps to one address and back (the invariant that keeps a
reduction over the remaining dimensions a masked reduce, or a grouping where it is not).
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from tensor_ir import build
from tensor_ir.dtypes import CellType
from tensor_ir.expr.types import SLOT_MARK, TensorType, is_slot
from tensor_ir.expr.values import Sparse, TValue, expand_to, rename_dims
from tensor_ir.ir import Node, Role
from tensor_ir.mapped import LABEL_DTYPE, MappedTensor, pad

LABEL_CELL = CellType.INT32
assert np.dtype(LABEL_DTYPE) == LABEL_CELL.np_dtype

_FRESH = itertools.count(1)


def label_input(name: str, dim: str) -> str:
    """The program input holding the label ids of `dim` of the mapped value `name`."""
    return f"{name}#label:{dim}"


def mask_input(name: str) -> str:
    return f"{name}#mask"


def fresh_slot() -> str:
    return f"{SLOT_MARK}{next(_FRESH)}"


def _slot_value(node: Node, slot: str, cap: int) -> TValue:
    return TValue(node, TensorType(node.dtype, ((slot, cap),)))


def leaf(name: str, role: Role, t: TensorType, capacity: int) -> TValue:
    """A mapped attribute or query input: cells, labels and mask as program inputs; its
    slot axis is named after the input, so every reference to it shares the axis."""
    slot = f"{SLOT_MARK}{name}"
    cells = build.input_(name, role, (capacity, *t.shape), t.cell)
    labels = tuple((d, _slot_value(build.input_(label_input(name, d), role, (capacity,), LABEL_CELL), slot, capacity))
                   for d in t.mapped)
    mask = _slot_value(build.input_(mask_input(name), role, (capacity,), CellType.BOOL), slot, capacity)
    return TValue(cells, TensorType(t.cell, ((slot, capacity), *t.dims), t.mapped), Sparse(labels, mask))


def constant(value: MappedTensor, capacity: int | None = None) -> TValue:
    """A mapped value fixed when the profile compiles (a constant, a literal)."""
    t = value.type
    cap = max(1, len(value)) if capacity is None else capacity
    p = pad(value, cap)
    slot = fresh_slot()
    cells = build.constant(p.cells, t.cell)
    labels = tuple((d, _slot_value(build.constant(p.labels[d], LABEL_CELL), slot, cap)) for d in t.mapped)
    mask = _slot_value(build.constant(p.mask, CellType.BOOL), slot, cap)
    return TValue(cells, TensorType(t.cell, ((slot, cap), *t.dims), t.mapped), Sparse(labels, mask))


# ---------------------------------------------------------------- slot-level helpers


def slot_dims(dims: tuple[tuple[str, int], ...]) -> tuple[tuple[str, int], ...]:
    return tuple(d for d in dims if is_slot(d[0]))


def and_masks(a: TValue | None, b: TValue | None) -> TValue | None:
    if a is None:
        return b
    if b is None or (a.node is b.node and a.type.dims == b.type.dims):
        return a
    dims = tuple(sorted({**dict(a.type.dims), **dict(b.type.dims)}.items()))
    node = build.join("and", expand_to(a, dims), expand_to(b, dims))
    return TValue(node, TensorType(CellType.BOOL, dims))


def same(a: TValue, b: TValue) -> bool:
    return a.type.dims == b.type.dims and (a.node is b.node or a.node.key() == b.node.key())


def labels_equal(a: TValue, b: TValue) -> TValue:
    dims = tuple(sorted({**dict(a.type.dims), **dict(b.type.dims)}.items()))
    return TValue(build.join("eq", expand_to(a, dims), expand_to(b, dims)), TensorType(CellType.BOOL, dims))


def joint_sparse(a: TValue, b: TValue) -> Sparse | None:
    """The labels and mask of join(a, b): a's labels where both have a dimension, and
    the mask of both with equal labels on the shared mapped dimensions."""
    if a.sparse is None and b.sparse is None:
        return b.sparse
    if a.sparse is None:
        return b.sparse
    if b.sparse is None:
        return a.sparse
    la, lb = dict(a.sparse.labels), dict(b.sparse.labels)
    mask = and_masks(a.sparse.mask, b.sparse.mask)
    for d in sorted(set(la) & set(lb)):
        if not same(la[d], lb[d]):
            mask = and_masks(mask, labels_equal(la[d], lb[d]))
    assert mask is not None
    labels = {**lb, **la}
    return Sparse(tuple(sorted(labels.items())), mask)


def with_sparse(node: Node, cell: CellType, dims: tuple[tuple[str, int], ...], mapped: tuple[str, ...],
                sparse: Sparse | None) -> TValue:
    return TValue(node, TensorType(cell, dims, mapped), sparse if mapped else None)


def refresh(v: TValue) -> TValue:
    """v over fresh slot axes (module doc: when the dimensions a slot axis carries change)."""
    if v.sparse is None:
        return v
    return rename_dims(v, {n: fresh_slot() for n, _ in v.type.slots})


def rename_mapped(v: TValue, mapping: Mapping[str, str]) -> TValue:
    """rename() of mapped dimensions: the labels move to the new names, on fresh slots."""
    assert v.sparse is not None
    labels = tuple(sorted((mapping.get(d, d), x) for d, x in v.sparse.labels))
    mapped = tuple(sorted(mapping.get(d, d) for d in v.type.mapped))
    return refresh(TValue(v.node, TensorType(v.type.cell, v.type.dims, mapped), Sparse(labels, v.sparse.mask)))


def full_mask(v: TValue) -> Node:
    """v's mask broadcast over all of v's slot axes, expanded with size-1 axes for v's
    other dimensions, so it selects v's cells directly."""
    assert v.sparse is not None
    m = expand_to(v.sparse.mask, v.type.dims)
    # a mask may also vary along a generator's hidden dimension (a peek at a label per cell)
    own = set(v.sparse.mask.type.names)
    return build.broadcast(m, [s if is_slot(n) or n in own else 1 for n, s in v.type.dims])


@dataclass(frozen=True)
class SparseOutputs:
    """The program outputs of a feature with mapped dimensions: its cells are the
    feature's own output; labels and mask broadcast over the cells' slot axes."""

    labels: tuple[tuple[str, str], ...]  # mapped dimension -> program output name
    mask: str
    slots: int  # the number of leading slot axes of the cells


def outputs_of(v: TValue, key: str) -> tuple[dict[str, Node], SparseOutputs]:
    """The nodes to add as program outputs for the mapped value v, named from `key`."""
    assert v.sparse is not None
    slots = v.type.slots
    outs: dict[str, Node] = {}
    names = []
    for d, lab in v.sparse.labels:
        name = f"{key}#label:{d}"
        outs[name] = expand_to(lab, slots) if lab.type.rank else build.reshape(lab.node, [1] * len(slots))
        names.append((d, name))
    m = v.sparse.mask
    outs[f"{key}#mask"] = expand_to(m, slots) if m.type.rank else build.reshape(m.node, [1] * len(slots))
    return outs, SparseOutputs(tuple(names), f"{key}#mask", len(slots))


def _per_document(v: TValue) -> bool:
    assert v.sparse is not None
    return v.node.per_document or v.sparse.mask.node.per_document or any(
        x.node.per_document for _, x in v.sparse.labels)


def looked_up(a: TValue, b: TValue) -> TValue | None:
    """b moved onto a's slot axes, where that turns join(a, b) from a cartesian product into
    a lookup: b is the same for every document (a query input, a constant), has one mapped
    dimension on one slot axis, and a has that dimension too, so each slot of a matches at
    most one slot of b. None where that does not hold."""
    if a.sparse is None or b.sparse is None or _per_document(b) or not _per_document(a):
        return None
    if len(b.type.mapped) != 1 or len(b.type.slots) != 1 or b.type.mapped[0] not in a.type.mapped:
        return None
    d = b.type.mapped[0]
    slot, k = b.type.slots[0]
    if slot in dict(a.type.slots):
        return None
    keys = dict(b.sparse.labels)[d]
    key_node = build.select(expand_to(b.sparse.mask, keys.type.dims), keys.node,
                            build.scalar(-1, LABEL_CELL)) if b.sparse.mask.type.dims == keys.type.dims else None
    if key_node is None:
        return None
    target = dict(a.sparse.labels)[d]
    pos = build.lookup(key_node, target.node)  # k where absent
    rest = tuple(x for x in b.type.dims if x[0] != slot)
    blank = build.broadcast(build.scalar(0, b.node.dtype), [1, *[s for _, s in rest]])
    cells = build.gather(build.concat([b.node, blank], 0), pos, 0)
    dims = (*target.type.dims, *rest)
    found = TValue(build.join("lt", pos, build.scalar(k, LABEL_CELL)), TensorType(CellType.BOOL, target.type.dims))
    return TValue(cells, TensorType(b.type.cell, dims, b.type.mapped), Sparse(((d, target),), found))


def aligned(a: TValue, b: TValue) -> tuple[TValue, TValue]:
    """a and b ready to join: the one that can be looked up in the other moved onto its
    slot axes (looked_up)."""
    moved = looked_up(a, b)
    if moved is not None:
        return a, moved
    moved = looked_up(b, a)
    if moved is not None:
        return moved, b
    return a, b
