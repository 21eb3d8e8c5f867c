"""The application layer's error: a located problem in a package, schema or profile."""

from __future__ import annotations

from tensor_ir.expr.errors import Location, RankingError


class SchemaError(RankingError):
    """A problem in an application package: always says file:line:column when it can."""

    def __init__(self, message: str, location: Location | None = None) -> None:
        super().__init__(message, location)
