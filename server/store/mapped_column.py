"""A snapshot's attributes with mapped dimensions, as ranking reads them: one padded block
per field (tensor_ir.mapped.Padded) over the snapshot's rows.

The shard keeps each document's value (a MappedTensor, or None where unset) per row, in
the same rows as its dense columns. A snapshot never changes, so the padded block of a
field is built the first time ranking asks for it and kept with the snapshot; the next
write publishes a new snapshot, which builds its own. Capacity is the largest subspace
count among the live rows (at least 1): the block holds the cells present plus the
padding of each row up to that count, nothing for labels that do not occur.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from tensor_ir.backend import Backend
from tensor_ir.expr.types import TensorType
from tensor_ir.mapped import LABEL_DTYPE, NO_LABEL, MappedTensor, Padded


class MappedColumns:
    """Per mapped attribute, the values of rows [0, n) of one snapshot (module doc)."""

    def __init__(self, values: Mapping[str, npt.NDArray[np.object_]], types: Mapping[str, TensorType],
                 live: npt.NDArray[np.bool_], backend: Backend) -> None:
        self._values = dict(values)
        self._types = dict(types)
        self._live = live
        self._backend = backend
        self._padded: dict[str, Padded] = {}
        self._lock = threading.Lock()  # two queries asking at once build the block once

    def names(self) -> Sequence[str]:
        return list(self._values)

    def values(self, name: str) -> npt.NDArray[np.object_]:
        """Each row's value (MappedTensor or None); dead rows keep their last value."""
        return self._values[name]

    def padded(self, name: str) -> Padded:
        got = self._padded.get(name)
        if got is not None:
            return got
        with self._lock:
            got = self._padded.get(name)
            if got is None:
                host = pad_rows(self._types[name], self._values[name], self._live)
                asarray = self._backend.asarray
                got = Padded(asarray(host.cells), {d: asarray(x) for d, x in host.labels.items()},
                             asarray(host.mask))
                self._padded[name] = got
            return got


def pad_rows(t: TensorType, values: Sequence[MappedTensor | None] | npt.NDArray[Any],
             live: npt.NDArray[np.bool_]) -> Padded:
    """Rows' values as one host Padded block [len(values), capacity, ...]; a dead row or an
    unset value is an empty row. Vectorised: one scatter of all cells, one of each dimension's labels."""
    n = len(values)
    # Python lists, not numpy object indexing: a loop over every row of the shard
    rows_values: list[Any] = values.tolist() if isinstance(values, np.ndarray) else list(values)
    alive = live.tolist()
    present = [i for i, (v, ok) in enumerate(zip(rows_values, alive, strict=True)) if ok and v is not None and len(v)]
    got: list[MappedTensor] = [rows_values[i] for i in present]
    counts = np.zeros(n, dtype=np.int64)
    counts[present] = [len(v) for v in got]
    capacity = max(1, int(counts.max(initial=0)))
    cells = np.zeros((n, capacity, *t.shape), dtype=t.cell.np_dtype)
    labels = {d: np.full((n, capacity), NO_LABEL, dtype=LABEL_DTYPE) for d in t.mapped}
    mask = np.arange(capacity)[None, :] < counts[:, None]
    if present:
        k = counts[present]
        rows = np.repeat(np.asarray(present, dtype=np.int64), k)
        starts = np.cumsum(k) - k
        slots = np.arange(int(k.sum())) - np.repeat(starts, k)
        cells[rows, slots] = np.concatenate([v.cells for v in got])
        ids = np.concatenate([v.label_ids for v in got])  # encoded once per value, kept with it
        for j, d in enumerate(t.mapped):
            labels[d][rows, slots] = ids[:, j]
    return Padded(cells, labels, mask)
