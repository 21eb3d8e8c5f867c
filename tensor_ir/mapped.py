"""Mapped and mixed tensor values on the host, and their padded form for a whole shard.

A `MappedTensor` is Vespa's value of a type with mapped dimensions: a set of subspaces,
each an address (one label per mapped dimension) and a dense block over the indexed
dimensions. Label order means nothing; an address appears at most once.

Programs see such a value padded (tensor_ir.expr.sparse): `capacity` slots of cells,
one int32 label id per slot and mapped dimension, and a mask of the slots in use. A
shard stacks one padded block per document, so a join with a query's tensor is a
vectorised comparison over the shard and a reduce over a mapped dimension a masked one.
Label ids come from one process-wide `LABELS` dictionary: the same string has the same
id in every document, query and constant, so equal labels compare equal as integers. A
label that is a whole number written plainly ("0", "17") is its own id, so a label
computed at run time (`t{x:(i+1)}`) needs no dictionary; other strings count down from -2
(-1 is no label). Both ranges stay as small as the labels in use, so a join can look
labels up in a table over their range (tensor_ir.reference's LOOKUP kernel).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np
import numpy.typing as npt

from tensor_ir.errors import TensorRankError
from tensor_ir.expr.types import TensorType

LABEL_DTYPE = np.int32
NUMBER_LABELS = 1 << 30  # ids 0 .. this - 1 are the labels "0", "1", ... themselves
# Slots no value uses carry this id: no label has it, so a padded slot never matches.
NO_LABEL = -1
MAX_LABEL_BYTES = 1024


class LabelError(TensorRankError, ValueError):
    pass


class LabelDictionary:
    """String label <-> int32 id, append-only and thread-safe."""

    def __init__(self) -> None:
        self._ids: dict[str, int] = {}
        self._labels: list[str] = []
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._labels)

    def encode(self, label: str) -> int:
        if label.isdigit() and label.isascii() and (label == "0" or label[0] != "0") and len(label) <= 10:
            n = int(label)
            if n < NUMBER_LABELS:
                return n
        i = self._ids.get(label)
        if i is not None:
            return i
        if len(label.encode("utf-8", "surrogatepass")) > MAX_LABEL_BYTES:
            raise LabelError(f"a label of more than {MAX_LABEL_BYTES} bytes ('{label[:40]}...')")
        with self._lock:
            i = self._ids.get(label)
            if i is None:
                if len(self._labels) >= -int(np.iinfo(LABEL_DTYPE).min) - 2:
                    raise LabelError("too many distinct labels")
                i = -2 - len(self._labels)
                self._labels.append(label)
                self._ids[label] = i
            return i

    def encode_all(self, labels: Iterable[str]) -> npt.NDArray[np.int32]:
        return np.fromiter((self.encode(x) for x in labels), dtype=LABEL_DTYPE)

    def decode(self, i: int) -> str:
        return str(i) if i >= 0 else self._labels[-2 - i]


LABELS = LabelDictionary()


def label_text(label: Any) -> str:
    """A label as Vespa writes it: strings as they are, whole numbers as digits."""
    if isinstance(label, bool):
        raise LabelError(f"label {label!r} is not a string or an integer")
    if isinstance(label, int):
        return str(label)
    if isinstance(label, float) and label.is_integer():
        return str(int(label))
    if isinstance(label, str):
        return label
    raise LabelError(f"label {label!r} is not a string or an integer")


@dataclass(frozen=True)
class MappedTensor:
    """Vespa's value of a type with mapped dimensions (module doc)."""

    type: TensorType
    addresses: tuple[tuple[str, ...], ...]  # one per subspace: labels of type.mapped, in that order
    cells: npt.NDArray[Any]  # [len(addresses), *type.shape], in type.cell's dtype

    def __post_init__(self) -> None:
        if self.cells.shape != (len(self.addresses), *self.type.shape):
            raise AssertionError(f"cells of shape {self.cells.shape} for {len(self.addresses)} "
                                 f"subspaces of {self.type}")

    def __len__(self) -> int:
        return len(self.addresses)

    @staticmethod
    def build(t: TensorType, subspaces: Iterable[tuple[Sequence[str], Any]], where: str = "") -> MappedTensor:
        """From (address, dense block) pairs; an address given twice is refused."""
        addresses: list[tuple[str, ...]] = []
        blocks: list[npt.NDArray[Any]] = []
        seen: set[tuple[str, ...]] = set()
        for addr, block in subspaces:
            key = tuple(addr)
            if key in seen:
                at = ", ".join(f"{d}:{x}" for d, x in zip(t.mapped, key, strict=True))
                raise LabelError(f"{where}the address {{{at}}} is given twice")
            seen.add(key)
            addresses.append(key)
            blocks.append(np.asarray(block, dtype=np.float64).reshape(t.shape))
        cells = np.stack(blocks) if blocks else np.zeros((0, *t.shape), np.float64)
        return MappedTensor(t, tuple(addresses), cells.astype(t.cell.np_dtype))

    @cached_property
    def label_ids(self) -> npt.NDArray[np.int32]:
        """[len, number of mapped dimensions]: the addresses' label ids, encoded once per value
        (a shard pads every document again after a write: tensor_ir.mapped module doc)."""
        k = len(self.type.mapped)
        flat = LABELS.encode_all(label for a in self.addresses for label in a)
        return flat.reshape(len(self.addresses), k)

    def as_dict(self) -> dict[tuple[str, ...], npt.NDArray[Any]]:
        return {a: self.cells[i] for i, a in enumerate(self.addresses)}

    def to_json(self) -> dict[str, Any]:
        """Vespa's JSON form: `cells` with full addresses for a sparse type, `blocks` for a mixed one."""
        out: dict[str, Any] = {"type": str(self.type)}
        if not self.type.dims:
            out["cells"] = [{"address": dict(zip(self.type.mapped, a, strict=True)), "value": float(self.cells[i])}
                            for i, a in enumerate(self.addresses)]
        else:
            out["blocks"] = [{"address": dict(zip(self.type.mapped, a, strict=True)),
                              "values": [float(x) for x in self.cells[i].reshape(-1)]}
                             for i, a in enumerate(self.addresses)]
        return out


@dataclass(frozen=True)
class Padded:
    """A mapped value padded to a fixed number of slots (module doc); `batch` leading axes
    (a shard's documents) come first in every array."""

    cells: npt.NDArray[Any]  # [*batch, capacity, *type.shape]
    labels: dict[str, npt.NDArray[np.int32]]  # per mapped dimension: [*batch, capacity]
    mask: npt.NDArray[np.bool_]  # [*batch, capacity]

    @property
    def capacity(self) -> int:
        return int(self.mask.shape[-1])


def capacity_for(values: Iterable[MappedTensor]) -> int:
    """The slots a padded block needs for every one of `values`: at least 1, so that
    programs keep a positive shape even when every value is empty."""
    return max([1, *(len(v) for v in values)])


def pad(value: MappedTensor, capacity: int) -> Padded:
    return pad_many([value], capacity, stacked=False)


def pad_many(values: Sequence[MappedTensor], capacity: int, stacked: bool = True) -> Padded:
    """Many values of one type as one padded block [len(values), capacity, ...] (or the
    single value's block without a batch axis when not `stacked`)."""
    if not values:
        raise ValueError("pad_many needs at least one value")
    t = values[0].type
    n = len(values)
    cells = np.zeros((n, capacity, *t.shape), dtype=t.cell.np_dtype)
    labels = {d: np.full((n, capacity), NO_LABEL, dtype=LABEL_DTYPE) for d in t.mapped}
    mask = np.zeros((n, capacity), dtype=bool)
    for i, v in enumerate(values):
        k = len(v)
        if k > capacity:
            raise LabelError(f"a value of {k} subspaces does not fit {capacity} slots")
        if k == 0:
            continue
        cells[i, :k] = v.cells
        mask[i, :k] = True
        ids = v.label_ids
        for j, d in enumerate(t.mapped):
            labels[d][i, :k] = ids[:, j]
    if not stacked:
        return Padded(cells[0], {d: x[0] for d, x in labels.items()}, mask[0])
    return Padded(cells, labels, mask)


def unpad(t: TensorType, cells: npt.NDArray[Any], labels: dict[str, npt.NDArray[Any]],
          mask: npt.NDArray[Any]) -> MappedTensor:
    """One value back from its padded form. `cells` has any number of slot axes first
    (a program's result can have several, tensor_ir.expr.sparse), then `t.shape`; the
    labels and the mask broadcast over those slot axes."""
    slot_shape = cells.shape[: cells.ndim - len(t.shape)]
    m = np.broadcast_to(np.asarray(mask, dtype=bool), slot_shape).reshape(-1)
    flat = cells.reshape(-1, *t.shape)
    ids = {d: np.broadcast_to(np.asarray(x), slot_shape).reshape(-1) for d, x in labels.items()}
    where = np.flatnonzero(m)
    addresses = tuple(tuple(LABELS.decode(int(ids[d][i])) for d in t.mapped) for i in where)
    return MappedTensor(t, addresses, flat[where].astype(t.cell.np_dtype, copy=False))
