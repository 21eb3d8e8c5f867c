"""The converter registry: (domain, op_type, since_version) -> converter.

Lookup takes the highest since_version <= the model's opset. Registering the same key
twice is an error. When onnx's schema for the op at the model's opset is newer than every
converter we have, lookup fails rather than convert with outdated semantics.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import onnx.defs

from tensor_ir.errors import TensorRankError

if TYPE_CHECKING:
    from tensor_ir.ir import Node
    from tensor_ir.onnx_import.context import NodeContext

Converter = Callable[["NodeContext"], "Sequence[Node | None]"]

_REGISTRY: dict[tuple[str, str], dict[int, Converter]] = {}


class RegistryError(TensorRankError):
    pass


def canonical_domain(domain: str) -> str:
    return "" if domain in ("", "ai.onnx") else domain


def converter(op_type: str, *since_versions: int, domain: str = "") -> Callable[[Converter], Converter]:
    """Register `fn` for each listed since_version of `op_type`."""
    if not since_versions:
        raise RegistryError(f"converter for {op_type} names no since_version")

    def register(fn: Converter) -> Converter:
        table = _REGISTRY.setdefault((canonical_domain(domain), op_type), {})
        for v in since_versions:
            if v in table:
                raise RegistryError(
                    f"{op_type} (domain '{domain}') since_version {v} is registered twice: "
                    f"{table[v].__module__}.{table[v].__name__} and {fn.__module__}.{fn.__name__}"
                )
            table[v] = fn
        return fn

    return register


def schema_version(domain: str, op_type: str, opset: int) -> int | None:
    """since_version of the op's schema in effect at `opset`, or None if onnx has none."""
    try:
        return int(onnx.defs.get_schema(op_type, opset, canonical_domain(domain)).since_version)
    except onnx.defs.SchemaError:
        return None


class Lookup:
    """Outcome of a registry lookup."""

    def __init__(self, fn: Converter | None, reason: str = "") -> None:
        self.fn = fn
        self.reason = reason


def lookup(domain: str, op_type: str, opset: int) -> Lookup:
    table = _REGISTRY.get((canonical_domain(domain), op_type), {})
    usable = [v for v in table if v <= opset]
    if not usable:
        if table:
            return Lookup(None, f"converters exist only from version {min(table)} on")
        return Lookup(None, "no converter for this op")
    best = max(usable)
    current = schema_version(domain, op_type, opset)
    if current is not None and current > best:
        return Lookup(
            None,
            f"the model's opset uses version {current} of the op, newer than our converter "
            f"(version {best}); refusing to guess at changed semantics",
        )
    return Lookup(table[best])
