"""The interface both backends implement. Only the server's composition root picks one."""

from __future__ import annotations

import abc
from collections.abc import Mapping
from typing import Any

import numpy as np
import numpy.typing as npt

from tensor_ir.program import Program


class CompiledProgram(abc.ABC):
    """A program prepared for one backend: constants resident, kernels ready."""

    program: Program

    @abc.abstractmethod
    def run(self, inputs: Mapping[str, Any], n_docs: int) -> dict[str, Any]:
        """Evaluate for `n_docs` documents.

        Attribute inputs have shape [n_docs, *shape]; query and constant inputs their own
        shape. Every output comes back with a leading document axis of n_docs.
        """


class Backend(abc.ABC):
    name: str

    @abc.abstractmethod
    def compile(self, program: Program) -> CompiledProgram: ...

    @abc.abstractmethod
    def asarray(self, value: npt.ArrayLike) -> Any:
        """Move a host array to the backend's device."""

    @abc.abstractmethod
    def to_host(self, value: Any) -> npt.NDArray[Any]:
        """Copy a device array back to a numpy array."""

    def run(self, program: Program, inputs: Mapping[str, Any], n_docs: int) -> dict[str, npt.NDArray[Any]]:
        """Compile, run and copy back: a convenience for tests and one-off evaluation."""
        out = self.compile(program).run(inputs, n_docs)
        return {k: np.asarray(self.to_host(v)) for k, v in out.items()}
