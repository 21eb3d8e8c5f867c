"""Converters: activations (none yet)."""
