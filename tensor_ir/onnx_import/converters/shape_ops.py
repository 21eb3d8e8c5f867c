"""Converters: shape_ops (none yet)."""
