"""What the ranker feeds the nearest-neighbour features (tensor_ir.expr.features.nearest_neighbor).

- `nearest_neighbor_values`: each `nearestNeighbor(f)` program input gets the query input
  that the request's `nearest_neighbor` map names for its field or label, else the
  profile's default for it, converted to the field's type. Anything else is refused with a
  RankingError (INVALID_ARGUMENT) naming the field.
- `kept_norm_column`: the `squaredNorm(f)` and `inverseNorm(f)` inputs, |d|^2 and 1/|d| of
  every document of column f, kept per column so that a query streams the vectors once. A
  shard's rows [0, n) never change while its column buffer lives (puts append, compaction and growth copy into a new
  buffer), so the norms are computed once per row, incrementally as documents arrive, and
  dropped with the buffer.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import numpy.typing as npt

from server.query_inputs import bare_name
from tensor_ir.casts import cast_cells
from tensor_ir.expr.errors import RankingError
from tensor_ir.expr.features.nearest_neighbor import NearestNeighborInput, kept_norm
from tensor_ir.expr.profile import CompiledProfile

# rows per pass when computing norms: a float64 copy of this many rows stays in cache
_NORM_CHUNK = 4096


def nearest_neighbor_values(profile: CompiledProfile, query: Mapping[str, Any],
                            names: Mapping[str, str]) -> dict[str, npt.NDArray[Any]]:
    """Values of the profile's nearestNeighbor inputs. `query`: the checked query values,
    keyed `query(q)` (server.query_inputs.query_values); `names`: field or label -> the
    query input to use, as RankRequest.nearest_neighbor gives it."""
    specs: dict[str, NearestNeighborInput] = profile.nearest_neighbor
    keys = {spec.key for spec in specs.values()}
    unknown = sorted(set(names) - keys)
    if unknown:
        raise RankingError(f"nearest_neighbor names {', '.join(repr(k) for k in unknown)}, which rank profile "
                           f"'{profile.name}' has no distance or closeness feature for "
                           f"(it has: {', '.join(sorted(keys)) or 'none'})")
    out: dict[str, npt.NDArray[Any]] = {}
    for input_name, spec in specs.items():
        out[input_name] = _query_vector(profile, spec, query, names.get(spec.key))
    return out


def _query_vector(profile: CompiledProfile, spec: NearestNeighborInput, query: Mapping[str, npt.NDArray[Any]],
                  given: str | None) -> npt.NDArray[Any]:
    what = f"the nearest-neighbour query vector of {'field' if spec.key == spec.field else 'label'} '{spec.key}'"
    name = bare_name(given) if given else spec.default
    if name is None:
        fitting = ", ".join(f"query({n})" for n, q in profile.query_inputs.items() if q.type.dims == spec.type.dims)
        hint = fitting or f"it declares none: declare one, inputs {{ query(q) {spec.type} }}"
        raise RankingError(f"{what} (field '{spec.field}', {spec.type}) is not named: give nearest_neighbor "
                           f"{{'{spec.key}': NAME}} with one of the profile's query inputs of its dimensions ({hint})")
    declared = profile.query_inputs.get(name)
    if declared is None:
        raise RankingError(f"{what}: rank profile '{profile.name}' has no query input query({name})")
    if declared.type.dims != spec.type.dims:
        raise RankingError(f"{what}: query({name}) is {declared.type}, but field '{spec.field}' is {spec.type} "
                           "(the dimensions must be the same)")
    value = query.get(f"query({name})")
    if value is None:
        raise RankingError(f"{what} is query({name}) {declared.type}, which the request does not give")
    return cast_cells(np.asarray(value).reshape(spec.type.shape), declared.type.cell, spec.type.cell)


class _Kept:
    __slots__ = ("base", "norms", "rows")

    def __init__(self, base: weakref.ref[Any]) -> None:
        self.base = base
        self.norms: dict[tuple[str, Any], Any] = {}  # (kind, dtype) -> norms of rows [0, rows)
        self.rows: dict[tuple[str, Any], int] = {}


class KeptNorms:
    """Per-document norms of each vector column (tensor_ir.distances.KEPT_NORMS), kept while
    the column's buffer lives."""

    def __init__(self) -> None:
        self._kept: dict[int, _Kept] = {}
        self._lock = threading.RLock()  # a buffer freed while it is held calls back into it

    def of(self, column: Any, kind: str = "squared", dtype: Any = np.float64) -> Any:
        """[len(column)] norms of `kind` ("squared": |d|^2, "inverse": 1/|d|, 0 for d = 0) in
        `dtype`, on the column's device."""
        n = int(column.shape[0])
        base = _owner(column)
        if column.ndim != 2 or base is None or _offset(column, base) != 0:
            return _norms(column, kind, dtype, 0, n, None)  # not a shard's [:n] view: nothing kept
        key = id(base)
        with self._lock:
            kept = self._kept.get(key)
            if kept is None or kept.base() is not base:
                try:
                    ref = weakref.ref(base, self._forgetter(key))
                except TypeError:  # an array type without weak references: nothing is kept
                    return _norms(column, kind, dtype, 0, n, None)
                kept = self._kept[key] = _Kept(ref)
            which = (kind, np.dtype(dtype))
            done = kept.rows.get(which, 0)
            if done < n or which not in kept.norms:
                kept.norms[which] = _norms(column, kind, dtype, done, n, kept.norms.get(which))
                kept.rows[which] = n
            return kept.norms[which][:n]

    def _forgetter(self, key: int) -> Callable[[Any], None]:
        def forget(_: Any) -> None:
            with self._lock:
                kept = self._kept.get(key)
                if kept is not None and kept.base() is None:
                    del self._kept[key]
        return forget


def _owner(column: Any) -> Any:
    """The array that owns a column view's memory (the shard's buffer)."""
    base = column
    while getattr(base, "base", None) is not None:
        base = base.base
    return base if hasattr(base, "shape") else None


def _offset(column: Any, base: Any) -> int:
    if isinstance(column, np.ndarray) and isinstance(base, np.ndarray):
        # not column.data: a memoryview refuses ml_dtypes' bfloat16
        return int(column.__array_interface__["data"][0] - base.__array_interface__["data"][0])
    return int(column.data.ptr - base.data.ptr)  # cupy


def _norms(column: Any, kind: str, dtype: Any, start: int, stop: int, kept: Any) -> Any:
    """Norms of rows [start, stop) appended to `kept` (rows [0, start)), grown by doubling;
    computed in float64, stored in `dtype`."""
    if kept is None or kept.shape[0] < stop:
        grown = _zeros_like(column, max(stop, 2 * (0 if kept is None else kept.shape[0])), dtype)
        if kept is not None and start:
            grown[:start] = kept[:start]
        kept = grown
    for i in range(start, stop, _NORM_CHUNK):
        j = min(i + _NORM_CHUNK, stop)
        rows = column[i:j]
        if isinstance(rows, np.ndarray):
            squared = np.einsum("ij,ij->i", rows, rows, dtype=np.float64)  # widened in buffers, not copied
        else:
            wide = rows.astype(np.float64)
            squared = (wide * wide).sum(axis=1)
        if kind == "inverse":
            positive = squared > 0
            squared = positive / (squared ** 0.5 + ~positive)  # 1/|d|, and 0 where d = 0
        kept[i:j] = squared.astype(dtype)
    return kept


def _zeros_like(column: Any, n: int, dtype: Any) -> Any:
    if isinstance(column, np.ndarray):
        return np.zeros(n, dtype=dtype)
    # another array module (cupy): its own zeros, on the column's device
    module = __import__(type(column).__module__.split(".")[0])
    return module.zeros(n, dtype=dtype)


KEPT_NORMS = KeptNorms()


def kept_norm_column(shard_columns: Mapping[str, Any], input_name: str) -> Any | None:
    """The value of a `squaredNorm(f)` or `inverseNorm(f)` program input for a shard's
    columns; None for any other input name."""
    kept = kept_norm(input_name)
    if kept is None:
        return None
    kind, field = kept
    column = shard_columns.get(field)
    if column is None:
        return None
    # in the vectors' compute type, as the program reads them (tensor_ir.distances.compute_type)
    dtype = np.float64 if column.dtype == np.float64 else np.float32
    return KEPT_NORMS.of(column, kind, dtype)


def keep_norms(profile: CompiledProfile, shard_columns: Mapping[str, Any]) -> None:
    """Compute now the kept norms that the profile's programs read (at start, so that the
    first query does not pay for every row)."""
    programs = (profile.first_phase, profile.second_phase, profile.features,
                getattr(profile, "global_phase", None), getattr(profile, "normalizer_inputs", None))
    for program in programs:
        for name in program.inputs if program is not None else ():
            kept_norm_column(shard_columns, name)
