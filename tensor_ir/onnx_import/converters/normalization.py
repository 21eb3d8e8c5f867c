"""Converters: normalization (none yet)."""
