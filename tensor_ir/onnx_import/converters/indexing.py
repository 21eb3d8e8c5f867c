"""Converters: indexing (none yet)."""
