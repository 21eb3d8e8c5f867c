"""The ranking layer's error: a message with the place it refers to."""

from __future__ import annotations

from dataclasses import dataclass

from tensor_ir.errors import TensorRankError


@dataclass(frozen=True)
class Location:
    file: str = "<expression>"
    line: int = 1
    column: int = 1

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}"


class RankingError(TensorRankError):
    """An error in a schema, rank profile or ranking expression."""

    def __init__(self, message: str, location: Location | None = None) -> None:
        self.message = message
        self.location = location
        super().__init__(f"{location}: {message}" if location else message)
