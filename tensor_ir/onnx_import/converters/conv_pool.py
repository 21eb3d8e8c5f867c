"""Converters: conv_pool (none yet)."""
