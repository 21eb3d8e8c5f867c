"""The numpy backend: evaluates tensor programs over whole shards on the CPU."""

from cpu_fallback.backend import NumpyBackend, NumpyProgram

__all__ = ["NumpyBackend", "NumpyProgram"]
