"""Converters: generators (none yet)."""
