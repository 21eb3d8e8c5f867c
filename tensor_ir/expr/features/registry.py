"""The feature modules, imported for their registrations. Add a new module here."""

from tensor_ir.expr.features import text_match  # noqa: F401
