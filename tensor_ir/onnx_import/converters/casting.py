"""Converters: casting (none yet)."""
