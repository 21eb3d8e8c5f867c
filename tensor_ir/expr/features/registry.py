"""The feature modules, imported for their registrations. Add a new module here."""

from tensor_ir.expr.features import (  # noqa: F401
    gbdt,
    nearest_neighbor,
    phase_features,
    random_features,
    text_match,
    time_features,
    token_features,
)
