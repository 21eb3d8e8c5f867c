"""What ranking reads of a shard: a snapshot's ids, attribute columns and live rows.

The store hands these out and the ranker reads them; the type lives with the store so that
the store depends on nothing above it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt


@dataclass
class ShardView:
    """What ranking reads of a shard: ids, attribute columns [n, *shape], live rows."""

    ids: Sequence[str]
    columns: Mapping[str, Any]
    live: npt.NDArray[np.bool_] | None = None

    @property
    def size(self) -> int:
        return len(self.ids)
