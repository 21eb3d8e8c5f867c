"""What ranking reads of a shard: a snapshot's ids, attribute columns and live rows.

The store hands these out and the ranker reads them; the type lives with the store so that
the store depends on nothing above it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from tensor_ir.mapped import Padded


class MappedSource(Protocol):
    """A snapshot's fields with mapped dimensions (server/store/mapped_column.py)."""

    def names(self) -> Sequence[str]: ...

    def padded(self, name: str) -> Padded: ...


@dataclass
class ShardView:
    """What ranking reads of a shard: ids, attribute columns [n, *shape], live rows, and
    for attributes with mapped dimensions a padded block per field (`mapped_column`)."""

    ids: Sequence[str]
    columns: Mapping[str, Any]
    live: npt.NDArray[np.bool_] | None = None
    mapped: MappedSource | None = None

    @property
    def size(self) -> int:
        return len(self.ids)

    @property
    def mapped_names(self) -> Sequence[str]:
        return () if self.mapped is None else self.mapped.names()

    def mapped_column(self, name: str) -> Padded:
        """Field `name` (a mapped or mixed tensor attribute) of every row [0, size), padded to
        the largest subspace count of the live rows: cells [size, capacity, *subspace shape],
        labels and mask [size, capacity], on the backend's device. Dead rows and unset
        values are empty (no slot in use)."""
        if self.mapped is None or name not in self.mapped.names():
            raise KeyError(f"the shard has no mapped attribute '{name}' (mapped attributes: "
                           f"{', '.join(self.mapped_names) or 'none'})")
        return self.mapped.padded(name)
