"""Converters: reductions (none yet)."""
