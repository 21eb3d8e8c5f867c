"""Converters: misc (none yet)."""
