"""Going on after a located refusal inside one element of a schema (a field, a rank profile,
a summary), so that `check` can report every problem of a file."""

from __future__ import annotations

from collections.abc import Callable

from server.application.errors import SchemaError
from server.application.scanner import Scanner
from server.application.schema_defs import SchemaDef
from tensor_ir.expr.errors import RankingError


def as_schema_error(e: RankingError) -> SchemaError:
    return e if isinstance(e, SchemaError) else SchemaError(e.message, e.location)


def recovering(s: Scanner, schema: SchemaDef, parse: Callable[[], None], profile: str | None = None) -> None:
    """Run `parse` for one element; on a located error, record it and skip the element."""
    start = s.save()
    try:
        parse()
    except RankingError as e:
        error = as_schema_error(e)
        try:
            s.skip_element(start)
        except SchemaError:
            raise error from None
        schema.refuse(error, profile)
