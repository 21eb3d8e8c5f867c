"""Binding mapped and mixed tensors into a profile's programs (tensor_ir.expr.sparse).

A program is compiled for a number of slots per mapped input: a shard's padded column has
as many as its largest document, a query tensor is padded to the next power of two (so a
handful of compilations serve every query size). `capacities` says what a request needs;
the Ranker keeps one compiled variant per distinct answer.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import numpy.typing as npt

from server.store.view import ShardView
from tensor_ir.expr.errors import RankingError
from tensor_ir.expr.profile import CompiledProfile, Feature
from tensor_ir.expr.sparse import label_input, mask_input
from tensor_ir.mapped import MappedTensor, Padded, pad, unpad


def query_capacity(n: int) -> int:
    return 1 << max(0, (max(n, 1) - 1).bit_length())


def capacities(profile: CompiledProfile, shard: ShardView, query: Mapping[str, Any]) -> dict[str, int]:
    caps: dict[str, int] = {}
    for name, (_, _) in profile.mapped_inputs.items():
        if name.startswith("attribute("):
            caps[name] = _column(profile, shard, name).capacity
        else:
            value = query.get(name)
            caps[name] = query_capacity(len(value) if isinstance(value, MappedTensor) else 0)
    return caps


def _column(profile: CompiledProfile, shard: ShardView, name: str) -> Padded:
    field = name[len("attribute("):-1]
    try:
        return shard.mapped_column(field)
    except KeyError:
        raise RankingError(f"rank profile '{profile.name}' reads {name}, which the shard has no column for") from None


def _parts(p: Padded, name: str, rows: npt.NDArray[np.int64] | None) -> dict[str, Any]:
    def pick(x: Any) -> Any:
        return x if rows is None else x[rows]

    out = {name: pick(p.cells), mask_input(name): pick(p.mask)}
    out.update({label_input(name, d): pick(x) for d, x in p.labels.items()})
    return out


def mapped_feeds(profile: CompiledProfile, shard: ShardView, rows: npt.NDArray[np.int64] | None,
                 query: Mapping[str, Any]) -> dict[str, Any]:
    """Every program input of the profile's mapped values, for these rows."""
    feeds: dict[str, Any] = {}
    for name, (t, cap) in profile.mapped_inputs.items():
        if name.startswith("attribute("):
            feeds.update(_parts(_column(profile, shard, name), name, rows))
        else:
            value = query.get(name)
            if not isinstance(value, MappedTensor):
                value = MappedTensor.build(t, [])
            feeds.update(_parts(pad(value, cap), name, None))
    return feeds


def mapped_feature(f: Feature, out: Mapping[str, Any], j: int, to_host: Any) -> MappedTensor:
    """Match feature `f` (one with mapped dimensions) of hit j, back as a MappedTensor."""
    assert f.sparse is not None

    def at(name: str) -> Any:
        return np.asarray(to_host(out[name]))[j]

    return unpad(f.type, at(f.program_output), {d: at(o) for d, o in f.sparse.labels}, at(f.sparse.mask))
