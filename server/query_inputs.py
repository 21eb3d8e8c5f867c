"""A rank profile's query inputs: the one place that checks what a query gives them.

Names may be given as `query(q)` or `q`; an input left out takes its declared default, or
zero in every cell as in Vespa (its rank-feature reference: a query feature not given is 0);
a mapped one (`tensor(cat{})`) left out is the empty tensor, its value a MappedTensor.
An unknown or twice-given name, a value of the wrong shape or of no numbers is refused with a
RankingError (INVALID_ARGUMENT) that names the input and the profile. The gRPC path
resolves names here before it decodes tensors from the wire, and the ranker checks the
values here; both therefore refuse the same things with the same words.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import numpy.typing as npt

from server.wire_mapped import WireError, mapped_from_value
from tensor_ir.expr.errors import RankingError
from tensor_ir.expr.profile import CompiledProfile, QueryInput
from tensor_ir.mapped import MappedTensor


def bare_name(key: str) -> str:
    """`query(q)` -> `q`; a bare name stays as it is."""
    return key[len("query("):-1] if key.startswith("query(") and key.endswith(")") else key


def query_names(profile: CompiledProfile, keys: Iterable[str]) -> dict[str, str]:
    """Each given key's input name -> the key, refusing names the profile does not declare
    and an input given twice (as `query(q)` and as `q`)."""
    names: dict[str, str] = {}
    for key in keys:
        name = bare_name(key)
        if name not in profile.query_inputs:
            known = ", ".join(f"query({n}) {profile.query_inputs[n].type}" for n in sorted(profile.query_inputs))
            raise RankingError(f"rank profile '{profile.name}' has no input query({name}) (inputs: {known or 'none'})")
        if name in names:
            raise RankingError(f"query({name}) is given twice (as '{names[name]}' and '{key}')")
        names[name] = key
    return names


def query_values(profile: CompiledProfile, given: Mapping[str, Any],
                 needed: set[str] | None = None) -> dict[str, npt.NDArray[Any] | MappedTensor]:
    """Values of the profile's query inputs, keyed `query(NAME)` as programs name them;
    `needed` (program input names) limits which inputs must have a value: one declared but
    unused may be left out. An input of a type with mapped dimensions is a MappedTensor."""
    names = query_names(profile, given)
    out: dict[str, npt.NDArray[Any] | MappedTensor] = {}
    for name, spec in profile.query_inputs.items():
        if name not in names and spec.default is None and needed is not None and f"query({name})" not in needed:
            continue
        out[f"query({name})"] = _value(spec, given[names[name]] if name in names else None)
    return out


def _value(spec: QueryInput, value: Any) -> npt.NDArray[Any] | MappedTensor:
    if spec.type.is_mapped:
        return _mapped_value(spec, value)
    if isinstance(value, MappedTensor):
        raise RankingError(f"query({spec.name}) needs {spec.type}, got a mapped tensor of type {value.type}")
    if value is None:
        if spec.default is None:
            return np.zeros(spec.type.shape, dtype=spec.type.cell.np_dtype)
        return np.asarray(spec.default, dtype=spec.type.cell.np_dtype).reshape(spec.type.shape)
    arr = np.asarray(value)
    size = int(np.prod(spec.type.shape, dtype=np.int64))
    # the type's own shape, or its cells flat in Vespa's order (dimensions sorted by name);
    # any other shape of the same size would be reshaped into the wrong cells
    if arr.shape != spec.type.shape and arr.shape != (size,):
        raise RankingError(f"query({spec.name}) needs {spec.type}: shape {list(spec.type.shape)} or {size} cells "
                           f"flat, got shape {list(arr.shape)}")
    if arr.dtype.kind not in "biuf" and arr.dtype != spec.type.cell.np_dtype:
        raise RankingError(f"query({spec.name}) needs numbers, got values of type {arr.dtype}")
    return arr.astype(spec.type.cell.np_dtype).reshape(spec.type.shape)


def _mapped_value(spec: QueryInput, value: Any) -> MappedTensor:
    """A mapped input's value: given (a MappedTensor, decoded from the wire, or a form
    server.wire_mapped reads), its default, or, left out, the empty tensor (Vespa's value of
    a mapped query feature not given: no cells, not zeros)."""
    if value is None:
        value = spec.default
    if value is None:
        return MappedTensor.build(spec.type, [])
    try:
        return mapped_from_value(value, spec.type, f"query({spec.name})")
    except WireError as e:
        raise RankingError(str(e)) from None
