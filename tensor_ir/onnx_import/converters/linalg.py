"""Converters: linalg (none yet)."""
