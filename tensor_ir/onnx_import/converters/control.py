"""Converters: control (none yet)."""
